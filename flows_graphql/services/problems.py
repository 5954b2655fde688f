"""User errors: what a mutation answers to bad input instead of an exception."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from ..rules.clock import outside_window


class ErrorCode(enum.Enum):
    NOT_FOUND = "NOT_FOUND"
    INVALID = "INVALID"
    DUPLICATE = "DUPLICATE"
    NO_BENCHMARK = "NO_BENCHMARK"
    FUTURE_MONTH = "FUTURE_MONTH"
    MONTH_FINALIZED = "MONTH_FINALIZED"
    RUN_IN_PROGRESS = "RUN_IN_PROGRESS"
    CUSTOMER_SUSPENDED = "CUSTOMER_SUSPENDED"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    INVALID_STATUS_TRANSITION = "INVALID_STATUS_TRANSITION"
    OCCUPANCY_OVERLAP = "OCCUPANCY_OVERLAP"
    METER_DECOMMISSIONED = "METER_DECOMMISSIONED"
    TERMS_NOT_ALLOWED = "TERMS_NOT_ALLOWED"
    NO_APP_URL = "NO_APP_URL"
    INVITE_EXPIRED = "INVITE_EXPIRED"
    INVITE_USED = "INVITE_USED"
    INVITE_EMAIL_MISMATCH = "INVITE_EMAIL_MISMATCH"
    FORBIDDEN = "FORBIDDEN"
    # Not the input's fault: the database was unreachable, or the mutation ran out of
    # time; nothing was written, retry (docs/failures.md).
    UNAVAILABLE = "UNAVAILABLE"
    TIMEOUT = "TIMEOUT"


@dataclass(frozen=True)
class Problem:
    """One user error: the input path it is about (camelCase, list indexes as
    strings), a code and a sentence for people."""

    field: tuple[str, ...]
    code: ErrorCode
    message: str


class Rejected(Exception):
    """Raised by a service to refuse its input; nothing it did is kept."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = list(problems)


def reject(field: str | Sequence[str], code: ErrorCode, message: str) -> Rejected:
    path = (field,) if isinstance(field, str) else tuple(field)
    return Rejected([Problem(path, code, message)])


class Problems:
    """Collects every problem of an input before deciding, so a client sees them all."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, field: str | Sequence[str], code: ErrorCode, message: str) -> None:
        path = (field,) if isinstance(field, str) else tuple(field)
        self.items.append(Problem(path, code, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise Rejected(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)


def check_window(problems: Problems, field: str | Sequence[str], day: date, today: date) -> None:
    """A date a mutation records must be within the business window (rules/clock.py)."""
    why = outside_window(day, today)
    if why is not None:
        problems.add(field, ErrorCode.INVALID, why)


def require_window(field: str | Sequence[str], day: date, today: date) -> None:
    problems = Problems()
    check_window(problems, field, day, today)
    problems.raise_if_any()


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error (the driver wraps it twice), if any."""
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(
        getattr(orig, "__cause__", None), "sqlstate", None
    )
