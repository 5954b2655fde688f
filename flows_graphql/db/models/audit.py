"""The audit trail. Append-only: a trigger refuses UPDATE and DELETE."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ForeignKey, Index, Text, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, CreatedAt, esco_fk, pg_enum, tenant_fk, uuid_pk
from .enums import AccountEventType

APPEND_ONLY = {"info": {"append_only": True}}


class AccountEvent(CreatedAt, Base):
    __tablename__ = "account_events"
    __table_args__ = (
        tenant_fk(["account_id"], "accounts"),
        tenant_fk(["customer_id"], "customers"),
        Index("ix_account_events_account_id_created_at", "account_id", "created_at"),
        APPEND_ONLY,
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    esco_id: Mapped[uuid.UUID] = esco_fk()
    account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    # The customer whose link the event is about (null: the account itself); a customer
    # is shown the events of their own links (loaders/visibility.py).
    customer_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    event_type: Mapped[AccountEventType] = mapped_column(
        pg_enum(AccountEventType, "account_event_type"), nullable=False
    )
    notes: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(Text, nullable=False)


class AccountAuditLog(CreatedAt, Base):
    """Field-level changes to an account and its links."""

    __tablename__ = "account_audit_logs"
    __table_args__ = (
        tenant_fk(["account_id"], "accounts"),
        Index("ix_account_audit_logs_account_id_created_at", "account_id", "created_at"),
        APPEND_ONLY,
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    esco_id: Mapped[uuid.UUID] = esco_fk()
    account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    action: Mapped[str] = mapped_column(Text, nullable=False)
    actor: Mapped[str] = mapped_column(Text, nullable=False)
    changes: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )


class AuditLog(CreatedAt, Base):
    """Every other mutation: tariffs, billing runs, meters, properties, payments."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_esco_id_created_at", "esco_id", "created_at"),
        Index("ix_audit_log_entity_entity_id", "entity", "entity_id"),
        APPEND_ONLY,
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    # NULL for global data (benchmark tariffs, contract terms, regions).
    esco_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("escos.id"))
    actor: Mapped[str] = mapped_column(Text, nullable=False)
    action: Mapped[str] = mapped_column(Text, nullable=False)
    entity: Mapped[str] = mapped_column(Text, nullable=False)
    entity_id: Mapped[str | None] = mapped_column(Text)
    changes: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
