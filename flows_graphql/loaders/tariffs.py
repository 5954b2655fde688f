"""Loaders over microgrid, customer and solar-credit tariffs."""

from __future__ import annotations

from datetime import date
from typing import Any, ClassVar

from sqlalchemy import Date, FromClause, Select, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on

from ..db.models import BenchmarkTariff, CustomerTariff, MicrogridTariff, SolarCreditTariff
from .base import TEXT_ARRAY, UUID_ARRAY, BaseLoader, RangeLoader, RowLoader, any_key

CUSTOMER_TARIFFS = CustomerTariff.__table__
MICROGRID_TARIFFS = MicrogridTariff.__table__
SOLAR_TARIFFS = SolarCreditTariff.__table__
BENCHMARK_TARIFFS = BenchmarkTariff.__table__


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
            .ext(distinct_on(table.c.customer_id))
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


class ByOwnerAndStart(BaseLoader):
    """Tariffs by (owner, period_start) keys, all in one statement (for node ids)."""

    table: ClassVar[FromClause]
    owner: ClassVar[str]
    owner_type: ClassVar[Any] = UUID_ARRAY
    scope_column: ClassVar[str | None] = "esco_id"

    async def batch_load_fn(self, keys: list[tuple[Any, date]]) -> list[Any]:
        table = self.table
        # Owners x starts may match a few rows not asked for; they are dropped below.
        stmt = select(table).where(
            any_key(table.c[self.owner], "owners", self.owner_type),
            any_key(table.c.period_start, "starts", ARRAY(Date())),
        )
        stmt = self.loaders.restrict(stmt, table, self.scope_column)
        params = {"owners": list({k[0] for k in keys}), "starts": list({k[1] for k in keys})}
        rows = await self.loaders.db.rows(stmt, self.loaders.bind(params))
        found = {(getattr(row, self.owner), row.period_start): row for row in rows}
        return [found.get(key) for key in keys]


class CustomerTariffByKey(ByOwnerAndStart):
    table = CUSTOMER_TARIFFS
    owner = "customer_id"


class MicrogridTariffByKey(ByOwnerAndStart):
    table = MICROGRID_TARIFFS
    owner = "esco_id"


class SolarCreditTariffByKey(ByOwnerAndStart):
    table = SOLAR_TARIFFS
    owner = "esco_id"


class BenchmarkTariffByKey(ByOwnerAndStart):
    table = BENCHMARK_TARIFFS
    owner = "region_code"
    owner_type = TEXT_ARRAY
    scope_column = None
