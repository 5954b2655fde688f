"""Balances and statements (rules.md §8).

For an account and month M:
- charges: the costs of the account's property for M (the month's run in force);
- solar credit: the property's credit for M, pence / 100 (GBP), credited to the account
  open on day 1 of M;
- payments: the account's `succeeded` payments whose `scheduled_at` (or creation time
  when unscheduled) falls in M, Europe/London.

    closing(M) = opening(M) + charges(M) - credit(M) - payments(M)
    opening(M) = closing(M - 1), 0 before the first month
    balance(D) = the sum of charges - credits - payments of every month up to D's month

Positive means owed by the customer. Nothing is rounded: the figures are exact
Decimals (rounding to pence is for presenting them).

The months themselves (which exist, which a viewer may see) and their sums come from
SQL (loaders/money.py); this module only chains them. For a customer those are the
charges and credits of the months they occupied on day 1 and the payments they made
themselves, in whichever month each falls (a payment is its payer's, docs/money.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

ZERO = Decimal(0)


@dataclass(frozen=True)
class MonthActivity:
    """What happened on an account in one month (every figure in GBP)."""

    month: date
    power: Decimal = ZERO
    heat: Decimal = ZERO
    standing_charge: Decimal = ZERO
    total: Decimal = ZERO
    credit: Decimal = ZERO
    payments: Decimal = ZERO

    @property
    def net(self) -> Decimal:
        return self.total - self.credit - self.payments


@dataclass(frozen=True)
class Statement:
    month: date
    opening_balance: Decimal
    activity: MonthActivity
    closing_balance: Decimal


def first_of_month(day: date) -> date:
    return day.replace(day=1)


def statements(
    months: Sequence[MonthActivity], start: date | None = None, end: date | None = None
) -> list[Statement]:
    """The statements of `months` (oldest first, one per month) whose month lies in
    [start, end] (open ends unbounded; days count as their month). The balance runs
    through every month, so the first statement shown opens at the close before it."""
    low = first_of_month(start) if start is not None else None
    high = first_of_month(end) if end is not None else None
    out: list[Statement] = []
    balance = ZERO
    for activity in months:
        opening = balance
        balance = opening + activity.total - activity.credit - activity.payments
        if (low is None or activity.month >= low) and (high is None or activity.month <= high):
            out.append(Statement(activity.month, opening, activity, balance))
    return out


def balance(months: Iterable[MonthActivity], on: date) -> Decimal:
    """What is owed on day `on`: every month up to and including its month."""
    last = first_of_month(on)
    return sum((m.net for m in months if m.month <= last), ZERO)
