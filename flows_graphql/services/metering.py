"""Property and metering writes: meters, properties and their supply meters, circuits
and the meters connected to them, solar installations."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from strawberry import Maybe

from ..db.models import (
    Circuit,
    CircuitMeter,
    Meter,
    Property,
    Site,
    SolarInstallation,
    table_of,
)
from ..db.models.enums import CircuitType, MeterMode
from .inputs import LONG_TEXT, flagged, optional_text, required_text
from .problems import ErrorCode, Problems, check_window
from .scope import find_esco
from .tx import Row, Tx, before_of, changed, created

METERS = table_of(Meter)
PROPERTIES = table_of(Property)
SITES = table_of(Site)
CIRCUITS = table_of(Circuit)
LINKS = table_of(CircuitMeter)
SOLAR = table_of(SolarInstallation)

# Bounds of a declared solar capacity: a credit is trunc(kW × days × rate) whole pence,
# and 1000 kW keeps the largest month's credit far inside an int.
MAX_CAPACITY_KW = Decimal(1000)
CAPACITY_PLACES = 3


# --- checks -------------------------------------------------------------------------


async def _check_supply_meter(
    tx: Tx,
    problems: Problems,
    esco_id: uuid.UUID,
    meter_id: uuid.UUID | None,
    property_id: uuid.UUID | None,
) -> None:
    """A meter may become the supply meter of a property when it is of the property's
    ESCO, not decommissioned, and supplies no other property. The meter row is locked
    (shared) so a concurrent decommissioning waits for this transaction, then sees the
    link."""
    meter = await tx.visible(
        METERS,
        meter_id,
        "supplyMeterId",
        "meter",
        problems=problems,
        esco_id=esco_id,
        lock="share",
    )
    if meter is None:
        return
    if meter.mode == MeterMode.DECOMMISSIONED:
        problems.add(
            "supplyMeterId",
            ErrorCode.METER_DECOMMISSIONED,
            "A decommissioned meter cannot become a supply meter.",
        )
        return
    stmt = select(PROPERTIES.c.plot).where(PROPERTIES.c.supply_meter_id == meter.id)
    if property_id is not None:
        stmt = stmt.where(PROPERTIES.c.id != property_id)
    other = await tx.conn.scalar(stmt)
    if other is not None:
        problems.add(
            "supplyMeterId",
            ErrorCode.DUPLICATE,
            f"This meter already supplies property {other}.",
        )


async def _check_plot(
    tx: Tx, problems: Problems, esco_id: uuid.UUID, plot: str, property_id: uuid.UUID | None
) -> None:
    if flagged(problems, "plot"):
        return
    stmt = select(PROPERTIES.c.id).where(PROPERTIES.c.esco_id == esco_id, PROPERTIES.c.plot == plot)
    if property_id is not None:
        stmt = stmt.where(PROPERTIES.c.id != property_id)
    if await tx.conn.scalar(stmt) is not None:
        problems.add(
            "plot", ErrorCode.DUPLICATE, "This ESCO already has a property with this plot."
        )


def _check_capacity(problems: Problems, value: Decimal | None) -> None:
    if value is None:
        return
    if not value.is_finite() or not Decimal(0) <= value <= MAX_CAPACITY_KW:
        problems.add(
            "declaredNetCapacityKw",
            ErrorCode.INVALID,
            f"Must be between 0 and {MAX_CAPACITY_KW} kW.",
        )
    elif value.as_tuple().exponent < -CAPACITY_PLACES:  # type: ignore[operator]
        problems.add(
            "declaredNetCapacityKw",
            ErrorCode.INVALID,
            f"At most {CAPACITY_PLACES} decimal places.",
        )


# --- meters -------------------------------------------------------------------------


async def create_meter(
    tx: Tx,
    esco_id: uuid.UUID | None,
    serial: str,
    name: str | None,
    hardware: str | None,
    mode: MeterMode = MeterMode.ACTIVE,
) -> Row:
    tx.require_role("admin", "operator")
    problems = Problems()
    serial = required_text(problems, "serial", serial)
    name = optional_text(problems, "name", name)
    hardware = optional_text(problems, "hardware", hardware)
    esco = await find_esco(tx, problems, esco_id)
    if not flagged(problems, "serial"):
        # Serials are unique across ESCOs: a meter is one physical device.
        taken = await tx.conn.scalar(select(METERS.c.id).where(METERS.c.serial == serial))
        if taken is not None:
            problems.add("serial", ErrorCode.DUPLICATE, "A meter with this serial already exists.")
    problems.raise_if_any()
    assert esco is not None

    values = {
        "esco_id": esco.id,
        "serial": serial,
        "name": name,
        "hardware": hardware,
        "mode": mode,
    }
    return await tx.insert_audited(METERS, values, "createMeter", "meter", esco.id)


async def update_meter(
    tx: Tx,
    meter_id: uuid.UUID | None,
    name: Maybe[str | None] = None,
    hardware: Maybe[str | None] = None,
    mode: Maybe[MeterMode | None] = None,
) -> Row:
    """Change a meter's name, hardware or mode. Decommissioning (the soft delete) is
    refused while the meter supplies a property: give the property another supply
    meter, or none, first. A decommissioned meter may be brought back."""
    tx.require_role("admin", "operator")
    problems = Problems()
    values: dict[str, Any] = {}
    if name is not None:
        values["name"] = optional_text(problems, "name", name.value)
    if hardware is not None:
        values["hardware"] = optional_text(problems, "hardware", hardware.value)
    if mode is not None:
        if mode.value is None:
            problems.add("mode", ErrorCode.INVALID, "Must be ACTIVE, PASSIVE or DECOMMISSIONED.")
        else:
            values["mode"] = mode.value
    # Locked: a property taking this meter as supply meter meanwhile waits, then sees
    # the new mode (see _check_supply_meter).
    meter = await tx.visible(
        METERS, meter_id, "meterId", "meter", problems=problems, lock="no key update"
    )
    if (
        meter is not None
        and values.get("mode") == MeterMode.DECOMMISSIONED
        and meter.mode != MeterMode.DECOMMISSIONED
    ):
        plot = await tx.conn.scalar(
            select(PROPERTIES.c.plot).where(PROPERTIES.c.supply_meter_id == meter.id)
        )
        if plot is not None:
            problems.add(
                "mode",
                ErrorCode.INVALID,
                f"This meter supplies property {plot}; give the property another supply "
                "meter (or none) before decommissioning it.",
            )
    problems.raise_if_any()
    assert meter is not None

    return await tx.update_audited(METERS, meter, values, "updateMeter", "meter", meter.esco_id)


# --- properties ---------------------------------------------------------------------


async def create_property(
    tx: Tx,
    esco_id: uuid.UUID | None,
    plot: str,
    address: str | None,
    site_id: uuid.UUID | None = None,
    supply_meter_id: uuid.UUID | None = None,
) -> Row:
    """A new property, optionally behind a site and with a supply meter."""
    tx.require_role("admin", "operator")
    problems = Problems()
    plot = required_text(problems, "plot", plot)
    address = optional_text(problems, "address", address, LONG_TEXT)
    esco = await find_esco(tx, problems, esco_id)
    if esco is not None:
        await _check_plot(tx, problems, esco.id, plot, None)
        if site_id is not None:
            await tx.visible(SITES, site_id, "siteId", "site", problems=problems, esco_id=esco.id)
        if supply_meter_id is not None:
            await _check_supply_meter(tx, problems, esco.id, supply_meter_id, None)
    problems.raise_if_any()
    assert esco is not None

    values = {
        "esco_id": esco.id,
        "plot": plot,
        "address": address,
        "site_id": site_id,
        "supply_meter_id": supply_meter_id,
    }
    if supply_meter_id is not None:
        await _date_supply_change(tx)
    return await tx.insert_audited(PROPERTIES, values, "createProperty", "property", esco.id)


async def update_property(
    tx: Tx,
    property_id: uuid.UUID | None,
    plot: Maybe[str | None] = None,
    address: Maybe[str | None] = None,
    site_id: Maybe[uuid.UUID | None] = None,
    supply_meter_id: Maybe[uuid.UUID | None] = None,
) -> Row:
    """Change a property's plot, address, site or supply meter (a field left out is
    kept; `Some(None)` clears the last three; a plot cannot be cleared)."""
    tx.require_role("admin", "operator")
    problems = Problems()
    values: dict[str, Any] = {}
    if plot is not None:
        if plot.value is None:
            problems.add("plot", ErrorCode.INVALID, "A property must have a plot.")
        else:
            values["plot"] = required_text(problems, "plot", plot.value)
    if address is not None:
        values["address"] = optional_text(problems, "address", address.value, LONG_TEXT)
    prop = await tx.visible(
        PROPERTIES,
        property_id,
        "propertyId",
        "property",
        problems=problems,
        lock="no key update",
    )
    if prop is not None:
        if "plot" in values and values["plot"] != prop.plot:
            await _check_plot(tx, problems, prop.esco_id, values["plot"], prop.id)
        if site_id is not None:
            site = values["site_id"] = site_id.value
            if site is not None and site != prop.site_id:
                await tx.visible(
                    SITES, site, "siteId", "site", problems=problems, esco_id=prop.esco_id
                )
        if supply_meter_id is not None:
            meter = values["supply_meter_id"] = supply_meter_id.value
            if meter is not None and meter != prop.supply_meter_id:
                await _check_supply_meter(tx, problems, prop.esco_id, meter, prop.id)
    problems.raise_if_any()
    assert prop is not None

    if "supply_meter_id" in values and values["supply_meter_id"] != prop.supply_meter_id:
        await _date_supply_change(tx)
    return await tx.update_audited(
        PROPERTIES, prop, values, "updateProperty", "property", prop.esco_id
    )


async def _date_supply_change(tx: Tx) -> None:
    """The supply history is written by a trigger on `properties` (db/models/supply.py);
    it dates a change by the billing clock, which only the application knows."""
    await tx.conn.execute(select(func.set_config("flows.today", tx.today().isoformat(), True)))


# --- circuits -----------------------------------------------------------------------


async def create_circuit(
    tx: Tx, esco_id: uuid.UUID | None, type: CircuitType, name: str | None
) -> Row:
    tx.require_role("admin", "operator")
    problems = Problems()
    name = optional_text(problems, "name", name)
    esco = await find_esco(tx, problems, esco_id)
    problems.raise_if_any()
    assert esco is not None

    values = {"esco_id": esco.id, "type": type, "name": name}
    return await tx.insert_audited(CIRCUITS, values, "createCircuit", "circuit", esco.id)


async def _circuit_and_meter(
    tx: Tx, circuit_id: uuid.UUID | None, meter_id: uuid.UUID | None
) -> tuple[Problems, Row | None, Row | None]:
    """The circuit and a meter of its ESCO (locked shared, so it cannot be
    decommissioned meanwhile)."""
    problems = Problems()
    circuit = await tx.visible(CIRCUITS, circuit_id, "circuitId", "circuit", problems=problems)
    meter = await tx.visible(
        METERS,
        meter_id,
        "meterId",
        "meter",
        problems=problems,
        esco_id=circuit.esco_id if circuit is not None else None,
        lock="share",
    )
    return problems, circuit, meter


async def connect_circuit(
    tx: Tx, circuit_id: uuid.UUID | None, meter_id: uuid.UUID | None
) -> tuple[Row, Row]:
    """Connect a meter to a circuit it measures. Connecting them again changes nothing
    (and succeeds); a decommissioned meter is not connected."""
    tx.require_role("admin", "operator")
    problems, circuit, meter = await _circuit_and_meter(tx, circuit_id, meter_id)
    if meter is not None and meter.mode == MeterMode.DECOMMISSIONED:
        problems.add(
            "meterId",
            ErrorCode.METER_DECOMMISSIONED,
            "A decommissioned meter cannot be connected to a circuit.",
        )
    problems.raise_if_any()
    assert circuit is not None and meter is not None

    values = {"circuit_id": circuit.id, "meter_id": meter.id, "esco_id": circuit.esco_id}
    inserted = (
        await tx.conn.execute(
            insert(CircuitMeter)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["circuit_id", "meter_id"])
            .returning(LINKS.c.circuit_id)
        )
    ).first()
    await tx.audit(
        "connectCircuit",
        "circuit_meter",
        f"{circuit.id}|{meter.id}",
        created(values) if inserted is not None else {"changed": {}},
        circuit.esco_id,
    )
    return circuit, meter


async def disconnect_circuit(
    tx: Tx, circuit_id: uuid.UUID | None, meter_id: uuid.UUID | None
) -> tuple[Row, Row]:
    tx.require_role("admin", "operator")
    problems, circuit, meter = await _circuit_and_meter(tx, circuit_id, meter_id)
    problems.raise_if_any()
    assert circuit is not None and meter is not None

    removed = (
        await tx.conn.execute(
            delete(LINKS)
            .where(LINKS.c.circuit_id == circuit.id, LINKS.c.meter_id == meter.id)
            .returning(LINKS.c.circuit_id)
        )
    ).first()
    if removed is None:
        problems.add("meterId", ErrorCode.NOT_FOUND, "This meter is not connected to this circuit.")
        problems.raise_if_any()
    await tx.audit(
        "disconnectCircuit",
        "circuit_meter",
        f"{circuit.id}|{meter.id}",
        {"removed": {"circuit_id": circuit.id, "meter_id": meter.id}},
        circuit.esco_id,
    )
    return circuit, meter


# --- solar --------------------------------------------------------------------------


async def set_solar_installation(
    tx: Tx,
    property_id: uuid.UUID | None,
    mcs_certificate: str,
    declared_net_capacity_kw: Maybe[Decimal | None] = None,
    commissioning_date: Maybe[date | None] = None,
) -> Row:
    """Create or replace the solar installation of a property (0 or 1 per property).
    Optional fields left out (None) keep their stored value (none on a new
    installation); `Some(None)` clears them."""
    tx.require_role("admin", "operator")
    problems = Problems()
    mcs_certificate = required_text(problems, "mcsCertificate", mcs_certificate)
    values: dict[str, Any] = {"mcs_certificate": mcs_certificate}
    if declared_net_capacity_kw is not None:
        _check_capacity(problems, declared_net_capacity_kw.value)
        values["declared_net_capacity_kw"] = declared_net_capacity_kw.value
    if commissioning_date is not None:
        if commissioning_date.value is not None:
            check_window(problems, "commissioningDate", commissioning_date.value, tx.today())
        values["commissioning_date"] = commissioning_date.value
    prop = await tx.visible(
        PROPERTIES,
        property_id,
        "propertyId",
        "property",
        problems=problems,
        lock="no key update",
    )
    if prop is not None and not flagged(problems, "mcsCertificate"):
        other = await tx.conn.scalar(
            select(SOLAR.c.property_id).where(
                SOLAR.c.mcs_certificate == mcs_certificate, SOLAR.c.property_id != prop.id
            )
        )
        if other is not None:
            problems.add(
                "mcsCertificate",
                ErrorCode.DUPLICATE,
                "Another solar installation has this MCS certificate.",
            )
    problems.raise_if_any()
    assert prop is not None

    existing = (await tx.conn.execute(select(SOLAR).where(SOLAR.c.property_id == prop.id))).first()
    if existing is None:
        new = {
            "declared_net_capacity_kw": None,
            "commissioning_date": None,
            **values,
        }
        row = (
            await tx.conn.execute(
                insert(SolarInstallation)
                .values(property_id=prop.id, esco_id=prop.esco_id, **new)
                .returning(SOLAR)
            )
        ).one()
        changes = created({"property_id": prop.id, **new})
    else:
        changes = changed(before_of(existing, values), values)
        row = existing
        if changes["changed"]:
            row = (
                await tx.conn.execute(
                    update(SOLAR)
                    .where(SOLAR.c.property_id == prop.id)
                    .values({k: values[k] for k in changes["changed"]})
                    .returning(SOLAR)
                )
            ).one()
    await tx.audit("setSolarInstallation", "solar_installation", prop.id, changes, prop.esco_id)
    return row
