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
