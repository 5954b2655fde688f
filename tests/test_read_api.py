"""The read API: the dashboard query, constant statement counts, concurrent loaders,
node(id:) for every type, and the root list filters.

All tests here only read, so the module builds its data once (tests/support/factories.py) on
one client instead of paying conftest's per-test TRUNCATE: two ESCOs of different
sizes, "small" (5 customers) and "big" (50), each with 14 months of usage and costs,
plus one of every other entity on "small" for node(id:).
"""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from graphql import GraphQLObjectType

from flows_graphql.config import Settings
from flows_graphql.schema import schema
from tests.support import factories as f
from tests.support.api import TENANT, gid
from tests.support.documents import DASHBOARD, DASHBOARD_STATEMENTS
from tests.support.factories import EscoData, Extras, World, add_extras, module_world, query

SMALL, BIG = 5, 50
MONTHS = 14  # Jan 2024 .. Feb 2025; the dashboard asks for the 12 months of 2024


@dataclass
class Data:
    world: World
    small: EscoData
    big: EscoData
    extras: Extras


@pytest.fixture(scope="module")
async def data(settings: Settings, database_url: str) -> AsyncIterator[Data]:
    async with module_world(settings, database_url) as world:
        small = await f.build_esco(world.conn, "small", customers=SMALL, months=MONTHS)
        big = await f.build_esco(world.conn, "big", "london", customers=BIG, months=MONTHS)
        extras = await add_extras(world.conn, small)
        # Invites on every third "big" customer, for the concurrent loaders test.
        await world.conn.execute(
            "INSERT INTO customer_invites (token, esco_id, customer_id, invite_url) "
            "SELECT gen_random_uuid(), $1, c, 'https://big.example.com/invite/x' "
            "FROM unnest($2::uuid[]) AS c",
            big.id,
            big.customer_ids[::3],
        )
        await world.conn.execute(
            "UPDATE meters SET mode = 'passive' WHERE id = ANY($1::uuid[])", big.meter_ids[40:43]
        )
        yield Data(world, small, big, extras)


