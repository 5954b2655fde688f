"""The scenarios: (a) dashboard and (b) app screen under closed-loop load against each
target, (c) paging through an ESCO's customers, (d) a billing run, (e) a usage import."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg
import httpx

from flows_graphql.auth.tokens import issue_token
from flows_graphql.rules.clock import london_today
from flows_graphql.trusted import sha256_hex
from flows_graphql.types.node import to_global_id

from . import equivalence, floor, queries
from .dataset import DataSet
from .driver import DatabaseCpu, Request, Result, RssMonitor, closed_loop
from .settings import BenchSettings

IMPORT_ROWS = 10_000
HTTP_TIMEOUT = 120.0


class RequestFailed(Exception):
    pass


@dataclass(frozen=True)
class Load:
    concurrency: int
    duration: float
    max_requests: int
    warmup: int


def http_client(concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(limits=limits, timeout=HTTP_TIMEOUT)


def graphql_body(query: str, variables: dict[str, Any], trusted: bool = False) -> bytes:
    """A request's body: the query's text, or with `trusted` its registered id
    (docs/trusted-documents.md; the server loads bench.run's manifest)."""
    if trusted:
        document = {"documentId": f"sha256:{sha256_hex(query)}"}
        return json.dumps({**document, "variables": variables}).encode()
    return json.dumps({"query": query, "variables": variables}).encode()


async def post(
    client: httpx.AsyncClient, url: str, body: bytes, token: str | None = None
) -> dict[str, Any]:
    """One GraphQL request; raises unless it answered 200 with data and no errors."""
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    response = await client.post(url, content=body, headers=headers)
    payload: dict[str, Any] = response.json()
    if response.status_code != 200 or payload.get("errors") or not payload.get("data"):
        raise RequestFailed(f"HTTP {response.status_code}: {json.dumps(payload)[:300]}")
    return payload


def statements(payload: dict[str, Any]) -> int | None:
    count = (payload.get("extensions") or {}).get("sqlStatements")
    return int(count) if count is not None else None


class Tokens:
    """JWTs as `flows-graphql token` issues them, made with the bench server's secret."""

    def __init__(self, settings: BenchSettings, data: DataSet) -> None:
        secret = settings.jwt_secret
        self.operator = issue_token(
            secret, sub="bench-operator", role="operator", escos=[str(data.esco_id)]
        )
        self.customers = [
            issue_token(secret, sub=c.email, role="customer", customer_id=str(c.id))
            for c in data.app_customers
        ]


# --- (a) and (b): reads under load -----------------------------------------------------


@dataclass
class ReadTargets:
    """The request functions of one read scenario, per target, and `answers`: what
    each target returns for request i, reduced to comparable rows."""

    ours: Request
    floor: Request
    postgraphile: Request | None
    answers: Callable[[int], Awaitable[dict[str, equivalence.Shape]]]


def dashboard(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    data: DataSet,
    tokens: Tokens,
    our_url: str,
    postgraphile_url: str | None,
    trusted: bool = False,
) -> ReadTargets:
    variables = {
        "code": data.esco_code,
        "from": data.first_month.isoformat(),
        "to": data.last_month.isoformat(),
    }
    our_body = graphql_body(queries.OUR_DASHBOARD, variables, trusted)
    pg_body = graphql_body(queries.POSTGRAPHILE_DASHBOARD, variables)

    async def ours(i: int) -> int | None:
        return statements(await post(client, our_url, our_body, tokens.operator))

    async def raw(i: int) -> int | None:
        await floor.fetch(pool, floor.DASHBOARD_SQL, data.esco_code, *_months(data))
        return 1

    async def postgraphile(i: int) -> int | None:
        assert postgraphile_url is not None
        await post(client, postgraphile_url, pg_body)
        return None

    async def answers(i: int) -> dict[str, equivalence.Shape]:
        found = {
            "flows-graphql": equivalence.dashboard_from_ours(
                (await post(client, our_url, our_body, tokens.operator))["data"]
            ),
            "SQL floor": equivalence.dashboard_from_floor(
                await floor.fetch(pool, floor.DASHBOARD_SQL, data.esco_code, *_months(data))
            ),
        }
        if postgraphile_url:
            found["PostGraphile"] = equivalence.dashboard_from_postgraphile(
                (await post(client, postgraphile_url, pg_body))["data"]
            )
        return found

    return ReadTargets(ours, raw, postgraphile if postgraphile_url else None, answers)


def app_screen(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    data: DataSet,
    tokens: Tokens,
    our_url: str,
    postgraphile_url: str | None,
    trusted: bool = False,
) -> ReadTargets:
    """Each request is the next customer's screen (200 customers, each with a token)."""
    months = {"from": data.first_month.isoformat(), "to": data.last_month.isoformat()}
    # currentTariff's default day is today in Europe/London: the others are told it.
    today = london_today()
    app_args = (data.first_month, data.last_month, today)
    customers = data.app_customers
    our_bodies = [
        graphql_body(queries.OUR_APP, {"id": to_global_id("Customer", c.id), **months}, trusted)
        for c in customers
    ]
    pg_bodies = [
        graphql_body(
            queries.POSTGRAPHILE_APP, {"id": str(c.id), "today": today.isoformat(), **months}
        )
        for c in customers
    ]

    async def ours(i: int) -> int | None:
        n = i % len(customers)
        return statements(await post(client, our_url, our_bodies[n], tokens.customers[n]))

    async def raw(i: int) -> int | None:
        await floor.fetch(pool, floor.APP_SQL, customers[i % len(customers)].id, *app_args)
        return 1

    async def postgraphile(i: int) -> int | None:
        assert postgraphile_url is not None
        await post(client, postgraphile_url, pg_bodies[i % len(customers)])
        return None

    async def answers(i: int) -> dict[str, equivalence.Shape]:
        n = i % len(customers)
        found = {
            "flows-graphql": equivalence.app_from_ours(
                (await post(client, our_url, our_bodies[n], tokens.customers[n]))["data"]
            ),
            "SQL floor": equivalence.app_from_floor(
                await floor.fetch(pool, floor.APP_SQL, customers[n].id, *app_args)
            ),
        }
        if postgraphile_url:
            found["PostGraphile"] = equivalence.app_from_postgraphile(
                (await post(client, postgraphile_url, pg_bodies[n]))["data"]
            )
        return found

    return ReadTargets(ours, raw, postgraphile if postgraphile_url else None, answers)


def _months(data: DataSet) -> tuple[Any, Any]:
    return data.first_month, data.last_month


async def run_reads(
    scenario: str,
    targets: ReadTargets,
    load: Load,
    our_pid: int,
    postgraphile_pid: int | None,
    settings: BenchSettings,
) -> list[Result]:
    runs: list[tuple[str, Request, int | None]] = [
        ("flows-graphql", targets.ours, our_pid),
        ("SQL floor", targets.floor, None),
    ]
    if targets.postgraphile is not None:
        runs.append(("PostGraphile", targets.postgraphile, postgraphile_pid))
    results = []
    for target, request, pid in runs:
        result = await closed_loop(
            f"{scenario} | {target}",
            request,
            concurrency=load.concurrency,
            duration=load.duration,
            max_requests=load.max_requests,
            warmup=load.warmup,
            server_pid=pid,
            database=DatabaseCpu(settings.maintenance_url, settings.database_name),
        )
        results.append(result)
    return results


# --- (c) paging ------------------------------------------------------------------------


async def paging(
    client: httpx.AsyncClient, data: DataSet, tokens: Tokens, our_url: str, pid: int
) -> Result:
    """Every customer of the big ESCO, 100 a page, one page after the other."""
    result = Result("c) paging 100/page | flows-graphql", concurrency=1)
    after: str | None = None
    seen = 0
    with RssMonitor(pid) as monitor:
        started = time.perf_counter()
        while True:
            body = graphql_body(
                queries.OUR_CUSTOMER_PAGE, {"esco": str(data.esco_id), "after": after}
            )
            t0 = time.perf_counter()
            payload = await post(client, our_url, body, tokens.operator)
            result.latencies.append(time.perf_counter() - t0)
            count = statements(payload)
            if count is not None:
                result.statements.append(count)
            page = payload["data"]["customers"]
            seen += len(page["nodes"])
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        result.seconds = time.perf_counter() - started
    result.peak_rss_bytes = monitor.peak
    result.server_cpu_seconds = monitor.cpu_seconds
    if seen != data.customers:
        result.errors += 1
        result.error_samples.append(f"paged through {seen} customers of {data.customers}")
    return result


# --- (d) billing and (e) import: one timed mutation at a time --------------------------


@dataclass
class Timed:
    name: str
    seconds: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)
    peak_rss_bytes: int = 0
    skipped: str | None = None

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


