"""API keys of partner systems: stored hashed, bound to one ESCO and to scopes."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, Timestamps, esco_fk, uuid_pk

API_KEY_SCOPES = ("read", "usage:write", "payments:write", "webhooks:write")


class ApiKey(Timestamps, Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint(
            "scopes <@ ARRAY['read', 'usage:write', 'payments:write', 'webhooks:write']::text[]",
            name="known_scopes",
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    esco_id: Mapped[uuid.UUID] = esco_fk(index=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    # sha256 of the secret part: keys are 32 random bytes, so a fast hash is enough.
    key_hash: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