async def run(data: Data, text: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    return await query(data.world.client, text, variables)


async def run_error(data: Data, text: str, variables: dict[str, Any] | None = None) -> Any:
    response = await data.world.client.post(
        "/graphql", json={"query": text, "variables": variables}
    )
    body = response.json()
    assert body.get("errors"), body
    return body


def statements(body: dict[str, Any]) -> int:
    count: int = body["extensions"]["sqlStatements"]
    return count


# --- the dashboard -------------------------------------------------------------------


def expected_dashboard(esco: EscoData) -> list[dict[str, Any]]:
    def usage(i: int, m: int) -> dict[str, Any]:
        c = f.costs(i, m)
        return {
            "month": esco.months[m].isoformat(),
            "powerKwh": str(f.power_kwh(i, m)),
            "costs": {
                "total": str(c.total),
                "savings": str(c.savings),
                "microgrid": {"total": str(c.microgrid[3])},
                "benchmark": {"total": str(c.benchmark[3])},
            },
        }

    return [
        {
            "email": esco.emails[i],
            "accounts": [
                {
                    "account": {
                        "property": {
                            "supplyMeter": {
                                "circuits": [{"type": "HEAT"}, {"type": "POWER"}],
                                "monthlyUsage": [usage(i, m) for m in range(12)],
                            }
                        }
                    }
                }
            ],
            "tariffs": [{"unitRate": str(f.unit_rate(i))}],
            "currentTariff": {"unitRate": str(f.unit_rate(i))},
        }
        for i in range(len(esco.customer_ids))
    ]


async def test_dashboard_same_statements_for_5_and_50_customers(data: Data) -> None:
    counts = {}
    for esco in (data.small, data.big):
        n = len(esco.customer_ids)
        variables = {"code": esco.code, "n": n, "from": "2024-01-01", "to": "2024-12-01"}
        body = await run(data, DASHBOARD, variables)
        nodes = body["data"]["esco"]["customers"]["nodes"]
        assert len(nodes) == n
        assert [c["email"] for c in nodes] == [f.email(esco.code, i) for i in range(n)]
        assert nodes == expected_dashboard(esco)
        counts[n] = statements(body)

    # Spot-check literals, so the expectation helpers cannot be wrong the same way.
    big3 = (
        await run(
            data, DASHBOARD, {"code": "big", "n": 5, "from": "2024-02-01", "to": "2024-02-29"}
        )
    )["data"]["esco"]["customers"]
    usage = big3["nodes"][3]["accounts"][0]["account"]["property"]["supplyMeter"]["monthlyUsage"]
    assert usage == [
        {
            "month": "2024-02-01",
            "powerKwh": "103.001",
            "costs": {
                "total": "45.32375",
                "savings": "7.86200",
                "microgrid": {"total": "48.82375"},
                "benchmark": {"total": "53.18575"},
            },
        }
    ]
    assert big3["nodes"][3]["currentTariff"] == {"unitRate": "0.20003"}
    assert counts == {SMALL: DASHBOARD_STATEMENTS, BIG: DASHBOARD_STATEMENTS}


async def test_a_request_leaves_its_rows_to_reference_counting(data: Data) -> None:
    """The rows, futures and loaders of a request are freed when it ends, not left in
    reference cycles for the garbage collector (which then walked them again and
    again under load): the cyclic garbage a dashboard leaves does not grow with the
    rows it read."""

    async def cyclic_garbage(esco: EscoData) -> int:
        n = len(esco.customer_ids)
        variables = {"code": esco.code, "n": n, "from": "2024-01-01", "to": "2024-12-01"}
        gc.collect()
        gc.disable()
        try:
            body = await run(data, DASHBOARD, variables)
            assert len(body["data"]["esco"]["customers"]["nodes"]) == n
            return gc.collect()
        finally:
            gc.enable()

    await cyclic_garbage(data.small)  # warm: statements compiled, caches filled
    small, big = await cyclic_garbage(data.small), await cyclic_garbage(data.big)
    # 50 customers read ~10x the rows of 5 (about 1,500 more rows and futures); when
    # they were kept in cycles, `big` exceeded `small` by thousands of objects.
    assert big - small < 300, (small, big)


async def test_month_range_bounds_usage(data: Data) -> None:
    text = """query($code: String!) { esco(code: $code) { customers(first: 1) { nodes {
      accounts { account { property { supplyMeter {
        all: monthlyUsage { month }
        some: monthlyUsage(from: "2024-11-01", to: "2025-01-01") { month heatKwh }
        open: monthlyUsage(from: "2025-02-01") { month }
      } } } } } } } }"""
    body = await run(data, text, {"code": "small"})
    meter = body["data"]["esco"]["customers"]["nodes"][0]["accounts"][0]["account"]["property"][
        "supplyMeter"
    ]
    assert len(meter["all"]) == MONTHS
    assert meter["some"] == [
        {"month": "2024-11-01", "heatKwh": "200.510"},
        {"month": "2024-12-01", "heatKwh": "200.511"},
        {"month": "2025-01-01", "heatKwh": "200.512"},
    ]
    assert meter["open"] == [{"month": "2025-02-01"}]


# --- root lists: a constant number of statements ---------------------------------------

ROOT_LISTS = [
    # (query, statements besides TENANT, where the rows are, expected first rows)
    ("escos(first: $n) { nodes { code } }", 1, "escos", ["big", "small"]),
    ("escos(first: $n) { totalCount nodes { code } }", 2, "escos", ["big", "small"]),
    ("customers(first: $n) { nodes { email } }", 1, "customers", ["big.000@example.com"]),
    ("customers(first: $n) { totalCount nodes { email } }", 2, "customers", None),
    ("properties(first: $n) { nodes { plot } }", 1, "properties", ["P000", "P000"]),
    ("properties(first: $n) { totalCount nodes { plot } }", 2, "properties", None),
    ("meters(first: $n) { nodes { serial } }", 1, "meters", ["BIG-M000", "BIG-M001"]),
    ("meters(first: $n) { totalCount nodes { serial } }", 2, "meters", None),
    ("billingRuns(first: $n) { nodes { month } }", 1, "billingRuns", ["2025-02-01"] * 2),
    ("billingRuns(first: $n) { totalCount nodes { month } }", 2, "billingRuns", None),
    ("regions { code }", 1, "regions", None),
    ('benchmarkTariffs(regionCode: "south_west") { unitRate }', 1, "benchmarkTariffs", None),
    ("contractTerms { title version }", 1, "contractTerms", None),
]
TOTALS = {
    "escos": 2,
    "customers": SMALL + BIG,
    "properties": SMALL + BIG,
    "meters": SMALL + BIG + 1,
    "billingRuns": 2 * MONTHS,
}


@pytest.mark.parametrize(
    ("field", "count", "name", "first_rows"),
    ROOT_LISTS,
    ids=[name + ("+totalCount" if "totalCount" in q else "") for q, _, name, _ in ROOT_LISTS],
)
async def test_root_list_statement_count(
    data: Data, field: str, count: int, name: str, first_rows: list[str] | None
) -> None:
    uses_n = "$n" in field
    for n in (2, 60) if uses_n else (None,):
        text = f"query{'($n: Int!)' if uses_n else ''} {{ {field} }}"
        body = await run(data, text, {"n": n} if uses_n else None)
        assert statements(body) == TENANT + count, (field, n)
        result = body["data"][name]
        rows = result["nodes"] if isinstance(result, dict) else result
        if n is not None:
            assert len(rows) == min(n, TOTALS[name])
            if "totalCount" in field:
                assert result["totalCount"] == TOTALS[name]
        if first_rows is not None:
            assert [next(iter(r.values())) for r in rows[: len(first_rows)]] == first_rows
    if name == "regions":
        assert len(rows) == 14 and "south_west" in {r["code"] for r in rows}
    if name == "benchmarkTariffs":
        assert rows == [{"unitRate": "0.24500"}, {"unitRate": "0.25000"}]
    if name == "contractTerms":
        assert rows == [{"title": "Supply terms", "version": 2}]


async def test_root_list_with_nested_relation_is_constant(data: Data) -> None:
    text = "query($n: Int!) { customers(first: $n) { nodes { email esco { code } } } }"
    for n in (3, 55):
        body = await run(data, text, {"n": n})
        nodes = body["data"]["customers"]["nodes"]
        assert len(nodes) == n
        assert statements(body) == TENANT + 2  # the page, then EscoById for all rows
    assert {c["esco"]["code"] for c in nodes} == {"big", "small"}
    assert sum(c["esco"]["code"] == "small" for c in nodes) == SMALL


# --- several loaders at once on one connection -----------------------------------------

CONCURRENT = """
query($escoId: ID!) {
  customers(escoId: $escoId, first: 50) {
    nodes {
      email
      esco { code }
      accounts { role account { accountNumber property { plot supplyMeter { serial } } } }
      currentTariff { unitRate standingCharge }
      tariffs { discountPercent }
      invites { inviteUrl }
      monthlyCosts(from: "2024-06-01", to: "2024-07-01") { total }
    }
  }
}
"""


async def test_concurrent_loaders_share_the_connection(data: Data) -> None:
    big = data.big
    numbers = dict(
        await data.world.conn.fetch(
            "SELECT id, account_number FROM accounts WHERE esco_id = $1", big.id
        )
    )
    expected = [
        {
            "email": big.emails[i],
            "esco": {"code": "big"},
            "accounts": [
                {
                    "role": "OCCUPIER",
                    "account": {
                        "accountNumber": str(numbers[big.account_ids[i]]),
                        "property": {
                            "plot": f.plot(i),
                            "supplyMeter": {"serial": f.serial("big", i)},
                        },
                    },
                }
            ],
            "currentTariff": {
                "unitRate": str(f.unit_rate(i)),
                "standingCharge": str(f.standing_charge(i)),
            },
            "tariffs": [{"discountPercent": f.DISCOUNT_PERCENT}],
            "invites": [{"inviteUrl": "https://big.example.com/invite/x"}] if i % 3 == 0 else [],
            "monthlyCosts": [{"total": str(f.costs(i, m).total)} for m in (5, 6)],
        }
        for i in range(BIG)
    ]
    variables = {"escoId": gid("Esco", big.id)}
    body = await run(data, CONCURRENT, variables)
    assert body["data"]["customers"]["nodes"] == expected
    # page, esco, links (account, property and meter joined), currentTariff, tariffs,
    # invites, costs
    assert statements(body) == TENANT + 7

    # Several such requests at once: each keeps to its own connection and snapshot.
    bodies = await asyncio.gather(*(run(data, CONCURRENT, variables) for _ in range(6)))
    assert all(b["data"]["customers"]["nodes"] == expected for b in bodies)


# --- node(id:) for every type -------------------------------------------------------------


def _first(path: str) -> Callable[[Any], dict[str, Any]]:
    """Follow dotted keys; a list step takes its first element."""

    def get(value: Any) -> dict[str, Any]:
        for key in path.split("."):
            value = value[key]
            if isinstance(value, list):
                value = value[0]
        result: dict[str, Any] = value
        return result

    return get


# type → (a normal query that lists the object, where it sits, a field to compare)
SMALL_CUSTOMER = 'customers(filter: {emailPrefix: "small.000"}) { nodes { %s } }'
SMALL_ACCOUNT = SMALL_CUSTOMER % "accounts { account { %s } }"
SMALL_PROPERTY = 'properties(escoId: "SMALL_ID", filter: {plotPrefix: "P000"}) { nodes { %s } }'
NODE_QUERIES: dict[str, tuple[str, str, str]] = {
    "Region": ("regions { id code }", "regions", "code"),
    "Esco": ('esco(code: "small") { id code }', "esco", "code"),
    "Site": ('esco(code: "small") { sites { id name } }', "esco.sites", "name"),
    "ContractTerms": ("contractTerms { id title }", "contractTerms", "title"),
    "Property": (SMALL_PROPERTY % "id plot", "properties.nodes", "plot"),
    "Meter": (
        'meters(filter: {serialPrefix: "SMALL-M000"}) { nodes { id serial } }',
        "meters.nodes",
        "serial",
    ),
    "Circuit": (
        'meters(filter: {serialPrefix: "SMALL-M000"}) { nodes { circuits { id type } } }',
        "meters.nodes.circuits",
        "type",
    ),
    "SolarInstallation": (
        SMALL_PROPERTY % "solarInstallation { id mcsCertificate }",
        "properties.nodes.solarInstallation",
        "mcsCertificate",
    ),
    "MonthlySolarCredit": (
        SMALL_PROPERTY % "solarCredits { id creditPence }",
        "properties.nodes.solarCredits",
        "creditPence",
    ),
    "Customer": (SMALL_CUSTOMER % "id email", "customers.nodes", "email"),
    "CustomerAccount": (
        SMALL_CUSTOMER % "accounts { id role }",
        "customers.nodes.accounts",
        "role",
    ),
    "Account": (
        SMALL_ACCOUNT % "id accountNumber",
        "customers.nodes.accounts.account",
        "accountNumber",
    ),
    "CustomerInvite": (SMALL_CUSTOMER % "invites { id token }", "customers.nodes.invites", "token"),
    "CustomerIdentity": (
        SMALL_CUSTOMER % "identities { id subject }",
        "customers.nodes.identities",
        "subject",
    ),
    "StaffGrant": (
        'esco(code: "small") { staffGrants { id subject } }',
        "esco.staffGrants",
        "subject",
    ),
    "AccountEvent": (
        SMALL_ACCOUNT % "events { nodes { id eventType } }",
        "customers.nodes.accounts.account.events.nodes",
        "eventType",
    ),
    "AuditLogEntry": (
        SMALL_ACCOUNT % "auditLogs { nodes { id action } }",
        "customers.nodes.accounts.account.auditLogs.nodes",
        "action",
    ),
    "Payment": (
        SMALL_CUSTOMER % "payments { nodes { id amountPence } }",
        "customers.nodes.payments.nodes",
        "amountPence",
    ),
    "CustomerTariff": (
        SMALL_CUSTOMER % "tariffs { id unitRate }",
        "customers.nodes.tariffs",
        "unitRate",
    ),
    "MonthlyCosts": (
        SMALL_CUSTOMER % 'monthlyCosts(from: "2024-03-01", to: "2024-03-01") { id total }',
        "customers.nodes.monthlyCosts",
        "total",
    ),
    "BenchmarkTariff": (
        'benchmarkTariffs(regionCode: "south_west") { id unitRate }',
        "benchmarkTariffs",
        "unitRate",
    ),
    "MicrogridTariff": (
        'esco(code: "small") { microgridTariffs { id unitRate } }',
        "esco.microgridTariffs",
        "unitRate",
    ),
    "SolarCreditTariff": (
        'esco(code: "small") { solarCreditTariffs { id creditPencePerDay } }',
        "esco.solarCreditTariffs",
        "creditPencePerDay",
    ),
    "BillingRun": (
        'billingRuns(filter: {month: "2024-03-01", status: FINALIZED}) { nodes { id status } }',
        "billingRuns.nodes",
        "status",
    ),
    "MonthlyUsage": (
        'meters(filter: {serialPrefix: "SMALL-M000"}) { nodes { '
        'monthlyUsage(from: "2024-05-01", to: "2024-05-01") { id powerKwh } } }',
        "meters.nodes.monthlyUsage",
        "powerKwh",
    ),
}
# A CustomerEvent's id is built from the row's uuid here (Customer.events lists them:
# test_customer_events_are_listed).
BUILT_IDS = {"CustomerEvent": "eventType"}


def node_types() -> set[str]:
    gql_schema = schema._schema
    node = gql_schema.get_type("Node")
    return {
        t.name
        for t in gql_schema.type_map.values()
        if isinstance(t, GraphQLObjectType) and node in t.interfaces
    }


def test_every_node_type_is_covered() -> None:
    types = node_types()
    assert len(types) >= 24
    assert types == set(NODE_QUERIES) | set(BUILT_IDS), (
        "a Node type was added or removed: cover it in NODE_QUERIES"
    )


async def node_objects(data: Data) -> dict[str, tuple[str, str, Any]]:
    """type → (global id, compared field, its value), each from a normal query."""
    found: dict[str, tuple[str, str, Any]] = {}
    for type_name, (text, path, field) in NODE_QUERIES.items():
        body = await run(data, "{ " + text.replace("SMALL_ID", str(data.small.id)) + " }")
        obj = _first(path)(body["data"])
        found[type_name] = (obj["id"], field, obj[field])
    found["CustomerEvent"] = (
        gid("CustomerEvent", data.extras.customer_event),
        "eventType",
        "updated",
    )
    return found


async def test_node_round_trips_every_type(data: Data) -> None:
    found = await node_objects(data)
    assert set(found) == node_types()
    for type_name, (global_id, field, value) in found.items():
        fragment = f"... on {type_name} {{ {field} }}"
        text = f"query($id: ID!) {{ node(id: $id) {{ __typename id {fragment} }} }}"
        body = await run(data, text, {"id": global_id})
        assert body["data"]["node"] == {"__typename": type_name, "id": global_id, field: value}, (
            type_name
        )
    # A few values, so the round trip is not just two empty answers agreeing.
    assert found["SolarInstallation"][2] == "MCS-0001"
    assert found["MonthlySolarCredit"][2] == 1234
    assert found["Payment"][2] == 2500
    assert found["AccountEvent"][2] == "OPENED"
    assert found["AuditLogEntry"][2] == "openAccount"
    assert found["MonthlyUsage"][2] == "100.004"
    assert found["MonthlyCosts"][2] == str(f.costs(0, 2).total)
    assert found["CustomerInvite"][2] == str(data.extras.invite)
    assert found["Esco"][0] == gid("Esco", data.small.id)


async def test_nodes_in_order_with_null_for_unknown(data: Data) -> None:
    found = await node_objects(data)
    names = sorted(found)
    ids: list[str] = []
    for name in names:
        ids.append(found[name][0])
        if name == "Meter":
            ids.append(gid("Meter", uuid.uuid4()))  # well-formed, no such row
    body = await run(
        data, "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }", {"ids": ids}
    )
    expected = []
    for name in names:
        expected.append({"__typename": name, "id": found[name][0]})
        if name == "Meter":
            expected.append(None)
    assert body["data"]["nodes"] == expected


NODES_BATCHED = {
    "Customer": lambda e: e.customer_ids,
    "Account": lambda e: e.account_ids,
    "Meter": lambda e: e.meter_ids,
    "MonthlyUsage": lambda e: [u[0] for u in e.usage_ids],
    "MonthlyCosts": lambda e: [c[0] for c in e.cost_ids],
    "CustomerTariff": lambda e: [f"{c}|{f.FIRST_MONTH}" for c in e.customer_ids],
}


@pytest.mark.parametrize("type_name", list(NODES_BATCHED))
async def test_nodes_of_one_type_is_one_statement(data: Data, type_name: str) -> None:
    keys = NODES_BATCHED[type_name](data.big)
    text = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }"
    counts = []
    for n in (2, BIG):
        ids = [gid(type_name, k) for k in keys[:n]]
        body = await run(data, text, {"ids": ids})
        assert body["data"]["nodes"] == [{"__typename": type_name, "id": i} for i in ids]
        counts.append(statements(body))
    assert counts == [TENANT + 1, TENANT + 1]


