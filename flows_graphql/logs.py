"""JSON logs, each line carrying the id of the request it belongs to."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

import orjson

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "flows_request_id", default=None
)


def new_request_id() -> str:
    """A fresh request id: 32 hex digits, random (what uuid4().hex looks like, at a
    fifth of its cost on every request)."""
    return os.urandom(16).hex()


# How long an info line may wait to be written with those after it (Batched).
FLUSH_S = 0.05

# Attributes every LogRecord has; anything else was passed with `extra=` and is logged.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id.get()
        if rid:
            entry["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        try:
            # A line per request (the access log): orjson writes it in a fraction of
            # the time; what it refuses (a lone surrogate) goes the standard way.
            return orjson.dumps(entry, default=str).decode()
        except TypeError:  # orjson.JSONEncodeError is one
            return json.dumps(entry, default=str)


class Batched(logging.StreamHandler):  # type: ignore[type-arg]
    """Info lines written together, at most FLUSH_S after the first of them: a write
    of its own for each request's access line was ~2 % of the app screen's CPU
    (bench/README.md, session 7). A warning or an error goes out at once, with what
    waits before it, and so does a line logged where no event loop runs. What waits
    at exit is written by logging's own shutdown (it flushes every handler) and by the
    app's (app.lifespan); a process killed outright loses at most FLUSH_S of lines."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.pending: list[str] = []
        self.due: asyncio.TimerHandle | None = None
        self.due_loop: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.pending.append(line)
        if record.levelno >= logging.WARNING:
            self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        # A loop that ended (a test's, a CLI command's) never runs its timer.
        if self.due is None or self.due_loop is not loop:
            self.due, self.due_loop = loop.call_later(FLUSH_S, self.flush), loop

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self.due = None
            if self.pending:
                text = "\n".join(self.pending) + "\n"
                self.pending.clear()
                try:
                    self.stream.write(text)
                except Exception:
                    return
            with contextlib.suppress(Exception):
                self.stream.flush()


def flush() -> None:
    """Write the lines that wait (Batched), now."""
    for handler in logging.getLogger().handlers:
        handler.flush()


class Throttle:
    """Tracebacks of failures, rate-limited: during an outage every request fails the
    same way, and a traceback each would bury the log (946 error lines in 10 s). The
    first failure of a kind in each window carries its traceback; the others are one
    line each, the next traceback saying how many of its kind went without."""

    def __init__(self, window_s: float = 60.0) -> None:
        self.window_s = window_s
        self.last: dict[object, float] = {}
        self.without: dict[object, int] = {}

    def due(self, kind: object) -> tuple[bool, int]:
        """(whether this failure gets its traceback, how many went without since)."""
        now = time.monotonic()
        last = self.last.get(kind)
        if last is not None and now - last < self.window_s:
            self.without[kind] = self.without.get(kind, 0) + 1
            return False, 0
        if len(self.last) > 1000:  # kinds are few; never let them grow without end
            self.last.clear()
            self.without.clear()
        self.last[kind] = now
        return True, self.without.pop(kind, 0)


tracebacks = Throttle()


def failure(
    logger: logging.Logger,
    level: int,
    message: str,
    error: BaseException,
    code: str,
    **extra: Any,
) -> None:
    """One line for a failure; its traceback only when `tracebacks` says it is due."""
    due, without = tracebacks.due((code, type(error).__name__))
    details: dict[str, Any] = {
        "code": code,
        "error": type(error).__name__,
        "detail": str(error)[:300],
        **extra,
    }
    if due and without:
        details["same_without_traceback"] = without
    logger.log(
        level,
        message,
        exc_info=(type(error), error, error.__traceback__) if due else None,
        extra=details,
    )


def configure(level: str = "INFO") -> None:
    handler = Batched(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Nothing of ours reads a record's source line, thread or process (JsonFormatter
    # writes the message and the `extra` fields): the logging HOWTO's "Optimization"
    # switches, which spare every record a stack walk and three look-ups.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # pgserver narrates every start at INFO; its warnings and errors still show.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # Strawberry logs every GraphQL error with a traceback, bad input included; the
    # endpoint logs the unexpected ones itself (with the request id), once.
    logging.getLogger("strawberry.execution").setLevel(logging.CRITICAL)
    # uvicorn's own access log would duplicate ours (which has the request id).
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
