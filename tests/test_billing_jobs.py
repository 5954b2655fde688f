"""Billing runs as jobs, through HTTP: a run over the read path's statement timeout
completes; `background: true` answers RUNNING and its progress is visible while it
runs; a failing or timed-out run is recorded FAILED with its error and leaves the
month as it was; a run interrupted by a killed server (a real subprocess) or left
`running` is marked FAILED at start-up and can be run again; shutdown waits, then
cancels; the CLI takes the same path.

Slow or failing statements are made by a trigger on `monthly_costs` that this module
creates (pg_sleep, or RAISE) in the test's scratch database, and drops again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import date
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from flows_graphql.app import create_app
from flows_graphql.config import Settings
from flows_graphql.services import billing, billing_jobs
from flows_graphql.types.node import parse_id, to_global_id
from tests.support.api import asgi_client, bearer, gql
from tests.support.billing import Community, homes
from tests.support.db import direct_dsn
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parent.parent
MONTH = "2025-03-01"

RUN = """
mutation R($input: RunBillingInput!) {
  runBilling(input: $input) {
    billingRun { id status error customersBilled total progress { billed total } }
    userErrors { field code message }
  }
}"""
RUN_OF = """
query Q($id: ID!) {
  node(id: $id) {
    ... on BillingRun { status error customersBilled total progress { billed total } }
  }
}"""


@dataclasses.dataclass
class Slow:
    """A trigger on monthly_costs: each INSERT statement sleeps, or fails."""

    raw: asyncpg.Connection

    async def sleep(self, seconds: float) -> None:
        await self._make(f"PERFORM pg_sleep({seconds}); RETURN NULL;")

    async def fail(self) -> None:
        await self._make("RAISE EXCEPTION 'boom: a secret detail'; RETURN NULL;")

    async def _make(self, body: str) -> None:
        await self.drop()
        await self.raw.execute(
            f"CREATE FUNCTION test_costs_trigger() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN {body} END $$"
        )
        await self.raw.execute(
            "CREATE TRIGGER test_costs_trigger AFTER INSERT ON monthly_costs"
            " FOR EACH STATEMENT EXECUTE FUNCTION test_costs_trigger()"
        )

    async def drop(self) -> None:
        await self.raw.execute("DROP TRIGGER IF EXISTS test_costs_trigger ON monthly_costs")
        await self.raw.execute("DROP FUNCTION IF EXISTS test_costs_trigger()")


@pytest.fixture
async def slow(raw) -> AsyncIterator[Slow]:
    trigger = Slow(raw)
    try:
        yield trigger
    finally:
        await trigger.drop()


App = Callable[..., contextlib.AbstractAsyncContextManager[tuple[Starlette, httpx.AsyncClient]]]


@pytest.fixture
def app_with(settings: Settings, database_url: str, engine) -> App:
    """An app (billing clock 2025-04-15) with some settings changed, and its client;
    `lifespan=True` runs its start-up and shutdown as a server does."""

    @contextlib.asynccontextmanager
    async def make(
        lifespan: bool = False, **changes: Any
    ) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
        app = create_app(
            dataclasses.replace(settings, **changes), database_url, today=lambda: date(2025, 4, 15)
        )
        async with contextlib.AsyncExitStack() as stack:
            if lifespan:
                await stack.enter_async_context(app.router.lifespan_context(app))
            client = await stack.enter_async_context(asgi_client(app, bearer(settings, "admin")))
            try:
                yield app, client
            finally:
                await app.state.billing_jobs.shutdown(grace_s=5)
        await app.state.engine.dispose()

    return make


async def run(client: httpx.AsyncClient, community: Community, **extra: Any) -> dict[str, Any]:
    body = await gql(
        client, RUN, {"input": {"escoId": str(community.esco_id), "month": MONTH, **extra}}
    )
    assert "errors" not in body, body
    return body["data"]["runBilling"]


async def run_of(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    body = await gql(client, RUN_OF, {"id": run_id})
    assert "errors" not in body, body
    node: dict[str, Any] = body["data"]["node"]
    return node


async def month_costs(raw) -> list[tuple[Any, ...]]:
    rows = await raw.fetch(
        "SELECT monthly_usage_id, billing_run_id, total FROM monthly_costs"
        " WHERE month = $1 ORDER BY monthly_usage_id",
        date.fromisoformat(MONTH),
    )
    return [tuple(r) for r in rows]


async def completed_slow_run(client, raw, slow, count: int) -> dict[str, Any]:
    """A run of `count` homes whose one costs statement takes 2.5 s: it must complete,
    and its answer wait for it."""
    community = await homes(client, raw, count)
    await slow.sleep(2.5)
    started = time.perf_counter()
    result = await run(client, community)
    assert time.perf_counter() - started >= 2.5
    assert result["userErrors"] == []
    done: dict[str, Any] = result["billingRun"]
    assert (done["status"], done["error"], done["customersBilled"]) == ("COMPLETED", None, count)
    assert D(done["total"]) == D("75.23224") * count
    assert done["progress"] == {"billed": count, "total": count}
    return done


async def test_a_run_over_the_read_statement_timeout_completes(app_with, raw, slow):
    # Reads time out after 1 s (room for the set-up's mutations on a busy machine),
    # and asyncpg gives up on a read statement after 2 s.
    async with app_with(statement_timeout_ms=1000) as (_, client):
        await completed_slow_run(client, raw, slow, 3)
        # The control: a read statement of this app is still cut at 1 s.
        async with (
            app_with(statement_timeout_ms=1000) as (app, _),
            app.state.engine.connect() as conn,
        ):
            with pytest.raises(Exception, match="statement timeout"):
                await conn.exec_driver_sql("SELECT pg_sleep(2)")


async def test_a_synchronous_run_longer_than_the_request_timeout_completes(app_with, raw, slow):
    # Requests are cut after 1 s; the run is within its own bound, so the synchronous
    # answer waits for it instead of answering TIMEOUT.
    async with app_with(request_timeout_s=1.0, statement_timeout_ms=5000) as (_, client):
        await completed_slow_run(client, raw, slow, 2)


async def test_a_run_longer_than_its_bound_is_failed_and_the_month_untouched(app_with, raw, slow):
    async with app_with(billing_timeout_s=0.5) as (_, client):
        community = await homes(client, raw, 2)
        first = (await run(client, community))["billingRun"]
        assert first["status"] == "COMPLETED"
        before = await month_costs(raw)
        assert len(before) == 2
        await slow.sleep(2)
        result = await run(client, community)
        assert result["userErrors"] == []
        failed = result["billingRun"]
        assert failed["status"] == "FAILED"
        assert failed["error"] == billing_jobs.TIMED_OUT.format(seconds=0.5)
        assert failed["id"] != first["id"]
        # Stored, not only answered; the month keeps the first run's costs.
        assert await run_of(client, failed["id"]) == {k: v for k, v in failed.items() if k != "id"}
        assert await month_costs(raw) == before
        await slow.drop()
        again = (await run(client, community))["billingRun"]
        assert again["status"] == "COMPLETED"
        assert await raw.fetchval("SELECT count(DISTINCT billing_run_id) FROM monthly_costs") == 1


async def test_a_failing_run_is_failed_with_its_error_and_audited(app_with, raw, slow):
    async with app_with() as (_, client):
        community = await homes(client, raw, 2)
        await slow.fail()
        body = await gql(client, RUN, {"input": {"escoId": str(community.esco_id), "month": MONTH}})
        assert "errors" not in body, body  # never INTERNAL
        failed = body["data"]["runBilling"]["billingRun"]
        assert failed["status"] == "FAILED"
        assert failed["error"] == billing_jobs.UNEXPECTED
        assert "boom" not in str(body)
        row = await raw.fetchrow(
            "SELECT status, error, finished_at FROM billing_runs WHERE id = $1",
            await raw.fetchval("SELECT id FROM billing_runs WHERE status = 'failed'"),
        )
        assert (row["status"], row["error"]) == ("failed", billing_jobs.UNEXPECTED)
        assert row["finished_at"] is not None
        assert await month_costs(raw) == []
        assert await raw.fetchval("SELECT count(*) FROM monthly_solar_credits") == 0
        audit = await raw.fetchrow(
            "SELECT action, changes FROM audit_log WHERE entity = 'billing_run'"
        )
        assert audit["action"] == "runBilling" and "failed" in audit["changes"]


async def test_background_run_answers_running_and_shows_its_progress(
    app_with, raw, slow, monkeypatch
):
    monkeypatch.setattr(billing, "BATCH", 2)
    async with app_with() as (_, client):
        community = await homes(client, raw, 6)
        await slow.sleep(0.6)  # each batch of 2 costs: three slow statements
        started = time.perf_counter()
        result = await run(client, community, background=True)
        assert time.perf_counter() - started < 0.6  # answered before the first batch
        assert result["userErrors"] == []
        running = result["billingRun"]
        assert running["status"] == "RUNNING"
        assert running["error"] is None
        # While it runs, the month is taken: a second run is refused at once.
        second = await run(client, community)
        assert [e["code"] for e in second["userErrors"]] == ["RUN_IN_PROGRESS"]
        seen = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = await run_of(client, running["id"])
            seen.append((now["status"], now["progress"]))
            if now["status"] != "RUNNING":
                break
            await asyncio.sleep(0.05)
        assert now["status"] == "COMPLETED", seen
        assert now["progress"] == {"billed": 6, "total": 6}
        assert (now["customersBilled"], D(now["total"])) == (6, D("75.23224") * 6)
        progress = [p["billed"] for s, p in seen if s == "RUNNING" and p is not None]
        assert any(0 < billed < 6 for billed in progress), seen
        assert progress == sorted(progress)
        assert {p["total"] for s, p in seen if p is not None} == {6}
        assert len(await month_costs(raw)) == 6


async def test_runs_left_running_are_failed_at_start_up_unless_still_locked(
    app_with, raw, database_url
):
    async with app_with() as (_, client):
        community = await homes(client, raw, 2)
        done = (await run(client, community))["billingRun"]
        before = await month_costs(raw)
    other = await Community(raw).create("other")
    month = date.fromisoformat(MONTH)
    # A run a crash left behind (no transaction holds its month's lock), and one that
    # another live server process is carrying on (its transaction holds the lock).
    dead = await raw.fetchval(
        "INSERT INTO billing_runs (esco_id, month, status, actor) VALUES ($1, $2, 'running',"
        " 'user:gone') RETURNING id",
        community.esco_id,
        month,
    )
    live = await raw.fetchval(
        "INSERT INTO billing_runs (esco_id, month, status, actor) VALUES ($1, $2, 'running',"
        " 'user:elsewhere') RETURNING id",
        other.esco_id,
        month,
    )
    holder = await asyncpg.connect(direct_dsn(database_url))
    try:
        await holder.execute("BEGIN")
        await holder.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            billing.RUN_LOCK_CLASS,
            billing.run_lock_name(other.esco_id, month),
        )
        async with app_with(lifespan=True) as (_, client):
            marked = await run_of(client, _gid("BillingRun", dead))
            assert (marked["status"], marked["error"]) == ("FAILED", billing.INTERRUPTED)
            assert (await run_of(client, _gid("BillingRun", live)))["status"] == "RUNNING"
            assert await month_costs(raw) == before
            assert (
                await raw.fetchval(
                    "SELECT count(*) FROM audit_log WHERE action = 'billingRunInterrupted'"
                    " AND entity_id = $1",
                    str(dead),
                )
                == 1
            )
            # It can be run again; the earlier completed run stays history.
            again = (await run(client, community))["billingRun"]
            assert again["status"] == "COMPLETED"
            assert again["id"] != done["id"]
    finally:
        await holder.close()


def _gid(kind: str, key: Any) -> str:
    return to_global_id(kind, key)


async def test_shutdown_waits_then_rolls_back_and_fails_the_run(app_with, raw, slow):
    async with app_with() as (app, client):
        community = await homes(client, raw, 2)
        await slow.sleep(3)
        running = (await run(client, community, background=True))["billingRun"]
        assert running["status"] == "RUNNING"
        jobs = app.state.billing_jobs
        assert len(jobs.running) == 1
        started = time.perf_counter()
        await jobs.shutdown(grace_s=0.3)
        assert time.perf_counter() - started < 3  # cancelled, not waited out
        assert jobs.running == []
        stopped = await run_of(client, running["id"])
        assert (stopped["status"], stopped["error"]) == ("FAILED", billing_jobs.STOPPED)
        assert await month_costs(raw) == []


# --- a real server process, killed in the middle of a run ------------------------------


class Server:
    """`flows-graphql serve` on the test database, in its own process group."""

    def __init__(self, database_url: str, settings: Settings, tmp: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "FLOWS_JWT_SECRET": settings.jwt_secret or "",
            "FLOWS_DATA_DIR": str(tmp),
        }
        self.log = tmp / f"server-{self.port}.log"
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "flows_graphql.cli",
                "serve",
                "--port",
                str(self.port),
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                assert self.process.returncode is None, self.log.read_text()[-2000:]
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise AssertionError("server not ready: " + self.log.read_text()[-2000:])

    async def kill(self, sig: int = signal.SIGKILL) -> None:
        """Only this server's process group: the one it was started in."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            await asyncio.wait_for(self.process.wait(), 20)


