"""Prometheus metrics: what the API does, scraped at `/metrics`.

Under `serve --workers N` every worker writes its samples to files in
PROMETHEUS_MULTIPROC_DIR (the CLI makes one per start) and a scrape of any worker, or
of the metrics port, sums them: one set for the whole server. That directory must be
in the environment before `prometheus_client` is imported, so nothing imports this
module before the CLI has set it.

Who may scrape (docs/operations.md): FLOWS_METRICS_PORT serves the metrics on a port
of their own (and not on the API's port); FLOWS_METRICS_TOKEN asks for
`Authorization: Bearer <token>` on the API's port; with neither, development serves
them openly and production not at all.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .config import Settings

log = logging.getLogger("flows_graphql.metrics")

REQUESTS = Counter(
    "flows_graphql_requests",
    "GraphQL requests by operation name, type, HTTP status and error code (`none`: no error)",
    ["operation", "type", "status", "code"],
)
LATENCY = Histogram(
    "flows_graphql_request_duration_seconds",
    "Time to answer a GraphQL request, by operation name",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
STATEMENTS = Histogram(
    "flows_graphql_sql_statements",
    "SQL statements one GraphQL operation ran, by operation name",
    ["operation"],
    buckets=(1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144),
)
POOL_CAPACITY = Gauge(
    "flows_db_pool_capacity",
    "Connections the pools may open (pool size plus overflow), summed over processes",
    multiprocess_mode="livesum",
)
POOL_OPEN = Gauge(
    "flows_db_pool_open",
    "Database connections open, summed over processes",
    multiprocess_mode="livesum",
)
POOL_IN_USE = Gauge(
    "flows_db_pool_in_use",
    "Database connections checked out by a request or job, or parked for the next read",
    multiprocess_mode="livesum",
)
POOL_WAITING = Gauge(
    "flows_db_pool_waiting",
    "Requests waiting for a pooled connection (or for a new one to open)",
    multiprocess_mode="livesum",
)
JOBS = Histogram(
    "flows_job_duration_seconds",
    "Billing runs and usage imports: how long they took, by job and outcome",
    ["job", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
# FLOWS_DATABASE_REPLICA_URL (flows_graphql/db/replica.py): every process watches the
# standby itself, so the lag is the largest any live process saw at its last probe.
REPLICA_LAG_BYTES = Gauge(
    "flows_db_replica_lag_bytes",
    "WAL bytes the standby has not replayed yet (unset: not known, standby down)",
    multiprocess_mode="livemax",
)
REPLICA_LAG_SECONDS = Gauge(
    "flows_db_replica_lag_seconds",
    "How long ago the primary was where the standby's replay is now",
    multiprocess_mode="livemax",
)
REPLICA_IN_USE = Gauge(
    "flows_db_replica_in_use",
    "1 while queries read from the standby, 0 while they all go to the primary",
    multiprocess_mode="livemin",
)
REPLICA_READS = Counter(
    "flows_db_replica_reads",
    "Query snapshots by the server they were read on and why (replica, caught_up after a "
    "wait for the client's own write; on the primary: own_write, down, lagging, "
    "not_standby, starting)",
    ["server", "reason"],
)
RATE_LIMITED = Counter(
    "flows_rate_limit_refusals",
    "Requests refused with RATE_LIMITED, by tier",
    ["tier"],
)

# Operation names are chosen by clients: each process labels at most this many
# distinct ones, the rest as `other`, so a client cannot blow up the series count.
MAX_OPERATION_NAMES = 200
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_seen_names: set[str] = set()


def operation_label(name: str | None) -> str:
    if not name:
        return "anonymous"
    if name in _seen_names:
        return name
    if not _NAME.fullmatch(name):
        return "other"
    if len(_seen_names) >= MAX_OPERATION_NAMES:
        return "other"
    _seen_names.add(name)
    return name


# Each request's series, by their label values: `labels()` checks and converts its
# values and takes the metric's lock on every call. The label values are bounded
# (operation names by MAX_OPERATION_NAMES, statuses, codes), so are these.
_request_series: dict[tuple[str, str, int, str | None], Any] = {}
_latency_series: dict[str, Any] = {}
_statement_series: dict[str, Any] = {}


def observe_request(
    operation: str | None, type_: str, status: int, code: str | None, seconds: float
) -> None:
    name = operation_label(operation)
    key = (name, type_, status, code)
    series = _request_series.get(key)
    if series is None:
        series = _request_series[key] = REQUESTS.labels(name, type_, str(status), code or "none")
    series.inc()
    latency = _latency_series.get(name)
    if latency is None:
        latency = _latency_series[name] = LATENCY.labels(name)
    latency.observe(seconds)


def observe_statements(operation: str | None, count: int) -> None:
    name = operation_label(operation)
    series = _statement_series.get(name)
    if series is None:
        series = _statement_series[name] = STATEMENTS.labels(name)
    series.observe(count)


def refused_by_rate_limit(tier: str) -> None:
    RATE_LIMITED.labels(tier).inc()


def replica_state(in_use: bool, lag_bytes: int | None, lag_seconds: float | None) -> None:
    REPLICA_IN_USE.set(1 if in_use else 0)
    # NaN: no value known (Prometheus keeps the series, queries see no number).
    REPLICA_LAG_BYTES.set(float("nan") if lag_bytes is None else lag_bytes)
    REPLICA_LAG_SECONDS.set(float("nan") if lag_seconds is None else lag_seconds)


def replica_read(server: str, reason: str) -> None:
    REPLICA_READS.labels(server, reason).inc()


T = TypeVar("T")


async def timed_job(job: str, work: Awaitable[T]) -> T:
    """Await `work`, observing its duration as `job` (ok or failed)."""
    started = time.perf_counter()
    outcome = "failed"
    try:
        result = await work
        outcome = "ok"
        return result
    finally:
        JOBS.labels(job, outcome).observe(time.perf_counter() - started)


def instrument_pool(engine: AsyncEngine, capacity: int) -> None:
    """Keep the pool gauges current from the pool's own events."""
    pool: Any = engine.sync_engine.pool
    POOL_CAPACITY.inc(capacity)
    event.listen(pool, "connect", lambda *_: POOL_OPEN.inc())
    event.listen(pool, "close", lambda *_: POOL_OPEN.dec())
    event.listen(pool, "close_detached", lambda *_: POOL_OPEN.dec())
    event.listen(pool, "checkout", lambda *_: POOL_IN_USE.inc())
    event.listen(pool, "checkin", lambda *_: POOL_IN_USE.dec())
    # QueuePool._do_get: where a checkout waits (tests/test_internals_canary.py holds it).
    take = pool._do_get

    def counted_get() -> Any:
        POOL_WAITING.inc()
        try:
            return take()
        finally:
            POOL_WAITING.dec()

    # The pool's own wait (its queue), inside the greenlet SQLAlchemy runs it in.
    pool._do_get = counted_get


