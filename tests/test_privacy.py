"""Privacy inside one ESCO over time (issue 10, rules.md §7): the four reproductions,
through HTTP and the documented mutations only, and the supply history.

The home: account opened 2024-12-01; customer A occupier 2024-12-01 … 2025-02-28,
customer B occupier from 2025-03-01, L the owner throughout; usage 2025-01 … 2025-04,
billed. The app's clock is 2025-05-15.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import Date, bindparam, column, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine

from flows_graphql.app import create_app
from flows_graphql.auth.apikeys import create_key
from flows_graphql.config import Settings
from flows_graphql.loaders.visibility import customer_billed_for, customer_occupied_account_on
from flows_graphql.rules.privacy import actor_shown
from flows_graphql.types.node import from_global_id
from tests.support import api
from tests.support.api import asgi_client, bearer, gql, mutate

TODAY = date(2025, 5, 15)
MONTHS = ["2025-01-01", "2025-02-01", "2025-03-01", "2025-04-01"]
POWER = {"2025-01-01": "111.000", "2025-02-01": "222.000", "2025-03-01": "333.000",
         "2025-04-01": "444.000"}  # fmt: skip


@dataclass
class Home:
    esco: str
    a: str
    b: str
    owner: str
    account: str
    property: str
    meter: str
    new_meter: str
    headers: dict[str, dict[str, str]]


async def ok(client: httpx.AsyncClient, field: str, input: dict[str, Any], sel: str) -> Any:
    return api.ok(await mutate(client, field, input, sel))


@pytest.fixture
async def app(settings: Settings, database_url: str, engine: AsyncEngine) -> AsyncIterator[Any]:
    app = create_app(settings, database_url, today=lambda: TODAY)
    yield app
    await app.state.engine.dispose()


@pytest.fixture
async def app_client(app: Any, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app as an admin (`user:admin-1`) sees it."""
    async with asgi_client(app, bearer(settings, "admin", sub="admin-1")) as http:
        yield http


