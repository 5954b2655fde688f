"""Monthly summaries (Esco, Site, Customer) against the rows they sum, on generated data
(tests/support/factories.py plus payments, solar credits, sites, a skipped meter and a superseded
run), and their statement count, which does not grow with months or customers."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal as D
from typing import Any

from tests.support import factories as f
from tests.support.api import TENANT, bearer, gql
from tests.support.factories import EscoData

MONTHS = 6
CUSTOMERS = 7
FIELDS = (
    "month customersBilled metersSkipped powerKwh heatKwh solarKwh total microgridTotal "
    "benchmarkTotal savings solarCredits paymentsReceived outstanding"
)
SUMMARIES = f"""
query($from: Date, $to: Date) {{ esco(code: "gen") {{
  monthlySummaries(from: $from, to: $to) {{ {FIELDS} }}
  sites {{ code monthlySummaries(from: $from, to: $to) {{ {FIELDS} }} }}
  customers(first: 50) {{ nodes {{ email monthlySummaries(from: $from, to: $to) {{ {FIELDS} }}
    accounts {{ account {{ statements {{ month closingBalance }} }} }} }} }}
}} }}"""
SITE_OF = {0: "north", 1: "north", 2: "north", 3: "north", 4: "south", 5: "south"}
SKIPPED = (1, 2)  # customer 1's meter is skipped (NO_TARIFF) in month 2


class Generated:
    """What was written, kept to sum by hand."""

    def __init__(self, esco: EscoData) -> None:
        self.esco = esco
        self.credits: dict[tuple[int, int], int] = {}
        self.payments: list[tuple[int, int, int]] = []  # (customer, month index, pence)

    def billed(self, i: int, m: int) -> bool:
        return (i, m) != SKIPPED


async def generate(raw: Any) -> Generated:
    esco = await f.build_esco(raw, "gen", customers=CUSTOMERS, months=MONTHS)
    g = Generated(esco)
    e = esco.id
    await raw.execute("UPDATE monthly_usage SET solar_kwh = heat_kwh - 200 WHERE esco_id = $1", e)
    for code in ("north", "south"):
        site = uuid.uuid4()
        await raw.execute(
            "INSERT INTO sites (id, esco_id, code, name) VALUES ($1, $2, $3, $3)", site, e, code
        )
        await raw.execute(
            "UPDATE properties SET site_id = $1 WHERE id = ANY($2::uuid[])",
            site,
            [esco.property_ids[i] for i, s in SITE_OF.items() if s == code],
        )
    i, m = SKIPPED
    await raw.execute("DELETE FROM monthly_costs WHERE id = $1", esco.cost_ids[i][m])
    # As billing would write it: the meter skipped, one customer fewer billed.
    await raw.execute(
        "UPDATE billing_runs SET skipped_meters = $1::jsonb,"
        " customers_billed = customers_billed - 1 WHERE id = $2",
        json.dumps([{"meter_id": str(esco.meter_ids[i]), "reason": "NO_TARIFF"}]),
        esco.billing_run_ids[m],
    )
    # An earlier run of month 0, superseded: its skipped list must not count.
    await raw.execute(
        "INSERT INTO billing_runs (esco_id, month, status, actor, started_at, skipped_meters)"
        " VALUES ($1, $2, 'completed', 'system', now() - interval '1 day', $3::jsonb)",
        e,
        esco.months[0],
        json.dumps([{"meter_id": str(esco.meter_ids[0]), "reason": "NO_OCCUPIER"}]),
    )
    for i in range(0, CUSTOMERS, 2):
        await raw.execute(
            "INSERT INTO solar_installation (property_id, esco_id, mcs_certificate,"
            " declared_net_capacity_kw) VALUES ($1, $2, $3, 3)",
            esco.property_ids[i],
            e,
            f"MCS-gen-{i}",
        )
        for m in range(MONTHS):
            g.credits[i, m] = 100 * (i + 1) + 7 * m
            await raw.execute(
                "INSERT INTO monthly_solar_credits (esco_id, property_id, month, credit_pence,"
                " billing_run_id) VALUES ($1, $2, $3, $4, $5)",
                e,
                esco.property_ids[i],
                esco.months[m],
                g.credits[i, m],
                esco.billing_run_ids[m],
            )

    async def pay(i: int, pence: int, status: str, at: datetime, scheduled: bool) -> None:
        await raw.execute(
            "INSERT INTO payments (esco_id, customer_id, account_id, amount_pence, status,"
            " scheduled_at, created_at, idempotency_key) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
            e,
            esco.customer_ids[i],
            esco.account_ids[i],
            pence,
            status,
            at if scheduled else None,
            at - timedelta(days=3) if scheduled else at,
            uuid.uuid4().hex,
        )

    for i in range(CUSTOMERS):
        for m in range(MONTHS):
            when = datetime.combine(esco.months[m], time(12), UTC) + timedelta(days=10 + i)
            pence = 1000 * (i + 1) + 13 * m
            await pay(i, pence, "succeeded", when, scheduled=(i + m) % 2 == 0)
            g.payments.append((i, m, pence))
            await pay(i, 999, "failed", when, scheduled=True)
    # Unscheduled, made at 23:30 UTC on 30 April 2024: 00:30 on 1 May in London (BST).
    await pay(3, 4321, "succeeded", datetime.fromisoformat("2024-04-30T23:30:00+00:00"), False)
    g.payments.append((3, 4, 4321))
    return g


def expected(g: Generated, customers: set[int]) -> dict[str, dict[str, D | int]]:
    """Every figure of every month, summed from the written rows."""
    out: dict[str, dict[str, Any]] = {}
    running = D(0)
    for m, month in enumerate(g.esco.months):
        billed = [i for i in customers if g.billed(i, m)]
        c = [f.costs(i, m) for i in billed]
        total = sum((x.total for x in c), D(0))
        credits = D(sum(p for (i, mm), p in g.credits.items() if mm == m and i in customers))
        paid = D(sum(p for i, mm, p in g.payments if mm == m and i in customers))
        running += total - credits / 100 - paid / 100
        out[month.isoformat()] = {
            "customersBilled": len(billed),
            "metersSkipped": sum(1 for i in customers if (i, m) == SKIPPED),
            "powerKwh": sum((f.power_kwh(i, m) for i in billed), D(0)),
            "heatKwh": sum((f.heat_kwh(i, m) for i in billed), D(0)),
            "solarKwh": sum((f.heat_kwh(i, m) - 200 for i in billed), D(0)),
            "total": total,
            "microgridTotal": sum((x.microgrid[3] for x in c), D(0)),
            "benchmarkTotal": sum((x.benchmark[3] for x in c), D(0)),
            "savings": sum((x.savings for x in c), D(0)),
            "solarCredits": credits / 100,
            "paymentsReceived": paid / 100,
            "outstanding": running,
        }
    return out


def figures(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        r["month"]: {k: (v if isinstance(v, int) else D(v)) for k, v in r.items() if k != "month"}
        for r in rows
    }


async def test_every_figure_is_the_sum_of_its_rows(client, raw):
    g = await generate(raw)
    body = await gql(client, SUMMARIES)
    assert "errors" not in body, body
    esco = body["data"]["esco"]
    everyone = set(range(CUSTOMERS))
    assert figures(esco["monthlySummaries"]) == expected(g, everyone)
    sites = {s["code"]: figures(s["monthlySummaries"]) for s in esco["sites"]}
    for code in ("north", "south"):
        assert sites[code] == expected(g, {i for i, s in SITE_OF.items() if s == code}), code
    by_email = {c["email"]: c for c in esco["customers"]["nodes"]}
    for i in range(CUSTOMERS):
        customer = by_email[f.email("gen", i)]
        mine = figures(customer["monthlySummaries"])
        assert mine == expected(g, {i}), i
        # A customer's outstanding is their statement's closing balance, month by month.
        statements = customer["accounts"][0]["account"]["statements"]
        closing = {s["month"]: D(s["closingBalance"]) for s in statements}
        assert {m: v["outstanding"] for m, v in mine.items()} == {m: closing[m] for m in mine}


async def test_a_range_keeps_the_running_outstanding(client, raw):
    g = await generate(raw)
    body = await gql(client, SUMMARIES, {"from": "2024-03-15", "to": "2024-04-30"})
    assert "errors" not in body, body
    want = expected(g, set(range(CUSTOMERS)))
    assert figures(body["data"]["esco"]["monthlySummaries"]) == {
        m: want[m] for m in ("2024-03-01", "2024-04-01")
    }


async def test_statements_do_not_grow_with_months_or_customers(client, raw):
    """Three summaries fields, a page of customers and their statements: the same
    number of statements for 2 and 7 customers, 2 and 6 months."""
    counts = []
    for n, months in ((2, 2), (7, 6)):
        await raw.execute("TRUNCATE escos CASCADE")
        await f.build_esco(raw, "gen", customers=n, months=months)
        body = await gql(client, SUMMARIES)
        assert "errors" not in body, body
        assert len(body["data"]["esco"]["monthlySummaries"]) == months
        counts.append(body["extensions"]["sqlStatements"])
    # esco, its summaries, sites (none here, so no site summaries), customers, their
    # summaries, links (their accounts joined), the accounts' months.
    assert counts == [TENANT + 7] * 2, counts


async def test_customers_see_their_own_summaries_only(client, raw, settings):
    g = await generate(raw)
    headers = bearer(settings, "customer", customer_id=str(g.esco.customer_ids[2]))
    body = await gql(
        client,
        f"""{{ viewer {{ customer {{ monthlySummaries {{ {FIELDS} }}
                       esco {{ monthlySummaries {{ month total }} }} }} }} }}""",
        headers=headers,
    )
    assert "errors" not in body, body
    me = body["data"]["viewer"]["customer"]
    assert figures(me["monthlySummaries"]) == expected(g, {2})
    # Never the ESCO's figures: they sum other people's bills.
    assert me["esco"]["monthlySummaries"] == []
    assert date(2024, 1, 1).isoformat() in figures(me["monthlySummaries"])
