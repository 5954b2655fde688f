"""Tariff publication and monthly billing through the public API, on the worked
examples of rules.md (exact decimals), plus re-runs, finalization and concurrency."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from decimal import Decimal as D

import pytest

from flows_graphql.app import create_app
from tests.support.api import asgi_client, bearer, gql
from tests.support.billing import (
    RUN,
    SET_DISCOUNT,
    SET_MICROGRID,
    SET_SOLAR,
    Community,
    homes,
    priced_example,
    publish,
    run_billing,
    set_solar_credit,
)

FINALIZE = """
mutation F($input: FinalizeBillingRunInput!) {
  finalizeBillingRun(input: $input) {
    billingRun { status }
    userErrors { field code }
  }
}"""


async def test_billing_example_of_rules_md_to_the_last_decimal(april, raw):
    community = await priced_example(april, raw)
    result = await run_billing(april, community)
    assert result["userErrors"] == []
    run = result["billingRun"]
    assert (run["month"], run["status"], run["customersBilled"]) == ("2025-03-01", "COMPLETED", 1)
    assert D(run["total"]) == D("75.23224")
    [costs] = run["costs"]["nodes"]
    assert {k: D(costs[k]) for k in ("power", "heat", "standingCharge", "total")} == {
        "power": D("42.262"),
        "heat": D("16.9048"),
        "standingCharge": D("16.06544"),
        "total": D("75.23224"),
    }
    assert {k: D(v) for k, v in costs["microgrid"].items()} == {
        "power": D("39.776"),
        "heat": D("15.9104"),
        "standingCharge": D("15.12056"),
        "total": D("70.80696"),
    }
    assert {k: D(v) for k, v in costs["benchmark"].items()} == {
        "power": D("49.72"),
        "heat": D("19.888"),
        "standingCharge": D("18.9007"),
        "total": D("88.5087"),
    }
    assert D(costs["savings"]) == D("88.5087") - D("75.23224")
    assert costs["customer"]["email"] == "home001@example.org"
    assert costs["usage"]["solarKwh"] == "35.000"  # recorded, not billed
    # No solar tariff yet: the installation is credited 0, and the 0 is recorded.
    assert run["solarCredits"]["nodes"] == [{"creditPence": 0, "property": {"plot": "Plot 001"}}]


async def test_current_month_bills_standing_charge_month_to_date(client, raw):
    # The test client's clock reads 2025-03-10.
    community = await priced_example(client, raw)
    run = (await run_billing(client, community))["billingRun"]
    [costs] = run["costs"]["nodes"]
    assert D(costs["standingCharge"]) == D("0.51824") * 10
    assert D(costs["benchmark"]["standingCharge"]) == D("6.097")


async def test_solar_credits_example_of_rules_md(april, raw):
    community = await Community(raw).create()
    await community.home(1, solar_kw="4.2")
    await community.home(2, solar_kw="2.37")
    await community.home(3, solar_kw="0")
    await publish(april)
    result = await set_solar_credit(april, community, "5475")
    assert result["solarCreditTariff"] == {
        "creditPencePerYear": "5475",
        "creditPencePerDay": "15",
    }
    run = (await run_billing(april, community))["billingRun"]
    credits = {n["property"]["plot"]: n["creditPence"] for n in run["solarCredits"]["nodes"]}
    assert credits == {"Plot 001": 1953, "Plot 002": 1102, "Plot 003": 0}


async def test_publishing_generates_then_changes_nothing_then_recomputes(client, raw):
    community = await Community(raw).create()
    await community.home(1)
    await community.home(2)
    await community.home(3, occupied=False)
    first = await publish(client)
    assert first["userErrors"] == []
    assert first["generation"] == {
        "microgridTariffsCreated": 1,
        "microgridTariffsRecomputed": 0,
        "customerTariffsCreated": 2,
        "customerTariffsRecomputed": 0,
    }
    rows = await raw.fetch(
        "SELECT discount_percent, unit_rate, standing_charge FROM customer_tariffs"
    )
    # No earlier tariff: the ESCO's default microgrid discount (25) applies.
    assert {tuple(r) for r in rows} == {(25, D("0.18645"), D("0.45727"))}
    again = await publish(client)
    assert again["generation"] == {
        "microgridTariffsCreated": 0,
        "microgridTariffsRecomputed": 0,
        "customerTariffsCreated": 0,
        "customerTariffsRecomputed": 0,
    }
    corrected = await publish(client, unit="0.3000")
    assert corrected["generation"]["microgridTariffsRecomputed"] == 1
    assert corrected["generation"]["customerTariffsRecomputed"] == 2
    assert {r["unit_rate"] for r in await raw.fetch("SELECT unit_rate FROM customer_tariffs")} == {
        D("0.22500")
    }


async def test_rerun_replaces_the_month_and_finalize_freezes_it(april, raw):
    community = await priced_example(april, raw)
    first = (await run_billing(april, community))["billingRun"]
    second = (await run_billing(april, community))["billingRun"]
    assert first["uuid"] != second["uuid"]
    assert await raw.fetchval("SELECT count(*) FROM monthly_costs") == 1
    assert await raw.fetchval("SELECT count(*) FROM monthly_solar_credits") == 1
    assert await raw.fetchval("SELECT billing_run_id FROM monthly_costs") == uuid.UUID(
        second["uuid"]
    )

    stale = await gql(april, FINALIZE, {"input": {"billingRunId": first["id"]}})
    assert stale["data"]["finalizeBillingRun"]["userErrors"] == [
        {"field": ["billingRunId"], "code": "INVALID"}
    ]
    final = await gql(april, FINALIZE, {"input": {"billingRunId": second["id"]}})
    assert final["data"]["finalizeBillingRun"] == {
        "billingRun": {"status": "FINALIZED"},
        "userErrors": [],
    }
    refused = await run_billing(april, community)
    assert refused["billingRun"] is None
    assert refused["userErrors"][0]["code"] == "MONTH_FINALIZED"
    assert await raw.fetchval("SELECT total FROM monthly_costs") == D("75.23224")
    again = await gql(april, FINALIZE, {"input": {"billingRunId": second["id"]}})
    assert again["data"]["finalizeBillingRun"]["userErrors"][0]["code"] == "MONTH_FINALIZED"


HOT_TABLES = ("monthly_costs", "monthly_solar_credits")
UPDATES = """
SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
 WHERE relname IN ('monthly_costs', 'monthly_solar_credits')"""


async def _updates(raw) -> dict[str, tuple[int, int]]:
    await raw.execute("SELECT pg_stat_clear_snapshot()")
    return {r["relname"]: (r["n_tup_upd"], r["n_tup_hot_upd"]) for r in await raw.fetch(UPDATES)}


async def test_a_rerun_updates_the_months_rows_in_place(april, raw):
    """No index on billing_run_id and half of each page free (docs/billing-runs.md): a
    re-run's updates are HOT, writing no index entry."""
    community = await priced_example(april, raw)
    await run_billing(april, community)
    rows = "SELECT id, billing_run_id FROM {} ORDER BY id"
    first = {t: await raw.fetch(rows.format(t)) for t in HOT_TABLES}
    before = await _updates(raw)
    second_run = (await run_billing(april, community))["billingRun"]
    # The same rows carry the new run's id: the re-run updated them, not deleted and
    # re-inserted them.
    for t in HOT_TABLES:
        again = await raw.fetch(rows.format(t))
        assert [r["id"] for r in again] == [r["id"] for r in first[t]]
        assert {r["billing_run_id"] for r in again} == {uuid.UUID(second_run["uuid"])}
    # A backend reports its counts when it goes idle, at most once a second, and a
    # backend kept open (by PgBouncer, say) can hold an earlier test's counts for up to
    # ten seconds; those are re-runs too. So the window holds at least this re-run's one
    # update per table, and every update in it was HOT.
    for _ in range(150):
        after = await _updates(raw)
        if all(after[t][0] > before[t][0] for t in HOT_TABLES):
            break
        await asyncio.sleep(0.1)
    deltas = {t: (after[t][0] - before[t][0], after[t][1] - before[t][1]) for t in HOT_TABLES}
    assert all(upd >= 1 and hot == upd for upd, hot in deltas.values()), deltas
    fillfactors = await raw.fetch(
        "SELECT relname, reloptions FROM pg_class"
        " WHERE relname IN ('monthly_costs', 'monthly_solar_credits') ORDER BY relname"
    )
    assert [(r["relname"], r["reloptions"]) for r in fillfactors] == [
        ("monthly_costs", ["fillfactor=50"]),
        ("monthly_solar_credits", ["fillfactor=50"]),
    ]


