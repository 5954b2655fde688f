"""Reads on a streaming standby (FLOWS_DATABASE_REPLICA_URL, flows_graphql/db/replica.py),
against a real one: a private primary (tests/support/private_pg.py) and a hot standby made of it
with `pg_basebackup -R`, both on loopback ports.

Which server answered is told by what it answers: with replay paused on the standby, a
row changed on the primary behind the API's back still has its old value there. So a
query that sees the old value was read on the standby, one that sees the new value on
the primary (the standby cannot have it).

Marked `faults` (a PostgreSQL of its own, whatever DATABASE_URL says): `.ci/run` runs
them once. Skipped, with the reason printed, only without PostgreSQL binaries.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from flows_graphql.app import create_app
from flows_graphql.config import ConfigError, Settings
from flows_graphql.db.engine import create_engine
from flows_graphql.db.migrate import upgrade
from tests.support.api import TODAY, bearer
from tests.support.factories import EscoData, build_esco
from tests.support.private_pg import PrivatePostgres, binaries, private_postgres, private_standby
from tests.support.stores import REDIS_URL, needs_redis

T = TypeVar("T")


def needs_postgres(test: T) -> T:
    """Run once in CI (`faults`: a PostgreSQL of its own), skipped only without binaries."""
    skip = pytest.mark.skipif(binaries() is None, reason="no PostgreSQL binaries to run a standby")
    marked: T = pytest.mark.faults(skip(test))
    return marked


SECRET = "replica-secret-" + "x" * 32
# The lag bound: far above what a test takes with replay paused (a busy machine must not
# make the standby `lagging` under a test that expects it in use), except for the test of
# the bound itself.
MAX_LAG_S = 30.0
SMALL_LAG_S = 1.0
WAIT_MS = 200
NAMES = "{ escos { nodes { code name } } }"
RENAME = """
mutation ($input: UpdateEscoInput!) {
  updateEsco(input: $input) { esco { name } userErrors { field code message } }
}
"""


@dataclass
class Cluster:
    primary: PrivatePostgres
    standby: PrivatePostgres
    esco: EscoData


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with private_postgres() as primary:

        async def prepare() -> EscoData:
            engine = create_engine(Settings(jwt_secret=SECRET), primary.url)
            try:
                await upgrade(engine)
            finally:
                await engine.dispose()
            conn = await asyncpg.connect(primary.url)
            try:
                return await build_esco(conn, "replicated", customers=3, months=2)
            finally:
                await conn.close()

        esco = asyncio.run(prepare())
        with private_standby(primary) as standby:
            yield Cluster(primary, standby, esco)


@pytest.fixture
def standby(cluster: Cluster) -> Iterator[PrivatePostgres]:
    """The standby, running and replaying again after the test whatever it did to it."""
    yield cluster.standby
    if not (cluster.standby.pgdata / "postmaster.pid").exists():
        cluster.standby.start()
    cluster.standby.sql("SELECT pg_wal_replay_resume()")


@contextlib.asynccontextmanager
async def api(cluster: Cluster, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app on the primary with the standby as its replica, started as uvicorn would
    (its lifespan: the standby's watcher runs), until it reports the standby in use."""
    config = Settings(
        jwt_secret=SECRET,
        database_replica_url=cluster.standby.url,
        **{
            "replica_max_lag_s": MAX_LAG_S,
            "replica_wait_ms": WAIT_MS,
            "replica_check_interval_s": 0.1,
            "db_pool_size": 3,
            **settings,
        },
    )
    app = create_app(config, cluster.primary.url, today=lambda: TODAY)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http,
    ):
        await until(http, lambda replica: replica["state"] == "in_use")
        yield http


def as_admin(sub: str) -> dict[str, str]:
    return bearer(Settings(jwt_secret=SECRET), "admin", sub=sub)


async def until(http: httpx.AsyncClient, predicate: Any, within: float = 15) -> dict[str, Any]:
    """/readyz's replica entry, once `predicate` holds for it."""
    deadline = time.monotonic() + within
    while True:
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        replica: dict[str, Any] = ready.json()["replica"]
        if predicate(replica):
            return replica
        assert time.monotonic() < deadline, f"replica never got there: {replica}"
        await asyncio.sleep(0.05)


async def esco_name(http: httpx.AsyncClient, sub: str) -> str:
    response = await http.post("/graphql", json={"query": NAMES}, headers=as_admin(sub))
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    (esco,) = body["data"]["escos"]["nodes"]
    name: str = esco["name"]
    return name


