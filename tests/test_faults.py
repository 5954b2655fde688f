"""Database faults, through HTTP against the real server (uvicorn in a subprocess) and
a PostgreSQL of the test's own (tests/support/private_pg.py; never the shared server), which is
restarted, crashed, stopped and frozen while payments and reads run.

Each numbered defect of issue 16 that is about faults has its regression test here:
3 (stale pooled connections after a restart), 4 (credential checks in an outage),
5 (client-side timeouts with the database frozen), 7 (outages and timeouts told apart
from bugs, in every path), 10 (the request's running-time cap, reads cancelled when the
client hangs up, JSON at shutdown) and 11 (one log line per failure in an outage).
`test_payments_and_reads_survive_every_fault` is the standing fault-injection run.

Marked `faults`: `.ci/run` runs them once (they do not depend on DATABASE_URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import websockets

from flows_graphql.auth.tokens import issue_token
from flows_graphql.config import Settings
from flows_graphql.db.engine import create_engine
from flows_graphql.db.migrate import upgrade
from flows_graphql.faults import TIMEOUT, UNAVAILABLE, classify
from tests.support.factories import EscoData, build_esco
from tests.support.private_pg import PrivatePostgres, binaries, free_port, private_postgres

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(binaries() is None, reason="no PostgreSQL binaries to run a private one"),
]

ROOT = Path(__file__).resolve().parent.parent
SECRET = "faults-secret-" + "x" * 32
# The main server's bounds (docs/failures.md): small, so the run is quick.
MAIN_ENV = {
    "FLOWS_STATEMENT_TIMEOUT_MS": "2000",
    "FLOWS_LOCK_TIMEOUT_MS": "800",
    "FLOWS_DB_CONNECT_TIMEOUT_S": "1.5",
    "FLOWS_DB_POOL_TIMEOUT_S": "2",
    "FLOWS_DB_POOL_SIZE": "5",
    "FLOWS_REQUEST_TIMEOUT_S": "4",
    "FLOWS_READYZ_TIMEOUT_S": "1.5",
    "FLOWS_SHUTDOWN_GRACE_S": "3",
}
# The longest any request may take on the main server: its running-time cap plus the
# backstop of its outermost scope (cutoff.py) and some slack for a busy machine.
BOUND_S = 4 + 1.0 + 1.0

VIEWER = "{ viewer { role customer { email accounts { account { accountNumber } } } } }"
ESCOS = "{ escos { nodes { code } } }"
CREATE = """
mutation ($input: CreatePaymentInput!) {
  createPayment(input: $input) { payment { uuid amountPence } userErrors { field message code } }
}
"""
TWO_PAYMENTS = """
mutation ($a: CreatePaymentInput!, $b: CreatePaymentInput!) {
  a: createPayment(input: $a) { payment { uuid } userErrors { code message } }
  b: createPayment(input: $b) { payment { uuid } userErrors { code message } }
}
"""


# --- the database and the servers ----------------------------------------------------


@dataclass
class World:
    pg: PrivatePostgres
    esco: EscoData


class Server:
    """flows-graphql under uvicorn in a subprocess, its log lines kept in a file."""

    def __init__(self, database_url: str, env: dict[str, str], root: Path) -> None:
        self.port = free_port()
        self.log_path = root / f"server-{self.port}.log"
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("FLOWS_")},
            "DATABASE_URL": database_url,
            "FLOWS_JWT_SECRET": SECRET,
            **env,
        }
        self.log = self.log_path.open("w")
        grace = env.get("FLOWS_SHUTDOWN_GRACE_S", "10")
        command = [
            *f"{sys.executable} -m uvicorn flows_graphql.app:create_app_from_env".split(),
            *f"--factory --host 127.0.0.1 --port {self.port}".split(),
            f"--timeout-graceful-shutdown={grace}",
        ]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=environment,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError("the server did not start: " + self.log_path.read_text())

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with private_postgres() as pg:

        async def prepare() -> EscoData:
            settings = Settings(jwt_secret=SECRET)
            engine = create_engine(settings, pg.url)
            try:
                await upgrade(engine)
            finally:
                await engine.dispose()
            conn = await asyncpg.connect(pg.url)
            try:
                return await build_esco(conn, "faulty", customers=12, months=2)
            finally:
                await conn.close()

        yield World(pg, asyncio.run(prepare()))


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[Server]:
    running = Server(world.pg.url, MAIN_ENV, world.pg.root)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture
def db_up(world: World) -> Iterator[PrivatePostgres]:
    """The database, answering again after the test whatever it did to it."""
    yield world.pg
    with contextlib.suppress(Exception):
        world.pg.thaw(world.pg.freeze())
    if not _answers(world.pg):
        with contextlib.suppress(Exception):
            world.pg.start()


def _answers(pg: PrivatePostgres) -> bool:
    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(pg.url, timeout=2)
        except Exception:
            return False
        await conn.close()
        return True

    return asyncio.run(probe()) if not _in_loop() else True


def _in_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def customer_headers(customer_id: uuid.UUID | str) -> dict[str, str]:
    token = issue_token(
        SECRET, sub=f"c-{customer_id}", role="customer", customer_id=str(customer_id)
    )
    return {"Authorization": f"Bearer {token}"}


def admin_headers() -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_token(SECRET, sub="faults", role="admin")}


def payment(world: World, i: int, key: str, amount: int = 100) -> dict[str, Any]:
    return {
        "customerId": str(world.esco.customer_ids[i]),
        "accountId": str(world.esco.account_ids[i]),
        "amountPence": amount,
        "idempotencyKey": key,
    }


async def post(
    http: httpx.AsyncClient, query: str, variables: dict[str, Any] | None, headers: dict[str, str]
) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    return response, time.monotonic() - started


def codes(body: dict[str, Any]) -> list[str]:
    """Every error code in a body: top-level errors and mutation payloads' userErrors."""
    found = [e.get("extensions", {}).get("code") for e in body.get("errors") or []]
    for value in (body.get("data") or {}).values():
        if isinstance(value, dict):
            found += [e["code"] for e in value.get("userErrors") or []]
    return found


