"""The breadth-first walk (flows_graphql/breadth_first.py) answers exactly as graphql-core.

Two apps over one database: queries walk breadth-first (with the compiler off,
`compiled=False`: tests/test_compiled.py compares it with graphql-core's walk), and
`breadth_first=False`, where graphql-core walks every operation. Every query here is
sent to both and must get the same HTTP status and the same JSON body, keys in the same
order, but for what legitimately differs per request (an error's `requestId`, and
`extensions.sqlStatements`, compared on their own: a query the fast walk answers takes
no more statements than graphql-core's walk, the dashboards exactly as many).

Whether the fast walk answered is seen by a spy on graphql-core's executor
(`StrawberryGraphQLCoreExecutionContext.execute_operation`, what the fast walk's
fallback `super().execute_operation` calls): a query the fast walk answers never
reaches it; one it abandons (a resolver raising) reaches it once; so does a mutation.
The standard app reaches it once per operation, which proves the spy is live.

The module builds its data once (tests/support/factories.py): ESCO "alpha" (5 customers, 14
months, one of every other entity from test_read_api's `add_extras`, plus a property
with no site, meter or account, a customer with no account or tariff, and a few
payments), ESCO "bravo" (3 customers, 3 months, a running billing run), and
"scratch", which only the mutation test writes to.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, cast

import asyncpg
import httpx
import pytest
import strawberry
from graphql import GraphQLNonNull, GraphQLObjectType, get_named_type, is_leaf_type
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from flows_graphql.app import create_app
from flows_graphql.config import Settings
from flows_graphql.db.request import parked
from flows_graphql.execution import DEFINITION, ExecutionContext, UndeclaredField, install
from flows_graphql.fields import DECLARED, ROW_TYPE, computed
from flows_graphql.schema import build_schema, schema
from flows_graphql.types.node import RowType
from tests.support import factories as f
from tests.support.api import TENANT, TODAY, asgi_client, bearer, comparable, gid
from tests.support.db import direct_dsn
from tests.support.documents import DASHBOARD, DASHBOARD_STATEMENTS, OUR_DASHBOARD
from tests.support.factories import EscoData, Extras, add_extras, empty_tables

# --- the world -------------------------------------------------------------------------


@dataclass
class Walks:
    fast: httpx.AsyncClient  # compiled=False: queries walk breadth-first
    standard: httpx.AsyncClient  # breadth_first=False: graphql-core's walk only
    headers: dict[str, dict[str, str]]  # admin, operator (of alpha), customer (alpha 0)
    conn: asyncpg.Connection
    alpha: EscoData
    bravo: EscoData
    scratch: EscoData
    extras: Extras
    bare_property: uuid.UUID  # no site, no supply meter, no account
    lonely: uuid.UUID  # a customer of alpha with no account, tariff or name
    engines: tuple[AsyncEngine, AsyncEngine]  # the apps' (fast, standard)


WEBHOOK = uuid.uuid4()


async def add_webhooks(conn: asyncpg.Connection, alpha: EscoData) -> None:
    """An endpoint with a delivery and its attempt: the webhook lists' rows."""
    await conn.execute(
        "INSERT INTO webhook_endpoints (id, esco_id, url, event_types, secret, created_by) "
        "VALUES ($1, $2, 'https://93.184.216.34/h', ARRAY['payment.created'], 'whsec_x', 's')",
        WEBHOOK,
        alpha.id,
    )
    delivery = await conn.fetchval(
        "INSERT INTO webhook_deliveries (esco_id, endpoint_id, event_id, event_type, body) "
        "VALUES ($1, $2, 1, 'payment.created', '{}') RETURNING id",
        alpha.id,
        WEBHOOK,
    )
    await conn.execute(
        "INSERT INTO webhook_attempts (esco_id, delivery_id, endpoint_id, event_id, event_type, "
        "attempt, outcome, status_code) VALUES ($1, $2, $3, 1, 'payment.created', 1, "
        "'failed', 500)",
        alpha.id,
        delivery,
        WEBHOOK,
    )


async def add_more(conn: asyncpg.Connection, alpha: EscoData, bravo: EscoData) -> tuple[Any, Any]:
    bare, lonely = uuid.uuid4(), uuid.uuid4()
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO properties (id, esco_id, plot) VALUES ($1, $2, 'P900')", bare, alpha.id
        )
        await conn.execute(
            "INSERT INTO customers (id, esco_id, email) VALUES ($1, $2, 'alpha.lonely@x.org')",
            lonely,
            alpha.id,
        )
        # Three more payments of customer 0, a second apart, for pages of edges.
        await conn.execute(
            "INSERT INTO payments (id, esco_id, customer_id, account_id, amount_pence, status, "
            "description, scheduled_at, idempotency_key, created_at) "
            "SELECT gen_random_uuid(), $1, $2, $3, 100 * n, s::payment_status, "
            "CASE WHEN n = 2 THEN NULL ELSE 'pay ' || n END, "
            "CASE WHEN n = 3 THEN timestamptz '2025-04-01 09:30:00+00' END, 'more-' || n, "
            "timestamptz '2025-03-01 12:00:00+00' + n * interval '1 second' "
            "FROM unnest(ARRAY[1, 2, 3], ARRAY['pending', 'succeeded', 'failed']) AS t(n, s)",
            alpha.id,
            alpha.customer_ids[0],
            alpha.account_ids[0],
        )
        # A run that has not finished: finishedAt is null.
        await conn.execute(
            "INSERT INTO billing_runs (id, esco_id, month, status, actor, customers_billed, total)"
            " VALUES (gen_random_uuid(), $1, '2025-03-01', 'running', 'system', 0, 0)",
            bravo.id,
        )
    return bare, lonely


@pytest.fixture(scope="module")
async def walks(settings: Settings, database_url: str) -> AsyncIterator[Walks]:
    await empty_tables(settings, database_url)
    # The breadth-first walk itself: the compiler (tests/test_compiled.py) off.
    fast_app = create_app(
        dataclasses.replace(settings, compiled=False), database_url, today=lambda: TODAY
    )
    standard_app = create_app(
        dataclasses.replace(settings, breadth_first=False), database_url, today=lambda: TODAY
    )
    conn = await asyncpg.connect(direct_dsn(database_url))
    try:
        alpha = await f.build_esco(conn, "alpha", customers=5, months=14)
        bravo = await f.build_esco(conn, "bravo", "london", customers=3, months=3)
        scratch = await f.build_esco(conn, "scratch", customers=1, months=1)
        extras = await add_extras(conn, alpha)
        bare, lonely = await add_more(conn, alpha, bravo)
        await add_webhooks(conn, alpha)
        headers = {
            "admin": bearer(settings, "admin"),
            "operator": bearer(settings, "operator", sub="op", escos=[str(alpha.id)]),
            "customer": bearer(
                settings, "customer", sub="c0", customer_id=str(alpha.customer_ids[0])
            ),
        }
        async with (
            asgi_client(fast_app) as fast,
            asgi_client(standard_app) as standard,
        ):
            engines = (fast_app.state.engine, standard_app.state.engine)
            yield Walks(
                fast, standard, headers, conn, alpha, bravo, scratch, extras, bare, lonely, engines
            )
    finally:
        await conn.close()
        await fast_app.state.engine.dispose()
        await standard_app.state.engine.dispose()


# --- the spy and the comparison --------------------------------------------------------


@dataclass
class Spy:
    calls: int = 0


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    """Counts the operations graphql-core's executor runs."""
    counter = Spy()
    original = StrawberryGraphQLCoreExecutionContext.execute_operation

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        counter.calls += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(StrawberryGraphQLCoreExecutionContext, "execute_operation", counting)
    return counter


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    fallbacks: int  # operations graphql-core's executor ran for this request

    @property
    def data(self) -> Any:
        return self.body["data"]

    @property
    def statements(self) -> int:
        count: int = self.body["extensions"]["sqlStatements"]
        return count


