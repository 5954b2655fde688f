"""A real server for the tests that talk to it over TCP, as a client or a browser would:
`flows-graphql serve --demo` in a subprocess, on a database of its own and a free
loopback port. And the Node programs of tests/node (the GraphQL-over-HTTP audit,
GraphiQL in Chromium), installed with `npm ci` from their lock file.

These tests skip only when a tool is missing (node, npm, a Chromium), and say which;
`FLOWS_REQUIRE_E2E=1` (set by .ci/run, which installs them) makes a missing tool a
failure instead, so CI cannot pass by skipping.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
import uvicorn

from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "tests" / "node"
REQUIRED = os.environ.get("FLOWS_REQUIRE_E2E") == "1"
SERVE = (sys.executable, "-m", "flows_graphql.cli", "serve", "--demo")
# The suite's own choices a server it starts keeps: E2E required, the pooler it runs
# through (.ci/run's third pass) and the database past it.
PASSED_ON = {"FLOWS_REQUIRE_E2E", "FLOWS_DATABASE_POOLER", "FLOWS_DATABASE_DIRECT_URL"}


def environment(*dropped: str) -> dict[str, str]:
    """This process's environment for a server or CLI it starts: without the FLOWS_
    settings (and variables starting with `dropped`) but those PASSED_ON."""
    prefixes = ("FLOWS_", *dropped)
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes) or k in PASSED_ON}


def missing(what: str) -> NoReturn:
    """Skip (or, under FLOWS_REQUIRE_E2E=1, fail) for a tool that is not installed."""
    if REQUIRED:
        pytest.fail(f"{what} (FLOWS_REQUIRE_E2E=1: required here)")
    pytest.skip(what)


def node() -> str:
    """The `node` binary, with tests/node's packages installed (npm ci, once per lock)."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        missing("node and npm are needed for tests/node (Debian: apt-get install nodejs npm)")
    lock = (NODE_DIR / "package-lock.json").read_bytes()
    stamp = NODE_DIR / "node_modules" / ".installed-from-lock"
    digest = hashlib.sha256(lock).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci in tests/node failed:\n{done.stdout}\n{done.stderr}")
        stamp.write_text(digest)
    return node


def run_node(script: str, *args: str, timeout: float = 120) -> Any:
    """Run tests/node/<script> and return the JSON it prints."""
    done = subprocess.run(
        [node(), str(NODE_DIR / script), *args],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return json.loads(done.stdout)


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    admin_token: str
    log: Path

    @property
    def graphql_url(self) -> str:
        return f"{self.base_url}/graphql"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _printed_admin_token(log: Path) -> str | None:
    """The admin token `serve --demo` printed, as a user would copy it."""
    lines = log.read_text(errors="replace").splitlines()
    for index, line in enumerate(lines[:-1]):
        if line.strip() == "admin:":
            return lines[index + 1].strip()
    return None


@contextlib.contextmanager
def demo_server(database_url: str, workdir: Path) -> Iterator[LiveServer]:
    """`flows-graphql serve --demo` on `database_url` (an empty database), until exit."""
    env = environment()
    env.update(
        DATABASE_URL=database_url,
        FLOWS_DATA_DIR=str(workdir / "data"),
        FLOWS_JWT_SECRET=secrets.token_hex(32),
        FLOWS_ENV="development",
    )
    for attempt in range(3):
        port = free_port()
        log = workdir / f"serve-{attempt}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*SERVE, "--host", "127.0.0.1", "--port", str(port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{port}"
        try:
            ready = _wait_ready(process, f"{base}/readyz", timeout=90)
            if not ready:
                # Another process took the port between our probe and the bind: again.
                continue
            token = _printed_admin_token(log)
            assert token, f"serve --demo printed no admin token:\n{log.read_text()}"
            yield LiveServer(base_url=base, admin_token=token, log=log)
            return
        finally:
            _stop(process)
    raise AssertionError(f"serve --demo never became ready:\n{log.read_text()[-4000:]}")


def _wait_ready(process: subprocess.Popen[bytes], url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer 200 within {timeout} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.asynccontextmanager
async def serving(app: Any, lifespan: str = "on", **options: Any) -> AsyncIterator[int]:
    """An app served by uvicorn in this event loop on a free loopback port (lifespan on:
    the event-log reader and the webhook worker run), with uvicorn's other `options`;
    yields the port."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan=lifespan, log_level="warning", **options
    )
    served = uvicorn.Server(config)
    task = asyncio.create_task(served.serve())
    for _ in range(500):
        if served.started:
            break
        await asyncio.sleep(0.01)
    port: int = served.servers[0].sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        served.should_exit = True
        # Open WebSockets would hold a graceful shutdown: force it after a moment.
        try:
            await asyncio.wait_for(asyncio.shield(task), 3)
        except TimeoutError:
            served.force_exit = True
            await task