async def run_sql(pg: PrivatePostgres, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(pg.url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def payments_with_key(pg: PrivatePostgres, key: str) -> int:
    rows = await run_sql(pg, "SELECT count(*) AS n FROM payments WHERE idempotency_key = $1", key)
    return int(rows[0]["n"])


def assert_unavailable(response: httpx.Response, code: str = UNAVAILABLE) -> dict[str, Any]:
    """A JSON 503 with Retry-After, the code and a request id."""
    assert response.status_code == 503, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    assert int(response.headers["retry-after"]) >= 1
    body: dict[str, Any] = response.json()
    assert code in codes(body), body
    for error in body.get("errors") or []:
        assert error["extensions"]["requestId"] == response.headers["x-request-id"]
        assert "Traceback" not in error["message"] and "asyncpg" not in error["message"]
    return body


# --- defect 3: stale pooled connections after a restart --------------------------------


@pytest.mark.parametrize("how", ["restart", "crash"])
async def test_the_first_requests_after_a_restart_succeed(
    http: httpx.AsyncClient, world: World, db_up: PrivatePostgres, how: str
) -> None:
    # Fill the pool: several connections, all idle when the database goes away.
    headers = customer_headers(world.esco.customer_ids[0])
    warm = await asyncio.gather(*(post(http, VIEWER, None, headers) for _ in range(8)))
    assert all(r.status_code == 200 for r, _ in warm)
    if how == "restart":
        await asyncio.to_thread(db_up.restart, "fast")
    else:
        await asyncio.to_thread(db_up.crash)
        await asyncio.to_thread(db_up.start)
    if how == "crash":
        # The first /readyz, before any request met a stale connection.
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
    # Concurrent first: each takes a pooled connection, all stale (before the fix,
    # one failure was needed to make SQLAlchemy drop them: INTERNAL for several).
    answers = await asyncio.gather(*(post(http, VIEWER, None, headers) for _ in range(10)))
    answers += [await post(http, VIEWER, None, headers) for _ in range(10)]
    assert [r.status_code for r, _ in answers] == [200] * 20, [r.json() for r, _ in answers]
    assert all("errors" not in r.json() for r, _ in answers), [r.json() for r, _ in answers]
    ready = await http.get("/readyz")
    assert ready.status_code == 200, ready.text
    key = f"after-{how}-{uuid.uuid4()}"
    created, _ = await post(http, CREATE, {"input": payment(world, 0, key)}, headers)
    assert created.status_code == 200 and created.json()["data"]["createPayment"]["payment"]
    assert await payments_with_key(db_up, key) == 1


# --- defect 4: credential checks during an outage ----------------------------------------


async def test_credentials_and_requests_answer_503_json_while_the_database_is_stopped(
    http: httpx.AsyncClient, server: Server, world: World, db_up: PrivatePostgres
) -> None:
    known = customer_headers(world.esco.customer_ids[1])
    assert (await post(http, VIEWER, None, known))[0].status_code == 200  # cached now
    await asyncio.to_thread(db_up.stop, "fast")
    lines_before = len(server.lines())
    # A customer token never seen: its customer is looked up in the database.
    unknown_customer = customer_headers(uuid.uuid4())
    # An API key never seen: looked up too.
    unknown_key = {"X-API-Key": f"flows_{uuid.uuid4().hex}_secret"}
    failed = 0
    for query, headers in (
        (VIEWER, unknown_customer),
        (VIEWER, unknown_key),
        (VIEWER, known),
        (ESCOS, admin_headers()),
    ):
        for _ in range(5):
            response, took = await post(http, query, None, headers)
            assert_unavailable(response)
            assert took < 2, took
            failed += 1
    # A mutation: rolled back, its payload says why.
    key = f"stopped-{uuid.uuid4()}"
    response, _ = await post(http, CREATE, {"input": payment(world, 1, key)}, known)
    body = assert_unavailable(response)
    [refused] = body["data"]["createPayment"]["userErrors"]
    assert body["data"]["createPayment"]["payment"] is None
    assert refused["code"] == UNAVAILABLE and refused["field"] is None
    assert "nothing" in refused["message"].lower()
    failed += 1
    ready = await http.get("/readyz")
    assert ready.status_code == 503 and ready.json()["reason"] == "database"
    assert ready.headers["retry-after"] == "1"
    # Defect 11: one line per failure, a traceback only for the first of its kind.
    new = server.lines()[lines_before:]
    failures = [line for line in new if line["level"] in ("warning", "error")]
    tracebacks = [line for line in failures if "exc" in line]
    assert len(failures) <= failed + 2, [f["msg"] for f in failures]
    assert len(tracebacks) <= 4, [(t["msg"], t.get("error")) for t in tracebacks]
    assert all(f.get("code") in (UNAVAILABLE, TIMEOUT) for f in failures), failures
    await asyncio.to_thread(db_up.start)
    assert await payments_with_key(db_up, key) == 0
    # Back: the same unknown key is now a plain 401, the known customer is served.
    assert (await post(http, VIEWER, None, unknown_key))[0].status_code == 401
    assert (await post(http, VIEWER, None, known))[0].status_code == 200


# --- defect 5: client-side timeouts with the database frozen -----------------------------


async def test_a_frozen_database_costs_seconds_not_forever(
    http: httpx.AsyncClient, world: World, db_up: PrivatePostgres
) -> None:
    known = customer_headers(world.esco.customer_ids[2])
    assert (await post(http, VIEWER, None, known))[0].status_code == 200
    family = db_up.freeze()
    try:
        started = time.monotonic()
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and time.monotonic() - started < 2.5
        results = await asyncio.gather(
            post(http, VIEWER, None, known),
            post(http, VIEWER, None, customer_headers(uuid.uuid4())),
            post(http, CREATE, {"input": payment(world, 2, f"frozen-{uuid.uuid4()}")}, known),
        )
        for response, took in results:
            assert_unavailable(response)
            # The command timeout (statement timeout + 1 s = 3 s) or the connect
            # timeout (1.5 s), never the freeze's length.
            assert took < 4.5, took
    finally:
        db_up.thaw(family)
    started = time.monotonic()
    response, _ = await post(http, VIEWER, None, known)
    assert response.status_code == 200 and time.monotonic() - started < 2


# --- defect 7: timeouts told apart from outages and bugs ----------------------------------


async def test_a_lock_timeout_is_timeout_in_queries_and_mutations(
    http: httpx.AsyncClient, world: World, db_up: PrivatePostgres
) -> None:
    i = 3
    known = customer_headers(world.esco.customer_ids[i])
    key = f"locked-{uuid.uuid4()}"
    holder = await asyncpg.connect(db_up.url)
    try:
        async with holder.transaction():
            # createPayment locks its customer FOR UPDATE: it waits, then lock_timeout.
            await holder.execute(
                "SELECT 1 FROM customers WHERE id = $1 FOR UPDATE", world.esco.customer_ids[i]
            )
            response, took = await post(http, CREATE, {"input": payment(world, i, key)}, known)
            body = assert_unavailable(response, TIMEOUT)
            assert body["data"]["createPayment"]["payment"] is None and took < 3
            # A read behind a table lock: lock_timeout again, a top-level TIMEOUT error.
            await holder.execute("LOCK TABLE escos IN ACCESS EXCLUSIVE MODE")
            response, took = await post(http, ESCOS, None, admin_headers())
            body = assert_unavailable(response, TIMEOUT)
            assert body["errors"][0]["extensions"]["code"] == TIMEOUT
    finally:
        await holder.close()
    assert await payments_with_key(db_up, key) == 0
    # The same payment goes through once the lock is gone: TIMEOUT was worth retrying.
    response, _ = await post(http, CREATE, {"input": payment(world, i, key)}, known)
    assert response.json()["data"]["createPayment"]["payment"] is not None


async def test_the_driver_errors_are_classified(db_up: PrivatePostgres) -> None:
    """The driver's own exceptions, from a real server, map to the codes."""
    conn = await asyncpg.connect(db_up.url)
    holder = await asyncpg.connect(db_up.url)
    try:
        with pytest.raises(asyncpg.QueryCanceledError) as cancelled:
            await conn.execute("SET statement_timeout = 100; SELECT pg_sleep(1)")
        assert classify(cancelled.value) == TIMEOUT
        await conn.execute("SET statement_timeout = 0; SET lock_timeout = 100")
        await holder.execute("BEGIN; LOCK TABLE regions IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(asyncpg.LockNotAvailableError) as locked:
            await conn.execute("SELECT * FROM regions")
        assert classify(locked.value) == TIMEOUT
        await holder.execute("ROLLBACK")
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        await holder.execute("SELECT pg_terminate_backend($1)", pid)
        await asyncio.sleep(0.3)  # the server closes the connection
        with pytest.raises(Exception) as gone:
            await conn.execute("SELECT 1")
        assert classify(gone.value) == UNAVAILABLE
        with pytest.raises(OSError) as refused:
            await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{free_port()}/x")
        assert classify(refused.value) == UNAVAILABLE
        assert classify(RuntimeError("a bug")) is None
    finally:
        await holder.close()
        await conn.close()


# --- the standing fault-injection run ----------------------------------------------------


@dataclass
class Tally:
    requests: int = 0
    by_code: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    acknowledged: dict[str, str] = field(default_factory=dict)  # idempotency key -> uuid
    longest: float = 0.0
    # (start, end, ok) of every request, to measure recovery.
    timeline: list[tuple[float, float, bool]] = field(default_factory=list)


async def _writer(
    http: httpx.AsyncClient, world: World, i: int, tally: Tally, stop: asyncio.Event
) -> None:
    headers = customer_headers(world.esco.customer_ids[i])
    n = 0
    while not stop.is_set():
        n += 1
        key = f"soak-{i}-{n}-{uuid.uuid4().hex[:8]}"
        # Retried with the same key until acknowledged (or the run ends): the
        # idempotency key makes a retry after an unknown outcome safe.
        while not stop.is_set():
            started = time.monotonic()
            try:
                response, took = await post(
                    http, CREATE, {"input": payment(world, i, key)}, headers
                )
            except httpx.HTTPError as exc:
                tally.by_code[f"transport:{type(exc).__name__}"] += 1
                tally.timeline.append((started, time.monotonic(), False))
                await asyncio.sleep(0.2)
                continue
            tally.requests += 1
            tally.statuses[response.status_code] += 1
            tally.longest = max(tally.longest, took)
            body = response.json()
            found = codes(body)
            tally.by_code.update(found or ["OK"])
            created = (body.get("data") or {}).get("createPayment") or {}
            if created.get("payment"):
                tally.acknowledged[key] = created["payment"]["uuid"]
                tally.timeline.append((started, time.monotonic(), True))
                break
            tally.timeline.append((started, time.monotonic(), False))
            await asyncio.sleep(0.1)


async def _reader(
    http: httpx.AsyncClient, world: World, i: int, tally: Tally, stop: asyncio.Event
) -> None:
    headers = customer_headers(world.esco.customer_ids[i])
    while not stop.is_set():
        started = time.monotonic()
        try:
            response, took = await post(http, VIEWER, None, headers)
        except httpx.HTTPError as exc:
            tally.by_code[f"transport:{type(exc).__name__}"] += 1
            tally.timeline.append((started, time.monotonic(), False))
            await asyncio.sleep(0.2)
            continue
        tally.requests += 1
        tally.statuses[response.status_code] += 1
        tally.longest = max(tally.longest, took)
        found = codes(response.json())
        tally.by_code.update(found or ["OK"])
        ok = response.status_code == 200 and not found
        tally.timeline.append((started, time.monotonic(), ok))
        await asyncio.sleep(0.05)


def _recovery(timeline: list[tuple[float, float, bool]], back: float, until: float) -> float:
    """Seconds from the database's return to the start of the last failed request
    among those started after it and ended before the next fault (`until`): after
    that, every request succeeded."""
    last_failure = max(
        (start for start, end, ok in timeline if back <= start and end < until and not ok),
        default=None,
    )
    if last_failure is None:
        return 0.0
    return last_failure - back


async def test_payments_and_reads_survive_every_fault(
    server: Server, world: World, db_up: PrivatePostgres
) -> None:
    tally = Tally()
    stop = asyncio.Event()
    pid = server.process.pid
    lines_before = len(server.lines())
    limits = httpx.Limits(max_connections=50)
    events: list[tuple[str, float, float]] = []  # (fault, went down, came back)
    async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as http:
        workers = [
            *(asyncio.create_task(_writer(http, world, 4 + i, tally, stop)) for i in range(4)),
            *(asyncio.create_task(_reader(http, world, 8 + i, tally, stop)) for i in range(4)),
        ]

        async def fault(name: str, down: Any, up: Any, outage: float = 0.0) -> None:
            """Take the database down, keep it down for `outage` s, bring it back."""
            went = time.monotonic()
            state = await asyncio.to_thread(down)
            await asyncio.sleep(outage)
            if state is None:
                await asyncio.to_thread(up)
            else:
                await asyncio.to_thread(up, state)
            events.append((name, went, time.monotonic()))
            await asyncio.sleep(3)  # steady, until the next fault

        await asyncio.sleep(2)
        await fault("restart", lambda: db_up.stop("fast"), db_up.start)
        await fault("crash", db_up.crash, db_up.start)
        await fault("stop 3 s", lambda: db_up.stop("fast"), db_up.start, 3)
        await fault("freeze 4 s", db_up.freeze, db_up.thaw, 4)
        stop.set()
        await asyncio.gather(*workers)
        ended = time.monotonic()

    rows = await run_sql(
        db_up, "SELECT idempotency_key, id FROM payments WHERE idempotency_key LIKE 'soak-%'"
    )
    stored = {r["idempotency_key"]: str(r["id"]) for r in rows}
    lost = {k: v for k, v in tally.acknowledged.items() if stored.get(k) != v}
    duplicates = len(rows) - len(stored)
    recoveries = [
        (name, _recovery(tally.timeline, up, events[n + 1][1] if n + 1 < len(events) else ended))
        for n, (name, _, up) in enumerate(events)
    ]
    print(
        f"\nfault run: {tally.requests} requests, statuses {dict(tally.statuses)}, "
        f"codes {dict(tally.by_code)}, acknowledged writes {len(tally.acknowledged)}, "
        f"payment rows after {len(rows)}, lost {len(lost)}, duplicates {duplicates}, "
        f"longest request {tally.longest:.2f} s, recovery "
        + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in recoveries)
    )
    lines = server.lines()[lines_before:]
    failures = [line for line in lines if line["level"] in ("warning", "error", "critical")]
    tracebacks = Counter(
        f"{line['logger']}:{line.get('error')}" for line in failures if "exc" in line
    )
    print(
        f"log: {len(lines)} lines, {len(failures)} warnings and errors for "
        f"{tally.requests - tally.by_code['OK']} failed requests, tracebacks {dict(tracebacks)}"
    )
    assert not lost, lost
    assert duplicates == 0
    # Defect 11: one line per failed request at most, tracebacks rate-limited.
    assert len(failures) <= tally.requests - tally.by_code["OK"] + 10
    assert sum(tracebacks.values()) <= 10, tracebacks
    assert 500 not in tally.statuses and not any(k.startswith("transport") for k in tally.by_code)
    assert set(tally.by_code) <= {"OK", UNAVAILABLE, TIMEOUT}, tally.by_code
    assert tally.longest < BOUND_S, tally.longest
    assert all(seconds <= 2.0 for _, seconds in recoveries), recoveries
    assert len(tally.acknowledged) > 20 and tally.by_code[UNAVAILABLE] > 0
    assert server.process.poll() is None and server.process.pid == pid


# --- defect 10: the request's running-time cap, hang-ups, shutdown ------------------------

# No lock timeout and a long statement timeout: a lock wait outlasts the request's cap.
CUTOFF_ENV = {
    **MAIN_ENV,
    "FLOWS_STATEMENT_TIMEOUT_MS": "20000",
    "FLOWS_LOCK_TIMEOUT_MS": "0",
    "FLOWS_REQUEST_TIMEOUT_S": "4",
    "FLOWS_EXPORT_TIMEOUT_S": "3",
}


@pytest.fixture(scope="module")
def cutoff_server(world: World) -> Iterator[Server]:
    running = Server(world.pg.url, CUTOFF_ENV, world.pg.root)
    try:
        yield running
    finally:
        running.stop()


async def lock_waiters(pg: PrivatePostgres) -> int:
    rows = await run_sql(
        pg,
        "SELECT count(*) AS n FROM pg_stat_activity"
        " WHERE application_name = 'flows-graphql' AND wait_event_type = 'Lock'",
    )
    return int(rows[0]["n"])


async def until_no_lock_waiters(pg: PrivatePostgres, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await lock_waiters(pg) == 0:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_query_past_the_request_cap_is_stopped_and_answered_timeout(
    cutoff_server: Server, world: World, db_up: PrivatePostgres
) -> None:
    holder = await asyncpg.connect(db_up.url)
    try:
        await holder.execute("BEGIN; LOCK TABLE escos IN ACCESS EXCLUSIVE MODE")
        async with httpx.AsyncClient(base_url=cutoff_server.url, timeout=30) as http:
            response, took = await post(http, ESCOS, None, admin_headers())
        body = assert_unavailable(response, TIMEOUT)
        assert "time limit" in body["errors"][0]["message"]
        assert 4 <= took < 5.5, took
        # Stopped for real: its statement no longer waits for the lock.
        assert await until_no_lock_waiters(db_up, 2)
    finally:
        await holder.close()


async def test_mutations_past_the_cap_report_each_outcome(
    cutoff_server: Server, world: World, db_up: PrivatePostgres
) -> None:
    first, second = f"cap-a-{uuid.uuid4()}", f"cap-b-{uuid.uuid4()}"
    variables = {"a": payment(world, 5, first), "b": payment(world, 6, second)}
    holder = await asyncpg.connect(db_up.url)
    try:
        async with holder.transaction():
            await holder.execute(
                "SELECT 1 FROM customers WHERE id = $1 FOR UPDATE", world.esco.customer_ids[6]
            )
            async with httpx.AsyncClient(base_url=cutoff_server.url, timeout=30) as http:
                response, took = await post(http, TWO_PAYMENTS, variables, admin_headers())
    finally:
        await holder.close()
    # Part of it committed: 200 (repeating the whole request would repeat `a`), each
    # mutation's outcome in the body, Retry-After for the one that did not happen.
    assert response.status_code == 200 and response.headers["retry-after"] == "1"
    data = response.json()["data"]
    assert data["a"]["payment"] is not None and data["a"]["userErrors"] == []
    assert data["b"]["payment"] is None
    assert [e["code"] for e in data["b"]["userErrors"]] == [TIMEOUT]
    assert 4 <= took < 5.5, took
    assert await payments_with_key(db_up, first) == 1
    assert await payments_with_key(db_up, second) == 0


async def test_a_read_is_cancelled_when_its_client_hangs_up(
    cutoff_server: Server, world: World, db_up: PrivatePostgres
) -> None:
    holder = await asyncpg.connect(db_up.url)
    try:
        await holder.execute("BEGIN; LOCK TABLE escos IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=cutoff_server.url, timeout=0.5) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.post("/graphql", json={"query": ESCOS}, headers=admin_headers())
        assert await lock_waiters(db_up) == 1  # still waiting when the client left
        # Gone well before the request's cap (4 s) would have stopped it.
        assert await until_no_lock_waiters(db_up, 2.5)
        assert time.monotonic() - started < 3.5
    finally:
        await holder.close()
    stopped = [line for line in cutoff_server.lines() if line.get("detail") == "disconnected"]
    assert stopped and stopped[-1]["code"] == UNAVAILABLE


async def test_shutdown_answers_in_json_with_each_mutations_outcome(
    world: World, db_up: PrivatePostgres
) -> None:
    shutting = Server(db_up.url, {**CUTOFF_ENV, "FLOWS_REQUEST_TIMEOUT_S": "30"}, world.pg.root)
    first, second = f"down-a-{uuid.uuid4()}", f"down-b-{uuid.uuid4()}"
    variables = {"a": payment(world, 7, first), "b": payment(world, 8, second)}
    holder = await asyncpg.connect(db_up.url)
    try:
        async with holder.transaction():
            await holder.execute(
                "SELECT 1 FROM customers WHERE id = $1 FOR UPDATE", world.esco.customer_ids[8]
            )
            async with httpx.AsyncClient(base_url=shutting.url, timeout=30) as http:
                request = asyncio.create_task(post(http, TWO_PAYMENTS, variables, admin_headers()))
                deadline = time.monotonic() + 10
                while await payments_with_key(db_up, first) == 0:
                    assert time.monotonic() < deadline and not request.done()
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.2)  # `b` waits for the lock now
                signalled = time.monotonic()
                shutting.process.send_signal(signal.SIGTERM)
                response, _ = await request
                answered = time.monotonic() - signalled
    finally:
        await holder.close()
        exited = await asyncio.to_thread(shutting.process.wait, 15)
        shutting.stop()
    # Answered in JSON before uvicorn's grace (3 s) ran out and it cancelled the task.
    assert response.headers["content-type"].startswith("application/json"), response.text
    assert answered < 3, answered
    data = response.json()["data"]
    assert data["a"]["payment"] is not None
    assert data["b"]["payment"] is None
    [stopped] = data["b"]["userErrors"]
    assert stopped["code"] == UNAVAILABLE and "shutting down" in stopped["message"]
    assert response.status_code == 200 and response.headers["retry-after"] == "1"
    assert await payments_with_key(db_up, first) == 1
    assert await payments_with_key(db_up, second) == 0
    # uvicorn ends by raising the signal again once it has shut down cleanly
    # (`flows-graphql serve` turns that into exit 0).
    assert exited in (0, -signal.SIGTERM)
    assert not any("Exception in ASGI" in line.get("msg", "") for line in shutting.lines())


# --- exports: an outage, a client that leaves, a client that stops reading -------------

EXPORT_MONTH = "2023-06"
EXPORT_ROWS = 60_000  # some 9 MB of CSV: more than the sockets' buffers hold


async def test_an_export_in_an_outage_is_a_json_503(
    http: httpx.AsyncClient, world: World, db_up: PrivatePostgres
) -> None:
    url = f"/exports/usage.csv?esco=faulty&month={world.esco.months[0]:%Y-%m}"
    assert (await http.get(url, headers=admin_headers())).status_code == 200
    await asyncio.to_thread(db_up.stop, "fast")
    try:
        for _ in range(3):
            started = time.monotonic()
            response = await http.get(url, headers=admin_headers())
            assert_unavailable(response)
            assert time.monotonic() - started < 3
    finally:
        await asyncio.to_thread(db_up.start)
    assert (await http.get(url, headers=admin_headers())).status_code == 200


async def _many_payments(pg: PrivatePostgres, world: World) -> None:
    rows = await run_sql(
        pg, "SELECT count(*) AS n FROM payments WHERE idempotency_key LIKE 'export-%'"
    )
    if rows[0]["n"] >= EXPORT_ROWS:
        return
    await run_sql(
        pg,
        "INSERT INTO payments (esco_id, customer_id, account_id, amount_pence, status,"
        " scheduled_at, idempotency_key, description)"
        " SELECT $1, $2, $3, 100, 'succeeded', timestamptz '2023-06-10 12:00Z',"
        " 'export-' || g, 'a payment to make the export long enough'"
        " FROM generate_series(1, $4) AS g",
        world.esco.id,
        world.esco.customer_ids[0],
        world.esco.account_ids[0],
        EXPORT_ROWS,
    )


async def _exports_in_transaction(pg: PrivatePostgres) -> int:
    rows = await run_sql(
        pg,
        "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'flows-graphql'"
        " AND xact_start IS NOT NULL AND query LIKE '%FROM payments y%'",
    )
    return int(rows[0]["n"])


async def _until_exporting(pg: PrivatePostgres, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await _exports_in_transaction(pg) == 1:
            return True
        await asyncio.sleep(0.05)
    return False


async def _until_released(pg: PrivatePostgres, within: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if await _exports_in_transaction(pg) == 0:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    return None


async def _start_export(port: int) -> socket.socket:
    """A client that asks for a long export and reads its first bytes (a small receive
    window, so the server soon has to wait for it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    token = admin_headers()["Authorization"]
    request = (
        f"GET /exports/payments.csv?esco=faulty&month={EXPORT_MONTH} HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nAuthorization: {token}\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    first = await asyncio.wait_for(loop.sock_recv(sock, 200), 10)
    assert first.startswith(b"HTTP/1.1 200"), first
    return sock


async def test_an_export_whose_client_leaves_returns_its_connection(
    server: Server, world: World, db_up: PrivatePostgres
) -> None:
    await _many_payments(db_up, world)
    sock = await _start_export(server.port)
    try:
        # The export waits for its client, in its snapshot.
        assert await _until_exporting(db_up, 3)
    finally:
        sock.close()
    took = await _until_released(db_up, 2)
    assert took is not None, "the export's transaction outlived its client"


async def test_an_export_whose_client_stops_reading_ends_at_its_cap(
    cutoff_server: Server, world: World, db_up: PrivatePostgres
) -> None:
    """FLOWS_EXPORT_TIMEOUT_S is 3 s on this server: the snapshot of an export whose
    client stays connected but reads nothing is ended then, the connection returned."""
    await _many_payments(db_up, world)
    started = time.monotonic()
    sock = await _start_export(cutoff_server.port)
    try:
        assert await _until_exporting(db_up, 2)
        took = await _until_released(db_up, 6)
        assert took is not None, "a stalled export holds its snapshot past its cap"
        assert 2.5 < time.monotonic() - started < 5.5
    finally:
        sock.close()
    stopped = [line for line in cutoff_server.lines() if line.get("code") == TIMEOUT]
    assert stopped, cutoff_server.lines()[-5:]
    assert not any("Exception in ASGI" in line.get("msg", "") for line in cutoff_server.lines())


# --- a WebSocket's connection_init in an outage ------------------------------------------


async def _connection_init(server: Server, headers: dict[str, str]) -> tuple[int, str]:
    url = f"ws://127.0.0.1:{server.port}/graphql"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as socket:
        payload = {"Authorization": headers["Authorization"]}
        await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 10)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_connection_init_in_an_outage_is_try_again_later_not_forbidden(
    server: Server, world: World, db_up: PrivatePostgres
) -> None:
    await asyncio.to_thread(db_up.stop, "fast")
    try:
        # A customer token never seen: its customer is looked up in the database.
        code, reason = await _connection_init(server, customer_headers(uuid.uuid4()))
    finally:
        await asyncio.to_thread(db_up.start)
    assert code == 1013, (code, reason)
    assert "try again" in reason
    # Back: a token of nobody is refused as such.
    code, _ = await _connection_init(server, customer_headers(uuid.uuid4()))
    assert code == 4403