async def ask(
    client: httpx.AsyncClient,
    spy: Spy,
    text: str,
    variables: dict[str, Any] | None,
    headers: dict[str, str],
    operation_name: str | None = None,
) -> Answer:
    before = spy.calls
    payload = {"query": text, "variables": variables, "operationName": operation_name}
    response = await client.post("/graphql", json=payload, headers=headers)
    return Answer(response.status_code, response.json(), spy.calls - before)


async def both(
    w: Walks,
    spy: Spy,
    text: str,
    variables: dict[str, Any] | None = None,
    who: str = "admin",
    operation_name: str | None = None,
) -> tuple[Answer, Answer]:
    """(fast, standard): the same status and body from both apps, keys in the same order."""
    fast = await ask(w.fast, spy, text, variables, w.headers[who], operation_name)
    standard = await ask(w.standard, spy, text, variables, w.headers[who], operation_name)
    assert standard.fallbacks == 1, "the spy must see graphql-core's executor run"
    assert fast.status == standard.status, (fast.body, standard.body)
    fast_body, standard_body = comparable(fast.body), comparable(standard.body)
    assert fast_body == standard_body, (text, variables)
    assert json.dumps(fast_body) == json.dumps(standard_body), "the same keys in another order"
    return fast, standard


async def same_happy_answer(
    w: Walks,
    spy: Spy,
    text: str,
    variables: dict[str, Any] | None = None,
    who: str = "admin",
    operation_name: str | None = None,
    statements: int | None = None,
) -> Any:
    """Answered by the fast walk alone, without errors, exactly as graphql-core answers,
    with no more statements (with `statements`: both walks that many); returns the data.
    (graphql-core's count can vary by one from run to run on large selections: whether
    two loads of a loader share a batch depends on when the statements before them
    return. The fast walk's does not.)"""
    fast, standard = await both(w, spy, text, variables, who, operation_name)
    assert "errors" not in fast.body, fast.body
    assert fast.status == 200
    assert fast.fallbacks == 0, "the fast walk gave up on a happy-path query"
    assert fast.statements <= standard.statements
    if statements is not None:
        assert (fast.statements, standard.statements) == (statements, statements)
    return fast.data


# --- the switch ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, True), ("", True), ("1", True), ("0", False), ("false", False), ("off", False)],
)
def test_flows_breadth_first_switches_the_walk(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: bool
) -> None:
    if value is None:
        monkeypatch.delenv("FLOWS_BREADTH_FIRST", raising=False)
    else:
        monkeypatch.setenv("FLOWS_BREADTH_FIRST", value)
    assert Settings.from_env().breadth_first is expected


# --- the dashboards --------------------------------------------------------------------

YEAR = {"from": "2024-01-01", "to": "2024-12-01"}


# esco, customers page, account links (their accounts, properties and meters joined),
# circuits, usage with costs: one statement a level, plus TENANT.
OUR_DASHBOARD_STATEMENTS = TENANT + 5


async def test_operator_dashboard_takes_the_fast_walk(walks: Walks, spy: Spy) -> None:
    variables = {"code": "alpha", **YEAR}
    data = await same_happy_answer(
        walks, spy, OUR_DASHBOARD, variables, who="operator", statements=OUR_DASHBOARD_STATEMENTS
    )
    esco = data["esco"]
    assert (esco["code"], esco["name"]) == ("alpha", "ESCO alpha")
    customers = esco["customers"]["nodes"]
    # The five built customers, then the lonely one (emails sort "alpha.0…" < "alpha.l…").
    assert [c["email"] for c in customers] == [*walks.alpha.emails, "alpha.lonely@x.org"]
    assert customers[0]["id"] == gid("Customer", walks.alpha.customer_ids[0])
    assert customers[5]["accounts"] == [] and customers[5]["fullName"] is None
    meter = customers[3]["accounts"][0]["account"]["property"]["supplyMeter"]
    assert meter["serial"] == f.serial("alpha", 3)
    assert meter["circuits"] == [{"type": "HEAT"}, {"type": "POWER"}]
    assert [u["month"] for u in meter["monthlyUsage"]] == [
        m.isoformat() for m in walks.alpha.months[:12]
    ]
    assert meter["monthlyUsage"][4] == {
        "month": "2024-05-01",
        "powerKwh": str(f.power_kwh(3, 4)),
        "heatKwh": str(f.heat_kwh(3, 4)),
        "costs": {"total": str(f.costs(3, 4).total), "savings": str(f.costs(3, 4).savings)},
    }


@pytest.mark.parametrize("code", ["alpha", "bravo"])
async def test_read_api_dashboard_takes_the_fast_walk(walks: Walks, spy: Spy, code: str) -> None:
    esco = walks.alpha if code == "alpha" else walks.bravo
    variables = {"code": code, "n": 10, **YEAR}
    data = await same_happy_answer(
        walks, spy, DASHBOARD, variables, statements=DASHBOARD_STATEMENTS
    )
    nodes = data["esco"]["customers"]["nodes"]
    assert [c["email"] for c in nodes][: len(esco.emails)] == esco.emails
    usage = nodes[1]["accounts"][0]["account"]["property"]["supplyMeter"]["monthlyUsage"]
    assert len(usage) == min(12, len(esco.months))
    assert usage[2]["costs"]["savings"] == str(f.costs(1, 2).savings)
    assert nodes[2]["currentTariff"] == {"unitRate": str(f.unit_rate(2))}


# --- queries the fast walk answers -------------------------------------------------------


@dataclass(frozen=True)
class Case:
    text: str
    # The variables, from the world's ids.
    variables: Callable[[Walks], dict[str, Any]] | None
    # (some real values of the answer, what they must be): two walks cannot agree on
    # nothing.
    check: Callable[[Any, Walks], tuple[Any, Any]]
    operation_name: str | None = None


def _constant(variables: dict[str, Any]) -> Callable[[Walks], dict[str, Any]]:
    return lambda w: variables


def _customer(i: int) -> Callable[[Walks], str]:
    return lambda w: gid("Customer", w.alpha.customer_ids[i])


ESCO_FRAGMENTS = """
query($code: String!) {
  esco(code: $code) {
    ...EscoParts
    customers(first: 3) { nodes { ...CustomerParts ... on Customer { status } } }
  }
}
fragment EscoParts on Esco { code name tariffGeneration region { code name } ...More }
fragment More on Esco { appUrl sites { name properties { nodes { plot } } } }
fragment CustomerParts on Customer { email ... { fullName } }
"""

NODE_FRAGMENTS = """
query($id: ID!) {
  node(id: $id) {
    __typename
    id
    ... on Node { id }
    ...NodeId
    ... on Customer { email accounts { role account { accountNumber } } }
    ... on Meter { serial }
  }
}
fragment NodeId on Node { __typename id }
"""

NODES_MIXED = """
query($ids: [ID!]!) {
  nodes(ids: $ids) {
    __typename
    ...NodeParts
    ... on Meter { serial property { plot } circuits { type } }
    ... on Esco { code customers(first: 2) { totalCount } }
  }
}
fragment NodeParts on Node {
  id
  ... on Customer { email currentTariff { unitRate } }
  ... on MonthlyUsage { month powerKwh costs { total microgrid { power } } }
  ... on Property { plot site { code } }
  ... on CustomerTariff { periodStart discountPercent }
  ... on Region { code }
}
"""


