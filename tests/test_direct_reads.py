"""Loader reads past SQLAlchemy's execution layer (flows_graphql/db/direct.py): the rows
are what SQLAlchemy would have returned, value for value and type for type, and a
statement SQLAlchemy must render itself is left to it."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from flows_graphql.db.direct import compile_direct
from flows_graphql.db.models import ApiKey, Meter
from flows_graphql.db.models.enums import MeterMode
from flows_graphql.loaders.billing import UsageByMeterId
from flows_graphql.loaders.metering import MeterById
from tests.support import factories as f

METERS = Meter.__table__


async def both(engine: AsyncEngine, statement: Any, params: dict[str, Any]) -> tuple[Any, Any]:
    """The rows of `statement` through SQLAlchemy and through db/direct.py."""
    compiled = compile_direct(statement, engine.dialect)
    assert compiled is not None
    async with engine.connect() as conn:
        through_sqlalchemy = (await conn.execute(statement, params)).all()
        driver = (await conn.get_raw_connection()).driver_connection
        records = await driver.fetch(compiled.sql, *compiled.arguments(params))
    return through_sqlalchemy, compiled.rows(records)


async def test_rows_are_sqlalchemys_value_for_value(engine: AsyncEngine, raw: Any) -> None:
    esco = await f.build_esco(raw, "direct", customers=3, months=2)
    await raw.execute("UPDATE meters SET mode = 'passive' WHERE id = $1", esco.meter_ids[1])
    statement = MeterById.base_statement()
    expected, rows = await both(engine, statement, {"keys": esco.meter_ids})
    assert len(rows) == len(expected) == 3
    by_id = {row.id: row for row in rows}
    for want in expected:
        got = by_id[want.id]
        assert got._fields == want._fields
        for name in want._fields:
            value, wanted = getattr(got, name), getattr(want, name)
            assert value == wanted, name
            if isinstance(wanted, uuid.UUID):
                # asyncpg's UUID: a uuid.UUID, equal and hashing alike.
                assert isinstance(value, uuid.UUID) and hash(value) == hash(wanted)
            else:
                assert type(value) is type(wanted), name
    # Enums come back as the model's enum, as SQLAlchemy gives them.
    assert by_id[esco.meter_ids[1]].mode is MeterMode.PASSIVE
    assert by_id[esco.meter_ids[0]].mode is MeterMode.ACTIVE


async def test_joined_and_ranged_statements_agree(engine: AsyncEngine, raw: Any) -> None:
    esco = await f.build_esco(raw, "ranged", customers=2, months=3)
    statement = UsageByMeterId.base_statement()
    params = {"keys": esco.meter_ids, "range_from": esco.months[1], "range_to": esco.months[2]}
    expected, rows = await both(engine, statement, params)
    assert [tuple(r) for r in rows] == [tuple(r) for r in expected]
    assert {row.month for row in rows} == {esco.months[1], esco.months[2]}
    assert [row.power_kwh for row in rows] == [row.power_kwh for row in expected]


async def test_literals_in_a_statement_are_bound(engine: AsyncEngine, raw: Any) -> None:
    esco = await f.build_esco(raw, "literal", customers=3, months=1)
    await raw.execute("UPDATE meters SET mode = 'passive' WHERE id = $1", esco.meter_ids[2])
    statement = select(METERS.c.id, METERS.c.mode).where(METERS.c.mode == MeterMode.PASSIVE)
    expected, rows = await both(engine, statement, {})
    assert [(row.id, row.mode) for row in rows] == [(esco.meter_ids[2], MeterMode.PASSIVE)]
    assert rows == [tuple(row) for row in expected]


def test_what_sqlalchemy_must_render_stays_with_it(engine: AsyncEngine) -> None:
    dialect = engine.dialect
    # An ARRAY column has a result processor of its own.
    assert compile_direct(select(ApiKey.__table__), dialect) is None
    # IN with a list is expanded by SQLAlchemy at execution time.
    assert compile_direct(select(METERS.c.id).where(METERS.c.serial.in_(["a"])), dialect) is None
    # Two columns of one name cannot both be attributes of a row.
    assert compile_direct(select(METERS.c.id, METERS.c.id.label("id")), dialect) is None
    assert compile_direct(MeterById.base_statement(), dialect) is not None
