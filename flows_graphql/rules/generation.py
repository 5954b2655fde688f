"""Quarterly tariff generation (rules.md §2).

Publishing the benchmark of a region from P gives each `auto` ESCO of the region:
1. a microgrid tariff from P if it has none: discount and prepayment settings carried
   forward from its latest microgrid tariff starting in [P - 3 months, P), else the
   defaults;
2. a customer tariff from P for each eligible customer without one: discount carried
   forward from the customer's latest tariff starting in [P - 3 months, P), else the
   ESCO's microgrid discount from P.
Existing rows keep their settings (they are only recomputed, elsewhere).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from uuid import UUID

DEFAULT_DISCOUNT = 25
DEFAULT_EMERGENCY_CREDIT = Decimal("15.00")
DEFAULT_ECREDIT_BUTTON_THRESHOLD = Decimal("10.00")
DEFAULT_DEBT_RECOVERY_RATE = Decimal("0.25")


@dataclass(frozen=True)
class MicrogridSettings:
    discount_percent: int
    emergency_credit: Decimal
    ecredit_button_threshold: Decimal
    debt_recovery_rate: Decimal


DEFAULT_SETTINGS = MicrogridSettings(
    DEFAULT_DISCOUNT,
    DEFAULT_EMERGENCY_CREDIT,
    DEFAULT_ECREDIT_BUTTON_THRESHOLD,
    DEFAULT_DEBT_RECOVERY_RATE,
)


@dataclass(frozen=True)
class PastMicrogridTariff:
    period_start: date
    settings: MicrogridSettings


@dataclass(frozen=True)
class PastCustomerTariff:
    customer_id: UUID
    period_start: date
    discount_percent: int


def months_before(day: date, months: int) -> date:
    """The same day `months` earlier, clamped to the end of a shorter month."""
    month_index = day.year * 12 + day.month - 1 - months
    year, month = divmod(month_index, 12)
    month += 1
    for candidate in (day.day, 30, 29, 28):
        try:
            return date(year, month, min(day.day, candidate))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def carry_forward_window(period_start: date) -> tuple[date, date]:
    """[P - 3 months, P): where a previous tariff's settings are carried from."""
    return months_before(period_start, 3), period_start


def _in_window(start: date, period_start: date) -> bool:
    low, high = carry_forward_window(period_start)
    return low <= start < high


def new_microgrid_settings(
    period_start: date, past: Iterable[PastMicrogridTariff]
) -> MicrogridSettings:
    """Settings of a new microgrid tariff from P (rule 2.1)."""
    recent = [t for t in past if _in_window(t.period_start, period_start)]
    if not recent:
        return DEFAULT_SETTINGS
    return max(recent, key=lambda t: t.period_start).settings


def new_customer_discounts(
    period_start: date,
    eligible: Iterable[UUID],
    have_tariff_from_p: set[UUID],
    past: Iterable[PastCustomerTariff],
    microgrid_discount: int,
) -> dict[UUID, int]:
    """The discount of each new customer tariff from P (rule 2.2): eligible customers
    without a tariff from P, carried forward or the ESCO's microgrid discount."""
    latest: dict[UUID, PastCustomerTariff] = {}
    for tariff in past:
        if not _in_window(tariff.period_start, period_start):
            continue
        current = latest.get(tariff.customer_id)
        if current is None or tariff.period_start > current.period_start:
            latest[tariff.customer_id] = tariff
    discounts: dict[UUID, int] = {}
    for customer_id in eligible:
        if customer_id in have_tariff_from_p:
            continue
        previous = latest.get(customer_id)
        discounts[customer_id] = (
            previous.discount_percent if previous is not None else microgrid_discount
        )
    return discounts
