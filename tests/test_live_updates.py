"""Subscriptions over graphql-transport-ws, fed by the event log (issue 12).

A real server (uvicorn on a loopback port, lifespan on, so the event-log reader runs)
and a real WebSocket client. Rows are written with raw SQL or through the HTTP API;
the log's triggers turn them into events, the broker hands them to the feeds, and each
subscriber gets exactly what its own reads could see.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
import pytest
import uvicorn
import websockets
from sqlalchemy.ext.asyncio import AsyncEngine

from flows_graphql.app import create_app
from flows_graphql.auth.apikeys import create_key
from flows_graphql.config import Settings
from flows_graphql.types.node import to_global_id
from tests.conftest import TODAY, bearer

EVENTS = "subscription ($after: ID) { events(after: $after) { id type subject { id } } }"


@dataclass
class World:
    esco: uuid.UUID
    other_esco: uuid.UUID
    ann: uuid.UUID  # occupier of `home`
    bob: uuid.UUID  # another household of the same ESCO
    cat: uuid.UUID  # a customer of the other ESCO
    home: uuid.UUID
    bobs_home: uuid.UUID
    cats_home: uuid.UUID


async def _esco(raw: asyncpg.Connection, code: str) -> uuid.UUID:
    esco = uuid.uuid4()
    await raw.execute(
        "INSERT INTO escos (id, code, name, region_code) VALUES ($1, $2, $3, 'south_east')",
        esco,
        code,
        code.upper(),
    )
    return esco


async def _household(
    raw: asyncpg.Connection, esco: uuid.UUID, email: str, plot: str
) -> tuple[uuid.UUID, uuid.UUID]:
    customer, prop, account = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await raw.execute(
        "INSERT INTO customers (id, esco_id, email) VALUES ($1, $2, $3)", customer, esco, email
    )
    await raw.execute(
        "INSERT INTO properties (id, esco_id, plot) VALUES ($1, $2, $3)", prop, esco, plot
    )
    await raw.execute(
        "INSERT INTO accounts (id, esco_id, property_id, opened_on) VALUES ($1, $2, $3, "
        "'2024-01-01')",
        account,
        esco,
        prop,
    )
    await raw.execute(
        "INSERT INTO customer_accounts (customer_id, account_id, esco_id, role, start_date) "
        "VALUES ($1, $2, $3, 'occupier', '2024-01-01')",
        customer,
        account,
        esco,
    )
    return customer, account


@pytest.fixture
async def world(raw: asyncpg.Connection, engine: AsyncEngine) -> World:
    esco, other = await _esco(raw, "live"), await _esco(raw, "elsewhere")
    ann, home = await _household(raw, esco, "ann@example.com", "1")
    bob, bobs_home = await _household(raw, esco, "bob@example.com", "2")
    cat, cats_home = await _household(raw, other, "cat@example.com", "1")
    return World(esco, other, ann, bob, cat, home, bobs_home, cats_home)


@pytest.fixture
async def server(
    settings: Settings, database_url: str, engine: AsyncEngine
) -> AsyncIterator[tuple[str, Any]]:
    """The app on a real socket; yields (ws url, app)."""
    quick = replace(settings, ws_ping_seconds=0.2, ws_idle_seconds=30, ws_recheck_seconds=0.5)
    app = create_app(quick, database_url, today=lambda: TODAY)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning")
    served = uvicorn.Server(config)
    task = asyncio.create_task(served.serve())
    for _ in range(500):
        if served.started:
            break
        await asyncio.sleep(0.01)
    port = served.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/graphql", app
    finally:
        served.should_exit = True
        # Open WebSockets would hold a graceful shutdown: force it after a moment.
        try:
            await asyncio.wait_for(asyncio.shield(task), 3)
        except TimeoutError:
            served.force_exit = True
            await task


class Subscriber:
    """A graphql-transport-ws client that answers pings and collects `next` payloads."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str, payload: dict[str, str]) -> AsyncIterator[Subscriber]:
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as socket:
            await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
            ack = json.loads(await asyncio.wait_for(socket.recv(), 5))
            assert ack["type"] == "connection_ack", ack
            yield cls(socket)

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        op = uuid.uuid4().hex
        message = {"query": query, "variables": variables or {}}
        await self.socket.send(json.dumps({"id": op, "type": "subscribe", "payload": message}))
        return op

    async def next(self, timeout: float = 5) -> dict[str, Any]:
        """The next message that is not a ping or pong, within `timeout` seconds."""
        async with asyncio.timeout(timeout):
            return await self._next()

    async def _next(self) -> dict[str, Any]:
        while True:
            message = json.loads(await self.socket.recv())
            if message["type"] == "ping":
                await self.socket.send(json.dumps({"type": "pong"}))
                continue
            if message["type"] == "pong":
                continue
            return message


