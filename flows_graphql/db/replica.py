"""Reads on a streaming standby (FLOWS_DATABASE_REPLICA_URL), writes on the primary.

Decision (docs/scaling.md, "Reads on a replica"):
- only GraphQL queries read from the standby; mutations (and the payloads they read
  back), subscriptions, the event broker, credential checks, exports and billing runs
  stay on the primary;
- read-your-writes: after a principal's mutation commits, the primary's WAL position
  is remembered for that principal. Its next read waits on the standby until replay has
  passed that position, up to FLOWS_REPLICA_WAIT_MS; past it the principal reads from
  the primary until the standby has caught up (no second wait);
- a watcher probes both servers every FLOWS_REPLICA_CHECK_INTERVAL_S: a standby that
  does not answer, is not in recovery (promoted, or a primary named by mistake), or is
  further behind than FLOWS_REPLICA_MAX_LAG_S is left alone, and every read goes to the
  primary, until a probe finds it well again. A standby that refuses a connection is
  left at once, without waiting for the next probe.
The positions are remembered by the process, and in Redis when FLOWS_REDIS_URL names
one, so that every process and host knows of a principal's write (docs/scaling.md).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .. import faults, metrics
from ..config import Settings
from .engine import count_statement, create_engine, discard

log = logging.getLogger("flows_graphql.replica")

# A standby that takes longer than this to accept a connection is not worth waiting for:
# the primary answers instead (the primary's own connect timeout stays as configured).
CONNECT_TIMEOUT_S = 1.0
# Between two looks at the standby's replay position while a read waits for it.
POLL_S = 0.005
# Principals whose last write is remembered (a few dozen bytes each); past it the oldest
# is forgotten, which by then the standby has almost surely replayed.
MAX_REMEMBERED = 100_000
# Past any position: a write whose position could not be asked is read back from the
# primary until it is forgotten.
UNKNOWN_LSN = 2**63 - 1

# The standby's states, as /readyz and the log name them. Only IN_USE takes reads.
STARTING = "starting"
IN_USE = "in_use"
DOWN = "down"
LAGGING = "lagging"
NOT_STANDBY = "not_standby"

PRIMARY_LSN = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint"
REPLAYED_LSN = "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint"
STANDBY_STATE = (
    "SELECT pg_is_in_recovery(), (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint,"
    " pg_is_wal_replay_paused()"
)


@dataclasses.dataclass
class _Written:
    lsn: int
    # Forgotten after this (monotonic): by then a standby within its lag bound has it.
    until: float
    # The wait ran out once: read from the primary until the standby has it.
    on_primary: bool = False


# A principal's write position in Redis: kept if it is past the one already there (two
# processes may commit writes of one principal at once), with the window as its expiry.
REMEMBER_SCRIPT = """
local known = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > known then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
"""


class SharedPositions:
    """Write positions in Redis, for the other processes and hosts. A Redis that fails
    is left alone for a while: reads then know only this process's writes."""

    BACKOFF_S = 5.0

    def __init__(self, url: str, prefix: str) -> None:
        import redis.asyncio as aioredis

        self.prefix = prefix + "ryw:"
        self._redis: Any = aioredis.Redis.from_url(
            url, socket_timeout=0.25, socket_connect_timeout=0.25
        )
        self._script: Any = self._redis.register_script(REMEMBER_SCRIPT)
        self._down_until = 0.0

    async def remember(self, principal: str, lsn: int, ttl_s: float) -> None:
        if time.monotonic() >= self._down_until:
            try:
                await self._script(
                    keys=[self.prefix + principal], args=[lsn, max(1, int(ttl_s * 1000))]
                )
            except Exception as error:
                self._failed(error)

    async def written(self, principal: str) -> int | None:
        if time.monotonic() < self._down_until:
            return None
        try:
            value = await self._redis.get(self.prefix + principal)
        except Exception as error:
            self._failed(error)
            return None
        return None if value is None else int(value)

    def _failed(self, error: Exception) -> None:
        self._down_until = time.monotonic() + self.BACKOFF_S
        log.warning(
            "redis unavailable: write positions known per process",
            extra={"error": type(error).__name__},
        )

    async def close(self) -> None:
        await self._redis.aclose()


