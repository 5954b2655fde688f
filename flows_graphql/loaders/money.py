"""Loaders of money: accounts' months (balances, statements) and monthly summaries.

Each is one statement for a whole batch of keys, aggregated in PostgreSQL (`numeric`,
exact): the rows of a month are summed there, never fetched one by one.

Which rows count (rules.md §8, docs/money.md):
- charges of month M: `monthly_costs` of the usage of the meter supplying the
  account's property, from a `completed` or `finalized` run (a re-run deletes the rows
  of the run before it, so a month never counts twice), for an account open on day 1
  of M (billing bills no other);
- solar credit of M: the property's `monthly_solar_credits` row, pence × 0.01, for the
  account open on day 1 of M;
- payments of M: `succeeded` payments of the account whose `scheduled_at` (or
  `created_at` when unscheduled) falls in M in Europe/London.

A customer (as viewer, or as the owner of `Customer.balance`) gets only the months of
which they were the occupier on day 1 — the rule that bills them.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date
from typing import Any

from sqlalchemy import TextClause, text

from ..rules.statements import MonthActivity
from .base import BaseLoader

# A payment's month: its schedule (else creation) on the billing clock.
PAYMENT_MONTH = (
    "date_trunc('month', COALESCE(y.scheduled_at, y.created_at) AT TIME ZONE 'Europe/London')::date"
)
IN_FORCE_RUN = "r.status IN ('completed', 'finalized')"


def _open_on(account: str, month: str) -> str:
    return (
        f"{account}.opened_on <= {month} "
        f"AND ({account}.closed_on IS NULL OR {account}.closed_on >= {month})"
    )


def _occupier_on(customer: str, account: str, month: str) -> str:
    return (
        "EXISTS (SELECT 1 FROM customer_accounts l"
        f" WHERE l.account_id = {account} AND l.customer_id = {customer}"
        f" AND l.role = 'occupier' AND l.start_date <= {month}"
        f" AND (l.end_date IS NULL OR l.end_date >= {month}))"
    )


# Every (key, account, occupant) the statement covers: `occupant` is the customer whose
# months alone count, or null for all of the account's months.
_PAIRS_BY_ACCOUNT = """
  SELECT a.id AS key, a.id AS account_id, CAST(:occupant AS uuid) AS occupant
    FROM accounts a WHERE a.id = ANY(CAST(:keys AS uuid[])) {scope}"""
_PAIRS_BY_CUSTOMER = """
  SELECT DISTINCT l.customer_id AS key, l.account_id, l.customer_id AS occupant
    FROM customer_accounts l JOIN accounts a ON a.id = l.account_id
   WHERE l.customer_id = ANY(CAST(:keys AS uuid[])) AND l.role = 'occupier' {scope}"""

MONTHS_SQL = """
WITH pairs AS ({pairs}),
acc AS (
  SELECT DISTINCT a.id, a.property_id, a.opened_on, a.closed_on
    FROM accounts a WHERE a.id IN (SELECT account_id FROM pairs)
),
activity AS (
  SELECT a.id AS account_id, c.month, c.power, c.heat, c.standing_charge, c.total,
         0 AS credit, 0 AS payments
    FROM acc a
    JOIN properties p ON p.id = a.property_id
    JOIN monthly_usage u ON u.meter_id = p.supply_meter_id
    JOIN monthly_costs c ON c.monthly_usage_id = u.id
    JOIN billing_runs r ON r.id = c.billing_run_id AND {in_force}
   WHERE {open_cost}
  UNION ALL
  SELECT a.id, s.month, 0, 0, 0, 0, s.credit_pence * 0.01, 0
    FROM acc a
    JOIN monthly_solar_credits s ON s.property_id = a.property_id
    JOIN billing_runs r ON r.id = s.billing_run_id AND {in_force}
   WHERE {open_credit}
  UNION ALL
  SELECT y.account_id, {payment_month}, 0, 0, 0, 0, 0, y.amount_pence * 0.01
    FROM payments y
   WHERE y.account_id IN (SELECT id FROM acc) AND y.status = 'succeeded'
),
months AS (
  -- From the opening month to the closing (or current) month, and any month with
  -- activity besides (a payment scheduled after the closing month still counts).
  SELECT a.id AS account_id, CAST(m AS date) AS month
    FROM acc a, generate_series(date_trunc('month', a.opened_on),
                                date_trunc('month', COALESCE(a.closed_on, :current_month)),
                                interval '1 month') AS m
  UNION
  SELECT account_id, month FROM activity
)
SELECT pairs.key, m.account_id, m.month,
       COALESCE(sum(x.power), 0) AS power, COALESCE(sum(x.heat), 0) AS heat,
       COALESCE(sum(x.standing_charge), 0) AS standing_charge,
       COALESCE(sum(x.total), 0) AS total, COALESCE(sum(x.credit), 0) AS credit,
       COALESCE(sum(x.payments), 0) AS payments
  FROM pairs
  JOIN months m ON m.account_id = pairs.account_id
  LEFT JOIN activity x ON x.account_id = m.account_id AND x.month = m.month
 WHERE pairs.occupant IS NULL OR {occupied}
 GROUP BY pairs.key, m.account_id, m.month
 ORDER BY pairs.key, m.month, m.account_id
"""

_STATEMENTS: dict[tuple[str, bool], TextClause] = {}


def months_statement(by: str, scoped: bool) -> TextClause:
    """The months statement keyed by accounts or customers, with or without an ESCO
    scope (built once each)."""
    key = (by, scoped)
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        scope = "AND a.esco_id = ANY(CAST(:scope AS uuid[]))" if scoped else ""
        pairs = (_PAIRS_BY_ACCOUNT if by == "account" else _PAIRS_BY_CUSTOMER).format(scope=scope)
        stmt = _STATEMENTS[key] = text(
            MONTHS_SQL.format(
                pairs=pairs,
                in_force=IN_FORCE_RUN,
                open_cost=_open_on("a", "c.month"),
                open_credit=_open_on("a", "s.month"),
                payment_month=PAYMENT_MONTH,
                occupied=_occupier_on("pairs.occupant", "m.account_id", "m.month"),
            )
        )
    return stmt


class _MonthsLoader(BaseLoader):
    """Each key's months of activity, oldest first (made with the current month)."""

    by: str

    def occupant(self) -> uuid.UUID | None:
        return None

    async def batch_load_fn(self, keys: list[Any]) -> list[list[MonthActivity]]:
        (current_month,) = self.params
        loaders = self.loaders
        params: dict[str, Any] = {
            "keys": list(keys),
            "current_month": current_month,
            "occupant": self.occupant(),
        }
        if loaders.scope is not None:
            params["scope"] = list(loaders.scope)
        stmt = months_statement(self.by, loaders.scope is not None)
        grouped: dict[Any, list[MonthActivity]] = defaultdict(list)
        for row in await loaders.db.rows(stmt, params):
            grouped[row.key].append(
                MonthActivity(
                    row.month,
                    row.power,
                    row.heat,
                    row.standing_charge,
                    row.total,
                    row.credit,
                    row.payments,
                )
            )
        return [grouped.get(key, []) for key in keys]


class MonthsByAccountId(_MonthsLoader):
    """An account's months: all of them for staff and partners, a customer's own
    occupied months for a customer."""

    by = "account"

    def occupant(self) -> uuid.UUID | None:
        return self.loaders.customer_id


class MonthsByCustomerId(_MonthsLoader):
    """A customer's occupied months, over every account they occupied."""

    by = "customer"


def current_month(today: date) -> date:
    return today.replace(day=1)
