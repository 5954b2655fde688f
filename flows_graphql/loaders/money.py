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

A customer (as viewer, or as the owner of `Customer.balance`) gets the charges and
credits only of the months of which they were the occupier on day 1 — the rule that
bills them — and the payments only that they made (`payments.customer_id`, the payer),
in whichever month each falls: a payment is the payer's, never the household's that
occupies its month (docs/money.md).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date
from typing import Any

from sqlalchemy import TextClause, text

from ..rules.statements import MonthActivity
from .base import LATEST, BaseLoader, default_from

# A payment's month: its schedule (else creation) on the billing clock.
PAYMENT_MONTH = (
    "date_trunc('month', COALESCE(y.scheduled_at, y.created_at) AT TIME ZONE 'Europe/London')::date"
)
IN_FORCE_RUN = "r.status IN ('completed', 'finalized')"


def supplied(meter: str, month: str, alias: str = "sp") -> str:
    """SQL: a join of the supply history row (as `alias`) of the property that `meter`
    supplied in `month` — the one place that says which property a meter's month
    belongs to (rules.md §7: the meter supplying the property on day 1 of M), so a
    meter swap changes no past statement. Join `properties` on `{alias}.property_id`."""
    return f"JOIN property_supply_meters {alias} ON {alias}.meter_id = {meter} AND " + covers(
        alias, month
    )


def covers(alias: str, month: str) -> str:
    """SQL: the supply history row `alias` covers `month` (null ends are open)."""
    return (
        f"({alias}.first_month IS NULL OR {alias}.first_month <= {month})"
        f" AND ({alias}.last_month IS NULL OR {alias}.last_month >= {month})"
    )


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
# Every account the customer was linked to in any role: an owner who pays towards the
# account has that payment in their ledger (a payment needs a link to be made).
_PAIRS_BY_CUSTOMER = """
  SELECT DISTINCT l.customer_id AS key, l.account_id, l.customer_id AS occupant
    FROM customer_accounts l JOIN accounts a ON a.id = l.account_id
   WHERE l.customer_id = ANY(CAST(:keys AS uuid[])) {scope}"""