def _mixed_ids(w: Walks) -> dict[str, Any]:
    a = w.alpha
    return {
        "ids": [
            gid("Customer", a.customer_ids[0]),
            gid("Meter", uuid.uuid4()),  # well-formed, no such row
            gid("Meter", a.meter_ids[1]),
            "garbage",
            gid("Esco", w.bravo.id),
            gid("MonthlyUsage", a.usage_ids[2][3]),
            gid("Property", a.property_ids[0]),
            gid("Property", w.bare_property),
            gid("Customer", a.customer_ids[0]),  # twice
            gid("CustomerTariff", f"{a.customer_ids[4]}|{f.FIRST_MONTH}"),
            gid("Region", "london"),
            gid("Account", a.customer_ids[0]),  # a uuid of another type
        ]
    }


def _mixed_check(data: Any, w: Walks) -> tuple[Any, Any]:
    nodes = data["nodes"]
    got = (
        [n and n["__typename"] for n in nodes],
        nodes[2]["property"],
        nodes[4]["customers"],
        nodes[5]["costs"]["total"],
        nodes[6]["site"],
        nodes[7],
        nodes[9]["discountPercent"],
    )
    expected = (
        [
            "Customer",
            None,
            "Meter",
            None,
            "Esco",
            "MonthlyUsage",
            "Property",
            "Property",
            "Customer",
            "CustomerTariff",
            "Region",
            None,
        ],
        {"plot": f.plot(1)},
        {"totalCount": 3},
        str(f.costs(2, 3).total),
        {"code": "north"},
        {
            "__typename": "Property",
            "id": gid("Property", w.bare_property),
            "plot": "P900",
            "site": None,
        },
        f.DISCOUNT_PERCENT,
    )
    return got, expected


ALIASES = """
query($from: Date!, $to: Date!) {
  esco(code: "alpha") {
    firstTwo: customers(first: 2) { nodes { email } pageInfo { hasNextPage endCursor } }
    lastTwo: customers(last: 2) { nodes { email } pageInfo { hasPreviousPage startCursor } }
    everyone: customers { totalCount }
  }
  small: esco(code: "alpha") { code }
  other: esco(code: "bravo") { code }
  nobody: esco(code: "nosuch") { code }
  meters(filter: {serialPrefix: "ALPHA-M000"}) {
    nodes {
      all: monthlyUsage { month }
      spring: monthlyUsage(from: "2024-03-01", to: "2024-05-01") { month powerKwh }
      year: monthlyUsage(from: $from, to: $to) { m: month }
    }
  }
}
"""

DIRECTIVES = """
query($a: Boolean!, $b: Boolean!) {
  esco(code: "alpha") {
    code
    name @include(if: $a)
    region @skip(if: $a) { code }
    customers(first: 2) @include(if: $b) { nodes { email status @skip(if: $b) } }
    ... on Esco @skip(if: $b) { appUrl }
    ...Parts @include(if: $a)
    ... @include(if: $b) { tariffGeneration }
  }
  regions @skip(if: $b) { code }
}
fragment Parts on Esco { sites { name } microgridTariffs { discountPercent } }
"""


def _directives_check(a: bool, b: bool) -> Callable[[Any, Walks], tuple[Any, Any]]:
    def check(data: Any, w: Walks) -> tuple[Any, Any]:
        esco = data["esco"]
        keys = ["code"]
        keys += ["name"] if a else ["region"]
        keys += ["customers"] if b else ["appUrl"]
        keys += ["sites", "microgridTariffs"] if a else []
        keys += ["tariffGeneration"] if b else []
        got = (list(esco), list(data), esco.get("customers"), esco.get("name"))
        expected = (
            keys,
            ["esco"] if b else ["esco", "regions"],
            {"nodes": [{"email": e} for e in w.alpha.emails[:2]]} if b else None,
            "ESCO alpha" if a else None,
        )
        return got, expected

    return check


TYPENAMES = """
query($id: ID!, $ids: [ID!]!) {
  __typename
  viewer { __typename role }
  node(id: $id) { __typename ... on Customer { __typename email } }
  nodes(ids: $ids) { __typename id }
  escos(first: 1) {
    __typename
    edges { __typename cursor node { __typename code region { __typename } } }
    pageInfo { __typename hasNextPage }
  }
}
"""

CONNECTIONS = """
{
  escos(first: 2) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges {
      cursor
      node {
        code
        customers(first: 2) {
          totalCount
          pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
          edges {
            cursor
            node {
              email
              payments(first: 3) {
                totalCount
                pageInfo { hasNextPage endCursor }
                edges { cursor node { amountPence status description scheduledAt } }
              }
              events { totalCount nodes { eventType } }
            }
          }
        }
        billingRuns(first: 2) { edges { cursor node { month status finishedAt } } }
      }
    }
  }
}
"""


def _connections_check(data: Any, w: Walks) -> tuple[Any, Any]:
    escos = data["escos"]
    alpha = escos["edges"][0]["node"]
    payments = alpha["customers"]["edges"][0]["node"]["payments"]
    runs = escos["edges"][1]["node"]["billingRuns"]["edges"]
    got = (
        escos["totalCount"],
        [e["node"]["code"] for e in escos["edges"]],
        escos["pageInfo"]["hasNextPage"],
        alpha["customers"]["totalCount"],
        payments["totalCount"],
        [e["node"] for e in payments["edges"]],
        payments["pageInfo"]["hasNextPage"],
        [e["node"]["finishedAt"] is None for e in runs],
    )
    expected = (
        3,
        ["alpha", "bravo"],
        True,
        6,
        4,
        [
            {
                "amountPence": 2500,
                "status": "CREATED",
                "description": "Top-up",
                "scheduledAt": None,
            },
            {
                "amountPence": 300,
                "status": "FAILED",
                "description": "pay 3",
                "scheduledAt": "2025-04-01T09:30:00+00:00",
            },
            {"amountPence": 200, "status": "SUCCEEDED", "description": None, "scheduledAt": None},
        ],
        True,
        [True, False],  # the running run of 2025-03, then 2024-03's
    )
    return got, expected


ROOT_LISTS = """
query($esco: ID!) {
  active: customers(
    filter: {status: ACTIVE, emailPrefix: "alpha."}, orderBy: CREATED_AT, first: 3
  ) { nodes { email status } }
  suspended: customers(filter: {status: SUSPENDED}) { nodes { email } }
  byEmail: customers(escoId: $esco, orderBy: EMAIL, last: 2) { nodes { email } }
  properties(escoId: $esco, orderBy: PLOT, filter: {plotPrefix: "P00"}, first: 2) {
    nodes { plot address }
  }
  decommissioned: meters(filter: {mode: DECOMMISSIONED}, orderBy: SERIAL) { nodes { serial } }
  billingRuns(filter: {status: FINALIZED}) { nodes { month status esco { code } } }
  benchmarkTariffs(regionCode: "south_west", from: "2024-02-01") { periodStart unitRate }
  regions { code name }
  contractTerms { type version title summary documentUrl }
}
"""


def _root_lists_check(data: Any, w: Walks) -> tuple[Any, Any]:
    got = {key: data[key] for key in ("suspended", "byEmail", "properties", "decommissioned")}
    got |= {
        "active": [c["status"] for c in data["active"]["nodes"]],
        "billingRuns": data["billingRuns"],
        "benchmarkTariffs": data["benchmarkTariffs"],
        "regions": len(data["regions"]),
        "contractTerms": data["contractTerms"],
    }
    expected = {
        "suspended": {"nodes": [{"email": w.alpha.emails[1]}]},
        "byEmail": {"nodes": [{"email": w.alpha.emails[4]}, {"email": "alpha.lonely@x.org"}]},
        "properties": {
            "nodes": [
                {"plot": "P000", "address": "P000 Solar Street"},
                {"plot": "P001", "address": "P001 Solar Street"},
            ]
        },
        "decommissioned": {"nodes": [{"serial": "SMALL-SPARE"}]},
        "active": ["ACTIVE"] * 3,
        "billingRuns": {
            "nodes": [{"month": "2024-03-01", "status": "FINALIZED", "esco": {"code": "alpha"}}]
        },
        "benchmarkTariffs": [{"periodStart": "2024-04-01", "unitRate": "0.25000"}],
        "regions": 14,
        "contractTerms": [
            {
                "type": "SUPPLY",
                "version": 2,
                "title": "Supply terms",
                "summary": None,
                "documentUrl": None,
            }
        ],
    }
    return got, expected


