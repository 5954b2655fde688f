"""Solar credits (rules.md §4).

    credit_pence_per_day = credit_pence_per_year / 366 in a leap year (of the tariff's
                           period start), else / 365
    credit_pence         = trunc(capacity_kW × days_in_month × credit_pence_per_day)

`days_in_month` is always the whole month. No tariff in force, or capacity 0, gives 0.
"""

from __future__ import annotations

import calendar
import math
from datetime import date
from decimal import Decimal
from fractions import Fraction

from .billing import days_in_month


def days_in_year(year: int) -> int:
    return 366 if calendar.isleap(year) else 365


def credit_pence_per_day(credit_pence_per_year: Decimal, period_start: date) -> Decimal:
    """The daily rate as stored and shown (28 significant digits when inexact)."""
    return credit_pence_per_year / days_in_year(period_start.year)


def monthly_credit_pence(
    capacity_kw: Decimal | None,
    month: date,
    credit_pence_per_year: Decimal | None,
    tariff_period_start: date | None,
) -> int:
    """Whole pence, toward zero. Computed as an exact fraction (per year / days in the
    tariff's year), so no rounding of the daily rate can shift a penny."""
    if not capacity_kw or credit_pence_per_year is None or tariff_period_start is None:
        return 0
    exact = (
        Fraction(capacity_kw)
        * days_in_month(month)
        * Fraction(credit_pence_per_year)
        / days_in_year(tariff_period_start.year)
    )
    return math.trunc(exact)