async def test_node_garbage_and_wrong_type_ids_are_null(data: Data) -> None:
    customer = data.small.customer_ids[0]
    bad_ids = [
        "garbage",
        "",
        "!!!",
        "abcde",
        str(customer),  # a bare uuid names no type
        gid("Customer", "not-a-uuid"),
        gid("Customer", ""),
        gid("NoSuchType", customer),
        gid("CustomerTariff", "x"),
        gid("BenchmarkTariff", "south_west|2024-13-01"),
        gid("CustomerAccount", "a|b"),
        # an existing uuid under the wrong type name:
        gid("Meter", customer),
        gid("Esco", customer),
        gid("Account", data.small.property_ids[0]),
        gid("BillingRun", data.small.usage_ids[0][0]),
        gid("MonthlyCosts", data.small.usage_ids[0][0]),
        gid("CustomerEvent", data.extras.account_event),
        gid("MicrogridTariff", f"{customer}|2024-01-01"),
    ]
    text = "query($id: ID!) { node(id: $id) { __typename id } }"
    for bad in bad_ids:
        body = await run(data, text, {"id": bad})
        assert body["data"]["node"] is None, bad
    body = await run(data, "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": bad_ids})
    assert body["data"]["nodes"] == [None] * len(bad_ids)
    # ...while the right type name finds it.
    body = await run(data, text, {"id": gid("Customer", customer)})
    assert body["data"]["node"]["__typename"] == "Customer"


