"""Loaders over properties, meters, circuits and solar installations."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select

from ..db.models import (
    Circuit,
    CircuitMeter,
    Meter,
    MonthlySolarCredit,
    Property,
    SolarInstallation,
)
from ..pagination import SortKey, parse_datetime, parse_text
from .base import ConnectionSpec, CountLoader, PageLoader, RangeLoader, RowLoader, any_key

PROPERTIES = Property.__table__
METERS = Meter.__table__
CIRCUITS = Circuit.__table__
CIRCUIT_METER = CircuitMeter.__table__
SOLAR = SolarInstallation.__table__
SOLAR_CREDITS = MonthlySolarCredit.__table__


class PropertyById(RowLoader):
    table = PROPERTIES
    key = "id"


class PropertyBySupplyMeterId(RowLoader):
    table = PROPERTIES
    key = "supply_meter_id"


class MeterById(RowLoader):
    table = METERS
    key = "id"


class CircuitById(RowLoader):
    table = CIRCUITS
    key = "id"


class CircuitsByMeterId(RowLoader):
    table = CIRCUIT_METER
    key = "meter_id"
    many = True

    @classmethod
    def base_statement(cls) -> Select[Any]:
        return (
            select(CIRCUITS, CIRCUIT_METER.c.meter_id)
            .join(CIRCUIT_METER, CIRCUIT_METER.c.circuit_id == CIRCUITS.c.id)
            .where(any_key(CIRCUIT_METER.c.meter_id))
            .order_by(CIRCUITS.c.type, CIRCUITS.c.id)
        )


class MetersByCircuitId(RowLoader):
    table = CIRCUIT_METER
    key = "circuit_id"
    many = True

    @classmethod
    def base_statement(cls) -> Select[Any]:
        return (
            select(METERS, CIRCUIT_METER.c.circuit_id)
            .join(CIRCUIT_METER, CIRCUIT_METER.c.meter_id == METERS.c.id)
            .where(any_key(CIRCUIT_METER.c.circuit_id))
            .order_by(METERS.c.serial)
        )


class SolarInstallationByPropertyId(RowLoader):
    table = SOLAR
    key = "property_id"


class SolarCreditsByPropertyId(RangeLoader):
    table = SOLAR_CREDITS
    key = "property_id"
    range_column = "month"
    order_by = ("month",)


class SolarCreditById(RowLoader):
    table = SOLAR_CREDITS
    key = "id"


PROPERTY_SORTS = {
    "PLOT": SortKey("PLOT", lambda: PROPERTIES.c.plot, parse_text),
    "UPDATED_AT": SortKey("UPDATED_AT", lambda: PROPERTIES.c.updated_at, parse_datetime),
}
PROPERTY_SPEC = ConnectionSpec(PROPERTIES, PROPERTY_SORTS, "PLOT")
METER_SORTS = {
    "SERIAL": SortKey("SERIAL", lambda: METERS.c.serial, parse_text),
    "UPDATED_AT": SortKey("UPDATED_AT", lambda: METERS.c.updated_at, parse_datetime),
}
METER_SPEC = ConnectionSpec(METERS, METER_SORTS, "SERIAL")


class PropertiesByEscoId(PageLoader):
    spec = PROPERTY_SPEC
    parent = "esco_id"


class PropertiesBySiteId(PageLoader):
    spec = PROPERTY_SPEC
    parent = "site_id"


class PropertyCountByEscoId(CountLoader):
    spec = PROPERTY_SPEC
    parent = "esco_id"


class PropertyCountBySiteId(CountLoader):
    spec = PROPERTY_SPEC
    parent = "site_id"


class MetersByEscoId(PageLoader):
    spec = METER_SPEC
    parent = "esco_id"


class MeterCountByEscoId(CountLoader):
    spec = METER_SPEC
    parent = "esco_id"
