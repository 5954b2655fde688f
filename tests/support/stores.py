"""The machine's Redis (127.0.0.1:6379), which tests share and never flush."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_answers() -> bool:
    async def ping() -> bool:
        client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(await client.ping())
        except (OSError, aioredis.RedisError):
            return False
        finally:
            await client.aclose()

    return asyncio.run(ping())


HAVE_REDIS = redis_answers()
needs_redis = pytest.mark.skipif(not HAVE_REDIS, reason="no Redis answers on 127.0.0.1:6379")
