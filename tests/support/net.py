"""Servers the tests start on loopback ports of their own."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from flows_graphql.config import Settings
from tests.support import ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer in {seconds} s")


@contextlib.contextmanager
def serve(
    settings: Settings,
    database_url: str,
    data_dir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    dropped: tuple[str, ...] = (),
) -> Iterator[int]:
    """`flows-graphql serve` (with `args`) in a subprocess on a free port, answering
    /healthz; yields the port and stops it after. Its environment: live.environment()
    (also without the variables starting with `dropped`), the test database, `env`."""
    from tests.support.live import environment  # live imports this module

    port = free_port()
    environ = {
        **environment(*dropped),
        "DATABASE_URL": database_url,
        "FLOWS_JWT_SECRET": settings.jwt_secret or "",
        "FLOWS_DATA_DIR": str(data_dir),
        **(env or {}),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows_graphql.cli", "serve", *args, "--port", str(port)],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", proc)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)
