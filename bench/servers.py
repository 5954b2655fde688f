"""Starting and stopping the servers under test, on loopback ports, logging to files.

Each server runs in its own session (process group), so stopping it ends its workers
too and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .settings import LOOPBACK, BenchSettings

BENCH_DIR = Path(__file__).resolve().parent
POSTGRAPHILE_MODULES = BENCH_DIR / ".postgraphile" / "node_modules"
POSTGRAPHILE_SERVER = BENCH_DIR / "postgraphile" / "server.js"
READY_TIMEOUT = 60.0


class Server:
    name: str
    port: int

    def __init__(self, log_dir: Path) -> None:
        self.log_path = log_dir / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/graphql"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        raise NotImplementedError

    def ready(self, client: httpx.Client) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        # A server already on the port (another bench run) would answer `ready` while
        # ours exits: every figure would then be that server's.
        with socket.socket() as probe:
            # As the servers bind: a closed run's connections in TIME_WAIT do not count.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((LOOPBACK, self.port))
            except OSError:
                raise SystemExit(
                    f"{self.name}: port {self.port} is in use (another bench run?); "
                    "stop it or choose another port (bench/settings.py)"
                ) from None
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                env={**os.environ, **self.environment()},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise SystemExit(f"{self.name} exited at start; see {self.log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if self.ready(client):
                        return
                time.sleep(0.25)
        self.stop()
        raise SystemExit(f"{self.name} was not ready in {READY_TIMEOUT:.0f}s; see {self.log_path}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # Only the group this object started (its session): the server and its workers.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class OurServer(Server):
    name = "flows-graphql"

    def __init__(
        self,
        settings: BenchSettings,
        log_dir: Path,
        workers: int,
        pooled_url: str | None = None,
        manifest: Path | None = None,
    ) -> None:
        self.port = settings.our_port
        self.settings = settings
        self.workers = workers
        # `--pgbouncer`: the server reaches the database through PgBouncer at this URL.
        self.pooled_url = pooled_url
        # Trusted documents (bench.run --trusted): the manifest the server loads.
        self.manifest = manifest
        super().__init__(log_dir)

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "flows_graphql.cli",
            "serve",
            "--host",
            LOOPBACK,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]

    def environment(self) -> dict[str, str]:
        pooler = (
            {
                "DATABASE_URL": self.pooled_url,
                "FLOWS_DATABASE_POOLER": "pgbouncer",
                "FLOWS_DATABASE_DIRECT_URL": self.settings.database_url,
            }
            if self.pooled_url
            else {"DATABASE_URL": self.settings.database_url}
        )
        return {
            **pooler,
            "FLOWS_JWT_SECRET": self.settings.jwt_secret,
            # Responses carry extensions.sqlStatements (a counter per statement).
            "FLOWS_DEBUG_SQL": "1",
            "FLOWS_ENV": "development",
            # Budgets no load run reaches: the accounting is measured, not the refusals.
            **{f"FLOWS_RATE_LIMIT_{tier}": str(UNREACHED_BUDGET) for tier in BUDGET_TIERS},
            **({"FLOWS_TRUSTED_DOCUMENTS": str(self.manifest)} if self.manifest else {}),
        }

    def ready(self, client: httpx.Client) -> bool:
        return client.get(self.url.replace("/graphql", "/readyz")).status_code == 200


BUDGET_TIERS = ("CUSTOMER", "OPERATOR", "PARTNER", "ADMIN")
# Requests per budget window that no run reaches (bench.single and bench.fixed too).
UNREACHED_BUDGET = 2_000_000_000


class PostGraphileServer(Server):
    name = "postgraphile"

    def __init__(self, settings: BenchSettings, log_dir: Path, workers: int, esco_ids: str) -> None:
        self.port = settings.postgraphile_port
        self.settings = settings
        self.workers = workers
        self.esco_ids = esco_ids
        super().__init__(log_dir)

    @staticmethod
    def installed() -> bool:
        return (POSTGRAPHILE_MODULES / "postgraphile").is_dir()

    def command(self) -> list[str]:
        return ["node", str(POSTGRAPHILE_SERVER)]

    def environment(self) -> dict[str, str]:
        return {
            "NODE_PATH": str(POSTGRAPHILE_MODULES),
            "NODE_ENV": "production",
            "DATABASE_URL": self.settings.database_url,
            "PORT": str(self.port),
            "WORKERS": str(self.workers),
            "ESCO_IDS": self.esco_ids,
        }

    def ready(self, client: httpx.Client) -> bool:
        response = client.post(self.url, json={"query": "{ __typename }"})
        return response.status_code == 200
