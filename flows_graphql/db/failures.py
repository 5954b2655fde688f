"""Database failures told as what to fix: for the command line, one line each."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator

import asyncpg
from sqlalchemy.engine import make_url


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it wraps (SQLAlchemy's `orig`, causes, contexts)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend([getattr(current, "orig", None), current.__cause__, current.__context__])


def _where() -> tuple[str, str, str]:
    """(server, database, user) of DATABASE_URL, without its password."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        return "the embedded PostgreSQL", "flows", "postgres"
    try:
        parsed = make_url(url)
    except Exception:
        return "DATABASE_URL's server", "?", "?"
    server = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    return server, parsed.database or "?", parsed.username or "?"


def explain(exc: BaseException) -> str | None:
    """One line saying what failed and what to change; None when it is no database
    failure this knows."""
    server, database, user = _where()
    for cause in _chain(exc):
        # PgBouncer passes the server's refusal on without its code.
        if isinstance(cause, asyncpg.InvalidCatalogNameError) or (
            isinstance(cause, asyncpg.PostgresError)
            and f'database "{database}" does not exist' in str(cause)
        ):
            return (
                f"database {database!r} does not exist on {server}: create it "
                f"(createdb {database}) or name another in DATABASE_URL"
            )
        if isinstance(cause, asyncpg.InvalidPasswordError):
            return f"PostgreSQL at {server} refused the password of {user!r}: correct DATABASE_URL"
        if isinstance(cause, asyncpg.InvalidAuthorizationSpecificationError):
            return f"PostgreSQL at {server} refused user {user!r} ({cause}): correct DATABASE_URL"
        if isinstance(cause, asyncpg.InsufficientPrivilegeError):
            return (
                f"the user {user!r} of DATABASE_URL lacks a privilege ({cause}); see the "
                "README (Configuration) for what it needs"
            )
        if isinstance(cause, socket.gaierror):
            return f"the host of DATABASE_URL ({server}) is not known: correct DATABASE_URL"
        if isinstance(cause, ConnectionRefusedError) or (
            isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED
        ):
            return (
                f"cannot reach PostgreSQL at {server} (connection refused): start it, or "
                "correct the host and port in DATABASE_URL"
            )
        if isinstance(cause, TimeoutError):
            return f"PostgreSQL at {server} did not answer in time: check DATABASE_URL"
        if "unsupported startup parameter" in str(cause):
            # PgBouncer's refusal of the settings a direct connection carries.
            return (
                f"{server} is a connection pooler (PgBouncer) that refuses our connection "
                "settings: set FLOWS_DATABASE_POOLER=pgbouncer (docs/pooling.md)"
            )
        if isinstance(cause, asyncpg.CannotConnectNowError):
            return f"PostgreSQL at {server} is starting or shutting down: try again shortly"
        if isinstance(cause, OSError) and cause.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return f"cannot reach {server} (no route): correct the host in DATABASE_URL"
    return None
