"""Live updates under load: commit → subscriber, and commit → webhook receiver.

    python -m bench.live [--subscribers 1000] [--events 200] [--webhook-events 1000]
                         [--endpoints 1,10]

One `flows-graphql serve` process (a subprocess, one worker) on a fresh database of its
own (BENCH_LIVE_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/
flows_bench_live; dropped and re-created). Everything is on loopback.

1. Subscriptions: `--subscribers` WebSocket clients (graphql-transport-ws, each an
   operator of its own, so no per-principal cap applies) subscribe to `events` of the
   ESCO; then `--events` payments are committed one after another, each its own
   transaction, as fast as the database takes them. Figures: events/s (events committed
   ÷ the time from the first commit to the last delivery to the last subscriber),
   deliveries/s (messages received by all subscribers ÷ that time), and the
   commit → delivery latency of every (event, subscriber) pair, p50/p99.
2. Webhooks: for each count in `--endpoints`, that many endpoints (all events of the
   ESCO) point at a receiver served here, on loopback, answering 200 at once; then
   `--webhook-events` payments commit. Figures: deliveries/s (received ÷ first commit
   to last delivery) and commit → receipt latency p50/p99. Deliveries of one endpoint
   go one after another (its order), so one endpoint measures the sequential path and
   several measure the worker's concurrency (FLOWS_WEBHOOKS_CONCURRENCY, default 8).

The client side (1,000 sockets, the receiver) runs in this one process: on 2 cores it
competes with the server for CPU, which the figures include.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import websockets

from flows_graphql.auth.tokens import issue_token
from flows_graphql.config import Settings
from flows_graphql.db.engine import create_engine
from flows_graphql.db.migrate import upgrade
from flows_graphql.types.node import from_global_id

from .servers import OurServer
from .settings import LOOPBACK, BenchSettings

EVENTS = "subscription { events { id type subject { id } } }"
CREATE = """mutation($i: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $i) {
  webhookEndpoint { id } userErrors { code message } } }"""
KINDS = ["payment.created"]


class LiveServer(OurServer):
    name = "flows-graphql-live"

    def environment(self) -> dict[str, str]:
        return {
            **super().environment(),
            "FLOWS_DEBUG_SQL": "0",
            "FLOWS_RATE_LIMITS": "0",
            "FLOWS_WEBHOOKS_ALLOW_LOOPBACK": "1",
            "FLOWS_WEBHOOKS_POLL_S": "1",
            "FLOWS_WS_IDLE_SECONDS": "600",
        }


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def fresh_database(bench: BenchSettings) -> None:
    admin = await asyncpg.connect(bench.maintenance_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{bench.database_name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{bench.database_name}"')
    finally:
        await admin.close()
    engine = create_engine(Settings(), bench.database_url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


async def seed(conn: asyncpg.Connection) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """One ESCO with one household: what a payment needs."""
    esco, customer, prop, account = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await conn.execute(
        "INSERT INTO escos (id, code, name, region_code) VALUES ($1, 'live', 'Live', 'south_east')",
        esco,
    )
    await conn.execute(
        "INSERT INTO customers (id, esco_id, email) VALUES ($1, $2, 'bench@example.com')",
        customer,
        esco,
    )
    await conn.execute(
        "INSERT INTO properties (id, esco_id, plot) VALUES ($1, $2, 'B1')", prop, esco
    )
    await conn.execute(
        "INSERT INTO accounts (id, esco_id, property_id, opened_on) VALUES ($1, $2, $3, "
        "'2024-01-01')",
        account,
        esco,
        prop,
    )
    await conn.execute(
        "INSERT INTO customer_accounts (customer_id, account_id, esco_id, role, start_date) "
        "VALUES ($1, $2, $3, 'occupier', '2024-01-01')",
        customer,
        account,
        esco,
    )
    return esco, customer, account


async def commit_payments(
    conn: asyncpg.Connection, esco: uuid.UUID, customer: uuid.UUID, account: uuid.UUID, n: int
) -> dict[str, float]:
    """n payments, one transaction each; payment id → wall-clock time of its commit."""
    committed: dict[str, float] = {}
    for _ in range(n):
        payment = await conn.fetchval(
            "INSERT INTO payments (esco_id, customer_id, account_id, amount_pence, status, "
            "idempotency_key) VALUES ($1, $2, $3, 100, 'created', $4) RETURNING id",
            esco,
            customer,
            account,
            uuid.uuid4().hex,
        )
        committed[str(payment)] = time.time()
    return committed


class Subscriber:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.received: dict[str, float] = {}
        self.ready = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        async with websockets.connect(
            self.url, subprotocols=["graphql-transport-ws"], max_queue=None, open_timeout=60
        ) as socket:  # type: ignore[arg-type]
            init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {self.token}"}}
            await socket.send(json.dumps(init))
            ack = json.loads(await socket.recv())
            assert ack["type"] == "connection_ack", ack
            await socket.send(
                json.dumps({"id": "1", "type": "subscribe", "payload": {"query": EVENTS}})
            )
            self.ready.set()
            while not stop.is_set():
                try:
                    async with asyncio.timeout(0.5):
                        raw = await socket.recv()
                except TimeoutError:
                    continue
                message = json.loads(raw)
                if message["type"] == "ping":
                    await socket.send(json.dumps({"type": "pong"}))
                elif message["type"] == "next":
                    if not (message["payload"].get("data") or {}).get("events"):
                        raise RuntimeError(message)
                    subject = message["payload"]["data"]["events"]["subject"]["id"]
                    decoded = from_global_id(subject)
                    if decoded is not None:
                        self.received[decoded[1]] = time.time()
                elif message["type"] == "error":
                    raise RuntimeError(message)


async def subscriptions(
    server: LiveServer, bench: BenchSettings, conn: asyncpg.Connection, args: argparse.Namespace,
    world: tuple[uuid.UUID, uuid.UUID, uuid.UUID],
) -> dict[str, Any]:  # fmt: skip
    esco, customer, account = world
    url = server.url.replace("http://", "ws://")
    subscribers = [
        Subscriber(url, issue_token(bench.jwt_secret, sub=f"bench-{i}", role="operator",
                                    escos=[str(esco)]))
        for i in range(args.subscribers)
    ]  # fmt: skip
    stop = asyncio.Event()
    tasks = []
    # Connect in batches: a thousand handshakes at once would time out on 2 cores.
    for start in range(0, len(subscribers), 50):
        batch = subscribers[start : start + 50]
        tasks += [asyncio.create_task(s.run(stop)) for s in batch]
        async with asyncio.timeout(120):
            await asyncio.gather(*(s.ready.wait() for s in batch))
    await asyncio.sleep(1.0)  # every subscription's feed opened on the server
    committed = await commit_payments(conn, esco, customer, account, args.events)
    expected = len(committed)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(len(s.received) >= expected for s in subscribers):
            break
        for task in tasks:
            if task.done() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies = [
        (s.received[p] - t) * 1000
        for s in subscribers
        for p, t in committed.items()
        if p in s.received
    ]
    delivered = len(latencies)
    first = min(committed.values())
    last = max(t for s in subscribers for t in s.received.values()) if delivered else first
    span = max(last - first, 1e-9)
    return {
        "subscribers": len(subscribers),
        "events": expected,
        "delivered": delivered,
        "missing": expected * len(subscribers) - delivered,
        "events_per_s": expected / span,
        "deliveries_per_s": delivered / span,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "commit_rate": expected / max(max(committed.values()) - first, 1e-9),
    }


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[tuple[int, list[tuple[str, float]]]]:
    """A loopback receiver answering 200 at once; yields (port, [(payment id, time)])."""
    got: list[tuple[str, float]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: the worker's client reuses its connections
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = json.loads(await reader.readexactly(length))
                decoded = from_global_id(body["data"]["subject"]["id"])
                got.append((decoded[1] if decoded else "", time.time()))
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, LOOPBACK, 0)
    try:
        yield server.sockets[0].getsockname()[1], got
    finally:
        server.close()


async def webhooks(
    server: LiveServer, bench: BenchSettings, conn: asyncpg.Connection, args: argparse.Namespace,
    world: tuple[uuid.UUID, uuid.UUID, uuid.UUID], endpoints: int,
) -> dict[str, Any]:  # fmt: skip
    esco, customer, account = world
    token = issue_token(bench.jwt_secret, sub="bench-webhooks", role="operator", escos=[str(esco)])
    await conn.execute("UPDATE webhook_endpoints SET status = 'deleted'")
    async with receiver() as (port, got), httpx.AsyncClient(timeout=30) as http:
        for i in range(endpoints):
            response = await http.post(
                server.url,
                json={"query": CREATE, "variables": {"i": {
                    "escoId": str(esco), "url": f"http://{LOOPBACK}:{port}/hook/{i}",
                    "eventTypes": KINDS}}},
                headers={"Authorization": f"Bearer {token}"},
            )  # fmt: skip
            errors = response.json()["data"]["createWebhookEndpoint"]["userErrors"]
            assert not errors, errors
        committed = await commit_payments(conn, esco, customer, account, args.webhook_events)
        expected = len(committed) * endpoints
        deadline = time.monotonic() + 300
        while len(got) < expected and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    latencies = [(t - committed[p]) * 1000 for p, t in got if p in committed]
    first = min(committed.values())
    span = max((max(t for _, t in got) if got else first) - first, 1e-9)
    return {
        "endpoints": endpoints,
        "events": len(committed),
        "delivered": len(got),
        "missing": expected - len(got),
        "deliveries_per_s": len(got) / span,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
    }


async def main(args: argparse.Namespace) -> int:
    base = BenchSettings.from_env()
    bench = replace(
        base,
        database_url=os.environ.get(
            "BENCH_LIVE_DATABASE_URL", f"postgresql://postgres@{LOOPBACK}:5432/flows_bench_live"
        ),
    )
    BenchSettings.from_env()  # the same loopback-only check of the URLs
    await fresh_database(bench)
    conn = await asyncpg.connect(bench.database_url)
    log_dir = Path(tempfile.mkdtemp(prefix="flows-bench-live-"))
    server = LiveServer(bench, log_dir, workers=1)
    try:
        world = await seed(conn)
        server.start()
        sub = await subscriptions(server, bench, conn, args, world)
        print(
            f"subscriptions: {sub['subscribers']} subscribers, {sub['events']} events "
            f"(committed at {sub['commit_rate']:.0f}/s): {sub['events_per_s']:.1f} events/s "
            f"to all, {sub['deliveries_per_s']:.0f} deliveries/s, commit→delivery "
            f"p50 {sub['p50_ms']:.1f} ms p99 {sub['p99_ms']:.1f} ms, missing {sub['missing']}",
            flush=True,
        )
        hooks = []
        for endpoints in args.endpoints:
            hook = await webhooks(server, bench, conn, args, world, endpoints)
            hooks.append(hook)
            print(
                f"webhooks: {hook['endpoints']} endpoint(s), {hook['events']} events: "
                f"{hook['deliveries_per_s']:.1f} deliveries/s, commit→receipt "
                f"p50 {hook['p50_ms']:.1f} ms p99 {hook['p99_ms']:.1f} ms, "
                f"missing {hook['missing']}",
                flush=True,
            )
        print(f"server log: {server.log_path}")
        missing = sub["missing"] + sum(h["missing"] for h in hooks)
        return 1 if missing else 0
    finally:
        server.stop()
        await conn.close()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.live", description=__doc__)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--webhook-events", type=int, default=1000)
    parser.add_argument(
        "--endpoints",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 10],
        help="endpoint counts to measure, comma-separated (default 1,10)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse())))
