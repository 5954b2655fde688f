"""Running a mutation: one transaction, user errors instead of exceptions."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import strawberry
from sqlalchemy.exc import DBAPIError, IntegrityError

from .. import faults, logs
from ..context import Context
from ..services.problems import ErrorCode, Problem, Rejected, sqlstate
from ..services.tx import Tx
from ..types.errors import UserError

log = logging.getLogger(__name__)

R = TypeVar("R")

UNSTORABLE_TEXT = "Text may not contain a NUL character or an unpaired surrogate."

# When a concurrent write slips past validation, the database's own refusal becomes
# the same user error validation would have given.
SQLSTATE_CODES = {
    "23505": (ErrorCode.DUPLICATE, "Already exists."),
    "23503": (ErrorCode.NOT_FOUND, "A referenced object does not exist."),
    "23514": (ErrorCode.INVALID, "A value is out of its allowed range."),
    "23P01": (ErrorCode.OCCUPANCY_OVERLAP, "Overlaps an existing occupancy."),
    "22003": (ErrorCode.INVALID, "A number is too large."),
    "22021": (ErrorCode.INVALID, UNSTORABLE_TEXT),
    "22P05": (ErrorCode.INVALID, UNSTORABLE_TEXT),
}


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether `kind` is among the causes of `exc` (the driver wraps errors twice)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or getattr(seen, "orig", None)
    return False


async def run(
    info: strawberry.Info[Context, None], work: Callable[[Tx], Awaitable[R]]
) -> tuple[R | None, list[UserError]]:
    """Run `work` in one transaction: (its result, []) when committed, or (None, user
    errors) when it refused its input — and then nothing it wrote is kept. A database
    fault, or the request's cutoff, is a user error too (`UNAVAILABLE`, `TIMEOUT`), so
    a request of several mutations still reports what each one did."""
    context = info.context
    committing = False
    try:
        context.cutoff.check()
        async with context.db.write() as conn:
            async with context.cutoff.scope():
                result = await work(Tx(conn, context.viewer, context.today))
            committing = True
    except Rejected as rejected:
        return None, [UserError.of(p) for p in rejected.problems]
    except UnicodeEncodeError:
        # An unpaired surrogate cannot even be encoded for PostgreSQL.
        return None, [UserError.of(Problem((), ErrorCode.INVALID, UNSTORABLE_TEXT))]
    except faults.Cut as cut:
        return None, [_fault(context, cut.code, cut, cut.message + NOTHING_WRITTEN)]
    except (IntegrityError, DBAPIError) as exc:
        if _caused_by(exc, UnicodeEncodeError):
            return None, [UserError.of(Problem((), ErrorCode.INVALID, UNSTORABLE_TEXT))]
        state = sqlstate(exc)
        if state not in SQLSTATE_CODES:
            fault = faults.classify(exc)
            if fault is None:
                raise
            return None, [_fault(context, fault, exc, committing=committing)]
        code, message = SQLSTATE_CODES[state]
        log.info("mutation refused by the database", extra={"sqlstate": state})
        return None, [UserError.of(Problem((), code, message))]
    except Exception as exc:
        fault = faults.classify(exc)
        if fault is None:
            raise
        return None, [_fault(context, fault, exc, committing=committing)]
    context.outcome.committed = True
    return result, []


NOTHING_WRITTEN = " Nothing of this mutation was written."
UNKNOWN_OUTCOME = (
    "The database went away while this mutation was committing: it may or may not have"
    " been applied. Retry with the same idempotency key, or check before repeating."
)


def _fault(
    context: Context,
    code: str,
    error: BaseException,
    message: str | None = None,
    *,
    committing: bool = False,
) -> UserError:
    """The user error of a mutation stopped by a fault; rolled back unless `committing`."""
    context.outcome.faults.add(code)
    if message is None:
        message = UNKNOWN_OUTCOME if committing else faults.MESSAGES[code]
    logs.failure(log, logging.WARNING, "mutation stopped", error, code, committing=committing)
    return UserError.of(Problem((), ErrorCode(code), message))