@pytest.fixture
async def bare_client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app without credentials of its own (each request brings them)."""
    async with asgi_client(app) as http:
        yield http


async def build_home(client: httpx.AsyncClient, settings: Settings) -> Home:
    esco = (
        await ok(
            client,
            "createEsco",
            {"code": "privacy", "name": "Privacy", "regionCode": "london"},
            "esco { id }",
        )
    )["esco"]["id"]
    await ok(
        client,
        "publishBenchmarkTariff",
        {
            "regionCode": "london",
            "periodStart": "2024-10-01",
            "unitRate": "0.25",
            "standingCharge": "0.5",
        },
        "benchmarkTariff { id }",
    )
    meter = (
        await ok(client, "createMeter", {"escoId": esco, "serial": "PRIV-M1"}, "meter { id }")
    )["meter"]["id"]
    new_meter = (
        await ok(client, "createMeter", {"escoId": esco, "serial": "PRIV-M2"}, "meter { id }")
    )["meter"]["id"]
    prop = (
        await ok(
            client,
            "createProperty",
            {"escoId": esco, "plot": "PRIV-1", "supplyMeterId": meter},
            "property { id }",
        )
    )["property"]["id"]
    account = (
        await ok(
            client, "openAccount", {"propertyId": prop, "openedOn": "2024-12-01"}, "account { id }"
        )
    )["account"]["id"]
    people = {}
    for who in ("a", "b", "owner"):
        people[who] = (
            await ok(
                client,
                "createCustomer",
                {"escoId": esco, "email": f"{who}@privacy.example", "fullName": f"Person {who}"},
                "customer { id uuid }",
            )
        )["customer"]
    link = "customerAccount { id }"
    await ok(
        client,
        "addCustomerToAccount",
        {"customerId": people["owner"]["id"], "accountId": account, "role": "OWNER",
         "startDate": "2024-12-01"},
        link,
    )  # fmt: skip
    await ok(
        client,
        "addCustomerToAccount",
        {"customerId": people["a"]["id"], "accountId": account, "role": "OCCUPIER",
         "startDate": "2024-12-01"},
        link,
    )  # fmt: skip
    await ok(
        client,
        "endCustomerAccount",
        {"customerId": people["a"]["id"], "accountId": account, "role": "OCCUPIER",
         "endDate": "2025-02-28"},
        link,
    )  # fmt: skip
    await ok(
        client,
        "addCustomerToAccount",
        {"customerId": people["b"]["id"], "accountId": account, "role": "OCCUPIER",
         "startDate": "2025-03-01"},
        link,
    )  # fmt: skip
    for who in ("a", "b"):
        await ok(
            client,
            "setCustomerDiscount",
            {"customerId": people[who]["id"], "periodStart": "2024-12-01", "discountPercent": 10},
            "customerTariff { id }",
        )
    for month in MONTHS:
        await ok(
            client,
            "recordMonthlyUsage",
            {"meterId": meter, "month": month, "powerKwh": POWER[month], "heatKwh": "10",
             "solarKwh": "0"},
            "monthlyUsage { id }",
        )  # fmt: skip
        await ok(client, "runBilling", {"escoId": esco, "month": month}, "billingRun { id }")
    headers = {
        who: bearer(settings, "customer", sub=f"sub-{who}", customer_id=people[who]["uuid"])
        for who in people
    }
    return Home(
        esco,
        people["a"]["uuid"],
        people["b"]["uuid"],
        people["owner"]["uuid"],
        account,
        prop,
        meter,
        new_meter,
        headers,
    )


HOME_USAGE = """{ viewer { customer { accounts { role account { property { supplyMeter {
    monthlyUsage { month powerKwh } } } } } } } }"""
COSTS = """{ viewer { customer { monthlyCosts { month total usage { month powerKwh } } } } }"""


def usage_months(body: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for link in body["data"]["viewer"]["customer"]["accounts"]:
        meter = link["account"]["property"]["supplyMeter"]
        if meter is not None:
            out |= {row["month"] for row in meter["monthlyUsage"]}
    return out


async def test_new_occupier_does_not_see_the_previous_household(
    app_client: httpx.AsyncClient, bare_client: httpx.AsyncClient, settings: Settings
) -> None:
    """Reproduction 1: B moved in on 2025-03-01 and must not see A's February (28 days:
    a rule adding 31 days to a month showed it)."""
    home = await build_home(app_client, settings)
    seen = {}
    for who in ("a", "b", "owner"):
        body = await gql(bare_client, HOME_USAGE, headers=home.headers[who])
        assert "errors" not in body, body
        seen[who] = usage_months(body)
    assert seen == {
        "a": {"2025-01-01", "2025-02-01"},
        "b": {"2025-03-01", "2025-04-01"},
        "owner": set(),
    }


async def test_a_meter_swap_changes_nothing_in_the_past(
    app_client: httpx.AsyncClient,
    bare_client: httpx.AsyncClient,
    settings: Settings,
    raw: asyncpg.Connection,
) -> None:
    """Reproduction 2: after updateProperty(supplyMeterId:) B's bills still show their
    usage (it was INTERNAL), and a re-run of a past month bills the same."""
    home = await build_home(app_client, settings)
    before = {}
    for who in ("a", "b"):
        body = await gql(bare_client, COSTS, headers=home.headers[who])
        assert "errors" not in body, body
        before[who] = body["data"]
    assert [c["usage"]["powerKwh"] for c in before["b"]["viewer"]["customer"]["monthlyCosts"]] == [
        POWER["2025-03-01"],
        POWER["2025-04-01"],
    ]
    costs_before = await raw.fetch("SELECT customer_id, month, total FROM monthly_costs ORDER BY 2")

    await ok(
        app_client,
        "updateProperty",
        {"propertyId": home.property, "supplyMeterId": home.new_meter},
        "property { id }",
    )
    for who in ("a", "b"):
        body = await gql(bare_client, COSTS, headers=home.headers[who])
        assert "errors" not in body, body
        assert body["data"] == before[who]
    body = await gql(bare_client, HOME_USAGE, headers=home.headers["b"])
    assert "errors" not in body, body
    # The home's meter is now the new one, which has no month of B's yet.
    assert usage_months(body) == set()

    # The history: the old meter up to May (the swap was on the 15th), the new one after.
    history = await raw.fetch(
        "SELECT m.serial, first_month, last_month FROM property_supply_meters s "
        "JOIN meters m ON m.id = s.meter_id ORDER BY last_month NULLS LAST"
    )
    assert [tuple(r) for r in history] == [
        ("PRIV-M1", None, date(2025, 5, 1)),
        ("PRIV-M2", date(2025, 6, 1), None),
    ]
    # Billing a past month again finds the old meter: same costs.
    await ok(
        app_client, "runBilling", {"escoId": home.esco, "month": "2025-03-01"}, "billingRun { id }"
    )
    assert (
        await raw.fetch("SELECT customer_id, month, total FROM monthly_costs ORDER BY 2")
    ) == costs_before


EVENTS = """{ viewer { customer { accounts { account {
    events(first: 50) { totalCount nodes { id uuid eventType notes actor data } } } } } } }"""


async def test_account_events_show_only_the_viewers_links(
    app_client: httpx.AsyncClient, bare_client: httpx.AsyncClient, settings: Settings
) -> None:
    """Reproduction 3: events name no other person, actors are roles."""
    home = await build_home(app_client, settings)
    others = {"a": {home.b, home.owner}, "b": {home.a, home.owner}, "owner": {home.a, home.b}}
    for who in ("a", "b", "owner"):
        body = await gql(bare_client, EVENTS, headers=home.headers[who])
        assert "errors" not in body, body
        text = json.dumps(body["data"])
        for other in others[who]:
            assert other not in text, (who, body)
        assert "admin-1" not in text and "user:" not in text, body
        (link,) = {
            json.dumps(x["account"], sort_keys=True)
            for x in body["data"]["viewer"]["customer"]["accounts"]
        }
        events = json.loads(link)["events"]["nodes"]
        assert {e["actor"] for e in events} == {"operator"}
        kinds = sorted(e["eventType"] for e in events)
        # Each sees their own links' events (and the account's own, recorded while
        # they were linked: here all were recorded today, after A left).
        assert (
            kinds
            == {
                "a": ["OCCUPANCY_ENDED", "OCCUPANCY_STARTED"],
                "b": ["OCCUPANCY_STARTED", "OPENED"],
                "owner": ["OPENED", "OWNER_ADDED"],
            }[who]
        ), (who, events)
    # The operator's view is unchanged: every event, with the real actor.
    body = await gql(
        app_client,
        "query($id: ID!) { node(id: $id) { ... on Account { events(first: 50) { "
        "totalCount nodes { actor notes } } } } }",
        {"id": home.account},
    )
    events = body["data"]["node"]["events"]
    assert events["totalCount"] == 5
    assert {e["actor"] for e in events["nodes"]} == {"user:admin-1"}
    assert any(home.a in (e["notes"] or "") for e in events["nodes"])


PARTNER_LEAKS = [
    "monthlyUsage { meter { property { account { customers { customer { email } } } } } }",
    "monthlyUsage { meter { esco { customers(first: 100) { nodes { email } } } } }",
    "monthlyUsage { costs { customer { email } } }",
    "...F",
]


@pytest.mark.parametrize("selection", PARTNER_LEAKS)
async def test_a_write_only_key_reads_nothing_through_a_payload(
    app_client: httpx.AsyncClient,
    settings: Settings,
    raw: asyncpg.Connection,
    engine: AsyncEngine,
    bare_client: httpx.AsyncClient,
    selection: str,
) -> None:
    """Reproduction 4: a key with only `usage:write` is refused (HTTP 403, before
    anything runs) when a payload leads to other rows; its own fields still work."""
    home = await build_home(app_client, settings)
    key = await _key(engine, home, ["usage:write"])
    fragment = (
        "fragment F on RecordMonthlyUsagePayload { monthlyUsage { meter { serial } } }"
        if selection == "...F"
        else ""
    )
    mutation = (
        "mutation($input: RecordMonthlyUsageInput!) { recordMonthlyUsage(input: $input) { "
        f"{selection} userErrors {{ code }} }} }} {fragment}"
    )
    row = {"meterId": home.meter, "month": "2025-05-01", "powerKwh": "5", "heatKwh": "1",
           "solarKwh": "0"}  # fmt: skip
    body = await gql(bare_client, mutation, {"input": row}, headers={"X-API-Key": key})
    assert body["_status"] == 403, body
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "data" not in body
    assert "privacy.example" not in json.dumps(body)
    assert await raw.fetchval("SELECT count(*) FROM monthly_usage WHERE month = '2025-05-01'") == 0

    own = (
        "mutation($input: RecordMonthlyUsageInput!) { recordMonthlyUsage(input: $input) { "
        "created monthlyUsage { __typename id uuid month powerKwh source } "
        "userErrors { field code message } } }"
    )
    body = await gql(bare_client, own, {"input": row}, headers={"X-API-Key": key})
    assert "errors" not in body, body
    payload = body["data"]["recordMonthlyUsage"]
    assert payload["created"] is True and payload["monthlyUsage"]["powerKwh"] == "5.000"
    # With `read` too, the same payload may go on to other rows (of its ESCO).
    reader = await _key(engine, home, ["read", "usage:write"])
    body = await gql(bare_client, mutation, {"input": row}, headers={"X-API-Key": reader})
    assert "errors" not in body, body


async def _key(engine: AsyncEngine, home: Home, scopes: list[str]) -> str:
    decoded = from_global_id(home.esco)
    assert decoded is not None
    async with engine.begin() as conn:
        return (await create_key(conn, uuid.UUID(decoded[1]), scopes, "partner")).key


# --- the supply history itself ---------------------------------------------------------


async def _history(raw: asyncpg.Connection, prop: uuid.UUID) -> list[tuple[str, Any, Any]]:
    rows = await raw.fetch(
        "SELECT m.serial, first_month, last_month FROM property_supply_meters s "
        "JOIN meters m ON m.id = s.meter_id WHERE property_id = $1 "
        "ORDER BY first_month NULLS FIRST",
        prop,
    )
    return [tuple(r) for r in rows]


async def _set_meter(raw: asyncpg.Connection, prop: uuid.UUID, meter: Any, day: str) -> None:
    async with raw.transaction():
        await raw.execute("SELECT set_config('flows.today', $1, true)", day)
        await raw.execute("UPDATE properties SET supply_meter_id = $1 WHERE id = $2", meter, prop)


async def test_supply_history_is_kept_by_every_write(
    engine: AsyncEngine, raw: asyncpg.Connection
) -> None:
    """Whoever writes `properties` (here plain SQL, dated by `flows.today`): a change on
    the 1st applies that month, later in a month from the next; a meter that never
    supplied a month leaves no period; a meter moved on starts after it left."""
    esco = await raw.fetchval(
        "INSERT INTO escos (code, name, region_code) VALUES ('hist', 'H', 'london') RETURNING id"
    )
    m1, m2, m3 = [
        await raw.fetchval(
            "INSERT INTO meters (esco_id, serial) VALUES ($1, $2) RETURNING id", esco, serial
        )
        for serial in ("S1", "S2", "S3")
    ]
    p1, p2 = [
        await raw.fetchval(
            "INSERT INTO properties (esco_id, plot, supply_meter_id) VALUES ($1, $2, $3) "
            "RETURNING id",
            esco,
            plot,
            meter,
        )
        for plot, meter in (("1", m1), ("2", None))
    ]
    assert await _history(raw, p1) == [("S1", None, None)]
    assert await _history(raw, p2) == []

    await _set_meter(raw, p1, m2, "2025-03-01")  # on the 1st: March is S2's
    assert await _history(raw, p1) == [
        ("S1", None, date(2025, 2, 1)),
        ("S2", date(2025, 3, 1), None),
    ]
    await _set_meter(raw, p1, m3, "2025-03-20")  # later: from April
    await _set_meter(raw, p1, m2, "2025-03-25")  # and back: S3 never supplied a month
    assert await _history(raw, p1) == [
        ("S1", None, date(2025, 2, 1)),
        ("S2", date(2025, 3, 1), date(2025, 3, 1)),
        ("S2", date(2025, 4, 1), None),
    ]
    await _set_meter(raw, p1, None, "2025-06-10")  # no meter from July
    assert (await _history(raw, p1))[-1] == ("S2", date(2025, 4, 1), date(2025, 6, 1))
    await _set_meter(raw, p2, m2, "2025-06-11")  # S2 moves on: from the month after it left
    assert await _history(raw, p2) == [("S2", date(2025, 7, 1), None)]
    await _set_meter(raw, p2, None, "2025-07-02")  # S2 supplies July only, then rests
    # A meter with a past supplies a new home from the change, not from when it left.
    async with raw.transaction():
        await raw.execute("SELECT set_config('flows.today', '2025-09-05', true)")
        p3 = await raw.fetchval(
            "INSERT INTO properties (esco_id, plot, supply_meter_id) VALUES ($1, '3', $2) "
            "RETURNING id",
            esco,
            m2,
        )
    assert await _history(raw, p2) == [("S2", date(2025, 7, 1), date(2025, 7, 1))]
    assert await _history(raw, p3) == [("S2", date(2025, 10, 1), None)]
    # One meter per home per month, one home per meter per month.
    with pytest.raises(asyncpg.ExclusionViolationError):
        await raw.execute(
            "INSERT INTO property_supply_meters (esco_id, property_id, meter_id, first_month) "
            "VALUES ($1, $2, $3, '2025-01-01')",
            esco,
            p2,
            m3,
        )
    with pytest.raises(asyncpg.ExclusionViolationError):
        await raw.execute(
            "INSERT INTO property_supply_meters (esco_id, property_id, meter_id, first_month, "
            "last_month) VALUES ($1, $2, $3, '2025-05-01', '2025-05-01')",
            esco,
            p2,
            m2,
        )
    with pytest.raises(asyncpg.CheckViolationError):
        await raw.execute(
            "INSERT INTO property_supply_meters (esco_id, property_id, meter_id, first_month) "
            "VALUES ($1, $2, $3, '2030-01-15')",
            esco,
            p2,
            m3,
        )


def test_actors_are_roles_to_customers() -> None:
    me = uuid.uuid4()
    cases = {
        f"customer:{me}": "you",
        f"customer:{uuid.uuid4()}": "customer",
        "user:alice@esco": "operator",
        "partner:0b1c": "partner",
        "system": "system",
    }
    for actor, shown in cases.items():
        assert actor_shown(actor, "customer", me) == shown
        assert actor_shown(actor, "operator", None) == actor
        assert actor_shown(actor, "partner", None) == actor


async def test_an_occupancy_corrected_after_billing_shows_no_stale_bill(
    app_client: httpx.AsyncClient,
    bare_client: httpx.AsyncClient,
    settings: Settings,
    raw: asyncpg.Connection,
) -> None:
    """A's stay is corrected to end in January after February was billed to A: A's
    February bill (with its usage) stays readable, never an error, until February is
    billed again — then nobody is billed for it (no occupier on the 1st)."""
    home = await build_home(app_client, settings)
    await raw.execute(
        "UPDATE customer_accounts SET end_date = '2025-01-31' WHERE customer_id = $1",
        uuid.UUID(home.a),
    )
    body = await gql(bare_client, COSTS, headers=home.headers["a"])
    assert "errors" not in body, body
    costs = body["data"]["viewer"]["customer"]["monthlyCosts"]
    assert [(c["month"], c["usage"]["powerKwh"]) for c in costs] == [
        ("2025-01-01", POWER["2025-01-01"]),
        ("2025-02-01", POWER["2025-02-01"]),
    ]
    await ok(
        app_client, "runBilling", {"escoId": home.esco, "month": "2025-02-01"}, "billingRun { id }"
    )
    assert await raw.fetchval("SELECT count(*) FROM monthly_costs WHERE month = '2025-02-01'") == 0
    body = await gql(bare_client, COSTS, headers=home.headers["a"])
    assert [c["month"] for c in body["data"]["viewer"]["customer"]["monthlyCosts"]] == [
        "2025-01-01"
    ]
    body = await gql(bare_client, HOME_USAGE, headers=home.headers["a"])
    assert usage_months(body) == {"2025-01-01"}


async def test_the_reusable_month_conditions(
    app_client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine
) -> None:
    """`customer_billed_for` and `customer_occupied_account_on`, the rule other reads
    (statements, balances) build on, answer as billing does."""
    home = await build_home(app_client, settings)
    months = [date.fromisoformat(m) for m in MONTHS]
    grid_table = (
        func.unnest(bindparam("months", type_=ARRAY(Date())))
        .table_valued(column("month", Date()))
        .render_derived(name="grid")
    )
    month = grid_table.c.month
    grid = select(month)
    prop, account = _uuid(home.property), _uuid(home.account)
    billed = grid.where(customer_billed_for(prop, month)).order_by(month)
    occupied = grid.where(customer_occupied_account_on(account, month)).order_by(month)
    seen = {}
    async with engine.connect() as conn:
        for who in ("a", "b", "owner"):
            me = uuid.UUID(getattr(home, who))
            params = {"months": months, "viewer_customer": me}
            seen[who] = (
                [r[0] for r in await conn.execute(billed, params)],
                [r[0] for r in await conn.execute(occupied, params)],
            )
    assert seen["a"] == (months[:2], months[:2])
    assert seen["b"] == (months[2:], months[2:])
    assert seen["owner"] == ([], [])


def _uuid(gid: str) -> uuid.UUID:
    decoded = from_global_id(gid)
    assert decoded is not None
    return uuid.UUID(decoded[1])


LEDGER = """query($on: Date) { viewer { customer {
  balance(on: $on)
  monthlySummaries(from: "2024-12-01") { month paymentsReceived outstanding }
  payments { edges { node { id amountPence } } }
  accounts { role account {
    balance(on: $on)
    statements { month openingBalance closingBalance payments charges { total } }
    payments { edges { node { id } } }
  } }
} } }"""


async def test_a_payment_scheduled_after_the_payer_left_is_hers_alone(
    app: Any,
    app_client: httpx.AsyncClient,
    bare_client: httpx.AsyncClient,
    settings: Settings,
    database_url: str,
) -> None:
    """A, still living there on 20 February, schedules a 40.00 payment for 20 March,
    after she leaves (B's month). It is A's: it counts in her balance, statements and
    summaries (March shows her payment alone), never in B's, nor in the owner's; staff
    see it in the account's March."""
    home = await build_home(app_client, settings)
    february = create_app(settings, database_url, today=lambda: date(2025, 2, 20))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=february), base_url="http://test"
        ) as early:
            body = await gql(
                early,
                "mutation($i: CreatePaymentInput!) { createPayment(input: $i) { payment { id } "
                "userErrors { field code message } } }",
                {"i": {"customerId": home.a, "accountId": home.account, "amountPence": 4000,
                       "scheduledAt": "2025-03-20T09:00:00Z", "idempotencyKey": "a-after"}},
                headers=home.headers["a"],
            )  # fmt: skip
    finally:
        await february.state.engine.dispose()
    assert body["data"]["createPayment"]["userErrors"] == [], body
    paid = body["data"]["createPayment"]["payment"]["id"]
    for status in ("PENDING", "PROCESSING", "SUCCEEDED"):
        await ok(
            app_client,
            "updatePaymentStatus",
            {"paymentId": paid, "status": status},
            "payment { id }",
        )

    async def ledger(who: str) -> Any:
        body = await gql(bare_client, LEDGER, {"on": "2025-04-30"}, headers=home.headers[who])
        assert "errors" not in body, body
        return body["data"]["viewer"]["customer"]

    a, b, owner = await ledger("a"), await ledger("b"), await ledger("owner")
    staff = await gql(
        app_client,
        'query($id: ID!) { node(id: $id) { ... on Account { balance(on: "2025-04-30") '
        "statements { month payments charges { total } } } } }",
        {"id": home.account},
    )
    months = {s["month"]: s for s in staff["data"]["node"]["statements"]}
    assert Decimal(months["2025-03-01"]["payments"]) == Decimal("40")

    # B: nothing of A's payment anywhere.
    [link_b] = b["accounts"]
    statements_b = link_b["account"]["statements"]
    assert [s["month"] for s in statements_b] == ["2025-03-01", "2025-04-01", "2025-05-01"]
    assert all(Decimal(s["payments"]) == 0 for s in statements_b)
    charges_b = sum(Decimal(s["charges"]["total"]) for s in statements_b)
    assert charges_b > 0
    assert Decimal(b["balance"]) == charges_b == Decimal(link_b["account"]["balance"])
    assert Decimal(statements_b[-1]["closingBalance"]) == charges_b
    assert all(Decimal(m["paymentsReceived"]) == 0 for m in b["monthlySummaries"])
    assert Decimal(b["monthlySummaries"][-1]["outstanding"]) == charges_b
    assert b["payments"]["edges"] == [] and link_b["account"]["payments"]["edges"] == []

    # A: her months, then March with her payment alone.
    [link_a] = a["accounts"]
    statements_a = link_a["account"]["statements"]
    assert [s["month"] for s in statements_a] == [
        "2024-12-01", "2025-01-01", "2025-02-01", "2025-03-01"
    ]  # fmt: skip
    march = statements_a[-1]
    assert Decimal(march["payments"]) == Decimal("40")
    assert Decimal(march["charges"]["total"]) == 0
    charges_a = sum(Decimal(s["charges"]["total"]) for s in statements_a)
    assert Decimal(march["openingBalance"]) == charges_a
    assert Decimal(march["closingBalance"]) == charges_a - 40
    assert Decimal(a["balance"]) == charges_a - 40 == Decimal(link_a["account"]["balance"])
    summaries_a = {m["month"]: m for m in a["monthlySummaries"]}
    assert Decimal(summaries_a["2025-03-01"]["paymentsReceived"]) == Decimal("40")
    assert Decimal(a["monthlySummaries"][-1]["outstanding"]) == charges_a - 40
    assert [e["node"]["id"] for e in a["payments"]["edges"]] == [paid]
    assert [e["node"]["id"] for e in link_a["account"]["payments"]["edges"]] == [paid]

    # The owner: the account, none of it.
    [link_o] = owner["accounts"]
    assert link_o["account"]["statements"] == [] and Decimal(owner["balance"]) == 0
    assert Decimal(staff["data"]["node"]["balance"]) == charges_a + charges_b - 40
