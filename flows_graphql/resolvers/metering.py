"""Root queries over properties and meters."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import strawberry

from ..context import Context
from ..db.models.enums import MeterMode
from ..loaders.metering import METER_SPEC, METERS, PROPERTIES, PROPERTY_SPEC
from ..types.connection import After, Before, Connection, First, Last, root_connection
from ..types.metering import Meter, Property
from ..types.node import parse_id
from .arguments import esco_id_argument, like_prefix
from .customers import EscoIdArg

Info = strawberry.Info[Context, None]


@strawberry.enum(description="Orders of the property list.")
class PropertyOrder(Enum):
    PLOT = "PLOT"


@strawberry.enum(description="Orders of the meter list.")
class MeterOrder(Enum):
    SERIAL = "SERIAL"


@strawberry.input(description="Narrows the property list; all given conditions apply.")
class PropertyFilter:
    site_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only this site (global id or uuid)."
    )
    plot_prefix: str | None = strawberry.field(default=None, description="Plot starts with this.")


@strawberry.input(description="Narrows the meter list; all given conditions apply.")
class MeterFilter:
    mode: MeterMode | None = strawberry.field(default=None, description="This mode.")
    serial_prefix: str | None = strawberry.field(
        default=None, description="Serial starts with this."
    )


def property_conditions(esco_id: str | None, filter: PropertyFilter | None) -> list[Any]:
    conditions: list[Any] = []
    esco = esco_id_argument(esco_id)
    if esco is not None:
        conditions.append(PROPERTIES.c.esco_id == esco)
    if filter is not None:
        if filter.site_id is not None:
            # An id of anything else matches no site, hence no property.
            conditions.append(PROPERTIES.c.site_id == parse_id(filter.site_id, "Site"))
        if filter.plot_prefix:
            conditions.append(PROPERTIES.c.plot.like(like_prefix(filter.plot_prefix)))
    return conditions


def meter_conditions(esco_id: str | None, filter: MeterFilter | None) -> list[Any]:
    conditions: list[Any] = []
    esco = esco_id_argument(esco_id)
    if esco is not None:
        conditions.append(METERS.c.esco_id == esco)
    if filter is not None:
        if filter.mode is not None:
            conditions.append(METERS.c.mode == filter.mode)
        if filter.serial_prefix:
            conditions.append(METERS.c.serial.like(like_prefix(filter.serial_prefix)))
    return conditions


@strawberry.type
class MeteringQuery:
    @strawberry.field(description="Properties the viewer may see, by plot.")
    async def properties(
        self,
        info: Info,
        esco_id: EscoIdArg = None,
        filter: Annotated[
            PropertyFilter | None, strawberry.argument(description="Conditions.")
        ] = None,
        order_by: Annotated[
            PropertyOrder | None, strawberry.argument(description="Default PLOT.")
        ] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Property]:
        return await root_connection(
            info,
            PROPERTY_SPEC,
            order_by.value if order_by else None,
            property_conditions(esco_id, filter),
            first=first,
            after=after,
            last=last,
            before=before,
        )

    @strawberry.field(description="Meters the viewer may see, by serial.")
    async def meters(
        self,
        info: Info,
        esco_id: EscoIdArg = None,
        filter: Annotated[
            MeterFilter | None, strawberry.argument(description="Conditions.")
        ] = None,
        order_by: Annotated[
            MeterOrder | None, strawberry.argument(description="Default SERIAL.")
        ] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Meter]:
        return await root_connection(
            info,
            METER_SPEC,
            order_by.value if order_by else None,
            meter_conditions(esco_id, filter),
            first=first,
            after=after,
            last=last,
            before=before,
        )
