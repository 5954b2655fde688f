"""Customers, their accounts and occupancies, events and invites."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    Date,
    DateTime,
    Index,
    Sequence,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID, ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, CreatedAt, Timestamps, esco_fk, pg_enum, tenant_fk, uuid_pk
from .enums import AccountStatus, CustomerAccountRole, CustomerStatus

# Account numbers are shown to customers: a sequence, never reused, never guessed
# from a row count.
account_number_seq = Sequence("account_number_seq", start=10_000_001)


class Customer(Timestamps, Base):
    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("id", "esco_id"),
        Index(
            "uq_customers_esco_id_lower_email", "esco_id", func.lower(text("email")), unique=True
        ),
        CheckConstraint("email ~ '^[^@[:space:]]+@[^@[:space:]]+$'", name="email_shape"),
        # Backs the customers list ordered by CREATED_AT (keyset: created_at, id).
        Index("ix_customers_esco_id_created_at_id", "esco_id", "created_at", "id"),
        # Serves `emailPrefix` (LIKE 'prefix%' needs pattern ops outside the C collation).
        Index(
            "ix_customers_esco_id_lower_email_pattern",
            "esco_id",
            func.lower(text("email")).label("lower_email"),
            postgresql_ops={"lower_email": "text_pattern_ops"},
        ),
        # updatedSince / orderBy: UPDATED_AT (incremental sync, keyset: updated_at, id).
        Index("ix_customers_esco_id_updated_at_id", "esco_id", "updated_at", "id"),
        # Backs the list ordered by EMAIL (keyset: email_key, id).
        Index("ix_customers_esco_id_email_key_id", "esco_id", "email_key", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    esco_id: Mapped[uuid.UUID] = esco_fk()
    email: Mapped[str] = mapped_column(Text, nullable=False)
    # lower(email), stored: what the EMAIL order sorts and seeks on. Under row-level
    # security PostgreSQL may use only leakproof functions in an index condition, and
    # lower() is not one, so a page after a cursor of lower(email) scanned the ESCO's
    # customers (bench/README.md, "Growth"); `>=` on a text column is leakproof.
    email_key: Mapped[str] = mapped_column(
        Text, Computed("lower(email)", persisted=True), nullable=False
    )
    full_name: Mapped[str | None] = mapped_column(Text)
    status: Mapped[CustomerStatus] = mapped_column(
        pg_enum(CustomerStatus, "customer_status"),
        nullable=False,
        server_default=CustomerStatus.ACTIVE.value,
    )


class Account(Timestamps, Base):
    __tablename__ = "accounts"
    __table_args__ = (
        UniqueConstraint("id", "esco_id"),
        tenant_fk(["property_id"], "properties"),
        # Terms must be allowed for the account's ESCO: the pair must exist there.
        tenant_fk(["contract_terms_id"], "contract_terms_esco", ["contract_terms_id", "esco_id"]),
        CheckConstraint("closed_on >= opened_on", name="closed_after_opened"),
        CheckConstraint(
            "(status = 'closed') = (closed_on IS NOT NULL)", name="closed_on_iff_closed"
        ),
        Index(
            "uq_accounts_property_id_active",
            "property_id",
            unique=True,
            postgresql_where=text("status = 'active'"),
        ),
        Index("ix_accounts_esco_id_property_id", "esco_id", "property_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    esco_id: Mapped[uuid.UUID] = esco_fk()
    account_number: Mapped[int] = mapped_column(
        BigInteger,
        account_number_seq,
        nullable=False,
        unique=True,
        server_default=account_number_seq.next_value(),
    )
    property_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    status: Mapped[AccountStatus] = mapped_column(
        pg_enum(AccountStatus, "account_status"),
        nullable=False,
        server_default=AccountStatus.ACTIVE.value,
    )
    contract_terms_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    opened_on: Mapped[date] = mapped_column(Date, nullable=False)
    closed_on: Mapped[date | None] = mapped_column(Date)


class CustomerAccount(Timestamps, Base):
    """A customer's link to an account as owner or occupier over a date range.

    `end_date` is inclusive (the last day of the link); NULL means current.
    """

    __tablename__ = "customer_accounts"
    __table_args__ = (
        tenant_fk(["customer_id"], "customers"),
        tenant_fk(["account_id"], "accounts"),
        CheckConstraint("end_date >= start_date", name="end_after_start"),
        # One occupier per account per day (see SUPPORT_SQL for uuid_range).
        ExcludeConstraint(
            (text("uuid_range(account_id, account_id, '[]')"), "&&"),
            (text("daterange(start_date, end_date, '[]')"), "&&"),
            name="ex_customer_accounts_one_occupier",
            using="gist",
            where=text("role = 'occupier'"),
        ),
        Index("ix_customer_accounts_account_id", "account_id"),
    )

    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    role: Mapped[CustomerAccountRole] = mapped_column(
        pg_enum(CustomerAccountRole, "customer_account_role"), primary_key=True
    )
    start_date: Mapped[date] = mapped_column(Date, primary_key=True)
    esco_id: Mapped[uuid.UUID] = esco_fk()
    end_date: Mapped[date | None] = mapped_column(Date)


class CustomerEvent(CreatedAt, Base):
    __tablename__ = "customer_events"
    __table_args__ = (
        tenant_fk(["customer_id"], "customers"),
        Index("ix_customer_events_customer_id_created_at", "customer_id", "created_at"),
        {"info": {"append_only": True}},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    esco_id: Mapped[uuid.UUID] = esco_fk()
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    event_type: Mapped[str] = mapped_column(Text, nullable=False)
    actor: Mapped[str] = mapped_column(Text, nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )


class CustomerInvite(Timestamps, Base):
    """An invitation to the ESCO's customer app. Its status is derived when read."""

    __tablename__ = "customer_invites"
    __table_args__ = (
        tenant_fk(["customer_id"], "customers"),
        Index("ix_customer_invites_customer_id", "customer_id"),
    )

    token: Mapped[uuid.UUID] = uuid_pk()
    esco_id: Mapped[uuid.UUID] = esco_fk()
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    invite_url: Mapped[str] = mapped_column(Text, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True),
        nullable=False,
        server_default=text("now() + interval '7 days'"),
    )
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