async def test_customer_events_are_listed(data: Data) -> None:
    body = await run(data, "{ " + SMALL_CUSTOMER % "events { nodes { id } }" + " }")
    events = body["data"]["customers"]["nodes"][0]["events"]["nodes"]
    assert events == [{"id": gid("CustomerEvent", data.extras.customer_event)}]


# --- filters ---------------------------------------------------------------------------


async def emails(data: Data, args: str) -> list[str]:
    body = await run(data, f"{{ customers({args}, first: 100) {{ nodes {{ email }} }} }}")
    return [c["email"] for c in body["data"]["customers"]["nodes"]]


async def test_customer_filters(data: Data) -> None:
    small = data.small.emails
    assert await emails(data, "filter: {status: SUSPENDED}") == [small[1]]
    assert await emails(data, "filter: {status: INACTIVE}") == [small[3]]
    assert len(await emails(data, "filter: {status: ACTIVE}")) == SMALL + BIG - 2
    assert await emails(data, 'filter: {emailPrefix: "SMALL."}') == small
    assert await emails(data, 'filter: {emailPrefix: "big.01"}') == data.big.emails[10:20]
    assert await emails(data, 'filter: {emailPrefix: "small", status: ACTIVE}') == [
        small[0],
        small[2],
        small[4],
    ]
    # LIKE wildcards are taken literally.
    assert await emails(data, 'filter: {emailPrefix: "big_0"}') == []
    assert await emails(data, 'filter: {emailPrefix: "%"}') == []
    assert await emails(data, 'filter: {emailPrefix: "nobody"}') == []