async def test_a_server_killed_mid_run_leaves_a_run_failed_at_its_next_start(
    app_with, raw, slow, settings, database_url, tmp_path
):
    async with app_with() as (_, client):
        community = await homes(client, raw, 2)
    await slow.sleep(3)
    server = Server(database_url, settings, tmp_path)
    run_input = {"escoId": str(community.esco_id), "month": MONTH}
    try:
        await server.start()
        async with httpx.AsyncClient(
            base_url=server.url, headers=bearer(settings, "admin"), timeout=30
        ) as http:

            async def post(query: str, variables: dict[str, Any]) -> dict[str, Any]:
                response = await http.post(
                    "/graphql", json={"query": query, "variables": variables}
                )
                body: dict[str, Any] = response.json()
                assert "errors" not in body, body
                return body["data"]

            data = await post(RUN, {"input": {**run_input, "background": True}})
            running = data["runBilling"]["billingRun"]
            assert running["status"] == "RUNNING"
            await asyncio.sleep(0.5)  # inside the slow INSERT
            await server.kill()
            # Nobody is left to say otherwise.
            assert await raw.fetchval("SELECT status FROM billing_runs") == "running"
            await server.start()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                now = (await post(RUN_OF, {"id": running["id"]}))["node"]
                if now["status"] != "RUNNING":
                    break
                await asyncio.sleep(0.2)
            assert (now["status"], now["error"]) == ("FAILED", billing.INTERRUPTED)
            assert await month_costs(raw) == []
            await slow.drop()
            again = (await post(RUN, {"input": run_input}))["runBilling"]["billingRun"]
            assert again["status"] == "COMPLETED"
            assert again["progress"] == {"billed": 2, "total": 2}
            assert len(await month_costs(raw)) == 2
    finally:
        await server.kill(signal.SIGTERM)


