"""One request at a time, in process, no load: where a request's time goes.

    python -m bench.single [--scenario a|b] [--requests 30] [--concurrency 1]
                           [--profile [tottime|cumulative]]

Serves the bench database (`bench.load`, same settings as `bench.run`) through the ASGI
app in this process and times (a)'s or (b)'s request end to end (auth, parse, validate, execute,
JSON); `--profile [tottime|cumulative]` prints a cProfile of the timed requests.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import statistics
import time

import httpx

from flows_graphql.app import create_app
from flows_graphql.config import Settings
from flows_graphql.types.node import to_global_id

from .dataset import describe
from .queries import OUR_APP, OUR_DASHBOARD
from .scenarios import Tokens, graphql_body
from .settings import BenchSettings


async def main(
    requests: int, profile: str | None, concurrency: int = 1, scenario: str = "a"
) -> None:
    bench = BenchSettings.from_env()
    data = await describe(bench, "single")
    settings = Settings.from_env()
    settings = type(settings)(**{**vars(settings), "jwt_secret": bench.jwt_secret})
    app = create_app(settings, bench.database_url)
    tokens = Tokens(bench, data)
    months = {"from": str(data.first_month), "to": str(data.last_month)}
    if scenario == "a":
        body = graphql_body(OUR_DASHBOARD, {"code": data.esco_code, **months})
        token = tokens.operator
    else:  # (b): the first app customer's screen, with their own token
        customer = data.app_customers[0]
        body = graphql_body(OUR_APP, {"id": to_global_id("Customer", customer.id), **months})
        token = tokens.customers[0]
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
    ):

        async def one() -> tuple[float, float]:
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
        for _ in range(requests // concurrency):
            times += await asyncio.gather(*(one() for _ in range(concurrency)))
        if profiler:
            profiler.disable()
    wall = sorted(t[0] * 1000 for t in times)
    cpu = sorted(t[1] * 1000 for t in times)
    name = "dashboard" if scenario == "a" else "app screen"
    print(
        f"{name}, in process: {requests} requests; wall median {statistics.median(wall):.1f}"
        f" ms, min {wall[0]:.1f} ms; CPU (this process: server and client) median"
        f" {statistics.median(cpu):.1f} ms, min {cpu[0]:.1f} ms"
    )
    if profiler:
        pstats.Stats(profiler).sort_stats(profile).print_stats(45)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--scenario", choices=["a", "b"], default="a", help="(a) or (b)")
    parser.add_argument("--concurrency", type=int, default=1, help="requests in flight at once")
    parser.add_argument(
        "--profile", nargs="?", const="tottime", choices=["tottime", "cumulative"], default=None
    )
    args = parser.parse_args()
    try:  # the event loop the server runs on (uvicorn picks uvloop when installed)
        import uvloop

        uvloop.run(main(args.requests, args.profile, args.concurrency, args.scenario))
    except ImportError:
        asyncio.run(main(args.requests, args.profile, args.concurrency, args.scenario))