EMPTY_AND_NULL = """
query($lonely: ID!) {
  nobody: customers(filter: {emailPrefix: "nobody"}) {
    totalCount
    nodes { email }
    edges { cursor node { email } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
  none: escos(first: 0) { totalCount nodes { code } }
  esco(code: "bravo") {
    sites { name }
    microgridTariffs { unitRate }
    solarCreditTariffs { periodStart }
    contractTerms { title }
  }
  missing: esco(code: "nosuch") { code customers { totalCount } }
  lonely: node(id: $lonely) {
    ... on Customer {
      email fullName accounts { role } tariffs { unitRate } currentTariff { unitRate }
      monthlyCosts { total } invites { token } payments { totalCount nodes { id } }
    }
  }
  bare: properties(filter: {plotPrefix: "P9"}) {
    nodes {
      plot address site { name } supplyMeter { serial } account { accountNumber }
      accounts { accountNumber } solarInstallation { mcsCertificate } solarCredits { month }
    }
  }
  spare: meters(filter: {mode: DECOMMISSIONED}) {
    nodes { serial name hardware property { plot } circuits { type } monthlyUsage { month } }
  }
}
"""


def _empty_check(data: Any, w: Walks) -> tuple[Any, Any]:
    expected = {
        "nobody": {
            "totalCount": 0,
            "nodes": [],
            "edges": [],
            "pageInfo": {
                "hasNextPage": False,
                "hasPreviousPage": False,
                "startCursor": None,
                "endCursor": None,
            },
        },
        "none": {"totalCount": 3, "nodes": []},
        "esco": {
            "sites": [],
            "microgridTariffs": [],
            "solarCreditTariffs": [],
            "contractTerms": [],
        },
        "missing": None,
        "lonely": {
            "email": "alpha.lonely@x.org",
            "fullName": None,
            "accounts": [],
            "tariffs": [],
            "currentTariff": None,
            "monthlyCosts": [],
            "invites": [],
            "payments": {"totalCount": 0, "nodes": []},
        },
        "bare": {
            "nodes": [
                {
                    "plot": "P900",
                    "address": None,
                    "site": None,
                    "supplyMeter": None,
                    "account": None,
                    "accounts": [],
                    "solarInstallation": None,
                    "solarCredits": [],
                }
            ]
        },
        "spare": {
            "nodes": [
                {
                    "serial": "SMALL-SPARE",
                    "name": None,
                    "hardware": None,
                    "property": None,
                    "circuits": [],
                    "monthlyUsage": [],
                }
            ]
        },
    }
    return data, expected


MERGED = """
{
  esco(code: "alpha") { code customers(first: 2) { nodes { email } } }
  esco(code: "alpha") {
    name
    customers(first: 2) { totalCount nodes { status accounts { role } } }
  }
  ... on Query { esco(code: "alpha") { customers(first: 2) { nodes { email fullName } } } }
  viewer { role }
  viewer { subject escos { code } }
}
"""


def _merged_check(data: Any, w: Walks) -> tuple[Any, Any]:
    esco = data["esco"]
    got = (list(data), list(esco), esco["customers"]["totalCount"], esco["customers"]["nodes"][1])
    expected = (
        ["esco", "viewer"],
        ["code", "customers", "name"],
        6,
        {
            "email": w.alpha.emails[1],
            "status": "SUSPENDED",
            "accounts": [{"role": "OCCUPIER"}],
            "fullName": "Customer 1",
        },
    )
    viewer = {
        "role": "ADMIN",
        "subject": "development",
        "escos": [{"code": "alpha"}, {"code": "bravo"}, {"code": "scratch"}],
    }
    return (*got, data["viewer"]), (*expected, viewer)


SCALARS = """
query($customer: ID!) {
  node(id: $customer) {
    ... on Customer {
      uuid status
      accounts {
        id role startDate endDate
        account {
          uuid accountNumber status openedOn closedOn
          contractTerms { type version }
          events { nodes { eventType notes actor data createdAt } }
          auditLogs { nodes { action changes eventType data } }
          property {
            solarInstallation { mcsCertificate declaredNetCapacityKw commissioningDate }
            solarCredits { month creditPence }
          }
        }
      }
      invites { token inviteUrl status acceptedAt }
      events { nodes { eventType data } }
      tariffs { periodStart discountPercent unitRate standingCharge }
      payments(first: 2) { nodes { currency status scheduledAt } }
      monthlyCosts(from: "2024-02-01", to: "2024-02-01") {
        month power heat standingCharge total savings
        microgrid { power heat standingCharge total }
        benchmark { total }
        usage { heatKwh solarKwh source }
        billingRun { uuid status startedAt customersBilled total }
      }
    }
  }
  esco(code: "alpha") {
    uuid tariffGeneration
    microgridTariffs {
      periodStart unitRate emergencyCredit ecreditButtonThreshold debtRecoveryRate
    }
    solarCreditTariffs { creditPencePerYear creditPencePerDay }
  }
  meters(filter: {mode: DECOMMISSIONED}) { nodes { mode } }
  circuits: meters(first: 1) { nodes { circuits { uuid type name } } }
}
"""


def _scalars_check(data: Any, w: Walks) -> tuple[Any, Any]:
    customer = data["node"]
    link = customer["accounts"][0]
    account = link["account"]
    costs = customer["monthlyCosts"][0]
    run = costs.pop("billingRun")
    got = {
        "uuid": customer["uuid"],
        "status": customer["status"],
        "link": {k: link[k] for k in ("role", "startDate", "endDate")},
        "account": {k: account[k] for k in ("uuid", "status", "openedOn", "closedOn")},
        "terms": account["contractTerms"],
        "event": {k: account["events"]["nodes"][0][k] for k in ("eventType", "notes", "actor")},
        "audit": account["auditLogs"]["nodes"],
        "property": account["property"],
        "invite": {k: customer["invites"][0][k] for k in ("token", "status", "acceptedAt")},
        "events": customer["events"]["nodes"],
        "tariffs": customer["tariffs"],
        "payment": customer["payments"]["nodes"],
        "costs": costs,
        "run": (run["uuid"], run["status"], run["startedAt"][-6:], run["customersBilled"]),
        "esco": data["esco"],
        "meters": data["meters"],
        "circuits": [c["type"] for c in data["circuits"]["nodes"][0]["circuits"]],
    }
    c = f.costs(0, 1)
    expected = {
        "uuid": str(w.alpha.customer_ids[0]),
        "status": "ACTIVE",
        "link": {"role": "OCCUPIER", "startDate": "2024-01-01", "endDate": None},
        "account": {
            "uuid": str(w.alpha.account_ids[0]),
            "status": "ACTIVE",
            "openedOn": "2024-01-01",
            "closedOn": None,
        },
        "terms": {"type": "SUPPLY", "version": 2},
        "event": {"eventType": "OPENED", "notes": "welcome", "actor": "system"},
        "audit": [
            {
                "action": "openAccount",
                "changes": {"status": {"new": "active"}},
                "eventType": "openAccount",
                "data": {"status": {"new": "active"}},
            }
        ],
        "property": {
            "solarInstallation": {
                "mcsCertificate": "MCS-0001",
                "declaredNetCapacityKw": "3.25",
                "commissioningDate": "2023-06-01",
            },
            "solarCredits": [{"month": "2024-01-01", "creditPence": 1234}],
        },
        "invite": {"token": str(w.extras.invite), "status": "PENDING", "acceptedAt": None},
        "events": [{"eventType": "updated", "data": {"changed": {}}}],
        "tariffs": [
            {
                "periodStart": "2024-01-01",
                "discountPercent": f.DISCOUNT_PERCENT,
                "unitRate": str(f.unit_rate(0)),
                "standingCharge": str(f.standing_charge(0)),
            }
        ],
        "payment": [
            {"currency": "GBP", "status": "CREATED", "scheduledAt": None},
            {"currency": "GBP", "status": "FAILED", "scheduledAt": "2025-04-01T09:30:00+00:00"},
        ],
        "costs": {
            "month": "2024-02-01",
            "power": str(c.power),
            "heat": str(c.heat),
            "standingCharge": str(c.standing_charge),
            "total": str(c.total),
            "savings": str(c.savings),
            "microgrid": {
                "power": str(c.microgrid[0]),
                "heat": str(c.microgrid[1]),
                "standingCharge": str(c.microgrid[2]),
                "total": str(c.microgrid[3]),
            },
            "benchmark": {"total": str(c.benchmark[3])},
            "usage": {"heatKwh": str(f.heat_kwh(0, 1)), "solarKwh": "0.000", "source": "METER"},
        },
        "run": (str(w.alpha.billing_run_ids[1]), "COMPLETED", "+00:00", 5),
        "esco": {
            "uuid": str(w.alpha.id),
            "tariffGeneration": "AUTO",
            "microgridTariffs": [
                {
                    "periodStart": "2024-01-01",
                    "unitRate": "0.2205",
                    "emergencyCredit": "10",
                    "ecreditButtonThreshold": "5",
                    "debtRecoveryRate": "1",
                }
            ],
            "solarCreditTariffs": [{"creditPencePerYear": "5000", "creditPencePerDay": "13.6612"}],
        },
        "meters": {"nodes": [{"mode": "DECOMMISSIONED"}]},
        "circuits": ["HEAT", "POWER"],
    }
    return got, expected


