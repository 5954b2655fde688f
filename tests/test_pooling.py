"""Through PgBouncer in transaction pooling, with ONE server connection for everyone:
clients of two ESCOs whose requests and mutations interleave on it each see only their
own, and nothing a transaction sets is left on the connection for the next client
(docs/pooling.md). PgBouncer is started here, on a loopback port of its own."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from flows_graphql.app import create_app
from flows_graphql.config import Settings
from tests import pgbouncer
from tests.support import factories as f
from tests.support.api import TODAY, bearer
from tests.support.cli import one_line_failure, run
from tests.support.db import direct_dsn

pytestmark = pytest.mark.skipif(
    not os.access(pgbouncer.BINARY, os.X_OK),
    reason=f"PgBouncer is not installed ({pgbouncer.BINARY}; Debian: apt-get install pgbouncer)",
)

CUSTOMERS = """query { customers(first: 100) { totalCount nodes { uuid email fullName } } }"""
UPDATE = """mutation($input: UpdateCustomerInput!) {
  updateCustomer(input: $input) { customer { uuid fullName } userErrors { field code } } }"""
# What the next client of the server connection finds of the last one's transaction.
LEFT_OVER = (
    "SELECT current_user AS role,"
    " coalesce(current_setting('flows.esco_ids', true), '') AS tenant,"
    " current_setting('statement_timeout') AS statement_timeout,"
    " current_setting('idle_in_transaction_session_timeout') AS idle,"
    " current_setting('jit') AS jit, pg_backend_pid() AS pid,"
    # No statement is left prepared on the server connection (unnamed ones only).
    " (SELECT count(*) FROM pg_prepared_statements) AS prepared"
)


@dataclasses.dataclass
class Pooled:
    url: str  # the test database, through the PgBouncer
    settings: Settings


@pytest.fixture
async def pooled(settings: Settings, database_url: str) -> AsyncIterator[Pooled]:
    server = make_url(direct_dsn(database_url))
    host = server.host or server.query.get("host") or "127.0.0.1"
    with pgbouncer.running(
        upstream_host=str(host), upstream_port=server.port or 5432, pool_size=1
    ) as port:
        url = server.set(host="127.0.0.1", port=port, query={}).render_as_string(
            hide_password=False
        )
        yield Pooled(
            url,
            dataclasses.replace(
                settings,
                database_pooler="pgbouncer",
                database_direct_url=server.render_as_string(hide_password=False),
            ),
        )


async def checker(url: str) -> asyncpg.Connection:
    # As our engine connects behind a pooler: no statement kept prepared.
    return await asyncpg.connect(url, statement_cache_size=0)


def operator(settings: Settings, esco: uuid.UUID) -> dict[str, str]:
    return bearer(settings, "operator", sub=f"op-{esco}", escos=[str(esco)])


async def test_two_escos_interleaved_on_one_server_connection_see_only_their_own(
    pooled: Pooled, engine: Any, raw: asyncpg.Connection
) -> None:
    one = await f.build_esco(raw, "poola", customers=3, months=1)
    two = await f.build_esco(raw, "poolb", customers=4, months=1)
    apps = [create_app(pooled.settings, pooled.url, today=lambda: TODAY) for _ in range(2)]
    probe = await checker(pooled.url)
    try:
        before = dict(await probe.fetchrow(LEFT_OVER))
        async with (
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=apps[0]),
                base_url="http://test",
                headers=operator(pooled.settings, one.id),
            ) as a,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=apps[1]),
                base_url="http://test",
                headers=operator(pooled.settings, two.id),
            ) as b,
        ):

            async def reads(client: httpx.AsyncClient, esco: f.EscoData) -> None:
                for _ in range(6):
                    body = (await client.post("/graphql", json={"query": CUSTOMERS})).json()
                    assert "errors" not in body, body
                    got = body["data"]["customers"]
                    assert got["totalCount"] == len(esco.customer_ids)
                    assert {n["email"] for n in got["nodes"]} == set(esco.emails)

            async def writes(client: httpx.AsyncClient, mine: f.EscoData, theirs: f.EscoData):
                for i in range(3):
                    own = {"customerId": str(mine.customer_ids[i]), "fullName": f"{mine.code} {i}"}
                    body = (
                        await client.post(
                            "/graphql", json={"query": UPDATE, "variables": {"input": own}}
                        )
                    ).json()
                    assert body["data"]["updateCustomer"]["userErrors"] == [], body
                    other = {"customerId": str(theirs.customer_ids[i]), "fullName": "stolen"}
                    body = (
                        await client.post(
                            "/graphql", json={"query": UPDATE, "variables": {"input": other}}
                        )
                    ).json()
                    assert body["data"]["updateCustomer"]["customer"] is None
                    assert body["data"]["updateCustomer"]["userErrors"][0]["code"] == "NOT_FOUND"

            # Both clients' reads and mutations take turns on the one server connection.
            await asyncio.gather(
                reads(a, one), reads(b, two), writes(a, one, two), writes(b, two, one)
            )
            after = dict(await probe.fetchrow(LEFT_OVER))
    finally:
        await probe.close()
        for app in apps:
            await app.state.engine.dispose()
    # One server connection carried it all, and it is as it was before.
    assert after == before
    assert before["role"] == "postgres" and before["tenant"] == ""
    assert before["prepared"] == 0
    names = {
        r["id"]: r["full_name"] for r in await raw.fetch("SELECT id, full_name FROM customers")
    }
    assert [names[c] for c in one.customer_ids[:3]] == ["poola 0", "poola 1", "poola 2"]
    assert [names[c] for c in two.customer_ids[:3]] == ["poolb 0", "poolb 1", "poolb 2"]
    assert "stolen" not in names.values()


async def test_nothing_of_a_transaction_is_left_for_the_next_client(
    pooled: Pooled, engine: Any, raw: asyncpg.Connection
) -> None:
    esco = await f.build_esco(raw, "poolc", customers=2, months=1)
    app = create_app(pooled.settings, pooled.url, today=lambda: TODAY)
    probe = await checker(pooled.url)
    try:
        before = dict(await probe.fetchrow(LEFT_OVER))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://test",
            headers=operator(pooled.settings, esco.id),
        ) as client:
            for query, variables in [
                (CUSTOMERS, None),
                (
                    UPDATE,
                    {"input": {"customerId": str(esco.customer_ids[0]), "fullName": "Ann"}},
                ),
                (CUSTOMERS, None),
            ]:
                body = (
                    await client.post("/graphql", json={"query": query, "variables": variables})
                ).json()
                assert "errors" not in body, body
                # The next client of the server connection, after each request.
                assert dict(await probe.fetchrow(LEFT_OVER)) == before
    finally:
        await probe.close()
        await app.state.engine.dispose()
    # The API's role, tenant and timeouts held inside its transactions only.
    assert before["role"] == "postgres"
    assert before["tenant"] == ""


async def test_a_session_setting_would_reach_the_next_client(pooled: Pooled, engine: Any) -> None:
    """Why the API sets nothing per session: what one client sets outside a transaction
    is what the next client of the same server connection runs with."""
    first, second = await checker(pooled.url), await checker(pooled.url)
    try:
        await first.execute("SET ROLE flows_api")
        await first.execute("SELECT set_config('flows.esco_ids', '*', false)")
        leaked = await second.fetchrow(LEFT_OVER)
        assert (leaked["role"], leaked["tenant"]) == ("flows_api", "*")
        await first.execute("RESET ROLE")
        await first.execute("RESET flows.esco_ids")
        cleaned = await second.fetchrow(LEFT_OVER)
        assert cleaned["role"] == "postgres" and cleaned["tenant"] == ""
    finally:
        await first.close()
        await second.close()


def test_a_pooler_without_the_setting_is_named(pooled: Pooled) -> None:
    """PgBouncer refuses the settings a direct connection carries: the command line
    says which setting is missing, in one line."""
    result = run(
        "token",
        "--role",
        "admin",
        env={"DATABASE_URL": pooled.url, "FLOWS_DATABASE_POOLER": "none", "FLOWS_JWT_SECRET": "x"},
    )
    one_line_failure(result, "connection pooler", "FLOWS_DATABASE_POOLER=pgbouncer")
