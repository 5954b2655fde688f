"""Rate limits per principal: budgets of cost points, visible on every response,
refused with 429 when spent; shared through Redis when it answers, per process always."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime

import httpx
import pytest
import redis.asyncio as aioredis

from flows_graphql.app import create_app
from flows_graphql.auth.apikeys import create_key
from flows_graphql.auth.viewer import Viewer
from flows_graphql.config import ConfigError, RateLimits, Settings
from flows_graphql.exports import EXPORT_COST
from flows_graphql.limits import Limits, check
from flows_graphql.ratelimit import MemoryStore, RateLimiter, RedisStore
from flows_graphql.schema import schema
from tests.support import factories as f
from tests.support.api import TODAY, asgi_client, bearer
from tests.support.sockets import Subscriber, _refused, feeds_open, serving, token
from tests.support.stores import REDIS_URL, needs_redis

REGIONS = "query Regions { regions { code name } }"
# limits.check's estimate of REGIONS, read back from the cost-only answer below.
VIEWER = "{ viewer { role } }"


@pytest.fixture
def prefix() -> str:
    """Keys of this test only; deleted afterwards (never FLUSHALL: Redis is shared)."""
    return f"flows-test:{uuid.uuid4().hex}:"


@pytest.fixture
async def redis_keys(prefix: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def limited(settings: Settings, **budgets: int) -> Settings:
    limits = RateLimits(
        **{"customer": 1000, "operator": 1000, "partner": 1000, "admin": 1000, **budgets}
    )
    return dataclasses.replace(settings, rate_limits=limits)


@pytest.fixture
async def app_client(engine, database_url):
    """make(settings) → a client of a new app (a new process, as far as budgets go)."""
    made: list[tuple[httpx.AsyncClient, object]] = []

    async def make(settings: Settings) -> httpx.AsyncClient:
        app = create_app(settings, database_url, today=lambda: TODAY)
        client = asgi_client(app, bearer(settings, "admin", sub="rl-admin"))
        made.append((client, app))
        return client

    yield make
    for client, app in made:
        await client.aclose()
        await app.state.engine.dispose()  # type: ignore[attr-defined]


async def post(client: httpx.AsyncClient, query: str, **kw) -> httpx.Response:
    return await client.post("/graphql", json={"query": query}, **kw)


async def cost_of(client: httpx.AsyncClient, query: str, **kw) -> int:
    response = await client.post(
        "/graphql", json={"query": query}, headers={"X-Flows-Cost-Only": "1", **kw}
    )
    return int(response.json()["extensions"]["cost"]["requested"])


async def test_every_response_shows_its_cost_and_what_is_left(settings, app_client):
    client = await app_client(limited(settings, admin=1000))
    first = await post(client, REGIONS)
    cost = first.json()["extensions"]["cost"]
    assert first.status_code == 200 and len(first.json()["data"]["regions"]) == 14
    assert cost["requested"] > 1 and cost["limit"] == 1000
    assert cost["remaining"] == 1000 - cost["requested"]
    assert first.headers["X-RateLimit-Limit"] == "1000"
    assert first.headers["X-RateLimit-Remaining"] == str(cost["remaining"])
    reset = int(first.headers["X-RateLimit-Reset"])
    assert time.time() < reset <= time.time() + 61
    assert datetime.fromisoformat(cost["resetAt"]).timestamp() == reset

    second = await post(client, REGIONS)
    assert second.json()["extensions"]["cost"]["remaining"] == 1000 - 2 * cost["requested"]


async def test_over_budget_is_429_with_retry_after_and_nothing_runs(settings, app_client):
    client = await app_client(limited(settings, admin=100))
    cost = await cost_of(client, REGIONS)
    runs = 100 // cost
    for _ in range(runs):
        assert (await post(client, REGIONS)).status_code == 200
    refused = await post(client, REGIONS)
    body = refused.json()
    assert refused.status_code == 429, body
    assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert "data" not in body
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    assert refused.headers["X-RateLimit-Remaining"] == str(100 - runs * cost)
    # A cheaper request still fits in what is left.
    cheap = await cost_of(client, VIEWER)
    assert cheap <= 100 - runs * cost
    assert (await post(client, VIEWER)).status_code == 200


async def test_a_refused_mutation_writes_nothing(settings, app_client, raw):
    client = await app_client(limited(settings, admin=30))
    mutation = """mutation { createEsco(input: {code: "rl", name: "RL", regionCode: "london"})
      { esco { code } userErrors { code } } }"""
    cost = await cost_of(client, mutation)
    spent = 0
    while spent + cost <= 30:
        assert (await post(client, VIEWER)).status_code == 200
        spent += await cost_of(client, VIEWER)
    response = await post(client, mutation)
    assert response.status_code == 429, response.json()
    assert await raw.fetchval("SELECT count(*) FROM escos WHERE code = 'rl'") == 0


async def test_cost_only_header_answers_without_running(settings, app_client):
    client = await app_client(limited(settings, admin=1000))
    response = await client.post(
        "/graphql", json={"query": REGIONS}, headers={"X-Flows-Cost-Only": "1"}
    )
    body = response.json()
    assert response.status_code == 200
    assert body["data"] is None
    assert body["extensions"]["sqlStatements"] == 0  # nothing ran
    cost = body["extensions"]["cost"]
    # Nothing is spent: the whole budget is left, and the real run costs the same.
    assert cost["remaining"] == 1000
    ran = (await post(client, REGIONS)).json()["extensions"]["cost"]
    assert ran["requested"] == cost["requested"] and ran["remaining"] == 1000 - cost["requested"]


async def test_rate_limit_query_matches_the_headers(settings, app_client):
    client = await app_client(limited(settings, admin=5000))
    await post(client, REGIONS)
    query = "{ rateLimit { limit cost used remaining resetAt windowSeconds } }"
    response = await post(client, query)
    limit = response.json()["data"]["rateLimit"]
    assert limit["limit"] == 5000 and limit["windowSeconds"] == 60
    assert limit["remaining"] == int(response.headers["X-RateLimit-Remaining"])
    assert limit["used"] == 5000 - limit["remaining"]
    assert limit["cost"] == response.json()["extensions"]["cost"]["requested"]
    assert limit["used"] > limit["cost"]  # the regions query was spent before it
    reset = datetime.fromisoformat(limit["resetAt"]).timestamp()
    assert reset == int(response.headers["X-RateLimit-Reset"])


async def test_tiers_and_principals_have_budgets_of_their_own(settings, app_client, raw):
    client = await app_client(limited(settings, admin=1000, operator=400))
    esco = uuid.uuid4()
    op = bearer(settings, "operator", sub="op-1", escos=[str(esco)])
    other_op = bearer(settings, "operator", sub="op-2", escos=[str(esco)])
    mine = await post(client, REGIONS, headers=op)
    assert mine.headers["X-RateLimit-Limit"] == "400"
    left = int(mine.headers["X-RateLimit-Remaining"])
    # Another operator, and the admin, spend budgets of their own.
    assert (await post(client, REGIONS, headers=other_op)).headers["X-RateLimit-Remaining"] == str(
        left
    )
    admin = await post(client, REGIONS)
    assert admin.headers["X-RateLimit-Limit"] == "1000"


async def test_a_partner_key_can_have_its_own_budget(settings, app_client, engine, raw):
    esco = uuid.uuid4()
    await raw.execute(
        "INSERT INTO escos (id, code, name, region_code) VALUES ($1, 'rlp', 'P', 'london')", esco
    )
    async with engine.begin() as conn:
        plain = await create_key(conn, esco, ["read"], "plain")
        big = await create_key(conn, esco, ["read"], "big")
    limits = RateLimits(partner=300, keys={str(big.id): 7000})
    client = await app_client(dataclasses.replace(settings, rate_limits=limits))
    tier = await post(client, REGIONS, headers={"X-API-Key": plain.key, "Authorization": ""})
    own = await post(client, REGIONS, headers={"X-API-Key": big.key, "Authorization": ""})
    assert tier.status_code == own.status_code == 200, (tier.json(), own.json())
    assert tier.headers["X-RateLimit-Limit"] == "300"
    assert own.headers["X-RateLimit-Limit"] == "7000"


async def test_without_redis_each_process_counts_for_itself(settings, app_client):
    one = await app_client(limited(settings, admin=1000))
    two = await app_client(limited(settings, admin=1000))
    spent = (await post(one, REGIONS)).json()["extensions"]["cost"]
    other = (await post(two, REGIONS)).json()["extensions"]["cost"]
    assert spent["remaining"] == other["remaining"] == 1000 - spent["requested"]


@needs_redis
async def test_with_redis_processes_share_one_budget(settings, app_client, prefix, redis_keys):
    shared = dataclasses.replace(limited(settings, admin=1000), redis_url=REDIS_URL)
    shared = dataclasses.replace(shared, redis_prefix=prefix)
    one = await app_client(shared)
    two = await app_client(shared)
    cost = (await post(one, REGIONS)).json()["extensions"]["cost"]["requested"]
    after = (await post(two, REGIONS)).json()["extensions"]["cost"]
    assert after["remaining"] == 1000 - 2 * cost
    # The window is a key of ours in Redis, with an expiry.
    keys = [key async for key in redis_keys.scan_iter(match=prefix + "*")]
    assert len(keys) == 1
    assert int(await redis_keys.get(keys[0])) == 2 * cost
    assert 0 < await redis_keys.ttl(keys[0]) <= 61
    # Spent out in one process: refused in the other.
    while (await post(one, REGIONS)).status_code == 200:
        pass
    assert (await post(two, REGIONS)).status_code == 429


@needs_redis
async def test_redis_spending_is_atomic_under_concurrency(prefix, redis_keys):
    limiter = RateLimiter(RateLimits(admin=100), RedisStore(REDIS_URL, prefix))
    viewer = Viewer(role="admin", sub="race")
    now = time.time()
    spends = await asyncio.gather(*(limiter.spend(viewer, 7, now=now) for _ in range(40)))
    await limiter.close()
    assert sum(s.allowed for s in spends) == 100 // 7
    assert max(s.used for s in spends) == (100 // 7) * 7


async def test_unreachable_redis_falls_back_to_this_process():
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    limiter = RateLimiter(RateLimits(admin=10), RedisStore("redis://127.0.0.1:1/0", "x:"))
    viewer = Viewer(role="admin", sub="fallback")
    first = await limiter.spend(viewer, 6)
    second = await limiter.spend(viewer, 6)
    await limiter.close()
    assert first.allowed and first.remaining == 4
    assert not second.allowed


async def test_a_window_refills_when_it_ends():
    limiter = RateLimiter(RateLimits(admin=10, window_s=60), MemoryStore())
    viewer = Viewer(role="admin", sub="window")
    start = 1_800_000_000.0  # a window boundary (a multiple of 60)
    assert (await limiter.spend(viewer, 10, now=start)).allowed
    refused = await limiter.spend(viewer, 1, now=start + 59)
    assert not refused.allowed and refused.reset_at == start + 60
    assert refused.retry_after(now=start + 59) == 1
    assert (await limiter.spend(viewer, 10, now=start + 60)).allowed


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("FLOWS_RATE_LIMIT_KEYS", "not-a-key=5", "FLOWS_RATE_LIMIT_KEYS"),
        ("FLOWS_RATE_LIMIT_CUSTOMER", "lots", "FLOWS_RATE_LIMIT_CUSTOMER must be a whole number"),
        ("FLOWS_RATE_LIMIT_PARTNER", "0", "FLOWS_RATE_LIMIT_PARTNER must be from 1"),
        ("FLOWS_REDIS_URL", "http://cache", "FLOWS_REDIS_URL must be a redis://"),
    ],
)
def test_bad_rate_limit_settings_name_the_variable(monkeypatch, name, value, words):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=words):
        Settings.from_env()


def test_rate_limit_settings_from_the_environment(monkeypatch):
    key = str(uuid.uuid4())
    monkeypatch.setenv("FLOWS_RATE_LIMIT_OPERATOR", "1234")
    monkeypatch.setenv("FLOWS_RATE_LIMIT_WINDOW_S", "30")
    monkeypatch.setenv("FLOWS_RATE_LIMIT_KEYS", f"{key}=99")
    limits = Settings.from_env().rate_limits
    assert (limits.operator, limits.window_s, limits.keys) == (1234, 30, {key: 99})
    assert limits.budget("partner", key) == 99
    assert limits.budget("partner", "another") == limits.partner == 100_000


# --- what reaches the API besides POST /graphql: exports and WebSockets ----------------


async def test_exports_spend_their_cost_and_are_refused_429_over_budget(settings, app_client, raw):
    await f.build_esco(raw, "rlx", customers=1, months=1)
    client = await app_client(limited(settings, admin=2 * EXPORT_COST + 10))
    url = "/exports/usage.csv?esco=rlx&month=2024-01"
    for left in (EXPORT_COST + 10, 10):
        response = await client.get(url)
        assert response.status_code == 200, response.text
        assert response.headers["X-RateLimit-Remaining"] == str(left)
    refused = await client.get(url)
    assert refused.status_code == 429, refused.text
    [error] = refused.json()["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    # Refused before anything ran: two exports audited, not three.
    assert await raw.fetchval("SELECT count(*) FROM audit_log WHERE action = 'exportCsv'") == 2
    # One budget: the GraphQL requests of the same principal see what is left.
    assert (await post(client, VIEWER)).headers["X-RateLimit-Remaining"] == str(
        10 - await cost_of(client, VIEWER)
    )


async def test_websocket_connections_and_subscriptions_spend_the_same_budget(
    settings, database_url, engine, raw
):
    """A connection costs 1 point, each `subscribe` its document's cost: a subscription
    over the budget is an `error` (RATE_LIMITED, retryAfter) on the open socket; a
    connection over it is closed with 4429, never accepted."""
    subscription = "subscription { events { id type } }"
    verdict = check(subscription, {}, None, Limits(), schema._schema)
    assert verdict is not None and verdict.cost > 1
    budget = 1 + verdict.cost
    customer = await _customer(raw)
    ann = token(settings, "customer", customer_id=str(customer))
    async with serving(limited(settings, customer=budget), database_url) as (url, app):
        async with Subscriber.connect(url, ann) as sub:
            await sub.subscribe(subscription)
            await feeds_open(app, 1)
            second = await sub.subscribe(subscription)
            refused = await sub.next()
            assert refused["type"] == "error" and refused["id"] == second, refused
            [error] = refused["payload"]
            assert error["extensions"]["code"] == "RATE_LIMITED"
            assert 1 <= error["extensions"]["retryAfter"] <= 61
            assert len(app.state.broker.feeds) == 1  # the first one still runs
        code, reason = await _refused(url, ann)
        assert code == 4429 and "retry in" in reason, (code, reason)
        # Over HTTP the same principal has nothing left either.
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as http:
            assert (await post(http, VIEWER, headers=ann)).status_code == 429


async def _customer(raw) -> uuid.UUID:
    esco, customer = uuid.uuid4(), uuid.uuid4()
    await raw.execute(
        "INSERT INTO escos (id, code, name, region_code) VALUES ($1, 'rlws', 'RLWS', 'london')",
        esco,
    )
    await raw.execute(
        "INSERT INTO customers (id, esco_id, email) VALUES ($1, $2, 'ws@example.com')",
        customer,
        esco,
    )
    return customer
