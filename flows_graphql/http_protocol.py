"""uvicorn's httptools protocol, writing a response's head and body in one piece.

uvicorn writes the status line and headers when the application sends
`http.response.start`, and the body when it sends `http.response.body`: two socket
writes, two TCP segments, for an answer that fits in one. On this machine the second
write cost a small GraphQL request about a tenth of the server's CPU (the kernel's
loopback delivery is charged to the writer). Here the head is held until the first body
message and written with it; a head with no body message after it (HEAD, an
application that fails in between) is written as soon as that is known, or dropped
with the connection uvicorn closes, as before it would have been cut.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


class _Held:
    """Takes what uvicorn writes for the head, instead of the socket."""

    __slots__ = ("chunks", "transport")

    def __init__(self, transport: Any) -> None:
        self.chunks: list[bytes] = []
        self.transport = transport

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class _Joined:
    """The socket, with the held head in front of the first write (and written before
    the socket is closed, when nothing was: a HEAD answer on a closing connection)."""

    __slots__ = ("head", "transport")

    def __init__(self, transport: Any, head: bytes) -> None:
        self.transport, self.head = transport, head

    def write(self, data: bytes) -> None:
        head, self.head = self.head, b""
        self.transport.write(head + data if head else data)

    def close(self) -> None:
        head, self.head = self.head, b""
        if head:
            self.transport.write(head)
        self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class OneWriteCycle(RequestResponseCycle):
    _head: bytes | None = None

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.start" and not self.response_started:
            transport = self.transport
            held = _Held(transport)
            self.transport = held  # type: ignore[assignment]
            try:
                await super().send(message)
            finally:
                self.transport = transport
            if held.chunks:
                self._head = b"".join(held.chunks)
            return
        head, self._head = self._head, None
        if head is None:
            await super().send(message)
            return
        transport = self.transport
        joined = _Joined(transport, head)
        self.transport = joined  # type: ignore[assignment]
        try:
            await super().send(message)
        finally:
            self.transport = transport
            if joined.head and not self.disconnected:
                transport.write(joined.head)  # nothing was written with it (HEAD)


class OneWriteProtocol(HttpToolsProtocol):
    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        cycle.__class__ = OneWriteCycle
        super()._start_asgi_task(cycle, app)