async def test_customers_by_esco_id_global_or_uuid(data: Data) -> None:
    by_global = await emails(data, f'escoId: "{gid("Esco", data.small.id)}"')
    by_uuid = await emails(data, f'escoId: "{data.small.id}"')
    assert by_global == by_uuid == data.small.emails
    assert (
        await emails(data, f'escoId: "{data.big.id}", filter: {{emailPrefix: "big.04"}}')
        == (data.big.emails[40:50])
    )
    # A well-formed id of no ESCO matches nothing.
    assert await emails(data, f'escoId: "{uuid.uuid4()}"') == []


@pytest.mark.parametrize(
    "esco_id",
    ["garbage", gid("Customer", uuid.UUID(int=1)), gid("Esco", "not-a-uuid"), ""],
)
async def test_invalid_esco_id_is_an_invalid_error(data: Data, esco_id: str) -> None:
    for field in ("customers", "properties", "meters", "billingRuns"):
        text = f"query($id: ID) {{ {field}(escoId: $id) {{ nodes {{ id }} }} }}"
        body = await run_error(data, text, {"id": esco_id})
        assert body["data"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["INVALID"], field


async def test_meter_filters(data: Data) -> None:
    async def serials(args: str) -> list[str]:
        body = await run(data, f"{{ meters({args}, first: 100) {{ nodes {{ serial mode }} }} }}")
        return [m["serial"] for m in body["data"]["meters"]["nodes"]]

    assert await serials("filter: {mode: PASSIVE}") == ["BIG-M040", "BIG-M041", "BIG-M042"]
    assert await serials("filter: {mode: DECOMMISSIONED}") == ["SMALL-SPARE"]
    assert await serials('filter: {serialPrefix: "SMALL-"}') == [
        *(f.serial("small", i) for i in range(SMALL)),
        "SMALL-SPARE",
    ]
    assert await serials('filter: {serialPrefix: "BIG-M04", mode: ACTIVE}') == [
        f.serial("big", i) for i in (43, 44, 45, 46, 47, 48, 49)
    ]
    assert await serials(f'escoId: "{data.small.id}", filter: {{mode: ACTIVE}}') == [
        f.serial("small", i) for i in range(SMALL)
    ]
    assert await serials('filter: {serialPrefix: "big-"}') == []  # serials are case-sensitive


async def test_billing_run_filters(data: Data) -> None:
    async def runs(args: str) -> list[tuple[str, str, str]]:
        body = await run(
            data,
            f"{{ billingRuns({args}) {{ nodes {{ uuid month status esco {{ code }} }} }} }}",
        )
        return [
            (r["esco"]["code"], r["month"], r["status"])
            for r in body["data"]["billingRuns"]["nodes"]
        ]

    assert sorted(await runs('filter: {month: "2024-03-01"}')) == [
        ("big", "2024-03-01", "COMPLETED"),
        ("small", "2024-03-01", "FINALIZED"),
    ]
    assert await runs("filter: {status: FINALIZED}") == [("small", "2024-03-01", "FINALIZED")]
    assert await runs(f'escoId: "{data.big.id}", filter: {{month: "2024-03-01"}}') == [
        ("big", "2024-03-01", "COMPLETED")
    ]
    assert await runs('filter: {month: "2024-03-01", status: RUNNING}') == []
    newest_first = await runs(f'escoId: "{gid("Esco", data.small.id)}", first: 3')
    assert [m for _, m, _ in newest_first] == ["2025-02-01", "2025-01-01", "2024-12-01"]


async def test_property_filters(data: Data) -> None:
    async def plots(args: str) -> list[tuple[str, str]]:
        body = await run(
            data, f"{{ properties({args}, first: 100) {{ nodes {{ plot esco {{ code }} }} }} }}"
        )
        return [(p["esco"]["code"], p["plot"]) for p in body["data"]["properties"]["nodes"]]

    p00 = await plots('filter: {plotPrefix: "P00"}')
    assert sorted(p00) == sorted(
        [("big", f.plot(i)) for i in range(10)] + [("small", f.plot(i)) for i in range(SMALL)]
    )
    assert [plot for _, plot in p00] == sorted(plot for _, plot in p00)
    assert await plots(f'escoId: "{data.big.id}", filter: {{plotPrefix: "P04"}}') == [
        ("big", f.plot(i)) for i in range(40, 50)
    ]
    assert await plots('filter: {plotPrefix: "p0"}') == []
    site = gid("Site", data.extras.site)
    assert await plots(f'filter: {{siteId: "{site}"}}') == [("small", "P000")]
