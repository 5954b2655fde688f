"""The async engine and session factory, plus the per-request SQL statement counter."""

from __future__ import annotations

import contextvars
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from ..config import Settings
from .urls import async_url


class StatementCounter:
    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


# Set per request when FLOWS_DEBUG_SQL is on; tasks spawned by the request (loaders)
# inherit the same counter object through the context.
current_counter: contextvars.ContextVar[StatementCounter | None] = contextvars.ContextVar(
    "flows_statement_counter", default=None
)


def _count_statement(*_: Any) -> None:
    counter = current_counter.get()
    if counter is not None:
        counter.count += 1


def create_engine(settings: Settings, url: str) -> AsyncEngine:
    engine = create_async_engine(
        async_url(url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=False,
        connect_args={
            "server_settings": {
                "application_name": "flows-graphql",
                "statement_timeout": str(settings.statement_timeout_ms),
                # Our statements are small and indexed; JIT compilation only adds latency.
                "jit": "off",
                "timezone": "UTC",
            }
        },
    )
    if settings.debug_sql:
        event.listen(engine.sync_engine, "before_cursor_execute", _count_statement)
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
