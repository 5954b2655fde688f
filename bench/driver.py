"""The closed-loop load driver: N workers, each sending its next request as soon as the
previous one is answered, for a bounded time and a bounded number of requests.

A request is any coroutine (an HTTP call to a GraphQL server, or one SQL statement for
the floor); it returns the number of SQL statements it ran (None when unknown) and
raises on any error. While the loop runs, a monitor samples the server's resident
memory (the process and its children) to report its peak.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
import psutil

Request = Callable[[int], Awaitable[int | None]]
SAMPLE_SECONDS = 0.1
MAX_ERRORS_KEPT = 3


@dataclass
class Result:
    name: str
    concurrency: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    peak_rss_bytes: int | None = None
    server_cpu_seconds: float | None = None
    database_cpu_seconds: float | None = None

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """Latency in ms at percentile p (nearest rank)."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered)) - 1))
        return ordered[rank] * 1000

    @property
    def statements_per_request(self) -> float | None:
        return statistics.fmean(self.statements) if self.statements else None

    @property
    def cpu_ms_per_request(self) -> float | None:
        """The server's CPU time per request (all its processes)."""
        if self.server_cpu_seconds is None or not self.requests:
            return None
        return 1000 * self.server_cpu_seconds / self.requests

    @property
    def database_cpu_ms_per_request(self) -> float | None:
        """PostgreSQL's CPU time per request (the backends serving the bench database)."""
        if self.database_cpu_seconds is None or not self.requests:
            return None
        return 1000 * self.database_cpu_seconds / self.requests

    @property
    def peak_rss_mb(self) -> float | None:
        return None if self.peak_rss_bytes is None else self.peak_rss_bytes / 2**20


class RssMonitor:
    """Peak resident memory and CPU time of a process tree (a server with its workers).

    CPU seconds per request is the server's cost of a request whatever else the machine
    runs at the time; throughput and latency are not."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.peak = 0
        self.cpu_seconds = 0.0
        self._cpu_start: dict[int, float] = {}
        self._cpu_last: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None

    def _processes(self) -> list[psutil.Process]:
        if self.pid is None:
            return []
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def sample(self) -> int:
        total = 0
        for process in self._processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += process.memory_info().rss
                times = process.cpu_times()
                self._cpu_last[process.pid] = times.user + times.system
                self._cpu_start.setdefault(process.pid, self._cpu_last[process.pid])
        return total

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, self.sample())
            await asyncio.sleep(SAMPLE_SECONDS)

    def __enter__(self) -> RssMonitor:
        if self.pid is not None:
            self.sample()
            self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        self.peak = max(self.peak, self.sample())
        self.cpu_seconds = sum(
            self._cpu_last[pid] - start for pid, start in self._cpu_start.items()
        )


class DatabaseCpu:
    """CPU time of the PostgreSQL backends connected to one database over a run.

    A server that hands the work to PostgreSQL (one big statement) looks cheap by its
    own CPU alone; this is the other half of the bill. Backends are found in
    pg_stat_activity at the start and the end; one that connects during the run counts
    from its start, one that leaves during it is missed."""

    def __init__(self, url: str, database: str) -> None:
        self.url = url
        self.database = database
        self.seconds = 0.0
        self._start: dict[int, float] = {}

    async def _snapshot(self) -> dict[int, float]:
        conn = await asyncpg.connect(self.url)
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                self.database,
            )
        finally:
            await conn.close()
        times = {}
        for row in rows:
            with contextlib.suppress(psutil.Error):
                cpu = psutil.Process(row["pid"]).cpu_times()
                times[row["pid"]] = cpu.user + cpu.system
        return times

    async def __aenter__(self) -> DatabaseCpu:
        self._start = await self._snapshot()
        return self

    async def __aexit__(self, *exc: object) -> None:
        end = await self._snapshot()
        self.seconds = sum(cpu - self._start.get(pid, 0.0) for pid, cpu in end.items())


async def closed_loop(
    name: str,
    request: Request,
    *,
    concurrency: int,
    duration: float,
    max_requests: int,
    warmup: int = 0,
    server_pid: int | None = None,
    database: DatabaseCpu | None = None,
) -> Result:
    """Runs `warmup` requests (not counted), then the loop until `duration` seconds have
    passed or `max_requests` have been sent, whichever comes first."""
    if warmup:
        await asyncio.gather(*(request(i) for i in range(min(warmup, concurrency))))
        for i in range(concurrency, warmup):
            await request(i)
    result = Result(name, concurrency)
    issued = 0
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal issued
        while issued < max_requests and time.perf_counter() < deadline:
            index = warmup + issued
            issued += 1
            started = time.perf_counter()
            try:
                statements = await request(index)
            except Exception as exc:  # every failure counts; a few are shown
                result.errors += 1
                if len(result.error_samples) < MAX_ERRORS_KEPT:
                    result.error_samples.append(f"{type(exc).__name__}: {exc}"[:300])
                continue
            result.latencies.append(time.perf_counter() - started)
            if statements is not None:
                result.statements.append(statements)

    with RssMonitor(server_pid) as monitor:
        async with database if database is not None else contextlib.nullcontext():
            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            result.seconds = time.perf_counter() - started
    if database is not None:
        result.database_cpu_seconds = database.seconds
    if server_pid is not None:
        result.peak_rss_bytes = monitor.peak
        result.server_cpu_seconds = monitor.cpu_seconds
    return result
