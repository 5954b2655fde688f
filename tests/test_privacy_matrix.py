"""The within-ESCO privacy matrix (rules.md §7, docs/privacy.md): in one ESCO, over
time, every customer crawls everything reachable from `viewer`, `node` and `nodes`
and must find nothing of anyone else — and exactly their own months.

Generated from the schema, like the cross-ESCO matrix (tests/test_tenant_matrix.py):
- the crawl's selections are made from the schema (every field of every type, leaves
  and relations, connections paged), so a new field is crawled as soon as it exists;
- `FIELD_CLASSES` must classify every field reachable from `viewer`, `node` and
  `nodes` (`test_every_reachable_field_is_classified` fails until a new one is), and
  the classes are enforced: `hidden` fields are null or empty for customers,
  `identity` fields carry only the viewer's own identity (or a role), the objects
  behind `link` fields must be ones the oracle allows;
- `NODE_ROWS` lists how to find every row of every Node type, so `node`/`nodes` of
  every object of the ESCO is probed; a new Node type fails until listed.

Every customer crawls twice: signed in with the server's own JWT, and with a token of
an identity provider served on loopback (tests/support/oidc_provider.py) whose identity is
linked to them in the database (`customer_identities`).

The oracle is independent of the server's rules: the timelines below (who occupied
which home when, which meter supplied it in which months) decide, in Python, which
(meter, month) and (property, month) each customer may see, and which rows are theirs.

The ESCO (app clock 2025-07-10; months 2024-01 … 2025-06, all imported and billed):
- H1: owner-landlord L throughout; A occupier for January 2024 (a 31-day month), B
  for February 2024 (29 days), C from March 2024; meter M1 swapped for M1B on
  2025-04-15 (mid-occupancy: M1B from May 2025), M1 then moved to H6.
- H2: D occupier to 2024-04-30 (a 30-day month), E from May until the account closes
  on 2024-06-30; a new account from 2024-07-01 with F.
- H3 and H4: G lives in H3 to June 2024, then in H4 (two homes in turn); K follows G in
  H3, M precedes G in H4.
- H5: O to 2024-09-14, N from 2024-09-15 (a part month: N's first month is October) to
  2025-02-28 (28 days), Q from March 2025.
- H6: P throughout; meter M6 until April 2025, then M1 (from H1).
Payments (succeeded): each current occupier's (unscheduled), and one O scheduled on
2024-09-10 for 2024-10-05, after she left H5 (N's first month): O's, never N's.
A heat circuit is shared by M1, M2 and M3; H1 and H2 have solar installations.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    Undefined,
    get_named_type,
    is_leaf_type,
)

from flows_graphql.auth.apikeys import create_key
from flows_graphql.config import Settings
from flows_graphql.db.engine import create_engine
from flows_graphql.types.node import from_global_id, to_global_id
from tests.support.api import opened_up
from tests.support.privacy_world import (
    GRAPHQL,
    LINKS,
    LONDON,
    MONTHS,
    PEOPLE,
    ROLE_WORDS,
    SOLAR_HOMES,
    SUPPLY,
    World,
    build_world,
    credit_months,
    d,
    homes_of,
    link_end,
    signed_in,
    usage_months,
    uuid_of,
)


def test_the_scenario_has_its_boundaries() -> None:
    """The oracle itself: part months, 28/29/30/31-day ends, a swap mid-occupancy."""
    assert usage_months("A") == {("M1", d("2024-01-01"))}
    assert usage_months("B") == {("M1", d("2024-02-01"))}
    assert ("M1", d("2025-04-01")) in usage_months("C")
    assert ("M1B", d("2025-05-01")) in usage_months("C")
    assert ("M1", d("2025-05-01")) in usage_months("P")
    assert ("M1", d("2025-05-01")) not in usage_months("C")
    assert max(m for _, m in usage_months("D")) == d("2024-04-01")
    assert {m for _, m in usage_months("E")} == {d("2024-05-01"), d("2024-06-01")}
    assert min(m for _, m in usage_months("N")) == d("2024-10-01")
    assert max(m for _, m in usage_months("O")) == d("2024-09-01")
    assert max(m for _, m in usage_months("N")) == d("2025-02-01")
    assert {meter for meter, _ in usage_months("G")} == {"M3", "M4"}
    assert usage_months("L") == set()


@pytest.fixture(scope="module")
async def world(settings: Settings, database_url: str) -> AsyncIterator[World]:
    async for w in build_world(settings, database_url):
        yield w


# --- the field classes ---------------------------------------------------------------

# How each field reachable by a customer is checked:
# - "value": a plain value of an object the viewer may see (the text scan still applies);
# - "identity": names a person — must be the viewer's own (or, for actors, a role);
# - "link": leads to objects, each judged by the oracle (and node/nodes must agree);
# - "hidden": null or empty for every customer.
V, IDENT, LINK, H = "value", "identity", "link", "hidden"
FIELD_CLASSES: dict[str, dict[str, str]] = {
    "Viewer": {
        "role": V, "subject": V, "issuer": V, "email": IDENT, "escos": LINK, "customer": LINK,
    },
    "Region": {"id": V, "code": V, "name": V},
    "Esco": {
        "id": V, "uuid": V, "code": V, "name": V, "appUrl": V, "tariffGeneration": V,
        "region": LINK, "sites": H, "contractTerms": LINK, "properties": LINK,
        "customers": LINK, "meters": LINK, "billingRuns": H, "microgridTariffs": LINK,
        "solarCreditTariffs": LINK, "monthlySummaries": H, "staffGrants": H,
    },
    "Site": {"id": V, "uuid": V, "code": V, "name": V, "esco": LINK, "properties": LINK,
             "monthlySummaries": H},
    "ContractTerms": {
        "id": V, "uuid": V, "type": V, "version": V, "title": V, "summary": V,
        "documentUrl": V,
    },
    "Property": {
        "id": V, "uuid": V, "plot": V, "address": V, "esco": LINK, "site": H,
        "account": LINK, "accounts": LINK, "supplyMeter": LINK, "solarInstallation": LINK,
        "solarCredits": LINK, "updatedAt": V,
    },
    "Meter": {
        "id": V, "uuid": V, "serial": V, "name": V, "hardware": V, "mode": V, "esco": LINK,
        "property": LINK, "circuits": LINK, "monthlyUsage": LINK, "updatedAt": V,
    },
    "Circuit": {"id": V, "uuid": V, "type": V, "name": V, "meters": LINK},
    "SolarInstallation": {
        "id": V, "mcsCertificate": V, "declaredNetCapacityKw": V, "commissioningDate": V,
        "property": LINK,
    },
    "Customer": {
        "id": IDENT, "uuid": IDENT, "email": IDENT, "fullName": IDENT, "status": V, "esco": LINK,
        "accounts": LINK, "tariffs": LINK, "currentTariff": LINK, "monthlyCosts": LINK,
        "payments": LINK, "events": LINK, "invites": LINK, "updatedAt": V,
        # Figures of the customer's own months only (tests/test_money.py,
        # test_summaries.py check which months).
        "balance": V, "monthlySummaries": V, "identities": LINK,
    },
    "CustomerIdentity": {
        "id": V, "uuid": V, "issuer": V, "subject": V, "email": IDENT, "createdAt": V,
        "customer": LINK,
    },
    "StaffGrant": {
        "id": V, "uuid": V, "role": V, "issuer": V, "subject": V, "email": V, "grantedBy": V,
        "createdAt": V, "revokedAt": V, "revokedBy": V, "esco": LINK,
    },
    "CustomerAccount": {
        "id": V, "role": V, "startDate": V, "endDate": V, "customer": LINK, "account": LINK,
    },
    "Account": {
        "id": V, "uuid": V, "accountNumber": V, "status": V, "openedOn": V, "closedOn": V,
        "property": LINK, "customers": LINK, "occupier": LINK, "contractTerms": LINK,
        "events": LINK, "auditLogs": H, "payments": LINK,
        "balance": V, "statements": V,
    },
    "Statement": {
        "month": V, "openingBalance": V, "closingBalance": V, "charges": V, "solarCredit": V,
        "payments": V,
    },
    "StatementCharges": {"power": V, "heat": V, "standingCharge": V, "total": V},
    "MonthlySummary": {
        "month": V, "customersBilled": V, "metersSkipped": V, "powerKwh": V, "heatKwh": V,
        "solarKwh": V, "total": V, "microgridTotal": V, "benchmarkTotal": V, "savings": V,
        "solarCredits": V, "paymentsReceived": V, "outstanding": V,
    },
    "CustomerInvite": {
        "id": V, "token": V, "inviteUrl": V, "expiresAt": V, "acceptedAt": V, "status": V,
    },
    "CustomerEvent": {"id": V, "uuid": V, "eventType": V, "actor": IDENT, "data": V,
                      "createdAt": V},
    "AccountEvent": {
        "id": V, "uuid": V, "eventType": V, "notes": V, "actor": IDENT, "createdAt": V, "data": V,
    },
    "AuditLogEntry": {
        "id": V, "uuid": V, "action": V, "actor": IDENT, "changes": V, "createdAt": V,
        "eventType": V, "data": V,
    },
    "BenchmarkTariff": {
        "id": V, "periodStart": V, "unitRate": V, "standingCharge": V, "region": LINK,
    },
    "MicrogridTariff": {
        "id": V, "periodStart": V, "discountPercent": V, "unitRate": V, "standingCharge": V,
        "emergencyCredit": V, "ecreditButtonThreshold": V, "debtRecoveryRate": V,
        "esco": LINK,
    },
    "CustomerTariff": {
        "id": V, "periodStart": V, "discountPercent": V, "unitRate": V, "standingCharge": V,
        "customer": LINK,
    },
    "SolarCreditTariff": {
        "id": V, "periodStart": V, "creditPencePerYear": V, "creditPencePerDay": V,
        "esco": LINK,
    },
    "MonthlyUsage": {
        "id": V, "uuid": V, "month": V, "powerKwh": V, "heatKwh": V, "solarKwh": V,
        "source": V, "meter": LINK, "costs": LINK,
    },
    "MonthlyCosts": {
        "id": V, "uuid": V, "month": V, "power": V, "heat": V, "standingCharge": V,
        "total": V, "microgrid": V, "benchmark": V, "savings": V, "customer": LINK,
        "usage": LINK, "billingRun": H,
    },
    "CostBreakdown": {"power": V, "heat": V, "standingCharge": V, "total": V},
    "MonthlySolarCredit": {"id": V, "uuid": V, "month": V, "creditPence": V,
                           "property": LINK},
    "BillingRun": {
        "id": V, "uuid": V, "month": V, "status": V, "startedAt": V, "finishedAt": V,
        "customersBilled": V, "total": V, "esco": LINK, "skipped": LINK, "costs": LINK,
        "solarCredits": LINK, "updatedAt": V, "error": V, "progress": V,
    },
    "BillingRunProgress": {"billed": V, "total": V},
    "SkippedMeter": {"reason": V, "meter": LINK},
    "Payment": {
        "id": V, "uuid": V, "amountPence": V, "currency": V, "status": V, "description": V,
        "providerReference": V, "scheduledAt": V, "createdAt": V, "customer": LINK,
        "account": LINK, "statusHistory": V,
    },
    # Actors are roles for a customer (`you`, `operator`, …), never a person.
    "PaymentStatusChange": {"status": V, "previousStatus": V, "actor": IDENT, "changedAt": V},
    "PageInfo": {"hasNextPage": V, "hasPreviousPage": V, "startCursor": V, "endCursor": V},
}  # fmt: skip
CONNECTION_FIELDS = {"edges", "nodes", "pageInfo", "totalCount"}
EDGE_FIELDS = {"node", "cursor"}


def _is_node(t: Any) -> bool:
    return isinstance(t, GraphQLObjectType) and any(i.name == "Node" for i in t.interfaces)


def _is_connection(t: Any) -> bool:
    return isinstance(t, GraphQLObjectType) and t.name.endswith("Connection")


def reachable_types() -> set[str]:
    """Every object type reachable from `viewer`, `node` and `nodes` (every Node type)."""
    todo = ["Viewer"] + [t.name for t in GRAPHQL.type_map.values() if _is_node(t)]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for f in GRAPHQL.type_map[name].fields.values():  # type: ignore[union-attr]
            kind = get_named_type(f.type)
            if isinstance(kind, GraphQLObjectType):
                todo.append(kind.name)
    return seen


def test_every_reachable_field_is_classified() -> None:
    missing, stale = [], []
    for name in sorted(reachable_types()):
        t = GRAPHQL.type_map[name]
        assert isinstance(t, GraphQLObjectType)
        if _is_connection(t):
            assert set(t.fields) == CONNECTION_FIELDS, name
            continue
        if name.endswith("Edge"):
            assert set(t.fields) == EDGE_FIELDS, name
            continue
        classes = FIELD_CLASSES.get(name, {})
        missing += [f"{name}.{f}" for f in t.fields if f not in classes]
        stale += [f"{name}.{f}" for f in classes if f not in t.fields]
    assert not missing, f"fields reachable by customers without a class: {missing}"
    assert not stale, f"classes of fields that no longer exist: {stale}"


# --- selections made from the schema -------------------------------------------------

PAGE = 100
NODE_REF = "__typename id"


def selection(type_name: str) -> str:
    """Every field of a type: leaves as they are, Node relations by id, connections
    paged (edges with cursors, nodes, counts), other objects inlined."""
    t = GRAPHQL.type_map[type_name]
    assert isinstance(t, GraphQLObjectType)
    parts = ["__typename"]
    for name, f in t.fields.items():
        kind = get_named_type(f.type)
        if is_leaf_type(kind):
            parts.append(name)
        elif _is_connection(kind):
            parts.append(
                f"{name}(first: {PAGE}) {{ totalCount pageInfo {{ {selection('PageInfo')} }} "
                f"edges {{ cursor node {{ {NODE_REF} }} }} nodes {{ {NODE_REF} }} }}"
            )
        elif _is_node(kind):
            parts.append(f"{name} {{ {NODE_REF} }}")
        else:
            parts.append(f"{name} {{ {selection(kind.name)} }}")
    return " ".join(parts)


def node_query(type_name: str) -> str:
    return f"query($id: ID!) {{ node(id: $id) {{ __typename id ... on {type_name} {{ " + (
        selection(type_name) + " } } }"
    )


VIEWER_QUERY = "{ viewer { " + selection("Viewer") + " } }"
NODES_QUERY = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }"


# --- every row of every Node type, as a global id ------------------------------------

NODE_ROWS: dict[str, str] = {
    "Region": "SELECT code FROM regions WHERE code = 'london'",
    "Esco": "SELECT id FROM escos",
    "Site": "SELECT id FROM sites",
    "ContractTerms": "SELECT id FROM contract_terms",
    "Property": "SELECT id FROM properties",
    "Meter": "SELECT id FROM meters",
    "Circuit": "SELECT id FROM circuits",
    "SolarInstallation": "SELECT property_id FROM solar_installation",
    "Customer": "SELECT id FROM customers",
    "CustomerAccount": "SELECT customer_id || '|' || account_id || '|' || role || '|' "
    "|| start_date FROM customer_accounts",
    "Account": "SELECT id FROM accounts",
    "CustomerInvite": "SELECT token FROM customer_invites",
    "CustomerIdentity": "SELECT id FROM customer_identities",
    "StaffGrant": "SELECT id FROM staff_grants",
    "CustomerEvent": "SELECT id FROM customer_events",
    "AccountEvent": "SELECT id FROM account_events",
    "AuditLogEntry": "SELECT id FROM account_audit_logs",
    "BenchmarkTariff": "SELECT region_code || '|' || period_start FROM benchmark_tariffs",
    "MicrogridTariff": "SELECT esco_id || '|' || period_start FROM microgrid_tariffs",
    "CustomerTariff": "SELECT customer_id || '|' || period_start FROM customer_tariffs",
    "SolarCreditTariff": "SELECT esco_id || '|' || period_start FROM solar_credit_tariffs",
    "MonthlyUsage": "SELECT id FROM monthly_usage",
    "MonthlyCosts": "SELECT id FROM monthly_costs",
    "MonthlySolarCredit": "SELECT id FROM monthly_solar_credits",
    "BillingRun": "SELECT id FROM billing_runs",
    "Payment": "SELECT id FROM payments",
}
SHARED_TYPES = {
    "Region", "Esco", "ContractTerms", "BenchmarkTariff", "MicrogridTariff",
    "SolarCreditTariff",
}  # fmt: skip


def test_every_node_type_has_rows() -> None:
    node_types = {t.name for t in GRAPHQL.type_map.values() if _is_node(t)}
    assert set(NODE_ROWS) == node_types, sorted(node_types ^ set(NODE_ROWS))


# --- the oracle: what each person may see ---------------------------------------------


@dataclass
class Allowed:
    ids: set[str]  # global ids
    usage: set[tuple[uuid.UUID, date]]
    credits: set[tuple[uuid.UUID, date]]
    forbidden_text: set[str]  # other people's e-mails, names and uuids
    own_identity: set[str]


async def allowed_for(w: World, person: str) -> Allowed:
    me = w.people[person]
    homes = {w.homes[h] for h in homes_of(person)}
    my_accounts = {w.accounts[a] for p, a, *_ in LINKS if p == person}
    meters = {w.meters[m] for h in homes_of(person) for m, *_ in SUPPLY[h]}
    usage = {(w.meters[m], month) for m, month in usage_months(person)}
    credits = {(w.homes[h], month) for h, month in credit_months(person)}
    c = w.conn
    ids: set[str] = set()

    def add(type_name: str, keys: Any) -> None:
        ids.update(to_global_id(type_name, k) for k in keys)

    for type_name in SHARED_TYPES:
        add(type_name, [r[0] for r in await c.fetch(NODE_ROWS[type_name])])
    add("Customer", [me])
    add("Account", my_accounts)
    add("Property", homes)
    add("Meter", meters)
    add("SolarInstallation", [h for h in homes if h in {w.homes[x] for x in SOLAR_HOMES}])
    rows = await c.fetch(
        "SELECT customer_id || '|' || account_id || '|' || role || '|' || start_date "
        "FROM customer_accounts WHERE customer_id = $1",
        me,
    )
    add("CustomerAccount", [r[0] for r in rows])
    rows = await c.fetch(
        "SELECT DISTINCT circuit_id FROM circuit_meter WHERE meter_id = ANY($1::uuid[])",
        list(meters),
    )
    add("Circuit", [r[0] for r in rows])
    for type_name, sql in (
        ("CustomerInvite", "SELECT token FROM customer_invites WHERE customer_id = $1"),
        ("CustomerIdentity", "SELECT id FROM customer_identities WHERE customer_id = $1"),
        ("CustomerEvent", "SELECT id FROM customer_events WHERE customer_id = $1"),
        ("Payment", "SELECT id FROM payments WHERE customer_id = $1"),
        ("CustomerTariff", "SELECT customer_id || '|' || period_start FROM customer_tariffs "
                           "WHERE customer_id = $1"),
    ):  # fmt: skip
        add(type_name, [r[0] for r in await c.fetch(sql, me)])
    for r in await c.fetch("SELECT id, meter_id, month FROM monthly_usage"):
        if (r["meter_id"], r["month"]) in usage:
            add("MonthlyUsage", [r["id"]])
    for r in await c.fetch(
        "SELECT c.id, u.meter_id, c.month, c.customer_id FROM monthly_costs c "
        "JOIN monthly_usage u ON u.id = c.monthly_usage_id"
    ):
        if (r["meter_id"], r["month"]) in usage:
            assert r["customer_id"] == me  # the billing run agrees with the oracle
            add("MonthlyCosts", [r["id"]])
    for r in await c.fetch("SELECT id, property_id, month FROM monthly_solar_credits"):
        if (r["property_id"], r["month"]) in credits:
            add("MonthlySolarCredit", [r["id"]])
    # Account events: those of the person's own links (their notes name them), and the
    # account's own ones recorded while they were linked.
    my_links = [
        (w.accounts[a], start, link_end((p, a, role, start, end)))
        for p, a, role, start, end in LINKS
        if p == person
    ]
    for r in await c.fetch(
        "SELECT id, account_id, notes, (created_at AT TIME ZONE 'Europe/London')::date AS day "
        "FROM account_events"
    ):
        if r["account_id"] not in my_accounts:
            continue
        if r["notes"] is not None:
            if r["notes"].startswith(f"Customer {me}:"):
                add("AccountEvent", [r["id"]])
        elif any(
            a == r["account_id"] and s <= r["day"] and (e is None or e >= r["day"])
            for a, s, e in my_links
        ):
            add("AccountEvent", [r["id"]])
    others = [p for p in PEOPLE if p != person]
    forbidden = {w.emails[p] for p in others} | {w.names[p] for p in others}
    forbidden |= {str(w.people[p]) for p in others}
    own = {w.emails[person], w.names[person], str(me), to_global_id("Customer", me)}
    return Allowed(ids, usage, credits, forbidden, own)


# --- the crawl -------------------------------------------------------------------------


@dataclass
class Crawl:
    seen: dict[str, str] = field(default_factory=dict)  # global id -> typename
    bodies: list[Any] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    identities: list[tuple[str, Any]] = field(default_factory=list)


def _walk(value: Any, type_name: str, path: str, out: Crawl) -> Iterator[tuple[str, str]]:
    """(typename, id) of every object in a response, checking the field classes."""
    if value is None:
        return
    if isinstance(value, list):
        for v in value:
            yield from _walk(v, type_name, path, out)
        return
    t = GRAPHQL.type_map[value.get("__typename", type_name)]
    assert isinstance(t, GraphQLObjectType)
    if _is_node(t) and "id" in value:
        yield t.name, value["id"]
    for key, v in value.items():
        if key == "__typename":
            continue
        f = t.fields[key]
        kind = get_named_type(f.type)
        cls = FIELD_CLASSES.get(t.name, {}).get(key)
        where = f"{path}.{key}"
        if (
            cls == H
            and v not in (None, [])
            and not (isinstance(v, dict) and v.get("totalCount") == 0)
        ):
            out.problems.append(f"hidden field {where} holds {v}")
        if cls == IDENT:
            out.identities.append((where, v))
        if isinstance(kind, GraphQLObjectType):
            if _is_connection(kind):
                for node in v["nodes"] if v else []:
                    yield from _walk(
                        node, get_named_type(kind.fields["nodes"].type).name, where, out
                    )
                for edge in v["edges"] if v else []:
                    yield from _walk(
                        edge["node"], get_named_type(kind.fields["nodes"].type).name, where, out
                    )
            else:
                yield from _walk(v, kind.name, where, out)


async def post(w: World, person: str, query: str, variables: dict[str, Any] | None = None) -> Any:
    body = (
        await w.client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=w.headers[person]
        )
    ).json()
    assert "errors" not in body, (person, query[:200], body)
    return body


async def crawl(w: World, person: str) -> Crawl:
    if person in w.crawls:
        return w.crawls[person]
    out = Crawl()
    body = await post(w, person, VIEWER_QUERY)
    out.bodies.append(body)
    todo = list(_walk(body["data"]["viewer"], "Viewer", "viewer", out))
    while todo:
        type_name, gid = todo.pop()
        if gid in out.seen:
            continue
        out.seen[gid] = type_name
        body = await post(w, person, node_query(type_name), {"id": gid})
        out.bodies.append(body)
        node = body["data"]["node"]
        if node is None:
            out.problems.append(f"{type_name} {gid} is reached nested but node() is null")
            continue
        assert node["__typename"] == type_name
        todo += [x for x in _walk(node, type_name, type_name, out) if x[1] not in out.seen]
    w.crawls[person] = out
    return out


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


@pytest.mark.parametrize("person", PEOPLE)
@pytest.mark.parametrize("auth", ["jwt", "oidc"])
async def test_a_customer_sees_only_their_own(world: World, auth: str, person: str) -> None:
    world = signed_in(world, auth)
    allowed = await allowed_for(world, person)
    found = await crawl(world, person)
    assert not found.problems, found.problems
    viewer = found.bodies[0]["data"]["viewer"]
    assert viewer["role"] == "CUSTOMER" and viewer["customer"]["id"] == to_global_id(
        "Customer", world.people[person]
    )
    assert (viewer["issuer"] is None) == (auth == "jwt"), viewer

    # 1. Every object reached is one the oracle allows.
    strays = sorted(
        f"{t} {from_global_id(g)}" for g, t in found.seen.items() if g not in allowed.ids
    )
    assert not strays, f"{person} reached rows of others: {strays}"

    # 2. Nobody else's e-mail, name or uuid, anywhere (ids and cursors opened up).
    texts: list[str] = []
    for body in found.bodies:
        for s in _strings({k: v for k, v in body.items() if k != "extensions"}):
            texts.append(s)
            opened = opened_up(s)
            if opened is not None:
                texts.append(opened)
    blob = "\n".join(texts)
    leaked = sorted(x for x in allowed.forbidden_text if x in blob)
    assert not leaked, f"{person} read other people's identity: {leaked}"
    for where, value in found.identities:
        assert value in allowed.own_identity | ROLE_WORDS or value is None, (where, value)

    # 3. Exactly their own months: usage, costs, credits (no more, no fewer).
    seen_usage = {g for g, t in found.seen.items() if t == "MonthlyUsage"}
    want_usage = {g for g in allowed.ids if from_global_id(g)[0] == "MonthlyUsage"}  # type: ignore[index]
    assert seen_usage == want_usage, (person, len(seen_usage), len(want_usage))
    # (A positive control: every occupier has months; the landlord has none.)
    assert bool(want_usage) == (person != "L"), person
    for type_name in ("MonthlyCosts", "MonthlySolarCredit"):
        seen = {g for g, t in found.seen.items() if t == type_name}
        want = {g for g in allowed.ids if from_global_id(g)[0] == type_name}  # type: ignore[index]
        assert seen == want, (person, type_name, len(seen), len(want))


LEDGER_QUERY = """{ viewer { customer {
  balance(on: "2025-07-31")
  monthlySummaries(from: "2024-01-01") { month paymentsReceived outstanding }
  accounts { account { id statements { month solarCredit payments charges { total } } } }
} } }"""


def occupied_months(person: str, account: str) -> set[date]:
    """The months of `account` whose 1st the person occupied it (the oracle)."""
    out = set()
    for link in LINKS:
        p, a, role, start, _ = link
        end = link_end(link)
        if p == person and a == account and role == "OCCUPIER":
            out |= {
                m for m in [*MONTHS, date(2025, 7, 1)] if start <= m and (end is None or m <= end)
            }
    return out


@pytest.mark.parametrize("person", PEOPLE)
async def test_a_ledger_holds_only_own_months_and_own_payments(world: World, person: str) -> None:
    """Statements, balance and monthly summaries: charges and credits only of the
    months the person occupied on the 1st, payments only those they made (the payer's,
    whatever the month: O's payment after she left is O's, never N's)."""
    me = world.people[person]
    names = {v: k for k, v in world.accounts.items()}
    own: dict[tuple[str, date], Decimal] = defaultdict(Decimal)
    for r in await world.conn.fetch(
        "SELECT account_id, amount_pence, COALESCE(scheduled_at, created_at) AS at "
        "FROM payments WHERE customer_id = $1 AND status = 'succeeded'",
        me,
    ):
        month = r["at"].astimezone(LONDON).date().replace(day=1)
        own[(names[r["account_id"]], month)] += Decimal(r["amount_pence"]) / 100
    body = await post(world, person, LEDGER_QUERY)
    customer = body["data"]["viewer"]["customer"]
    shown: dict[tuple[str, date], Decimal] = defaultdict(Decimal)
    net = Decimal(0)
    for link in customer["accounts"]:
        name = names[uuid_of(link["account"]["id"])]
        mine = occupied_months(person, name)
        for st in link["account"]["statements"]:
            month = d(st["month"])
            charged, credit = Decimal(st["charges"]["total"]), Decimal(st["solarCredit"])
            if month not in mine:
                assert charged == credit == 0, (person, name, st)
            shown[(name, month)] += Decimal(st["payments"])
            if month <= d("2025-07-01"):
                net += charged - credit - Decimal(st["payments"])
    assert {k: v for k, v in shown.items() if v} == dict(own), person
    assert Decimal(customer["balance"]) == net
    by_month: dict[date, Decimal] = defaultdict(Decimal)
    for (_, month), amount in own.items():
        by_month[month] += amount
    summaries = {
        d(m["month"]): Decimal(m["paymentsReceived"]) for m in customer["monthlySummaries"]
    }
    assert {m: v for m, v in summaries.items() if v} == dict(by_month), person
    # Positive controls: O's payment after she left, and N's month without it.
    if person == "O":
        assert own[("AC5", d("2024-10-01"))] == Decimal("25")
    if person == "N":
        assert shown[("AC5", d("2024-10-01"))] == 0 and own == {}


@pytest.mark.parametrize("person", PEOPLE)
@pytest.mark.parametrize("auth", ["jwt", "oidc"])
async def test_node_and_nodes_agree_with_the_oracle(world: World, auth: str, person: str) -> None:
    """`node`/`nodes` of every object of the ESCO: resolved exactly when allowed."""
    world = signed_in(world, auth)
    allowed = await allowed_for(world, person)
    every: list[tuple[str, str]] = []
    for type_name, sql in NODE_ROWS.items():
        every += [(type_name, to_global_id(type_name, r[0])) for r in await world.conn.fetch(sql)]
    resolved: dict[str, str | None] = {}
    for start in range(0, len(every), 50):
        chunk = every[start : start + 50]
        body = await post(world, person, NODES_QUERY, {"ids": [g for _, g in chunk]})
        for (_type, gid), node in zip(chunk, body["data"]["nodes"], strict=True):
            resolved[gid] = node["__typename"] if node else None
    wrong = sorted(
        f"{t} {from_global_id(g)} resolved={resolved[g] is not None}"
        for t, g in every
        if (resolved[g] is not None) != (g in allowed.ids)
    )
    assert not wrong, f"{person}: nodes() disagrees with the oracle: {wrong}"
    # node(id) agrees with nodes(ids) (a sample of each type, both ways).
    for type_name in NODE_ROWS:
        sample = [g for t, g in every if t == type_name][:3]
        for gid in sample:
            body = await post(world, person, "query($id: ID!) { node(id: $id) { __typename } }",
                              {"id": gid})  # fmt: skip
            got = body["data"]["node"]
            assert (got["__typename"] if got else None) == resolved[gid], (person, gid)


# --- partner keys: every scope set, every mutation payload ------------------------------

SCOPE_SETS = [
    sorted(s)
    for n in (1, 2, 3)
    for s in itertools.combinations(["read", "usage:write", "payments:write"], n)
] + [["webhooks:write"], ["read", "webhooks:write"]]
MUTATIONS = sorted(GRAPHQL.mutation_type.fields)  # type: ignore[union-attr]
SCALAR_DUMMIES: dict[str, Any] = {
    "ID": lambda: str(uuid.uuid4()),
    "UUID": lambda: str(uuid.uuid4()),
    "String": lambda: "x",
    "Int": lambda: 1,
    "Boolean": lambda: True,
    "Date": lambda: "2025-07-01",
    "DateTime": lambda: "2025-07-01T00:00:00+00:00",
    "Decimal": lambda: "1",
    "JSON": lambda: {},
}


def dummy(t: Any) -> Any:
    """A value of an input type: required fields only, ids of nothing."""
    if isinstance(t, GraphQLNonNull):
        return dummy(t.of_type)
    if isinstance(t, GraphQLList):
        return [dummy(t.of_type)]
    if isinstance(t, GraphQLEnumType):
        return next(iter(t.values))
    if isinstance(t, GraphQLScalarType):
        return SCALAR_DUMMIES[t.name]()
    assert isinstance(t, GraphQLInputObjectType)
    return {
        name: dummy(f.type)
        for name, f in t.fields.items()
        if isinstance(f.type, GraphQLNonNull) and f.default_value is Undefined
    }


def payload_type(mutation: str) -> GraphQLObjectType:
    t = get_named_type(GRAPHQL.mutation_type.fields[mutation].type)  # type: ignore[union-attr]
    assert isinstance(t, GraphQLObjectType)
    return t


def own_selection(mutation: str) -> str:
    """The payload and the leaves of the objects in it: the written object's own fields."""
    parts = []
    for name, f in payload_type(mutation).fields.items():
        kind = get_named_type(f.type)
        if is_leaf_type(kind):
            parts.append(name)
        else:
            assert isinstance(kind, GraphQLObjectType)
            leaves = [n for n, x in kind.fields.items() if is_leaf_type(get_named_type(x.type))]
            parts.append(f"{name} {{ {' '.join(leaves)} }}")
    return " ".join(parts)


def full_selection(mutation: str) -> tuple[str, bool]:
    """Every field of the payload's objects, relations too; and whether that reaches
    past the written objects (something only `read` may follow)."""
    parts, beyond = [], False
    for name, f in payload_type(mutation).fields.items():
        kind = get_named_type(f.type)
        if is_leaf_type(kind):
            parts.append(name)
            continue
        assert isinstance(kind, GraphQLObjectType)
        parts.append(f"{name} {{ {selection(kind.name)} }}")
        beyond |= any(not is_leaf_type(get_named_type(x.type)) for x in kind.fields.values())
    return " ".join(parts), beyond


def mutation_doc(mutation: str, sel: str) -> str:
    arg = get_named_type(GRAPHQL.mutation_type.fields[mutation].args["input"].type)  # type: ignore[union-attr]
    return f"mutation($i: {arg.name}!) {{ {mutation}(input: $i) {{ {sel} }} }}"


@pytest.fixture(scope="module")
async def keys(world: World, settings: Settings, database_url: str) -> dict[str, str]:
    engine = create_engine(settings, database_url)
    try:
        async with engine.begin() as conn:
            return {
                ",".join(s): (await create_key(conn, world.esco, s, ",".join(s))).key
                for s in SCOPE_SETS
            }
    finally:
        await engine.dispose()


@pytest.mark.parametrize("scopes", [",".join(s) for s in SCOPE_SETS])
async def test_partner_scopes_on_every_mutation_payload(
    world: World, keys: dict[str, str], scopes: str
) -> None:
    """Without `read` a payload that reaches other rows is refused before anything runs
    (403, nothing written); the written object's own fields always answer."""
    headers = {"X-API-Key": keys[scopes]}
    audited = "SELECT (SELECT count(*) FROM audit_log) + (SELECT count(*) FROM account_events)"
    for mutation in MUTATIONS:
        variables = {"i": dummy(GRAPHQL.mutation_type.fields[mutation].args["input"].type)}  # type: ignore[union-attr]
        full, beyond = full_selection(mutation)
        before = await world.conn.fetchval(audited)
        response = await world.client.post(
            "/graphql", json={"query": mutation_doc(mutation, full), "variables": variables},
            headers=headers,
        )  # fmt: skip
        body = response.json()
        if beyond and "read" not in scopes:
            assert response.status_code == 403, (mutation, body)
            assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
            assert "data" not in body
        else:
            assert response.status_code == 200 and "errors" not in body, (mutation, body)
        own = await world.client.post(
            "/graphql",
            json={"query": mutation_doc(mutation, own_selection(mutation)), "variables": variables},
            headers=headers,
        )
        assert own.status_code == 200 and "errors" not in own.json(), (mutation, own.json())
        assert await world.conn.fetchval(audited) == before, mutation  # ids of nothing

    # The mutations a scope allows write, and answer their own fields only.
    if "usage:write" in scopes:
        row = {"meterId": str(world.meters["M2"]), "month": "2025-07-01", "powerKwh": "9",
               "heatKwh": "1", "solarKwh": "0"}  # fmt: skip
        response = await world.client.post(
            "/graphql",
            json={"query": mutation_doc("recordMonthlyUsage", own_selection("recordMonthlyUsage")),
                  "variables": {"i": row}},
            headers=headers,
        )  # fmt: skip
        payload = response.json()["data"]["recordMonthlyUsage"]
        assert payload["userErrors"] == [] and payload["monthlyUsage"]["powerKwh"] == "9.000"
        assert set(payload["monthlyUsage"]) == set(
            own_selection("recordMonthlyUsage").split("monthlyUsage { ")[1].split(" }")[0].split()
        )
    if "webhooks:write" in scopes:
        create = {"escoId": str(world.esco), "url": f"https://93.184.216.34/{scopes}",
                  "eventTypes": ["payment.created"]}  # fmt: skip
        response = await world.client.post(
            "/graphql",
            json={"query": mutation_doc("createWebhookEndpoint",
                                        own_selection("createWebhookEndpoint")),
                  "variables": {"i": create}},
            headers=headers,
        )  # fmt: skip
        payload = response.json()["data"]["createWebhookEndpoint"]
        assert payload["userErrors"] == [] and payload["secret"].startswith("whsec_")
        # Listing them is a query: it needs `read` as well.
        listed = await world.client.post(
            "/graphql",
            json={"query": "{ webhookEndpoints { nodes { url } } }"},
            headers=headers,
        )
        if "read" in scopes:
            urls = [n["url"] for n in listed.json()["data"]["webhookEndpoints"]["nodes"]]
            assert create["url"] in urls
        else:
            assert listed.status_code == 403
    if "payments:write" in scopes:
        pay = {"customerId": str(world.people["C"]), "accountId": str(world.accounts["AC1"]),
               "amountPence": 100, "idempotencyKey": f"partner-{scopes}"}  # fmt: skip
        response = await world.client.post(
            "/graphql",
            json={"query": mutation_doc("createPayment", own_selection("createPayment")),
                  "variables": {"i": pay}},
            headers=headers,
        )  # fmt: skip
        payload = response.json()["data"]["createPayment"]
        assert payload["userErrors"] == [] and payload["payment"]["amountPence"] == 100
        text = json.dumps(payload)
        assert str(world.people["C"]) not in text and world.emails["C"] not in text
