"""Queries compiled into one SQL statement (flows_graphql/compiled.py) answer exactly as
graphql-core's walk.

The world is the privacy matrix's (tests/test_privacy_matrix.py: one ESCO over 18
months, homes whose occupiers change, an earlier occupant who paid after she left,
meters swapped between homes), with a history of tariffs for a few customers (their
tariff in force on a day one of several rows). Two more apps run on it: one where
graphql-core walks every operation (`breadth_first=False`), and one with the compiler
off (the breadth-first walk), for statement counts. Every document is sent by every kind of
viewer (admin, the ESCO's operator, another ESCO's operator, each customer — current
and earlier occupants — and partner keys with and without `read`) about every
customer, and must get the same status and body, keys in the same order. A spy on
compiled.execute tells whether the compiled path answered.
"""

from __future__ import annotations

import contextlib
import dataclasses
import decimal
import gc
import json
import random
import re
import uuid
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from operator import sub
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import Numeric

from flows_graphql import compiled
from flows_graphql.app import create_app
from flows_graphql.auth.apikeys import create_key
from flows_graphql.config import Settings
from flows_graphql.db.direct import compiled_for
from flows_graphql.db.engine import create_engine
from flows_graphql.db.request import RequestDb
from flows_graphql.fields import utc_today
from flows_graphql.schema import schema
from tests.support.api import TENANT, asgi_client, bearer, comparable, gid
from tests.support.db import connect
from tests.support.documents import DASHBOARD, OUR_APP, OUR_DASHBOARD
from tests.support.privacy_world import (
    ACCOUNTS,
    LINKS,
    METERS,
    PEOPLE,
    SUPPLY,
    TODAY,
    World,
    build_world,
    call,
    link_end,
)

# Every compilable kind of field: ids, uuids, enums, datetimes, nulls, aliases, merged
# selections, __typename, to-one and to-many relations, ranges, a day argument, a page.
EVERYTHING = """
query Everything($id: ID!, $on: Date) {
  __typename
  found: node(id: $id) {
    __typename
    id
    ... on Customer {
      id uuid email fullName status updatedAt
      esco { __typename code name }
      accounts { id role startDate endDate account { accountNumber status openedOn closedOn } }
      tariffs { id periodStart unitRate }
      currentTariff(on: $on) { id unitRate customer { email } }
      costs: monthlyCosts { month total savings customer { fullName } }
      monthlyCosts { id month }
      payments(first: 3) {
        __typename
        nodes { id uuid amountPence status scheduledAt createdAt providerReference }
      }
      invites { id }
      identities { id }
    }
    ... on Customer { email esco { id } }
  }
}
"""

# Not compiled (a field whose value is made in Python): the walk answers.
WITH_BALANCE = """
query Balance($id: ID!) {
  node(id: $id) { ... on Customer { email balance monthlyCosts { total } } }
}
"""


# Tariffs added to the world's one per customer (from 2023-10-01 at 10%), so that a
# customer's tariff in force on a day is one of several rows: person -> (start, %).
# Two starts in one month, one on TODAY, one after it (and before the wall clock's
# today, the default `on`).
TARIFF_HISTORY: dict[str, list[tuple[str, int]]] = {
    "A": [("2024-02-01", 15), ("2024-02-15", 17), ("2024-03-01", 20), ("2025-09-01", 25)],
    "C": [("2024-02-15", 30)],
    "G": [("2025-07-10", 5), ("2026-01-01", 40)],
}
FIRST_TARIFF = ("2023-10-01", 10)


def tariff_on(person: str, on: date) -> tuple[str, int] | None:
    """The oracle: the person's tariff with the latest start on or before `on`."""
    starts = [FIRST_TARIFF, *TARIFF_HISTORY.get(person, [])]
    candidates = [t for t in starts if date.fromisoformat(t[0]) <= on]
    return max(candidates) if candidates else None


def occupier_of(account: str, on: date) -> str | None:
    """The oracle: who occupies `account` on `on`, straight from the world's links."""
    found = [
        link[0]
        for link in LINKS
        if link[1] == account
        and link[2] == "OCCUPIER"
        and link[3] <= on
        and ((end := link_end(link)) is None or end >= on)
    ]
    assert len(found) <= 1, (account, on, found)
    return found[0] if found else None


@dataclass
class Apps:
    world: World
    walk: httpx.AsyncClient  # graphql-core's walk only
    uncompiled: httpx.AsyncClient  # the breadth-first walk
    viewers: dict[str, dict[str, str]]


