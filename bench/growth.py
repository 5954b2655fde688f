"""The growth table: two runs of `bench.run` at different scales, figure by figure.

    python -m bench.growth [bench/.results/scale-10000.json bench/.results/scale-100000.json]

Each `bench.run` writes `bench/.results/scale-<N>.json`; this sets two of them side by
side with the ratio large/small of every figure, and checks the targets of issue 20:
billing at most 10x (and 15 s) at ten times the homes, the dashboard and the app screen
at least 0.9x their throughput, our server's peak RSS under 300 MB.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from .driver import Result
from .scenarios import Timed
from .servers import BENCH_DIR

RESULTS_DIR = BENCH_DIR / ".results"


def save(
    path: Path,
    *,
    scale: int,
    label: str,
    code: str,
    command: str,
    loads: tuple[tuple[float, float, float], tuple[float, float, float]],
    results: Sequence[Result],
    timed: Sequence[Timed],
) -> None:
    def num(value: float | None) -> float | None:
        return None if value is None or math.isnan(value) else round(value, 3)

    reads = []
    for r in results:
        scenario, _, target = r.name.partition(" | ")
        reads.append(
            {
                "scenario": scenario,
                "target": target,
                "rps": num(r.rps),
                "p50_ms": num(r.percentile(50)),
                "p95_ms": num(r.percentile(95)),
                "errors": r.errors,
                "server_cpu_ms": num(r.cpu_ms_per_request),
                "db_cpu_ms": num(r.database_cpu_ms_per_request),
                "peak_rss_mb": num(r.peak_rss_mb),
            }
        )
    jobs = [
        {
            "scenario": t.name,
            "seconds": t.seconds,
            "skipped": t.skipped,
            "notes": t.notes,
            "peak_rss_mb": round(t.peak_rss_bytes / 2**20, 1),
        }
        for t in timed
    ]
    run = {
        "code": code,
        "command": command,
        "when": f"{datetime.now():%Y-%m-%d %H:%M}",
        "load_before": loads[0],
        "load_after": loads[1],
    }
    for entry in [*reads, *jobs]:
        entry["run"] = run
    # A run of some scenarios replaces those, and keeps the others of the same data.
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("label") == label:
            again = {_key(e["scenario"]) for e in [*reads, *jobs]}
            reads = [r for r in old["reads"] if _key(r["scenario"]) not in again] + reads
            jobs = [t for t in old["timed"] if _key(t["scenario"]) not in again] + jobs
    path.write_text(
        json.dumps({"scale": scale, "label": label, "reads": reads, "timed": jobs}, indent=1) + "\n"
    )


def _key(scenario: str) -> str:
    return scenario.partition(")")[0]  # "a", "b", … : names carry scale-dependent text


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _ratio(small: float | None, large: float | None) -> str:
    if small is None or large is None or small == 0:
        return "–"
    return f"{large / small:.2f}×"


def table(small: dict[str, Any], large: dict[str, Any]) -> str:
    s_scale, l_scale = f"{small['scale']:,}", f"{large['scale']:,}"
    lines = [
        f"| scenario | target | figure | at {s_scale} | at {l_scale} | {l_scale} / {s_scale} |",
        "|---|---|---|---:|---:|---:|",
    ]
    by_key = {(_key(r["scenario"]), r["target"]): r for r in large["reads"]}
    for r in small["reads"]:
        other = by_key.get((_key(r["scenario"]), r["target"]))
        if other is None:
            continue
        for figure, field, digits in (
            ("req/s", "rps", 1),
            ("p50 ms", "p50_ms", 1),
            ("server CPU ms/req", "server_cpu_ms", 1),
            ("DB CPU ms/req", "db_cpu_ms", 1),
            ("peak RSS MB", "peak_rss_mb", 0),
            ("errors", "errors", 0),
        ):
            a, b = r[field], other[field]
            if a is None and b is None:
                continue
            lines.append(
                f"| {r['scenario']} | {r['target']} | {figure} | {_fmt(a, digits)} "
                f"| {_fmt(b, digits)} | {_ratio(a, b) if field != 'errors' else ''} |"
            )
    timed_large = {_key(t["scenario"]): t for t in large["timed"]}
    for t in small["timed"]:
        other = timed_large.get(_key(t["scenario"]))
        if other is None or t["skipped"] or other["skipped"]:
            continue
        name = t["scenario"].split(" 20")[0]  # without the month
        for figure, pick in (
            ("best s", min),
            ("median s", statistics.median),  # as the run reports it (Timed.median)
        ):
            a, b = pick(t["seconds"]), pick(other["seconds"])
            lines.append(
                f"| {name} | flows-graphql | {figure} | {a:.2f} | {b:.2f} | {_ratio(a, b)} |"
            )
        lines.append(
            f"| {name} | flows-graphql | peak RSS MB | {t['peak_rss_mb']:.0f} "
            f"| {other['peak_rss_mb']:.0f} | {_ratio(t['peak_rss_mb'], other['peak_rss_mb'])} |"
        )
    return "\n".join(lines)


def targets(small: dict[str, Any], large: dict[str, Any]) -> list[str]:
    """Issue 20's targets, met or not, from the two runs."""
    out = []
    bill_s = next((t for t in small["timed"] if _key(t["scenario"]) == "d"), None)
    bill_l = next((t for t in large["timed"] if _key(t["scenario"]) == "d"), None)
    if bill_s and bill_l:
        a, b = min(bill_s["seconds"]), min(bill_l["seconds"])
        ok = b <= 10 * a and b <= 15
        out.append(
            f"- billing: {b:.2f} s at {large['scale']:,} vs {a:.2f} s at {small['scale']:,} "
            f"= {b / a:.1f}× (target ≤ 10× and ≤ 15 s): {'met' if ok else 'NOT met'}"
        )
    for key, name in (("a", "dashboard"), ("b", "app screen")):
        ours = [
            (r, o)
            for r in small["reads"]
            for o in large["reads"]
            if _key(r["scenario"]) == _key(o["scenario"]) == key
            and r["target"] == o["target"] == "flows-graphql"
        ]
        if ours:
            r, o = ours[0]
            ratio = o["rps"] / r["rps"]
            out.append(
                f"- {name}: {o['rps']:.1f} req/s at {large['scale']:,} vs {r['rps']:.1f} = "
                f"{ratio:.2f}× (target ≥ 0.9×): {'met' if ratio >= 0.9 else 'NOT met'}"
            )
    peaks = [r["peak_rss_mb"] or 0 for r in large["reads"] if r["target"] == "flows-graphql"]
    peaks += [t["peak_rss_mb"] for t in large["timed"]]
    if peaks:
        peak = max(peaks)
        out.append(
            f"- our server's peak RSS at {large['scale']:,}: {peak:.0f} MB (target < 300 MB): "
            f"{'met' if peak < 300 else 'NOT met'}"
        )
    errors = sum(r["errors"] for r in large["reads"])
    out.append(f"- errors at {large['scale']:,}: {errors}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("small", nargs="?", default=str(RESULTS_DIR / "scale-10000.json"))
    parser.add_argument("large", nargs="?", default=str(RESULTS_DIR / "scale-100000.json"))
    args = parser.parse_args()
    small = json.loads(Path(args.small).read_text())
    large = json.loads(Path(args.large).read_text())
    for data in (small, large):
        runs = {json.dumps(e["run"], sort_keys=True) for e in [*data["reads"], *data["timed"]]}
        for run in sorted(map(json.loads, runs), key=lambda r: r["when"]):
            print(
                f"- {data['scale']:,}: {run['when']}, `{run['command']}` on {run['code']}, "
                f"load average before {run['load_before'][0]:.1f}, "
                f"after {run['load_after'][0]:.1f}"
            )
    print()
    print(table(small, large))
    print()
    print("\n".join(targets(small, large)))


if __name__ == "__main__":
    main()
