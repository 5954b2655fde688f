"""Filters and orders on nested connections (the same as the root lists'), payments
and billing runs filtered, and the text-prefix filters served by their indexes."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql

from flows_graphql.loaders.customers import CUSTOMERS
from flows_graphql.loaders.metering import METERS, PROPERTIES
from flows_graphql.types import filters
from tests.support import factories as f
from tests.support.api import TENANT, gql


async def payments(raw: Any, esco: f.EscoData, i: int, n: int) -> list[uuid.UUID]:
    """n payments of customer i, one a day from 2024-03-01 12:00 UTC, alternately
    succeeded and failed."""
    ids = []
    for k in range(n):
        pid = uuid.uuid4()
        await raw.execute(
            "INSERT INTO payments (id, esco_id, customer_id, account_id, amount_pence, status,"
            " created_at, idempotency_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            pid,
            esco.id,
            esco.customer_ids[i],
            esco.account_ids[i],
            100 + k,
            "succeeded" if k % 2 == 0 else "failed",
            datetime(2024, 3, 1, 12, tzinfo=UTC) + timedelta(days=k),
            uuid.uuid4().hex,
        )
        ids.append(pid)
    return ids


PAYMENTS = """
query($f: PaymentFilter, $o: PaymentOrder) { esco(code: "flt") { customers(first: 50) {
  nodes { email payments(filter: $f, orderBy: $o, first: 3) {
    totalCount nodes { amountPence status createdAt } } } } } }"""


async def test_customer_payments_filtered_and_ordered(client, raw):
    counts = []
    for n in (2, 6):
        await raw.execute("TRUNCATE escos CASCADE")
        esco = await f.build_esco(raw, "flt", customers=n, months=1)
        for i in range(n):
            await payments(raw, esco, i, 10)
        body = await gql(
            client,
            PAYMENTS,
            {"f": {"status": "SUCCEEDED", "from": "2024-03-03", "to": "2024-03-08"}, "o": "OLDEST"},
        )
        assert "errors" not in body, body
        for customer in body["data"]["esco"]["customers"]["nodes"]:
            page = customer["payments"]
            # Succeeded (even k) and created 3..8 March: k = 2, 4, 6; oldest first.
            assert page["totalCount"] == 3
            assert [p["amountPence"] for p in page["nodes"]] == [102, 104, 106]
            assert {p["status"] for p in page["nodes"]} == {"SUCCEEDED"}
        counts.append(body["extensions"]["sqlStatements"])
    # esco, customers, their payment pages, the counts: whatever the number of customers.
    assert counts == [TENANT + 4] * 2, counts
    body = await gql(client, PAYMENTS, {"o": "NEWEST"})
    first = body["data"]["esco"]["customers"]["nodes"][0]["payments"]
    assert first["totalCount"] == 10
    assert [p["amountPence"] for p in first["nodes"]] == [109, 108, 107]


async def test_nested_lists_take_the_root_lists_filters(client, raw):
    esco = await f.build_esco(raw, "flt", customers=12, months=1)
    await raw.execute(
        "UPDATE customers SET status = 'suspended' WHERE id = ANY($1::uuid[])",
        esco.customer_ids[3:6],
    )
    await raw.execute(
        "UPDATE meters SET mode = 'passive' WHERE id = ANY($1::uuid[])", esco.meter_ids[:4]
    )
    cases = [
        (
            "customers",
            "CustomerFilter",
            "CustomerOrder",
            {"status": "ACTIVE"},
            "CREATED_AT",
            "email",
        ),
        ("customers", "CustomerFilter", "CustomerOrder", {"emailPrefix": "FLT.00"}, None, "email"),
        ("properties", "PropertyFilter", "PropertyOrder", {"plotPrefix": "P01"}, "PLOT", "plot"),
        ("meters", "MeterFilter", "MeterOrder", {"mode": "PASSIVE"}, "SERIAL", "serial"),
    ]
    for field, filter_type, order_type, value, order, key in cases:
        text = f"""query($e: ID!, $f: {filter_type}, $o: {order_type}) {{
          root: {field}(escoId: $e, filter: $f, orderBy: $o, first: 50) {{
            totalCount nodes {{ {key} }} }}
          esco(code: "flt") {{ nested: {field}(filter: $f, orderBy: $o, first: 50) {{
            totalCount nodes {{ {key} }} }} }} }}"""
        body = await gql(client, text, {"e": str(esco.id), "f": value, "o": order})
        assert "errors" not in body, body
        root, nested = body["data"]["root"], body["data"]["esco"]["nested"]
        assert nested == root, (field, value)
        assert 0 < root["totalCount"] < 12, (field, value, root)
    # Filtered counts, by hand: 9 active, 10 emails starting "flt.00", plots P010/P011, 4 passive.
    body = await gql(
        client,
        """{ esco(code: "flt") { a: customers(filter: {status: ACTIVE}) { totalCount }
             e: customers(filter: {emailPrefix: "Flt.00"}) { totalCount }
             p: properties(filter: {plotPrefix: "P01"}) { totalCount nodes { plot } }
             m: meters(filter: {mode: PASSIVE}) { totalCount } } }""",
    )
    got = body["data"]["esco"]
    assert [got[k]["totalCount"] for k in "aepm"] == [9, 10, 2, 4]
    assert [n["plot"] for n in got["p"]["nodes"]] == ["P010", "P011"]


async def test_billing_runs_filtered_by_status_and_months(client, raw):
    esco = await f.build_esco(raw, "flt", customers=1, months=6)
    await raw.execute(
        "UPDATE billing_runs SET status = 'finalized' WHERE id = ANY($1::uuid[])",
        esco.billing_run_ids[:3],
    )
    body = await gql(
        client,
        """{ esco(code: "flt") {
             f: billingRuns(filter: {status: FINALIZED, from: "2024-02-15"}) {
               totalCount nodes { month status } }
             r: billingRuns(filter: {from: "2024-03-01", to: "2024-04-30"}) {
               nodes { month } } } }""",
    )
    assert "errors" not in body, body
    got = body["data"]["esco"]
    assert got["f"]["totalCount"] == 2
    assert [n["month"] for n in got["f"]["nodes"]] == ["2024-03-01", "2024-02-01"]
    assert [n["month"] for n in got["r"]["nodes"]] == ["2024-04-01", "2024-03-01"]


PLANS = {
    "ix_customers_esco_id_lower_email_pattern": (
        CUSTOMERS,
        filters.customer_filter(filters.CustomerFilter(email_prefix="Ab_c", status=None)),
    ),
    "ix_properties_esco_id_plot_pattern": (
        PROPERTIES,
        filters.property_filter(filters.PropertyFilter(plot_prefix="P0")),
    ),
    "ix_meters_esco_id_serial_pattern": (
        METERS,
        filters.meter_filter(filters.MeterFilter(serial_prefix="FLT-M")),
    ),
}


@pytest.mark.parametrize("index", list(PLANS))
async def test_text_prefix_filters_are_served_by_an_index(raw, engine, index):
    """The conditions the filters make can use their index (the planner is kept off
    sequential scans, since a test table is small enough to scan)."""
    table, conditions = PLANS[index]
    esco = await f.build_esco(raw, "flt", customers=3, months=1)
    stmt = select(table.c.id).where(table.c.esco_id == esco.id, *conditions)
    sql = str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    scratch = raw.transaction()
    await scratch.start()
    try:
        await raw.execute("SET LOCAL enable_seqscan = off")
        await raw.execute("SET LOCAL enable_bitmapscan = on")
        # On a table this small the planner's choice among the indexes that lead with
        # esco_id is a coin toss that differs between PostgreSQL versions; the question
        # is whether this one serves the prefix, so the others go (rolled back below).
        others = await raw.fetch(
            "SELECT indexname FROM pg_indexes WHERE tablename = $1 AND indexname <> $2"
            " AND indexname NOT IN (SELECT conname FROM pg_constraint)",
            table.name,
            index,
        )
        for other in others:
            await raw.execute(f'DROP INDEX "{other["indexname"]}"')
        plan = "\n".join(r[0] for r in await raw.fetch(f"EXPLAIN {sql}"))
    finally:
        await scratch.rollback()
    assert index in plan, plan
    assert "Index Cond" in plan and "~>=~" in plan, plan  # the prefix is an index range


async def test_ranged_lists_hold_24_months_by_default(client, raw):
    """Without `from`, a ranged list holds the 24 months up to `to` or the current
    month (the test clock reads 2025-03-10); `from` given, the range is as asked."""
    await f.build_esco(raw, "flt", customers=1, months=30, first_month=date(2022, 10, 1))
    body = await gql(
        client,
        """{ meters(first: 1) { nodes {
             all: monthlyUsage { month }
             upTo: monthlyUsage(to: "2024-06-30") { month }
             asked: monthlyUsage(from: "2022-01-01") { month } } }
           customers(first: 1) { nodes { monthlyCosts { month } } } }""",
    )
    assert "errors" not in body, body
    meter = body["data"]["meters"]["nodes"][0]
    months = [u["month"] for u in meter["all"]]
    assert (months[0], months[-1], len(months)) == ("2023-04-01", "2025-03-01", 24)
    up_to = [u["month"] for u in meter["upTo"]]
    assert (up_to[0], up_to[-1], len(up_to)) == ("2022-10-01", "2024-06-01", 21)
    assert len(meter["asked"]) == 30
    costs = body["data"]["customers"]["nodes"][0]["monthlyCosts"]
    assert [c["month"] for c in costs] == months


async def test_a_range_ending_in_year_one_is_empty_not_internal(client, raw):
    await f.build_esco(raw, "flt", customers=1, months=1)
    body = await gql(
        client,
        """{ escos(first: 1) { nodes { monthlySummaries(to: "0001-03-01") { month }
             microgridTariffs(to: "0001-01-01") { periodStart } } } }""",
    )
    assert "errors" not in body, body
    assert body["data"]["escos"]["nodes"][0] == {"monthlySummaries": [], "microgridTariffs": []}
