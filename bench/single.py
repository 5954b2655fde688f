"""One request at a time, in process, no load: where a request's time goes.

    python -m bench.single [--scenario a|b|empty] [--requests 30] [--concurrency 1] [--direct]
                           [--profile [tottime|cumulative]] [--trace | --trace-ab]

Serves the bench database (`bench.load`, same settings as `bench.run`) through the ASGI
app in this process and times (a)'s or (b)'s request end to end (auth, parse, validate, execute,
JSON); `empty` is `{ __typename }` with (b)'s customer token: the fixed cost of a
request, without a statement. `--profile [tottime|cumulative]` prints a cProfile of the
timed requests (`--dump FILE` keeps it). `--direct` calls the ASGI app without httpx,
logging as a server process does: the CPU is the server's alone. `--trusted` sends the document's id
(docs/trusted-documents.md) instead of its text.
`--trace` times it with tracing on, as OTEL_EXPORTER_OTLP_ENDPOINT turns it on: the
OTLP/HTTP exporter behind a batch processor, sending to a receiver in another process
(started here, on loopback) that answers every export with 200. `--trace-ab` alternates
batches of 10 requests with tracing off and on in this one process (the order swapped
every round), so the machine's other load weighs on both alike; it prints both.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import gc
import json
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from flows_graphql import logs
from flows_graphql.app import create_app
from flows_graphql.config import RateLimits, Settings
from flows_graphql.ratelimit import TIERS
from flows_graphql.trusted import sha256_hex
from flows_graphql.types.node import to_global_id

from .dataset import describe
from .queries import OUR_APP, OUR_DASHBOARD
from .run import RESULTS_DIR, write_manifest
from .scenarios import Tokens, graphql_body
from .servers import UNREACHED_BUDGET
from .settings import BenchSettings

# The least a client can ask: what every request costs before its fields do.
EMPTY = "query Empty { __typename }"

# An OTLP/HTTP receiver that only says yes, in a process of its own.
RECEIVER = """
import http.server, sys
class R(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
server = http.server.HTTPServer(("127.0.0.1", 0), R)
print(server.server_port, flush=True)
server.serve_forever()
"""


@contextmanager
def traced(enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    import os

    from flows_graphql import tracing

    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(receiver.stdout.readline()) if receiver.stdout else 0
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{port}"
        assert tracing.configure_from_env()
        yield
    finally:
        tracing.uninstall()
        receiver.terminate()
        receiver.wait()


def in_process_settings(bench: BenchSettings) -> Settings:
    """The server's settings (from the environment) for an app in this process, with the
    bench's secret and budgets no run reaches, as bench.servers sets them: the
    accounting is measured, not the refusals."""
    budgets = RateLimits(**{tier: UNREACHED_BUDGET for tier in TIERS})
    return dataclasses.replace(
        Settings.from_env(), jwt_secret=bench.jwt_secret, rate_limits=budgets
    )


async def main(
    requests: int,
    profile: str | None,
    concurrency: int = 1,
    scenario: str = "a",
    trace: bool = False,
    trace_ab: bool = False,
    direct: bool = False,
    dump: str | None = None,
    trusted: bool = False,
) -> None:
    with traced(trace or trace_ab):
        await _main(
            requests, profile, concurrency, scenario, trace, trace_ab, direct, dump, trusted
        )


async def _main(
    requests: int,
    profile: str | None,
    concurrency: int,
    scenario: str,
    trace: bool,
    trace_ab: bool = False,
    direct: bool = False,
    dump: str | None = None,
    trusted: bool = False,
) -> None:
    bench = BenchSettings.from_env()
    data = await describe(bench, "single")
    settings = in_process_settings(bench)
    if trusted:
        manifest = write_manifest()
        if scenario == "empty":
            manifest = RESULTS_DIR / "trusted-documents-empty.json"
            manifest.write_text(json.dumps({sha256_hex(EMPTY): EMPTY}))
        settings = dataclasses.replace(settings, trusted_documents=manifest)
    if direct:
        logs.configure()  # as a server process logs (JSON lines on stderr)
    app = create_app(settings, bench.database_url)
    tokens = Tokens(bench, data)
    months = {"from": str(data.first_month), "to": str(data.last_month)}
    if scenario == "a":
        body = graphql_body(OUR_DASHBOARD, {"code": data.esco_code, **months}, trusted)
        token = tokens.operator
    elif scenario == "empty":
        body = graphql_body(EMPTY, {}, trusted)
        token = tokens.customers[0]
    else:  # (b): the first app customer's screen, with their own token
        customer = data.app_customers[0]
        body = graphql_body(
            OUR_APP, {"id": to_global_id("Customer", customer.id), **months}, trusted
        )
        token = tokens.customers[0]
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
    ):

        async def one() -> tuple[float, float]:
            if direct:
                return await asgi_post(app, body, headers)
            start, cpu = time.perf_counter(), time.process_time()
            response = await client.post("/graphql", content=body, headers=headers)
            elapsed = time.perf_counter() - start, time.process_time() - cpu
            payload = response.json()
            if response.status_code != 200 or payload.get("errors"):
                raise SystemExit(f"HTTP {response.status_code}: {str(payload)[:300]}")
            return elapsed

        for _ in range(5):
            await one()
        gc.collect()
        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        times = []
        if trace_ab:
            from flows_graphql import tracing

            provider = tracing.uninstall(shutdown=False)
            by_mode: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
            for batch in range(requests // 10):
                on = (batch % 2 == 1) != (batch // 2 % 2 == 1)
                if on:
                    tracing.install(provider)
                for _ in range(10):
                    by_mode[on].append(await one())
                if on:
                    tracing.uninstall(shutdown=False)
            tracing.install(provider)
            for on, measured in by_mode.items():
                cpu_ms = sorted(t[1] * 1000 for t in measured)
                wall_ms = sorted(t[0] * 1000 for t in measured)
                print(
                    f"tracing {'on ' if on else 'off'}: {len(measured)} requests; CPU median"
                    f" {statistics.median(cpu_ms):.2f} ms, mean {statistics.fmean(cpu_ms):.2f}"
                    f" ms; wall median {statistics.median(wall_ms):.1f} ms"
                )
            off_cpu = statistics.fmean(t[1] for t in by_mode[False])
            on_cpu = statistics.fmean(t[1] for t in by_mode[True])
            print(f"tracing on / off, CPU per request (means): {on_cpu / off_cpu:.3f}")
            return
        for _ in range(requests // concurrency):
            times += await asyncio.gather(*(one() for _ in range(concurrency)))
        if profiler:
            profiler.disable()
    wall = sorted(t[0] * 1000 for t in times)
    cpu = sorted(t[1] * 1000 for t in times)
    name = {"a": "dashboard", "b": "app screen", "empty": "{ __typename }"}[scenario]
    name += ", straight into the ASGI app" if direct else ""
    name += ", as a trusted document" if trusted else ""
    who = "" if direct else ": server and client"
    name += ", traced" if trace else ""
    print(
        f"{name}, in process: {requests} requests; wall median {statistics.median(wall):.1f}"
        f" ms, min {wall[0]:.1f} ms; CPU (this process{who}) median"
        f" {statistics.median(cpu):.2f} ms, min {cpu[0]:.2f} ms,"
        f" mean {statistics.fmean(cpu):.3f} ms"
    )
    if profiler:
        if dump:
            profiler.dump_stats(dump)
        pstats.Stats(profiler).sort_stats(profile).print_stats(45)


def post_scope(body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """The ASGI scope of a JSON POST to /graphql with `headers`, as uvicorn makes it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"content-length", str(len(body)).encode()),
            *((k.encode(), v.encode()) for k, v in headers.items()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }


def receive_once(body: bytes) -> Callable[[], Awaitable[dict[str, Any]]]:
    """An ASGI `receive` that gives `body` once, then waits: a client that stays
    connected (a disconnect would make the app's watcher cancel the request)."""
    received = False
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": body, "more_body": False}
        await never.wait()
        return {"type": "http.disconnect"}

    return receive


async def asgi_post(app: Any, body: bytes, headers: dict[str, str]) -> tuple[float, float]:
    """One POST straight into the ASGI app (no HTTP client): what is timed is the
    server's work alone, as a server process spends it once the request is read."""
    scope = post_scope(body, headers)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    receive = receive_once(body)
    start, cpu = time.perf_counter(), time.process_time()
    await app(scope, receive, send)
    elapsed = time.perf_counter() - start, time.process_time() - cpu
    status = sent[0]["status"]
    answer = b"".join(m.get("body", b"") for m in sent[1:])
    if status != 200 or b'"errors"' in answer:
        raise SystemExit(f"HTTP {status}: {answer[:300]!r}")
    return elapsed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument(
        "--scenario", choices=["a", "b", "empty"], default="a", help="(a), (b) or `{ __typename }`"
    )
    parser.add_argument("--concurrency", type=int, default=1, help="requests in flight at once")
    parser.add_argument(
        "--profile", nargs="?", const="tottime", choices=["tottime", "cumulative"], default=None
    )
    parser.add_argument("--trace", action="store_true", help="with tracing on (OTLP exporter)")
    parser.add_argument(
        "--trace-ab", action="store_true", help="alternate batches with tracing off and on"
    )
    parser.add_argument(
        "--direct", action="store_true", help="call the ASGI app without an HTTP client"
    )
    parser.add_argument("--dump", metavar="FILE", help="write the cProfile stats to FILE")
    parser.add_argument(
        "--trusted", action="store_true", help="send the document's id (trusted documents)"
    )
    args = parser.parse_args()
    run = main(
        args.requests,
        args.profile,
        args.concurrency,
        args.scenario,
        args.trace,
        args.trace_ab,
        args.direct,
        args.dump,
        args.trusted,
    )
    try:  # the event loop the server runs on (uvicorn picks uvloop when installed)
        import uvloop

        uvloop.run(run)
    except ImportError:
        asyncio.run(run)
