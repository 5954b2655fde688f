"""The short ways a request takes (docs/decisions.md, "The fixed cost of a request"):
each answers exactly what the long way it stands for answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from flows_graphql.app import FlowsApp, create_app
from flows_graphql.config import Settings
from flows_graphql.graphql_view import FlowsGraphQL
from tests.support.api import asgi_client, bearer

ORIGIN = "http://localhost:3000"  # allowed in development (cors.py)


def view_of(app: FlowsApp) -> FlowsGraphQL:
    """The GraphQL view under /graphql's chain (Observed > Bounded > Authenticated)."""
    handler: Any = app.graphql
    while not isinstance(handler, FlowsGraphQL):
        handler = handler.app
    return handler


@pytest.fixture
async def app(
    settings: Settings, database_url: str, engine: AsyncEngine
) -> AsyncIterator[FlowsApp]:
    made = create_app(settings, database_url)
    assert isinstance(made, FlowsApp)
    async with made.router.lifespan_context(made):
        yield made
    await made.state.engine.dispose()


@pytest.fixture
async def http(app: FlowsApp, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(app, bearer(settings, "admin")) as client:
        yield client


def comparable(response: httpx.Response) -> tuple[int, list[tuple[str, str]], str]:
    """Status, headers (the request id's value aside) and body, with the rate limit's
    figures (they move by a request) masked."""
    headers = [
        (k, "<id>" if k == "x-request-id" else v)
        for k, v in response.headers.multi_items()
        if not k.startswith("x-ratelimit-") and k != "content-length"
    ]
    body = response.text
    if '"remaining":' in body:
        body = body.split('"remaining":')[0]
    return response.status_code, headers, body


REQUESTS: list[dict[str, Any]] = [
    {"json": {"query": "{ regions { code } }"}},
    {"json": {"query": "query A { __typename } query B { __typename }"}},
    {"json": {"query": "query A { __typename }", "operationName": "C"}},
    {"json": {"query": "{ nope }"}},
    {"json": {"query": "{ nope }"}, "headers": {"accept": "application/graphql-response+json"}},
    {"json": {"query": "{ __typename"}},
    {"json": {}},
    {"json": {"query": "{ __typename }", "variables": [1]}},
    {"json": [{"query": "{ __typename }"}]},
    {"json": {"query": "query($n: Int!) { __typename }", "variables": {"n": "x"}}},
    {"json": {"query": "subscription { __typename }"}},
    {"content": b"{nope", "headers": {"content-type": "application/json"}},
    {"json": {"query": "{ __typename }"}, "headers": {"accept": "application/xml"}},
]


@pytest.mark.parametrize("request_kw", REQUESTS)
async def test_the_view_answers_as_strawberrys_pipeline_does(
    app: FlowsApp, http: httpx.AsyncClient, request_kw: dict[str, Any]
):
    view = view_of(app)
    assert view.lean  # the schema uses nothing the pipeline is there for
    short = await http.post("/graphql", **request_kw)
    view.lean = False
    try:
        long = await http.post("/graphql", **request_kw)
    finally:
        view.lean = True
    assert comparable(short) == comparable(long)


async def test_a_mutation_over_get_is_still_405(http: httpx.AsyncClient):
    response = await http.get("/graphql", params={"query": "mutation { __typename }"})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


async def test_no_origin_skips_starlettes_stack_with_the_same_headers(http: httpx.AsyncClient):
    body = {"query": "{ regions { code } }"}
    direct = await http.post("/graphql", json=body)
    stacked = await http.post("/graphql", json=body, headers={"origin": ORIGIN})
    assert stacked.headers["access-control-allow-origin"] == ORIGIN
    assert direct.headers["vary"] == stacked.headers["vary"] == "Origin"
    cors = {k for k in stacked.headers if k.startswith("access-control-")}
    assert comparable(direct)[2] == comparable(stacked)[2]
    assert [h for h in comparable(stacked)[1] if h[0] not in cors] == comparable(direct)[1]
    for name in ("x-content-type-options", "cache-control", "content-security-policy"):
        assert name in direct.headers


async def test_an_unexpected_failure_is_a_plain_500_as_starlette_answers_it(
    app: FlowsApp, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
):
    async def broken(*_: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(app, "graphql", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.post("/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 500
    assert response.text == "Internal Server Error"


async def test_free_text_over_a_limit_is_refused_every_time(http: httpx.AsyncClient):
    small = "{ regions { code } }"
    wide = "{ " + " ".join(f"a{i}: regions {{ code }}" for i in range(5000)) + " }"
    assert (await http.post("/graphql", json={"query": small})).status_code == 200
    answers = [await http.post("/graphql", json={"query": wide}) for _ in range(3)]
    assert {a.status_code for a in answers} == {400}
    assert len({a.json()["errors"][0]["message"] for a in answers}) == 1
    assert answers[0].json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


def test_a_verdict_is_kept_only_by_small_variable_values():
    from flows_graphql.limits import Limits
    from flows_graphql.schema import schema
    from flows_graphql.trusted import MAX_VERDICT_KEY, Trusted

    query = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }"
    record = Trusted("", query)
    limits = Limits()
    small = {"ids": ["a", "b"]}
    large = {"ids": ["x" * 40] * (MAX_VERDICT_KEY // 40 + 1)}
    for variables in (small, small, large, large):
        assert record.verdict(variables, None, limits, schema._schema) is not None
    assert record._reads[None] == frozenset({"ids"})  # the cost depends on them
    assert len(record._verdicts) == 1  # the small one's