# --- the CLI ----------------------------------------------------------------------------


async def test_cli_billing_run_takes_the_same_path_and_shows_progress(
    app_with, raw, settings, database_url, tmp_path
):
    async with app_with() as (_, client):
        community = await homes(client, raw, 3)
    env = {**os.environ, "DATABASE_URL": database_url, "FLOWS_DATA_DIR": str(tmp_path)}
    command = [
        sys.executable,
        "-m",
        "flows_graphql.cli",
        "billing",
        "run",
        "--esco",
        "sunny",
        "--month",
        MONTH[:7],
    ]
    done = await asyncio.to_thread(
        subprocess.run, command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "3/3 meters" in done.stderr
    assert "billed sunny 2025-03: 3 customers, total 225.70 GBP, 0 meters skipped" in done.stdout
    row = await raw.fetchrow(
        "SELECT status, progress_billed, progress_total, actor FROM billing_runs"
    )
    assert tuple(row) == ("completed", 3, 3, "system")
    # A month being billed elsewhere: refused like the API refuses it.
    holder = await asyncpg.connect(direct_dsn(database_url))
    try:
        await holder.execute("BEGIN")
        await holder.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            billing.RUN_LOCK_CLASS,
            billing.run_lock_name(community.esco_id, date.fromisoformat(MONTH)),
        )
        busy = await asyncio.to_thread(
            subprocess.run, command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
        )
    finally:
        await holder.close()
    assert busy.returncode == 1
    assert "RUN_IN_PROGRESS" in busy.stderr


