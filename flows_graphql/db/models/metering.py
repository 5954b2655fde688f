"""Properties, their supply meters, circuits and solar installations."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

from sqlalchemy import CheckConstraint, Date, Index, Numeric, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, Timestamps, esco_fk, pg_enum, tenant_fk, uuid_pk
from .enums import CircuitType, MeterMode


class Meter(Timestamps, Base):
    __tablename__ = "meters"
    __table_args__ = (
        UniqueConstraint("id", "esco_id"),
        # Serves `serialPrefix` (LIKE 'prefix%').
        Index(
            "ix_meters_esco_id_serial_pattern",
            "esco_id",
            "serial",
            postgresql_ops={"serial": "text_pattern_ops"},
        ),
        # updatedSince / orderBy: UPDATED_AT (incremental sync, keyset: updated_at, id).
        Index("ix_meters_esco_id_updated_at_id", "esco_id", "updated_at", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    esco_id: Mapped[uuid.UUID] = esco_fk()
    serial: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    name: Mapped[str | None] = mapped_column(Text)
    hardware: Mapped[str | None] = mapped_column(Text)
    mode: Mapped[MeterMode] = mapped_column(
        pg_enum(MeterMode, "meter_mode"), nullable=False, server_default=MeterMode.ACTIVE.value
    )


class Property(Timestamps, Base):
    __tablename__ = "properties"
    __table_args__ = (
        UniqueConstraint("id", "esco_id"),
        UniqueConstraint("esco_id", "plot"),
        UniqueConstraint("supply_meter_id"),
        tenant_fk(["site_id"], "sites"),
        tenant_fk(["supply_meter_id"], "meters"),
        # Serves `plotPrefix` (LIKE 'prefix%').
        Index(
            "ix_properties_esco_id_plot_pattern",
            "esco_id",
            "plot",
            postgresql_ops={"plot": "text_pattern_ops"},
        ),
        # updatedSince / orderBy: UPDATED_AT (incremental sync, keyset: updated_at, id).
        Index("ix_properties_esco_id_updated_at_id", "esco_id", "updated_at", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    esco_id: Mapped[uuid.UUID] = esco_fk()
    site_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    plot: Mapped[str] = mapped_column(Text, nullable=False)
    address: Mapped[str | None] = mapped_column(Text)
    supply_meter_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))


class Circuit(Timestamps, Base):
    __tablename__ = "circuits"
    __table_args__ = (UniqueConstraint("id", "esco_id"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    esco_id: Mapped[uuid.UUID] = esco_fk()
    type: Mapped[CircuitType] = mapped_column(pg_enum(CircuitType, "circuit_type"), nullable=False)
    name: Mapped[str | None] = mapped_column(Text)


class CircuitMeter(Timestamps, Base):
    """Which circuits a meter measures."""

    __tablename__ = "circuit_meter"
    __table_args__ = (
        tenant_fk(["circuit_id"], "circuits"),
        tenant_fk(["meter_id"], "meters"),
    )

    circuit_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    meter_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, index=True)
    esco_id: Mapped[uuid.UUID] = esco_fk()


class SolarInstallation(Timestamps, Base):
    __tablename__ = "solar_installation"
    __table_args__ = (
        tenant_fk(["property_id"], "properties"),
        CheckConstraint("declared_net_capacity_kw >= 0", name="capacity_non_negative"),
    )

    property_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    esco_id: Mapped[uuid.UUID] = esco_fk(index=True)
    mcs_certificate: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    declared_net_capacity_kw: Mapped[Decimal | None] = mapped_column(Numeric)
    commissioning_date: Mapped[date | None] = mapped_column(Date)
