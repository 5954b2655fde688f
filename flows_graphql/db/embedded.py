"""The embedded PostgreSQL (PyPI `pgserver`) used when no DATABASE_URL is given.

It lives in a data folder, is created on first start and reused afterwards, and is
stopped when the last process using it exits.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import psutil

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
        _forget_dead_handles(pgdata)
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    _ensure_database(server, DATABASE)
    url: str = server.get_uri(DATABASE)
    log.debug("embedded postgresql ready", extra={"pgdata": str(pgdata)})
    return url


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop processes that died without their exit hook from pgserver's handle list.

    pgserver stops the server when the last process in that list exits; a process
    killed by a signal never leaves it, and the server would then never be stopped.
    """
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _ensure_database(server: object, name: str) -> None:
    out = server.psql(  # type: ignore[attr-defined]
        f"SELECT 1 FROM pg_database WHERE datname = '{name}';"
    )
    if "(1 row)" not in out:
        server.psql(f"CREATE DATABASE {name};")  # type: ignore[attr-defined]


def database_url(settings: Settings) -> str:
    """DATABASE_URL when given, else the embedded server in FLOWS_DATA_DIR."""
    return settings.database_url or start(settings.data_dir)
