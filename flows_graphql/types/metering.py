"""Properties, meters, circuits, solar installations and their monthly data."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry

from ..context import Context
from ..db.models.enums import CircuitType, MeterMode
from ..fields import ranged, relation
from ..loaders import billing as billing_loaders
from ..loaders import community as community_loaders
from ..loaders import customers as customer_loaders
from ..loaders import metering as loaders
from .node import Node, NodeSource, RowType, by_uuid, global_id, register_node, uuid_field

if TYPE_CHECKING:
    from .billing import MonthlySolarCredit, MonthlyUsage
    from .community import Esco, Site
    from .customers import Account

Info = strawberry.Info[Context, None]
Lazy = strawberry.lazy


@strawberry.type(description="A home or unit of the microgrid, with its supply meter.")
class Property(RowType, Node):
    id: strawberry.ID = global_id("Property")
    uuid: UUID = uuid_field()
    plot: str = strawberry.field(description="Plot reference, unique within the ESCO.")
    address: str | None = strawberry.field(description="Postal address.")
    updated_at: datetime = strawberry.field(
        description="When this row was last written (its transaction's start): the sort "
        "key of orderBy: UPDATED_AT and updatedSince."
    )
    esco_id: strawberry.Private[UUID]
    site_id: strawberry.Private[UUID | None]
    supply_meter_id: strawberry.Private[UUID | None]

    esco = relation(
        Annotated["Esco", Lazy("flows_graphql.types.community")],
        community_loaders.EscoById,
        "esco_id",
        "The ESCO this property belongs to.",
    )

    site = relation(
        Annotated["Site", Lazy("flows_graphql.types.community")] | None,
        community_loaders.SiteById,
        "site_id",
        "The site this property sits behind, if any.",
    )

    account = relation(
        Annotated["Account", Lazy("flows_graphql.types.customers")] | None,
        customer_loaders.ActiveAccountByPropertyId,
        "id",
        "The active account of this property, if any.",
    )

    accounts = relation(
        list[Annotated["Account", Lazy("flows_graphql.types.customers")]],
        customer_loaders.AccountsByPropertyId,
        "id",
        "Every account of this property, newest first.",
    )

    supply_meter = relation(
        Annotated["Meter", Lazy("flows_graphql.types.metering")] | None,
        loaders.MeterById,
        "supply_meter_id",
        "The meter that supplies this property, if any.",
    )

    solar_installation = relation(
        Annotated["SolarInstallation", Lazy("flows_graphql.types.metering")] | None,
        loaders.SolarInstallationByPropertyId,
        "id",
        "The solar installation of this property, if any.",
    )

    solar_credits = ranged(
        list[Annotated["MonthlySolarCredit", Lazy("flows_graphql.types.billing")]],
        loaders.SolarCreditsByPropertyId,
        "Monthly solar credits for the months of [from, to]."
        " Without `from`: the 24 months up to `to` (or the current month).",
    )


@strawberry.type(description="A meter: the supply meter of a property, or a circuit meter.")
class Meter(RowType, Node):
    id: strawberry.ID = global_id("Meter")
    uuid: UUID = uuid_field()
    serial: str = strawberry.field(description="Serial number, unique.")
    name: str | None = strawberry.field(description="Display name.")
    hardware: str | None = strawberry.field(description="Make and model.")
    mode: MeterMode = strawberry.field(
        description="Active, passive (digital twin) or decommissioned."
    )
    updated_at: datetime = strawberry.field(
        description="When this row was last written (its transaction's start): the sort "
        "key of orderBy: UPDATED_AT and updatedSince."
    )
    esco_id: strawberry.Private[UUID]

    esco = relation(
        Annotated["Esco", Lazy("flows_graphql.types.community")],
        community_loaders.EscoById,
        "esco_id",
        "The ESCO this meter belongs to.",
    )

    property = relation(
        Annotated["Property", Lazy("flows_graphql.types.metering")] | None,
        loaders.PropertyBySupplyMeterId,
        "id",
        "The property this meter supplies, if any.",
    )

    circuits = relation(
        list[Annotated["Circuit", Lazy("flows_graphql.types.metering")]],
        loaders.CircuitsByMeterId,
        "id",
        "The circuits this meter measures.",
    )

    monthly_usage = ranged(
        list[Annotated["MonthlyUsage", Lazy("flows_graphql.types.billing")]],
        billing_loaders.UsageByMeterId,
        "Usage for the months of [from, to], oldest first."
        " Without `from`: the 24 months up to `to` (or the current month).",
    )


@strawberry.type(description="A heat, power or solar circuit, measured by meters.")
class Circuit(RowType, Node):
    id: strawberry.ID = global_id("Circuit")
    uuid: UUID = uuid_field()
    type: CircuitType = strawberry.field(description="What the circuit carries.")
    name: str | None = strawberry.field(description="Display name.")

    meters = relation(
        list[Annotated["Meter", Lazy("flows_graphql.types.metering")]],
        loaders.MetersByCircuitId,
        "id",
        "The meters connected to this circuit, by serial.",
    )


@strawberry.type(description="The solar installation of a property (at most one).")
class SolarInstallation(RowType, Node):
    id: strawberry.ID = global_id("SolarInstallation", "property_id")
    mcs_certificate: str = strawberry.field(description="MCS certificate number, unique.")
    declared_net_capacity_kw: Decimal | None = strawberry.field(
        description="Declared net capacity in kW; solar credits are proportional to it."
    )
    commissioning_date: date | None = strawberry.field(description="When it was commissioned.")
    property_id: strawberry.Private[UUID]

    property = relation(
        Annotated["Property", Lazy("flows_graphql.types.metering")],
        loaders.PropertyById,
        "property_id",
        "The property it is installed on.",
    )


async def _solar(loaders_: Any, key: str) -> Any:
    try:
        return await loaders_.get(loaders.SolarInstallationByPropertyId).load(UUID(key))
    except ValueError:
        return None


register_node("Property", by_uuid(loaders.PropertyById))
register_node("Meter", by_uuid(loaders.MeterById))
register_node("Circuit", by_uuid(loaders.CircuitById))
register_node("SolarInstallation", NodeSource(_solar))
