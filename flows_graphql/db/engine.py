"""The async engine and session factory, plus the per-request SQL statement counter."""

from __future__ import annotations

import contextlib
import contextvars
import uuid
import warnings
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from sqlalchemy import event, exc, text
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import QueuePool
from sqlalchemy.util import greenlet_spawn

from .. import faults
from ..config import Settings
from .models.base import API_ROLE
from .urls import async_url


class StatementCounter:
    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


# Set per request (its metrics count statements; FLOWS_DEBUG_SQL shows the count); tasks
# spawned by the request (loaders) inherit the same counter object through the context.
current_counter: contextvars.ContextVar[StatementCounter | None] = contextvars.ContextVar(
    "flows_statement_counter", default=None
)


def count_statement(*_: Any) -> None:
    """Count a statement sent by this request."""
    counter = current_counter.get()
    if counter is not None:
        counter.count += 1


ROLLBACK_THEN_BEGIN = "ROLLBACK; BEGIN"


class _Connection(asyncpg.Connection):
    """A connection whose every transaction starts with the engine's settings for it
    (`prelude`), sent with its BEGIN in one simple query: the role row-level security
    applies to and the timeouts hold for that transaction only (`SET LOCAL`), so
    nothing of one request is left on a server connection that a transaction pooler
    hands to another client next (docs/pooling.md). Every transaction opens with a
    BEGIN, whoever opens it (SQLAlchemy's, db/request.py's reads): a new code path
    cannot forget the role and run as the tables' owner, past row-level security."""

    prelude = ""
    prelude_before_14 = ""

    # asyncpg's own signature, `timeout` included.
    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:  # noqa: ASYNC109
        # A parked read's ROLLBACK travels with the next read's BEGIN (db/request.py).
        if not args and (query.startswith("BEGIN") or query.startswith(ROLLBACK_THEN_BEGIN)):
            # client_connection_check_interval is PostgreSQL 14's.
            new = self.get_server_version().major >= 14
            query = (
                f"{query.rstrip().rstrip(';')}; {self.prelude if new else self.prelude_before_14}"
            )
        return await super().execute(query, *args, timeout=timeout)


def transaction_prelude(settings: Settings, *, api_role: bool) -> tuple[str, str]:
    """What each transaction of an engine sets first (from PostgreSQL 14, before it)."""
    local = [f"SET LOCAL statement_timeout = {int(settings.statement_timeout_ms)}"]
    if settings.lock_timeout_ms > 0:
        local.append(f"SET LOCAL lock_timeout = {int(settings.lock_timeout_ms)}")
    if api_role:
        local.insert(0, f"SET LOCAL ROLE {API_ROLE}")
        # A backstop: a transaction the API left open (a bug, a stuck client) ends
        # instead of holding its locks and snapshot (billing runs and exports set
        # their own bound).
        local.append(
            "SET LOCAL idle_in_transaction_session_timeout = "
            f"{int(settings.idle_in_transaction_timeout_ms)}"
        )
    before_14 = "; ".join(local)
    if api_role:
        # A statement whose request was stopped (cutoff.py) loses its connection
        # without a cancel request: the server notices within a second that nobody
        # waits for it (on a lock, say) and stops, instead of running to its timeout.
        local.append("SET LOCAL client_connection_check_interval = 1000")
    return "; ".join(local), before_14


