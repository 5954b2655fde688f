"""`serve --workers 2` behaves like one server (docs/pooling.md, "Many processes"): a
revoked API key is refused by both workers within a second (the revocation's NOTIFY
reaches every process's listening connection), and a partner's budget is one budget
for both (Redis). Which worker answered is read from each one's metrics file
(PROMETHEUS_MULTIPROC_DIR holds a file per process)."""

from __future__ import annotations

import asyncio
import json
import secrets
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict

from flows_graphql.auth.apikeys import create_key, revoke_key
from flows_graphql.db.engine import create_engine
from flows_graphql.db.migrate import upgrade
from tests.support import factories as f
from tests.support import live
from tests.support.db import direct_dsn, server_url, with_database
from tests.support.net import free_port
from tests.support.stores import HAVE_REDIS, REDIS_URL

VIEWER = {"query": "{ viewer { role subject } }"}
# The partner budget of the rate-limited key: a few viewer queries.
BUDGET = 10


@dataclass
class Workers:
    base_url: str
    metrics_dir: Path
    engine: object
    key_id: uuid.UUID
    key: str
    limited_id: uuid.UUID
    limited: str
    log: Path


SERVE = (sys.executable, "-m", "flows_graphql.cli", "serve")


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def requests_by_pid(directory: Path) -> dict[int, float]:
    """GraphQL requests answered so far, per worker process."""
    counts: dict[int, float] = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        try:
            values = list(MmapedDict.read_all_values_from_file(str(path)))
        except struct.error:
            continue  # a worker's file just created, not written yet
        for key, value, *_ in values:
            if json.loads(key)[1] == "flows_graphql_requests_total":
                counts[pid] = counts.get(pid, 0.0) + value
    return counts


@pytest.fixture(scope="module")
async def workers(settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Workers]:
    server = server_url()
    name = f"flows_workers_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(direct_dsn(server))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = with_database(server, name)
    engine = create_engine(settings, url)
    workdir = tmp_path_factory.mktemp("workers")
    process = None
    try:
        await upgrade(engine)
        raw = await asyncpg.connect(direct_dsn(url))
        try:
            esco = await f.build_esco(raw, "wrk", customers=1, months=1)
        finally:
            await raw.close()
        async with engine.begin() as conn:
            issued = await create_key(conn, esco.id, ["read"], "both workers")
            limited = await create_key(conn, esco.id, ["read"], "one budget")
        port = free_port()
        metrics_dir = workdir / "metrics"
        metrics_dir.mkdir()
        env = live.environment("PROMETHEUS_")
        env.update(
            DATABASE_URL=url,
            FLOWS_JWT_SECRET=secrets.token_hex(32),
            FLOWS_DATA_DIR=str(workdir / "data"),
            PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
            FLOWS_RATE_LIMIT_KEYS=f"{limited.id}={BUDGET}",
            FLOWS_RATE_LIMIT_WINDOW_S="3600",
        )
        if HAVE_REDIS:
            env.update(FLOWS_REDIS_URL=REDIS_URL, FLOWS_REDIS_PREFIX=f"flows:test:{name}:")
        log = workdir / "serve.log"
        command = [*SERVE, "--workers", "2", "--host", "127.0.0.1", "--port", str(port)]
        process = await asyncio.to_thread(start, command, env, log)
        base = f"http://127.0.0.1:{port}"
        ready = await asyncio.to_thread(live._wait_ready, process, f"{base}/readyz", 120)
        assert ready, log.read_text()[-4000:]
        yield Workers(
            base, metrics_dir, engine, issued.id, issued.key, limited.id, limited.key, log
        )
    finally:
        if process is not None:
            await asyncio.to_thread(live._stop, process)
        await engine.dispose()
        admin = await asyncpg.connect(direct_dsn(server))
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def ask(workers: Workers, key: str) -> httpx.Response:
    """One request on a connection of its own, so either worker may take it."""
    async with httpx.AsyncClient(base_url=workers.base_url, timeout=10) as http:
        return await http.post("/graphql", json=VIEWER, headers={"X-API-Key": key})


async def until_both_answered(workers: Workers, key: str, limit: int = 200) -> list[httpx.Response]:
    """Requests until each of the two workers has answered at least one of them."""
    start = requests_by_pid(workers.metrics_dir)
    responses = []
    for _ in range(limit):
        responses.append(await ask(workers, key))
        now = requests_by_pid(workers.metrics_dir)
        grew = [pid for pid, count in now.items() if count > start.get(pid, 0.0)]
        if len(grew) >= 2:
            return responses
    raise AssertionError(f"one worker answered all {limit} requests: {now}")


async def test_a_revoked_key_is_refused_by_both_workers_within_a_second(workers: Workers):
    # Both workers know the key (each caches it for up to a minute).
    for response in await until_both_answered(workers, workers.key):
        assert response.status_code == 200, response.text
        assert response.json()["data"]["viewer"]["subject"] == str(workers.key_id)
    async with workers.engine.begin() as conn:  # type: ignore[attr-defined]
        assert await revoke_key(conn, workers.key_id)
    revoked = time.monotonic()
    await asyncio.sleep(1.0)
    refused = await until_both_answered(workers, workers.key)
    assert time.monotonic() - revoked < 30
    for response in refused:
        assert response.status_code == 401, response.text
        assert "revoked" in response.json()["errors"][0]["message"]


@pytest.mark.skipif(not HAVE_REDIS, reason="no Redis answers on 127.0.0.1:6379")
async def test_both_workers_spend_one_budget(workers: Workers):
    answered = await until_both_answered(workers, workers.limited, limit=200)
    while len(answered) < 40:
        answered.append(await ask(workers, workers.limited))
    cost = answered[0].json()["extensions"]["cost"]["requested"]
    assert cost >= 1
    # By window (a run may cross the end of one): one budget for the two processes,
    # not BUDGET per worker.
    windows: dict[str, list[int]] = {}
    for response in answered:
        windows.setdefault(response.headers["X-RateLimit-Reset"], []).append(response.status_code)
    spent = [codes for codes in windows.values() if 429 in codes]
    assert spent, windows
    for codes in spent:
        allowed = codes.index(429)
        assert allowed == BUDGET // cost, codes
        assert set(codes[allowed:]) == {429}, codes
