"""Bad input never breaks the server (issue 5, item 7).

Property-based: hypothesis-graphql generates queries and mutations from the schema's
SDL (`schema.as_str()`) and sends them through the ASGI app as an admin and as an
operator. Every custom scalar (and ID, Int, String) has two sets of values: plausible
ones, which pass validation and reach the resolvers and services (the first and last
days of the calendar, "1e999999", NaN and 5000-digit decimals, 10k-character and
unicode strings, ids of another tenant and of nothing), and hostile ones in any
literal (impossible and negative dates, "1_000", ints for dates, floats for ids...),
which validation must refuse. Whatever the input: never HTTP 5xx, never an `INTERNAL`
error, never a stack trace or SQL in a message. And the generated queries get the same
answer from an app walking them breadth-first (the default, flows_graphql/breadth_first.py)
as from one with `breadth_first=False` (graphql-core's walk only).

Found by it, and kept as regression tests at the end of this file: text PostgreSQL
cannot hold (a NUL byte, a lone surrogate) reached the database through several
arguments and was answered INTERNAL (it is now refused before execution), and a
request could leave a database connection checked out after its answer. (The
breadth-first walk crashing on an object with nothing selected for its type was found
by it too; that regression test is in tests/test_breadth_first.py.)

Then hand-written hostile requests — deep nesting, 1000 aliases, a 5 MB body, a batch
of 50 operations, `first: 1000`, an unknown field in production — are refused before
execution: HTTP 400 `QUERY_TOO_COMPLEX`, or a `GRAPHQL_VALIDATION_FAILED` error.

The examples are bounded (max_examples per test, FLOWS_FUZZ_EXAMPLES to fuzz longer by
hand); under CI (CI set) they are derandomized, so a run is reproducible. Hypothesis
keeps no example database here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import os
import string
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, nodes
from sqlalchemy.ext.asyncio import AsyncEngine

from flows_graphql.app import create_app
from flows_graphql.config import Settings
from flows_graphql.db.request import parked
from flows_graphql.schema import schema
from flows_graphql.types.node import to_global_id
from tests.support import factories as f
from tests.support.api import TODAY, asgi_client, bearer
from tests.support.db import direct_dsn
from tests.support.factories import empty_tables

SDL = schema.as_str()
GRAPHQL = schema._schema
QUERY_FIELDS = sorted(GRAPHQL.query_type.fields)
MUTATION_FIELDS = sorted(GRAPHQL.mutation_type.fields)  # type: ignore[union-attr]

FUZZ = settings(
    max_examples=int(os.environ.get("FLOWS_FUZZ_EXAMPLES", "60")),
    # No shrinking: shrinking a GraphQL document takes minutes, and the failing
    # operation is in the assertion message as it was sent.
    phases=[Phase.explicit, Phase.generate],
    deadline=None,
    database=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
        HealthCheck.large_base_example,
    ],
)

# Error codes a client may get; anything else (INTERNAL above all) is a bug.
EXPECTED_CODES = {
    "GRAPHQL_VALIDATION_FAILED",
    "QUERY_TOO_COMPLEX",
    "INVALID",
    "NOT_FOUND",
    "FORBIDDEN",
    "BAD_REQUEST",
}
# What must never reach a client.
INTERNALS = ("Traceback", 'File "', "sqlalchemy", "asyncpg", "psycopg", "SELECT ", "INSERT ")


# --- the world ---------------------------------------------------------------------


@dataclass
class Fuzz:
    client: httpx.AsyncClient
    production: httpx.AsyncClient
    standard: httpx.AsyncClient  # breadth_first=False: graphql-core's walk only
    headers: dict[str, dict[str, str]]
    # Generated operations by kind: "queries", "mutations" (each half with plausible,
    # half with hostile scalar values), "invalid" (one schema violation each).
    strategies: dict[str, st.SearchStrategy[Any]]
    engine: AsyncEngine  # the app's: every request gives its connection back
    standard_engine: AsyncEngine  # the standard-walk app's
    esco: f.EscoData  # the operator's ESCO


@pytest.fixture(scope="module")
async def fuzz(settings: Settings, database_url: str) -> AsyncIterator[Fuzz]:
    await empty_tables(settings, database_url)
    conn = await asyncpg.connect(direct_dsn(database_url))
    app = create_app(settings, database_url, today=lambda: TODAY)
    production = Settings(
        data_dir=settings.data_dir, env="production", graphiql=False, jwt_secret=settings.jwt_secret
    )
    prod_app = create_app(production, database_url, today=lambda: TODAY)
    standard_app = create_app(
        dataclasses.replace(settings, breadth_first=False), database_url, today=lambda: TODAY
    )
    try:
        mine = await f.build_esco(conn, "fuzz", customers=2, months=2)
        other = await f.build_esco(conn, "other", "london", customers=1, months=1)
        headers = {
            "admin": bearer(settings, "admin"),
            "operator": bearer(settings, "operator", escos=[str(mine.id)]),
        }
        ids: list[str] = []
        for esco in (mine, other):
            pairs = [("Esco", esco.id)]
            pairs += [("Customer", c) for c in esco.customer_ids]
            pairs += [("Account", a) for a in esco.account_ids]
            pairs += [("Property", p) for p in esco.property_ids]
            pairs += [("Meter", m) for m in esco.meter_ids]
            pairs += [("Circuit", c) for c in esco.heat_circuit_ids]
            pairs += [("BillingRun", r) for r in esco.billing_run_ids]
            pairs += [("MonthlyUsage", u[0]) for u in esco.usage_ids]
            ids += [to_global_id(t, k) for t, k in pairs] + [str(k) for _, k in pairs]
        plausible, hostile = plausible_scalars(ids), hostile_scalars(ids)
        strategies = {
            "queries": st.one_of(
                from_schema(SDL, fields=QUERY_FIELDS, custom_scalars=plausible, codec=None),
                from_schema(SDL, fields=QUERY_FIELDS, custom_scalars=hostile, codec=None),
            ),
            "mutations": st.one_of(
                from_schema(SDL, fields=MUTATION_FIELDS, custom_scalars=plausible, codec=None),
                from_schema(SDL, fields=MUTATION_FIELDS, custom_scalars=hostile, codec=None),
            ),
            "invalid": from_schema(SDL, custom_scalars=hostile, codec=None, mode=Mode.NEGATIVE),
        }
        async with (
            asgi_client(app) as c,
            asgi_client(prod_app) as prod,
            asgi_client(standard_app) as standard,
        ):
            yield Fuzz(
                c,
                prod,
                standard,
                headers,
                strategies,
                app.state.engine,
                standard_app.state.engine,
                mine,
            )
    finally:
        await conn.close()
        await app.state.engine.dispose()
        await prod_app.state.engine.dispose()
        await standard_app.state.engine.dispose()


# --- hostile scalar values -----------------------------------------------------------

HOSTILE_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",  # lone surrogates (sent as JSON escapes)
    "x\udfffy",
    "x" * 10_000,
    "1e999999",
    "-1e999999",
    "NaN",
    "Infinity",
    "null",
    "' OR '1'='1' --",
    "%s%n%x",
    "\u202e\u0000\ufeff",
    "🦄" * 50,
    "../../../../etc/passwd",
    "<script>alert(1)</script>",
]


def storable(text: str) -> bool:
    """Text PostgreSQL can hold: no NUL byte, no lone surrogate."""
    return "\x00" not in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


# Any text at all, NUL bytes and lone surrogates included (refused before execution).
hostile_text = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    st.text(alphabet=st.characters(codec=None), max_size=40),
)
INTS = [0, -1, 1, 2**31 - 1, -(2**31), 10**20, -(10**20)]


def _str(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return strategy.map(nodes.String)


BAD_DATES = [
    "-0001-01-01",
    "0000-01-01",
    "2024-02-30",
    "2023-02-29",
    "2024-13-01",
    "2024-00-10",
    "99999-01-01",
    "+2024-01-01",
    "2024-1-1",
    "2024-01-01T00:00:00",
    "1e999999",
]
BAD_DATETIMES = [
    "2024-01-01T25:00:00Z",
    "2024-01-01T00:00:00+25:00",
    "-2024-01-01T00:00:00+00:00",
    "2024-02-30T00:00:00Z",
    "1e999999",
]
# Decimals that parse, but no column can hold, or that carry too many places.
EXTREME_DECIMALS = [
    "1e999999",
    "-1e999999",
    "1E-999999",
    "1e400",
    "NaN",
    "sNaN",
    "Infinity",
    "-Infinity",
    "-0",
    "9" * 5000,
    "0." + "1" * 5000,
    "-0.001",
    "0.0001",
]
BAD_DECIMALS = ["1_000", "0x1F", " 1 ", "", "1,5"]


def plausible_scalars(ids: list[str]) -> dict[str, st.SearchStrategy[Any]]:
    """Values each scalar accepts — so operations pass validation and reach the
    resolvers and services — but extreme: the first and last days of the calendar,
    decimals no column holds, 10k-character and unicode strings, ids of other tenants
    and ids of nothing."""
    firsts = st.builds(date, st.integers(2023, 2025), st.integers(1, 12), st.just(1))
    zones = st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=12))])
    return {
        "UUID": _str(
            st.one_of(st.sampled_from([i for i in ids if len(i) == 36]), st.uuids().map(str))
        ),
        "ID": _str(st.one_of(st.sampled_from(ids), st.uuids().map(str), hostile_text)),
        "Date": _str(
            st.one_of(
                firsts,
                st.dates(date(2023, 1, 1), date(2026, 12, 31)),
                st.sampled_from([date.min, date.max]),
            ).map(str)
        ),
        "DateTime": _str(
            st.one_of(
                st.datetimes(datetime(2025, 3, 1), datetime(2026, 12, 31), timezones=st.just(UTC)),
                st.datetimes(timezones=zones),
            ).map(lambda d: d.isoformat())
        ),
        "Decimal": _str(
            st.one_of(
                st.decimals(0, 1000, places=3).map(str),
                st.sampled_from(EXTREME_DECIMALS),
            )
        ),
        "JSON": _str(hostile_text),
        "Int": st.one_of(st.integers(-5, 200), st.sampled_from([0, -1, 2**31 - 1, -(2**31)])).map(
            nodes.Int
        ),
        "String": _str(st.one_of(hostile_text, st.text(string.ascii_lowercase, max_size=12))),
    }


def hostile_scalars(ids: list[str]) -> dict[str, st.SearchStrategy[Any]]:
    """Anything, in any literal: most of it is refused by validation, which must be
    all that happens."""
    ints = st.sampled_from(INTS).map(nodes.Int)
    floats = st.sampled_from(["1e999999", "-1e999999", "1e-999999", "0.1"]).map(nodes.Float)
    junk = _str(hostile_text)
    return {
        "UUID": st.one_of(_str(st.uuids().map(str)), junk, ints),
        "ID": st.one_of(_str(st.sampled_from(ids)), junk, ints, floats),
        "Date": st.one_of(_str(st.dates().map(str)), _str(st.sampled_from(BAD_DATES)), junk, ints),
        "DateTime": st.one_of(
            _str(st.datetimes().map(lambda d: d.isoformat())),
            _str(st.sampled_from(BAD_DATETIMES)),
            junk,
            ints,
        ),
        "Decimal": st.one_of(
            _str(st.decimals(allow_nan=True, allow_infinity=True).map(str)),
            _str(st.sampled_from(EXTREME_DECIMALS + BAD_DECIMALS)),
            junk,
            ints,
            floats,
        ),
        "JSON": st.one_of(junk, ints, floats, st.booleans().map(nodes.Boolean)),
        "Int": ints,
        "String": junk,
    }


# --- checks ----------------------------------------------------------------------------


def _errors(body: Any) -> Iterator[dict[str, Any]]:
    for item in body if isinstance(body, list) else [body]:
        if isinstance(item, dict):
            yield from item.get("errors") or []


def assert_handled(response: httpx.Response, sent: str) -> Any:
    """Never 5xx, never INTERNAL, never internals in the text; returns the body."""
    assert response.status_code < 500, (response.status_code, response.text[:2000], sent[:2000])
    body = response.json()
    for error in _errors(body):
        code = (error.get("extensions") or {}).get("code")
        assert code != "INTERNAL", (error, sent[:2000])
        assert code in EXPECTED_CODES, (error, sent[:2000])
        message = str(error.get("message"))
        for marker in INTERNALS:
            assert marker not in message, (marker, error, sent[:2000])
    return body


async def send(client: httpx.AsyncClient, headers: dict[str, str], payload: Any) -> httpx.Response:
    """POST as JSON with every non-ASCII character escaped: lone surrogates travel as
    `\\ud800`, as any JSON client could send them."""
    return await client.post(
        "/graphql",
        content=json.dumps(payload).encode(),
        headers={**headers, "content-type": "application/json"},
    )


# --- generated operations --------------------------------------------------------------


def assert_connections_back(*engines: AsyncEngine) -> None:
    """Every request has given its connection back by the time it is answered (a
    request once could leave one out, found by this file)."""
    for engine in engines:
        pool: Any = engine.pool
        held = pool.checkedout() - parked(engine)  # parked: a finished read's (db/request.py)
        assert held == 0, f"{held} connection(s) left out"


async def _run(fuzz: Fuzz, who: str, data: st.DataObject, kind: str) -> None:
    query = data.draw(fuzz.strategies[kind], label="operation")
    response = await send(fuzz.client, fuzz.headers[who], {"query": query})
    assert_handled(response, query)
    assert_connections_back(fuzz.engine)


@FUZZ
@given(data=st.data())
async def test_generated_queries_as_admin(fuzz: Fuzz, data: st.DataObject) -> None:
    await _run(fuzz, "admin", data, "queries")


@FUZZ
@given(data=st.data())
async def test_generated_queries_as_operator(fuzz: Fuzz, data: st.DataObject) -> None:
    await _run(fuzz, "operator", data, "queries")


def same_answer(body: Any) -> str:
    """A body without what differs per request (the statement count: a query the fast
    walk gives up on runs twice; the rate limit left, which each app counts for itself;
    an error's request id), as JSON, keys in order."""
    body = json.loads(json.dumps(body))
    extensions = body.pop("extensions", None) or {}
    extensions.pop("sqlStatements", None)
    extensions.pop("cost", None)
    if extensions:
        body["extensions"] = extensions
    for error in _errors(body):
        (error.get("extensions") or {}).pop("requestId", None)
    _without_budget_left(body.get("data"))
    return json.dumps(body, indent=1)


# What the `rateLimit` query says is left depends on what each app has counted.
BUDGET_LEFT = ("used", "remaining", "resetAt")


def _without_budget_left(data: Any) -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "rateLimit" and isinstance(value, dict):
                for name in BUDGET_LEFT:
                    if name in value:
                        value[name] = "(per app)"
            else:
                _without_budget_left(value)
    elif isinstance(data, list):
        for item in data:
            _without_budget_left(item)


@pytest.mark.parametrize("who", ["admin", "operator"])
@FUZZ
@given(data=st.data())
async def test_generated_queries_same_on_both_walks(
    fuzz: Fuzz, who: str, data: st.DataObject
) -> None:
    """The breadth-first walk (default settings) answers every generated query exactly
    as graphql-core's walk (`breadth_first=False`): status, data, errors, key order."""
    query = data.draw(fuzz.strategies["queries"], label="operation")
    fast = await send(fuzz.client, fuzz.headers[who], {"query": query})
    standard = await send(fuzz.standard, fuzz.headers[who], {"query": query})
    assert fast.status_code == standard.status_code, (fast.text[:2000], standard.text[:2000])
    assert same_answer(fast.json()) == same_answer(standard.json()), query[:2000]
    assert_connections_back(fuzz.engine, fuzz.standard_engine)


@FUZZ
@given(data=st.data())
async def test_generated_mutations_as_admin(fuzz: Fuzz, data: st.DataObject) -> None:
    await _run(fuzz, "admin", data, "mutations")


@FUZZ
@given(data=st.data())
async def test_generated_mutations_as_operator(fuzz: Fuzz, data: st.DataObject) -> None:
    await _run(fuzz, "operator", data, "mutations")


@FUZZ
@given(data=st.data())
async def test_generated_invalid_operations(fuzz: Fuzz, data: st.DataObject) -> None:
    """Operations with one schema violation each: refused, never a crash."""
    await _run(fuzz, "operator", data, "invalid")


# --- hand-written hostile requests -------------------------------------------------------


def nested(depth: int) -> str:
    """escos > customers > esco > customers > ... `depth` levels of selections."""
    inner = "id"
    for level in range(depth):
        inner = (
            f"customers(first: 1) {{ nodes {{ {inner} }} }}"
            if level % 2 == 0
            else f"esco {{ {inner} }}"
        )
    return f"{{ escos(first: 1) {{ nodes {{ {inner} }} }} }}"


def fragments(depth: int) -> str:
    """The same depth through a chain of named fragments."""
    parts = ["fragment F0 on Esco { id }"]
    for i in range(1, depth):
        spread = f"esco {{ ...F{i - 1} }}"
        parts.append(f"fragment F{i} on Esco {{ customers(first: 1) {{ nodes {{ {spread} }} }} }}")
    return f"{{ escos(first: 1) {{ nodes {{ ...F{depth - 1} }} }} }} " + " ".join(parts)


BIG = 5 * 1024 * 1024

# (name, JSON payload or raw bytes, the code refusing it, HTTP statuses allowed)
TOO_COMPLEX = "QUERY_TOO_COMPLEX"
INVALID_DOC = "GRAPHQL_VALIDATION_FAILED"
HOSTILE: list[tuple[str, Any, str, set[int]]] = [
    ("nested 40 levels", {"query": nested(40)}, TOO_COMPLEX, {400}),
    ("nested 20 levels through fragments", {"query": fragments(20)}, TOO_COMPLEX, {400}),
    (
        "fragment cycle",
        {
            "query": "{ escos { nodes { ...A } } } fragment A on Esco { ...B } "
            "fragment B on Esco { ...A }"
        },
        INVALID_DOC,
        {200, 400},
    ),
    (
        "1000 aliases",
        {"query": "{ " + " ".join(f"a{i}: viewer {{ role }}" for i in range(1000)) + " }"},
        TOO_COMPLEX,
        {400},
    ),
    (
        "1000 aliases of __typename",
        {"query": "{ " + " ".join(f"a{i}: __typename" for i in range(1000)) + " }"},
        TOO_COMPLEX,
        {400},
    ),
    ("6000 tokens", {"query": "{ viewer { " + "role " * 6000 + "} }"}, TOO_COMPLEX, {400}),
    (
        "5 MB body",
        {"query": "query($pad: String) { viewer { role } }", "variables": {"pad": "x" * BIG}},
        TOO_COMPLEX,
        {400},
    ),
    ("batch of 50 operations", [{"query": "{ viewer { role } }"}] * 50, TOO_COMPLEX, {400}),
    (
        "50 operations in one document",
        {
            "query": " ".join(f"query Q{i} {{ viewer {{ role }} }}" for i in range(50)),
            "operationName": "Q0",
        },
        TOO_COMPLEX,
        {400},
    ),
    ("first: 1000", {"query": "{ escos(first: 1000) { totalCount } }"}, TOO_COMPLEX, {400}),
    ("last: 1000", {"query": "{ customers(last: 1000) { totalCount } }"}, TOO_COMPLEX, {400}),
    (
        "first: 1000 in a variable",
        {"query": "query($n: Int) { meters(first: $n) { totalCount } }", "variables": {"n": 1000}},
        TOO_COMPLEX,
        {400},
    ),
    (
        "first: 1000 nested",
        {"query": '{ esco(code: "fuzz") { customers(first: 1000) { totalCount } } }'},
        TOO_COMPLEX,
        {400},
    ),
    (
        "cost: 100 x 100 x 100",
        {
            "query": "{ escos(first: 100) { nodes { customers(first: 100) { nodes { "
            "payments(first: 100) { nodes { id } } } } } } }"
        },
        TOO_COMPLEX,
        {400},
    ),
    (
        "first: 2^70",
        {"query": "{ escos(first: 1180591620717411303424) { totalCount } }"},
        TOO_COMPLEX,
        {400},
    ),
    ("not GraphQL", {"query": "{{{{ )))"}, INVALID_DOC, {200, 400}),
    ("query is a number", {"query": 12345}, "BAD_REQUEST", {400}),
    (
        "variables are a string",
        {"query": "{ viewer { role } }", "variables": "x"},
        "BAD_REQUEST",
        {400},
    ),
    ("body is not JSON", b"{not json", "BAD_REQUEST", {400}),
]


def _codes(body: Any) -> set[str]:
    return {(e.get("extensions") or {}).get("code") for e in _errors(body)}


@pytest.mark.parametrize(
    ("payload", "code", "statuses"),
    [pytest.param(p, c, s, id=name) for name, p, c, s in HOSTILE],
)
async def test_hostile_request_is_refused(
    fuzz: Fuzz, payload: Any, code: str, statuses: set[int]
) -> None:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    response = await fuzz.client.post(
        "/graphql",
        content=raw,
        headers={**fuzz.headers["operator"], "content-type": "application/json"},
    )
    body = assert_handled(response, raw[:2000].decode(errors="replace"))
    assert response.status_code in statuses, (response.status_code, body)
    assert _codes(body) == {code}, body
    assert not (isinstance(body, dict) and body.get("data")), body


async def test_body_without_length_over_the_limit_is_refused(fuzz: Fuzz) -> None:
    """A 5 MB body sent in chunks (no Content-Length) is cut off as it arrives."""

    async def chunks() -> Any:
        yield b'{"query": "{ viewer { role } }", "variables": {"pad": "'
        for _ in range(BIG // 65536):
            yield b"x" * 65536
        yield b'"}}'

    response = await fuzz.client.post(
        "/graphql",
        content=chunks(),
        headers={**fuzz.headers["operator"], "content-type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 400
    assert _codes(assert_handled(response, "5 MB in chunks")) == {TOO_COMPLEX}


UNKNOWN = [
    "{ viewr { role } }",
    "{ viewer { rol } }",
    "{ escos(frist: 1) { totalCount } }",
    "{ escos { nodes { ... on Esko { id } } } }",
]


@pytest.mark.parametrize("query", UNKNOWN)
async def test_no_field_suggestions_in_production(fuzz: Fuzz, query: str) -> None:
    response = await send(fuzz.production, fuzz.headers["operator"], {"query": query})
    body = assert_handled(response, query)
    assert response.status_code in (200, 400)
    assert _codes(body) == {INVALID_DOC}, body
    (error,) = body["errors"]
    assert "Did you mean" not in error["message"], error
    assert set(error) <= {"message", "locations", "extensions"}, error  # no stack, no path
    # The control: in development the same mistake gets its suggestion.
    response = await send(fuzz.client, fuzz.headers["operator"], {"query": query})
    assert "Did you mean" in response.json()["errors"][0]["message"]


INTROSPECTION = "{ __schema { queryType { name } } }"


async def test_introspection_in_production_is_for_admins(fuzz: Fuzz) -> None:
    response = await send(fuzz.production, fuzz.headers["operator"], {"query": INTROSPECTION})
    assert response.status_code == 403
    assert _codes(response.json()) == {"FORBIDDEN"}
    response = await send(fuzz.production, fuzz.headers["admin"], {"query": INTROSPECTION})
    assert response.status_code == 200
    assert response.json()["data"] == {"__schema": {"queryType": {"name": "Query"}}}


# --- found by the fuzzer -----------------------------------------------------------------


def _text_cases() -> list[Any]:
    """(name, operation taking $v, whether the fuzzer found it answering INTERNAL before
    the fix). Ids are filled in per run."""
    reads = [
        (
            "benchmarkTariffs(regionCode)",
            "query($v: String) { benchmarkTariffs(regionCode: $v) { id } }",
            True,
        ),
        ("esco(code)", "query($v: String!) { esco(code: $v) { id } }", True),
        (
            "customers(emailPrefix)",
            "query($v: String) { customers(filter: {emailPrefix: $v}) { totalCount } }",
            True,
        ),
        (
            "properties(plotPrefix)",
            "query($v: String) { properties(filter: {plotPrefix: $v}) { totalCount } }",
            True,
        ),
        (
            "meters(serialPrefix)",
            "query($v: String) { meters(filter: {serialPrefix: $v}) { totalCount } }",
            True,
        ),
        ("customers(after)", "query($v: String) { customers(after: $v) { totalCount } }", False),
        ("node(id)", "query($v: ID!) { node(id: $v) { id } }", False),
    ]
    writes = [
        (
            "createSite.name",
            "createSite",
            '{escoId: "$E", code: "nul-site", name: $v}',
            "String!",
            False,
        ),
        ("createCustomer.email", "createCustomer", '{escoId: "$E", email: $v}', "String!", False),
        (
            "updateCustomer.fullName",
            "updateCustomer",
            '{customerId: "$C", fullName: $v}',
            "String",
            True,
        ),
        ("createMeter.serial", "createMeter", '{escoId: "$E", serial: $v}', "String!", False),
        ("updateMeter.hardware", "updateMeter", '{meterId: "$M", hardware: $v}', "String", False),
        (
            "updateProperty.address",
            "updateProperty",
            '{propertyId: "$P", address: $v}',
            "String",
            False,
        ),
        (
            "createPayment.description",
            "createPayment",
            '{customerId: "$C", accountId: "$A", amountPence: 100, idempotencyKey: "nul-1", '
            "description: $v}",
            "String",
            True,
        ),
        (
            "createPayment.idempotencyKey",
            "createPayment",
            '{customerId: "$C", accountId: "$A", amountPence: 100, idempotencyKey: $v}',
            "String!",
            True,
        ),
        (
            "importMonthlyUsage.meterSerial",
            "importMonthlyUsage",
            '{rows: [{month: "2025-02-01", powerKwh: "1", heatKwh: "1", solarKwh: "0", '
            "meterSerial: $v}]}",
            "String",
            True,
        ),
        (
            "publishBenchmarkTariff.regionCode",
            "publishBenchmarkTariff",
            '{regionCode: $v, periodStart: "2025-04-01", unitRate: "0.3", standingCharge: "0.5"}',
            "String!",
            True,
        ),
        (
            "createContractTerms.title",
            "createContractTerms",
            "{type: SUPPLY, title: $v, version: 1}",
            "String!",
            False,
        ),
    ]
    cases = [(name, text, bug) for name, text, bug in reads]
    for name, field_name, input_, type_, bug in writes:
        text = (
            f"mutation($v: {type_}) {{ {field_name}(input: {input_}) "
            f"{{ userErrors {{ field code }} }} }}"
        )
        cases.append((name, text, bug))
    out = []
    for value_name, value in (("NUL", "a\x00b"), ("lone surrogate", "a\ud800b")):
        for name, text, _found_by_fuzzer in cases:
            out.append(pytest.param(text, value, id=f"{name}-{value_name}"))
    return out


@pytest.mark.parametrize(("text", "value"), _text_cases())
async def test_text_postgres_cannot_hold_is_refused(fuzz: Fuzz, text: str, value: str) -> None:
    """NUL bytes and lone surrogates are valid JSON strings but no PostgreSQL text: every
    argument must refuse them (INVALID, or simply find nothing), never INTERNAL."""
    e = fuzz.esco
    for key, type_name, value_id in (
        ("$E", "Esco", e.id),
        ("$C", "Customer", e.customer_ids[0]),
        ("$A", "Account", e.account_ids[0]),
        ("$M", "Meter", e.meter_ids[0]),
        ("$P", "Property", e.property_ids[0]),
    ):
        text = text.replace(key, to_global_id(type_name, value_id))
    response = await send(
        fuzz.client, fuzz.headers["admin"], {"query": text, "variables": {"v": value}}
    )
    assert_handled(response, text)
    body = response.json()
    if text.startswith("mutation"):
        # A user error (on the field where the service checks it), nothing stored.
        (payload,) = body["data"].values()
        assert [e["code"] for e in payload["userErrors"]][:1] == ["INVALID"], body
    else:
        # Queries have no user errors: refused before execution.
        assert response.status_code == 400, response.text
        assert body["errors"] == [
            {
                "message": "Text may not contain a NUL character or an unpaired surrogate.",
                "extensions": {"code": "INVALID"},
            }
        ]


async def test_no_connection_outlives_its_request(fuzz: Fuzz) -> None:
    query = (
        f'{{ node(id: "{to_global_id("Esco", fuzz.esco.id)}") {{ id }} '
        "escos(first: 1, last: 1) { totalCount } }"
    )
    pool: Any = fuzz.engine.pool
    gc.collect()
    before = pool.checkedout() - parked(fuzz.engine)
    try:
        response = await send(fuzz.client, fuzz.headers["admin"], {"query": query})
        body = assert_handled(response, query)
        assert _codes(body) == {"INVALID"}  # first and last together
        await asyncio.sleep(0.05)
        held = pool.checkedout() - parked(fuzz.engine)
        assert held == before, f"{held - before} connection(s) left out"
    finally:
        gc.collect()
