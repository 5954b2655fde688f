"""recordMonthlyUsage and importMonthlyUsage through the GraphQL API (rules.md §6).

Prerequisite rows are written with raw SQL. The app's billing clock is fixed at
conftest.TODAY (2025-03-10), so March 2025 is the current month and April the first
future one. `client` signs in as an admin; the role tests sign in as a customer, an
operator or a partner key.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from flows_graphql.auth.viewer import SYSTEM
from flows_graphql.config import Settings
from flows_graphql.db.models.enums import UsageSource
from flows_graphql.services import usage as service
from flows_graphql.services.billing import RUN_LOCK_CLASS
from flows_graphql.services.tx import Tx
from flows_graphql.types.node import to_global_id
from tests.support.api import TODAY, api_key, bearer, call, codes, gql
from tests.support.db import direct_dsn
from tests.support.seed import seed_esco, seed_meters

RECORD = """
mutation ($input: RecordMonthlyUsageInput!) {
  recordMonthlyUsage(input: $input) {
    monthlyUsage { id uuid month powerKwh heatKwh solarKwh source meter { uuid serial } }
    created
    userErrors { field message code }
  }
}
"""

RECORD_BARE = """
mutation ($input: RecordMonthlyUsageInput!) {
  recordMonthlyUsage(input: $input) { created userErrors { field message code } }
}
"""

IMPORT = """
mutation ($input: ImportMonthlyUsageInput!) {
  importMonthlyUsage(input: $input) {
    importedCount createdCount updatedCount unchangedCount
    userErrors { field message code }
  }
}
"""

FINALIZE = """
mutation ($input: FinalizeBillingRunInput!) {
  finalizeBillingRun(input: $input) { billingRun { uuid } userErrors { field message code } }
}
"""

FEB, MAR, APR = date(2025, 2, 1), date(2025, 3, 1), date(2025, 4, 1)


@dataclass
class World:
    esco: uuid.UUID
    meters: list[uuid.UUID]  # serials S0000, S0001, ...
    decommissioned: uuid.UUID  # serial DEAD-1
    other_esco: uuid.UUID
    other_meter: uuid.UUID  # serial OTHER-1


def serial(i: int) -> str:
    return f"S{i:04d}"


async def finalize(raw: asyncpg.Connection, esco: uuid.UUID, month: date, status: str) -> None:
    await raw.execute(
        "INSERT INTO billing_runs (esco_id, month, status, actor) VALUES ($1, $2, $3, 'test')",
        esco,
        month,
        status,
    )


@pytest.fixture
async def world(raw: asyncpg.Connection, engine: AsyncEngine) -> World:
    esco = await seed_esco(raw, "alpha")
    meters = await seed_meters(raw, esco, [serial(i) for i in range(5)])
    (dead,) = await seed_meters(raw, esco, ["DEAD-1"], "decommissioned")
    other_esco = await seed_esco(raw, "beta")
    (other,) = await seed_meters(raw, other_esco, ["OTHER-1"])
    return World(esco, meters, dead, other_esco, other)


def usage_input(meter: uuid.UUID | str, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "meterId": str(meter),
        "month": "2025-02-01",
        "powerKwh": "200.125",
        "heatKwh": "80",
        "solarKwh": "35.5",
    }
    base.update(overrides)
    return base


async def record(client: httpx.AsyncClient, input: dict[str, Any]) -> dict[str, Any]:
    return await call(client, RECORD, input)


async def import_rows(
    client: httpx.AsyncClient, rows: list[dict[str, Any]], **extra: Any
) -> tuple[dict[str, Any], int]:
    body = await gql(client, IMPORT, {"input": {"rows": rows, **extra}})
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["importMonthlyUsage"]
    return result, body["extensions"]["sqlStatements"]


async def counts(raw: asyncpg.Connection) -> tuple[int, int]:
    usage = await raw.fetchval("SELECT count(*) FROM monthly_usage")
    audits = await raw.fetchval("SELECT count(*) FROM audit_log")
    return usage, audits


NOTHING_IMPORTED = {
    "importedCount": 0,
    "createdCount": 0,
    "updatedCount": 0,
    "unchangedCount": 0,
}


# --- recordMonthlyUsage ---------------------------------------------------------------


async def test_record_creates_the_month(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    result = await record(client, usage_input(world.meters[0]))
    assert result["userErrors"] == []
    assert result["created"] is True
    usage = result["monthlyUsage"]
    assert usage["month"] == "2025-02-01"
    assert usage["powerKwh"] == "200.125"
    assert usage["heatKwh"] == "80.000"
    assert usage["solarKwh"] == "35.500"
    assert usage["source"] == "METER"
    assert usage["meter"] == {"uuid": str(world.meters[0]), "serial": "S0000"}
    assert usage["id"] == to_global_id("MonthlyUsage", usage["uuid"])

    row = await raw.fetchrow("SELECT * FROM monthly_usage")
    assert str(row["id"]) == usage["uuid"]
    assert row["esco_id"] == world.esco
    assert row["meter_id"] == world.meters[0]
    assert row["month"] == FEB
    assert (row["power_kwh"], row["heat_kwh"], row["solar_kwh"]) == (
        Decimal("200.125"),
        Decimal("80.000"),
        Decimal("35.500"),
    )
    assert row["source"] == "meter"

    audit = await raw.fetchrow("SELECT * FROM audit_log")
    assert audit["action"] == "recordMonthlyUsage"
    assert audit["entity"] == "monthly_usage"
    assert audit["entity_id"] == usage["uuid"]
    assert audit["esco_id"] == world.esco
    assert audit["actor"] == "user:development"
    assert json.loads(audit["changes"]) == {
        "meter_id": str(world.meters[0]),
        "month": "2025-02-01",
        "changed": {
            "power_kwh": {"old": None, "new": "200.125"},
            "heat_kwh": {"old": None, "new": "80"},
            "solar_kwh": {"old": None, "new": "35.5"},
            "source": {"old": None, "new": "meter"},
        },
    }


async def test_record_replaces_the_month_and_audits_the_change(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    first = await record(client, usage_input(world.meters[0]))
    meter_gid = to_global_id("Meter", world.meters[0])
    second = await record(
        client,
        usage_input(meter_gid, powerKwh="201.000", heatKwh="80", source="ESTIMATE"),
    )
    assert second["userErrors"] == []
    assert second["created"] is False
    assert second["monthlyUsage"]["uuid"] == first["monthlyUsage"]["uuid"]
    assert second["monthlyUsage"]["powerKwh"] == "201.000"
    assert second["monthlyUsage"]["source"] == "ESTIMATE"
    assert await counts(raw) == (1, 2)
    audit = await raw.fetchrow("SELECT changes FROM audit_log ORDER BY created_at DESC, id LIMIT 1")
    # Only what changed (201.000 == 200.125? no; 80 == 80.000: unchanged).
    assert json.loads(audit["changes"])["changed"] == {
        "power_kwh": {"old": "200.125", "new": "201.000"},
        "source": {"old": "meter", "new": "estimate"},
    }


async def test_the_current_month_and_trailing_zeros_are_accepted(
    client: httpx.AsyncClient, world: World
) -> None:
    result = await record(
        client,
        usage_input(world.meters[0], month="2025-03-01", powerKwh="0", heatKwh="1.5000",
                    solarKwh=12),
    )  # fmt: skip
    assert result["userErrors"] == []
    usage = result["monthlyUsage"]
    assert (usage["powerKwh"], usage["heatKwh"], usage["solarKwh"]) == ("0.000", "1.500", "12.000")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"month": "2025-02-15"}, [(["month"], "INVALID")]),
        ({"month": "2025-04-01"}, [(["month"], "FUTURE_MONTH")]),
        ({"month": "2026-01-01"}, [(["month"], "FUTURE_MONTH")]),
        ({"powerKwh": "-0.001"}, [(["powerKwh"], "INVALID")]),
        ({"heatKwh": "1.2345"}, [(["heatKwh"], "INVALID")]),
        ({"powerKwh": "100000000000"}, [(["powerKwh"], "INVALID")]),
        ({"meterId": str(uuid.uuid4())}, [(["meterId"], "NOT_FOUND")]),
        ({"meterId": "garbage"}, [(["meterId"], "NOT_FOUND")]),
        (
            {"month": "2025-02-02", "powerKwh": "-1", "heatKwh": "0.0001"},
            [(["month"], "INVALID"), (["powerKwh"], "INVALID"), (["heatKwh"], "INVALID")],
        ),
    ],
)
async def test_record_refuses_bad_input(
    client: httpx.AsyncClient,
    raw: asyncpg.Connection,
    world: World,
    overrides: dict[str, Any],
    expected: list[tuple[list[str], str]],
) -> None:
    result = await record(client, usage_input(world.meters[0], **overrides))
    assert result["monthlyUsage"] is None
    assert result["created"] is None
    assert codes(result) == expected
    assert await counts(raw) == (0, 0)


async def test_the_largest_value_fits(client: httpx.AsyncClient, world: World) -> None:
    result = await record(client, usage_input(world.meters[0], powerKwh="99999999999.999"))
    assert result["userErrors"] == []
    assert result["monthlyUsage"]["powerKwh"] == "99999999999.999"


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e", "abc"])
async def test_a_quantity_that_is_no_number_is_refused_by_the_scalar(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World, value: str
) -> None:
    body = await gql(client, RECORD, {"input": usage_input(world.meters[0], solarKwh=value)})
    assert body["errors"] and body["data"] is None
    assert await counts(raw) == (0, 0)


async def test_a_meter_id_of_another_type_is_not_found(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    result = await record(client, usage_input(to_global_id("Esco", world.meters[0])))
    assert codes(result) == [(["meterId"], "NOT_FOUND")]
    assert await counts(raw) == (0, 0)


async def test_a_decommissioned_meter_takes_no_usage(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    result = await record(client, usage_input(world.decommissioned))
    assert codes(result) == [(["meterId"], "METER_DECOMMISSIONED")]
    assert await counts(raw) == (0, 0)


async def test_a_finalized_month_is_refused(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    await finalize(raw, world.esco, FEB, "finalized")
    await finalize(raw, world.other_esco, date(2025, 1, 1), "finalized")
    result = await record(client, usage_input(world.meters[0]))
    assert codes(result) == [(["month"], "MONTH_FINALIZED")]
    assert await counts(raw) == (0, 0)
    # Another month of the ESCO, and the same month of another ESCO, are open.
    jan = await record(client, usage_input(world.meters[0], month="2025-01-01"))
    other = await record(client, usage_input(world.other_meter))
    assert jan["userErrors"] == other["userErrors"] == []


async def test_a_completed_run_does_not_freeze_the_month(
    client: httpx.AsyncClient, world: World, raw: asyncpg.Connection
) -> None:
    await finalize(raw, world.esco, FEB, "completed")
    result = await record(client, usage_input(world.meters[0]))
    assert result["userErrors"] == []


# --- importMonthlyUsage ---------------------------------------------------------------


def row(i: int, month: date, *, by_serial: bool, meters: list[uuid.UUID]) -> dict[str, Any]:
    values: dict[str, Any] = {
        "month": month.isoformat(),
        "powerKwh": f"{100 + i}.{i % 1000:03d}",
        "heatKwh": f"{i % 50}.5",
        "solarKwh": "0",
    }
    if by_serial:
        values["meterSerial"] = serial(i)
    else:
        values["meterId"] = str(meters[i])
    return values


async def test_an_import_of_two_thousand_rows_is_set_wise(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    meters = await seed_meters(raw, world.esco, [serial(i) for i in range(5, 1000)])
    all_meters = world.meters + meters
    rows = [
        row(i, month, by_serial=i % 2 == 0, meters=all_meters)
        for month in (date(2025, 1, 1), FEB)
        for i in range(1000)
    ]
    assert len(rows) == 2000

    # A small import first: the statement count must not grow with the rows.
    small, small_statements = await import_rows(client, rows[1000:1010])
    assert small == {
        "importedCount": 10,
        "createdCount": 10,
        "updatedCount": 0,
        "unchangedCount": 0,
        "userErrors": [],
    }
    result, statements = await import_rows(client, rows, escoId=str(world.esco))
    assert result == {
        "importedCount": 2000,
        "createdCount": 1990,
        "updatedCount": 0,
        "unchangedCount": 10,
        "userErrors": [],
    }
    # Constant: tenant setting, meters, month locks, finalized months, upsert, audit,
    # the event-log entry.
    assert small_statements <= 7
    assert statements == small_statements + 1  # + the escoId lookup

    assert await raw.fetchval("SELECT count(*) FROM monthly_usage") == 2000
    totals = await raw.fetchrow(
        "SELECT sum(power_kwh) AS power, sum(heat_kwh) AS heat, count(DISTINCT meter_id) AS n, "
        "bool_and(esco_id = $1) AS same_esco, bool_and(source = 'meter') AS metered "
        "FROM monthly_usage",
        world.esco,
    )
    assert totals["power"] == 2 * sum(Decimal(f"{100 + i}.{i % 1000:03d}") for i in range(1000))
    assert totals["heat"] == 2 * sum(Decimal(f"{i % 50}.5") for i in range(1000))
    assert totals["n"] == 1000
    assert totals["same_esco"] and totals["metered"]
    sample = await raw.fetchrow(
        "SELECT power_kwh, heat_kwh FROM monthly_usage WHERE meter_id = $1 AND month = $2",
        all_meters[123],
        FEB,
    )
    assert (sample["power_kwh"], sample["heat_kwh"]) == (Decimal("223.123"), Decimal("23.500"))

    audits = await raw.fetch("SELECT * FROM audit_log ORDER BY created_at")
    assert len(audits) == 2
    audit = audits[1]
    assert audit["action"] == "importMonthlyUsage"
    assert (audit["entity"], audit["entity_id"], audit["esco_id"]) == (
        "esco",
        str(world.esco),
        world.esco,
    )
    assert json.loads(audit["changes"]) == {
        "rows": 2000,
        "created": 1990,
        "updated": 0,
        "unchanged": 10,
        "meters": 1000,
        "months": ["2025-01-01", "2025-02-01"],
    }

    # Importing again changes nothing; changed rows are counted as updated.
    again, again_statements = await import_rows(client, rows)
    assert again == {
        "importedCount": 2000,
        "createdCount": 0,
        "updatedCount": 0,
        "unchangedCount": 2000,
        "userErrors": [],
    }
    # Nothing written, so nothing for the event log.
    assert again_statements == small_statements - 1
    rows[0] = {**rows[0], "powerKwh": "1.001"}
    rows[1999] = {**rows[1999], "source": "ESTIMATE"}
    changed, _ = await import_rows(client, rows)
    assert (changed["createdCount"], changed["updatedCount"], changed["unchangedCount"]) == (
        0,
        2,
        1998,
    )
    assert await raw.fetchval(
        "SELECT power_kwh FROM monthly_usage WHERE meter_id = $1 AND month = '2025-01-01'",
        all_meters[0],
    ) == Decimal("1.001")
    assert (
        await raw.fetchval(
            "SELECT source::text FROM monthly_usage WHERE meter_id = $1 AND month = $2",
            all_meters[999],
            FEB,
        )
        == "estimate"
    )
    assert await counts(raw) == (2000, 4)


async def test_bad_rows_at_1_and_3_are_reported_and_nothing_is_written(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    rows = [row(i, FEB, by_serial=True, meters=world.meters) for i in range(5)]
    rows[1] = {**rows[1], "meterSerial": "NO-SUCH-METER"}
    rows[3] = {**rows[3], "powerKwh": "-5"}
    result, _ = await import_rows(client, rows)
    assert result == {
        **NOTHING_IMPORTED,
        "userErrors": [
            {
                "field": ["rows", "1", "meterSerial"],
                "message": "No meter with this serial.",
                "code": "NOT_FOUND",
            },
            {
                "field": ["rows", "3", "powerKwh"],
                "message": "Must be a number of kWh, 0 or more.",
                "code": "INVALID",
            },
        ],
    }
    assert await counts(raw) == (0, 0)


async def test_every_kind_of_bad_row_is_reported(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    await finalize(raw, world.esco, date(2025, 1, 1), "finalized")
    m = world.meters
    good = {"month": "2025-02-01", "powerKwh": "1", "heatKwh": "2", "solarKwh": "3"}
    rows: list[dict[str, Any]] = [
        {**good, "meterId": str(m[0])},  # 0: fine
        {**good, "meterId": str(m[1]), "meterSerial": serial(1)},  # 1: both
        {**good},  # 2: neither
        {**good, "meterSerial": "NOPE"},  # 3: unknown serial
        {**good, "meterId": "not-an-id"},  # 4: unparseable id
        {**good, "meterId": str(uuid.uuid4())},  # 5: unknown id
        {**good, "meterSerial": "DEAD-1"},  # 6: decommissioned
        {**good, "meterId": str(m[2]), "month": "2025-04-01"},  # 7: future
        {**good, "meterId": str(m[2]), "month": "2025-02-28"},  # 8: not a 1st
        {**good, "meterId": str(m[2]), "month": "2025-01-01"},  # 9: finalized
        {**good, "meterSerial": serial(0)},  # 10: duplicate of row 0 (by serial)
        {**good, "meterId": str(m[3]), "heatKwh": "0.0001"},  # 11: decimals
        {**good, "meterId": str(m[3]), "month": "2025-03-01", "solarKwh": "-1"},  # 12
        {**good, "meterSerial": "OTHER-1"},  # 13: meter of another ESCO
        {**good, "meterId": str(m[4]), "source": "MANUAL"},  # 14: fine
    ]
    result, _ = await import_rows(client, rows, escoId=to_global_id("Esco", world.esco))
    # In row order; the rows at 0 and 14 are fine.
    assert codes(result) == [
        (["rows", "1", "meterSerial"], "INVALID"),
        (["rows", "2", "meterId"], "INVALID"),
        (["rows", "3", "meterSerial"], "NOT_FOUND"),
        (["rows", "4", "meterId"], "NOT_FOUND"),
        (["rows", "5", "meterId"], "NOT_FOUND"),
        (["rows", "6", "meterSerial"], "METER_DECOMMISSIONED"),
        (["rows", "7", "month"], "FUTURE_MONTH"),
        (["rows", "8", "month"], "INVALID"),
        (["rows", "9", "month"], "MONTH_FINALIZED"),
        (["rows", "10"], "DUPLICATE"),
        (["rows", "11", "heatKwh"], "INVALID"),
        (["rows", "12", "solarKwh"], "INVALID"),
        (["rows", "13", "meterSerial"], "NOT_FOUND"),
    ]
    duplicate = next(e for e in result["userErrors"] if e["code"] == "DUPLICATE")
    assert duplicate["message"] == "Same meter and month as row 0."
    assert result["importedCount"] == 0
    assert await counts(raw) == (0, 0)


async def test_rows_of_several_escos_need_one_esco(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    good = {"month": "2025-02-01", "powerKwh": "1", "heatKwh": "2", "solarKwh": "3"}
    rows = [{**good, "meterSerial": serial(0)}, {**good, "meterSerial": "OTHER-1"}]
    result, _ = await import_rows(client, rows)
    assert codes(result) == [(["escoId"], "INVALID")]
    result, _ = await import_rows(client, rows, escoId=str(world.other_esco))
    assert codes(result) == [(["rows", "0", "meterSerial"], "NOT_FOUND")]
    assert await counts(raw) == (0, 0)


@pytest.mark.parametrize(
    "esco_id", [str(uuid.uuid4()), "garbage", to_global_id("Meter", uuid.uuid4())]
)
async def test_an_unknown_esco_is_not_found(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World, esco_id: str
) -> None:
    rows = [row(0, FEB, by_serial=True, meters=world.meters)]
    result, _ = await import_rows(client, rows, escoId=esco_id)
    assert codes(result) == [(["escoId"], "NOT_FOUND")]
    assert await counts(raw) == (0, 0)


async def test_an_empty_import_is_invalid(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    result, _ = await import_rows(client, [])
    assert codes(result) == [(["rows"], "INVALID")]
    assert await counts(raw) == (0, 0)


async def test_too_many_rows_are_refused(
    client: httpx.AsyncClient,
    raw: asyncpg.Connection,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service, "MAX_IMPORT_ROWS", 3)
    rows = [row(i, FEB, by_serial=True, meters=world.meters) for i in range(4)]
    result, _ = await import_rows(client, rows)
    assert codes(result) == [(["rows"], "INVALID")]
    assert result["userErrors"][0]["message"] == "At most 3 rows per call; split the file."
    assert await counts(raw) == (0, 0)
    result, _ = await import_rows(client, rows[:3])
    assert result["importedCount"] == 3


def test_the_row_limit_is_ten_thousand() -> None:
    assert service.MAX_IMPORT_ROWS == 10_000


# --- billing locks -------------------------------------------------------------------


async def test_a_month_being_billed_is_run_in_progress(
    client: httpx.AsyncClient, raw: asyncpg.Connection, database_url: str, world: World
) -> None:
    """While a billing run (or finalization) of the ESCO-month holds its lock, usage of
    that month is refused at once; other months are not affected."""
    billing = await asyncpg.connect(direct_dsn(database_url))
    try:
        async with billing.transaction():
            await billing.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                RUN_LOCK_CLASS,
                f"{world.esco}|2025-02-01",
            )
            result = await record(client, usage_input(world.meters[0]))
            assert codes(result) == [(["month"], "RUN_IN_PROGRESS")]
            rows = [
                row(0, FEB, by_serial=True, meters=world.meters),
                row(1, date(2025, 1, 1), by_serial=True, meters=world.meters),
            ]
            result, _ = await import_rows(client, rows)
            assert codes(result) == [(["rows", "0", "month"], "RUN_IN_PROGRESS")]
            assert await counts(raw) == (0, 0)
            jan = await record(client, usage_input(world.meters[0], month="2025-01-01"))
            assert jan["userErrors"] == []
    finally:
        await billing.close()
    result = await record(client, usage_input(world.meters[0]))
    assert result["userErrors"] == []


async def test_a_month_cannot_be_finalized_under_a_usage_write(
    client: httpx.AsyncClient, engine: AsyncEngine, raw: asyncpg.Connection, world: World
) -> None:
    """A usage write holds the month's billing lock (shared) until it commits, so the
    month's finalization cannot slip in between its check and its write."""
    run = await raw.fetchval(
        "INSERT INTO billing_runs (esco_id, month, status, actor) "
        "VALUES ($1, '2025-02-01', 'completed', 'test') RETURNING id",
        world.esco,
    )
    finalize_input = {"input": {"billingRunId": str(run)}}
    async with engine.connect() as conn, conn.begin():
        tx = Tx(conn, SYSTEM, lambda: TODAY)
        await service.record_monthly_usage(
            tx, world.meters[0], FEB, Decimal(1), Decimal(2), Decimal(3), UsageSource.METER
        )
        body = await gql(client, FINALIZE, finalize_input)
        assert codes(body["data"]["finalizeBillingRun"]) == [(["billingRunId"], "RUN_IN_PROGRESS")]
    body = await gql(client, FINALIZE, finalize_input)
    assert body["data"]["finalizeBillingRun"]["userErrors"] == []
    assert await raw.fetchval("SELECT count(*) FROM monthly_usage") == 1
    result = await record(client, usage_input(world.meters[0]))
    assert codes(result) == [(["month"], "MONTH_FINALIZED")]


