"""Loaders over monthly usage, costs, billing runs and payments."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, and_

from ..db.models import BillingRun, MonthlyCosts, MonthlySolarCredit, MonthlyUsage, Payment
from ..pagination import SortKey, parse_date, parse_datetime
from .base import ConnectionSpec, CountLoader, Narrowed, PageLoader, RangeLoader, RowLoader

USAGE = MonthlyUsage.__table__
COSTS = MonthlyCosts.__table__
RUNS = BillingRun.__table__
CREDITS = MonthlySolarCredit.__table__
PAYMENTS = Payment.__table__


class UsageById(RowLoader):
    table = USAGE
    key = "id"


class UsageByMeterId(RangeLoader):
    """Each meter's usage rows for the months of [from, to] (made with the range),
    each with its costs (columns `costs_*`, null before billing): a dashboard asks for
    both, and costs read off the same row need no loader round of their own."""

    table = USAGE
    key = "meter_id"
    range_column = "month"
    order_by = ("month",)

    def full_statement(self) -> Select[Any]:
        loaders = self.loaders
        cache_key = (type(self), loaders.scope is not None, loaders.customer_id is not None)
        stmt = self._statements.get(cache_key)
        if stmt is None:
            # The viewer's limits on costs go in the join: a usage row stays visible
            # when its costs are not (a landlord's view, say).
            costs_visible = and_(
                COSTS.c.monthly_usage_id == USAGE.c.id, *loaders.limits(COSTS, "esco_id")
            )
            stmt = (
                loaders.restrict(self.base_statement(), USAGE, "esco_id")
                .add_columns(*(column.label(f"costs_{column.name}") for column in COSTS.c))
                .select_from(USAGE.outerjoin(COSTS, costs_visible))
            )
            self._statements[cache_key] = stmt
        return stmt


class CostsById(RowLoader):
    table = COSTS
    key = "id"


class CostsByUsageId(RowLoader):
    table = COSTS
    key = "monthly_usage_id"


class CostsByCustomerId(RangeLoader):
    table = COSTS
    key = "customer_id"
    range_column = "month"
    order_by = ("month", "id")


class BillingRunById(RowLoader):
    table = RUNS
    key = "id"


class PaymentById(RowLoader):
    table = PAYMENTS
    key = "id"


def _parse_uuid(value: str) -> uuid.UUID:
    return uuid.UUID(value)


RUN_SORTS = {
    "NEWEST_MONTH": SortKey("NEWEST_MONTH", lambda: RUNS.c.month, parse_date, descending=True),
    "UPDATED_AT": SortKey("UPDATED_AT", lambda: RUNS.c.updated_at, parse_datetime),
}
RUN_SPEC = ConnectionSpec(RUNS, RUN_SORTS, "NEWEST_MONTH")
COSTS_SPEC = ConnectionSpec(COSTS, {"ID": SortKey("ID", lambda: COSTS.c.id, _parse_uuid)}, "ID")
CREDITS_SPEC = ConnectionSpec(
    CREDITS, {"ID": SortKey("ID", lambda: CREDITS.c.id, _parse_uuid)}, "ID"
)
PAYMENT_SPEC = ConnectionSpec(
    PAYMENTS,
    {
        "NEWEST": SortKey("NEWEST", lambda: PAYMENTS.c.created_at, parse_datetime, descending=True),
        "OLDEST": SortKey("OLDEST", lambda: PAYMENTS.c.created_at, parse_datetime),
    },
    "NEWEST",
)


class BillingRunsByEscoId(PageLoader):
    spec = RUN_SPEC
    parent = "esco_id"


class BillingRunCountByEscoId(CountLoader):
    spec = RUN_SPEC
    parent = "esco_id"


# A run's costs and credits are its month's (billing_run_id has no index: HOT re-runs).
BY_RUNS_MONTH = Narrowed(RUNS, ("esco_id", "month"))


class CostsByBillingRunId(PageLoader):
    spec = COSTS_SPEC
    parent = "billing_run_id"
    narrowed = BY_RUNS_MONTH


class CostCountByBillingRunId(CountLoader):
    spec = COSTS_SPEC
    parent = "billing_run_id"
    narrowed = BY_RUNS_MONTH


class SolarCreditsByBillingRunId(PageLoader):
    spec = CREDITS_SPEC
    parent = "billing_run_id"
    narrowed = BY_RUNS_MONTH


class SolarCreditCountByBillingRunId(CountLoader):
    spec = CREDITS_SPEC
    parent = "billing_run_id"
    narrowed = BY_RUNS_MONTH


class PaymentsByCustomerId(PageLoader):
    spec = PAYMENT_SPEC
    parent = "customer_id"


class PaymentCountByCustomerId(CountLoader):
    spec = PAYMENT_SPEC
    parent = "customer_id"


class PaymentsByAccountId(PageLoader):
    spec = PAYMENT_SPEC
    parent = "account_id"


class PaymentCountByAccountId(CountLoader):
    spec = PAYMENT_SPEC
    parent = "account_id"
