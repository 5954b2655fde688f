"""Root queries and mutations over properties, meters, circuits and solar
installations."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated

import strawberry

from ..context import Context
from ..db.models.enums import CircuitType, MeterMode
from ..loaders.metering import METER_SPEC, METERS, PROPERTIES, PROPERTY_SPEC
from ..services import metering as service
from ..types.errors import UserError
from ..types.filters import (
    MeterFilter,
    MeterOrder,
    PropertyFilter,
    PropertyOrder,
    meter_filter,
    property_filter,
)
from ..types.metering import Circuit, Meter, Property, SolarInstallation
from ..types.node import parse_id
from .arguments import maybe_id, optional_id
from .lists import esco_rows
from .mutation import run

Info = strawberry.Info[Context, None]


@strawberry.type
class MeteringQuery:
    properties = esco_rows(
        Property,
        PROPERTY_SPEC,
        PROPERTIES,
        PropertyFilter,
        property_filter,
        PropertyOrder,
        description="Properties the viewer may see, by plot.",
        filter_description="Only the properties that meet all of these conditions.",
        order_description="Default PLOT.",
    )

    meters = esco_rows(
        Meter,
        METER_SPEC,
        METERS,
        MeterFilter,
        meter_filter,
        MeterOrder,
        description="Meters the viewer may see, by serial.",
        filter_description="Only the meters that meet all of these conditions.",
        order_description="Default SERIAL.",
    )


# --- mutations ----------------------------------------------------------------------


@strawberry.input(description="A new meter of an ESCO.")
class CreateMeterInput:
    esco_id: strawberry.ID = strawberry.field(description="The ESCO (global id or uuid).")
    serial: str = strawberry.field(description="Serial number, unique across all ESCOs.")
    name: str | None = strawberry.field(default=None, description="Display name.")
    hardware: str | None = strawberry.field(default=None, description="Make and model.")
    mode: MeterMode = strawberry.field(default=MeterMode.ACTIVE, description="Default ACTIVE.")


@strawberry.type(description="The result of createMeter.")
class CreateMeterPayload:
    meter: Meter | None = strawberry.field(description="The new meter.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(description="Changes to a meter; fields left out are kept.")
class UpdateMeterInput:
    meter_id: strawberry.ID = strawberry.field(description="The meter (global id or uuid).")
    name: strawberry.Maybe[str | None] = strawberry.field(
        description="Display name; null clears it."
    )
    hardware: strawberry.Maybe[str | None] = strawberry.field(
        description="Make and model; null clears it."
    )
    mode: strawberry.Maybe[MeterMode | None] = strawberry.field(
        description="DECOMMISSIONED is the soft delete, refused while the meter supplies a "
        "property.",
    )


@strawberry.type(description="The result of updateMeter.")
class UpdateMeterPayload:
    meter: Meter | None = strawberry.field(description="The meter as it is now.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(description="A new property of an ESCO.")
class CreatePropertyInput:
    esco_id: strawberry.ID = strawberry.field(description="The ESCO (global id or uuid).")
    plot: str = strawberry.field(description="Plot reference, unique within the ESCO.")
    address: str | None = strawberry.field(default=None, description="Postal address.")
    site_id: strawberry.ID | None = strawberry.field(
        default=None, description="A site of the same ESCO (global id or uuid)."
    )
    supply_meter_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="A meter of the same ESCO, not decommissioned and supplying no other "
        "property (global id or uuid).",
    )


@strawberry.type(description="The result of createProperty.")
class CreatePropertyPayload:
    property: Property | None = strawberry.field(description="The new property.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(description="Changes to a property; fields left out are kept.")
class UpdatePropertyInput:
    property_id: strawberry.ID = strawberry.field(description="The property (global id or uuid).")
    plot: strawberry.Maybe[str | None] = strawberry.field(
        description="Plot reference, unique within the ESCO."
    )
    address: strawberry.Maybe[str | None] = strawberry.field(
        description="Postal address; null clears it."
    )
    site_id: strawberry.Maybe[strawberry.ID | None] = strawberry.field(
        description="A site of the same ESCO; null clears it."
    )
    supply_meter_id: strawberry.Maybe[strawberry.ID | None] = strawberry.field(
        description="A meter of the same ESCO, not decommissioned and supplying no other "
        "property; null clears it.",
    )


@strawberry.type(description="The result of updateProperty.")
class UpdatePropertyPayload:
    property: Property | None = strawberry.field(description="The property as it is now.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(description="A new circuit of an ESCO.")
class CreateCircuitInput:
    esco_id: strawberry.ID = strawberry.field(description="The ESCO (global id or uuid).")
    type: CircuitType = strawberry.field(description="What the circuit carries.")
    name: str | None = strawberry.field(default=None, description="Display name.")


@strawberry.type(description="The result of createCircuit.")
class CreateCircuitPayload:
    circuit: Circuit | None = strawberry.field(description="The new circuit.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(description="A circuit and a meter of the same ESCO.")
class CircuitMeterInput:
    circuit_id: strawberry.ID = strawberry.field(description="The circuit (global id or uuid).")
    meter_id: strawberry.ID = strawberry.field(description="The meter (global id or uuid).")


@strawberry.type(description="The result of connectCircuit.")
class ConnectCircuitPayload:
    circuit: Circuit | None = strawberry.field(description="The circuit.")
    meter: Meter | None = strawberry.field(description="The meter now connected to it.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.type(description="The result of disconnectCircuit.")
class DisconnectCircuitPayload:
    circuit: Circuit | None = strawberry.field(description="The circuit.")
    meter: Meter | None = strawberry.field(description="The meter no longer connected to it.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(
    description="The solar installation of a property: created, or replaced if it has one."
)
class SetSolarInstallationInput:
    property_id: strawberry.ID = strawberry.field(description="The property (global id or uuid).")
    mcs_certificate: str = strawberry.field(description="MCS certificate number, unique.")
    declared_net_capacity_kw: strawberry.Maybe[Decimal | None] = strawberry.field(
        description="Declared net capacity, 0..1000 kW, at most 3 dp; left out: kept (none "
        "when new); null clears it.",
    )
    commissioning_date: strawberry.Maybe[date | None] = strawberry.field(
        description="When it was commissioned; left out: kept (none when new); null clears it.",
    )


@strawberry.type(description="The result of setSolarInstallation.")
class SetSolarInstallationPayload:
    solar_installation: SolarInstallation | None = strawberry.field(
        description="The installation as it is now."
    )
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.type
class Mutations:
    @strawberry.mutation(description="Create a meter of an ESCO.")
    async def create_meter(
        self,
        info: Info,
        input: Annotated[
            CreateMeterInput,
            strawberry.argument(
                description="The ESCO, and the new meter's serial, name, hardware and mode."
            ),
        ],
    ) -> CreateMeterPayload:
        row, errors = await run(
            info,
            lambda tx: service.create_meter(
                tx,
                parse_id(input.esco_id, "Esco"),
                input.serial,
                input.name,
                input.hardware,
                input.mode,
            ),
        )
        return CreateMeterPayload(meter=row, user_errors=errors)

    @strawberry.mutation(
        description="Change a meter's name, hardware or mode (DECOMMISSIONED is the soft delete)."
    )
    async def update_meter(
        self,
        info: Info,
        input: Annotated[
            UpdateMeterInput,
            strawberry.argument(
                description="The meter and the fields to change; fields left out are kept."
            ),
        ],
    ) -> UpdateMeterPayload:
        row, errors = await run(
            info,
            lambda tx: service.update_meter(
                tx,
                parse_id(input.meter_id, "Meter"),
                name=input.name,
                hardware=input.hardware,
                mode=input.mode,
            ),
        )
        return UpdateMeterPayload(meter=row, user_errors=errors)

    @strawberry.mutation(description="Create a property of an ESCO.")
    async def create_property(
        self,
        info: Info,
        input: Annotated[
            CreatePropertyInput,
            strawberry.argument(
                description="The ESCO, and the new property's plot, address, site and supply meter."
            ),
        ],
    ) -> CreatePropertyPayload:
        row, errors = await run(
            info,
            lambda tx: service.create_property(
                tx,
                parse_id(input.esco_id, "Esco"),
                input.plot,
                input.address,
                site_id=optional_id(input.site_id, "Site"),
                supply_meter_id=optional_id(input.supply_meter_id, "Meter"),
            ),
        )
        return CreatePropertyPayload(property=row, user_errors=errors)

    @strawberry.mutation(description="Change a property's plot, address, site or supply meter.")
    async def update_property(
        self,
        info: Info,
        input: Annotated[
            UpdatePropertyInput,
            strawberry.argument(
                description="The property and the fields to change; fields left out are kept."
            ),
        ],
    ) -> UpdatePropertyPayload:
        row, errors = await run(
            info,
            lambda tx: service.update_property(
                tx,
                parse_id(input.property_id, "Property"),
                plot=input.plot,
                address=input.address,
                site_id=maybe_id(input.site_id, "Site"),
                supply_meter_id=maybe_id(input.supply_meter_id, "Meter"),
            ),
        )
        return UpdatePropertyPayload(property=row, user_errors=errors)

    @strawberry.mutation(description="Create a heat, power or solar circuit of an ESCO.")
    async def create_circuit(
        self,
        info: Info,
        input: Annotated[
            CreateCircuitInput,
            strawberry.argument(description="The ESCO, and the new circuit's type and name."),
        ],
    ) -> CreateCircuitPayload:
        row, errors = await run(
            info,
            lambda tx: service.create_circuit(
                tx, parse_id(input.esco_id, "Esco"), input.type, input.name
            ),
        )
        return CreateCircuitPayload(circuit=row, user_errors=errors)

    @strawberry.mutation(
        description="Connect a meter to a circuit it measures; connecting them again "
        "changes nothing."
    )
    async def connect_circuit(
        self,
        info: Info,
        input: Annotated[
            CircuitMeterInput,
            strawberry.argument(description="The circuit and the meter that it measures."),
        ],
    ) -> ConnectCircuitPayload:
        result, errors = await run(
            info,
            lambda tx: service.connect_circuit(
                tx, parse_id(input.circuit_id, "Circuit"), parse_id(input.meter_id, "Meter")
            ),
        )
        circuit, meter = result if result is not None else (None, None)
        return ConnectCircuitPayload(circuit=circuit, meter=meter, user_errors=errors)

    @strawberry.mutation(description="Disconnect a meter from a circuit.")
    async def disconnect_circuit(
        self,
        info: Info,
        input: Annotated[
            CircuitMeterInput,
            strawberry.argument(description="The circuit and the meter it no longer measures."),
        ],
    ) -> DisconnectCircuitPayload:
        result, errors = await run(
            info,
            lambda tx: service.disconnect_circuit(
                tx, parse_id(input.circuit_id, "Circuit"), parse_id(input.meter_id, "Meter")
            ),
        )
        circuit, meter = result if result is not None else (None, None)
        return DisconnectCircuitPayload(circuit=circuit, meter=meter, user_errors=errors)

    @strawberry.mutation(
        description="Create or replace the solar installation of a property (at most one)."
    )
    async def set_solar_installation(
        self,
        info: Info,
        input: Annotated[
            SetSolarInstallationInput,
            strawberry.argument(
                description="The property, and its installation's certificate, capacity "
                "and commissioning date."
            ),
        ],
    ) -> SetSolarInstallationPayload:
        row, errors = await run(
            info,
            lambda tx: service.set_solar_installation(
                tx,
                parse_id(input.property_id, "Property"),
                input.mcs_certificate,
                declared_net_capacity_kw=input.declared_net_capacity_kw,
                commissioning_date=input.commissioning_date,
            ),
        )
        return SetSolarInstallationPayload(solar_installation=row, user_errors=errors)
