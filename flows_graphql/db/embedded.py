"""The embedded PostgreSQL (PyPI `pgserver`) used when no DATABASE_URL is given.

It lives in a data folder, is created on first start and reused afterwards, and is
stopped when the last process using it exits.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from ..config import Settings

log = logging.getLogger(__name__)

DATABASE = "flows"


def start(data_dir: Path) -> str:
    """Start (or attach to) the embedded server; return a libpq URL of its `flows` database."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset and falls back to /tmp.
        warnings.simplefilter("ignore")
        import pgserver

        pgdata = (data_dir / "pgdata").resolve()
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    _ensure_database(server, DATABASE)
    url: str = server.get_uri(DATABASE)
    log.info("embedded postgresql ready", extra={"pgdata": str(pgdata)})
    return url


def _ensure_database(server: object, name: str) -> None:
    out = server.psql(  # type: ignore[attr-defined]
        f"SELECT 1 FROM pg_database WHERE datname = '{name}';"
    )
    if "(1 row)" not in out:
        server.psql(f"CREATE DATABASE {name};")  # type: ignore[attr-defined]


def database_url(settings: Settings) -> str:
    """DATABASE_URL when given, else the embedded server in FLOWS_DATA_DIR."""
    return settings.database_url or start(settings.data_dir)
