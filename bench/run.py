"""Every scenario, with both comparators, in one run; prints the table and the ratios.

    python -m bench.run [--scale 10000] [--duration 15] [--concurrency 8] [--workers 1[,2]]
                        [--trusted]

Loads the data set (unless --reuse finds the same one loaded), starts flows-graphql and
PostGraphile (same number of processes) on loopback ports, checks that every target of
a read scenario returns the same rows, then runs (a)…(e) one after the other. The table
is printed and written to bench/.results/latest.md with the servers' logs. With a list
of worker counts, (a) and (b) are measured again with each further count (both servers
restarted with that many processes), reported beside the first. `--trusted` sends our
(a) and (b) as trusted documents (docs/trusted-documents.md) instead of their text.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil

from flows_graphql.trusted import sha256_hex

from . import floor, growth, profile, report
from .datagen import Shape
from .dataset import DataSet, describe
from .driver import Result, closed_loop
from .load import current_label, generate, this_month
from .queries import OUR_APP, OUR_DASHBOARD
from .scenarios import (
    Load,
    ReadTargets,
    Timed,
    Tokens,
    app_screen,
    billing,
    dashboard,
    http_client,
    import_usage,
    paging,
    run_reads,
)
from .servers import BENCH_DIR, OurServer, PostGraphileServer
from .settings import LOOPBACK, BenchSettings

RESULTS_DIR = BENCH_DIR / ".results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run the benchmark suite (issue 6).")
    parser.add_argument("--scale", type=int, default=10_000, help="customers (10..100,000)")
    parser.add_argument("--seed", type=int, default=1, help="data generator seed")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per load run")
    parser.add_argument("--concurrency", type=int, default=8, help="closed-loop workers")
    parser.add_argument("--max-requests", type=int, default=100_000, help="per load run")
    parser.add_argument("--warmup", type=int, default=20, help="uncounted requests first")
    parser.add_argument(
        "--workers",
        type=_counts,
        default=[1],
        help="processes of each server; a list (1,2) runs (a) and (b) once per count",
    )
    parser.add_argument("--billing-runs", type=int, default=3, help="runBilling repetitions")
    parser.add_argument(
        "--scenarios", default="abcde", help="which of a b c d e to run (default all)"
    )
    parser.add_argument("--reuse", action="store_true", help="keep a loaded data set of this shape")
    parser.add_argument(
        "--pgbouncer",
        action="store_true",
        help="our server through a PgBouncer in transaction pooling (docs/pooling.md)",
    )
    parser.add_argument(
        "--no-postgraphile", action="store_true", help="leave PostGraphile out of the run"
    )
    parser.add_argument(
        "--trusted",
        action="store_true",
        help="send our (a) and (b) as trusted documents (documentId), not as text",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="SECONDS",
        help="also profile our server under the dashboard load with py-spy (0: no)",
    )
    args = parser.parse_args(argv)
    if not 10 <= args.scale <= 100_000:
        parser.error("--scale must be between 10 and 100,000")
    if not 1 <= args.concurrency <= 256 or min(args.workers) < 1 or args.duration <= 0:
        parser.error("--concurrency 1..256, --workers >= 1, --duration > 0")
    return args


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a count or counts like 1,2") from None
    return counts


def machine() -> str:
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{platform.node()}: {psutil.cpu_count()} cores, {memory:.0f} GiB, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def code_version() -> str:
    """The commit measured, and whether product files differ from it."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=BENCH_DIR, capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--", "../flows_graphql")
    return f"{commit}" + (" + uncommitted changes in flows_graphql/" if changed else "")