# --- roles and scope ------------------------------------------------------------------


async def test_a_partner_key_writes_usage_of_its_esco_only(
    bare: httpx.AsyncClient, engine: AsyncEngine, raw: asyncpg.Connection, world: World
) -> None:
    feed = await api_key(engine, world.esco, ["usage:write"], "meter feed")
    good = {"month": "2025-02-01", "powerKwh": "1", "heatKwh": "2", "solarKwh": "3"}
    rows = [{**good, "meterSerial": serial(0)}, {**good, "meterSerial": "OTHER-1"}]
    result = await call(bare, IMPORT, {"rows": rows}, feed)
    assert codes(result) == [(["rows", "1", "meterSerial"], "NOT_FOUND")]
    result = await call(bare, IMPORT, {"rows": rows[:1], "escoId": str(world.other_esco)}, feed)
    assert codes(result) == [(["escoId"], "NOT_FOUND")]
    # (A key without `read` may not follow the payload to the meter: docs/privacy.md.)
    result = await call(bare, RECORD_BARE, usage_input(world.other_meter), feed)
    assert codes(result) == [(["meterId"], "NOT_FOUND")]
    assert await counts(raw) == (0, 0)

    result = await call(bare, IMPORT, {"rows": rows[:1]}, feed)
    assert result["userErrors"] == [] and result["createdCount"] == 1
    # (A key without `read` reads nothing, so it asks for no related objects.)
    result = await call(bare, RECORD_BARE, usage_input(world.meters[1]), feed)
    assert result["userErrors"] == [] and result["created"] is True
    actors = {r["actor"] for r in await raw.fetch("SELECT actor FROM audit_log")}
    assert len(actors) == 1 and actors.pop().startswith("partner:")
    assert await counts(raw) == (2, 2)