async def _refused(url: str, payload: dict[str, str]) -> tuple[int, str]:
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 5)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


def token(settings: Settings, role: str, **claims: Any) -> dict[str, str]:
    return {"Authorization": bearer(settings, role, **claims)["Authorization"]}


async def _key(engine: AsyncEngine, esco: uuid.UUID, scopes: list[str]) -> tuple[uuid.UUID, str]:
    async with engine.begin() as conn:
        issued = await create_key(conn, esco, scopes, "partner")
    return issued.id, issued.key


async def _pay(raw: asyncpg.Connection, w: World, customer: uuid.UUID, account: uuid.UUID) -> str:
    esco = await raw.fetchval("SELECT esco_id FROM accounts WHERE id = $1", account)
    payment = await raw.fetchval(
        "INSERT INTO payments (esco_id, customer_id, account_id, amount_pence, status, "
        "idempotency_key) VALUES ($1, $2, $3, 1200, 'created', $4) RETURNING id",
        esco,
        customer,
        account,
        uuid.uuid4().hex,
    )
    return str(payment)


async def test_each_subscriber_gets_exactly_what_it_may_see(
    server: tuple[str, Any], settings: Settings, raw: asyncpg.Connection, world: World, engine
) -> None:
    url, _ = server
    _, partner_key = await _key(engine, world.esco, ["read"])
    principals = {
        "ann": token(settings, "customer", customer_id=str(world.ann)),
        "bob": token(settings, "customer", customer_id=str(world.bob)),
        "operator": token(settings, "operator", escos=[str(world.esco)]),
        "other_operator": token(settings, "operator", escos=[str(world.other_esco)]),
        "partner": {"X-API-Key": partner_key},
    }
    async with contextlib.AsyncExitStack() as stack:
        subs = {
            name: await stack.enter_async_context(Subscriber.connect(url, payload))
            for name, payload in principals.items()
        }
        for sub in subs.values():
            await sub.subscribe(EVENTS)
        await asyncio.sleep(0.2)  # the subscriptions are open before anything commits

        anns = await _pay(raw, world, world.ann, world.home)
        await raw.execute("UPDATE payments SET status = 'pending' WHERE id = $1", uuid.UUID(anns))
        # Markers: the first event each negative subscriber may see.
        bobs = await _pay(raw, world, world.bob, world.bobs_home)
        cats = await _pay(raw, world, world.cat, world.cats_home)

        async def events(name: str, n: int) -> list[tuple[str, str]]:
            got = [await subs[name].next() for _ in range(n)]
            assert all(m["type"] == "next" for m in got), got
            return [
                (
                    m["payload"]["data"]["events"]["type"],
                    m["payload"]["data"]["events"]["subject"]["id"],
                )
                for m in got
            ]

        ann_payment = to_global_id("Payment", anns)
        bob_payment = to_global_id("Payment", bobs)
        cat_payment = to_global_id("Payment", cats)
        assert await events("ann", 2) == [
            ("payment.created", ann_payment),
            ("payment.status_changed", ann_payment),
        ]
        esco_wide = [
            ("payment.created", ann_payment),
            ("payment.status_changed", ann_payment),
            ("payment.created", bob_payment),
        ]
        assert await events("operator", 3) == esco_wide
        assert await events("partner", 3) == esco_wide
        assert await events("bob", 1) == [("payment.created", bob_payment)]
        assert await events("other_operator", 1) == [("payment.created", cat_payment)]
        # Nothing else is on its way to the customers.
        with pytest.raises(TimeoutError):
            await subs["ann"].next(timeout=0.5)
