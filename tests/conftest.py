"""Test fixtures: a real PostgreSQL for every test, and the app's clients.

With DATABASE_URL the suite runs on that server; without it, on an embedded
PostgreSQL (pgserver) in ./.flows-test. Either way it creates a scratch database of
its own, brings it to the latest migration, and drops it at the end, so the server's
own databases are never touched.

What the fixtures are built from, and what tests share besides, is in tests/support/.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import date

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from flows_graphql.config import RateLimits, Settings
from flows_graphql.db.engine import create_engine, create_sessionmaker
from flows_graphql.db.migrate import upgrade
from flows_graphql.db.models import metadata
from tests.support import SEEDED_TABLES, live
from tests.support.api import app_client, bearer
from tests.support.db import DIRECT_URL, POOLER, connect, scratch_database, server_url


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    server = server_url()
    if not os.environ.get("DATABASE_URL"):
        # The embedded test cluster is disposable: skip the disk flushes that make the
        # per-test TRUNCATE slow. (A server named by DATABASE_URL is left as is.)
        async with connect(server) as admin:
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                await admin.execute(f"ALTER SYSTEM SET {setting} = off")
            await admin.execute("SELECT pg_reload_conf()")
    async with scratch_database(server, "test") as url:
        yield url


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
    async with connect(database_url) as conn:
        yield conn


@pytest.fixture
async def client(
    settings: Settings, database_url: str, engine: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app, signed in as an admin (`user:development`)."""
    async with app_client(settings, database_url, headers=bearer(settings, "admin")) as http:
        yield http


@pytest.fixture
async def april(
    settings: Settings, database_url: str, engine: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    """The admin's client of an app whose billing clock reads 2025-04-15: March 2025
    is a past month."""
    async with app_client(
        settings, database_url, date(2025, 4, 15), bearer(settings, "admin")
    ) as http:
        yield http


@pytest.fixture
async def bare(
    settings: Settings, database_url: str, engine: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app without credentials: each call brings its own."""
    async with app_client(settings, database_url) as http:
        yield http


@pytest.fixture(scope="session")
async def live_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[live.LiveServer]:
    """`serve --demo` in a subprocess on a loopback port and a database of its own (the
    other tests empty theirs between tests), for clients that speak real HTTP."""
    async with scratch_database(server_url(), "live") as url:
        with live.demo_server(url, tmp_path_factory.mktemp("live")) as up:
            yield up
