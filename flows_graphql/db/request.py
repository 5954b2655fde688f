"""The database access of one GraphQL request.

Decision (see docs/decisions.md): a request reads through ONE connection, taken from
the pool on first use and held until the response is built, inside one
REPEATABLE READ READ ONLY transaction. Sibling fields resolve concurrently, so their
loaders take turns on that connection behind a lock instead of each borrowing a
connection of their own. Why:
- every figure on a dashboard comes from the same snapshot (a bill total never
  disagrees with its lines because a billing run committed half-way through a query);
- a request never holds more than one pooled connection, so a burst of requests can
  not deadlock the pool waiting for their own second connection;
- the per-transaction tenant setting (row-level security) is set once per request.
Dataloaders already batch each relation into one statement per nesting level, so
running those few statements one after another costs little.

A read's transaction changes nothing, so ending it is a round trip that only makes the
connection usable again: a finished read's connection is parked for a few milliseconds
(`Parking`), and the next read takes it and sends that ROLLBACK with its own BEGIN.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import re
import sys
import uuid
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Executable
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .. import faults
from ..rows import from_sqlalchemy
from .direct import compiled_for
from .engine import (
    ROLLBACK_THEN_BEGIN,
    checkin,
    checkout,
    count_statement,
    discard,
    needs_discard,
    tenant_setting,
    transaction,
)

if TYPE_CHECKING:
    from .replica import Replicas


class RequestFinished(RuntimeError):
    pass


_TENANT_VALUE = re.compile(r"\*|[0-9a-f,-]*")


def begin_read(esco_ids: str, *, after_rollback: bool = False) -> str:
    """BEGIN of a request's read snapshot and its tenant setting, as one simple query
    (parameters would take a second round trip), after the ROLLBACK of a parked read's
    transaction if asked. The value is `*` or uuids joined by commas
    (engine.tenant_setting); anything else is refused, never quoted into SQL."""
    if not _TENANT_VALUE.fullmatch(esco_ids):
        raise ValueError("not a tenant setting")
    return (
        f"{ROLLBACK_THEN_BEGIN if after_rollback else 'BEGIN'}"
        " ISOLATION LEVEL REPEATABLE READ READ ONLY;"
        f" SELECT set_config('flows.esco_ids', '{esco_ids}', true)"
    )


# How long a finished read's connection waits, its transaction open, for the next read.
PARK_S = 0.005


class _Parked:
    __slots__ = ("driver", "raw", "timer")

    def __init__(self, raw: Any, driver: Any) -> None:
        self.raw, self.driver = raw, driver
        self.timer: asyncio.TimerHandle


class Parking:
    """Finished reads' connections, their transactions still open, for the next reads
    of this process to take (newest first) and end with their own BEGIN: one round trip
    fewer a read, a seventh of the app screen's CPU (docs/decisions.md, session 7). One
    that no read takes within PARK_S is rolled back and given back to the pool, so a
    parked snapshot holds back vacuum, and its locks a migration, for milliseconds. At
    most `most` wait (the pool's size: the overflow stays free for everyone else).
    Never behind a transaction pooler (a waiting transaction pins its server
    connection), never for a standby's reads (db/replica.py chooses their connection)."""

    def __init__(self, engine: AsyncEngine, most: int) -> None:
        self.engine = engine
        self.most = most
        self._parked: list[_Parked] = []
        self._ending: set[asyncio.Task[None]] = set()
        _PARKINGS[engine] = self

    @property
    def waiting(self) -> int:
        """Connections parked, or being rolled back and given back after waiting."""
        return len(self._parked) + sum(not task.done() for task in self._ending)

    def park(self, raw: Any, driver: Any) -> bool:
        if len(self._parked) >= self.most or not driver.is_in_transaction():
            return False
        parked = _Parked(raw, driver)
        # In a context of its own: the ROLLBACK is no request's (its trace, its log lines).
        parked.timer = asyncio.get_running_loop().call_later(
            PARK_S, self._expire, parked, context=contextvars.Context()
        )
        self._parked.append(parked)
        return True

    def take(self) -> tuple[Any, Any] | None:
        """The newest parked connection that is still the pool's and open."""
        while self._parked:
            parked = self._parked.pop()
            parked.timer.cancel()
            if parked.driver.is_closed() or parked.raw._pool is not self.engine.sync_engine.pool:
                # Closed by the server since, or of a pool disposed since: not reused.
                self._end_later(parked)
                continue
            return parked.raw, parked.driver
        return None

    def _expire(self, parked: _Parked) -> None:
        if parked in self._parked:
            self._parked.remove(parked)
            self._end_later(parked)

    def _end_later(self, parked: _Parked) -> None:
        task = asyncio.ensure_future(end_transaction(self.engine, parked.raw, parked.driver))
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    async def close(self) -> None:
        """End every parked transaction now (before the engine is disposed)."""
        while self._parked:
            parked = self._parked.pop()
            parked.timer.cancel()
            self._end_later(parked)
        if self._ending:
            await asyncio.gather(*self._ending, return_exceptions=True)


_PARKINGS: weakref.WeakKeyDictionary[AsyncEngine, Parking] = weakref.WeakKeyDictionary()


def parked(engine: AsyncEngine) -> int:
    """How many of the engine's checked-out connections are parked (or on their way back
    to the pool from there), not held by a request."""
    parking = _PARKINGS.get(engine)
    return parking.waiting if parking is not None else 0


async def end_transaction(
    engine: AsyncEngine, raw: Any, driver: Any, conn: AsyncConnection | None = None
) -> None:
    """ROLLBACK a read's transaction on the driver and give its connection back to the
    pool (closing SQLAlchemy's `conn` over it, if one was made); dropped instead if that
    fails (closed, a dead server) or is cancelled: in an unknown state, the pool must
    not hand it out again."""
    try:
        await driver.execute("ROLLBACK")
    except BaseException:
        await discard(conn or _wrap(engine, raw))
        if not isinstance(sys.exc_info()[1], Exception):
            raise
    else:
        if conn is not None:
            await conn.close()
        else:
            await checkin(engine, raw)


class RequestDb:
    def __init__(
        self,
        engine: AsyncEngine,
        esco_ids: frozenset[uuid.UUID] | None,
        parking: Parking | None = None,
    ) -> None:
        self._engine = engine
        self._parking = parking
        # Row-level security's view of the viewer, set in every transaction.
        self._tenant = {"esco_ids": tenant_setting(esco_ids)}
        # The pool's connection, checked out without SQLAlchemy's Connection around it
        # (that layer cost a small read ~100 µs of CPU a request, bench/README.md);
        # _conn is made on it only for the statements SQLAlchemy runs (rows, scalar).
        self._raw: Any = None
        self._conn: AsyncConnection | None = None
        # The asyncpg connection under _raw: our transaction, db/direct.py's reads.
        self._driver: Any = None
        self._lock = asyncio.Lock()
        self._finished = False
        # A statement on the read connection was interrupted or lost the server.
        self._broken = False
        # A standby (db/replica.py): set by `route`, for the requests that may use it.
        self._replicas: Replicas | None = None
        self._principal = ""
        self._on_replica = False

    def route(self, replicas: Replicas, principal: str, *, query: bool) -> None:
        """Reads of a query may come from the standby (after `principal`'s own writes
        have reached it); a mutation's stay on the primary and its writes are noted."""
        self._replicas, self._principal, self._on_replica = replicas, principal, query

    def fresh(self, esco_ids: frozenset[uuid.UUID] | None) -> RequestDb:
        """A new request's access on the same engine (subscriptions: one per event)."""
        return RequestDb(self._engine, esco_ids, self._parking)

    async def _connection(self) -> Any:
        """The driver's connection, inside the request's read transaction."""
        if self._finished:
            # A resolver still running after its response was sent (graphql-core stops
            # waiting for siblings of a failed non-null field) must not take a
            # connection that nobody would give back.
            raise RequestFinished("the request's database access is closed")
        if self._raw is None:
            try:
                self._raw, self._driver = await self._begin()
            except BaseException as error:
                # A connection that died under our BEGIN (the database restarted since
                # it was pooled): nothing ran yet, so a fresh connection may try again.
                if not (isinstance(error, Exception) and faults.is_broken_connection(error)):
                    raise
                self._raw, self._driver = await self._begin()
        return self._driver

    async def _sqlalchemy(self) -> AsyncConnection:
        """SQLAlchemy's connection on the read connection (made once, on first use)."""
        await self._connection()
        if self._conn is None:
            self._conn = _wrap(self._engine, self._raw)
        return self._conn

    def rescope(self, esco_ids: frozenset[uuid.UUID] | None) -> None:
        """The ESCOs of the request's later transactions (after a mutation linked the
        viewer's identity); refused while a read holds the old scope."""
        if self._raw is not None:
            raise RuntimeError("cannot change the scope of an open read")
        self._tenant = {"esco_ids": tenant_setting(esco_ids)}

    async def _begin(self) -> tuple[Any, Any]:
        if self._replicas is not None and self._on_replica:
            return await self._begin_routed(self._replicas)
        # A parked read's connection (its ROLLBACK sent with this BEGIN), else the pool's.
        parked = self._parking.take() if self._parking is not None else None
        raw = parked[0] if parked is not None else await checkout(self._engine)
        try:
            # The transaction is ours, not SQLAlchemy's: opened with the tenant
            # setting in one round trip, ended by _end_read.
            driver: Any = raw.driver_connection
            count_statement()
            await driver.execute(
                begin_read(self._tenant["esco_ids"], after_rollback=parked is not None)
            )
        except BaseException:
            # Cancelled or failed with our BEGIN perhaps run: SQLAlchemy knows of no
            # transaction to end, so this connection must not go back to the pool.
            await discard(_wrap(self._engine, raw))
            raise
        return raw, driver

    async def _begin_routed(self, replicas: Replicas) -> tuple[Any, Any]:
        """The same transaction on the connection db/replica.py chose (the standby's,
        or the primary's when the viewer's own write is not there yet). It comes as
        SQLAlchemy's connection, so that one is kept as _conn and closed by _end_read."""
        conn = await replicas.connect(self._principal)
        try:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            count_statement()
            await driver.execute(begin_read(self._tenant["esco_ids"]))
        except BaseException:
            await discard(conn)
            raise
        self._conn = conn
        return raw, driver

    @contextlib.asynccontextmanager
    async def _statement(self) -> AsyncIterator[None]:
        """Marks the read connection broken when a statement on it is interrupted or
        loses the server: it is then dropped, never rolled back (db/engine.discard)."""
        try:
            yield
        except BaseException as error:
            if needs_discard(error):
                self._broken = True
            raise

    async def rows(
        self, statement: Executable, params: dict[str, Any] | None = None
    ) -> Sequence[Any]:
        """The statement's rows, as rows.py makes them (typed Any because the GraphQL
        types read their fields straight off them)."""
        async with self._lock:
            conn = await self._sqlalchemy()
            async with self._statement():
                result = await conn.execute(statement, params or {})
                return from_sqlalchemy(result.all(), result.keys())

    async def prepared_rows(self, statement: Executable, params: dict[str, Any]) -> Sequence[Any]:
        """Rows of a statement built once and run on every request (the loaders'),
        read past SQLAlchemy's execution layer where it can be (db/direct.py)."""
        compiled = compiled_for(statement, self._engine.dialect)
        if compiled is None:
            return await self.rows(statement, params)
        async with self._lock:
            await self._connection()
            count_statement()
            async with self._statement():
                records = await self._driver.fetch(compiled.sql, *compiled.arguments(params))
            return compiled.rows(records)

    async def scalar(self, statement: Executable, params: dict[str, Any] | None = None) -> Any:
        async with self._lock:
            conn = await self._sqlalchemy()
            async with self._statement():
                return (await conn.execute(statement, params or {})).scalar()

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A read-write transaction for one mutation, committed when the block ends
        without an exception. The read snapshot is dropped first, so what the payload
        reads afterwards includes what the mutation wrote."""
        async with self._lock:
            await self._end_read()
            async with transaction(self._engine, self._tenant) as conn:
                yield conn
            if self._replicas is not None:
                await self._replicas.wrote(self._principal)

    async def end_snapshot(self) -> None:
        """Drop the read snapshot: later reads see what has been committed since (a
        billing run's, written on connections of its own)."""
        async with self._lock:
            await self._end_read()

    async def close(self) -> None:
        """End the request's database access; later reads are refused."""
        async with self._lock:
            self._finished = True
            await self._end_read()

    async def _end_read(self) -> None:
        if self._raw is not None:
            raw, conn, driver = self._raw, self._conn, self._driver
            self._raw = self._conn = self._driver = None
            broken, self._broken = self._broken, False
            if broken:
                await discard(conn or _wrap(self._engine, raw))
                return
            # Read-only work: ending the transaction is all that is needed, and the next
            # read may do it (Parking).
            if conn is None and self._parking is not None and self._parking.park(raw, driver):
                return
            await end_transaction(self._engine, raw, driver, conn)


def _wrap(engine: AsyncEngine, raw: Any) -> AsyncConnection:
    """SQLAlchemy's connection over a checked-out pool connection: in autocommit, since
    the transaction is the request's own (BEGIN sent on the driver)."""
    sync = Connection(engine.sync_engine, raw).execution_options(isolation_level="AUTOCOMMIT")
    return AsyncConnection(engine, sync)
