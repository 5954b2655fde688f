"""What day it is for billing: the date in Great Britain (Europe/London)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

BILLING_ZONE = ZoneInfo("Europe/London")

Today = Callable[[], date]


def london_today() -> date:
    return datetime.now(BILLING_ZONE).date()


# The business window of the dates a mutation records (docs/limits.md): nothing of
# Flows predates 2000, and nothing is planned more than a year ahead. A date outside
# is a typo (2062 for 2026), refused before it can lock anything in.
EARLIEST_DAY = date(2000, 1, 1)


def latest_day(today: date) -> date:
    """A year after `today` (28 February for 29 February)."""
    try:
        return today.replace(year=today.year + 1)
    except ValueError:
        return today.replace(year=today.year + 1, day=28)


def outside_window(day: date, today: date) -> str | None:
    """Why `day` is outside the window, or None when it is inside."""
    if day < EARLIEST_DAY:
        return f"Must not be before {EARLIEST_DAY}."
    if day > latest_day(today):
        return f"Must not be after {latest_day(today)}, a year from today."
    return None
