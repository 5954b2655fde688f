"""Monthly costs (rules.md §3).

For one meter and month M, at the occupier's customer tariff (and, to compare, at
the microgrid tariff and the benchmark in force on M; a missing one counts 0):

    power           = unit_rate × power_kWh
    heat            = unit_rate × heat_kWh
    standing_charge = standing_charge_rate × days
    total           = power + heat + standing_charge

`days` is the number of days in M, or for the current month the days elapsed so far
including today. Solar kWh is recorded, not billed. Nothing is rounded.
"""

from __future__ import annotations

import calendar
import enum
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from .tariffs import ZERO_RATES, Rates


class SkipReason(enum.Enum):
    NO_OCCUPIER = "NO_OCCUPIER"
    NO_TARIFF = "NO_TARIFF"


@dataclass(frozen=True)
class Usage:
    power_kwh: Decimal
    heat_kwh: Decimal


@dataclass(frozen=True)
class Costs:
    power: Decimal
    heat: Decimal
    standing_charge: Decimal
    total: Decimal


def days_in_month(month: date) -> int:
    return calendar.monthrange(month.year, month.month)[1]


def is_future_month(month: date, today: date) -> bool:
    return (month.year, month.month) > (today.year, today.month)


def billable_days(month: date, today: date) -> int:
    """Days of M billed: all of them, or month-to-date (including today) for the
    current month. Future months cannot be billed."""
    if is_future_month(month, today):
        raise ValueError("a future month cannot be billed")
    if (month.year, month.month) == (today.year, today.month):
        return today.day
    return days_in_month(month)


def costs(rates: Rates | None, usage: Usage, days: int) -> Costs:
    rates = rates or ZERO_RATES
    power = rates.unit_rate * usage.power_kwh
    heat = rates.unit_rate * usage.heat_kwh
    standing = rates.standing_charge * days
    return Costs(power, heat, standing, power + heat + standing)


def skip_reason(occupier_found: bool, tariff_found: bool) -> SkipReason | None:
    """Why a metered property is not billed, if it is not."""
    if not occupier_found:
        return SkipReason.NO_OCCUPIER
    if not tariff_found:
        return SkipReason.NO_TARIFF
    return None
