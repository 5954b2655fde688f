"""Databases of the tests' own, on the server the suite runs against."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.engine import make_url

from flows_graphql.db import embedded
from flows_graphql.db.urls import asyncpg_dsn
from tests.support import ROOT

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


def server_url() -> str:
    """The server the suite runs on: DATABASE_URL's, or an embedded one in ./.flows-test."""
    return os.environ.get("DATABASE_URL") or embedded.start(ROOT / ".flows-test")


def with_database(url: str, name: str) -> str:
    """`url` naming another database of its server."""
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@asynccontextmanager
async def connect(url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain asyncpg connection to `url` (past any pooler), closed after."""
    conn = await asyncpg.connect(direct_dsn(url))
    try:
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def scratch_database(server_url: str, label: str) -> AsyncIterator[str]:
    """A new empty database on the server of `server_url`, dropped (whoever is still
    connected) afterwards; yields its URL."""
    name = f"flows_{label}_{uuid.uuid4().hex[:12]}"
    async with connect(server_url) as admin:
        await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server_url, name)
    finally:
        async with connect(server_url) as admin:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