# The tables a billing run rewrites. A re-run leaves a dead version of every cost and
# credit of the month behind; this machine's PostgreSQL runs with autovacuum off, so
# without a VACUUM they pile up run after run (and benchmark after benchmark, with
# --reuse), and each run is slower than the one before it for that reason alone.
BILLED_TABLES = ("monthly_costs", "monthly_solar_credits")


async def vacuum_billed(settings: BenchSettings) -> None:
    """What autovacuum does between a month's runs on a server that has it on."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(f"VACUUM (ANALYZE) {', '.join(BILLED_TABLES)}")
    finally:
        await conn.close()


async def _timed_mutation(
    client: httpx.AsyncClient, url: str, body: bytes, tokens: Tokens, timed: Timed, name: str
) -> dict[str, Any]:
    """One timed run of the operator's mutation `name`, its time and statement count
    recorded in `timed`: its payload, or RequestFailed with its first userErrors."""
    started = time.perf_counter()
    payload = await post(client, url, body, tokens.operator)
    timed.seconds.append(time.perf_counter() - started)
    outcome: dict[str, Any] = payload["data"][name]
    if outcome["userErrors"]:
        raise RequestFailed(f"{name}: {outcome['userErrors'][:3]}")
    count = statements(payload)
    if count is not None:
        timed.statements.append(count)
    return outcome


async def billing(
    client: httpx.AsyncClient,
    settings: BenchSettings,
    data: DataSet,
    tokens: Tokens,
    our_url: str,
    pid: int,
    runs: int,
) -> Timed:
    """runBilling of the big ESCO's last month (completed, not finalized), `runs` times:
    each run replaces the month's costs, as a re-run does. The billed tables are
    vacuumed first (untimed): (d) starts from the same state whatever ran before it."""
    timed = Timed(f"d) runBilling {data.esco_code} {data.last_month:%Y-%m}")
    await vacuum_billed(settings)
    body = graphql_body(
        queries.RUN_BILLING,
        {"input": {"escoId": str(data.esco_id), "month": data.last_month.isoformat()}},
    )
    with RssMonitor(pid) as monitor:
        for _ in range(runs):
            outcome = await _timed_mutation(client, our_url, body, tokens, timed, "runBilling")
            run = outcome["billingRun"]
            if run["status"] != "COMPLETED":
                raise RequestFailed(f"runBilling: {run['status']}: {run['error']}")
            timed.notes.append(
                f"{run['status']}: {run['customersBilled']} customers, "
                f"{len(run['skipped'])} meters skipped, total {Decimal(run['total']):.2f}"
            )
        timed.notes.append(await _background_billing(client, data, tokens, our_url))
    timed.peak_rss_bytes = monitor.peak
    return timed


async def _background_billing(
    client: httpx.AsyncClient, data: DataSet, tokens: Tokens, our_url: str
) -> str:
    """One more run with `background: true`: answered at once, then followed by its
    progress until it ends (not one of the timed runs)."""
    body = graphql_body(
        queries.RUN_BILLING,
        {
            "input": {
                "escoId": str(data.esco_id),
                "month": data.last_month.isoformat(),
                "background": True,
            }
        },
    )
    started = time.perf_counter()
    run = (await post(client, our_url, body, tokens.operator))["data"]["runBilling"]["billingRun"]
    answered = time.perf_counter() - started
    if run is None or run["status"] != "RUNNING":
        raise RequestFailed(f"background runBilling: {run}")
    seen: list[int] = []
    while True:
        await asyncio.sleep(0.25)
        poll = graphql_body(queries.BILLING_RUN, {"id": run["id"]})
        now = (await post(client, our_url, poll, tokens.operator))["data"]["node"]
        if now["progress"] is not None and now["status"] == "RUNNING":
            seen.append(now["progress"]["billed"])
        if now["status"] != "RUNNING":
            break
    finished = time.perf_counter() - started
    if now["status"] != "COMPLETED":
        raise RequestFailed(f"background runBilling: {now['status']}: {now['error']}")
    steps = sorted(set(seen))
    return (
        f"background: RUNNING answered in {answered * 1000:.0f} ms, COMPLETED after "
        f"{finished:.2f} s; progress seen while running: {len(steps)} distinct values "
        f"({', '.join(map(str, steps[:3]))}{', …' if len(steps) > 3 else ''}) of "
        f"{now['progress']['total']}"
    )


def import_rows(data: DataSet, extra_kwh: int) -> list[dict[str, Any]]:
    """One row per meter for the current month; half name the meter by serial, half by
    id (both ways partner systems use)."""
    rows = []
    month = data.anchor.isoformat()
    for n, meter in enumerate(data.meters[:IMPORT_ROWS]):
        row: dict[str, Any] = {
            "month": month,
            "powerKwh": f"{200 + n % 150 + extra_kwh}.125",
            "heatKwh": f"{90 + n % 60 + extra_kwh}.5",
            "solarKwh": "0" if n % 5 else f"{40 + n % 30}.25",
        }
        if n % 2:
            row["meterId"] = str(meter.id)
        else:
            row["meterSerial"] = meter.serial
        rows.append(row)
    return rows


async def import_usage(
    client: httpx.AsyncClient,
    settings: BenchSettings,
    data: DataSet,
    tokens: Tokens,
    our_url: str,
    pid: int,
) -> Timed:
    """importMonthlyUsage of 10,000 rows: first into an empty month (creates), then the
    same meters with new figures (updates)."""
    count = min(IMPORT_ROWS, len(data.meters))
    timed = Timed(f"e) importMonthlyUsage {count:,} rows {data.anchor:%Y-%m}")
    if not await _mutation_exists(client, our_url, tokens.operator, "importMonthlyUsage"):
        timed.skipped = "the server has no importMonthlyUsage mutation yet"
        return timed
    # The current month starts empty, so the first import creates every row (and a
    # rerun of the benchmark measures the same thing).
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(
            "DELETE FROM monthly_usage u WHERE esco_id = $1 AND month = $2 "
            "AND NOT EXISTS (SELECT FROM monthly_costs c WHERE c.monthly_usage_id = u.id)",
            data.esco_id,
            data.anchor,
        )
    finally:
        await conn.close()
    with RssMonitor(pid) as monitor:
        for extra in (0, 1):
            body = graphql_body(
                queries.IMPORT_USAGE,
                {"input": {"escoId": str(data.esco_id), "rows": import_rows(data, extra)}},
            )
            name = "importMonthlyUsage"
            outcome = await _timed_mutation(client, our_url, body, tokens, timed, name)
            timed.notes.append(
                f"{outcome['importedCount']} imported: {outcome['createdCount']} created, "
                f"{outcome['updatedCount']} updated, {outcome['unchangedCount']} unchanged"
            )
    timed.peak_rss_bytes = monitor.peak
    return timed


async def _mutation_exists(client: httpx.AsyncClient, url: str, token: str, name: str) -> bool:
    body = graphql_body('{ __type(name: "Mutation") { fields { name } } }', {})
    payload = await post(client, url, body, token)
    fields = payload["data"]["__type"]["fields"]
    return any(f["name"] == name for f in fields)