@pytest.fixture(scope="module")
async def apps(settings: Settings, database_url: str) -> AsyncIterator[Apps]:
    async for world in build_world(settings, database_url):
        walk_app = create_app(
            dataclasses.replace(settings, breadth_first=False), database_url, today=lambda: TODAY
        )
        uncompiled_app = create_app(
            dataclasses.replace(settings, compiled=False), database_url, today=lambda: TODAY
        )
        admin = bearer(settings, "admin")
        for person, history in TARIFF_HISTORY.items():
            for start, percent in history:
                customer = gid("Customer", world.people[person])
                await call(world.client, admin, "setCustomerDiscount",
                           {"customerId": customer, "periodStart": start,
                            "discountPercent": percent}, "customerTariff { id }")  # fmt: skip
        engine = create_engine(settings, database_url)
        try:
            async with engine.begin() as conn:
                read = (await create_key(conn, world.esco, ["read"], "compiled-read")).key
                write = (await create_key(conn, world.esco, ["usage:write"], "compiled-w")).key
        finally:
            await engine.dispose()
        viewers = {
            "admin": bearer(settings, "admin"),
            "operator": bearer(settings, "operator", sub="op", escos=[str(world.esco)]),
            "other operator": bearer(settings, "operator", sub="op2", escos=[str(uuid.uuid4())]),
            "partner read": {"X-API-Key": read},
            "partner without read": {"X-API-Key": write},
            **{f"customer {p}": world.headers[p] for p in PEOPLE},
        }
        try:
            async with asgi_client(walk_app) as walk, asgi_client(uncompiled_app) as uncompiled:
                yield Apps(world, walk, uncompiled, viewers)
        finally:
            await walk_app.state.engine.dispose()
            await uncompiled_app.state.engine.dispose()


@dataclass
class Spy:
    answered: int = 0


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    """Counts the operations the compiled path answered (no fallback)."""
    counter = Spy()
    original = compiled.execute

    async def counting(*args: Any, **kwargs: Any) -> Any:
        data = await original(*args, **kwargs)
        counter.answered += 1
        return data

    monkeypatch.setattr(compiled, "execute", counting)
    return counter