MONTHS_SQL = """
WITH pairs AS ({pairs}),
acc AS (
  SELECT DISTINCT a.id, a.property_id, a.opened_on, a.closed_on
    FROM accounts a WHERE a.id IN (SELECT account_id FROM pairs)
),
activity AS (
  -- `payer` is null for the account's charges and credits (whoever occupied the month),
  -- the customer who paid for a payment (theirs alone, whatever the month).
  SELECT a.id AS account_id, c.month, c.power, c.heat, c.standing_charge, c.total,
         0 AS credit, 0 AS payments, CAST(NULL AS uuid) AS payer
    FROM acc a
    JOIN property_supply_meters sp ON sp.property_id = a.property_id
    JOIN monthly_usage u ON u.meter_id = sp.meter_id AND {covers_usage}
    JOIN monthly_costs c ON c.monthly_usage_id = u.id
    JOIN billing_runs r ON r.id = c.billing_run_id AND {in_force}
   WHERE {open_cost}
  UNION ALL
  SELECT a.id, s.month, 0, 0, 0, 0, s.credit_pence * 0.01, 0, NULL
    FROM acc a
    JOIN monthly_solar_credits s ON s.property_id = a.property_id
    JOIN billing_runs r ON r.id = s.billing_run_id AND {in_force}
   WHERE {open_credit}
  UNION ALL
  SELECT y.account_id, {payment_month}, 0, 0, 0, 0, 0, y.amount_pence * 0.01, y.customer_id
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
  CROSS JOIN LATERAL (SELECT pairs.occupant IS NULL OR {occupied} AS occupied) o
  -- A customer's ledger: the charges and credits of the months they occupied on day 1,
  -- and the payments they made, in whichever month each falls (one scheduled after
  -- they left is theirs, never the next household's).
  LEFT JOIN activity x ON x.account_id = m.account_id AND x.month = m.month
   AND CASE WHEN x.payer IS NULL THEN o.occupied
            ELSE pairs.occupant IS NULL OR x.payer = pairs.occupant END
 WHERE o.occupied OR x.payer IS NOT NULL
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
                covers_usage=covers("sp", "u.month"),
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


# --- monthly summaries -----------------------------------------------------------------
#
# One statement per batch of ESCOs, sites or customers, whatever the number of months:
# each measure is aggregated by (key, month) in PostgreSQL, the four are stacked and
# summed, and `outstanding` runs over every month up to the one shown (a window sum).
# The figures count what the balances count (the runs in force, credits credited to an
# account open on day 1, succeeded payments on the billing clock), so an ESCO's
# `outstanding` is the sum of its accounts' balances at the end of the month.

_SUMMARY_KEYS = {
    "esco": "SELECT e.id AS key, e.id AS esco_id FROM escos e"
    " WHERE e.id = ANY(CAST(:keys AS uuid[])) {scope}",
    "site": "SELECT e.id AS key, e.esco_id FROM sites e"
    " WHERE e.id = ANY(CAST(:keys AS uuid[])) {scope}",
    "customer": "SELECT e.id AS key, e.esco_id FROM customers e"
    " WHERE e.id = ANY(CAST(:keys AS uuid[])) {scope}",
}

# The billed rows of each key: (key, month, customer, power, heat, solar, total, microgrid,
# benchmark), from the costs of the month's run in force, found by its (esco_id, month) or
# (customer_id, month): billing_run_id has no index, so re-runs are HOT (docs/billing-runs.md).
_SUMMARY_COSTS = {
    "esco": "JOIN monthly_costs c ON c.esco_id = r.esco_id AND c.month = r.month"
    " AND c.billing_run_id = r.id",
    "site": "JOIN monthly_costs c ON c.esco_id = r.esco_id AND c.month = r.month"
    " AND c.billing_run_id = r.id"
    " JOIN monthly_usage u0 ON u0.id = c.monthly_usage_id"
    " {supplied_cost} JOIN properties p ON p.id = sp.property_id AND p.site_id = k.key",
    "customer": "JOIN monthly_costs c ON c.customer_id = k.key AND c.month = r.month"
    " AND c.billing_run_id = r.id",
}
# Skipped meters of each key's month: the run's list (an ESCO), those supplying the
# site's properties, or the one supplying a home the customer occupied on day 1.
_SUMMARY_SKIPPED = {
    # An ESCO's run counted its customers: their number is the run's own figure (a
    # count(DISTINCT) over the month's cost rows would sort them all).
    "esco": "SELECT k.key, r.month, jsonb_array_length(r.skipped_meters) AS skipped,"
    " r.customers_billed AS customers FROM keys k JOIN runs r ON r.esco_id = k.esco_id",
    "site": "SELECT k.key, r.month, count(*) AS skipped, 0 AS customers"
    " FROM keys k JOIN runs r ON r.esco_id = k.esco_id"
    " CROSS JOIN LATERAL jsonb_array_elements(r.skipped_meters) AS sm(entry)"
    " {supplied_skip} JOIN properties p ON p.id = sp.property_id AND p.site_id = k.key"
    " GROUP BY 1, 2",
    "customer": "SELECT k.key, r.month, count(*) AS skipped, 0 AS customers"
    " FROM keys k JOIN runs r ON r.esco_id = k.esco_id"
    " CROSS JOIN LATERAL jsonb_array_elements(r.skipped_meters) AS sm(entry)"
    " {supplied_skip} JOIN accounts a ON a.property_id = sp.property_id AND {open_run}"
    " WHERE {occupied_run} GROUP BY 1, 2",
}
# Solar credits credited to an account open on day 1 (for a customer: one they occupied).
_SUMMARY_CREDITS = {
    "esco": "JOIN accounts a ON a.property_id = s.property_id AND {open_credit}",
    "site": "JOIN properties p ON p.id = s.property_id AND p.site_id = k.key"
    " JOIN accounts a ON a.property_id = s.property_id AND {open_credit}",
    "customer": "JOIN accounts a ON a.property_id = s.property_id AND {open_credit}"
    " AND {occupied_credit}",
}
# Succeeded payments (for a customer: those they made, the payer's, in whichever month).
_SUMMARY_PAYMENTS = {
    "esco": "SELECT k.key, {payment_month} AS month, y.amount_pence FROM keys k"
    " JOIN payments y ON y.esco_id = k.key AND y.status = 'succeeded'",
    "site": "SELECT k.key, {payment_month} AS month, y.amount_pence FROM keys k"
    " JOIN properties p ON p.site_id = k.key JOIN accounts a ON a.property_id = p.id"
    " JOIN payments y ON y.account_id = a.id AND y.status = 'succeeded'",
    "customer": "SELECT k.key, {payment_month} AS month, y.amount_pence FROM keys k"
    " JOIN payments y ON y.customer_id = k.key AND y.status = 'succeeded'",
}

SUMMARY_SQL = """
WITH keys AS ({keys}),
runs AS (
  -- The run in force of each month: the latest completed or finalized one.
  SELECT DISTINCT ON (r.esco_id, r.month) r.id, r.esco_id, r.month, r.skipped_meters,
         r.customers_billed
    FROM billing_runs r
   WHERE r.esco_id IN (SELECT esco_id FROM keys) AND {in_force}
     AND r.month <= CAST(:range_to AS date)
   ORDER BY r.esco_id, r.month, r.started_at DESC, r.created_at DESC
),
billed AS (
  SELECT k.key, r.month, {customers} AS customers,
         sum(u.power_kwh) AS power_kwh, sum(u.heat_kwh) AS heat_kwh,
         sum(u.solar_kwh) AS solar_kwh, sum(c.total) AS total,
         sum(c.microgrid_total) AS microgrid_total, sum(c.benchmark_total) AS benchmark_total
    FROM keys k JOIN runs r ON r.esco_id = k.esco_id
    {costs}
    JOIN monthly_usage u ON u.id = c.monthly_usage_id
   GROUP BY 1, 2
),
skipped AS ({skipped}),
credited AS (
  SELECT k.key, s.month, sum(s.credit_pence) AS pence
    FROM keys k JOIN runs r ON r.esco_id = k.esco_id
    JOIN monthly_solar_credits s
      ON s.esco_id = r.esco_id AND s.month = r.month AND s.billing_run_id = r.id
    {credits}
   GROUP BY 1, 2
),
paid AS (
  SELECT x.key, x.month, sum(x.amount_pence) AS pence FROM ({payments}) AS x
   WHERE x.month <= CAST(:range_to AS date)
   GROUP BY 1, 2
),
stacked AS (
  SELECT key, month, customers, 0 AS skipped, power_kwh, heat_kwh, solar_kwh, total,
         microgrid_total, benchmark_total, 0 AS credit_pence, 0 AS paid_pence FROM billed
  UNION ALL
  SELECT key, month, customers, skipped, 0, 0, 0, 0, 0, 0, 0, 0 FROM skipped
  UNION ALL
  SELECT key, month, 0, 0, 0, 0, 0, 0, 0, 0, pence, 0 FROM credited
  UNION ALL
  SELECT key, month, 0, 0, 0, 0, 0, 0, 0, 0, 0, pence FROM paid
),
months AS (
  SELECT key, month, CAST(sum(customers) AS integer) AS customers_billed,
         CAST(sum(skipped) AS integer) AS meters_skipped,
         sum(power_kwh) AS power_kwh, sum(heat_kwh) AS heat_kwh, sum(solar_kwh) AS solar_kwh,
         sum(total) AS total, sum(microgrid_total) AS microgrid_total,
         sum(benchmark_total) AS benchmark_total,
         sum(credit_pence) * 0.01 AS solar_credits, sum(paid_pence) * 0.01 AS payments_received
    FROM stacked GROUP BY key, month
)
SELECT key, month, customers_billed, meters_skipped, power_kwh, heat_kwh, solar_kwh, total,
       microgrid_total, benchmark_total, benchmark_total - total AS savings, solar_credits,
       payments_received, outstanding
  FROM (SELECT *, sum(total - solar_credits - payments_received)
                  OVER (PARTITION BY key ORDER BY month) AS outstanding
          FROM months) AS running
 WHERE month >= CAST(:range_from AS date)
 ORDER BY key, month