RUN_COSTS = """
query Q($id: ID!, $after: String) {
  node(id: $id) { ... on BillingRun {
    month
    costs(first: 2, after: $after) {
      totalCount pageInfo { hasNextPage endCursor } nodes { usage { month } customer { email } }
    }
    solarCredits(first: 5) { totalCount nodes { creditPence } }
  } }
}"""


async def test_a_runs_costs_are_those_of_its_month_and_its_own(april, raw):
    """A run's costs and credits are found by its month (billing_run_id has no index):
    another month's run keeps its own, and a run billed again has none left."""
    community = await homes(april, raw, 3)
    for meter in community.meters:
        await raw.execute(
            "INSERT INTO monthly_usage (esco_id, meter_id, month, power_kwh, heat_kwh, solar_kwh)"
            " VALUES ($1, $2, '2025-02-01', 100, 40, 10)",
            community.esco_id,
            meter,
        )
    february = (await run_billing(april, community, "2025-02-01"))["billingRun"]
    first = (await run_billing(april, community))["billingRun"]
    second = (await run_billing(april, community))["billingRun"]

    async def costs(run: dict, after: str | None = None) -> dict:
        body = await gql(april, RUN_COSTS, {"id": run["id"], "after": after})
        return body["data"]["node"]

    emails = ["home001@example.org", "home002@example.org", "home003@example.org"]
    for run, month in ((february, "2025-02-01"), (second, "2025-03-01")):
        page = await costs(run)
        assert page["month"] == month
        assert page["costs"]["totalCount"] == 3
        assert page["costs"]["pageInfo"]["hasNextPage"] is True
        rest = await costs(run, page["costs"]["pageInfo"]["endCursor"])
        assert rest["costs"]["pageInfo"]["hasNextPage"] is False
        nodes = page["costs"]["nodes"] + rest["costs"]["nodes"]
        assert [n["usage"]["month"] for n in nodes] == [month] * 3
        assert sorted(n["customer"]["email"] for n in nodes) == emails
        assert page["solarCredits"]["totalCount"] == 1
    replaced = await costs(first)
    assert replaced["costs"] == {
        "totalCount": 0,
        "pageInfo": {"hasNextPage": False, "endCursor": None},
        "nodes": [],
    }
    assert replaced["solarCredits"] == {"totalCount": 0, "nodes": []}


