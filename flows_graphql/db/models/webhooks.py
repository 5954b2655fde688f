"""Partner webhooks: endpoints, one delivery per (endpoint, event), and each attempt.

docs/webhooks.md says what they promise. The worker (live/webhooks.py) fans the event
log out into deliveries and sends them; it reads and writes as the owner, so these
tables' row-level security binds the API's role only.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, CreatedAt, Timestamps, esco_fk, uuid_pk

ENDPOINT_STATUSES = ("enabled", "disabled", "deleted")
DELIVERY_STATUSES = ("pending", "succeeded", "failed")
ATTEMPT_OUTCOMES = ("sending", "succeeded", "failed", "interrupted")


class WebhookEndpoint(Timestamps, Base):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        CheckConstraint(
            "status IN ('enabled', 'disabled', 'deleted')",
            name="known_status",
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    esco_id: Mapped[uuid.UUID] = esco_fk(index=True)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    event_types: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    # `whsec_` + base64 of 24 random bytes: the worker signs with it, so it is kept as
    # it is (never shown again after the mutation that made it).
    secret: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'enabled'"))
    # The last event id fanned out to this endpoint: advanced in the transaction that
    # writes its deliveries, so a crash repeats nothing and skips nothing.
    cursor: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("0"))
    # The first failure since the last success; the endpoint is disabled when this is
    # older than FLOWS_WEBHOOKS_DISABLE_AFTER_S.
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(Text, nullable=False)


class WebhookDelivery(Timestamps, Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'succeeded', 'failed')",
            name="known_status",
        ),
        UniqueConstraint("endpoint_id", "event_id"),
        # The claim's question: the earliest pending deliveries that are due.
        Index(
            "ix_webhook_deliveries_pending",
            "endpoint_id",
            "event_id",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    esco_id: Mapped[uuid.UUID] = esco_fk()
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False
    )
    event_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    event_type: Mapped[str] = mapped_column(Text, nullable=False)
    # The exact body sent on every attempt (frozen at fan-out: the event log's
    # retention may remove the event before the last retry).
    body: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'pending'"))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=text("now()")
    )
    # A worker's lease: until then no other worker may claim it (a killed worker's
    # lease simply runs out).
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookAttempt(CreatedAt, Base):
    __tablename__ = "webhook_attempts"
    __table_args__ = (
        CheckConstraint(
            "outcome IN ('sending', 'succeeded', 'failed', 'interrupted')",
            name="known_outcome",
        ),
        Index("ix_webhook_attempts_endpoint_id_created_at", "endpoint_id", "created_at"),
        Index("ix_webhook_attempts_delivery_id", "delivery_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    esco_id: Mapped[uuid.UUID] = esco_fk()
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False
    )
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False
    )
    event_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    event_type: Mapped[str] = mapped_column(Text, nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    outcome: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'sending'"))
    status_code: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    # The start of the receiver's answer, at most RESPONSE_PREFIX characters.
    response_prefix: Mapped[str | None] = mapped_column(Text)
    next_retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