def create_engine(
    settings: Settings, url: str, *, api_role: bool = False, command_timeout_s: float | None = None
) -> AsyncEngine:
    """An engine. With `api_role`, every transaction runs as the API's role, which
    row-level security applies to (migrations and the CLI run as the owner), and every
    statement is bounded on our side too (the CLI's billing run may take longer).
    Behind a transaction pooler (FLOWS_DATABASE_POOLER) no statement is kept prepared
    and the startup packet carries only what PgBouncer passes on."""
    server_settings = {"application_name": "flows-graphql", "timezone": "UTC"}
    if not settings.behind_pooler:
        # Defaults for statements outside a transaction (the prelude sets them for
        # each one); PgBouncer refuses a connection that asks for them. Our statements
        # are small and indexed: JIT compilation only adds latency. Not per transaction:
        # asyncpg's type introspection turns JIT off for the session when it finds it
        # on, and on again after, which a transaction's `off` would make it skip; behind
        # a pooler it is the database's setting (docs/pooling.md).
        server_settings["statement_timeout"] = str(settings.statement_timeout_ms)
        server_settings["jit"] = "off"
        if settings.lock_timeout_ms > 0:
            server_settings["lock_timeout"] = str(settings.lock_timeout_ms)
    prelude, before_14 = transaction_prelude(settings, api_role=api_role)
    connect_args: dict[str, Any] = {
        "server_settings": server_settings,
        # A server that accepts the TCP connection and then says nothing (frozen,
        # overloaded) must not hold a request for as long as it does.
        "timeout": settings.db_connect_timeout_s,
        "connection_class": type(
            "FlowsConnection", (_Connection,), {"prelude": prelude, "prelude_before_14": before_14}
        ),
    }
    if settings.behind_pooler:
        # A statement prepared on one server connection is unknown on the next one the
        # pooler hands out: unnamed statements only, parsed again with their bind
        # (asyncpg does so with its cache off).
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_cache_size"] = 0
    if api_role:
        connect_args["command_timeout"] = command_timeout_s or settings.command_timeout_s
    engine = create_async_engine(
        async_url(url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_timeout=settings.db_pool_timeout_s,
        # No ping on checkout (a round trip per request, three with SQLAlchemy's
        # asyncpg ping): a connection the server closed is noticed by the driver and
        # refused on checkout (_refuse_closed) at no cost; one that dies under a
        # statement is replaced once when nothing ran yet (transaction, db/request.py).
        pool_pre_ping=False,
        connect_args=connect_args,
    )
    event.listen(engine.sync_engine, "before_cursor_execute", count_statement)
    event.listen(engine.sync_engine.pool, "reset", _end_stray_transaction)
    event.listen(engine.sync_engine.pool, "checkout", _refuse_closed)
    event.listen(engine.sync_engine.pool, "invalidate", _abort)
    event.listen(engine.sync_engine.pool, "close", _close_within_a_second)
    return engine


def _abort(dbapi_connection: Any, connection_record: Any, exception: Any) -> None:
    """An invalidated connection is dropped at once. SQLAlchemy would first try a
    graceful close for up to 2 s, which a frozen database makes every request pay."""
    with contextlib.suppress(Exception):
        dbapi_connection.driver_connection.terminate()


def _close_within_a_second(dbapi_connection: Any, connection_record: Any) -> None:
    """A connection the pool closes (recycled after a disconnect, overflow, disposal)
    says goodbye to the server, but waits for it at most a second: SQLAlchemy's own
    close waits for the server without a limit, so a frozen one would hold the request
    that happened to check the connection out."""
    driver = dbapi_connection.driver_connection
    if driver.is_closed():
        return
    try:
        dbapi_connection.run_async(lambda conn: conn.close(timeout=1))
    except Exception:
        driver.terminate()


def _refuse_closed(dbapi_connection: Any, connection_record: Any, proxy: Any) -> None:
    """A pooled connection whose server went away (restart, crash, terminated backend)
    is closed on the driver's side as soon as the server closes the socket: the pool
    replaces it instead of handing it to a request (the pool's documented way to refuse
    a connection on checkout)."""
    if dbapi_connection.driver_connection.is_closed():
        raise exc.DisconnectionError("the database closed this connection")


# checkout's way without the greenlet meets a connection to replace (the database
# closed it) as a connect that cannot await: SQLAlchemy closes the driver's connect()
# unstarted, which Python reports as never awaited. That one is meant.
warnings.filterwarnings(
    "ignore",
    message="coroutine 'connect' was never awaited",
    category=RuntimeWarning,
    module=r"sqlalchemy\.util\.concurrency",
)


async def checkout(engine: AsyncEngine) -> Any:
    """A pooled connection, as AsyncEngine.raw_connection gives it, taken without
    SQLAlchemy's greenlet while an idle one is queued: the greenlet's switches were a
    tenth of the app screen's CPU (bench/README.md, session 7). Whatever would await on
    that way (a connection made or replaced, a wait for one) raises MissingGreenlet
    before it acts, which the pool takes as a failed connect and undoes; the greenlet's
    way then does it."""
    sync = engine.sync_engine
    pool = sync.pool
    if isinstance(pool, QueuePool) and pool.checkedin():
        with contextlib.suppress(exc.MissingGreenlet):
            return sync.raw_connection()
    return await engine.raw_connection()


async def checkin(engine: AsyncEngine, raw: Any) -> None:
    """Give a connection that `checkout` took back to the pool; without the greenlet
    when that cannot await: outside a transaction (nothing for the reset to roll back)
    and with room in the pool's queue (an overflow connection is closed, a round trip)."""
    pool = engine.sync_engine.pool
    if (
        isinstance(pool, QueuePool)
        and pool.checkedin() < pool.size()
        and not raw.driver_connection.is_in_transaction()
    ):
        raw.close()
    else:
        await greenlet_spawn(raw.close)


async def discard(conn: AsyncConnection) -> None:
    """Drop a connection that met a fault or was interrupted, without a round trip:
    its state is unknown, and a database that does not answer would hold a graceful
    close (SQLAlchemy's invalidate closes with a 2 s timeout) or a ROLLBACK for as
    long as it does not."""
    with contextlib.suppress(Exception):
        raw = await conn.get_raw_connection()
        raw.driver_connection.terminate()  # type: ignore[union-attr]
    with contextlib.suppress(Exception):
        await conn.invalidate()
    with contextlib.suppress(Exception):
        await conn.close()


def needs_discard(error: BaseException) -> bool:
    """Whether a connection that raised `error` must be dropped rather than rolled
    back: interrupted (cancelled, or stopped by the request's cutoff) or cut off from
    the server. A statement or lock timeout leaves a healthy connection."""
    if not isinstance(error, Exception) or isinstance(error, faults.Cut):
        return True
    return faults.classify(error) == faults.UNAVAILABLE


@contextlib.asynccontextmanager
async def transaction(
    engine: AsyncEngine, tenant: dict[str, str]
) -> AsyncIterator[AsyncConnection]:
    """A read-write transaction with row-level security's tenant set, committed when
    the block ends without an exception. A connection found broken by the tenant
    setting (the first statement: nothing ran yet) is replaced once; one that meets a
    fault later is dropped, not rolled back over a dead or frozen connection."""
    for attempt in (1, 2):
        conn = await engine.connect()
        try:
            await conn.begin()
            await conn.execute(SET_TENANT, tenant)
        except BaseException as error:
            await discard(conn)
            if attempt == 1 and isinstance(error, Exception) and faults.is_broken_connection(error):
                continue
            raise
        break
    try:
        yield conn
    except BaseException as error:
        if needs_discard(error):
            await discard(conn)
        else:
            try:
                await conn.rollback()
            finally:
                await conn.close()
        raise
    try:
        await conn.commit()
    except BaseException:
        # The outcome of a COMMIT that fails on the way is unknown to us.
        await discard(conn)
        raise
    await conn.close()


def _end_stray_transaction(dbapi_connection: Any, connection_record: Any, state: Any) -> None:
    """A read's transaction is opened on the driver (db/request.py), unknown to
    SQLAlchemy's own reset: whatever path a connection comes back by, it must not come
    back inside one. A connection that cannot roll back is discarded by the pool."""
    driver = dbapi_connection.driver_connection
    if not driver.is_closed() and driver.is_in_transaction():
        dbapi_connection.run_async(lambda conn: conn.execute("ROLLBACK"))


def tenant_setting(esco_ids: frozenset[uuid.UUID] | None) -> str:
    """The value of `flows.esco_ids` for a viewer's scope: `*` is every ESCO."""
    return "*" if esco_ids is None else ",".join(sorted(str(e) for e in esco_ids))


SET_TENANT = text("SELECT set_config('flows.esco_ids', :esco_ids, true)")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