async def test_skipped_meters_are_reported_with_their_reason(april, raw):
    community = await priced_example(april, raw)
    await community.home(2, occupied=False)
    _, no_tariff = await community.home(3)
    run = (await run_billing(april, community))["billingRun"]
    assert run["customersBilled"] == 1
    assert sorted((s["reason"], s["meter"]["serial"]) for s in run["skipped"]) == [
        ("NO_OCCUPIER", f"M-{community.esco_id.hex[:6]}-002"),
        ("NO_TARIFF", f"M-{community.esco_id.hex[:6]}-003"),
    ]
    assert no_tariff is not None


@pytest.mark.parametrize(
    ("month", "code"),
    [("2025-05-01", "FUTURE_MONTH"), ("2025-03-15", "INVALID")],
)
async def test_bad_months_are_refused(april, raw, month, code):
    community = await priced_example(april, raw)
    result = await run_billing(april, community, month)
    assert result["billingRun"] is None
    assert result["userErrors"][0]["code"] == code
    assert result["userErrors"][0]["field"] == ["month"]
    assert await raw.fetchval("SELECT count(*) FROM billing_runs") == 0


async def test_unknown_esco_is_not_found(april):
    body = await gql(april, RUN, {"input": {"escoId": str(uuid.uuid4()), "month": "2025-03-01"}})
    assert body["data"]["runBilling"]["userErrors"][0] == {
        "field": ["escoId"],
        "code": "NOT_FOUND",
        "message": "No ESCO with this id.",
    }


async def test_no_tariff_before_a_benchmark_is_in_force(client, raw):
    community = await Community(raw).create()
    body = await gql(
        client,
        SET_MICROGRID,
        {
            "input": {
                "escoId": str(community.esco_id),
                "periodStart": "2025-01-01",
                "discountPercent": 20,
            }
        },
    )
    assert body["data"]["setMicrogridTariff"] == {
        "microgridTariff": None,
        "userErrors": [{"field": ["periodStart"], "code": "NO_BENCHMARK"}],
    }
    assert await raw.fetchval("SELECT count(*) FROM microgrid_tariffs") == 0
    assert await raw.fetchval("SELECT count(*) FROM audit_log") == 0


async def test_concurrent_runs_of_one_month_leave_one_set_of_costs(april, raw):
    community = await homes(april, raw, 29)
    results = await asyncio.gather(*(run_billing(april, community) for _ in range(3)))
    outcomes = sorted("ok" if r["billingRun"] else r["userErrors"][0]["code"] for r in results)
    assert outcomes[-1] == "ok"
    assert set(outcomes) <= {"ok", "RUN_IN_PROGRESS"}
    assert await raw.fetchval("SELECT count(*) FROM monthly_costs") == 29
    assert await raw.fetchval("SELECT count(DISTINCT billing_run_id) FROM monthly_costs") == 1
    assert await raw.fetchval("SELECT sum(total) FROM monthly_costs") == D("75.23224") * 29


