"""The demo data set: what `serve --demo` shows a new user, billed by the real service."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from flows_graphql.db.models import metadata
from flows_graphql.demo import DEMO_ESCO, USAGE_MONTHS, bill_demo, seed_demo
from tests.support import SEEDED_TABLES
from tests.support.api import bearer, gql

TODAY = date(2025, 3, 10)


async def test_demo_is_a_whole_billed_community(engine, sessionmaker, raw, client):
    async with sessionmaker() as session, session.begin():
        summary = await seed_demo(session, today=TODAY)
    runs = await bill_demo(engine, today=TODAY)

    assert summary.esco_codes == [DEMO_ESCO, "riverside"]
    assert await raw.fetchval("SELECT count(DISTINCT region_code) FROM escos") == 2
    assert await raw.fetchval("SELECT count(*) FROM properties") >= 60
    assert await raw.fetchval("SELECT count(*) FROM customers") >= 60
    assert await raw.fetchval(
        "SELECT count(*) FROM properties p JOIN meters m ON m.id = p.supply_meter_id"
    ) == await raw.fetchval("SELECT count(*) FROM properties")
    assert await raw.fetchval("SELECT count(*) FROM solar_installation") > 0
    assert await raw.fetchval("SELECT count(*) FROM customer_accounts WHERE role = 'owner'") > 0
    assert (
        await raw.fetchval("SELECT count(*) FROM customer_accounts WHERE end_date IS NOT NULL") >= 1
    )
    # Eight quarters of benchmarks for each ESCO's region, the latest in force today.
    assert await raw.fetchval("SELECT count(*) FROM benchmark_tariffs") == 16
    assert await raw.fetchval("SELECT max(period_start) FROM benchmark_tariffs") == date(2025, 1, 1)
    assert await raw.fetchval("SELECT count(DISTINCT month) FROM monthly_usage") == USAGE_MONTHS
    assert await raw.fetchval("SELECT count(*) FROM payments") > 0

    # Every month of both ESCOs is billed; all but the last two are finalized.
    assert runs == 2 * USAGE_MONTHS
    statuses = dict(
        await raw.fetch("SELECT status::text, count(*) FROM billing_runs GROUP BY status")
    )
    assert statuses == {"finalized": 2 * (USAGE_MONTHS - 2), "completed": 4}
    assert await raw.fetchval("SELECT count(*) FROM monthly_costs") == await raw.fetchval(
        "SELECT count(*) FROM monthly_usage"
    )
    assert await raw.fetchval("SELECT bool_and(total > 0) FROM monthly_costs")

    # The README's dashboard query shows 50 customers with a year of billed usage.
    body = await gql(
        client,
        """{ esco(code: "solarvale") { customers(first: 50) { nodes { email
            accounts { account { property { supplyMeter { monthlyUsage(from: "2024-03-01")
            { month costs { total } } } } } } } } } }""",
    )
    customers = body["data"]["esco"]["customers"]["nodes"]
    assert len(customers) == 50
    usage = customers[0]["accounts"][0]["account"]["property"]["supplyMeter"]["monthlyUsage"]
    assert len(usage) == USAGE_MONTHS
    assert all(u["costs"] is not None for u in usage)


async def test_demo_is_deterministic(engine, sessionmaker, raw):
    async with sessionmaker() as session, session.begin():
        await seed_demo(session, today=TODAY)
    first = await raw.fetchval(
        "SELECT md5(string_agg(serial || ':' || coalesce(name, ''), ',' ORDER BY serial)) "
        "FROM meters"
    )
    usage = await raw.fetchval(
        "SELECT md5(string_agg(meter_id::text || month || power_kwh, ',' "
        "ORDER BY meter_id, month)) FROM monthly_usage"
    )
    tables = ", ".join(t.name for t in metadata.sorted_tables if t.name not in SEEDED_TABLES)
    await raw.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    async with sessionmaker() as session, session.begin():
        await seed_demo(session, today=TODAY)
    assert first == await raw.fetchval(
        "SELECT md5(string_agg(serial || ':' || coalesce(name, ''), ',' ORDER BY serial)) "
        "FROM meters"
    )
    assert usage == await raw.fetchval(
        "SELECT md5(string_agg(meter_id::text || month || power_kwh, ',' "
        "ORDER BY meter_id, month)) FROM monthly_usage"
    )


def readme_customer_example() -> str:
    """The customer's query of README.md, as a reader would paste it."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    blocks = re.findall(r"```graphql\n(.*?)```", readme, re.S)
    (block,) = [b for b in blocks if b.lstrip().startswith("{\n  viewer {")]
    return block


async def test_readme_customer_example_shows_data(engine, sessionmaker, settings, client):
    """The README's customer query, with the demo's customer token, shows their home:
    its meter's circuits, a year of usage with costs, and their bills."""
    async with sessionmaker() as session, session.begin():
        summary = await seed_demo(session, today=TODAY)
    await bill_demo(engine, today=TODAY)
    headers = bearer(settings, "customer", sub="demo", customer_id=str(summary.customer_id))
    body = await gql(client, readme_customer_example(), headers=headers)
    assert "errors" not in body, body
    customer = body["data"]["viewer"]["customer"]
    (link,) = [a for a in customer["accounts"] if a["role"] == "OCCUPIER" and not a["endDate"]]
    meter = link["account"]["property"]["supplyMeter"]
    assert {c["type"] for c in meter["circuits"]} >= {"HEAT", "POWER"}
    assert meter["monthlyUsage"] and all(u["costs"] is not None for u in meter["monthlyUsage"])
    assert {u["month"] for u in meter["monthlyUsage"]} == {
        c["month"] for c in customer["monthlyCosts"]
    }
    assert link["account"]["events"]["nodes"]
    assert {e["actor"] for e in link["account"]["events"]["nodes"]} <= {"system", "operator", "you"}