INTROSPECTION = """
{
  __schema { queryType { name } mutationType { name } directives { name locations } }
  __type(name: "Customer") {
    name kind
    interfaces { name }
    fields {
      name args { name defaultValue } type { kind name ofType { kind name ofType { name } } }
    }
  }
  node: __type(name: "Node") { kind possibleTypes { name } }
  status: __type(name: "CustomerStatus") { enumValues { name } }
}
"""


def _introspection_check(data: Any, w: Walks) -> tuple[Any, Any]:
    customer = data["__type"]
    got = (
        data["__schema"]["queryType"],
        customer["interfaces"],
        next(f for f in customer["fields"] if f["name"] == "monthlyCosts"),
        len(data["node"]["possibleTypes"]),
        data["status"],
    )
    expected = (
        {"name": "Query"},
        [{"name": "Node"}],
        {
            "name": "monthlyCosts",
            "args": [
                {"name": "from", "defaultValue": "null"},
                {"name": "to", "defaultValue": "null"},
            ],
            "type": {
                "kind": "NON_NULL",
                "name": None,
                "ofType": {"kind": "LIST", "name": None, "ofType": {"name": None}},
            },
        },
        26,
        {"enumValues": [{"name": "ACTIVE"}, {"name": "INACTIVE"}, {"name": "SUSPENDED"}]},
    )
    return got, expected


