"""Where a billing run's time goes, in process: every statement's wall time, grouped.

    python -m bench.billing_profile [--runs 1] [--month YYYY-MM] [--explain]

Runs the big ESCO's month through the API's path (`BillingJobs`, the same checks, lock,
bound and batches as `runBilling`) on the bench database (`BENCH_DATABASE_URL`, loaded
by `bench.run` or `bench.load`; its billed tables vacuumed first, as (d) does), and
prints, per run, the wall time, this process's CPU and each kind of statement's count
and total time (the rest is Python: pricing, encoding, the event loop). `--explain`
first prints `EXPLAIN (ANALYZE, BUFFERS)` of the gathering
statement (`BILLABLE_SQL`) for that month.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from collections import defaultdict
from datetime import date
from typing import Any

from sqlalchemy import event, select, text

from flows_graphql.auth.viewer import SYSTEM
from flows_graphql.config import Settings
from flows_graphql.db.engine import create_engine
from flows_graphql.db.models import Esco
from flows_graphql.rules.clock import london_today
from flows_graphql.services import billing
from flows_graphql.services.billing_jobs import BillingJobs

from .datagen import BIG_ESCO
from .scenarios import vacuum_billed
from .settings import BenchSettings


def _kind(statement: str) -> str:
    """A statement's first words: enough to tell the run's few kinds apart."""
    words = re.sub(r"\s+", " ", statement).strip()
    if "FROM monthly_usage u" in words:
        return "BILLABLE_SQL (gather)"
    return words[:70]


async def profile(runs: int, month: date | None, explain: bool) -> None:
    bench = BenchSettings.from_env()
    engine = create_engine(Settings(), bench.database_url)
    times: dict[str, list[float]] = defaultdict(list)
    started: dict[int, float] = {}

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        started[id(cursor)] = time.perf_counter()

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        times[_kind(statement)].append(time.perf_counter() - started.pop(id(cursor)))

    try:
        async with engine.connect() as conn:
            esco_id = await conn.scalar(select(Esco.id).where(Esco.code == BIG_ESCO))
            if month is None:
                month = await conn.scalar(text("SELECT max(month) FROM monthly_usage"))
            if explain:
                plan = await conn.execute(
                    text("EXPLAIN (ANALYZE, BUFFERS) " + str(billing.BILLABLE_SQL)),
                    {"esco_id": esco_id, "month": month},
                )
                print("\n".join(row[0] for row in plan))
        assert month is not None
        await vacuum_billed(bench)  # as bench.run's (d) does first
        jobs = BillingJobs(engine, Settings())
        for n in range(runs):
            times.clear()
            cpu, wall = time.process_time(), time.perf_counter()
            job = await jobs.start(SYSTEM, esco_id, month, london_today)
            run = await job.task
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            in_sql = sum(sum(t) for t in times.values())
            print(
                f"run {n + 1}: {run.status.value}, {run.progress_total} meters, "
                f"wall {wall:.2f} s, this process's CPU {cpu:.2f} s, "
                f"statements {in_sql:.2f} s, the rest {wall - in_sql:.2f} s"
            )
            for kind, spent in sorted(times.items(), key=lambda kv: -sum(kv[1])):
                print(f"  {sum(spent):7.3f} s  {len(spent):4d}×  {kind}")
        await jobs.shutdown(grace_s=0)
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--month", help="YYYY-MM (default: the data set's last month)")
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()
    month = date.fromisoformat(args.month + "-01") if args.month else None
    asyncio.run(profile(args.runs, month, args.explain))


if __name__ == "__main__":
    main()
