"""The results table (Markdown, printed and saved) and the ratios between targets."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .driver import Result
from .scenarios import Timed

HEADER = (
    "| scenario | target | req/s | p50 ms | p95 ms | p99 ms | errors | SQL stmts/req "
    "| server CPU ms/req | DB CPU ms/req | peak RSS MB |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def _num(value: float | None, digits: int = 1) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value:,.{digits}f}"


def result_row(result: Result) -> str:
    scenario, _, target = result.name.partition(" | ")
    return (
        f"| {scenario} | {target} | {_num(result.rps)} | {_num(result.percentile(50))} "
        f"| {_num(result.percentile(95))} | {_num(result.percentile(99))} | {result.errors} "
        f"| {_num(result.statements_per_request)} | {_num(result.cpu_ms_per_request)} "
        f"| {_num(result.database_cpu_ms_per_request)} | {_num(result.peak_rss_mb, 0)} |"
    )


def timed_row(timed: Timed) -> str:
    if timed.skipped:
        return f"| {timed.name} | flows-graphql | skipped: {timed.skipped} | | | | | | | | |"
    runs = ", ".join(f"{s:.2f}" for s in timed.seconds)
    stmts = _num(sum(timed.statements) / len(timed.statements), 0) if timed.statements else "–"
    rss = _num(timed.peak_rss_bytes / 2**20, 0)
    return (
        f"| {timed.name} | flows-graphql | runs (s): {runs} | best {timed.best:.2f} s "
        f"| median {timed.median:.2f} s | | 0 | {stmts} | | | {rss} |"
    )


def ratios(results: Sequence[Result]) -> list[str]:
    """ours / PostGraphile and ours / floor, per read scenario: throughput and p50."""
    by_scenario: dict[str, dict[str, Result]] = {}
    for result in results:
        scenario, _, target = result.name.partition(" | ")
        by_scenario.setdefault(scenario, {})[target] = result
    lines = []
    for scenario, targets in by_scenario.items():
        ours = targets.get("flows-graphql")
        if ours is None:
            continue
        for other in ("PostGraphile", "SQL floor"):
            them = targets.get(other)
            if them is None or not them.rps:
                continue
            line = (
                f"- {scenario}: ours / {other}: throughput {ours.rps / them.rps:.2f}×, "
                f"p50 latency {ours.percentile(50) / them.percentile(50):.2f}×"
            )
            ours_cpu, their_cpu = _total_cpu(ours), _total_cpu(them)
            if ours_cpu and their_cpu:
                line += f", CPU per request (server + PostgreSQL) {ours_cpu / their_cpu:.2f}×"
            lines.append(line)
    return lines


def _total_cpu(result: Result) -> float | None:
    """Server and database CPU per request: what a request costs the machine."""
    parts = [result.cpu_ms_per_request, result.database_cpu_ms_per_request]
    if result.database_cpu_ms_per_request is None:
        return None
    return sum(p for p in parts if p is not None)


def table(results: Sequence[Result], timed: Sequence[Timed]) -> str:
    rows = [result_row(r) for r in results] + [timed_row(t) for t in timed]
    return "\n".join([HEADER, *rows])