async def post(
    client: httpx.AsyncClient, text: str, variables: dict[str, Any], headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    response = await client.post(
        "/graphql", json={"query": text, "variables": variables}, headers=headers
    )
    return response.status_code, response.json()


async def same(
    apps: Apps, spy: Spy, text: str, variables: dict[str, Any], viewer: str
) -> tuple[dict[str, Any], bool]:
    """The compiled app's answer, the same as graphql-core's walk's (keys in the same
    order); and whether the compiled path gave it."""
    headers = apps.viewers[viewer]
    before = spy.answered
    status, body = await post(apps.world.client, text, variables, headers)
    answered = spy.answered > before
    walk_status, walk_body = await post(apps.walk, text, variables, headers)
    assert spy.answered == before + answered, "the walk's app must not compile"
    assert status == walk_status, (viewer, body, walk_body)
    ours, theirs = comparable(body), comparable(walk_body)
    assert ours == theirs, (viewer, variables, first_difference(ours, theirs))
    assert json.dumps(ours) == json.dumps(theirs), "the same keys in another order"
    return body, answered


def first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if a.get(key) != b.get(key):
                return first_difference(a.get(key), b.get(key), f"{path}.{key}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return first_difference(x, y, f"{path}[{i}]")
    return f"{path}: {a!r} != {b!r}"


RANGE = {"from": "2024-01-01", "to": "2025-06-30"}
# Every viewer but the partner without `read` (refused before reading).
EVERY_READER = [
    "admin",
    "operator",
    "other operator",
    "partner read",
    *(f"customer {p}" for p in PEOPLE),
]


@pytest.mark.parametrize("viewer", ["admin", "operator", "other operator", "partner read"])
async def test_app_screen_of_every_customer_for_staff_and_partners(
    apps: Apps, spy: Spy, viewer: str
) -> None:
    found = 0
    for person in PEOPLE:
        variables = {"id": gid("Customer", apps.world.people[person]), **RANGE}
        body, answered = await same(apps, spy, OUR_APP, variables, viewer)
        assert answered, (viewer, person, body)
        node = body["data"]["node"]
        if viewer == "other operator":
            assert node is None
            continue
        found += 1
        assert node["email"] == apps.world.emails[person]
    if viewer != "other operator":
        assert found == len(PEOPLE)


async def test_app_screen_for_every_customer_about_everyone(apps: Apps, spy: Spy) -> None:
    """Each customer sees their own screen (their months alone, the payments they
    made, an earlier occupant's and a later one's apart) and nobody else's."""
    costs_seen = 0
    for viewer in PEOPLE:
        for person in PEOPLE:
            variables = {"id": gid("Customer", apps.world.people[person]), **RANGE}
            body, answered = await same(apps, spy, OUR_APP, variables, f"customer {viewer}")
            assert answered
            node = body["data"]["node"]
            if viewer != person:
                assert node is None
                continue
            assert node["email"] == apps.world.emails[person]
            costs_seen += len(node["monthlyCosts"])
    assert costs_seen > len(PEOPLE), "the customers' own months must be there to compare"


async def test_partner_without_read_is_refused_the_same_way(apps: Apps, spy: Spy) -> None:
    variables = {"id": gid("Customer", apps.world.people[PEOPLE[0]]), **RANGE}
    body, answered = await same(apps, spy, OUR_APP, variables, "partner without read")
    assert not answered
    assert "errors" in body


@pytest.mark.parametrize("viewer", EVERY_READER)
async def test_every_compilable_field_answers_as_the_walk(
    apps: Apps, spy: Spy, viewer: str
) -> None:
    for person in PEOPLE:
        for on in (None, "2024-02-15"):
            variables = {"id": gid("Customer", apps.world.people[person]), "on": on}
            body, answered = await same(apps, spy, EVERYTHING, variables, viewer)
            assert answered, body
            assert "errors" not in body


async def test_the_app_screen_is_one_statement(apps: Apps, spy: Spy) -> None:
    """The data in one statement after the transaction's opening; the breadth-first walk
    takes one per level."""
    person = PEOPLE[0]
    variables = {"id": gid("Customer", apps.world.people[person]), **RANGE}
    headers = apps.viewers["operator"]
    _, body = await post(apps.world.client, OUR_APP, variables, headers)
    _, walked = await post(apps.uncompiled, OUR_APP, variables, headers)
    assert body["extensions"]["sqlStatements"] == TENANT + 1
    assert walked["extensions"]["sqlStatements"] == TENANT + 4
    assert comparable(body) == comparable(walked)
    # The same with a customer's conditions.
    _, body = await post(apps.world.client, OUR_APP, variables, apps.world.headers[person])
    assert body["extensions"]["sqlStatements"] == TENANT + 1
    assert body["data"]["node"]["email"] == apps.world.emails[person]


async def test_a_compiled_answer_leaves_its_request_to_reference_counting(
    apps: Apps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The executor of a compiled answer (and with it the request's context, database
    access and loaders) is freed as soon as the answer is sent, not left in a cycle for
    the collector (a young-generation pass over ~50,000 objects every ~1,000 app
    screens, bench/README.md "Session 6")."""
    executors: list[weakref.ref[Any]] = []
    original = compiled.execute

    async def keeping(executor: Any, document: Any) -> Any:
        executors.append(weakref.ref(executor))
        return await original(executor, document)

    monkeypatch.setattr(compiled, "execute", keeping)
    person = PEOPLE[0]
    variables = {"id": gid("Customer", apps.world.people[person]), **RANGE}
    gc.collect()
    gc.disable()
    try:
        status, body = await post(apps.world.client, OUR_APP, variables, apps.world.headers[person])
        assert status == 200 and body["data"]["node"]["email"] == apps.world.emails[person]
        assert len(executors) == 1
        assert executors[0]() is None, gc.get_referrers(executors[0]())
    finally:
        gc.enable()


async def test_one_field_not_compilable_makes_the_whole_document_walk(apps: Apps, spy: Spy) -> None:
    for viewer in ("operator", f"customer {PEOPLE[0]}"):
        variables = {"id": gid("Customer", apps.world.people[PEOPLE[0]])}
        body, answered = await same(apps, spy, WITH_BALANCE, variables, viewer)
        assert not answered
        assert body["data"]["node"]["balance"] is not None


@pytest.mark.parametrize(
    ("text", "variables"),
    [
        (OUR_APP.replace("payments(first: 10)", "payments(first: 10, after: $cursor)")
         .replace("$to: Date!)", "$to: Date!, $cursor: String)"), {"cursor": None}),
        (OUR_APP.replace("payments(first: 10)", "payments(first: 1000)"), {}),
        (OUR_APP.replace("payments(first: 10)", "payments(last: 2)"), {}),
        (OUR_APP.replace("nodes {", "pageInfo { hasNextPage } nodes {"), {}),
        (OUR_APP.replace("email", "email @include(if: true)"), {}),
    ],
)  # fmt: skip
async def test_what_is_not_compiled_answers_as_the_walk(
    apps: Apps, spy: Spy, text: str, variables: dict[str, Any]
) -> None:
    """A cursor that is null compiles; a page too large is the walk's error; `last`,
    `pageInfo` and directives are the walk's."""
    variables = {"id": gid("Customer", apps.world.people[PEOPLE[0]]), **RANGE, **variables}
    await same(apps, spy, text, variables, "operator")


@pytest.mark.parametrize(
    "id_of",
    [
        lambda w: "bm90IGFuIGlk",  # not one of our ids
        lambda w: gid("Customer", "not-a-uuid"),
        lambda w: gid("Customer", uuid.uuid4()),  # nobody
        lambda w: gid("Meter", w.meters["M1"]),  # another type: the fragment selects nothing
        lambda w: gid("Nonsense", uuid.uuid4()),
    ],
)
async def test_ids_naming_nothing_or_another_type(apps: Apps, spy: Spy, id_of: Any) -> None:
    variables = {"id": id_of(apps.world), **RANGE}
    for viewer in ("admin", f"customer {PEOPLE[0]}"):
        await same(apps, spy, OUR_APP, variables, viewer)


async def test_the_suite_dashboard_is_the_walks(apps: Apps, spy: Spy) -> None:
    """A computed field giving an object (`microgrid { total }`) is not compiled."""
    variables = {"code": "privy", "n": 5, **RANGE}
    body, answered = await same(apps, spy, DASHBOARD, variables, "operator")
    assert not answered
    assert body["data"]["esco"]["customers"]["nodes"]


@pytest.mark.parametrize("viewer", EVERY_READER)
async def test_the_bench_dashboard_is_one_statement_for_everyone(
    apps: Apps, spy: Spy, viewer: str
) -> None:
    """The operators' dashboard (bench scenario a): accounts, their to-one chains, the
    meters' circuits and months with the costs their rows carry, in one statement —
    and for a customer, only what they may see."""
    for code, variables in (("privy", RANGE), ("privy", {"from": "2025-01-01", "to": "2025-03-31"}),
                            ("nobody", RANGE)):  # fmt: skip
        body, answered = await same(apps, spy, OUR_DASHBOARD, {"code": code, **variables}, viewer)
        assert answered, body
        esco = body["data"]["esco"]
        if code == "nobody" or viewer == "other operator":
            assert esco is None
            continue
        assert esco["code"] == "privy"
        assert body["extensions"]["sqlStatements"] == TENANT + 1
        if viewer in ("admin", "operator", "partner read"):
            nodes = esco["customers"]["nodes"]
            assert len(nodes) == len(PEOPLE)
            months = [
                usage
                for customer in nodes
                for link in customer["accounts"]
                for usage in link["account"]["property"]["supplyMeter"]["monthlyUsage"]
            ]
            assert any(usage["costs"] for usage in months) and months


@pytest.mark.parametrize(
    ("value", "expected"), [(None, True), ("1", True), ("0", False), ("off", False)]
)
def test_flows_compiled_switches_the_compiler(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: bool
) -> None:
    if value is None:
        monkeypatch.delenv("FLOWS_COMPILED", raising=False)
    else:
        monkeypatch.setenv("FLOWS_COMPILED", value)
    assert Settings.from_env().compiled is expected


NUMERIC_TEXTS = [
    "0", "0.0", "0.000000", "0.0000000", "0.00000000", "0.0000001", "0.000001", "0.00001234",
    "-0.0000001", "-0.5", "1", "10", "100.00", "12.3400", "-12.3400", "123456789012.12345678",
    "0.1", "0.0000012345", "NaN", "Infinity", "-Infinity", "1000000", "9.99999999",
]  # fmt: skip


@pytest.mark.parametrize("text", NUMERIC_TEXTS)
def test_a_numeric_text_is_what_decimal_serializes(text: str) -> None:
    """The shortcut for numerics gives exactly str(Decimal(text)), exponents included."""
    assert compiled._decimal_text(text) == str(Decimal(text))


@pytest.mark.parametrize(
    "day", [date(1, 1, 1), date(999, 12, 31), date(2024, 2, 29), date(9999, 12, 31)]
)
def test_a_date_text_is_what_isoformat_serializes(day: date) -> None:
    text = day.isoformat()  # PostgreSQL's JSON of a date, years 1 to 9999
    assert compiled._date_text(text) == date.fromisoformat(text).isoformat() == text


def _shortcut(type_name: str, convert: Any) -> Any:
    """The compiled finisher's expression for a column of the schema's `type_name` read
    as text and decoded with `convert`, as a function of that text."""
    leaf = schema._schema.get_type(type_name)
    helpers = {"h": compiled._decimal_text, "d": compiled._date_text}
    expression = compiled._same_text(leaf, convert)
    assert expression is not None, f"no shortcut for the schema's {type_name}"
    helper = "h" if convert is Decimal else "d"
    return eval(f"lambda t: {expression.format(x='t') % helper}", helpers)


@pytest.mark.parametrize("text", NUMERIC_TEXTS)
def test_the_inline_numeric_shortcut_is_what_decimal_serializes(text: str) -> None:
    """The schema's Decimal leaves take the shortcut, and it writes str(Decimal(text))."""
    assert _shortcut("Decimal", Decimal)(text) == str(Decimal(text))


@pytest.mark.parametrize(
    "day", [date(1, 1, 1), date(999, 12, 31), date(2024, 2, 29), date(9999, 12, 31)]
)
def test_the_inline_date_shortcut_is_what_isoformat_serializes(day: date) -> None:
    """The schema's Date leaves take the shortcut (a classmethod read twice is two
    objects: compared by `is`, it never did), and it writes the date's isoformat."""
    text = day.isoformat()
    assert _shortcut("Date", date.fromisoformat)(text) == date.fromisoformat(text).isoformat()
    with pytest.raises(ValueError):  # BC or past 9999: the long way, which fails
        _shortcut("Date", date.fromisoformat)("10000-01-01")


def test_a_selection_nested_past_what_python_compiles_is_not_compiled() -> None:
    """Lists in lists are loops in loops of one finisher; CPython compiles at most 20
    of those in one another. Deeper (a raised depth limit allows it) is not compiled,
    so the walk answers; shallower compiles."""

    def nested(levels: int) -> compiled.ObjectPlan:
        inner = compiled.ObjectPlan()
        inner.outputs.append(("t", "typename", "T"))
        inner.finish = compiled._finisher(inner)
        for _ in range(levels):
            outer = compiled.ObjectPlan()
            source: Any = type("Source", (), {"prefix": None, "paged": False})()
            child = compiled.ChildPlan(None, [], source, inner)
            child.many = True
            outer.outputs.append(("c", "child", 0))
            outer.children.append(child)
            outer.finish = compiled._finisher(outer)
            inner = outer
        return inner

    row: Any = []  # the innermost row: no columns
    for _ in range(3):
        row = [[row]]  # a row whose one value is the list of its child's rows
    finish = nested(3).finish
    assert finish is not None
    assert finish(row, compiled.Run()) == {"c": [{"c": [{"c": [{"t": "T"}]}]}]}
    with pytest.raises(compiled.NotCompiled):
        nested(25)


@pytest.mark.parametrize("viewer", ["admin", "operator", "partner read"])
async def test_a_page_shorter_than_its_rows_is_cut_as_the_walk_cuts_it(
    apps: Apps, spy: Spy, viewer: str
) -> None:
    """A page's statement reads one row past its size (for `hasNextPage`): the
    finishing cuts it, in the loop it writes for the page."""
    assert len(PEOPLE) > 2
    text = OUR_DASHBOARD.replace("customers(first: 50)", "customers(first: 2)")
    body, answered = await same(apps, spy, text, {"code": "privy", **RANGE}, viewer)
    assert answered, body
    assert len(body["data"]["esco"]["customers"]["nodes"]) == 2


async def _compiled_statement(
    apps: Apps, monkeypatch: pytest.MonkeyPatch, text: str, variables: dict[str, Any]
) -> tuple[str, list[Any]]:
    """The SQL and arguments of the statement a compiled answer runs (as the operator)."""
    seen: list[tuple[str, list[Any]]] = []
    original = RequestDb.prepared_rows

    async def capture(self: RequestDb, statement: Any, params: dict[str, Any]) -> Any:
        found = compiled_for(statement, self._engine.dialect)
        assert found is not None
        seen.append((found.sql, found.arguments(params)))
        return await original(self, statement, params)

    monkeypatch.setattr(RequestDb, "prepared_rows", capture)
    status, body = await post(apps.world.client, text, variables, apps.viewers["operator"])
    assert status == 200 and "errors" not in body, body
    monkeypatch.undo()
    (only,) = seen
    return only


@pytest.mark.parametrize("size", [2, 50])
async def test_the_page_size_and_the_root_key_are_not_parameters(
    apps: Apps, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """The page size is written into the statement (one statement per size, as the
    loaders' pages are) and the root looked up by one key: what PostgreSQL's generic
    plan needs to be estimated at what it costs (the next test)."""
    text = OUR_DASHBOARD.replace("customers(first: 50)", f"customers(first: {size})")
    sql, arguments = await _compiled_statement(apps, monkeypatch, text, {"code": "privy", **RANGE})
    assert re.findall(r"LIMIT ([^ )]+)", sql) == [str(size + 1)]
    assert size + 1 not in arguments
    assert "privy" in arguments and ["privy"] not in arguments


@contextlib.asynccontextmanager
async def statistics(conn: asyncpg.Connection, tables: list[str]) -> AsyncIterator[None]:
    """`tables` analyzed for the block, then their statistics as they were before it
    (none: the planner's guesses from their size), so that later tests plan as if the
    block had not run (tests/test_filters.py's choices of index are that close)."""
    before = await conn.fetch(
        "SELECT oid, reltuples, relpages, relallvisible, oid::regclass::text AS name,"
        " EXISTS (SELECT FROM pg_statistic WHERE starelid = c.oid) AS analyzed"
        " FROM pg_class c WHERE oid = ANY($1::regclass[])",
        tables,
    )
    await conn.execute(f"ANALYZE {', '.join(tables)}")
    try:
        yield
    finally:
        for row in before:
            if row["analyzed"]:
                # By name: ANALYZE takes no expression (an oid cast to regclass).
                await conn.execute(f"ANALYZE {row['name']}")
                continue
            await conn.execute("DELETE FROM pg_statistic WHERE starelid = $1", row["oid"])
            await conn.execute(
                "UPDATE pg_class SET reltuples = $2, relpages = $3, relallvisible = $4"
                " WHERE oid = $1",
                *row[:4],
            )


async def test_the_dashboard_statement_runs_on_a_generic_plan(
    apps: Apps, monkeypatch: pytest.MonkeyPatch, settings: Settings, database_url: str
) -> None:
    """Prepared and run as the API runs it (its role, its tenant setting, one
    transaction a run), the dashboard of an ESCO with many more customers than a page
    is planned once after its fifth run instead of for every run's values (planning
    was a seventh of its time in PostgreSQL). With the page size a parameter, the
    generic plan was estimated at a tenth of the customers a page and never chosen."""
    owner = apps.world.conn
    crowd = await owner.fetchval(
        "INSERT INTO escos (code, name, region_code) SELECT 'crowd', 'Crowd', region_code"
        " FROM escos WHERE id = $1 RETURNING id",
        apps.world.esco,
    )
    try:
        await owner.execute(
            "INSERT INTO customers (esco_id, email) SELECT $1, 'c' || n || '@crowd.test'"
            " FROM generate_series(1, 400) n",
            crowd,
        )
        monkeypatch.setitem(
            apps.viewers, "operator", bearer(settings, "operator", sub="op", escos=[str(crowd)])
        )
        text = OUR_DASHBOARD.replace("customers(first: 50)", "customers(first: 5)")
        sql, arguments = await _compiled_statement(
            apps, monkeypatch, text, {"code": "crowd", **RANGE}
        )
        # Past any pooler: the statement stays prepared on one server connection.
        async with connect(database_url) as connection, statistics(owner, ["escos", "customers"]):
            statement = await connection.prepare(sql)
            for _ in range(8):
                async with connection.transaction(readonly=True):
                    await connection.execute(
                        "SET LOCAL ROLE flows_api;"
                        f" SELECT set_config('flows.esco_ids', '{crowd}', true)"
                    )
                    answer = json.loads(await statement.fetchval(*arguments))
                    assert len(answer[2]) == 6  # the page and one more
            plans = await connection.fetchrow(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                " WHERE statement = $1",
                sql,
            )
    finally:
        await owner.execute("DELETE FROM customers WHERE esco_id = $1", crowd)
        await owner.execute("DELETE FROM escos WHERE id = $1", crowd)
    assert tuple(plans) == (3, 5)


def _exact_differences() -> list[tuple[Decimal, Decimal]]:
    """Pairs of numerics as the tables hold them (any scale, full precision): short
    money, long quotients, tiny and negative values, and exact differences longer than
    Decimal's 28 digits."""
    draw = random.Random(14)
    pairs = [
        (Decimal("1.00"), Decimal("1.00")),
        (Decimal("0.50"), Decimal("1.5")),
        (Decimal("0.0000001"), Decimal("0")),
        (Decimal("1000.5"), Decimal("0.1234567890123456789012345678")),
        (Decimal("12345678901234567890.12"), Decimal("-0.000000001")),
    ]
    for _ in range(200):  # money and energy: a few decimals
        a, b = (
            Decimal(draw.randrange(-(10**10), 10**10)).scaleb(-draw.randrange(2, 9)) for _ in "ab"
        )
        pairs.append((a, b))
    for _ in range(200):  # anything up to 30 digits
        a, b = (
            Decimal(
                draw.randrange(-(10 ** draw.randrange(1, 31)), 10 ** draw.randrange(1, 31))
            ).scaleb(-draw.randrange(0, 31))
            for _ in "ab"
        )
        pairs.append((a, b))
    return pairs


async def test_a_formula_computed_in_sql_is_decimals_where_the_finishing_takes_it(
    apps: Apps,
) -> None:
    """`savings` (fields.formula: sub of benchmark total and total) is computed in the
    statement. PostgreSQL's difference is exact; Decimal's is rounded to the context's
    28 digits. Every text the finishing takes as it is (at most 28 characters, ending
    in a digit) is what Decimal gives, serialized; the longer ones it refuses include
    some that differ, so the check is needed."""
    pairs = _exact_differences()
    texts = await apps.world.conn.fetch(
        "SELECT (a - b)::text FROM unnest($1::numeric[], $2::numeric[]) AS t(a, b)",
        [a for a, _ in pairs],
        [b for _, b in pairs],
    )
    leaf = schema._schema.get_type("Decimal")
    take = compiled._leaf(leaf, Decimal, Numeric(), lambda f: "h")
    serialize = eval(f"lambda x: {take.format(x='x')}", {"h": compiled._decimal_text})
    guard = compiled.FORMULA.format(x="x")
    refused = differ = 0
    for (a, b), (text,) in zip(pairs, texts, strict=True):
        python = str(sub(a, b))
        try:
            exec(guard, {"x": text, "Fallback": compiled.Fallback})
        except compiled.Fallback:
            refused += 1
            differ += serialize(text) != python
            continue
        assert serialize(text) == python, (a, b, text)
    assert differ and len(pairs) - refused > 200, (differ, refused)


async def test_a_formula_decimal_would_round_is_the_walks(apps: Apps, spy: Spy) -> None:
    """A month whose exact savings has more digits than Decimal keeps: the walk answers
    (its rounded value), not PostgreSQL's exact one."""
    person = PEOPLE[0]
    conn = apps.world.conn
    row = await conn.fetchrow(
        "SELECT id, total, benchmark_total FROM monthly_costs WHERE customer_id = $1"
        " AND month BETWEEN $2 AND $3 ORDER BY month LIMIT 1",
        apps.world.people[person],
        date.fromisoformat(RANGE["from"]),
        date.fromisoformat(RANGE["to"]),
    )
    assert row is not None
    variables = {"id": gid("Customer", apps.world.people[person]), **RANGE}
    long_total = Decimal("0.1234567890123456789012345678")
    await conn.execute(
        "UPDATE monthly_costs SET total = $2, benchmark_total = 1000.5 WHERE id = $1",
        row["id"],
        long_total,
    )
    try:
        body, answered = await same(apps, spy, OUR_APP, variables, "operator")
        assert not answered
        saved = [m["savings"] for m in body["data"]["node"]["monthlyCosts"]]
        assert str(Decimal("1000.5") - long_total) in saved
    finally:
        await conn.execute(
            "UPDATE monthly_costs SET total = $2, benchmark_total = $3 WHERE id = $1",
            row["id"],
            row["total"],
            row["benchmark_total"],
        )
    body, answered = await same(apps, spy, OUR_APP, variables, "operator")
    assert answered


async def test_under_less_precision_formulas_are_the_walks(apps: Apps, spy: Spy) -> None:
    """The finishing's check is for Decimal's default precision: a request under less
    (a context the server was given) is answered by the walk."""
    variables = {"id": gid("Customer", apps.world.people[PEOPLE[0]]), **RANGE}
    context = decimal.getcontext()
    context.prec = 12
    try:
        _, answered = await same(apps, spy, OUR_APP, variables, "operator")
    finally:
        context.prec = 28
    assert not answered


# --- to-one fields whose loader picks one of several rows per key -----------------------
# The tariff in force picks the latest start on or before the day (DISTINCT ON among a
# customer's tariffs); the occupier, the link covering the day among an account's
# links; a property's account, the active one among its accounts. Each is a to-one
# child whose statement ranges over several rows per parent key: the compiled
# statement must keep the row the loader keeps (RowLoader.arrange: the last in the
# statement's order).

TARIFF_ON = """
query TariffOn($id: ID!, $on: Date) {
  node(id: $id) {
    ... on Customer {
      email
      currentTariff(on: $on) {
        id periodStart discountPercent unitRate standingCharge customer { email }
      }
      february: currentTariff(on: "2024-02-20") { periodStart discountPercent }
      tariffs(from: "2023-01-01") { periodStart discountPercent }
    }
  }
}
"""

TARIFF_DAYS = [
    None, "2023-09-30", "2023-10-01", "2024-01-31", "2024-02-01", "2024-02-14", "2024-02-15",
    "2024-02-29", "2024-03-01", "2025-07-09", "2025-07-10", "2025-08-31", "2025-09-01",
    "2025-12-31", "2026-01-01",
]  # fmt: skip


async def test_the_tariff_in_force_is_the_walks_among_several(apps: Apps, spy: Spy) -> None:
    """Each day picks the latest of several tariffs (two starting in one month, one on
    the world's today, later ones), none before the first; the same under an alias with
    another day, for staff, partners, the customer and another customer."""
    several = 0
    for person in [*TARIFF_HISTORY, "B"]:
        variables_id = gid("Customer", apps.world.people[person])
        for on in TARIFF_DAYS:
            day = date.fromisoformat(on) if on else utc_today()
            starts = [FIRST_TARIFF, *TARIFF_HISTORY.get(person, [])]
            several += sum(date.fromisoformat(s) <= day for s, _ in starts) > 1
            expected = tariff_on(person, day)
            for viewer in ("operator", "partner read", f"customer {person}", "customer K"):
                variables = {"id": variables_id, "on": on}
                body, answered = await same(apps, spy, TARIFF_ON, variables, viewer)
                assert answered, body
                node = body["data"]["node"]
                if viewer == "customer K" and person != "K":
                    assert node is None
                    continue
                tariff = node["currentTariff"]
                found = (
                    None if tariff is None else (tariff["periodStart"], tariff["discountPercent"])
                )
                assert found == expected, (person, on, viewer)
                february = node["february"]
                found = (february["periodStart"], february["discountPercent"])
                assert found == tariff_on(person, date(2024, 2, 20)), (person, viewer)
    assert several > 20, "the days must fall where several tariffs are candidates"


TARIFFS_OF_EVERYONE = """
query TariffsOfEveryone($code: String!, $on: Date) {
  esco(code: $code) {
    customers(first: 50) {
      nodes {
        email
        currentTariff(on: $on) { periodStart unitRate }
        accounts {
          account {
            accountNumber
            occupier(on: $on) { email currentTariff(on: $on) { periodStart } }
          }
        }
      }
    }
  }
}
"""


@pytest.mark.parametrize("on", ["2024-02-15", "2024-02-29", "2025-09-01", None])
async def test_to_one_picks_under_a_list_are_the_walks(
    apps: Apps, spy: Spy, on: str | None
) -> None:
    """The same picks once per parent of a page (each parent's key its own subquery),
    and nested: an account's occupier's tariff on the day."""
    for viewer in ("operator", "customer A", "customer G"):
        variables = {"code": "privy", "on": on}
        body, answered = await same(apps, spy, TARIFFS_OF_EVERYONE, variables, viewer)
        assert answered, body
    day = date.fromisoformat(on) if on else utc_today()
    _, operator = await post(
        apps.world.client, TARIFFS_OF_EVERYONE, {"code": "privy", "on": on},
        apps.viewers["operator"],
    )  # fmt: skip
    by_email = {c["email"]: c for c in operator["data"]["esco"]["customers"]["nodes"]}
    for person in PEOPLE:
        tariff = by_email[apps.world.emails[person]]["currentTariff"]
        expected = tariff_on(person, day)
        assert expected is not None and tariff["periodStart"] == expected[0], (person, on)


ACCOUNT_ON = """
query AccountOn($id: ID!, $on: Date) {
  node(id: $id) {
    ... on Account {
      accountNumber
      status
      occupier(on: $on) { email fullName }
      customers { role startDate endDate customer { email } }
      property {
        plot
        account { accountNumber status occupier(on: $on) { email } }
        accounts { accountNumber status }
      }
    }
  }
}
"""


def occupancy_days() -> list[date]:
    """Each link's first and last day, and the days either side of them."""
    one = date.resolution
    days = set()
    for link in LINKS:
        days |= {link[3] - one, link[3]}
        end = link_end(link)
        if end is not None:
            days |= {end, end + one}
    return sorted(days)


async def test_the_occupier_on_a_day_is_the_walks_among_several(apps: Apps, spy: Spy) -> None:
    """An account's occupier on each day a link starts or ends (and either side):
    one of the account's several links, or nobody; a property's active account among
    its accounts (H2's closed one and its successor)."""
    accounts_of = {name: {link[0] for link in LINKS if link[1] == name} for name in ACCOUNTS}
    several = 0
    for name, account_id in apps.world.accounts.items():
        several += len(accounts_of[name]) > 1
        for day in [None, *occupancy_days()]:
            on = day.isoformat() if day else None
            expected = occupier_of(name, day or utc_today())
            variables = {"id": gid("Account", account_id), "on": on}
            for viewer in ("operator", *(f"customer {p}" for p in sorted(accounts_of[name]))):
                body, answered = await same(apps, spy, ACCOUNT_ON, variables, viewer)
                assert answered, body
                node = body["data"]["node"]
                if viewer != "operator":
                    person = viewer.removeprefix("customer ")
                    mine = node is not None and node["occupier"] is not None
                    assert not mine or expected == person, (name, on, viewer)
                    continue
                occupier = node["occupier"]
                found = occupier and occupier["email"]
                assert found == (expected and apps.world.emails[expected]), (name, on)
                home, _, closed = ACCOUNTS[name]
                accounts = node["property"]["accounts"]
                assert len(accounts) == sum(h == home for h, _, _ in ACCOUNTS.values())
                active = node["property"]["account"]
                assert active["status"] == "ACTIVE"
                assert (active["accountNumber"] == node["accountNumber"]) == (closed is None)
    assert several >= 5, "most accounts must have several links to pick among"


METER_PROPERTY = """
query MeterProperty($id: ID!) {
  node(id: $id) { ... on Meter { serial property { plot account { accountNumber } } } }
}
"""


async def test_a_meters_property_is_the_walks(apps: Apps, spy: Spy) -> None:
    """A meter's property now (M1 moved from H1 to H6; M6 supplies nothing now)."""
    now = {periods[-1][0]: home for home, periods in SUPPLY.items()}
    for meter in METERS:
        variables = {"id": gid("Meter", apps.world.meters[meter])}
        for viewer in ("operator", "customer C", "customer P"):
            body, answered = await same(apps, spy, METER_PROPERTY, variables, viewer)
            assert answered, body
            if viewer == "operator":
                found = body["data"]["node"]["property"]
                expected = f"PRIVY-{now[meter]}" if meter in now else None
                assert (found and found["plot"]) == expected, meter


PAYMENT_TIMES = """
query PaymentTimes($id: ID!) {
  node(id: $id) { ... on Customer { payments(first: 20) { nodes { amountPence createdAt } } } }
}
"""


async def test_times_with_and_without_microseconds_answer_as_the_walk_does(
    apps: Apps, spy: Spy
) -> None:
    """Payments' createdAt, compiled and walked, when PostgreSQL's time has no
    microseconds (isoformat leaves them out) and when it has."""
    owner = apps.world.conn
    kept = await owner.fetch("SELECT id, created_at FROM payments")
    await owner.execute(
        "UPDATE payments SET created_at = CASE WHEN get_byte(uuid_send(id), 15) % 2 = 0"
        " THEN '2026-03-04 05:06:07+00'::timestamptz"
        " ELSE '2026-03-04 05:06:07.00025+00'::timestamptz END"
    )
    try:
        times = set()
        for person in PEOPLE:
            variables = {"id": gid("Customer", apps.world.people[person])}
            body, answered = await same(apps, spy, PAYMENT_TIMES, variables, "operator")
            assert answered, body
            times |= {n["createdAt"] for n in body["data"]["node"]["payments"]["nodes"]}
        assert times == {"2026-03-04T05:06:07+00:00", "2026-03-04T05:06:07.000250+00:00"}
    finally:
        await owner.executemany(
            "UPDATE payments SET created_at = $2 WHERE id = $1", [tuple(r) for r in kept]
        )