async def test_a_rerun_updates_the_month_in_place_and_drops_what_it_no_longer_bills(app_with, raw):
    async with app_with() as (_, client):
        community = await homes(client, raw, 3)
        await community.home(4, occupied=False, solar_kw="2")  # a credit, no cost
        first = (await run(client, community))["billingRun"]
        costs = await raw.fetch("SELECT id, monthly_usage_id, customer_id FROM monthly_costs")
        assert len(costs) == 3
        assert await raw.fetchval("SELECT count(*) FROM monthly_solar_credits") == 2
        # Home 3's occupier loses their tariff (skipped now); home 4's panels go.
        gone = community.customers[2]
        await raw.execute("DELETE FROM customer_tariffs WHERE customer_id = $1", gone)
        await raw.execute(
            "DELETE FROM solar_installation WHERE property_id = $1", community.properties[3]
        )
        second = (await run(client, community))["billingRun"]
        assert second["customersBilled"] == 2
        after = await raw.fetch(
            "SELECT id, monthly_usage_id, customer_id, billing_run_id FROM monthly_costs"
        )
        assert {r["customer_id"] for r in after} == set(community.customers[:2])
        assert {r["billing_run_id"] for r in after} == {
            await raw.fetchval("SELECT id FROM billing_runs WHERE id <> $1", _uuid(first["id"]))
        }
        # Costs billed again keep their ids.
        kept = {r["monthly_usage_id"]: r["id"] for r in costs if r["customer_id"] != gone}
        assert {r["monthly_usage_id"]: r["id"] for r in after} == kept
        credits = await raw.fetch("SELECT property_id, billing_run_id FROM monthly_solar_credits")
        assert [r["property_id"] for r in credits] == [community.properties[0]]
        assert D(second["total"]) == D("75.23224") * 2


def _uuid(gid: str) -> Any:
    return parse_id(gid, "BillingRun")
