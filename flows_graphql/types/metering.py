"""Properties, meters, circuits, solar installations and their monthly data."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry

from ..context import Context
from ..db.models.enums import CircuitType, MeterMode
from ..loaders import billing as billing_loaders
from ..loaders import community as community_loaders
from ..loaders import customers as customer_loaders
from ..loaders import metering as loaders
from .connection import FromDay, ToDay
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
    esco_id: strawberry.Private[UUID]
    site_id: strawberry.Private[UUID | None]
    supply_meter_id: strawberry.Private[UUID | None]

    @strawberry.field(description="The ESCO this property belongs to.")
    async def esco(self, info: Info) -> Annotated[Esco, Lazy("flows_graphql.types.community")]:
        return await info.context.loaders.get(community_loaders.EscoById).load(self.esco_id)

    @strawberry.field(description="The site this property sits behind, if any.")
    async def site(
        self, info: Info
    ) -> Annotated[Site, Lazy("flows_graphql.types.community")] | None:
        if self.site_id is None:
            return None
        return await info.context.loaders.get(community_loaders.SiteById).load(self.site_id)

    @strawberry.field(description="The active account of this property, if any.")
    async def account(
        self, info: Info
    ) -> Annotated[Account, Lazy("flows_graphql.types.customers")] | None:
        loader = info.context.loaders.get(customer_loaders.ActiveAccountByPropertyId)
        return await loader.load(self.id)

    @strawberry.field(description="Every account of this property, newest first.")
    async def accounts(
        self, info: Info
    ) -> list[Annotated[Account, Lazy("flows_graphql.types.customers")]]:
        loader = info.context.loaders.get(customer_loaders.AccountsByPropertyId)
        return await loader.load(self.id)

    @strawberry.field(description="The meter that supplies this property, if any.")
    async def supply_meter(self, info: Info) -> Meter | None:
        if self.supply_meter_id is None:
            return None
        return await info.context.loaders.get(loaders.MeterById).load(self.supply_meter_id)

    @strawberry.field(description="The solar installation of this property, if any.")
    async def solar_installation(self, info: Info) -> SolarInstallation | None:
        loader = info.context.loaders.get(loaders.SolarInstallationByPropertyId)
        return await loader.load(self.id)

    @strawberry.field(description="Monthly solar credits for the months of [from, to].")
    async def solar_credits(
        self, info: Info, from_: FromDay = None, to: ToDay = None
    ) -> list[Annotated[MonthlySolarCredit, Lazy("flows_graphql.types.billing")]]:
        loader = info.context.loaders.get(loaders.SolarCreditsByPropertyId, from_, to)
        return await loader.load(self.id)


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
    esco_id: strawberry.Private[UUID]

    @strawberry.field(description="The ESCO this meter belongs to.")
    async def esco(self, info: Info) -> Annotated[Esco, Lazy("flows_graphql.types.community")]:
        return await info.context.loaders.get(community_loaders.EscoById).load(self.esco_id)

    @strawberry.field(description="The property this meter supplies, if any.")
    async def property(self, info: Info) -> Property | None:
        return await info.context.loaders.get(loaders.PropertyBySupplyMeterId).load(self.id)

    @strawberry.field(description="The circuits this meter measures.")
    async def circuits(self, info: Info) -> list[Circuit]:
        return await info.context.loaders.get(loaders.CircuitsByMeterId).load(self.id)

    @strawberry.field(description="Usage for the months of [from, to], oldest first.")
    async def monthly_usage(
        self, info: Info, from_: FromDay = None, to: ToDay = None
    ) -> list[Annotated[MonthlyUsage, Lazy("flows_graphql.types.billing")]]:
        loader = info.context.loaders.get(billing_loaders.UsageByMeterId, from_, to)
        return await loader.load(self.id)


@strawberry.type(description="A heat, power or solar circuit, measured by meters.")
class Circuit(RowType, Node):
    id: strawberry.ID = global_id("Circuit")
    uuid: UUID = uuid_field()
    type: CircuitType = strawberry.field(description="What the circuit carries.")
    name: str | None = strawberry.field(description="Display name.")

    @strawberry.field(description="The meters connected to this circuit, by serial.")
    async def meters(self, info: Info) -> list[Meter]:
        return await info.context.loaders.get(loaders.MetersByCircuitId).load(self.id)


@strawberry.type(description="The solar installation of a property (at most one).")
class SolarInstallation(RowType, Node):
    id: strawberry.ID = global_id("SolarInstallation", "property_id")
    mcs_certificate: str = strawberry.field(description="MCS certificate number, unique.")
    declared_net_capacity_kw: Decimal | None = strawberry.field(
        description="Declared net capacity in kW; solar credits are proportional to it."
    )
    commissioning_date: date | None = strawberry.field(description="When it was commissioned.")
    property_id: strawberry.Private[UUID]

    @strawberry.field(description="The property it is installed on.")
    async def property(self, info: Info) -> Property:
        return await info.context.loaders.get(loaders.PropertyById).load(self.property_id)


async def _solar(loaders_: Any, key: str) -> Any:
    try:
        return await loaders_.get(loaders.SolarInstallationByPropertyId).load(UUID(key))
    except ValueError:
        return None


register_node("Property", by_uuid(loaders.PropertyById))
register_node("Meter", by_uuid(loaders.MeterById))
register_node("Circuit", by_uuid(loaders.CircuitById))
register_node("SolarInstallation", NodeSource(_solar))