class Replicas:
    """The standby's engine, its health, and where each read goes."""

    def __init__(self, settings: Settings, primary: AsyncEngine, replica_url: str) -> None:
        self.primary = primary
        self.replica = create_engine(
            dataclasses.replace(
                settings,
                db_connect_timeout_s=min(settings.db_connect_timeout_s, CONNECT_TIMEOUT_S),
            ),
            replica_url,
            api_role=True,
        )
        self.max_lag_s = settings.replica_max_lag_s
        self.wait_s = settings.replica_wait_ms / 1000
        self.interval_s = settings.replica_check_interval_s
        self.state = STARTING
        self.lag_bytes: int | None = None
        self.lag_seconds: float | None = None
        self.replayed: int | None = None
        self.paused = False
        # (monotonic time, the primary's WAL position then), oldest first: how long ago
        # the primary was where the standby's replay is now is the lag in seconds.
        self._history: collections.deque[tuple[float, int]] = collections.deque()
        self._written: collections.OrderedDict[str, _Written] = collections.OrderedDict()
        self._watcher: asyncio.Task[None] | None = None
        self._shared = (
            SharedPositions(settings.redis_url, settings.redis_prefix)
            if settings.redis_url
            else None
        )
        metrics.replica_state(False, None, None)

    # --- where a read goes ----------------------------------------------------------

    async def connect(self, principal: str) -> AsyncConnection:
        """A connection for a query's read snapshot: the standby's when it is in use and
        has what `principal` last wrote, else the primary's. Never fails because of the
        standby."""
        if self.state != IN_USE:
            return await self._primary(self.state)
        written = await self._pending(principal)
        if written is not None and written.on_primary:
            return await self._primary("own_write")
        try:
            conn = await self.replica.connect()
        except faults.Cut:
            raise  # the request's own time ran out, not the standby's fault
        except Exception as error:
            self._leave(DOWN, error)
            return await self._primary(DOWN)
        if written is None:
            metrics.replica_read("replica", "replica")
            return conn
        try:
            caught_up = await self._wait_for(conn, written.lsn)
        except BaseException as error:
            await discard(conn)
            if not isinstance(error, Exception) or isinstance(error, faults.Cut):
                raise
            self._leave(DOWN, error)
            return await self._primary(DOWN)
        if caught_up:
            self._written.pop(principal, None)
            metrics.replica_read("replica", "caught_up")
            return conn
        await conn.close()
        written.on_primary = True
        return await self._primary("own_write")

    async def _primary(self, reason: str) -> AsyncConnection:
        metrics.replica_read("primary", reason)
        return await self.primary.connect()

    async def _wait_for(self, conn: AsyncConnection, lsn: int) -> bool:
        """Whether the standby behind `conn` replays up to `lsn` within the wait bound
        (asked on the connection the read will use, before its snapshot is taken)."""
        driver: Any = (await conn.get_raw_connection()).driver_connection
        deadline = time.monotonic() + self.wait_s
        while True:
            count_statement()
            replayed = await driver.fetchval(REPLAYED_LSN)
            if replayed is not None and replayed >= lsn:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL_S)

    async def _pending(self, principal: str) -> _Written | None:
        """The principal's last write, while the standby may not have it yet: this
        process's, or (when it knows none) another's, from Redis."""
        written = self._written.get(principal)
        if written is None and self._shared is not None:
            lsn = await self._shared.written(principal)
            if lsn is not None:
                written = self._remember(principal, lsn)
        if written is None:
            return None
        if time.monotonic() > written.until or (
            self.replayed is not None and self.replayed >= written.lsn
        ):
            self._written.pop(principal, None)
            return None
        return written

    async def wrote(self, principal: str) -> None:
        """After a mutation of `principal` committed: remember where the primary's WAL
        is now, which is at or past the commit. Never fails the mutation, which has
        committed: without the position, the principal reads from the primary."""
        try:
            lsn = int((await _fetchrow(self.primary, PRIMARY_LSN, counted=True))[0])
        except Exception as error:
            log.warning("write position not known", extra={"error": type(error).__name__})
            lsn, on_primary = UNKNOWN_LSN, True
        else:
            on_primary = False
        self._remember(principal, lsn, on_primary=on_primary)
        if self._shared is not None:
            await self._shared.remember(principal, lsn, self._window_s)

    @property
    def _window_s(self) -> float:
        return self.max_lag_s + 2 * self.interval_s

    def _remember(self, principal: str, lsn: int, *, on_primary: bool = False) -> _Written:
        self._written.pop(principal, None)
        written = self._written[principal] = _Written(
            lsn, time.monotonic() + self._window_s, on_primary
        )
        while len(self._written) > MAX_REMEMBERED:
            self._written.popitem(last=False)
        return written

    # --- the standby's health -------------------------------------------------------

    def _leave(self, state: str, error: BaseException | None = None) -> None:
        if self.state != state:
            log.warning(
                "reads moved to the primary",
                extra={"replica": state, "error": type(error).__name__ if error else None},
            )
        self.state = state
        metrics.replica_state(False, self.lag_bytes, self.lag_seconds)

    def _use(self) -> None:
        if self.state != IN_USE:
            log.info("reads on the replica", extra={"replica": IN_USE})
        self.state = IN_USE
        metrics.replica_state(True, self.lag_bytes, self.lag_seconds)

    async def check(self) -> None:
        """One probe of both servers, and the standby's state from it."""
        now = time.monotonic()
        try:
            async with asyncio.timeout(max(self.interval_s, CONNECT_TIMEOUT_S)):
                primary_lsn = int((await _fetchrow(self.primary, PRIMARY_LSN))[0])
        except Exception:
            # Lag cannot be told without the primary; its own outage is /readyz's.
            return
        self._history.append((now, primary_lsn))
        horizon = now - max(60.0, 4 * self.max_lag_s)
        while len(self._history) > 1 and self._history[0][0] < horizon:
            self._history.popleft()
        try:
            async with asyncio.timeout(max(self.interval_s, CONNECT_TIMEOUT_S)):
                in_recovery, replayed, paused = await _fetchrow(self.replica, STANDBY_STATE)
        except Exception as error:
            self.lag_bytes = self.lag_seconds = None
            self._leave(DOWN, error)
            return
        if not in_recovery or replayed is None:
            self.lag_bytes = self.lag_seconds = None
            self._leave(NOT_STANDBY)
            return
        self.replayed, self.paused = int(replayed), bool(paused)
        self.lag_bytes = max(0, primary_lsn - self.replayed)
        self.lag_seconds = self._seconds_behind(now)
        if self.lag_seconds > self.max_lag_s:
            self._leave(LAGGING)
        else:
            self._use()

    def _seconds_behind(self, now: float) -> float:
        """Since the oldest probe at which the primary was already past the standby's
        replay position (0 when the standby has all the primary had at the last one).
        Unlike now() - pg_last_xact_replay_timestamp(), a quiet primary is not lag."""
        assert self.replayed is not None
        for at, lsn in self._history:
            if lsn > self.replayed:
                return round(now - at, 3)
        return 0.0

    async def _watch(self) -> None:
        while True:
            try:
                await self.check()
            except Exception as error:  # the watcher must outlive any surprise
                log.warning("replica check failed", extra={"error": type(error).__name__})
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self._shared is not None:
            await self._shared.close()
        await self.replica.dispose()

    def status(self) -> dict[str, Any]:
        """The standby as /readyz shows it."""
        return {
            "state": self.state,
            "lagBytes": self.lag_bytes,
            "lagSeconds": self.lag_seconds,
            "replayPaused": self.paused,
            "maxLagSeconds": self.max_lag_s,
        }


async def _fetchrow(engine: AsyncEngine, sql: str, *, counted: bool = False) -> Any:
    conn = await engine.connect()
    try:
        driver: Any = (await conn.get_raw_connection()).driver_connection
        if counted:
            count_statement()
        row = await driver.fetchrow(sql)
    except BaseException:
        await discard(conn)
        raise
    await conn.close()
    return row
