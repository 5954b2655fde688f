"""Loaders over microgrid, customer and solar-credit tariffs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Date, Select, bindparam, func, select

from ..db.models import CustomerTariff, MicrogridTariff, SolarCreditTariff
from .base import RangeLoader, RowLoader, any_key

CUSTOMER_TARIFFS = CustomerTariff.__table__
MICROGRID_TARIFFS = MicrogridTariff.__table__
SOLAR_TARIFFS = SolarCreditTariff.__table__


class TariffsInForceLoader(RangeLoader):
    """The tariffs of each owner that are in force at some day of [from, to]: those
    starting inside the range, plus the one already in force on `from`."""

    range_column = "period_start"
    order_by = ("period_start",)

    @classmethod
    def base_statement(cls) -> Select[Any]:
        table = cls.table
        earlier = table.alias("earlier")
        owner = cls.key
        start = bindparam("range_from", type_=Date())
        in_force_at_start = (
            select(func.max(earlier.c.period_start))
            .where(earlier.c[owner] == table.c[owner], earlier.c.period_start <= start)
            .scalar_subquery()
        )
        return (
            select(table)
            .where(any_key(table.c[owner]))
            .where(table.c.period_start <= bindparam("range_to", type_=Date()))
            .where(table.c.period_start >= func.coalesce(in_force_at_start, start))
            .order_by(table.c.period_start)
        )


class TariffsByCustomerId(TariffsInForceLoader):
    table = CUSTOMER_TARIFFS
    key = "customer_id"


class MicrogridTariffsByEscoId(TariffsInForceLoader):
    table = MICROGRID_TARIFFS
    key = "esco_id"


class TariffInForceByCustomerId(RowLoader):
    """Each customer's tariff in force on a day (made with that day)."""

    table = CUSTOMER_TARIFFS
    key = "customer_id"

    @classmethod
    def base_statement(cls) -> Select[Any]:
        table = CUSTOMER_TARIFFS
        return (
            select(table)
            .distinct(table.c.customer_id)
            .where(any_key(table.c.customer_id))
            .where(table.c.period_start <= bindparam("on", type_=Date()))
            .order_by(table.c.customer_id, table.c.period_start.desc())
        )

    def bind(self, keys: list[Any]) -> dict[str, Any]:
        (on,) = self.params
        return self.loaders.bind({"keys": keys, "on": on})


class SolarCreditTariffsByEscoId(RowLoader):
    table = SOLAR_TARIFFS
    key = "esco_id"
    many = True
    order_by = ("period_start",)