async def rename(http: httpx.AsyncClient, cluster: Cluster, sub: str, name: str) -> str:
    variables = {"input": {"escoId": str(cluster.esco.id), "name": name}}
    response = await http.post(
        "/graphql", json={"query": RENAME, "variables": variables}, headers=as_admin(sub)
    )
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    payload = body["data"]["updateEsco"]
    assert payload["userErrors"] == []
    renamed: str = payload["esco"]["name"]
    return renamed


async def name_on(pg: PrivatePostgres, cluster: Cluster) -> str:
    conn = await asyncpg.connect(pg.url)
    try:
        name: str = await conn.fetchval("SELECT name FROM escos WHERE id = $1", cluster.esco.id)
        return name
    finally:
        await conn.close()


async def rename_behind_the_api(cluster: Cluster, name: str) -> None:
    conn = await asyncpg.connect(cluster.primary.url)
    try:
        await conn.execute("UPDATE escos SET name = $1 WHERE id = $2", name, cluster.esco.id)
    finally:
        await conn.close()


def pause(standby: PrivatePostgres) -> None:
    standby.sql("SELECT pg_wal_replay_pause()")
    assert standby.sql("SELECT pg_get_wal_replay_pause_state()") in {"paused", "pause requested"}


async def caught_up(cluster: Cluster) -> None:
    """Until the standby has replayed everything the primary has written so far."""
    target = cluster.primary.sql("SELECT pg_current_wal_lsn()")
    deadline = time.monotonic() + 15
    while cluster.standby.sql(f"SELECT pg_last_wal_replay_lsn() >= '{target}'") != "t":
        assert time.monotonic() < deadline, "the standby did not catch up"
        await asyncio.sleep(0.02)


