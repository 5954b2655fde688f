"""Authentication, the database's second wall (row-level security), the limits checked
before execution, and masked errors."""

from __future__ import annotations

import asyncio
import importlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import asyncpg
import httpx
import jwt
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from flows_graphql.app import create_app
from flows_graphql.auth.apikeys import create_key
from flows_graphql.auth.tokens import issue_token
from flows_graphql.db.engine import create_engine
from tests.support.api import TODAY, asgi_client, bearer, gql
from tests.support.db import direct_dsn


@pytest.fixture
async def anonymous(settings, database_url, engine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, database_url, today=lambda: TODAY)
    async with asgi_client(app) as http:
        yield http
    await app.state.engine.dispose()


@pytest.fixture
async def two_escos(raw) -> tuple[uuid.UUID, uuid.UUID]:
    a, b = uuid.uuid4(), uuid.uuid4()
    for esco, code in ((a, "alpha"), (b, "beta")):
        await raw.execute(
            "INSERT INTO escos (id, code, name, region_code) VALUES ($1, $2, $3, 'london')",
            esco,
            code,
            code.title(),
        )
        await raw.execute(
            "INSERT INTO customers (esco_id, email) VALUES ($1, $2), ($1, $3)",
            esco,
            f"one@{code}.example",
            f"two@{code}.example",
        )
    return a, b


ME = "{ viewer { role subject escos { code } } }"


def unauthenticated(response: httpx.Response) -> str:
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    return str(error["message"])


async def test_no_credentials_is_401(anonymous):
    response = await anonymous.post("/graphql", json={"query": ME})
    assert "Authentication required" in unauthenticated(response)


async def test_graphiql_page_needs_no_credentials(anonymous):
    response = await anonymous.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_a_token_accepted_once_is_refused_once_expired(anonymous, settings):
    """Checked tokens are remembered for a while (no HMAC per request), never past
    their `exp`."""
    token = issue_token(settings.jwt_secret, sub="x", role="admin", ttl=timedelta(seconds=1))
    headers = {"Authorization": f"Bearer {token}"}
    first = await anonymous.post("/graphql", json={"query": ME}, headers=headers)
    assert first.status_code == 200 and "errors" not in first.json()
    await asyncio.sleep(2.1)
    response = await anonymous.post("/graphql", json={"query": ME}, headers=headers)
    assert "expired" in unauthenticated(response)


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda s: issue_token(s, sub="x", role="admin", ttl=timedelta(seconds=-5)), "expired"),
        (lambda s: issue_token("another-secret-" + "y" * 32, sub="x", role="admin"), "signature"),
        (lambda s: "not.a.jwt", "malformed"),
        (
            lambda s: jwt.encode({"sub": "x", "role": "admin"}, s, algorithm="HS256"),
            "`exp`",
        ),
        (lambda s: issue_token(s, sub="x", role="partner"), "role"),
        (lambda s: issue_token(s, sub="x", role="operator"), "escos"),
        (lambda s: issue_token(s, sub="x", role="operator", escos=["nope"]), "escos"),
        (lambda s: issue_token(s, sub="x", role="customer"), "customer_id"),
        (
            lambda s: issue_token(s, sub="x", role="customer", customer_id=str(uuid.uuid4())),
            "does not exist",
        ),
    ],
)
async def test_bad_tokens_are_401_with_a_clear_message(anonymous, settings, make, says):
    token = make(settings.jwt_secret)
    response = await anonymous.post(
        "/graphql", json={"query": ME}, headers={"Authorization": f"Bearer {token}"}
    )
    assert says in unauthenticated(response)


async def test_basic_scheme_is_refused(anonymous):
    response = await anonymous.post(
        "/graphql", json={"query": ME}, headers={"Authorization": "Basic dXNlcjpwYXNz"}
    )
    assert "Bearer" in unauthenticated(response)


async def test_operator_sees_only_its_escos(anonymous, settings, two_escos):
    a, _ = two_escos
    body = await gql(anonymous, ME, headers=bearer(settings, "operator", sub="op", escos=[str(a)]))
    assert body["data"]["viewer"] == {
        "role": "OPERATOR",
        "subject": "op",
        "escos": [{"code": "alpha"}],
    }
    body = await gql(
        anonymous,
        "{ customers { nodes { email } } }",
        headers=bearer(settings, "operator", escos=[str(a)]),
    )
    assert [n["email"] for n in body["data"]["customers"]["nodes"]] == [
        "one@alpha.example",
        "two@alpha.example",
    ]


async def test_customer_sees_only_their_own_record(anonymous, settings, raw, two_escos):
    me = await raw.fetchval("SELECT id FROM customers WHERE email = 'one@alpha.example'")
    headers = bearer(settings, "customer", sub="one", customer_id=str(me))
    body = await gql(
        anonymous,
        "{ viewer { role customer { email } } customers { totalCount nodes { email } } "
        "escos { nodes { code } } }",
        headers=headers,
    )
    assert body["data"] == {
        "viewer": {"role": "CUSTOMER", "customer": {"email": "one@alpha.example"}},
        "customers": {"totalCount": 1, "nodes": [{"email": "one@alpha.example"}]},
        "escos": {"nodes": [{"code": "alpha"}]},
    }


