"""What day it is for billing: the date in Great Britain (Europe/London)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

BILLING_ZONE = ZoneInfo("Europe/London")

Today = Callable[[], date]


def london_today() -> date:
    return datetime.now(BILLING_ZONE).date()