CASES: dict[str, Case] = {
    "named-and-inline-fragments-on-objects": Case(
        ESCO_FRAGMENTS,
        lambda w: {"code": "alpha"},
        lambda d, w: (
            (d["esco"]["code"], d["esco"]["sites"], d["esco"]["customers"]["nodes"][1]),
            (
                "alpha",
                [{"name": "North", "properties": {"nodes": [{"plot": "P000"}]}}],
                {"email": w.alpha.emails[1], "fullName": "Customer 1", "status": "SUSPENDED"},
            ),
        ),
    ),
    "fragments-on-node-interface": Case(
        NODE_FRAGMENTS,
        lambda w: {"id": _customer(2)(w)},
        lambda d, w: (
            {k: v for k, v in d["node"].items() if k != "accounts"},
            {"__typename": "Customer", "id": _customer(2)(w), "email": w.alpha.emails[2]},
        ),
    ),
    "node-of-an-unknown-id-is-null": Case(
        NODE_FRAGMENTS,
        lambda w: {"id": gid("Customer", uuid.uuid4())},
        lambda d, w: (d, {"node": None}),
    ),
    "nodes-of-mixed-types-and-unknown-ids": Case(NODES_MIXED, _mixed_ids, _mixed_check),
    "aliases-with-different-arguments": Case(
        ALIASES,
        lambda w: dict(YEAR),
        lambda d, w: (
            (
                [c["email"] for c in d["esco"]["firstTwo"]["nodes"]],
                [c["email"] for c in d["esco"]["lastTwo"]["nodes"]],
                d["esco"]["everyone"],
                (d["small"], d["other"], d["nobody"]),
                len(d["meters"]["nodes"][0]["all"]),
                d["meters"]["nodes"][0]["spring"],
                len(d["meters"]["nodes"][0]["year"]),
            ),
            (
                w.alpha.emails[:2],
                [w.alpha.emails[4], "alpha.lonely@x.org"],
                {"totalCount": 6},
                ({"code": "alpha"}, {"code": "bravo"}, None),
                14,
                [
                    {"month": f"2024-0{m + 1}-01", "powerKwh": str(f.power_kwh(0, m))}
                    for m in (2, 3, 4)
                ],
                12,
            ),
        ),
    ),
    **{
        f"skip-include-a={a}-b={b}": Case(
            DIRECTIVES,
            _constant({"a": a, "b": b}),
            _directives_check(a, b),
        )
        for a in (True, False)
        for b in (True, False)
    },
    "typename-at-root-on-objects-and-interfaces": Case(
        TYPENAMES,
        lambda w: {"id": _customer(0)(w), "ids": [_customer(1)(w), gid("Esco", w.bravo.id), "x"]},
        lambda d, w: (
            (
                d["__typename"],
                d["viewer"],
                d["node"],
                [n and n["__typename"] for n in d["nodes"]],
                d["escos"]["__typename"],
                d["escos"]["edges"][0]["__typename"],
                d["escos"]["edges"][0]["node"],
                d["escos"]["pageInfo"],
            ),
            (
                "Query",
                {"__typename": "Viewer", "role": "ADMIN"},
                {"__typename": "Customer", "email": w.alpha.emails[0]},
                ["Customer", "Esco", None],
                "EscoConnection",
                "EscoEdge",
                {"__typename": "Esco", "code": "alpha", "region": {"__typename": "Region"}},
                {"__typename": "PageInfo", "hasNextPage": True},
            ),
        ),
    ),
    "nested-connections-edges-pageinfo-totalcount": Case(CONNECTIONS, None, _connections_check),
    "root-lists-with-filters-and-order": Case(
        ROOT_LISTS, lambda w: {"esco": gid("Esco", w.alpha.id)}, _root_lists_check
    ),
    "viewer": Case(
        "{ viewer { role subject escos { code } customer { email } } }",
        None,
        lambda d, w: (
            d["viewer"],
            {
                "role": "ADMIN",
                "subject": "development",
                "escos": [{"code": "alpha"}, {"code": "bravo"}, {"code": "scratch"}],
                "customer": None,
            },
        ),
    ),
    "empty-lists-and-null-relations": Case(
        EMPTY_AND_NULL, lambda w: {"lonely": gid("Customer", w.lonely)}, _empty_check
    ),
    "same-field-twice-merged": Case(MERGED, None, _merged_check),
    "enums-decimals-dates-datetimes-uuids-json": Case(
        SCALARS, lambda w: {"customer": _customer(0)(w)}, _scalars_check
    ),
    "introspection": Case(INTROSPECTION, None, _introspection_check),
    "operation-name-and-variable-defaults": Case(
        """
        query Other { viewer { role } }
        query Chosen($n: Int = 2, $code: String! = "bravo") {
          esco(code: $code) { code customers(first: $n) { nodes { email } } }
        }
        """,
        None,
        lambda d, w: (
            d,
            {
                "esco": {
                    "code": "bravo",
                    "customers": {"nodes": [{"email": e} for e in w.bravo.emails[:2]]},
                }
            },
        ),
        operation_name="Chosen",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_fast_walk_answers_as_graphql_core(walks: Walks, spy: Spy, name: str) -> None:
    case = CASES[name]
    variables = case.variables(walks) if case.variables else None
    data = await same_happy_answer(walks, spy, case.text, variables, "admin", case.operation_name)
    got, expected = case.check(data, walks)
    assert got == expected


# --- every field, generated from the schema ------------------------------------------------


def every_field(object_type: GraphQLObjectType, depth: int) -> str:
    """Every field of `object_type` that needs no argument: leaves, and `depth` levels
    of objects below (connections as two rows with their page info)."""
    parts = []
    for name, field in object_type.fields.items():
        if any(isinstance(arg.type, GraphQLNonNull) for arg in field.args.values()):
            continue
        inner = get_named_type(field.type)
        if is_leaf_type(inner):
            parts.append(name)
        elif depth > 0 and isinstance(inner, GraphQLObjectType):
            if inner.name.endswith("Connection"):
                node = get_named_type(inner.fields["nodes"].type)
                assert isinstance(node, GraphQLObjectType)
                parts.append(
                    f"{name}(first: 2) {{ totalCount pageInfo {{ hasNextPage endCursor }} "
                    f"edges {{ cursor }} nodes {{ {every_field(node, depth - 1)} }} }}"
                )
            else:
                parts.append(f"{name} {{ {every_field(inner, depth - 1)} }}")
    return " ".join(parts)


# root list → (its arguments, how deep, the first rows' key field and values)
EVERY_FIELD = {
    "escos": ("first: 3", 2, "code", ["alpha", "bravo", "scratch"]),
    "customers": ('first: 6, filter: {emailPrefix: "alpha"}', 2, "email", None),
    "properties": ('first: 6, filter: {plotPrefix: "P"}', 2, "plot", None),
    "meters": ("first: 7", 2, "serial", None),
    "billingRuns": ('first: 3, filter: {month: "2024-02-01"}', 2, "month", ["2024-02-01"] * 2),
}


@pytest.mark.parametrize("root", list(EVERY_FIELD))
async def test_every_field_two_levels_deep(walks: Walks, spy: Spy, root: str) -> None:
    """Every field of every row type the root list reaches (with projections of every
    shape for the loaders): the fast walk answers it alone, as graphql-core does."""
    args, depth, key, first_rows = EVERY_FIELD[root]
    connection = get_named_type(schema._schema.query_type.fields[root].type)  # type: ignore[union-attr]
    assert isinstance(connection, GraphQLObjectType)
    node = get_named_type(connection.fields["nodes"].type)
    assert isinstance(node, GraphQLObjectType)
    text = f"{{ {root}({args}) {{ totalCount nodes {{ {every_field(node, depth)} }} }} }}"
    data = await same_happy_answer(walks, spy, text)
    rows = data[root]["nodes"]
    assert len(rows) >= 2
    expected = {
        "customers": [*walks.alpha.emails, "alpha.lonely@x.org"],
        "properties": [f.plot(0)] * 3 + [f.plot(1)] * 2 + [f.plot(2)],
        "meters": [f.serial("alpha", i) for i in range(5)] + [f.serial("bravo", i) for i in (0, 1)],
    }.get(root, first_rows)
    assert [row[key] for row in rows] == expected


# --- to-one chains in one statement -------------------------------------------------------
# A to-one row found by its primary key is LEFT JOINed into its parent's statement
# (fields.relation, loaders/base.py's Joined): the links of customers carry their
# customer, its ESCO and region, and their account, its property and supply meter.

CHAINS = """{
  customers(first: 6, filter: {emailPrefix: "alpha"}) {
    nodes {
      email
      accounts {
        role
        customer { email esco { code region { code name } } }
        account { accountNumber property { plot supplyMeter { serial mode } } }
      }
    }
  }
}"""


@pytest.mark.parametrize("who", ["admin", "operator", "customer"])
async def test_to_one_chains_are_one_statement(walks: Walks, spy: Spy, who: str) -> None:
    # the customers page, and the links with their six rows joined: two statements,
    # where loading each to-one row on its own took six more.
    data = await same_happy_answer(walks, spy, CHAINS, who=who, statements=TENANT + 2)
    nodes = data["customers"]["nodes"]
    expected = walks.alpha.emails[:1] if who == "customer" else walks.alpha.emails
    with_links = [n for n in nodes if n["accounts"]]
    assert [n["email"] for n in with_links] == expected
    for i, node in enumerate(with_links):
        (link,) = node["accounts"]
        assert link["customer"] == {
            "email": node["email"],
            "esco": {"code": "alpha", "region": {"code": "south_west", "name": "South West"}},
        }
        assert link["account"]["property"]["plot"] == f.plot(i)
        assert link["account"]["property"]["supplyMeter"]["serial"] == f.serial("alpha", i)


async def test_a_chain_stops_where_the_viewer_may_not_read(walks: Walks, spy: Spy) -> None:
    """A joined row the viewer may not read is null, as its own loader would answer:
    a customer does not see billing runs (MonthlyCosts.billingRun)."""
    text = """query($id: ID!) { node(id: $id) { ... on Customer {
        monthlyCosts(from: "2024-01-01", to: "2024-02-01") {
          month usage { month meter { serial } } billingRun { month esco { code } } } } } }"""
    variables = {"id": gid("Customer", walks.alpha.customer_ids[0])}
    seen = {}
    for who in ("admin", "customer"):
        data = await same_happy_answer(walks, spy, text, variables, who=who)
        seen[who] = data["node"]["monthlyCosts"]
    assert [c["billingRun"] for c in seen["customer"]] == [None, None]
    assert [c["billingRun"]["esco"] for c in seen["admin"]] == [{"code": "alpha"}] * 2
    assert [c["usage"]["meter"]["serial"] for c in seen["customer"]] == [f.serial("alpha", 0)] * 2


# --- every resolver reads only the columns it declares -----------------------------------
# A resolver of a row type names the columns it reads (flows_graphql/fields.py), and the
# loader that fetches its row fetches those: one that read another column would find it
# only when some other field of the same selection had asked for it. Served from a build
# of the schema whose resolvers get their row as a DeclaredRow (which raises on any other
# column), through both walks, every field of the lists above must answer as before; and
# each hand-written resolver (fields.computed, the ids) must have been tried so.


# Plain root lists (not connections): their arguments, how deep.
LISTS = {
    "benchmarkTariffs": ('from: "2000-01-01"', 1),
    "regions": ("", 1),
    "webhookEndpoints": ("first: 5", 1),
    "webhookDeliveries": (f'endpointId: "{WEBHOOK}", first: 5', 1),
}


def _every_field_of(built: Any, root: str, args: str, depth: int) -> str:
    """A query of every field `depth` levels below the rows of the root list `root`."""
    found = get_named_type(built._schema.query_type.fields[root].type)
    if found.name.endswith("Connection"):
        node = get_named_type(found.fields["nodes"].type)
        return f"{{ {root}({args}) {{ nodes {{ {every_field(node, depth)} }} }} }}"
    arguments = f"({args})" if args else ""
    return f"{{ {root}{arguments} {{ {every_field(found, depth)} }} }}"


def _hand_written(built: Any) -> set[str]:
    """`Type.field` of every hand-written resolver of a row type (the ones checked)."""
    out = set()
    for graphql_type in built._schema.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType):
            continue
        if not graphql_type.extensions.get(ROW_TYPE):
            continue
        for name, graphql_field in graphql_type.fields.items():
            declared = graphql_field.extensions[DEFINITION].metadata.get(DECLARED)
            if declared is not None and declared.hand_written:
                out.add(f"{graphql_type.name}.{name}")
    return out


async def test_every_resolver_reads_only_the_columns_it_declares(
    walks: Walks, spy: Spy, settings: Settings, database_url: str
) -> None:
    seen: set[str] = set()
    strict = build_schema(strict_rows=seen)
    apps = [
        create_app(s, database_url, today=lambda: TODAY, graphql_schema=strict)
        for s in (settings, dataclasses.replace(settings, breadth_first=False))
    ]
    try:
        for app in apps:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://test"
            ) as client:
                roots = {**{root: case[:2] for root, case in EVERY_FIELD.items()}, **LISTS}
                for root, (args, depth) in roots.items():
                    text = _every_field_of(strict, root, args, depth)
                    # Both apps of `walks` are asked alike: their rate budgets stay equal.
                    expected, _ = await both(walks, spy, text)
                    got = await ask(client, spy, text, None, walks.headers["admin"])
                    assert "errors" not in got.body, got.body["errors"][:3]
                    assert got.body["data"] == expected.body["data"], root
    finally:
        for app in apps:
            await app.state.engine.dispose()
    assert _hand_written(strict) - seen == set(), "hand-written resolvers never tried"
    assert "BillingRun.skipped" in seen and "MonthlyCosts.savings" in seen


