"""The server's HTTP protocol (flows_graphql/http_protocol.py): a response's head and
body in one socket write, and every answer still whole."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from flows_graphql.http_protocol import OneWriteCycle, OneWriteProtocol
from tests.support.live import serving


class Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


def cycle(method: str = "GET", keep_alive: bool = True) -> tuple[RequestResponseCycle, Transport]:
    transport = Transport()
    made = RequestResponseCycle(
        scope={"method": method, "type": "http", "http_version": "1.1"},
        transport=transport,  # type: ignore[arg-type]
        flow=FlowControl(transport),  # type: ignore[arg-type]
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test.access"),
        access_log=False,
        default_headers=[],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: None,
    )
    made.__class__ = OneWriteCycle
    return made, transport


HEAD = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}


async def test_head_and_body_are_one_write():
    made, transport = cycle()
    await made.send(HEAD)
    assert transport.writes == []
    await made.send({"type": "http.response.body", "body": b"ok"})
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]
    assert made.response_complete


async def test_a_streamed_body_follows_its_first_chunk():
    made, transport = cycle()
    await made.send({"type": "http.response.start", "status": 200, "headers": []})
    await made.send({"type": "http.response.body", "body": b"a", "more_body": True})
    await made.send({"type": "http.response.body", "body": b"b", "more_body": False})
    assert transport.writes == [
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n",
        b"1\r\nb\r\n0\r\n\r\n",
    ]


async def test_a_head_request_gets_its_head():
    made, transport = cycle("HEAD")
    await made.send(HEAD)
    await made.send({"type": "http.response.body", "body": b""})
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"]


async def test_a_closing_connection_gets_the_whole_answer_first():
    for method, body in (("GET", b"ok"), ("HEAD", b"")):
        made, transport = cycle(method, keep_alive=False)
        await made.send(HEAD)
        await made.send({"type": "http.response.body", "body": body})
        head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n"
        assert transport.writes == [head + body]
        assert transport.closed


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b"x" * 100_000 if scope["path"] == "/big" else b"hello"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def test_a_server_on_it_answers_whole_responses_on_one_connection():
    async with serving(app, lifespan="off", http=OneWriteProtocol) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # Pipelined: three requests at once, answered in order.
        writer.write(
            b"GET / HTTP/1.1\r\nhost: t\r\n\r\n"
            b"HEAD / HTTP/1.1\r\nhost: t\r\n\r\n"
            b"GET /big HTTP/1.1\r\nhost: t\r\n\r\n"
        )
        await writer.drain()
        first = await reader.readuntil(b"\r\n\r\n")
        assert first.startswith(b"HTTP/1.1 200 OK") and b"content-length: 5" in first
        assert await reader.readexactly(5) == b"hello"
        second = await reader.readuntil(b"\r\n\r\n")
        assert second.startswith(b"HTTP/1.1 200 OK") and b"content-length: 5" in second
        third = await reader.readuntil(b"\r\n\r\n")
        assert b"content-length: 100000" in third
        assert await reader.readexactly(100_000) == b"x" * 100_000
        writer.close()
        # A client that asks to close: its answer, then the end of the connection.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
        assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"\r\n\r\nhello")
        writer.close()
