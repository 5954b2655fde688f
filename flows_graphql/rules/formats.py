"""The text forms the API accepts for decimals, dates and instants — strictly.

Python's own parsers are generous: `Decimal("1_000")`, `Decimal(" 7 ")` and
`Decimal("١٢٣")` (Arabic-Indic digits) are numbers, `date.fromisoformat("20250101")` is a
date. A client that sends those made a mistake somewhere, and money must not be read
from a guess; so only the one plain form of each is accepted (docs/limits.md)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal

# ASCII only: `\d` would match every Unicode digit.
DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})"
)
# Longer than any NUMERIC column of ours could hold; refused before Decimal works on it.
MAX_DECIMAL_CHARS = 40


def parse_decimal(text: str) -> Decimal:
    if len(text) > MAX_DECIMAL_CHARS or DECIMAL.fullmatch(text) is None:
        raise ValueError(
            f"{text[:MAX_DECIMAL_CHARS]!r} is not a decimal number: ASCII digits, an optional "
            'leading "-" and "." fraction, e.g. "-12.34".'
        )
    return Decimal(text)


def parse_date(text: str) -> date:
    if DATE.fullmatch(text) is None:
        raise ValueError(f"{text[:40]!r} is not a date written YYYY-MM-DD.")
    return date.fromisoformat(text)


def parse_datetime(text: str) -> datetime:
    """An instant with its UTC offset, within the years 1–9999 also in UTC (PostgreSQL
    stores it in UTC: 9999-12-31T23:59:59-12:00 is a year 10000 there)."""
    if DATETIME.fullmatch(text) is None:
        raise ValueError(
            f"{text[:40]!r} is not an ISO 8601 instant with its UTC offset, "
            "e.g. 2025-03-10T09:00:00+00:00."
        )
    parsed = datetime.fromisoformat(text)
    try:
        parsed.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(f"{text!r} is out of range.") from exc
    return parsed