@strawberry.type
class Sneaky(RowType):
    @computed("a", description="Declares a, reads b.")
    def sneaky(self) -> int:
        return int(getattr(self, "b", 0))

    @computed("a", description="Reads what it declares.")
    def honest(self) -> int:
        return int(self.a)


@strawberry.type
class SneakyQuery:
    @strawberry.field
    def thing(self) -> Sneaky:
        return cast(Sneaky, SimpleNamespace(a=1, b=2, _fields=("a", "b")))


def test_a_resolver_reading_an_undeclared_column_fails() -> None:
    """The check above can fail: a computed field reading a column it did not declare
    raises on a DeclaredRow, even through `getattr` with a default."""
    built = strawberry.Schema(query=SneakyQuery, execution_context_class=ExecutionContext)
    seen: set[str] = set()
    install(built, strict_rows=seen)
    assert built.execute_sync("{ thing { honest } }").data == {"thing": {"honest": 1}}
    result = built.execute_sync("{ thing { sneaky } }")
    assert result.errors and "Sneaky.sneaky reads `b`" in result.errors[0].message
    assert seen == {"Sneaky.honest", "Sneaky.sneaky"}
    # Without the check the same resolver answers, silently reading `b`.
    plain = strawberry.Schema(query=SneakyQuery, execution_context_class=ExecutionContext)
    install(plain)
    assert plain.execute_sync("{ thing { sneaky } }").data == {"thing": {"sneaky": 2}}


@strawberry.type
class Forgetful(RowType):
    a: int

    @strawberry.field(description="Declares nothing.")
    def forgetful(self) -> int:
        return self.a


@strawberry.type
class ForgetfulQuery:
    @strawberry.field
    def thing(self) -> Forgetful:
        return Forgetful(a=1)


def test_a_row_type_resolver_must_declare_its_columns() -> None:
    """Forgetting the declaration is refused when the schema is built."""
    built = strawberry.Schema(query=ForgetfulQuery, execution_context_class=ExecutionContext)
    with pytest.raises(UndeclaredField, match=r"Forgetful\.forgetful has a resolver"):
        install(built)


# --- FOUND: objects with nothing selected ------------------------------------------------
# Found by test_fuzz.py's test_generated_queries_same_on_both_walks: an object whose
# selection is empty for its runtime type (a fragment on another type only, or every
# field skipped) is `{}` for graphql-core; the fast walk crashed on it ("coroutine raised
# StopIteration", answered as data null with a GRAPHQL_VALIDATION_FAILED error) while
# Walk.objects built its rows with zip(*columns), which yields no row at all when there
# are no columns (the uncommitted change that became d4bf509, which fixed it).

EMPTY_SELECTIONS: dict[str, tuple[str, Callable[[Walks], dict[str, Any]] | None, Any]] = {
    "fragment-on-another-type-only": (
        "query($id: ID!) { node(id: $id) { ... on SolarInstallation { commissioningDate } } }",
        lambda w: {"id": gid("Esco", w.alpha.id)},
        {"node": {}},
    ),
    "every-field-skipped": ('{ esco(code: "alpha") { code @skip(if: true) } }', None, {"esco": {}}),
    "empty-for-some-types-of-a-list": (
        "query($ids: [ID!]!) { nodes(ids: $ids) { ... on Customer { email } } }",
        lambda w: {"ids": [gid("Esco", w.alpha.id), gid("Customer", w.alpha.customer_ids[0])]},
        {"nodes": [{}, {"email": "alpha.000@example.com"}]},
    ),
    "empty-in-every-item-of-a-list": (
        "{ escos { nodes { ... @include(if: false) { code } } } }",
        None,
        {"escos": {"nodes": [{}, {}, {}]}},
    ),
}


@pytest.mark.parametrize("name", list(EMPTY_SELECTIONS))
async def test_found_objects_with_nothing_selected(walks: Walks, spy: Spy, name: str) -> None:
    text, variables, expected = EMPTY_SELECTIONS[name]
    data = await same_happy_answer(walks, spy, text, variables(walks) if variables else None)
    assert data == expected


# --- errors: graphql-core's answer, through the fallback ----------------------------------

ERRORS: dict[str, tuple[str, Callable[[Walks], dict[str, Any]] | None]] = {
    "root-connection-first-negative": ("{ escos(first: -1) { totalCount } }", None),
    "root-connection-last-negative-in-variable": (
        "query($n: Int) { customers(last: $n) { totalCount } regions { code } }",
        lambda w: {"n": -5},
    ),
    "first-and-last": ("{ meters(first: 1, last: 1) { totalCount } }", None),
    "not-a-cursor": ('{ billingRuns(after: "garbage") { nodes { month } } }', None),
    "nested-connection-first-negative": (
        '{ esco(code: "alpha") { code customers(first: -1) { totalCount } } regions { code } }',
        None,
    ),
    "error-in-every-item-of-a-list": (
        "{ escos { nodes { code customers(first: -1) { totalCount } } } viewer { role } }",
        None,
    ),
    "error-below-a-nullable-node": (
        "query($id: ID!) { node(id: $id) { id ... on Customer { payments(first: -1) "
        "{ totalCount } } } viewer { role } }",
        lambda w: {"id": _customer(0)(w)},
    ),
    "abandoned-beside-a-deep-sibling": (
        # The sibling subtree is still loading when the other one gives up.
        """{ esco(code: "alpha") {
          x: customers(first: 1) { nodes { payments(first: -1) { totalCount } } }
          y: customers(first: 50) { nodes { accounts { account { property { supplyMeter {
            circuits { meters { property { account { customers { customer { email } } } } } }
            monthlyUsage { costs { total billingRun { esco { code } } } }
          } } } } } }
        } regions { code } }""",
        None,
    ),
    "invalid-esco-id": ('{ customers(escoId: "garbage") { nodes { id } } }', None),
    "invalid-esco-id-of-another-type": (
        'query($id: ID) { properties(escoId: $id) { nodes { id } } esco(code: "alpha") { code } }',
        lambda w: {"id": gid("Customer", w.alpha.customer_ids[0])},
    ),
    "invalid-esco-id-beside-good-data": (
        '{ meters(escoId: "") { nodes { id } } a: esco(code: "alpha") { code } '
        'b: esco(code: "alpha") { customers(last: -1) { totalCount } } }',
        None,
    ),
}


