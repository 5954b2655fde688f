"""Monthly usage, billing runs, the costs and solar credits they write, payments."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    CHAR,
    CheckConstraint,
    Date,
    DateTime,
    Index,
    Integer,
    Numeric,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, Timestamps, esco_fk, pg_enum, tenant_fk, uuid_pk
from .enums import BillingRunStatus, PaymentStatus, UsageSource

FIRST_OF_MONTH = "extract(day from month) = 1"


def kwh() -> Mapped[Decimal]:
    return mapped_column(Numeric(14, 3), nullable=False, server_default=text("0"))


def money() -> Mapped[Decimal]:
    return mapped_column(Numeric, nullable=False)


class MonthlyUsage(Timestamps, Base):
    __tablename__ = "monthly_usage"
    __table_args__ = (
        UniqueConstraint("id", "esco_id"),
        UniqueConstraint("meter_id", "month"),
        tenant_fk(["meter_id"], "meters"),
        CheckConstraint(FIRST_OF_MONTH, name="month_first_day"),
        CheckConstraint("power_kwh >= 0", name="power_non_negative"),
        CheckConstraint("heat_kwh >= 0", name="heat_non_negative"),
        CheckConstraint("solar_kwh >= 0", name="solar_non_negative"),
        Index("ix_monthly_usage_esco_id_month", "esco_id", "month"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    esco_id: Mapped[uuid.UUID] = esco_fk()
    meter_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    month: Mapped[date] = mapped_column(Date, nullable=False)
    power_kwh: Mapped[Decimal] = kwh()
    heat_kwh: Mapped[Decimal] = kwh()
    solar_kwh: Mapped[Decimal] = kwh()
    source: Mapped[UsageSource] = mapped_column(
        pg_enum(UsageSource, "usage_source"), nullable=False, server_default=UsageSource.METER.value
    )


class BillingRun(Timestamps, Base):
    __tablename__ = "billing_runs"
    __table_args__ = (
        UniqueConstraint("id", "esco_id"),
        CheckConstraint(FIRST_OF_MONTH, name="month_first_day"),
        CheckConstraint("customers_billed >= 0", name="customers_billed_non_negative"),
        # A finalized month is frozen: at most one finalized run per ESCO and month.
        Index(
            "uq_billing_runs_esco_id_month_finalized",
            "esco_id",
            "month",
            unique=True,
            postgresql_where=text("status = 'finalized'"),
        ),
        Index("ix_billing_runs_esco_id_month", "esco_id", "month"),
        # updatedSince / orderBy: UPDATED_AT (incremental sync, keyset: updated_at, id).
        Index("ix_billing_runs_esco_id_updated_at_id", "esco_id", "updated_at", "id"),
        # Runs still marked running: what start-up looks through for interrupted ones.
        Index(
            "ix_billing_runs_running",
            "esco_id",
            "month",
            postgresql_where=text("status = 'running'"),
        ),
        CheckConstraint(
            "progress_billed >= 0 AND progress_billed <= progress_total",
            name="progress_within_total",
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    esco_id: Mapped[uuid.UUID] = esco_fk()
    month: Mapped[date] = mapped_column(Date, nullable=False)
    status: Mapped[BillingRunStatus] = mapped_column(
        pg_enum(BillingRunStatus, "billing_run_status"),
        nullable=False,
        server_default=BillingRunStatus.RUNNING.value,
    )
    actor: Mapped[str] = mapped_column(Text, nullable=False)
    started_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=text("now()")
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    customers_billed: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    total: Mapped[Decimal] = mapped_column(Numeric, nullable=False, server_default=text("0"))
    error: Mapped[str | None] = mapped_column(Text)
    # Supply meters the run could not bill: [{"meter_id": …, "reason": "NO_OCCUPIER"}].
    skipped_meters: Mapped[list[dict[str, str]]] = mapped_column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb")
    )
    # How far the run is: meters done of the meters it bills; null until it has read
    # the month's usage (and for runs recorded before progress was).
    progress_billed: Mapped[int | None] = mapped_column(Integer)
    progress_total: Mapped[int | None] = mapped_column(Integer)


# Half of each page left free: a re-run writes a second version of every one of the
# month's rows (a month's rows lie together, written by one run), beside the first.
COSTS_FILLFACTOR = 50


class MonthlyCosts(Timestamps, Base):
    """What one month of one meter's usage cost its occupier, at full precision,
    beside what the microgrid tariff and the benchmark would have charged."""

    __tablename__ = "monthly_costs"
    __table_args__ = (
        tenant_fk(["monthly_usage_id"], "monthly_usage"),
        tenant_fk(["customer_id"], "customers"),
        tenant_fk(["billing_run_id"], "billing_runs"),
        CheckConstraint(FIRST_OF_MONTH, name="month_first_day"),
        Index("ix_monthly_costs_customer_id_month", "customer_id", "month"),
        Index("ix_monthly_costs_esco_id_month", "esco_id", "month"),
        # No index on billing_run_id, and room on every page: a re-run rewrites each of
        # the month's costs with its own run's id, and so updates it in place (HOT),
        # writing no index entry (docs/billing-runs.md). A run's costs are its month's.
        {"postgresql_with": {"fillfactor": COSTS_FILLFACTOR}},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    esco_id: Mapped[uuid.UUID] = esco_fk()
    monthly_usage_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), nullable=False, unique=True
    )
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    month: Mapped[date] = mapped_column(Date, nullable=False)
    billing_run_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    power: Mapped[Decimal] = money()
    heat: Mapped[Decimal] = money()
    standing_charge: Mapped[Decimal] = money()
    total: Mapped[Decimal] = money()
    microgrid_power: Mapped[Decimal] = money()
    microgrid_heat: Mapped[Decimal] = money()
    microgrid_standing_charge: Mapped[Decimal] = money()
    microgrid_total: Mapped[Decimal] = money()
    benchmark_power: Mapped[Decimal] = money()
    benchmark_heat: Mapped[Decimal] = money()
    benchmark_standing_charge: Mapped[Decimal] = money()
    benchmark_total: Mapped[Decimal] = money()


class MonthlySolarCredit(Timestamps, Base):
    __tablename__ = "monthly_solar_credits"
    __table_args__ = (
        UniqueConstraint("property_id", "month"),
        tenant_fk(["property_id"], "properties"),
        tenant_fk(["billing_run_id"], "billing_runs"),
        CheckConstraint(FIRST_OF_MONTH, name="month_first_day"),
        CheckConstraint("credit_pence >= 0", name="credit_non_negative"),
        Index("ix_monthly_solar_credits_esco_id_month", "esco_id", "month"),
        # As monthly_costs: re-runs update in place.
        {"postgresql_with": {"fillfactor": COSTS_FILLFACTOR}},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    esco_id: Mapped[uuid.UUID] = esco_fk()
    property_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    month: Mapped[date] = mapped_column(Date, nullable=False)
    credit_pence: Mapped[int] = mapped_column(Integer, nullable=False)
    billing_run_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)


class Payment(Timestamps, Base):
    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("customer_id", "idempotency_key"),
        tenant_fk(["customer_id"], "customers"),
        tenant_fk(["account_id"], "accounts"),
        CheckConstraint("amount_pence BETWEEN 1 AND 50000", name="amount_range"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_code"),
        Index("ix_payments_account_id", "account_id"),
        Index("ix_payments_esco_id_created_at", "esco_id", "created_at"),
        # A customer's payments by time (Customer.payments, keyset: created_at, id).
        Index("ix_payments_customer_id_created_at_id", "customer_id", "created_at", "id"),
        # payment(providerReference:), the key partners reconcile by.
        Index("ix_payments_provider_reference", "provider_reference"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    esco_id: Mapped[uuid.UUID] = esco_fk()
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    amount_pence: Mapped[int] = mapped_column(Integer, nullable=False)
    currency: Mapped[str] = mapped_column(CHAR(3), nullable=False, server_default="GBP")
    status: Mapped[PaymentStatus] = mapped_column(
        pg_enum(PaymentStatus, "payment_status"),
        nullable=False,
        server_default=PaymentStatus.CREATED.value,
    )
    provider_reference: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    scheduled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    idempotency_key: Mapped[str] = mapped_column(Text, nullable=False)
