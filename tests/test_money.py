"""Balances and statements (rules.md §8) through the public API: the worked example
to the last decimal, billed by the real billing run, re-runs that replace, payments on
the billing clock, who sees which months, and statement counts that do not grow."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal as D
from typing import Any

import httpx

from flows_graphql.types.node import to_global_id
from tests.support.api import TENANT, bearer, gql
from tests.support.billing import Community, priced_example, run_billing, set_solar_credit

STATEMENTS = """
query($id: ID!, $from: Date, $to: Date, $on: Date) {
  node(id: $id) { ... on Account {
    balance(on: $on)
    statements(from: $from, to: $to) {
      month openingBalance closingBalance solarCredit payments
      charges { power heat standingCharge total }
    }
  } }
}"""


async def account_of(raw: Any, customer: uuid.UUID) -> uuid.UUID:
    account: uuid.UUID = await raw.fetchval(
        "SELECT account_id FROM customer_accounts WHERE customer_id = $1", customer
    )
    return account


async def february_charges(raw: Any, community: Community, total: str) -> None:
    """A finalized February 2025 whose one cost row totals `total` (the opening of
    the worked example's March)."""
    meter = community.meters[0]
    usage, run = uuid.uuid4(), uuid.uuid4()
    await raw.execute(
        "INSERT INTO monthly_usage (id, esco_id, meter_id, month, power_kwh, heat_kwh)"
        " VALUES ($1, $2, $3, '2025-02-01', 10, 0)",
        usage,
        community.esco_id,
        meter,
    )
    await raw.execute(
        "INSERT INTO billing_runs (id, esco_id, month, status, actor, customers_billed, total)"
        " VALUES ($1, $2, '2025-02-01', 'finalized', 'system', 1, $3)",
        run,
        community.esco_id,
        D(total),
    )
    await raw.execute(
        "INSERT INTO monthly_costs (esco_id, monthly_usage_id, customer_id, month,"
        " billing_run_id, power, heat, standing_charge, total, microgrid_power,"
        " microgrid_heat, microgrid_standing_charge, microgrid_total, benchmark_power,"
        " benchmark_heat, benchmark_standing_charge, benchmark_total)"
        " VALUES ($1, $2, $3, '2025-02-01', $4, $5, 0, 0, $5, 0, 0, 0, 0, 0, 0, 0, 0)",
        community.esco_id,
        usage,
        community.customers[0],
        run,
        D(total),
    )


async def payment(
    raw: Any,
    community: Community,
    account: uuid.UUID,
    pence: int,
    status: str,
    *,
    scheduled: str | None = None,
    created: str = "2025-03-01T09:00:00+00:00",
) -> None:
    from datetime import datetime

    await raw.execute(
        "INSERT INTO payments (esco_id, customer_id, account_id, amount_pence, status,"
        " scheduled_at, created_at, idempotency_key)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        community.esco_id,
        community.customers[0],
        account,
        pence,
        status,
        datetime.fromisoformat(scheduled) if scheduled else None,
        datetime.fromisoformat(created),
        uuid.uuid4().hex,
    )


async def worked_example(april: httpx.AsyncClient, raw: Any) -> tuple[Community, uuid.UUID]:
    """rules.md §8: charges 75.23224 (March), solar credit 1953 p, a payment of 5000 p
    succeeded on 12 March, opening 10.00."""
    community = await priced_example(april, raw)  # 4.2 kW of solar on the one home
    assert (await set_solar_credit(april, community, "5475"))["userErrors"] == []
    account = await account_of(raw, community.customers[0])
    await february_charges(raw, community, "10.00")
    result = await run_billing(april, community)
    assert result["userErrors"] == [] and D(result["billingRun"]["total"]) == D("75.23224")
    await payment(raw, community, account, 5000, "succeeded", scheduled="2025-03-12T10:00:00Z")
    # Not payments of March: failed, still processing, and one made at 00:30 on 1 April
    # in London (23:30 UTC on 31 March, British Summer Time).
    await payment(raw, community, account, 700, "failed", scheduled="2025-03-13T10:00:00Z")
    await payment(raw, community, account, 800, "processing", scheduled="2025-03-14T10:00:00Z")
    await payment(raw, community, account, 300, "succeeded", created="2025-03-31T23:30:00+00:00")
    return community, account


def decimals(value: Any, key: str = "") -> Any:
    """The statement with its amounts as Decimals (months stay text)."""
    if isinstance(value, dict):
        return {k: decimals(v, k) for k, v in value.items()}
    return value if key == "month" else D(value)


async def statements_of(client: httpx.AsyncClient, account: uuid.UUID, **variables: Any) -> Any:
    body = await gql(client, STATEMENTS, {"id": to_global_id("Account", account), **variables})
    assert "errors" not in body, body
    return body


async def test_worked_example_of_rules_md(april, raw):
    _community, account = await worked_example(april, raw)
    body = await statements_of(april, account, **{"from": "2025-02-01", "on": "2025-03-31"})
    node = body["data"]["node"]
    february, march, april_ = node["statements"]
    assert february["month"] == "2025-02-01"
    assert (D(february["openingBalance"]), D(february["closingBalance"])) == (D(0), D("10.00"))
    # Exact values (their scale is the computation's: decimals are not normalised).
    assert decimals(march) == {
        "month": "2025-03-01",
        "openingBalance": D("10.00"),
        "charges": {
            "power": D("42.262"),
            "heat": D("16.9048"),
            "standingCharge": D("16.06544"),
            "total": D("75.23224"),
        },
        "solarCredit": D("19.53"),
        "payments": D("50.00"),
        "closingBalance": D("15.70224"),
    }
    assert (march["solarCredit"], march["payments"]) == ("19.53", "50.00")
    # The 00:30 payment of 1 April (London) belongs to April.
    assert april_["month"] == "2025-04-01"
    assert D(april_["openingBalance"]) == D("15.70224")
    assert D(april_["payments"]) == D("3.00")
    assert D(april_["closingBalance"]) == D("12.70224")
    # Balance on 31 March: every month up to March, exactly the March close.
    assert D(node["balance"]) == D("15.70224")


async def test_statements_run_from_the_opening_month_to_the_current_one(april, raw):
    _community, account = await worked_example(april, raw)
    node = (await statements_of(april, account))["data"]["node"]
    months = [s["month"] for s in node["statements"]]
    # Opened 2024-06-01; the billing clock reads 2025-04-15.
    assert months[0] == "2024-06-01" and months[-1] == "2025-04-01" and len(months) == 11
    for before, after in zip(node["statements"], node["statements"][1:], strict=False):
        assert after["openingBalance"] == before["closingBalance"]
    for s in node["statements"]:
        assert D(s["closingBalance"]) == (
            D(s["openingBalance"])
            + D(s["charges"]["total"])
            - D(s["solarCredit"])
            - D(s["payments"])
        )
    assert D(node["statements"][0]["openingBalance"]) == 0
    # Default day: today on the billing clock, so April's payment counts.
    assert node["balance"] == node["statements"][-1]["closingBalance"]
    assert D(node["balance"]) == D("12.70224")
    # A day before the first month owes nothing; ranges are by month.
    early = (await statements_of(april, account, on="2024-01-31", to="2024-06-30"))["data"]
    assert D(early["node"]["balance"]) == 0
    assert [s["month"] for s in early["node"]["statements"]] == ["2024-06-01"]


async def test_a_rerun_replaces_the_month_never_adds(april, raw):
    community, account = await worked_example(april, raw)
    again = await run_billing(april, community)
    assert again["userErrors"] == []
    body = await statements_of(april, account, **{"from": "2025-03-01", "to": "2025-03-01"})
    [march] = body["data"]["node"]["statements"]
    assert (
        D(march["charges"]["total"]),
        D(march["solarCredit"]),
        D(march["closingBalance"]),
    ) == (D("75.23224"), D("19.53"), D("15.70224"))
    assert await raw.fetchval("SELECT count(*) FROM billing_runs WHERE month = '2025-03-01'") == 2


async def test_only_runs_in_force_count(april, raw):
    """Costs of a run that is not completed or finalized are not charges (a run writes
    in one transaction, so this is the database's word against a half-written run)."""
    _community, account = await worked_example(april, raw)
    await raw.execute("UPDATE billing_runs SET status = 'failed' WHERE month = '2025-03-01'")
    body = await statements_of(april, account, **{"from": "2025-03-01", "to": "2025-03-01"})
    [march] = body["data"]["node"]["statements"]
    assert (D(march["charges"]["total"]), D(march["solarCredit"])) == (0, 0)
    assert D(march["closingBalance"]) == D("10.00") - D("50.00")


CUSTOMER_VIEW = """
query($on: Date) { viewer { customer {
  balance(on: $on)
  accounts { role account { uuid balance(on: $on) statements { month openingBalance
    closingBalance payments charges { total } } } }
} } }"""


async def test_customers_see_their_own_months_only(april, raw, settings):
    """Account opened 2024-06-01 (Community.home). A occupies June 2024 - 30 Sep 2024,
    B from 1 Oct 2024 (a 30-day September); L owns it throughout. A's and B's views
    hold their own months; L's none; the operator's all of them."""
    community, account = await worked_example(april, raw)
    a = community.customers[0]
    b, landlord = uuid.uuid4(), uuid.uuid4()
    for who, mail in ((b, "b@example.org"), (landlord, "l@example.org")):
        await raw.execute(
            "INSERT INTO customers (id, esco_id, email) VALUES ($1, $2, $3)",
            who,
            community.esco_id,
            mail,
        )
    await raw.execute(
        "UPDATE customer_accounts SET end_date = '2024-09-30' WHERE customer_id = $1", a
    )
    for who, role, start in ((b, "occupier", "2024-10-01"), (landlord, "owner", "2024-06-01")):
        await raw.execute(
            "INSERT INTO customer_accounts (customer_id, account_id, role, start_date, esco_id)"
            " VALUES ($1, $2, $3, $4, $5)",
            who,
            account,
            role,
            date.fromisoformat(start),
            community.esco_id,
        )
    # The worked example's payments fall in B's months: B made them (a payment is its
    # payer's, docs/money.md). An early payment by A in September (her month) is hers.
    await raw.execute("UPDATE payments SET customer_id = $1 WHERE account_id = $2", b, account)
    await payment(raw, community, account, 1234, "succeeded", scheduled="2024-09-05T10:00:00Z")

    operator = (await statements_of(april, account))["data"]["node"]
    every = {s["month"]: s for s in operator["statements"]}
    assert len(every) == 11

    async def view(customer: uuid.UUID) -> Any:
        headers = bearer(settings, "customer", customer_id=str(customer))
        body = await gql(april, CUSTOMER_VIEW, {"on": "2025-04-30"}, headers=headers)
        assert "errors" not in body, body
        return body["data"]["viewer"]["customer"]

    seen_a, seen_b, seen_l = await view(a), await view(b), await view(landlord)
    months_a = [s["month"] for s in seen_a["accounts"][0]["account"]["statements"]]
    assert months_a == ["2024-06-01", "2024-07-01", "2024-08-01", "2024-09-01"]
    assert D(seen_a["balance"]) == D("-12.34") == D(seen_a["accounts"][0]["account"]["balance"])
    [link_b] = seen_b["accounts"]
    months_b = [s["month"] for s in link_b["account"]["statements"]]
    assert months_b == [f"{m[:7]}-01" for m in sorted(every) if m >= "2024-10-01"]
    # B's balance runs over B's months alone: A's September payment is not B's.
    assert D(link_b["account"]["statements"][0]["openingBalance"]) == 0
    assert D(seen_b["balance"]) == D("12.70224") == D(link_b["account"]["balance"])
    assert D(operator["balance"]) == D("12.70224") - D("12.34")
    # The owner sees the account, never the tenants' months.
    [link_l] = seen_l["accounts"]
    assert link_l["role"] == "OWNER"
    assert link_l["account"]["statements"] == [] and D(link_l["account"]["balance"]) == 0
    assert D(seen_l["balance"]) == 0


async def test_statements_of_many_accounts_in_constant_statements(april, raw):
    """The months of every account of a page come from one statement."""
    community = await Community(raw).create()
    counts = []
    for n in range(1, 7):
        await community.home(n)
        body = await gql(
            april,
            """{ esco(code: "sunny") { uuid customers(first: 50) { nodes {
                 balance accounts { account { balance statements { month closingBalance } } }
               } } } }""",
        )
        assert "errors" not in body, body
        nodes = body["data"]["esco"]["customers"]["nodes"]
        assert len(nodes) == n
        assert all(len(c["accounts"][0]["account"]["statements"]) == 11 for c in nodes)
        counts.append(body["extensions"]["sqlStatements"])
    # esco, customers, links (their accounts joined), months of accounts, months of
    # customers.
    assert set(counts) == {TENANT + 5}, counts


async def test_a_meter_swap_changes_no_past_statement(april, raw):
    """The property's supply meter changes in April (through the API): the months
    billed on the old meter stay the account's (rules.md §7, supply history)."""
    community, account = await worked_example(april, raw)
    before = (await statements_of(april, account))["data"]["node"]
    meter = uuid.uuid4()
    await raw.execute(
        "INSERT INTO meters (id, esco_id, serial) VALUES ($1, $2, 'SWAP-001')",
        meter,
        community.esco_id,
    )
    body = await gql(
        april,
        """mutation($p: ID!, $m: ID) { updateProperty(input: {propertyId: $p, supplyMeterId: $m})
             { userErrors { field code } } }""",
        {"p": str(community.properties[0]), "m": str(meter)},
    )
    assert body["data"]["updateProperty"]["userErrors"] == [], body
    after = (await statements_of(april, account))["data"]["node"]
    assert after == before
    assert D(after["balance"]) == D("12.70224")