async def test_api_keys_work_for_their_esco_and_stop_when_revoked(
    anonymous, settings, database_url, engine, two_escos
):
    a, _ = two_escos
    async with engine.begin() as conn:
        issued = await create_key(conn, a, ["read"], "feed")
    headers = {"X-API-Key": issued.key}
    body = await gql(anonymous, "{ viewer { role escos { code } } }", headers=headers)
    assert body["data"]["viewer"] == {"role": "PARTNER", "escos": [{"code": "alpha"}]}

    wrong = issued.key[:-4] + "AAAA"
    response = await anonymous.post("/graphql", json={"query": ME}, headers={"X-API-Key": wrong})
    assert "not valid" in unauthenticated(response)
    response = await anonymous.post(
        "/graphql", json={"query": ME}, headers={"X-API-Key": "garbage"}
    )
    assert "malformed" in unauthenticated(response)

    async with engine.begin() as conn:
        await conn.exec_driver_sql(
            f"UPDATE api_keys SET revoked_at = now() WHERE id = '{issued.id}'"
        )
    # A server process that has not cached the key refuses it at once (one that has
    # refuses it within the cache's minute).
    app = create_app(settings, database_url, today=lambda: TODAY)
    async with asgi_client(app) as fresh:
        response = await fresh.post("/graphql", json={"query": ME}, headers=headers)
        assert "revoked" in unauthenticated(response)
    await app.state.engine.dispose()


async def test_partner_key_without_read_may_not_query(anonymous, engine, two_escos):
    a, _ = two_escos
    async with engine.begin() as conn:
        issued = await create_key(conn, a, ["usage:write"], "writer")
    response = await anonymous.post(
        "/graphql",
        json={"query": "{ customers { totalCount } }"},
        headers={"X-API-Key": issued.key},
    )
    assert response.status_code == 403
    assert response.json()["errors"][0] == {
        "message": "This API key lacks the `read` scope.",
        "extensions": {"code": "FORBIDDEN"},
    }


async def test_token_and_key_together_are_refused(anonymous, settings):
    headers = {**bearer(settings, "admin"), "X-API-Key": "flows_x_y"}
    response = await anonymous.post("/graphql", json={"query": ME}, headers=headers)
    assert "not both" in unauthenticated(response)


# --- the second wall --------------------------------------------------------------


async def test_row_level_security_hides_rows_without_the_tenant_setting(database_url, two_escos):
    """As the API's role, a query that forgot its filter still sees only the ESCOs of
    the transaction's setting — and nothing at all without one."""
    a, _ = two_escos
    conn = await asyncpg.connect(direct_dsn(database_url))
    try:
        await conn.execute("SET ROLE flows_api")
        assert await conn.fetchval("SELECT count(*) FROM customers") == 0
        assert await conn.fetchval("SELECT count(*) FROM escos") == 0
        async with conn.transaction():
            await conn.execute("SELECT set_config('flows.esco_ids', $1, true)", str(a))
            emails = await conn.fetch("SELECT email FROM customers ORDER BY email")
            assert [r["email"] for r in emails] == ["one@alpha.example", "two@alpha.example"]
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                # Writing into another tenant is refused by the policy's CHECK.
                await conn.execute(
                    "INSERT INTO customers (esco_id, email) "
                    "SELECT id, 'x@beta.example' FROM escos WHERE code = 'alpha' "
                    "UNION ALL SELECT $1::uuid, 'y@beta.example'",
                    two_escos[1],
                )
        async with conn.transaction():
            await conn.execute("SELECT set_config('flows.esco_ids', '*', true)")
            assert await conn.fetchval("SELECT count(*) FROM customers") == 4
        # The API role may not bypass the policies nor rewrite the audit trail.
        assert not await conn.fetchval(
            "SELECT rolbypassrls FROM pg_roles WHERE rolname = 'flows_api'"
        )
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM audit_log")
    finally:
        await conn.close()


# --- limits -----------------------------------------------------------------------


