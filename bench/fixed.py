"""The fixed cost of a request: CPU per request through the whole ASGI app, in process.

    python -m bench.fixed [--scenario empty|b] [--requests 2000] [--repeat 3] [--trusted]

POSTs straight into the application (no HTTP client, no server), cycling over the
bench's 200 app customers and their tokens (each token checked once, in the warm-up),
and times each run of `--requests` requests as a whole: process CPU ÷ requests, no
clock read per request, with the CPU of the bench database's PostgreSQL backends over
the same run beside it (bench.driver.DatabaseCpu, as `bench.run` reads it). `empty` is
`{ __typename }` (no statement: what every request pays before its fields do), `b` the
app screen. Logging as a server process logs (JSON
lines on stderr: send them to /dev/null). An A/B of two commits runs this on each
checkout in turn (`git worktree add`), alternating, several times: bench/README.md,
"Session 5" and "Session 6".
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import time
from typing import Any

from flows_graphql import logs
from flows_graphql.app import create_app
from flows_graphql.trusted import sha256_hex
from flows_graphql.types.node import to_global_id

from .dataset import describe
from .driver import DatabaseCpu
from .queries import OUR_APP
from .run import RESULTS_DIR
from .scenarios import Tokens, graphql_body
from .settings import BenchSettings
from .single import EMPTY, in_process_settings, post_scope, receive_once

WARMUP = 400


async def main(
    scenario: str, requests: int, repeat: int, trusted: bool
) -> list[tuple[float, float]]:
    """(server CPU, PostgreSQL CPU) in ms per request, for each run."""
    bench = BenchSettings.from_env()
    data = await describe(bench, "fixed")
    settings = in_process_settings(bench)
    if trusted:
        RESULTS_DIR.mkdir(exist_ok=True)
        manifest = RESULTS_DIR / "trusted-documents-fixed.json"
        manifest.write_text(json.dumps({sha256_hex(q): q for q in (EMPTY, OUR_APP)}))
        settings = dataclasses.replace(settings, trusted_documents=manifest)
    logs.configure()
    app = create_app(settings, bench.database_url)
    tokens = Tokens(bench, data)
    months = {"from": str(data.first_month), "to": str(data.last_month)}
    requests_made: list[tuple[dict[str, Any], bytes]] = []
    for customer, token in zip(data.app_customers, tokens.customers, strict=True):
        if scenario == "empty":
            body = graphql_body(EMPTY, {}, trusted)
        else:
            variables = {"id": to_global_id("Customer", customer.id), **months}
            body = graphql_body(OUR_APP, variables, trusted)
        headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        scope = post_scope(body, headers)
        requests_made.append((scope, body))
    statuses: set[int] = set()

    async def one(i: int) -> None:
        template, body = requests_made[i % len(requests_made)]

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.add(message["status"])

        await app(dict(template), receive_once(body), send)

    results = []
    async with app.router.lifespan_context(app):
        for i in range(WARMUP):
            await one(i)
        for _ in range(repeat):
            gc.collect()
            async with DatabaseCpu(bench.database_url, bench.database_name) as database:
                started = time.process_time()
                for i in range(requests):
                    await one(i)
                cpu = time.process_time() - started
            results.append((1000 * cpu / requests, 1000 * database.seconds / requests))
    if statuses != {200}:
        raise SystemExit(f"answers other than 200: {sorted(statuses)}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=["empty", "b"], default="empty")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--trusted", action="store_true", help="by documentId")
    args = parser.parse_args()
    run = main(args.scenario, args.requests, args.repeat, args.trusted)
    try:
        import uvloop

        measured = uvloop.run(run)
    except ImportError:
        measured = asyncio.run(run)
    print(
        f"{args.scenario}{', trusted' if args.trusted else ''}: CPU ms/request per run of "
        f"{args.requests}: "
        + " ".join(f"{m:.3f}" for m, _ in measured)
        + "; PostgreSQL backends: "
        + " ".join(f"{d:.3f}" for _, d in measured)
    )
