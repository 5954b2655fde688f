"""The async engine and session factory, plus the per-request SQL statement counter."""

from __future__ import annotations

import contextvars
import uuid
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from ..config import Settings
from .models.base import API_ROLE
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


def count_statement(*_: Any) -> None:
    """Count a statement sent by this request (when FLOWS_DEBUG_SQL counts them)."""
    counter = current_counter.get()
    if counter is not None:
        counter.count += 1


def create_engine(settings: Settings, url: str, *, api_role: bool = False) -> AsyncEngine:
    """An engine. With `api_role`, every connection switches to the API's role, which
    row-level security applies to (migrations and the CLI run as the owner)."""
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
        event.listen(engine.sync_engine, "before_cursor_execute", count_statement)
    if api_role:
        event.listen(engine.sync_engine, "connect", _switch_to_api_role)
    event.listen(engine.sync_engine.pool, "reset", _end_stray_transaction)
    return engine


def _end_stray_transaction(dbapi_connection: Any, connection_record: Any, state: Any) -> None:
    """A read's transaction is opened on the driver (db/request.py), unknown to
    SQLAlchemy's own reset: whatever path a connection comes back by, it must not come
    back inside one. A connection that cannot roll back is discarded by the pool."""
    driver = dbapi_connection.driver_connection
    if not driver.is_closed() and driver.is_in_transaction():
        dbapi_connection.run_async(lambda conn: conn.execute("ROLLBACK"))


def _switch_to_api_role(dbapi_connection: Any, connection_record: Any) -> None:
    dbapi_connection.run_async(lambda conn: conn.execute(f"SET ROLE {API_ROLE}"))


def tenant_setting(esco_ids: frozenset[uuid.UUID] | None) -> str:
    """The value of `flows.esco_ids` for a viewer's scope: `*` is every ESCO."""
    return "*" if esco_ids is None else ",".join(sorted(str(e) for e in esco_ids))


SET_TENANT = text("SELECT set_config('flows.esco_ids', :esco_ids, true)")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