async def samples(http: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, by name and labels."""
    text = (await http.get("/metrics")).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def reads(found: dict[Any, float], server: str, reason: str) -> float:
    key = ("flows_db_replica_reads_total", (("reason", reason), ("server", server)))
    return found.get(key, 0.0)


# --- routing and read-your-writes ----------------------------------------------------


@needs_postgres
async def test_queries_read_the_standby_mutations_write_the_primary_and_read_their_own(
    cluster: Cluster, standby: PrivatePostgres
) -> None:
    async with api(cluster) as http:
        await rename_behind_the_api(cluster, "Original")
        await caught_up(cluster)
        pause(standby)
        await rename_behind_the_api(cluster, "Changed on the primary")
        # Not yet replayed on the standby: the query that sees "Original" read there.
        assert await esco_name(http, "reader") == "Original"

        before = await samples(http)
        # The mutation commits on the primary (the standby is read-only and paused) and
        # its payload is read back from it.
        assert await rename(http, cluster, "writer", "Renamed by the API") == "Renamed by the API"
        assert await name_on(cluster.primary, cluster) == "Renamed by the API"
        assert await name_on(standby, cluster) == "Original"

        # The writer's next read waits for the standby (paused: in vain, WAIT_MS) and is
        # then read on the primary; a second read goes there at once, without a wait.
        started = time.monotonic()
        assert await esco_name(http, "writer") == "Renamed by the API"
        assert time.monotonic() - started >= WAIT_MS / 1000
        assert await esco_name(http, "writer") == "Renamed by the API"
        # Anyone else still reads the standby.
        assert await esco_name(http, "reader") == "Original"
        after = await samples(http)
        assert reads(after, "primary", "own_write") - reads(before, "primary", "own_write") == 2
        assert reads(after, "replica", "replica") - reads(before, "replica", "replica") == 1

        # Replay resumes: once the standby has the write, the writer reads there again.
        standby.sql("SELECT pg_wal_replay_resume()")
        await caught_up(cluster)
        await until(http, lambda replica: replica["lagBytes"] == 0)
        pause(standby)
        await rename_behind_the_api(cluster, "Changed again on the primary")
        assert await esco_name(http, "writer") == "Renamed by the API"


@needs_postgres
async def test_a_read_after_a_write_waits_for_a_standby_that_replays(
    cluster: Cluster, standby: PrivatePostgres
) -> None:
    async with api(cluster) as http:
        for attempt in range(5):
            before = await samples(http)
            name = f"Renamed {attempt}"
            assert await rename(http, cluster, "writer", name) == name
            # Read at once: on the standby, after it replayed the write (the wait found
            # it there, or the watcher already had), never the old name.
            assert await esco_name(http, "writer") == name
            after = await samples(http)
            on_standby = sum(
                reads(after, "replica", reason) - reads(before, "replica", reason)
                for reason in ("replica", "caught_up")
            )
            assert on_standby == 1
            assert reads(after, "primary", "own_write") == reads(before, "primary", "own_write")


@needs_postgres
@needs_redis
async def test_every_process_knows_of_a_write_through_redis(
    cluster: Cluster, standby: PrivatePostgres
) -> None:
    prefix = f"flows-test-{uuid.uuid4().hex[:12]}:"
    try:
        async with (
            api(cluster, redis_url=REDIS_URL, redis_prefix=prefix) as one,
            api(cluster, redis_url=REDIS_URL, redis_prefix=prefix) as other,
        ):
            await rename_behind_the_api(cluster, "Original")
            await caught_up(cluster)
            pause(standby)
            assert await rename(one, cluster, "writer", "Renamed in one") == "Renamed in one"
            # Another process (another host, behind a load balancer): it ran no
            # mutation, and still reads the writer's write; others read the standby.
            assert await esco_name(other, "writer") == "Renamed in one"
            assert await esco_name(other, "reader") == "Original"
    finally:
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            keys = [key async for key in client.scan_iter(match=prefix + "*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


# --- lag and outages -----------------------------------------------------------------


@needs_postgres
async def test_a_standby_too_far_behind_is_left_until_it_catches_up(
    cluster: Cluster, standby: PrivatePostgres
) -> None:
    async with api(cluster, replica_max_lag_s=SMALL_LAG_S) as http:
        await rename_behind_the_api(cluster, "Before the lag")
        await caught_up(cluster)
        pause(standby)
        await rename_behind_the_api(cluster, "Written while the standby lags")
        replica = await until(
            http, lambda replica: replica["lagBytes"] and replica["lagSeconds"] > 0
        )
        # Behind, within the bound or past it (a busy machine may be slow to look).
        assert (replica["state"] == "in_use") == (replica["lagSeconds"] <= SMALL_LAG_S)
        assert replica["replayPaused"] is True
        found = await samples(http)
        assert found[("flows_db_replica_lag_bytes", ())] >= replica["lagBytes"] > 0

        replica = await until(http, lambda replica: replica["state"] == "lagging")
        assert replica["lagSeconds"] > SMALL_LAG_S and replica["lagBytes"] > 0
        found = await samples(http)
        assert found[("flows_db_replica_in_use", ())] == 0
        assert found[("flows_db_replica_lag_seconds", ())] > SMALL_LAG_S
        # Read on the primary, as the standby does not have it yet.
        assert await esco_name(http, "reader") == "Written while the standby lags"
        assert reads(await samples(http), "primary", "lagging") >= 1

        standby.sql("SELECT pg_wal_replay_resume()")
        replica = await until(
            http, lambda replica: replica["state"] == "in_use" and replica["lagBytes"] == 0
        )
        assert replica["lagSeconds"] == 0
        assert (await samples(http))[("flows_db_replica_in_use", ())] == 1


@needs_postgres
async def test_a_stopped_standby_costs_no_read_and_reads_return_when_it_is_back(
    cluster: Cluster, standby: PrivatePostgres
) -> None:
    async with api(cluster) as http:
        await rename_behind_the_api(cluster, "Before the outage")
        await caught_up(cluster)
        assert await esco_name(http, "reader") == "Before the outage"  # a pooled connection
        standby.stop("fast")
        await rename_behind_the_api(cluster, "During the outage")
        # At once, before any probe noticed: answered from the primary, no error.
        for _ in range(3):
            assert await esco_name(http, "reader") == "During the outage"
        replica = await until(http, lambda replica: replica["state"] == "down")
        assert replica["lagBytes"] is None
        found = await samples(http)
        assert reads(found, "primary", "down") >= 3
        assert found[("flows_db_replica_in_use", ())] == 0

        standby.start()
        await until(http, lambda replica: replica["state"] == "in_use")
        await caught_up(cluster)
        pause(standby)
        await rename_behind_the_api(cluster, "After the outage")
        assert await esco_name(http, "reader") == "During the outage"


# --- configuration -------------------------------------------------------------------


def test_the_replica_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWS_DATABASE_REPLICA_URL", "postgresql://api@standby:5432/flows")
    monkeypatch.setenv("FLOWS_REPLICA_MAX_LAG_S", "3.5")
    monkeypatch.setenv("FLOWS_REPLICA_WAIT_MS", "0")
    found = Settings.from_env()
    assert found.database_replica_url == "postgresql://api@standby:5432/flows"
    assert found.replica_max_lag_s == 3.5 and found.replica_wait_ms == 0
    assert found.replica_check_interval_s == 1.0
    monkeypatch.setenv("FLOWS_DATABASE_REPLICA_URL", "mysql://standby/flows")
    with pytest.raises(ConfigError, match="FLOWS_DATABASE_REPLICA_URL"):
        Settings.from_env()