"""

_SUMMARY_STATEMENTS: dict[tuple[str, bool], TextClause] = {}


def summary_statement(by: str, scoped: bool) -> TextClause:
    key = (by, scoped)
    stmt = _SUMMARY_STATEMENTS.get(key)
    if stmt is None:
        parts = {
            "open_run": _open_on("a", "r.month"),
            "occupied_run": _occupier_on("k.key", "a.id", "r.month"),
            "open_credit": _open_on("a", "s.month"),
            "occupied_credit": _occupier_on("k.key", "a.id", "s.month"),
            "payment_month": PAYMENT_MONTH,
            "supplied_cost": supplied("u0.meter_id", "u0.month"),
            "supplied_skip": supplied("CAST(sm.entry->>'meter_id' AS uuid)", "r.month"),
        }
        scope = (
            "AND e.esco_id = ANY(CAST(:scope AS uuid[]))"
            if by != "esco"
            else ("AND e.id = ANY(CAST(:scope AS uuid[]))")
        )
        stmt = _SUMMARY_STATEMENTS[key] = text(
            SUMMARY_SQL.format(
                keys=_SUMMARY_KEYS[by].format(scope=scope if scoped else ""),
                in_force=IN_FORCE_RUN,
                costs=_SUMMARY_COSTS[by].format(**parts),
                customers="0" if by == "esco" else "count(DISTINCT c.customer_id)",
                skipped=_SUMMARY_SKIPPED[by].format(**parts),
                credits=_SUMMARY_CREDITS[by].format(**parts),
                payments=_SUMMARY_PAYMENTS[by].format(**parts),
            )
        )
    return stmt


class _SummariesLoader(BaseLoader):
    """Each key's monthly summaries for the months of [from, to], oldest first: the
    months with anything billed, credited, skipped or paid."""

    by: str

    async def batch_load_fn(self, keys: list[Any]) -> list[list[Any]]:
        start, end = self.params
        loaders = self.loaders
        if loaders.customer_id is not None and self.by != "customer":
            # A customer reads their own figures, never their ESCO's or a site's.
            return [[] for _ in keys]
        params: dict[str, Any] = {
            "keys": list(keys),
            # Months are compared by their 1st: a day counts as its month.
            "range_from": start.replace(day=1) if start else default_from(end, loaders.today()),
            "range_to": end or LATEST,
        }
        if loaders.scope is not None:
            params["scope"] = list(loaders.scope)
        grouped: dict[Any, list[Any]] = defaultdict(list)
        for row in await loaders.db.rows(
            summary_statement(self.by, loaders.scope is not None), params
        ):
            grouped[row.key].append(row)
        return [grouped.get(key, []) for key in keys]


class SummariesByEscoId(_SummariesLoader):
    by = "esco"


class SummariesBySiteId(_SummariesLoader):
    by = "site"


class SummariesByCustomerId(_SummariesLoader):
    by = "customer"
