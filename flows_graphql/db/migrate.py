"""Schema migrations (alembic), run programmatically over the async engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

ALEMBIC_INI = Path(__file__).with_name("alembic.ini")


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config(str(ALEMBIC_INI))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _upgrade(connection: Connection, revision: str) -> None:
    command.upgrade(alembic_config(connection), revision)


def _downgrade(connection: Connection, revision: str) -> None:
    command.downgrade(alembic_config(connection), revision)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    async with engine.begin() as conn:
        # Several processes may start at once (serve --workers N): one migrates, the
        # others wait on this lock and then find nothing left to do.
        # A migration's backfill of a big database takes longer than a read may (the
        # engine's statement_timeout), and so may the wait of another process for
        # it: 0004's supply history of 107,000 properties was cancelled, and `serve`
        # could not start (docs/billing-runs.md).
        await conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
        await conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7140001)")
        await conn.run_sync(_upgrade, revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as conn:
        await conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
        await conn.run_sync(_downgrade, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)
