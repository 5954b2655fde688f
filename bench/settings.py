"""Where the benchmark's database and servers live (environment variables, loopback only)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

# Load is only ever sent to this machine (the workplace forbids any other target).
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class BenchSettings:
    # postgresql://… of the benchmark database; dropped and re-created by the generator.
    database_url: str
    our_port: int
    postgraphile_port: int
    jwt_secret: str

    @property
    def database_name(self) -> str:
        return urlsplit(self.database_url).path.lstrip("/")

    @property
    def maintenance_url(self) -> str:
        """The same server's `postgres` database, to drop and create the bench database."""
        parts = urlsplit(self.database_url)
        return urlunsplit(parts._replace(path="/postgres"))

    @classmethod
    def from_env(cls) -> BenchSettings:
        url = os.environ.get(
            "BENCH_DATABASE_URL", f"postgresql://postgres@{LOOPBACK}:5432/flows_bench"
        )
        host = urlsplit(url).hostname or ""
        if host not in {LOOPBACK, "localhost", "::1", ""}:
            raise SystemExit(f"BENCH_DATABASE_URL must point at this machine, not {host!r}")
        return cls(
            database_url=url,
            our_port=int(os.environ.get("BENCH_OUR_PORT", "8710")),
            postgraphile_port=int(os.environ.get("BENCH_POSTGRAPHILE_PORT", "8711")),
            # A fixed secret: tokens are made by the driver, verified by the server it starts.
            jwt_secret=os.environ.get("BENCH_JWT_SECRET", "bench-secret-not-for-production-use"),
        )
