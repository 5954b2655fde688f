"""Energy community: regions, ESCOs (the tenants), sites and contract terms."""

from __future__ import annotations

import uuid

from sqlalchemy import CheckConstraint, ForeignKey, Integer, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, Timestamps, esco_fk, pg_enum, uuid_pk
from .enums import ContractTermsType, TariffGeneration


class Region(Timestamps, Base):
    __tablename__ = "regions"

    code: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False, unique=True)


class Esco(Timestamps, Base):
    __tablename__ = "escos"
    __table_args__ = (
        CheckConstraint("code ~ '^[a-z0-9_-]{2,32}$'", name="code_slug"),
        CheckConstraint("app_url ~ '^https?://[^[:space:]]+$'", name="app_url_http"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    code: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    region_code: Mapped[str] = mapped_column(Text, ForeignKey("regions.code"), nullable=False)
    app_url: Mapped[str | None] = mapped_column(Text)
    tariff_generation: Mapped[TariffGeneration] = mapped_column(
        pg_enum(TariffGeneration, "tariff_generation"),
        nullable=False,
        server_default=TariffGeneration.AUTO.value,
    )


class Site(Timestamps, Base):
    __tablename__ = "sites"
    __table_args__ = (
        UniqueConstraint("id", "esco_id"),
        UniqueConstraint("esco_id", "code"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    esco_id: Mapped[uuid.UUID] = esco_fk()
    code: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text, nullable=False)


class ContractTerms(Timestamps, Base):
    __tablename__ = "contract_terms"
    __table_args__ = (
        UniqueConstraint("type", "title", "version"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    type: Mapped[ContractTermsType] = mapped_column(
        pg_enum(ContractTermsType, "contract_terms_type"), nullable=False
    )
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    title: Mapped[str] = mapped_column(Text, nullable=False)
    summary: Mapped[str | None] = mapped_column(Text)
    document_url: Mapped[str | None] = mapped_column(Text)


class ContractTermsEsco(Timestamps, Base):
    """The contract terms an ESCO may use on its accounts."""

    __tablename__ = "contract_terms_esco"

    esco_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("escos.id"), primary_key=True
    )
    contract_terms_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("contract_terms.id"), primary_key=True
    )
