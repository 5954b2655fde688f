"""A webhook receiver on loopback, served by the test itself (asyncio streams, HTTP/1.1):
it answers each request with the next scripted reply and records what it got."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

HANG = "hang"  # never answer (until the test ends)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    # Replies in turn: a status code, (status, extra headers), or HANG; the last repeats.
    script: list[Any] = field(default_factory=lambda: [200])
    delay: float = 0.0
    got: list[Received] = field(default_factory=list)
    port: int = 0
    # Requests being answered now, by webhook-id (the most at once is kept).
    inflight: dict[str, int] = field(default_factory=dict)
    most_at_once: int = 0
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    handlers: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def wait_for(self, n: int, within: float = 15.0) -> list[Received]:
        async with asyncio.timeout(within), self.arrived:
            await self.arrived.wait_for(lambda: len(self.got) >= n)
        return list(self.got)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            reply = self.script[min(len(self.got), len(self.script) - 1)]
            msg_id = headers.get("webhook-id", "")
            self.inflight[msg_id] = self.inflight.get(msg_id, 0) + 1
            self.most_at_once = max(self.most_at_once, sum(self.inflight.values()))
            async with self.arrived:
                self.got.append(Received(headers, body, time.monotonic()))
                self.arrived.notify_all()
            try:
                if reply == HANG:
                    await asyncio.sleep(3600)
                if self.delay:
                    await asyncio.sleep(self.delay)
            finally:
                self.inflight[msg_id] -= 1
            status, extra = reply if isinstance(reply, tuple) else (reply, {})
            text = "".join(f"{k}: {v}\r\n" for k, v in extra.items())
            answer = b"received" if status < 300 else b"nope"
            writer.write(
                f"HTTP/1.1 {status} X\r\ncontent-length: {len(answer)}\r\n{text}"
                "connection: close\r\n\r\n".encode()
                + answer
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            if task is not None:
                self.handlers.discard(task)


@contextlib.asynccontextmanager
async def receiving(script: list[Any] | None = None, delay: float = 0.0) -> AsyncIterator[Receiver]:
    receiver = Receiver(script=script or [200], delay=delay)
    server = await asyncio.start_server(receiver._handle, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        for task in list(receiver.handlers):
            task.cancel()
        server.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1):
                await server.wait_closed()
