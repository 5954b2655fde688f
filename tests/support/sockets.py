"""The API on a real socket for WebSocket clients (graphql-transport-ws): the server, a
subscriber, and the answers of a refused connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
import websockets

from flows_graphql.app import create_app
from flows_graphql.config import Settings
from tests.support import live
from tests.support.api import TODAY, bearer


@contextlib.asynccontextmanager
async def serving(settings: Settings, database_url: str) -> AsyncIterator[tuple[str, Any]]:
    """The app of `settings` (quick pings and rechecks) under uvicorn on a loopback
    port, lifespan on; yields (ws url, app)."""
    quick = replace(settings, ws_ping_seconds=0.2, ws_idle_seconds=30, ws_recheck_seconds=0.5)
    app = create_app(quick, database_url, today=lambda: TODAY)
    async with live.serving(app) as port:
        yield f"ws://127.0.0.1:{port}/graphql", app


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

    async def next(self, within: float = 5) -> dict[str, Any]:
        """The next message that is not a ping or pong, within `within` seconds."""
        async with asyncio.timeout(within):
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


async def feeds_open(app: Any, n: int) -> None:
    """Wait until the server's broker has `n` feeds open: the subscriptions are live
    (the protocol itself has no "subscribed" message)."""
    async with asyncio.timeout(10):
        while len(app.state.broker.feeds) < n:  # noqa: ASYNC110 (another task's state)
            await asyncio.sleep(0.01)


def token(settings: Settings, role: str, **claims: Any) -> dict[str, str]:
    return {"Authorization": bearer(settings, role, **claims)["Authorization"]}