async def test_billing_runs_a_constant_number_of_statements(april, raw):
    small = await Community(raw).create("small")
    await small.home(1, solar_kw="3")
    big = await Community(raw).create("big")
    for n in range(1, 41):
        await big.home(n, solar_kw="3")
    await publish(april)  # prices every occupier of both
    counts = []
    for community in (small, big):
        body = await gql(
            april,
            "mutation R($input: RunBillingInput!) { runBilling(input: $input) "
            "{ billingRun { customersBilled } userErrors { code } } }",
            {"input": {"escoId": str(community.esco_id), "month": "2025-03-01"}},
        )
        counts.append(body["extensions"]["sqlStatements"])
        assert body["data"]["runBilling"]["billingRun"]["customersBilled"] in (1, 40)
    # 1 home or 40, the same statements. The run's transaction: its settings (tenant,
    # statement timeout, client check), ESCO, lock, finalized?, microgrid, benchmark, usage, solar
    # tariff, installations, 2 deletes, costs (one batch), credits, run update, audit;
    # the run's row (tenant, stale rows, insert) and two progress reports (tenant,
    # update) each committed apart — no round trip per customer.
    assert counts == [22, 22]


async def test_customer_tariff_examples_of_rules_md_through_the_api(client, raw):
    community = await Community(raw).create()
    await community.home(1)
    await publish(client)
    customer = str(community.customers[0])
    expected = {0: ("0.24860", "0.60970"), 100: ("0.00000", "0.00000"), 15: ("0.21131", "0.51824")}
    for discount, (unit, standing) in expected.items():
        body = await gql(
            client,
            SET_DISCOUNT,
            {
                "input": {
                    "customerId": customer,
                    "periodStart": "2025-01-01",
                    "discountPercent": discount,
                }
            },
        )
        assert body["data"]["setCustomerDiscount"]["customerTariff"] == {
            "discountPercent": discount,
            "unitRate": unit,
            "standingCharge": standing,
        }


async def test_carry_forward_example_of_rules_md_through_the_api(april, raw):
    """X had 15 % from 2025-01-01 and keeps it; Y's latest tariff (2024-07-01) is outside
    the window, so Y gets the ESCO's microgrid discount from 2025-04-01 (carried from
    its 2025-01-01 tariff: 20 %)."""
    community = await Community(raw).create()
    _, x = await community.home(1)
    _, y = await community.home(2)
    await publish(april, start="2024-07-01")
    await publish(april, start="2025-01-01")
    esco = str(community.esco_id)
    await gql(
        april,
        SET_MICROGRID,
        {"input": {"escoId": esco, "periodStart": "2025-01-01", "discountPercent": 20}},
    )
    await gql(
        april,
        SET_DISCOUNT,
        {"input": {"customerId": str(x), "periodStart": "2025-01-01", "discountPercent": 15}},
    )
    # Y's tariff from 2025-01-01 would be inside the window: take it away, as in the example.
    await raw.execute(
        "DELETE FROM customer_tariffs WHERE customer_id = $1 AND period_start = '2025-01-01'", y
    )
    result = await publish(april, unit="0.25", standing="0.6", start="2025-04-01")
    assert result["generation"]["customerTariffsCreated"] == 2
    rows = dict(
        await raw.fetch(
            "SELECT customer_id, discount_percent FROM customer_tariffs "
            "WHERE period_start = '2025-04-01'"
        )
    )
    assert rows == {x: 15, y: 20}
    assert (
        await raw.fetchval(
            "SELECT discount_percent FROM microgrid_tariffs WHERE period_start = '2025-04-01'"
        )
        == 20
    )


async def test_leap_year_solar_credit_example_through_the_api(settings, database_url, engine, raw):
    """February 2024 at 5490 p/year from 2024-01-01 (5490/366 = 15 p/day): 4.2 kW → 1827."""
    app = create_app(settings, database_url, today=lambda: date(2024, 3, 20))
    async with asgi_client(app, bearer(settings, "admin")) as client:
        community = await Community(raw).create()
        await community.home(1, solar_kw="4.2", month=date(2024, 2, 1))
        await publish(client, start="2024-01-01")
        body = await gql(
            client,
            SET_SOLAR,
            {
                "input": {
                    "escoId": str(community.esco_id),
                    "periodStart": "2024-01-01",
                    "creditPencePerYear": "5490",
                }
            },
        )
        assert body["data"]["setSolarCreditTariff"]["solarCreditTariff"] == {
            "creditPencePerYear": "5490",
            "creditPencePerDay": "15",
        }
        run = (await run_billing(client, community, "2024-02-01"))["billingRun"]
        assert [n["creditPence"] for n in run["solarCredits"]["nodes"]] == [1827]
    await app.state.engine.dispose()
