"""Statement timeouts through HTTP (issue 16, defect 7): the database answering that a
statement ran out of time is `TIMEOUT` — HTTP 503 with Retry-After, the request id, a
mutation rolled back with the code in its payload — never `INTERNAL`. The waits are made
with a table lock held by the test on its own scratch database.

The faults that need a database to restart, crash, stop or freeze are in
tests/test_faults.py (a PostgreSQL of their own); the classification and the request's
cutoff are also checked here without one.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from flows_graphql.app import create_app
from flows_graphql.config import Settings
from flows_graphql.cutoff import Cutoff, Cutoffs
from flows_graphql.faults import MESSAGES, TIMEOUT, UNAVAILABLE, Cut, classify
from tests.support.api import TODAY, asgi_client, bearer, gql

CREATE_ESCO = """
mutation ($input: CreateEscoInput!) {
  createEsco(input: $input) { esco { code } userErrors { field code message } }
}
"""


@pytest.fixture
async def quick(
    settings: Settings, database_url: str, engine: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    """An admin's client of an app whose statements time out after 300 ms."""
    app = create_app(
        dataclasses.replace(settings, statement_timeout_ms=300), database_url, today=lambda: TODAY
    )
    async with asgi_client(app, bearer(settings, "admin")) as http:
        yield http
    await app.state.engine.dispose()


async def test_a_statement_timeout_answers_timeout_in_queries_and_mutations(
    quick: httpx.AsyncClient, raw: asyncpg.Connection
) -> None:
    await raw.execute("BEGIN; LOCK TABLE escos IN ACCESS EXCLUSIVE MODE")
    try:
        response = await quick.post(
            "/graphql",
            json={"query": "{ escos { nodes { code } } }"},
            headers={"X-Request-ID": "t-1"},
        )
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        [error] = response.json()["errors"]
        assert error["extensions"] == {"code": TIMEOUT, "requestId": "t-1"}
        assert error["message"] == MESSAGES[TIMEOUT]  # no driver text, no SQL
        body = await gql(
            quick,
            CREATE_ESCO,
            {"input": {"code": "late", "name": "Late", "regionCode": "south_west"}},
        )
        assert body["_status"] == 503
        payload = body["data"]["createEsco"]
        assert payload["esco"] is None
        assert [e["code"] for e in payload["userErrors"]] == [TIMEOUT]
    finally:
        await raw.execute("ROLLBACK")
    assert await raw.fetchval("SELECT count(*) FROM escos WHERE code = 'late'") == 0
    # Retried once the lock is gone, the same mutation goes through.
    body = await gql(
        quick, CREATE_ESCO, {"input": {"code": "late", "name": "Late", "regionCode": "south_west"}}
    )
    assert body["_status"] == 200 and body["data"]["createEsco"]["esco"] == {"code": "late"}


def test_classification() -> None:
    assert classify(asyncpg.QueryCanceledError("canceling statement")) == TIMEOUT
    assert classify(asyncpg.LockNotAvailableError("lock timeout")) == TIMEOUT
    assert classify(asyncpg.CannotConnectNowError("starting up")) == UNAVAILABLE
    assert classify(asyncpg.ConnectionDoesNotExistError("closed")) == UNAVAILABLE
    assert classify(ConnectionRefusedError(111, "refused")) == UNAVAILABLE
    assert classify(TimeoutError()) == UNAVAILABLE  # asyncpg's connect/command timeout
    assert classify(Cut("timeout")) == TIMEOUT
    assert classify(Cut("shutdown")) == UNAVAILABLE
    # Wrapped, as SQLAlchemy and graphql-core wrap them.
    wrapper = RuntimeError("wrapped")
    wrapper.__cause__ = asyncpg.QueryCanceledError("canceling statement")
    assert classify(wrapper) == TIMEOUT
    assert classify(KeyError("a bug")) is None
    assert classify(asyncpg.UniqueViolationError("duplicate")) is None


async def test_a_cutoff_stops_its_scopes_and_a_drain_brings_it_forward() -> None:
    cutoffs = Cutoffs(request_timeout_s=10, shutdown_grace_s=1.0)
    with cutoffs.open() as cutoff:
        started = asyncio.get_running_loop().time()

        async def drain_soon() -> None:
            await asyncio.sleep(0.05)
            cutoffs.drain()

        task = asyncio.ensure_future(drain_soon())
        with pytest.raises(Cut) as cut:
            async with cutoff.scope():
                await asyncio.sleep(5)
        await task
        # The grace is 1 s: stopped at half of it (never later than grace - 1 s margin).
        assert 0.4 < asyncio.get_running_loop().time() - started < 1.0
        assert cut.value.reason == "shutdown" and cut.value.code == UNAVAILABLE
        with pytest.raises(Cut):
            cutoff.check()
    # asyncpg's own timeouts inside a scope pass through as they are.
    with pytest.raises(TimeoutError) as own:
        async with Cutoff(10).scope():
            raise TimeoutError("command timeout")
    assert not isinstance(own.value, Cut)
    assert not cutoffs.active


async def test_no_free_pooled_connection_in_time_is_unavailable(
    settings: Settings, database_url: str, engine: AsyncEngine
) -> None:
    small = dataclasses.replace(settings, db_pool_size=1, db_pool_timeout_s=0.3)
    app = create_app(small, database_url, today=lambda: TODAY)
    pool_engine = app.state.engine
    # The pool's two connections (one, plus as many overflow), both taken.
    held = [await pool_engine.connect() for _ in range(2)]
    try:
        async with asgi_client(app, bearer(settings, "admin")) as http:
            body = await gql(http, "{ escos { nodes { code } } }")
            assert body["_status"] == 503
            assert [e["extensions"]["code"] for e in body["errors"]] == [UNAVAILABLE]
            for conn in held:
                await conn.close()
            held = []
            assert (await gql(http, "{ escos { nodes { code } } }"))["_status"] == 200
    finally:
        for conn in held:
            await conn.close()
        await pool_engine.dispose()


def test_uvicorn_installs_its_exit_handler_with_signal_signal() -> None:
    """app._drain_on_exit_signals chains to uvicorn's SIGTERM handler, found by its name
    (`handle_exit`, installed with signal.signal); if that moves, shutdowns answer a
    plain-text 500 again (tests/test_faults.py's shutdown test fails too)."""
    import inspect

    import uvicorn

    source = inspect.getsource(uvicorn.Server.capture_signals)
    assert "signal.signal(sig, self.handle_exit)" in source, uvicorn.__version__
