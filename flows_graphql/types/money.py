"""Balances, statements and monthly summaries (rules.md §8; docs/money.md).

No `from __future__ import annotations` here: the field factories build resolvers whose
annotations Strawberry must read as real objects.
"""

from datetime import date
from decimal import Decimal
from operator import attrgetter
from typing import Annotated, Any

import strawberry

from ..context import Context
from ..loaders import money as loaders
from ..loaders.base import BaseLoader
from ..rules import statements as rules
from .connection import FromDay, ToDay
from .levels import level
from .projection import reads

Info = strawberry.Info[Context, None]
OnDay = Annotated[
    date | None,
    strawberry.argument(description="The day (default: today on the billing clock)."),
]

_ID = attrgetter("id")


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


def _current_month(info: Any) -> Any:
    return loaders.current_month(info.context.today())


def balance_field(loader: type[BaseLoader], description: str) -> Any:
    """`balance(on:)` of the row's months from `loader` (keyed by the row's id)."""

    async def resolve(root: Any, info: Info, on: OnDay = None) -> Any:
        made = info.context.loaders.get(loader, _current_month(info))
        return rules.balance(await made.load(root.id), on or info.context.today())

    async def whole(sources: list[Any], info: Any, args: dict[str, Any]) -> list[Any]:
        made = info.context.loaders.get(loader, _current_month(info))
        day = args.get("on") or info.context.today()
        found = await made.load_level(list(map(_ID, sources)))
        return [rules.balance(months or [], day) for months in found]

    resolve.__annotations__["return"] = Decimal
    return strawberry.field(
        resolver=resolve, description=description, metadata={**reads("id"), **level(whole)}
    )


def _statements(months: list[rules.MonthActivity], start: Any, end: Any) -> list[Statement]:
    return [
        Statement(
            month=s.month,
            opening_balance=s.opening_balance,
            closing_balance=s.closing_balance,
            activity=s.activity,
        )
        for s in rules.statements(months, start, end)
    ]


def statements_field(loader: type[BaseLoader], description: str) -> Any:
    async def resolve(root: Any, info: Info, from_: FromDay = None, to: ToDay = None) -> Any:
        made = info.context.loaders.get(loader, _current_month(info))
        return _statements(await made.load(root.id), from_, to)

    async def whole(sources: list[Any], info: Any, args: dict[str, Any]) -> list[Any]:
        made = info.context.loaders.get(loader, _current_month(info))
        found = await made.load_level(list(map(_ID, sources)))
        start, end = args.get("from"), args.get("to")
        return [_statements(months or [], start, end) for months in found]

    resolve.__annotations__["return"] = list[Statement]
    return strawberry.field(
        resolver=resolve, description=description, metadata={**reads("id"), **level(whole)}
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

    async def resolve(
        root: Any, info: Info, from_: FromDay = None, to: ToDay = None
    ) -> list[MonthlySummary]:
        made = info.context.loaders.get(loader, from_, to)
        return await made.load(root.id)

    async def whole(sources: list[Any], info: Any, args: dict[str, Any]) -> list[Any]:
        made = info.context.loaders.get(loader, args.get("from"), args.get("to"))
        return await made.load_level(list(map(_ID, sources)))

    return strawberry.field(
        resolver=resolve, description=description, metadata={**reads("id"), **level(whole)}
    )
