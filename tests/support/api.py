"""Calling the API as the tests do: who signs in, the GraphQL call, and what a payload
says (its entity, its user errors)."""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import date
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from flows_graphql.app import create_app
from flows_graphql.auth.apikeys import create_key
from flows_graphql.auth.tokens import issue_token
from flows_graphql.config import Settings

# The billing clock of the test app: a fixed day, so "the current month" is stable.
TODAY = date(2025, 3, 10)
# Who the admin token of `bearer(settings, "admin")` acts as, in audit rows.
ACTOR = "user:development"
ERRORS = "userErrors { field message code }"
# Statement counts: every request opens its transaction with one statement setting the
# viewer's scope for row-level security (SELECT set_config('flows.esco_ids', ...)).
TENANT = 1

# A user error as the tests compare them: (field path, code).
Error = tuple[list[str] | None, str]


# --- who calls ----------------------------------------------------------------------


def bearer(
    settings: Settings, role: str, sub: str = "development", **claims: Any
) -> dict[str, str]:
    """Headers carrying a valid token for `role` (escos=[…], customer_id=… as claims)."""
    token = issue_token(settings.jwt_secret or "", sub=sub, role=role, **claims)
    return {"Authorization": f"Bearer {token}"}


async def api_key(
    engine: AsyncEngine, esco: uuid.UUID, scopes: list[str], name: str = "partner"
) -> dict[str, str]:
    """Headers carrying a new partner API key of `esco` with `scopes`."""
    async with engine.begin() as conn:
        issued = await create_key(conn, esco, scopes, name)
    return {"X-API-Key": issued.key}


def asgi_client(app: Any, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    """A client of `app` in this process (no socket), sending `headers`."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test", headers=headers
    )


@asynccontextmanager
async def app_client(
    settings: Settings,
    database_url: str,
    today: date = TODAY,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a new app whose billing clock reads `today`."""
    app = create_app(settings, database_url, today=lambda: today)
    async with asgi_client(app, headers) as http:
        yield http
    await app.state.engine.dispose()


# --- the call -----------------------------------------------------------------------


async def gql(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None, **kw: Any
) -> dict[str, Any]:
    """POST a GraphQL operation; returns the whole JSON body (its HTTP status as
    `_status`)."""
    response = await client.post("/graphql", json={"query": query, "variables": variables}, **kw)
    body: dict[str, Any] = response.json()
    body["_status"] = response.status_code
    return body


async def post(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """POST an operation as ASCII JSON (so inputs may hold lone surrogates); a 200 is
    required."""
    response = await client.post(
        "/graphql",
        content=json.dumps({"query": query, "variables": variables}),
        headers={"content-type": "application/json", **(headers or {})},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def mutation(name: str, selection: str, input_type: str | None = None) -> str:
    """The document of `name(input: $input) { selection userErrors }`."""
    input_type = input_type or f"{name[0].upper()}{name[1:]}Input"
    return f"mutation($input: {input_type}!) {{ {name}(input: $input) {{ {selection} {ERRORS} }} }}"


async def call(
    client: httpx.AsyncClient,
    document: str,
    input: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run a mutation document with `input`; fails on any GraphQL error. Returns the
    payload (the document's one root field)."""
    body = await post(client, document, {"input": input}, headers)
    assert "errors" not in body, body
    payload: dict[str, Any] = next(iter(body["data"].values()))
    return payload


async def mutate(
    client: httpx.AsyncClient,
    name: str,
    input: dict[str, Any],
    selection: str,
    *,
    input_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run `name(input:)` selecting `selection`; fails on any GraphQL error. Returns
    the payload."""
    return await call(client, mutation(name, selection, input_type), input, headers)


# --- ids -----------------------------------------------------------------------------


def gid(type_name: str, key: object) -> str:
    """A global id, encoded here as the API promises (not by the code under test)."""
    return base64.urlsafe_b64encode(f"{type_name}:{key}".encode()).decode().rstrip("=")


def opened_up(text: str) -> str | None:
    """A global id or cursor opened up (base64url), or None."""
    if len(text) < 8 or not re.fullmatch(r"[A-Za-z0-9_\-]+=*", text):
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


# --- what a payload says ------------------------------------------------------------


def ok(payload: dict[str, Any]) -> dict[str, Any]:
    assert payload["userErrors"] == [], payload["userErrors"]
    return payload


def codes(payload: dict[str, Any]) -> list[Error]:
    """(field, code) of each user error, in the API's order."""
    return [(e["field"], e["code"]) for e in payload["userErrors"]]


def refusal(payload: dict[str, Any]) -> list[Error]:
    """The user errors of a refused payload, which must carry no entity and say why."""
    assert all(payload[k] is None for k in payload if k != "userErrors"), payload
    assert payload["userErrors"] and all(e["message"] for e in payload["userErrors"]), payload
    return codes(payload)


def error_set(errors: list[Error]) -> set[tuple[tuple[str, ...] | None, str]]:
    """User errors as a set, for refusals whose errors come in no promised order."""
    return {(tuple(field) if field is not None else None, code) for field, code in errors}


@asynccontextmanager
async def unchanged(state: Callable[[], Awaitable[Any]]) -> AsyncIterator[None]:
    """Asserts that what `state` reads (counts, rows) is the same after the block."""
    before = await state()
    yield
    assert await state() == before


def comparable(body: dict[str, Any]) -> dict[str, Any]:
    """The body without what differs per request: the statement count (a fallback runs
    the operation twice), an error's request id, and the rate-limit budget's state (the
    two apps spend one budget in Redis, and a minute can turn between their answers);
    the cost each request asked for stays compared."""
    body = copy.deepcopy(body)
    extensions = body.pop("extensions", None) or {}
    extensions.pop("sqlStatements", None)
    cost = extensions.get("cost")
    if isinstance(cost, dict):
        cost.pop("remaining", None)
        cost.pop("resetAt", None)
    if extensions:
        body["extensions"] = extensions
    for error in body.get("errors") or []:
        (error.get("extensions") or {}).pop("requestId", None)
    return body
