"""Rate limits per principal, spent in the cost points of `limits.check`.

Decision (docs/operations.md): each principal — a customer, an operator or admin user,
a partner key — has a budget of cost points per fixed window (60 s by default), set by
its tier and, for partner keys, overridable per key. A request spends its *estimated*
cost before it runs (what it asked for, like Shopify's `requestedQueryCost`; the
estimate is an upper bound, so nothing is refunded afterwards). A request whose cost
is over what is left is refused whole with HTTP 429 and `RATE_LIMITED`; it spends
nothing, and `Retry-After` says when the window turns.

With FLOWS_REDIS_URL the windows live in Redis, spent by one Lua script (read, check,
add, expire — atomic on the server), so every process and every replica share one
budget. Without it, or while Redis does not answer, each process counts for itself:
a limit that holds per process is better than an API that is down with its cache.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from redis.exceptions import RedisError

from .auth.viewer import Viewer
from .config import RateLimits

log = logging.getLogger("flows_graphql.ratelimit")


@dataclass(frozen=True)
class Spend:
    """What one request asked for and what is left of its principal's window."""

    allowed: bool
    requested: int
    limit: int
    used: int
    reset_at: float  # epoch seconds: the window's end

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)

    @property
    def reset_at_iso(self) -> str:
        return _iso(self.reset_at)

    def retry_after(self, now: float | None = None) -> int:
        return max(math.ceil(self.reset_at - (time.time() if now is None else now)), 1)

    def extension(self) -> dict[str, Any]:
        """`extensions.cost` of a response."""
        return {
            "requested": self.requested,
            "remaining": self.remaining,
            "limit": self.limit,
            "resetAt": self.reset_at_iso,
        }

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(int(self.reset_at)),
        }


@functools.lru_cache(maxsize=16)
def _iso(epoch: float) -> str:
    # Every request of a window shares its end: formatted once.
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


class Store(Protocol):
    async def spend(self, key: str, cost: int, limit: int, ttl_s: int) -> tuple[bool, int]:
        """Add `cost` to the window `key` unless that takes it over `limit` (cost 0
        reads it); (whether it was added, the points used after)."""
        ...

    async def close(self) -> None: ...


class MemoryStore:
    """The windows of this process."""

    def __init__(self) -> None:
        self._used: dict[str, tuple[int, float]] = {}

    async def spend(self, key: str, cost: int, limit: int, ttl_s: int) -> tuple[bool, int]:
        now = time.monotonic()
        used, expires = self._used.get(key, (0, 0.0))
        if expires <= now:
            used = 0
        if cost > 0 and used + cost > limit:
            return False, used
        if cost > 0:
            used += cost
            self._used[key] = (used, now + ttl_s)
            if len(self._used) > 10_000:
                self._prune(now)
        return True, used

    def _prune(self, now: float) -> None:
        for key in [k for k, (_, expires) in self._used.items() if expires <= now]:
            del self._used[key]

    async def close(self) -> None:
        self._used.clear()


# KEYS[1] window; ARGV cost, limit, ttl (ms). Returns {added (0/1), used}.
SPEND_SCRIPT = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local cost = tonumber(ARGV[1])
if cost <= 0 then return {1, used} end
if used + cost > tonumber(ARGV[2]) then return {0, used} end
used = redis.call('INCRBY', KEYS[1], cost)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, used}
"""


class RedisStore:
    """Windows in Redis, shared by every process; this process's own while it fails."""

    # After a failure, Redis is left alone this long (each try would cost a timeout).
    BACKOFF_S = 5.0

    def __init__(self, url: str, prefix: str = "flows:rl:") -> None:
        import redis.asyncio as aioredis

        self.prefix = prefix
        self._redis: Any = aioredis.Redis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        self._script: Any = self._redis.register_script(SPEND_SCRIPT)
        self._fallback = MemoryStore()
        self._down_until = 0.0

    async def spend(self, key: str, cost: int, limit: int, ttl_s: int) -> tuple[bool, int]:
        if time.monotonic() >= self._down_until:
            try:
                added, used = await self._script(
                    keys=[self.prefix + key], args=[cost, limit, ttl_s * 1000]
                )
                return bool(added), int(used)
            except (TimeoutError, RedisError, OSError) as exc:
                self._down_until = time.monotonic() + self.BACKOFF_S
                log.warning(
                    "redis unavailable: rate limits counted per process",
                    extra={"error": type(exc).__name__},
                )
        return await self._fallback.spend(key, cost, limit, ttl_s)

    async def close(self) -> None:
        await self._redis.aclose()


TIERS = ("customer", "operator", "partner", "admin")


def principal(viewer: Viewer) -> tuple[str, str]:
    """(tier, key) of whoever asks: a customer, a user (operator or admin), a key."""
    tier = viewer.role if viewer.role in TIERS else "customer"
    return tier, viewer.actor


class RateLimiter:
    def __init__(self, limits: RateLimits, store: Store | None = None) -> None:
        self.limits = limits
        self.store: Store = store or MemoryStore()

    def budget(self, viewer: Viewer) -> int:
        return self.limits.budget(principal(viewer)[0], viewer.sub)

    async def spend(self, viewer: Viewer, cost: int, *, now: float | None = None) -> Spend:
        """Spend `cost` points of the viewer's window (0 only reads it)."""
        window = self.limits.window_s
        now = time.time() if now is None else now
        index = int(now // window)
        limit = self.budget(viewer)
        who = principal(viewer)[1]
        added, used = await self.store.spend(f"{who}:{window}:{index}", cost, limit, window + 1)
        return Spend(added, cost, limit, used, float((index + 1) * window))

    async def close(self) -> None:
        await self.store.close()


def create_limiter(
    limits: RateLimits, redis_url: str | None, prefix: str = "flows:rl:"
) -> RateLimiter:
    store: Store = RedisStore(redis_url, prefix) if redis_url else MemoryStore()
    return RateLimiter(limits, store)
