"""Tariffs (rules.md §1): microgrid and customer prices from the benchmark in force.

    factor            = 1 - discount / 100
    microgrid rate    = factor × benchmark rate            (exact)
    customer rate     = trunc5(factor × benchmark rate)    (toward zero, 5 dp)

Both use the *benchmark* in force on the tariff's period start, never each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_DOWN, Decimal
from typing import Protocol, TypeVar

FIVE_PLACES = Decimal("0.00001")


@dataclass(frozen=True)
class Rates:
    """A unit rate (GBP/kWh) and a standing charge (GBP/day)."""

    unit_rate: Decimal
    standing_charge: Decimal


ZERO_RATES = Rates(Decimal(0), Decimal(0))


def trunc5(value: Decimal) -> Decimal:
    """Truncate toward zero at 5 decimal places (0.518245 → 0.51824, not 0.51825)."""
    return value.quantize(FIVE_PLACES, rounding=ROUND_DOWN)


def discount_factor(discount_percent: int) -> Decimal:
    if not 0 <= discount_percent <= 100:
        raise ValueError(f"discount must be 0..100, not {discount_percent}")
    return 1 - Decimal(discount_percent) / 100


def microgrid_rates(benchmark: Rates, discount_percent: int) -> Rates:
    factor = discount_factor(discount_percent)
    return Rates(factor * benchmark.unit_rate, factor * benchmark.standing_charge)


def customer_rates(benchmark: Rates, discount_percent: int) -> Rates:
    factor = discount_factor(discount_percent)
    return Rates(trunc5(factor * benchmark.unit_rate), trunc5(factor * benchmark.standing_charge))


class Dated(Protocol):
    @property
    def period_start(self) -> date: ...


D = TypeVar("D", bound=Dated)


def in_force(rows: Iterable[D], on: date) -> D | None:
    """The row in force on a day: the greatest period_start <= that day."""
    best: D | None = None
    for row in rows:
        if row.period_start <= on and (best is None or row.period_start > best.period_start):
            best = row
    return best