def too_complex(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    return str(error["message"])


async def test_deep_queries_are_refused_before_execution(client):
    deep = (
        "{ escos { nodes { " + "customers { nodes { esco { " * 6 + "code" + " } } }" * 6 + " } } }"
    )
    assert "deeper" in too_complex(await client.post("/graphql", json={"query": deep}))


async def test_many_aliases_are_refused(client):
    query = "{ " + " ".join(f"a{i}: regions {{ code }}" for i in range(60)) + " }"
    assert "aliases" in too_complex(await client.post("/graphql", json={"query": query}))


async def test_page_size_over_the_limit_is_refused(client):
    query = "query($n: Int) { customers(first: $n) { nodes { email } } }"
    response = await client.post("/graphql", json={"query": query, "variables": {"n": 1000}})
    assert "page size" in too_complex(response)
    response = await client.post(
        "/graphql", json={"query": "{ escos(last: 101) { nodes { code } } }"}
    )
    assert "page size" in too_complex(response)


async def test_expensive_queries_are_refused(client):
    query = (
        "{ customers(first: 100) { nodes { payments(first: 100) { nodes { "
        "customer { payments(first: 100) { nodes { amountPence } } } } } } } }"
    )
    assert "cost" in too_complex(await client.post("/graphql", json={"query": query}))


async def test_token_flood_is_refused(client):
    query = "{ regions { " + "code " * 6000 + "} }"
    assert "tokens" in too_complex(await client.post("/graphql", json={"query": query}))


async def test_batches_and_huge_bodies_are_refused(client):
    batch = [{"query": "{ regions { code } }"}] * 3
    assert "Batched" in too_complex(await client.post("/graphql", json=batch))
    body = (
        b'{"query": "{ regions { code } }", "variables": {"x": "'
        + b"x" * (5 * 1024 * 1024)
        + b'"}}'
    )
    response = await client.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert "too large" in too_complex(response)


async def test_a_normal_dashboard_query_is_within_the_limits(client):
    query = (
        "{ customers(first: 100) { nodes { email accounts { account { property { "
        "supplyMeter { circuits { type } monthlyUsage { month costs { total } } } } } } "
        "tariffs { unitRate } } } }"
    )
    body = await gql(client, query)
    assert body["_status"] == 200 and "errors" not in body


# --- errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "name", "path"),
    [
        # A resolver failing: the error has the field's path.
        ("flows_graphql.resolvers.community", "root_connection", ["escos"]),
        # The walk itself failing: no path, like a validation error, yet INTERNAL.
        ("flows_graphql.breadth_first", "execute", None),
    ],
)
async def test_unexpected_errors_are_masked_with_a_request_id(
    client, monkeypatch, caplog, module, name, path
):
    async def broken(*args, **kwargs):
        raise RuntimeError("secret internals: SELECT * FROM customers")

    monkeypatch.setattr(importlib.import_module(module), name, broken)
    response = await client.post(
        "/graphql", json={"query": "{ escos { nodes { code } } }"}, headers={"X-Request-ID": "r-42"}
    )
    assert response.status_code == 200
    [error] = response.json()["errors"]
    assert {k: error.get(k) for k in ("message", "path", "extensions")} == {
        "message": "Internal error.",
        "path": path,
        "extensions": {"code": "INTERNAL", "requestId": "r-42"},
    }
    assert "secret" not in response.text
    logged = [r for r in caplog.records if r.name == "flows_graphql.errors"]
    assert logged and "secret internals" in str(logged[0].exc_info[1])
    # A document that does not validate is still told so.
    invalid = await client.post("/graphql", json={"query": "{ escoss { code } }"})
    [refused] = invalid.json()["errors"]
    assert refused["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_validation_errors_carry_a_code_and_no_hints_in_production(
    settings, database_url, engine
):
    production = replace(settings, env="production", graphiql=False)
    app = create_app(production, database_url, today=lambda: TODAY)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test",
        headers=bearer(settings, "operator", escos=[str(uuid.uuid4())]),
    ) as http:
        body = (await http.post("/graphql", json={"query": "{ escoss { code } }"})).json()
        [error] = body["errors"]
        assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert "Did you mean" not in error["message"]
        intro = await http.post("/graphql", json={"query": "{ __schema { types { name } } }"})
        assert intro.status_code == 403
        assert intro.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        page = await http.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code in (401, 404)
    await app.state.engine.dispose()


async def test_every_transaction_of_the_api_runs_as_its_role_and_only_that_transaction(
    settings, database_url, engine, two_escos
):
    """The role and the timeouts come with each BEGIN of the API's engine (docs/pooling.md):
    a transaction opened any way at all, even one that forgot the tenant setting, is
    the API's role (and so sees nothing); outside it, the connection is as it logged in."""
    api = create_engine(settings, database_url, api_role=True)
    setting = "(SELECT setting FROM pg_settings WHERE name = '{}')"  # in ms
    query = text(
        "SELECT current_user AS role,"
        f" {setting.format('statement_timeout')} AS timeout,"
        f" {setting.format('idle_in_transaction_session_timeout')} AS idle,"
        " (SELECT count(*) FROM escos) AS escos"
    )
    try:
        async with api.begin() as conn:
            inside = (await conn.execute(query)).one()
        async with api.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            outside = (await conn.execute(text("SELECT current_user"))).scalar()
            idle = (
                await conn.execute(
                    text(f"SELECT {setting.format('idle_in_transaction_session_timeout')}")
                )
            ).scalar()
    finally:
        await api.dispose()
    assert (inside.role, inside.escos) == ("flows_api", 0)
    assert inside.timeout == str(settings.statement_timeout_ms)
    assert inside.idle == str(settings.idle_in_transaction_timeout_ms)
    assert outside == make_url(database_url).username and idle == "0"
