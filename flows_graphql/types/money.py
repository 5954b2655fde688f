"""Balances, statements and monthly summaries (rules.md §8; docs/money.md).

No `from __future__ import annotations` here: the field factories build resolvers whose
annotations Strawberry must read as real objects.
"""

from datetime import date
from decimal import Decimal
from typing import Annotated, Any

import strawberry

from ..fields import RANGE, in_range, loaded
from ..loaders import money as loaders
from ..loaders.base import BaseLoader
from ..rules import statements as rules

OnDay = Annotated[
    date | None,
    strawberry.argument(description="The day (default: today on the billing clock)."),
]


@strawberry.type(description="A month's charges on a statement (GBP, exact).")
class StatementCharges:
    power: Decimal = strawberry.field(description="Power at the customer tariff.")
    heat: Decimal = strawberry.field(description="Heat at the customer tariff.")
    standing_charge: Decimal = strawberry.field(description="Standing charge x days.")
    total: Decimal = strawberry.field(description="Power + heat + standing charge.")


@strawberry.type(
    description="One month of an account: what it opened at, was charged, credited and "
    "paid, and what it closed at (GBP, exact; positive = owed by the customer; round "
    "only to present)."
)
class Statement:
    month: date = strawberry.field(description="The month (its 1st).")
    opening_balance: Decimal = strawberry.field(
        description="The closing balance of the month before (0 before the first month)."
    )
    closing_balance: Decimal = strawberry.field(
        description="Opening + charges - solar credit - payments, exactly."
    )
    activity: strawberry.Private[rules.MonthActivity]

    @strawberry.field(description="The month's costs, from its billing run in force.")
    def charges(self) -> StatementCharges:
        return self.activity  # type: ignore[return-value]  # has StatementCharges' fields

    @strawberry.field(description="The month's solar credit (pence / 100).")
    def solar_credit(self) -> Decimal:
        return self.activity.credit

    @strawberry.field(
        description="Succeeded payments scheduled (or, unscheduled, made) in the month, "
        "Europe/London."
    )
    def payments(self) -> Decimal:
        return self.activity.payments


def _current_month(info: Any, args: dict[str, Any]) -> tuple[Any, ...]:
    return (loaders.current_month(info.context.today()),)


def _balance(months: Any, info: Any, args: dict[str, Any]) -> Decimal:
    return rules.balance(months or [], args.get("on") or info.context.today())


def balance_field(loader: type[BaseLoader], description: str) -> Any:
    """`balance(on:)` of the row's months from `loader` (keyed by the row's id)."""
    return loaded(
        Decimal,
        loader,
        description,
        arguments=(("on", "on", OnDay),),
        params=_current_month,
        each=_balance,
        project=False,
    )


def _statements(months: Any, info: Any, args: dict[str, Any]) -> list[Statement]:
    return [
        Statement(
            month=s.month,
            opening_balance=s.opening_balance,
            closing_balance=s.closing_balance,
            activity=s.activity,
        )
        for s in rules.statements(months or [], args.get("from"), args.get("to"))
    ]


def statements_field(loader: type[BaseLoader], description: str) -> Any:
    """`statements(from:, to:)` of the row's months from `loader` (keyed by its id)."""
    return loaded(
        list[Statement],
        loader,
        description,
        arguments=RANGE,
        params=_current_month,
        each=_statements,
        project=False,
    )


@strawberry.type(
    description="One month of an ESCO, a site or a customer, summed in the database (GBP "
    "and kWh, exact): what the month's billing run in force billed and skipped, the solar "
    "credits and payments of the month, and what was outstanding at its end."
)
class MonthlySummary:
    month: date = strawberry.field(description="The month (its 1st).")
    customers_billed: int = strawberry.field(description="Customers with costs this month.")
    meters_skipped: int = strawberry.field(
        description="Supply meters the month's run could not bill (no occupier, no tariff)."
    )
    power_kwh: Decimal = strawberry.field(description="Power billed, kWh.")
    heat_kwh: Decimal = strawberry.field(description="Heat billed, kWh.")
    solar_kwh: Decimal = strawberry.field(
        description="Solar generated on the meters billed, kWh (recorded, not billed)."
    )
    total: Decimal = strawberry.field(description="Sum of the customers' totals.")
    microgrid_total: Decimal = strawberry.field(description="The same at the microgrid tariff.")
    benchmark_total: Decimal = strawberry.field(description="The same at the benchmark.")
    savings: Decimal = strawberry.field(description="Benchmark total minus total.")
    solar_credits: Decimal = strawberry.field(
        description="Solar credits credited to accounts (open on the 1st), GBP."
    )
    payments_received: Decimal = strawberry.field(
        description="Succeeded payments scheduled (or made) in the month, Europe/London."
    )
    outstanding: Decimal = strawberry.field(
        description="Total minus solar credits minus payments of every month up to this one: "
        "what was owed at the month's end (the sum of the accounts' balances)."
    )


def summaries_field(loader: type[BaseLoader], description: str) -> Any:
    """`monthlySummaries(from:, to:)` of the row, from `loader` keyed by its id."""
    return loaded(
        list[MonthlySummary], loader, description, arguments=RANGE, params=in_range, project=False
    )
