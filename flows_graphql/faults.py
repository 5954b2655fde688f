"""What a failure of the database means for a client: the one place where driver and
pool exceptions become the codes a client acts on (docs/failures.md).

- `UNAVAILABLE`: the database cannot be reached or stopped answering (connection
  refused or lost, the server shutting down or starting up, no connection free in the
  pool in time, a connect or command timed out on our side). HTTP 503 with
  `Retry-After`; nothing was done (a mutation's transaction was rolled back), except
  when a COMMIT was under way (the payload says the outcome is unknown).
- `TIMEOUT`: the database answered that a statement or a lock wait ran out of time
  (`statement_timeout`, `lock_timeout`), or the request hit its own running-time cap.
  Retryable; the transaction was rolled back.

Anything else is a bug and stays `INTERNAL`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg
from sqlalchemy import exc as sa_exc

UNAVAILABLE = "UNAVAILABLE"
TIMEOUT = "TIMEOUT"
# Seconds a client should wait before retrying: outages here are restarts and
# failovers of a few seconds; clients add their own backoff on repeats.
RETRY_AFTER_S = 1

_TIMEOUTS = (asyncpg.QueryCanceledError, asyncpg.LockNotAvailableError)
_OUTAGES = (
    asyncpg.PostgresConnectionError,  # class 08: connection lost, refused by the server
    asyncpg.CannotConnectNowError,  # starting up, shutting down, in recovery
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    sa_exc.TimeoutError,  # no pooled connection free within the pool timeout
    sa_exc.DisconnectionError,
    # Refused, reset, unreachable; TimeoutError is asyncpg's connect and command
    # timeout (the server did not answer in time).
    OSError,
)


class Unavailable(Exception):
    """Raised by our own code for an outage it detected itself."""


class Cut(Exception):
    """A request stopped by its cutoff (cutoff.py): its running-time cap (`TIMEOUT`),
    the end of the shutdown grace or the client hanging up (`UNAVAILABLE`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = TIMEOUT if reason == "timeout" else UNAVAILABLE

    @property
    def message(self) -> str:
        if self.reason == "timeout":
            return "The request ran longer than its time limit and was stopped."
        if self.reason == "shutdown":
            return "The server is shutting down. Retry."
        return "The client hung up."


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and what it wraps: SQLAlchemy's error, its `orig`, the driver's error,
    graphql-core's `original_error`."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo and len(seen) < 12:
        current = todo.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [
            getattr(current, "original_error", None),
            getattr(current, "orig", None),
            current.__cause__,
        ]
    return seen


def classify(exc: BaseException) -> str | None:
    """`UNAVAILABLE`, `TIMEOUT`, or None for an exception that is not a database fault."""
    for cause in _causes(exc):
        if isinstance(cause, Cut):
            return cause.code
        if isinstance(cause, _TIMEOUTS):
            return TIMEOUT
        if isinstance(cause, (Unavailable, *_OUTAGES)):
            return UNAVAILABLE
        if isinstance(cause, asyncpg.InterfaceError) and "closed" in str(cause):
            return UNAVAILABLE
        if isinstance(cause, sa_exc.DBAPIError) and cause.connection_invalidated:
            return UNAVAILABLE
    return None


def is_broken_connection(exc: BaseException) -> bool:
    """A connection found closed or lost at once (not a timeout): after a database
    restart every pooled connection is such, and a fresh one will do."""
    for cause in _causes(exc):
        if isinstance(cause, TimeoutError):
            return False
        if isinstance(
            cause,
            asyncpg.ConnectionDoesNotExistError
            | asyncpg.ConnectionFailureError
            | asyncpg.AdminShutdownError
            | asyncpg.CrashShutdownError
            | ConnectionResetError
            | BrokenPipeError
            | sa_exc.DisconnectionError,
        ):
            return True
        if isinstance(cause, asyncpg.InterfaceError) and "closed" in str(cause):
            return True
        if isinstance(cause, sa_exc.DBAPIError) and cause.connection_invalidated:
            return True
    return False


MESSAGES = {
    UNAVAILABLE: "The database is unavailable; nothing was done. Retry shortly.",
    TIMEOUT: "The database ran out of time for this request; nothing was done. Retry.",
}


@dataclass
class Outcome:
    """What a request's mutations met: the HTTP status depends on it (graphql_view)."""

    faults: set[str] = field(default_factory=set)
    committed: bool = False
