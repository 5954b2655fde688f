"""Benchmark, microgrid, customer and solar-credit tariffs.

A tariff applies from `period_start` until the next row of the same owner.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

from sqlalchemy import CheckConstraint, Date, ForeignKey, Integer, Numeric, Text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, Timestamps, esco_fk, tenant_fk


class BenchmarkTariff(Timestamps, Base):
    """The regulator-published price of a region (global reference data)."""

    __tablename__ = "benchmark_tariffs"
    __table_args__ = (
        CheckConstraint("unit_rate BETWEEN 0 AND 100", name="unit_rate_range"),
        CheckConstraint("standing_charge BETWEEN 0 AND 100", name="standing_charge_range"),
    )

    region_code: Mapped[str] = mapped_column(Text, ForeignKey("regions.code"), primary_key=True)
    period_start: Mapped[date] = mapped_column(Date, primary_key=True)
    unit_rate: Mapped[Decimal] = mapped_column(Numeric(10, 5), nullable=False)
    standing_charge: Mapped[Decimal] = mapped_column(Numeric(10, 5), nullable=False)


class MicrogridTariff(Timestamps, Base):
    __tablename__ = "microgrid_tariffs"
    __table_args__ = (
        CheckConstraint("discount_percent BETWEEN 0 AND 100", name="discount_range"),
        CheckConstraint("emergency_credit BETWEEN 0 AND 5000", name="emergency_credit_range"),
        CheckConstraint(
            "ecredit_button_threshold BETWEEN 0 AND 5000", name="ecredit_threshold_range"
        ),
        CheckConstraint("debt_recovery_rate BETWEEN 0 AND 500", name="debt_recovery_range"),
    )

    esco_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("escos.id"), primary_key=True
    )
    period_start: Mapped[date] = mapped_column(Date, primary_key=True)
    discount_percent: Mapped[int] = mapped_column(Integer, nullable=False)
    unit_rate: Mapped[Decimal] = mapped_column(Numeric, nullable=False)
    standing_charge: Mapped[Decimal] = mapped_column(Numeric, nullable=False)
    emergency_credit: Mapped[Decimal] = mapped_column(Numeric, nullable=False)
    ecredit_button_threshold: Mapped[Decimal] = mapped_column(Numeric, nullable=False)
    debt_recovery_rate: Mapped[Decimal] = mapped_column(Numeric, nullable=False)


class CustomerTariff(Timestamps, Base):
    __tablename__ = "customer_tariffs"
    __table_args__ = (
        tenant_fk(["customer_id"], "customers"),
        CheckConstraint("discount_percent BETWEEN 0 AND 100", name="discount_range"),
    )

    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    period_start: Mapped[date] = mapped_column(Date, primary_key=True)
    esco_id: Mapped[uuid.UUID] = esco_fk(index=True)
    discount_percent: Mapped[int] = mapped_column(Integer, nullable=False)
    unit_rate: Mapped[Decimal] = mapped_column(Numeric(10, 5), nullable=False)
    standing_charge: Mapped[Decimal] = mapped_column(Numeric(10, 5), nullable=False)


class SolarCreditTariff(Timestamps, Base):
    __tablename__ = "solar_credit_tariffs"
    __table_args__ = (
        CheckConstraint("credit_pence_per_year BETWEEN 0 AND 30000", name="credit_range"),
    )

    esco_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("escos.id"), primary_key=True
    )
    period_start: Mapped[date] = mapped_column(Date, primary_key=True)
    credit_pence_per_year: Mapped[Decimal] = mapped_column(Numeric, nullable=False)
    credit_pence_per_day: Mapped[Decimal] = mapped_column(Numeric, nullable=False)
