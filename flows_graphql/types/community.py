"""Regions, ESCOs (the tenants), sites and contract terms."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry

from ..context import Context
from ..db.models.enums import ContractTermsType, TariffGeneration
from ..fields import paged, ranged, relation
from ..loaders import billing as billing_loaders
from ..loaders import community as loaders
from ..loaders import customers as customer_loaders
from ..loaders import identity as identity_loaders
from ..loaders import metering as metering_loaders
from ..loaders import money as money_loaders
from ..loaders import tariffs as tariff_loaders
from . import enums as _registered  # noqa: F401  (registers the GraphQL enums)
from .filters import (
    BillingRunFilter,
    CustomerFilter,
    CustomerOrder,
    MeterFilter,
    MeterOrder,
    PropertyFilter,
    PropertyOrder,
    customer_filter,
    meter_filter,
    property_filter,
    run_filter,
)
from .money import summaries_field
from .node import Node, NodeSource, RowType, by_uuid, global_id, register_node, uuid_field

if TYPE_CHECKING:
    from .billing import BillingRun
    from .customers import Customer
    from .identity import StaffGrant
    from .metering import Meter, Property
    from .tariffs import MicrogridTariff, SolarCreditTariff

Info = strawberry.Info[Context, None]
Lazy = strawberry.lazy
LazyProperty = Annotated["Property", Lazy("flows_graphql.types.metering")]
LazyMeter = Annotated["Meter", Lazy("flows_graphql.types.metering")]
LazyCustomer = Annotated["Customer", Lazy("flows_graphql.types.customers")]
LazyBillingRun = Annotated["BillingRun", Lazy("flows_graphql.types.billing")]


@strawberry.type(description="A GB price-cap region that benchmark tariffs are published for.")
class Region(RowType, Node):
    id: strawberry.ID = global_id("Region", "code")
    code: str = strawberry.field(description="Snake-case region code, e.g. `south_west`.")
    name: str = strawberry.field(description="Display name.")


@strawberry.type(description="An Energy Service Company: the tenant that runs a microgrid.")
class Esco(RowType, Node):
    id: strawberry.ID = global_id("Esco")
    uuid: UUID = uuid_field()
    code: str = strawberry.field(description="Lower-case slug, unique.")
    name: str = strawberry.field(description="Display name.")
    app_url: str | None = strawberry.field(
        description="URL of the ESCO's customer app, used in invite links."
    )
    tariff_generation: TariffGeneration = strawberry.field(
        description="Whether a new quarter's benchmark generates this ESCO's tariffs."
    )
    region_code: strawberry.Private[str]

    region = relation(
        Annotated["Region", Lazy("flows_graphql.types.community")],
        loaders.RegionByCode,
        "region_code",
        "The price-cap region whose benchmark applies.",
    )

    staff_grants = relation(
        list[Annotated["StaffGrant", Lazy("flows_graphql.types.identity")]],
        identity_loaders.StaffGrantsByEscoId,
        "id",
        "Operator access granted to identity-provider accounts, newest first (revoked "
        "ones too; hidden from customers).",
    )

    sites = relation(
        list[Annotated["Site", Lazy("flows_graphql.types.community")]],
        loaders.SitesByEscoId,
        "id",
        "The sites grouping this ESCO's properties.",
    )

    contract_terms = relation(
        list[Annotated["ContractTerms", Lazy("flows_graphql.types.community")]],
        loaders.ContractTermsByEscoId,
        "id",
        "The contract terms this ESCO may use on accounts.",
    )

    properties = paged(
        LazyProperty,
        metering_loaders.PropertiesByEscoId,
        metering_loaders.PropertyCountByEscoId,
        "This ESCO's properties, by plot (filters and orders as the root `properties`).",
        filter_type=PropertyFilter,
        conditions=property_filter,
        order_type=PropertyOrder,
        default_order="PLOT",
    )
    customers = paged(
        LazyCustomer,
        customer_loaders.CustomersByEscoId,
        customer_loaders.CustomerCountByEscoId,
        "This ESCO's customers, by email (filters and orders as the root `customers`).",
        filter_type=CustomerFilter,
        conditions=customer_filter,
        order_type=CustomerOrder,
        default_order="EMAIL",
    )
    meters = paged(
        LazyMeter,
        metering_loaders.MetersByEscoId,
        metering_loaders.MeterCountByEscoId,
        "This ESCO's meters, by serial (filters and orders as the root `meters`).",
        filter_type=MeterFilter,
        conditions=meter_filter,
        order_type=MeterOrder,
        default_order="SERIAL",
    )
    billing_runs = paged(
        LazyBillingRun,
        billing_loaders.BillingRunsByEscoId,
        billing_loaders.BillingRunCountByEscoId,
        "This ESCO's billing runs, newest month first (filters as the root `billingRuns`).",
        filter_type=BillingRunFilter,
        conditions=run_filter,
    )

    microgrid_tariffs = ranged(
        list[Annotated["MicrogridTariff", Lazy("flows_graphql.types.tariffs")]],
        tariff_loaders.MicrogridTariffsByEscoId,
        "Microgrid tariffs in force on some day of [from, to]; no `to`: unbounded. "
        "Without `from`: the 24 months up to `to` (or the current month).",
    )

    solar_credit_tariffs = relation(
        list[Annotated["SolarCreditTariff", Lazy("flows_graphql.types.tariffs")]],
        tariff_loaders.SolarCreditTariffsByEscoId,
        "id",
        "Solar credit tariffs, oldest first.",
    )

    monthly_summaries = summaries_field(
        money_loaders.SummariesByEscoId,
        "The ESCO's months in [from, to] (days count as their month; no `to`: unbounded. "
        " no `from`: the 24 months up to `to` or the current month) with anything billed,"
        " skipped, credited or paid, oldest first. Empty "
        "for customers.",
    )


@strawberry.type(description="A group of properties behind one boundary (settlement) meter.")
class Site(RowType, Node):
    id: strawberry.ID = global_id("Site")
    uuid: UUID = uuid_field()
    code: str | None = strawberry.field(description="Code, unique within the ESCO.")
    name: str = strawberry.field(description="Display name.")
    esco_id: strawberry.Private[UUID]

    esco = relation(
        Annotated["Esco", Lazy("flows_graphql.types.community")],
        loaders.EscoById,
        "esco_id",
        "The ESCO this site belongs to.",
    )

    properties = paged(
        LazyProperty,
        metering_loaders.PropertiesBySiteId,
        metering_loaders.PropertyCountBySiteId,
        "The properties of this site, by plot.",
    )

    monthly_summaries = summaries_field(
        money_loaders.SummariesBySiteId,
        "The site's months in [from, to], as Esco.monthlySummaries, over the site's "
        "properties (their supply meters, solar credits and accounts' payments).",
    )


@strawberry.type(description="A version of the contract terms accounts are opened under.")
class ContractTerms(RowType, Node):
    id: strawberry.ID = global_id("ContractTerms")
    uuid: UUID = uuid_field()
    type: ContractTermsType = strawberry.field(description="What the terms cover.")
    version: int = strawberry.field(description="Version, from 1.")
    title: str = strawberry.field(description="Title.")
    summary: str | None = strawberry.field(description="Plain-language summary.")
    document_url: str | None = strawberry.field(description="The full document.")


async def _region(loaders_: Any, key: str) -> Any:
    return await loaders_.get(loaders.RegionByCode).load(key)


register_node("Region", NodeSource(_region))
register_node("Esco", by_uuid(loaders.EscoById))
register_node("Site", by_uuid(loaders.SiteById))
register_node("ContractTerms", by_uuid(loaders.ContractTermsById))