@pytest.mark.parametrize("name", list(ERRORS))
async def test_errors_are_graphql_cores_through_the_fallback(
    walks: Walks, spy: Spy, name: str
) -> None:
    text, variables = ERRORS[name]
    fast, _ = await both(walks, spy, text, variables(walks) if variables else None)
    assert fast.fallbacks == 1, "the fast walk must hand errors to graphql-core"
    errors = fast.body["errors"]
    assert errors and all(e["extensions"]["code"] == "INVALID" for e in errors), errors
    assert all(e.get("path") for e in errors), errors


async def test_errors_keep_graphql_cores_partial_data(walks: Walks, spy: Spy) -> None:
    """Spelled out for one case: the error's path, and the sibling data kept."""
    text, _ = ERRORS["nested-connection-first-negative"]
    fast, _ = await both(walks, spy, text)
    assert fast.data["esco"] is None  # customers is non-null: the null reaches esco
    assert len(fast.data["regions"]) == 14
    assert fast.body["errors"] == [
        {
            "message": "`first` must be between 0 and 100.",
            "locations": [{"line": 1, "column": 30}],
            "path": ["esco", "customers"],
            "extensions": {"code": "INVALID", "argument": "first"},
        }
    ]


def _walk_tasks() -> list[str]:
    return [
        repr(task.get_coro())
        for task in asyncio.all_tasks()
        if "Walk." in getattr(task.get_coro(), "__qualname__", "")
    ]


async def test_an_abandoned_walk_leaves_nothing_behind(walks: Walks, spy: Spy) -> None:
    """The subtree beside the one that gave up may still be running when graphql-core
    starts over; nothing of the fast walk lingers after the response, and the request's
    connection is back in the pool."""
    text, _ = ERRORS["abandoned-beside-a-deep-sibling"]
    fast, _ = await both(walks, spy, text)
    assert fast.data["esco"] is None and len(fast.data["regions"]) == 14
    assert [e["path"] for e in fast.body["errors"]] == [["esco", "x", "nodes", 0, "payments"]]
    await asyncio.sleep(0.05)
    assert _walk_tasks() == [], "fast-walk tasks outlived their response"
    held = [engine.pool.checkedout() - parked(engine) for engine in walks.engines]
    assert held == [0, 0]


async def test_invalid_documents_reach_no_walk(walks: Walks, spy: Spy) -> None:
    """Validation refuses them before execution: the same answer, no executor at all."""
    text = "{ escos { nodes { cod } } }"
    for client in (walks.fast, walks.standard):
        answer = await ask(client, spy, text, None, walks.headers["admin"])
        assert answer.fallbacks == 0
        assert [e["extensions"]["code"] for e in answer.body["errors"]] == [
            "GRAPHQL_VALIDATION_FAILED"
        ]


# --- mutations ----------------------------------------------------------------------------

CREATE_SITE = """
mutation($input: CreateSiteInput!) {
  createSite(input: $input) { site { code name esco { code } } userErrors { code } }
}
"""


async def test_mutations_never_take_the_fast_walk(walks: Walks, spy: Spy) -> None:
    variables = {"input": {"escoId": gid("Esco", walks.scratch.id), "code": "bf", "name": "BF"}}
    answer = await ask(walks.fast, spy, CREATE_SITE, variables, walks.headers["admin"])
    assert answer.status == 200
    assert answer.data == {
        "createSite": {
            "site": {"code": "bf", "name": "BF", "esco": {"code": "scratch"}},
            "userErrors": [],
        }
    }
    assert answer.fallbacks == 1
    count = await walks.conn.fetchval(
        "SELECT count(*) FROM sites WHERE esco_id = $1", walks.scratch.id
    )
    assert count == 1


# --- tenants ------------------------------------------------------------------------------

OPERATOR_VIEW = """
query($ids: [ID!]!, $from: Date!, $to: Date!) {
  viewer { role escos { code } }
  escos {
    totalCount
    nodes {
      code
      customers(first: 3) {
        nodes {
          email
          accounts { account { property { plot supplyMeter {
            serial
            monthlyUsage(from: $from, to: $to) { month costs { total billingRun { month status } } }
          } } } }
        }
      }
    }
  }
  customers(first: 100) { totalCount }
  nodes(ids: $ids) { __typename id }
  other: esco(code: "bravo") { code }
}
"""

CUSTOMER_VIEW = """
query($ids: [ID!]!, $from: Date!, $to: Date!) {
  viewer {
    role
    escos { code }
    customer {
      email
      monthlyCosts(from: $from, to: $to) { month total billingRun { month } usage { powerKwh } }
      payments(first: 5) { totalCount nodes { amountPence } }
      accounts { account { property { plot supplyMeter { serial } } } }
    }
  }
  customers { totalCount nodes { email } }
  nodes(ids: $ids) { __typename id }
  esco(code: "alpha") { code customers(first: 5) { totalCount } }
  meters { totalCount }
}
"""


def _tenant_ids(w: Walks) -> list[str]:
    return [
        gid("Customer", w.alpha.customer_ids[0]),
        gid("Customer", w.alpha.customer_ids[1]),
        gid("Customer", w.bravo.customer_ids[0]),
        gid("Esco", w.bravo.id),
        gid("Meter", w.bravo.meter_ids[0]),
    ]


async def test_operator_sees_the_same_through_both_walks(walks: Walks, spy: Spy) -> None:
    variables = {"ids": _tenant_ids(walks), "from": "2024-03-01", "to": "2024-04-01"}
    data = await same_happy_answer(walks, spy, OPERATOR_VIEW, variables, who="operator")
    assert data["viewer"] == {"role": "OPERATOR", "escos": [{"code": "alpha"}]}
    assert data["escos"]["totalCount"] == 1
    customers = data["escos"]["nodes"][0]["customers"]["nodes"]
    usage = customers[0]["accounts"][0]["account"]["property"]["supplyMeter"]["monthlyUsage"]
    assert usage[0] == {
        "month": "2024-03-01",
        "costs": {
            "total": str(f.costs(0, 2).total),
            "billingRun": {"month": "2024-03-01", "status": "FINALIZED"},
        },
    }
    assert data["customers"] == {"totalCount": 6}
    assert [n and n["__typename"] for n in data["nodes"]] == [
        "Customer",
        "Customer",
        None,
        None,
        None,
    ]
    assert data["other"] is None


async def test_customer_sees_the_same_through_both_walks(walks: Walks, spy: Spy) -> None:
    variables = {"ids": _tenant_ids(walks), "from": "2024-03-01", "to": "2024-04-01"}
    data = await same_happy_answer(walks, spy, CUSTOMER_VIEW, variables, who="customer")
    me = data["viewer"]["customer"]
    assert data["viewer"]["role"] == "CUSTOMER"
    assert me["email"] == walks.alpha.emails[0]
    # Customers do not see billing runs: a null relation for them alone.
    assert me["monthlyCosts"] == [
        {
            "month": m,
            "total": str(f.costs(0, i).total),
            "billingRun": None,
            "usage": {"powerKwh": str(f.power_kwh(0, i))},
        }
        for i, m in ((2, "2024-03-01"), (3, "2024-04-01"))
    ]
    assert me["payments"]["totalCount"] == 4
    assert data["customers"] == {"totalCount": 1, "nodes": [{"email": walks.alpha.emails[0]}]}
    assert [n and n["__typename"] for n in data["nodes"]] == ["Customer", None, None, None, None]