def _loads(values: tuple[float, float, float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


async def check_same_answers(scenario: str, targets: ReadTargets) -> None:
    """Stops the run when the targets disagree: their throughputs would not compare."""
    for i in (0, 1):
        answers = await targets.answers(i)
        ours = answers["flows-graphql"]
        for name, shape in answers.items():
            if shape != ours:
                diff = next(
                    (f"{a!r} != {b!r}" for a, b in zip(ours, shape, strict=False) if a != b),
                    f"{len(ours)} rows != {len(shape)} rows",
                )
                raise SystemExit(f"{scenario}: {name} answers differently: {diff[:600]}")
    print(f"{scenario}: {', '.join(answers)} return the same rows", flush=True)


async def profile_dashboard(targets: ReadTargets, load: Load, pid: int, seconds: int) -> None:
    """py-spy under the dashboard load: a flame graph, then collapsed stacks summarized."""
    for fmt, output in (
        ("flamegraph", BENCH_DIR / ".profile.svg"),
        ("raw", RESULTS_DIR / "profile.txt"),
    ):
        spy = profile.start(pid, output, seconds, fmt)
        await asyncio.sleep(0.5)
        await closed_loop(
            "profile",
            targets.ours,
            concurrency=load.concurrency,
            duration=seconds,
            max_requests=load.max_requests,
        )
        _, err = spy.communicate(timeout=60)
        if spy.returncode:
            print(f"py-spy failed: {err.decode(errors='replace')[-500:]}", file=sys.stderr)
            return
    summary = profile.summarize(RESULTS_DIR / "profile.txt")
    (RESULTS_DIR / "profile-summary.txt").write_text(summary + "\n")
    print(f"\nprofile of (a), our server: {BENCH_DIR / '.profile.svg'}\n{summary}\n", flush=True)


async def run(args: argparse.Namespace) -> int:
    settings = BenchSettings.from_env()
    RESULTS_DIR.mkdir(exist_ok=True)
    started = time.perf_counter()
    load_before = os.getloadavg()
    shape = Shape(args.scale, args.seed, this_month())
    if args.reuse and await current_label(settings) == shape.label:
        print(f"data: reusing {shape.label} in {settings.database_name}", flush=True)
    else:
        await generate(settings, shape, log=lambda line: print(line, flush=True))
    data: DataSet = await describe(settings, shape.label)
    with contextlib.ExitStack() as stack:
        pooled_url = None
        if args.pgbouncer:
            pooled_url = stack.enter_context(pooled(settings, args.concurrency))
            print(f"PgBouncer (transaction pooling) at {pooled_url}", flush=True)
        return await measure(args, settings, started, load_before, data, pooled_url)


@contextlib.contextmanager
def pooled(settings: BenchSettings, concurrency: int) -> Iterator[str]:
    """A PgBouncer on a loopback port in front of the bench database; yields its URL."""
    from tests import pgbouncer

    server = urlsplit(settings.database_url)
    with pgbouncer.running(
        upstream_host=server.hostname or LOOPBACK,
        upstream_port=server.port or 5432,
        # As many server connections as the server's pool would open without it.
        pool_size=max(concurrency, 10),
    ) as port:
        yield urlunsplit(
            server._replace(netloc=f"{server.username or 'postgres'}@{LOOPBACK}:{port}")
        )


async def measure(
    args: argparse.Namespace,
    settings: BenchSettings,
    started: float,
    load_before: tuple[float, float, float],
    data: DataSet,
    pooled_url: str | None,
) -> int:
    load = Load(args.concurrency, args.duration, args.max_requests, args.warmup)
    tokens = Tokens(settings, data)
    manifest = write_manifest() if args.trusted else None
    results: list[Result] = []
    timed: list[Timed] = []
    for index, workers in enumerate(args.workers):
        # Each count of processes after the first measures the read scenarios again.
        label = f", {workers} worker{'s' if workers > 1 else ''}" if len(args.workers) > 1 else ""
        scenarios = (
            args.scenarios if index == 0 else "".join(c for c in args.scenarios if c in "ab")
        )
        await serve(
            args,
            settings,
            data,
            tokens,
            load,
            workers,
            scenarios,
            label,
            index == 0,
            manifest,
            pooled_url,
            results,
            timed,
        )
    text = "\n".join(
        [
            f"# Benchmark run {datetime.now():%Y-%m-%d %H:%M}",
            "",
            f"- machine: {machine()}",
            f"- data: {data.label}; big ESCO {data.esco_code}: {data.customers:,} customers, "
            f"{len(data.meters):,} metered properties; months {data.first_month:%Y-%m}.."
            f"{data.last_month:%Y-%m}",
            f"- load: closed loop, {args.concurrency} workers, {args.duration:g}s or "
            f"{args.max_requests} requests per run after {args.warmup} warm-up requests; "
            f"{', then '.join(map(str, args.workers))} server process(es) each"
            + ("; ours through PgBouncer (transaction pooling)" if pooled_url else ""),
            f"- command: python -m bench.run {' '.join(sys.argv[1:])}".rstrip(),
            f"- code: {code_version()}",
            f"- load average (1, 5, 15 min) before: {_loads(load_before)}, after: "
            f"{_loads(os.getloadavg())} (other work on the machine slows every target)",
            "",
            report.table(results, timed),
            "",
            "Ratios:",
            *report.ratios(results),
            "",
            f"Total time: {time.perf_counter() - started:.0f}s",
        ]
    )
    (RESULTS_DIR / "latest.md").write_text(text + "\n")
    # Machine-readable, one file per scale: `python -m bench.growth` sets two side by side.
    growth.save(
        RESULTS_DIR / f"scale-{args.scale}.json",
        scale=args.scale,
        label=data.label,
        code=code_version(),
        command=f"python -m bench.run {' '.join(sys.argv[1:])}".rstrip(),
        loads=(load_before, os.getloadavg()),
        results=results,
        timed=timed,
    )
    print("\n" + text, flush=True)
    return 1 if any(r.errors for r in results) else 0


async def serve(
    args: argparse.Namespace,
    settings: BenchSettings,
    data: DataSet,
    tokens: Tokens,
    load: Load,
    workers: int,
    scenarios: str,
    label: str,
    first: bool,
    manifest: Path | None,
    pooled_url: str | None,
    results: list[Result],
    timed: list[Timed],
) -> None:
    """Both servers with `workers` processes each, and the scenarios run against them."""
    ours = OurServer(settings, RESULTS_DIR, workers, pooled_url, manifest)
    postgraphile: PostGraphileServer | None = None
    if not args.no_postgraphile:
        if PostGraphileServer.installed():
            postgraphile = PostGraphileServer(settings, RESULTS_DIR, workers, str(data.esco_id))
        else:
            print("PostGraphile is not installed (run bench/setup.sh): left out", flush=True)
    try:
        ours.start()
        if postgraphile is not None:
            postgraphile.start()
        pg_url = postgraphile.url if postgraphile else None
        pg_pid = postgraphile.pid if postgraphile else None
        print(
            f"servers: flows-graphql pid {ours.pid} :{ours.port}"
            + (f", PostGraphile pid {pg_pid} :{postgraphile.port}" if postgraphile else "")
            + f", {workers} process(es) each; load: {args.concurrency} workers, "
            f"{args.duration:g}s or {args.max_requests} requests per run",
            flush=True,
        )
        pool = await floor.pool(settings, data, args.concurrency)
        async with http_client(args.concurrency) as client:
            reads = []
            if "a" in scenarios:
                reads.append(
                    (
                        f"a) dashboard{label}",
                        dashboard(client, pool, data, tokens, ours.url, pg_url, args.trusted),
                    )
                )
            if "b" in scenarios:
                reads.append(
                    (
                        f"b) app screen{label}",
                        app_screen(client, pool, data, tokens, ours.url, pg_url, args.trusted),
                    )
                )
            for scenario, targets in reads:
                await check_same_answers(scenario, targets)
                for result in await run_reads(scenario, targets, load, ours.pid, pg_pid, settings):
                    results.append(result)
                    print(report.result_row(result), flush=True)
            if "c" in scenarios:
                results.append(await paging(client, data, tokens, ours.url, ours.pid))
                print(report.result_row(results[-1]), flush=True)
            if "d" in scenarios:
                timed.append(
                    await billing(
                        client, settings, data, tokens, ours.url, ours.pid, args.billing_runs
                    )
                )
                print(report.timed_row(timed[-1]), *timed[-1].notes, sep="\n  ", flush=True)
            if "e" in scenarios:
                timed.append(await import_usage(client, settings, data, tokens, ours.url, ours.pid))
                print(report.timed_row(timed[-1]), *timed[-1].notes, sep="\n  ", flush=True)
            if args.profile and first and reads and reads[0][0].startswith("a"):
                await profile_dashboard(reads[0][1], load, ours.pid, args.profile)
        await pool.close()
    finally:
        ours.stop()
        if postgraphile is not None:
            postgraphile.stop()


def write_manifest() -> Path:
    """Our two read documents as a trusted-documents manifest (docs/trusted-documents.md)."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / "trusted-documents.json"
    path.write_text(json.dumps({sha256_hex(q): q for q in (OUR_DASHBOARD, OUR_APP)}))
    return path


def main() -> None:
    args = parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
