"""The process's one reader of the event log, and the feeds it fills.

One LISTEN connection per process, whatever the number of subscribers (and the same
connection carries the process's other notifications: API key changes). A commit that
wrote events notifies `flows_events`; the broker reads the new rows once (by id, which
is commit order) and offers each to every open feed whose filter takes it. A feed that
falls behind (its queue full) or that starts from an `after:` cursor reads what it
missed from the table itself, so nothing is lost and nothing comes twice (ids only
grow). A lost connection is reconnected with backoff and the log read from where it
stopped; a poll every few seconds covers a notification lost with it.

The broker reads as the database owner (it serves every ESCO of the process); what a
subscriber may see is decided by each feed's filter and then again, at delivery, by
loading the object through the subscriber's own row-level-secured reads — shared by
every feed of the same reads (`group`, live/sharing.py): the broker tells `shares` how
many feeds of each group queued an event, and each feed tells it when it drops one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncGenerator, Callable, Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from ..db.models.events import EVENTS_CHANNEL
from .sharing import Shares

log = logging.getLogger("flows_graphql.live")

PAGE = 500
COLUMNS = "id, esco_id, type, entity, entity_key, customer_id, account_id, payload, created_at"


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    id: int
    esco_id: uuid.UUID
    type: str
    entity: str
    entity_key: str
    customer_id: uuid.UUID | None
    account_id: uuid.UUID | None
    payload: dict[str, Any]
    created_at: datetime

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> LoggedEvent:
        payload = record["payload"]
        return cls(
            id=record["id"],
            esco_id=record["esco_id"],
            type=record["type"],
            entity=record["entity"],
            entity_key=record["entity_key"],
            customer_id=record["customer_id"],
            account_id=record["account_id"],
            payload=json.loads(payload) if isinstance(payload, str) else payload,
            created_at=record["created_at"],
        )


@dataclass(frozen=True)
class Filter:
    """Which events a feed takes, as SQL for catching up and as a test for live ones."""

    esco_ids: frozenset[uuid.UUID] | None  # None: every ESCO
    kinds: frozenset[str] | None = None  # None: every kind
    customer_id: uuid.UUID | None = None
    account_id: uuid.UUID | None = None
    entity_key: str | None = None

    def takes(self, event: LoggedEvent) -> bool:
        return (
            (self.esco_ids is None or event.esco_id in self.esco_ids)
            and (self.kinds is None or event.type in self.kinds)
            and (self.customer_id is None or event.customer_id == self.customer_id)
            and (self.account_id is None or event.account_id == self.account_id)
            and (self.entity_key is None or event.entity_key == self.entity_key)
        )

    def where(self) -> tuple[str, list[Any]]:
        """The SQL condition (after `id > $1`) and its parameters ($2 on)."""
        parts: list[str] = []
        params: list[Any] = []

        def add(sql: str, value: Any) -> None:
            params.append(value)
            parts.append(sql.format(f"${len(params) + 1}"))

        if self.esco_ids is not None:
            add("esco_id = ANY({}::uuid[])", list(self.esco_ids))
        if self.kinds is not None:
            add("type = ANY({}::text[])", sorted(self.kinds))
        if self.customer_id is not None:
            add("customer_id = {}", self.customer_id)
        if self.account_id is not None:
            add("account_id = {}", self.account_id)
        if self.entity_key is not None:
            add("entity_key = {}", self.entity_key)
        return "".join(f" AND {p}" for p in parts), params


class Feed:
    """One subscription's events, in id order, from its cursor on, each with whether it
    came from the queue (the broker counted it as expected by the feed's `group`) or
    from the table."""

    def __init__(
        self,
        broker: Broker,
        filter: Filter,
        after: int | None,
        size: int,
        group: Hashable | None = None,
    ) -> None:
        self.broker = broker
        self.filter = filter
        self.group = group
        self.queue: asyncio.Queue[LoggedEvent] = asyncio.Queue(maxsize=size)
        self.behind = after is not None  # read the table before the queue
        self.last = after if after is not None else broker.last_id
        self.closed = asyncio.Event()

    def offer(self, event: LoggedEvent) -> bool:
        """Queue the event if the feed takes it; whether it did."""
        if self.behind or event.id <= self.last or not self.filter.takes(event):
            return False
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            # Too slow a reader: drop the queue, catch up from the table.
            self.behind = True
            self.discard()
            return False
        return True

    def discard(self) -> None:
        """Drop what is queued (its shares stop waiting for this feed)."""
        while not self.queue.empty():
            self._left(self.queue.get_nowait())

    def _left(self, event: LoggedEvent) -> None:
        if self.group is not None:
            self.broker.shares.leave((event.id, self.group))

    async def __aiter__(self) -> AsyncGenerator[tuple[LoggedEvent, bool], None]:
        while not self.closed.is_set():
            if self.behind:
                self.behind = False
                # Live events arriving meanwhile are queued; the table covers the rest.
                for event in await self.broker.read_after(self.last, self.filter):
                    if event.id > self.last:
                        self.last = event.id
                        yield event, False
                continue
            queued = await self._next()
            if queued is None:
                continue
            if queued.id > self.last:
                self.last = queued.id
                yield queued, True
            else:  # read from the table already
                self._left(queued)

    async def _next(self) -> LoggedEvent | None:
        if not self.queue.empty():
            # A feed with events waiting (every feed, under load) needs no waiters: two
            # futures and a wait per event were a fifth of a delivery's CPU. It still
            # lets the others run first, or one backlog would hold the loop.
            await asyncio.sleep(0)
            if not self.queue.empty():
                return self.queue.get_nowait()
        getter = asyncio.ensure_future(self.queue.get())
        closer = asyncio.ensure_future(self.closed.wait())
        try:
            done, _ = await asyncio.wait({getter, closer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            getter.cancel()
            closer.cancel()
        return getter.result() if getter in done and not getter.cancelled() else None


class Broker:
    def __init__(
        self,
        dsn: str,
        *,
        poll_seconds: float = 5.0,
        retention: timedelta = timedelta(days=30),
        feed_size: int = 1000,
    ) -> None:
        self.dsn = dsn
        self.poll_seconds = poll_seconds
        self.retention = retention
        self.feed_size = feed_size
        self.last_id = 0
        self.feeds: set[Feed] = set()
        # The reads of each event, shared by the feeds of one group (live/sharing.py).
        self.shares = Shares()
        # Other channels this connection listens on, for whoever asked (API key changes).
        self.channels: dict[str, list[Callable[[str], None]]] = {}
        # Told when the connection comes up (True) and goes down (False).
        self.connected: list[Callable[[bool], None]] = []
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._reader: asyncpg.Pool | None = None

    async def start(self) -> None:
        self._reader = await asyncpg.create_pool(self.dsn, min_size=0, max_size=2, timeout=5)
        self._task = asyncio.create_task(self._run(), name="flows-live-broker")
        # The starting id is the log's end: a new subscription without `after:` gets
        # what commits from now on.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout=5)

    async def stop(self) -> None:
        for feed in list(self.feeds):
            feed.closed.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._reader is not None:
            await self._reader.close()

    def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        """Call `callback(payload)` for each notification on `channel` (before start)."""
        self.channels.setdefault(channel, []).append(callback)

    def open(self, filter: Filter, after: int | None = None, group: Hashable | None = None) -> Feed:
        feed = Feed(self, filter, after, self.feed_size, group)
        self.feeds.add(feed)
        return feed

    def close(self, feed: Feed) -> None:
        feed.closed.set()
        self.feeds.discard(feed)
        feed.discard()

    async def read_after(self, after: int, filter: Filter) -> list[LoggedEvent]:
        """The events after `after` that `filter` takes, up to what the broker has seen
        (later ones reach the feed's queue)."""
        assert self._reader is not None
        where, params = filter.where()
        found: list[LoggedEvent] = []
        upto = max(self.last_id, after)
        while after < upto:
            records = await self._reader.fetch(
                f"SELECT {COLUMNS} FROM events WHERE id > $1{where}"
                f" AND id <= {int(upto)} ORDER BY id LIMIT {PAGE}",
                after,
                *params,
            )
            found.extend(LoggedEvent.from_record(r) for r in records)
            if len(records) < PAGE:
                break
            after = records[-1]["id"]
        return found

    async def oldest_id(self) -> int | None:
        assert self._reader is not None
        value: int | None = await self._reader.fetchval("SELECT min(id) FROM events")
        return value

    def _notified(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        if channel == EVENTS_CHANNEL:
            self._wake.set()
        for callback in self.channels.get(channel, ()):
            callback(payload)

    def _tell(self, up: bool) -> None:
        for callback in self.connected:
            callback(up)

    async def _run(self) -> None:
        delay = 0.2
        first = True
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self.dsn, timeout=5)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                for channel in {EVENTS_CHANNEL, *self.channels}:
                    await conn.add_listener(channel, self._notified)
                self._tell(True)
                if first:
                    self.last_id = await conn.fetchval("SELECT coalesce(max(id), 0) FROM events")
                    first = False
                    self._ready.set()
                delay = 0.2
                swept = 0.0
                while True:
                    await self._drain(conn)
                    loop = asyncio.get_running_loop()
                    if loop.time() - swept > 3600:
                        swept = loop.time()
                        await self._sweep(conn)
                    # asyncio.timeout, not wait_for: on 3.11 a cancellation that meets
                    # the timeout comes out of wait_for as TimeoutError, which this
                    # swallows, and stop() then waits for the task for ever.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.poll_seconds):
                            await self._wake.wait()
                    self._wake.clear()
                    if lost.is_set():
                        raise ConnectionResetError("the listening connection closed")
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("event log reader lost its connection", extra={"error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                self._tell(False)
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=1)

    async def _drain(self, conn: asyncpg.Connection) -> None:
        while True:
            records = await conn.fetch(
                f"SELECT {COLUMNS} FROM events WHERE id > $1 ORDER BY id LIMIT {PAGE}",
                self.last_id,
            )
            for record in records:
                event = LoggedEvent.from_record(record)
                self.last_id = event.id
                groups: dict[Hashable, int] = {}
                for feed in list(self.feeds):
                    if feed.offer(event) and feed.group is not None:
                        groups[feed.group] = groups.get(feed.group, 0) + 1
                # Before any feed can come to it: no await since the offers.
                for group, feeds in groups.items():
                    self.shares.expect((event.id, group), feeds)
            if len(records) < PAGE:
                return

    async def _sweep(self, conn: asyncpg.Connection) -> None:
        """Retention: events older than the configured age go (docs/live-updates.md)."""
        await conn.execute(
            "DELETE FROM events WHERE created_at < now() - $1::interval", self.retention
        )
