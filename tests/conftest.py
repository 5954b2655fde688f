"""Test fixtures: a real PostgreSQL for every test.

With DATABASE_URL the suite runs on that server; without it, on an embedded
PostgreSQL (pgserver) in ./.flows-test. Either way it creates a scratch database of
its own, brings it to the latest migration, and drops it at the end, so the server's
own databases are never touched.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from flows_graphql.app import create_app
from flows_graphql.auth.tokens import issue_token
from flows_graphql.config import RateLimits, Settings
from flows_graphql.db import embedded
from flows_graphql.db.engine import create_engine, create_sessionmaker
from flows_graphql.db.migrate import upgrade
from flows_graphql.db.models import metadata
from flows_graphql.db.urls import asyncpg_dsn
from tests import live

ROOT = Path(__file__).resolve().parent.parent
# Tables whose rows the migrations seed; every other table starts each test empty.
SEEDED_TABLES = {"regions"}


def _server_url() -> str:
    return os.environ.get("DATABASE_URL") or embedded.start(ROOT / ".flows-test")


# The suite through a transaction pooler (.ci/run's third pass, tests/pgbouncer.py):
# the app under test goes through it; connections of the tests' own that keep session
# state or prepared statements (asyncpg's cache) go to the server itself.
POOLER = (os.environ.get("FLOWS_DATABASE_POOLER") or "none").strip()
DIRECT_URL = (os.environ.get("FLOWS_DATABASE_DIRECT_URL") or "").strip() or None


def direct_dsn(url: str) -> str:
    """An asyncpg DSN of `url`'s database on the server itself, past any pooler."""
    if DIRECT_URL is None:
        return asyncpg_dsn(url)
    server = make_url(DIRECT_URL).set(database=make_url(url).database)
    return asyncpg_dsn(server.render_as_string(hide_password=False))


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    server = _server_url()
    name = f"flows_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(direct_dsn(server))
    try:
        if not os.environ.get("DATABASE_URL"):
            # The embedded test cluster is disposable: skip the disk flushes that make
            # the per-test TRUNCATE slow. (A server named by DATABASE_URL is left as is.)
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                await admin.execute(f"ALTER SYSTEM SET {setting} = off")
            await admin.execute("SELECT pg_reload_conf()")
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = _with_database(server, name)
    try:
        yield url
    finally:
        admin = await asyncpg.connect(direct_dsn(server))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        database_direct_url=DIRECT_URL,
        database_pooler=POOLER,
        data_dir=tmp_path_factory.mktemp("flows-data"),
        debug_sql=True,
        jwt_secret="test-secret-" + "x" * 32,
        # One principal sends the whole suite's requests within minutes: budgets no
        # test reaches unless it means to (tests/test_ratelimit.py sets its own).
        rate_limits=RateLimits(customer=10**9, operator=10**9, partner=10**9, admin=10**9),
    )


@pytest.fixture(scope="session")
async def engine(settings: Settings, database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings, database_url)
    await upgrade(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture(autouse=True)
async def clean_tables(request: pytest.FixtureRequest) -> None:
    """Empty every table before a test that touches the database."""
    if "engine" not in request.fixturenames:
        return
    engine: AsyncEngine = request.getfixturevalue("engine")
    names = ", ".join(t.name for t in metadata.sorted_tables if t.name not in SEEDED_TABLES)
    async with engine.begin() as conn:
        await conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


@pytest.fixture
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture
async def raw(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain asyncpg connection, for asserting what the database itself enforces."""
    conn = await asyncpg.connect(direct_dsn(database_url))
    try:
        yield conn
    finally:
        await conn.close()


# The billing clock of the test app: a fixed day, so "the current month" is stable.
TODAY = date(2025, 3, 10)


def bearer(
    settings: Settings, role: str, sub: str = "development", **claims: Any
) -> dict[str, str]:
    """Headers carrying a valid token for `role` (escos=[…], customer_id=… as claims)."""
    token = issue_token(settings.jwt_secret or "", sub=sub, role=role, **claims)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def client(
    settings: Settings, database_url: str, engine: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app, signed in as an admin (`user:development`)."""
    app = create_app(settings, database_url, today=lambda: TODAY)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers=bearer(settings, "admin")
    ) as http:
        yield http
    await app.state.engine.dispose()


async def gql(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None, **kw: Any
) -> dict[str, Any]:
    """POST a GraphQL operation; returns the whole JSON body."""
    response = await client.post("/graphql", json={"query": query, "variables": variables}, **kw)
    body: dict[str, Any] = response.json()
    body["_status"] = response.status_code
    return body


@pytest.fixture(scope="session")
async def live_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[live.LiveServer]:
    """`serve --demo` in a subprocess on a loopback port and a database of its own (the
    other tests empty theirs between tests), for clients that speak real HTTP."""
    server = _server_url()
    name = f"flows_live_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(direct_dsn(server))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        with live.demo_server(_with_database(server, name), tmp_path_factory.mktemp("live")) as up:
            yield up
    finally:
        admin = await asyncpg.connect(direct_dsn(server))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