def registry() -> CollectorRegistry:
    """Every process's samples when running multiprocess; this process's otherwise."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)
        return collected
    return REGISTRY


def exposition() -> Response:
    return Response(generate_latest(registry()), media_type=CONTENT_TYPE_LATEST)


def served_on_api_port(settings: Settings) -> bool:
    """Whether /metrics answers on the API's port (see the module's docstring)."""
    if settings.metrics_port is not None:
        return False
    return settings.metrics_token is not None or not settings.production


def endpoint(settings: Settings) -> Any:
    """The /metrics route of the API's port."""
    token = settings.metrics_token
    if not served_on_api_port(settings) and settings.production and settings.metrics_port is None:
        log.warning(
            "metrics are not served: set FLOWS_METRICS_TOKEN or FLOWS_METRICS_PORT to scrape them"
        )

    async def metrics(request: Request) -> Response:
        if not served_on_api_port(settings):
            return JSONResponse({"error": "not found"}, status_code=404)
        if token is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return JSONResponse(
                    {"error": "metrics need `Authorization: Bearer <FLOWS_METRICS_TOKEN>`"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return exposition()

    return metrics


def start_metrics_server(host: str, port: int) -> None:
    """Serve the metrics alone on `port` (a thread of the calling process)."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=host, registry=registry())


def process_exited(pid: int) -> None:
    """Drop a finished worker's live gauges (its counters stay in the totals)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)