async def test_who_may_not_write_usage(
    bare: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    raw: asyncpg.Connection,
    world: World,
) -> None:
    customer = await raw.fetchval(
        "INSERT INTO customers (esco_id, email) VALUES ($1, 'c@example.com') RETURNING id",
        world.esco,
    )
    refused = [
        await api_key(engine, world.esco, ["read", "payments:write"], "meter feed"),
        bearer(settings, "customer", sub="c", customer_id=str(customer)),
    ]
    rows = [row(0, FEB, by_serial=True, meters=world.meters)]
    for headers in refused:
        result = await call(bare, IMPORT, {"rows": rows}, headers)
        assert codes(result) == [(None, "FORBIDDEN")]
        result = await call(bare, RECORD, usage_input(world.meters[0]), headers)
        assert codes(result) == [(None, "FORBIDDEN")]
    # An operator of another ESCO does not see the meter.
    operator = bearer(settings, "operator", sub="op", escos=[str(world.other_esco)])
    result = await call(bare, RECORD, usage_input(world.meters[0]), operator)
    assert codes(result) == [(["meterId"], "NOT_FOUND")]
    result = await call(bare, IMPORT, {"rows": rows}, operator)
    assert codes(result) == [(["rows", "0", "meterSerial"], "NOT_FOUND")]
    assert await counts(raw) == (0, 0)
