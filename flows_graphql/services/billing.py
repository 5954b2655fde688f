"""Monthly billing runs (rules.md §3 and §4) and their finalization.

A run bills one ESCO for one month in one transaction, set-wise: one statement
gathers every billable meter with its occupier and tariff, the rules price them in
Python, and one statement each writes the month's costs and solar credits (replacing
any from an earlier run of the same month).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, select, text, update

from ..db.models import (
    BenchmarkTariff,
    BillingRun,
    Esco,
    MicrogridTariff,
    MonthlyCosts,
    MonthlySolarCredit,
    SolarCreditTariff,
    table_of,
)
from ..db.models.enums import BillingRunStatus
from ..rules import billing as rules
from ..rules import solar
from ..rules.tariffs import Rates
from .problems import ErrorCode, reject
from .scope import esco_or_reject
from .tx import Row, Tx

RUNS = table_of(BillingRun)
COSTS = table_of(MonthlyCosts)
CREDITS = table_of(MonthlySolarCredit)
ESCOS = table_of(Esco)
MICROGRID = table_of(MicrogridTariff)
BENCHMARKS = table_of(BenchmarkTariff)
SOLAR_TARIFFS = table_of(SolarCreditTariff)

# Advisory lock class of billing runs; the object is a hash of (ESCO, month).
RUN_LOCK_CLASS = 7140002

Progress = Callable[[str, int, int], None]


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


@dataclass
class RunResult:
    run: Row
    skipped: list[tuple[uuid.UUID, rules.SkipReason]] = field(default_factory=list)


# Every meter of the ESCO with usage for M that supplied a property in M (the supply
# history: a later swap changes no past month) whose property has an account open on
# day 1 of M, with that day's occupier and the occupier's tariff in force on M.
BILLABLE_SQL = text(
    """
SELECT DISTINCT ON (u.id)
       u.id AS usage_id, u.meter_id, u.power_kwh, u.heat_kwh,
       occ.customer_id, ct.unit_rate, ct.standing_charge
  FROM monthly_usage u
  JOIN property_supply_meters sm ON sm.meter_id = u.meter_id AND sm.esco_id = u.esco_id
                                AND (sm.first_month IS NULL OR sm.first_month <= :month)
                                AND (sm.last_month IS NULL OR sm.last_month >= :month)
  JOIN accounts a ON a.property_id = sm.property_id AND a.esco_id = sm.esco_id
                 AND a.opened_on <= :month
                 AND (a.closed_on IS NULL OR a.closed_on >= :month)
  LEFT JOIN LATERAL (
        SELECT ca.customer_id FROM customer_accounts ca
         WHERE ca.account_id = a.id AND ca.role = 'occupier'
           AND ca.start_date <= :month
           AND (ca.end_date IS NULL OR ca.end_date >= :month)
         LIMIT 1) occ ON true
  LEFT JOIN LATERAL (
        SELECT t.unit_rate, t.standing_charge FROM customer_tariffs t
         WHERE t.customer_id = occ.customer_id AND t.period_start <= :month
         ORDER BY t.period_start DESC LIMIT 1) ct ON true
 WHERE u.esco_id = :esco_id AND u.month = :month
 ORDER BY u.id, a.opened_on DESC
"""
)

SOLAR_SQL = text(
    """
SELECT s.property_id, s.declared_net_capacity_kw
  FROM solar_installation s
 WHERE s.esco_id = :esco_id
 ORDER BY s.property_id
"""
)

INSERT_COSTS_SQL = text(
    """
INSERT INTO monthly_costs (
    esco_id, monthly_usage_id, customer_id, month, billing_run_id,
    power, heat, standing_charge, total,
    microgrid_power, microgrid_heat, microgrid_standing_charge, microgrid_total,
    benchmark_power, benchmark_heat, benchmark_standing_charge, benchmark_total)
SELECT :esco_id, x.usage_id, x.customer_id, :month, :run_id,
       x.p, x.h, x.s, x.t, x.mp, x.mh, x.ms, x.mt, x.bp, x.bh, x.bs, x.bt
  FROM unnest(CAST(:usage_ids AS uuid[]), CAST(:customer_ids AS uuid[]),
              CAST(:p AS numeric[]), CAST(:h AS numeric[]), CAST(:s AS numeric[]),
              CAST(:t AS numeric[]), CAST(:mp AS numeric[]), CAST(:mh AS numeric[]),
              CAST(:ms AS numeric[]), CAST(:mt AS numeric[]), CAST(:bp AS numeric[]),
              CAST(:bh AS numeric[]), CAST(:bs AS numeric[]), CAST(:bt AS numeric[]))
       AS x(usage_id, customer_id, p, h, s, t, mp, mh, ms, mt, bp, bh, bs, bt)
"""
)

INSERT_CREDITS_SQL = text(
    """
INSERT INTO monthly_solar_credits (esco_id, property_id, month, credit_pence, billing_run_id)
SELECT :esco_id, x.property_id, :month, x.credit, :run_id
  FROM unnest(CAST(:property_ids AS uuid[]), CAST(:credits AS integer[]))
       AS x(property_id, credit)
"""
)


def run_lock_name(esco_id: uuid.UUID, month: date) -> str:
    """The name hashed into the advisory lock of an ESCO-month (usage writes share it)."""
    return f"{esco_id}|{month.isoformat()}"


def run_lock(esco_id: uuid.UUID, month: date) -> Any:
    return func.pg_try_advisory_xact_lock(
        RUN_LOCK_CLASS, func.hashtext(run_lock_name(esco_id, month))
    )


async def _month_finalized(tx: Tx, esco_id: uuid.UUID, month: date) -> bool:
    found = await tx.conn.scalar(
        select(RUNS.c.id).where(
            RUNS.c.esco_id == esco_id,
            RUNS.c.month == month,
            RUNS.c.status == BillingRunStatus.FINALIZED,
        )
    )
    return found is not None


async def _in_force(tx: Tx, table: Any, owner_col: Any, owner: Any, month: date) -> Row | None:
    return (
        await tx.conn.execute(
            select(table)
            .where(owner_col == owner, table.c.period_start <= month)
            .order_by(table.c.period_start.desc())
            .limit(1)
        )
    ).first()


async def run_billing(
    tx: Tx, esco_id: uuid.UUID | None, month: date, progress: Progress = _no_progress
) -> RunResult:
    tx.require_role("admin", "operator")
    esco = await esco_or_reject(tx, esco_id)
    if month.day != 1:
        raise reject("month", ErrorCode.INVALID, "A month is the date of its 1st.")
    today = tx.today()
    if rules.is_future_month(month, today):
        raise reject(
            "month", ErrorCode.FUTURE_MONTH, "Months after the current one cannot be billed."
        )
    if not await tx.conn.scalar(select(run_lock(esco.id, month))):
        raise reject("month", ErrorCode.RUN_IN_PROGRESS, "This month is being billed right now.")
    if await _month_finalized(tx, esco.id, month):
        raise reject("month", ErrorCode.MONTH_FINALIZED, "This month is finalized.")

    days = rules.billable_days(month, today)
    microgrid = await _in_force(tx, MICROGRID, MICROGRID.c.esco_id, esco.id, month)
    benchmark = await _in_force(tx, BENCHMARKS, BENCHMARKS.c.region_code, esco.region_code, month)
    microgrid_rates = Rates(microgrid.unit_rate, microgrid.standing_charge) if microgrid else None
    benchmark_rates = Rates(benchmark.unit_rate, benchmark.standing_charge) if benchmark else None

    progress("reading usage", 0, 1)
    billable = (await tx.conn.execute(BILLABLE_SQL, {"esco_id": esco.id, "month": month})).all()
    progress("reading usage", 1, 1)

    columns: dict[str, list[Any]] = {
        k: []
        for k in (
            "usage_ids",
            "customer_ids",
            "p",
            "h",
            "s",
            "t",
            "mp",
            "mh",
            "ms",
            "mt",
            "bp",
            "bh",
            "bs",
            "bt",
        )
    }
    skipped: list[tuple[uuid.UUID, rules.SkipReason]] = []
    customers: set[uuid.UUID] = set()
    total = Decimal(0)
    for done, row in enumerate(billable, start=1):
        reason = rules.skip_reason(row.customer_id is not None, row.unit_rate is not None)
        if reason is not None:
            skipped.append((row.meter_id, reason))
        else:
            usage = rules.Usage(row.power_kwh, row.heat_kwh)
            own = rules.costs(Rates(row.unit_rate, row.standing_charge), usage, days)
            mg = rules.costs(microgrid_rates, usage, days)
            bm = rules.costs(benchmark_rates, usage, days)
            for key, value in (
                ("usage_ids", row.usage_id),
                ("customer_ids", row.customer_id),
                ("p", own.power),
                ("h", own.heat),
                ("s", own.standing_charge),
                ("t", own.total),
                ("mp", mg.power),
                ("mh", mg.heat),
                ("ms", mg.standing_charge),
                ("mt", mg.total),
                ("bp", bm.power),
                ("bh", bm.heat),
                ("bs", bm.standing_charge),
                ("bt", bm.total),
            ):
                columns[key].append(value)
            customers.add(row.customer_id)
            total += own.total
        if done % 1000 == 0:
            progress("pricing", done, len(billable))
    progress("pricing", len(billable), len(billable))

    credits = await _solar_credits(tx, esco.id, month)

    # Same inputs, same rows: a re-run replaces the month's costs and credits.
    await tx.conn.execute(delete(COSTS).where(COSTS.c.esco_id == esco.id, COSTS.c.month == month))
    await tx.conn.execute(
        delete(CREDITS).where(CREDITS.c.esco_id == esco.id, CREDITS.c.month == month)
    )
    run_id = await tx.conn.scalar(
        RUNS.insert()
        .values(
            esco_id=esco.id,
            month=month,
            status=BillingRunStatus.RUNNING,
            actor=tx.actor,
        )
        .returning(RUNS.c.id)
    )
    params = {"esco_id": esco.id, "month": month, "run_id": run_id}
    if columns["usage_ids"]:
        await tx.conn.execute(INSERT_COSTS_SQL, {**params, **columns})
    progress("writing", 1, 2)
    if credits:
        await tx.conn.execute(
            INSERT_CREDITS_SQL,
            {**params, "property_ids": list(credits), "credits": list(credits.values())},
        )
    progress("writing", 2, 2)
    run = (
        await tx.conn.execute(
            update(RUNS)
            .where(RUNS.c.id == run_id)
            .values(
                status=BillingRunStatus.COMPLETED,
                finished_at=func.clock_timestamp(),
                customers_billed=len(customers),
                total=total,
                skipped_meters=[
                    {"meter_id": str(meter_id), "reason": reason.value}
                    for meter_id, reason in skipped
                ],
            )
            .returning(RUNS)
        )
    ).one()
    await tx.audit(
        "runBilling",
        "billing_run",
        run_id,
        {
            "month": month,
            "days": days,
            "costs": len(columns["usage_ids"]),
            "customersBilled": len(customers),
            "total": total,
            "skipped": len(skipped),
            "solarCredits": len(credits),
        },
        esco.id,
    )
    return RunResult(run, skipped)


async def _solar_credits(tx: Tx, esco_id: uuid.UUID, month: date) -> dict[uuid.UUID, int]:
    """Every solar installation of the ESCO earns a credit for M, 0 included."""
    tariff = await _in_force(tx, SOLAR_TARIFFS, SOLAR_TARIFFS.c.esco_id, esco_id, month)
    installations = (await tx.conn.execute(SOLAR_SQL, {"esco_id": esco_id})).all()
    return {
        row.property_id: solar.monthly_credit_pence(
            row.declared_net_capacity_kw,
            month,
            tariff.credit_pence_per_year if tariff else None,
            tariff.period_start if tariff else None,
        )
        for row in installations
    }


async def finalize_run(tx: Tx, run_id: uuid.UUID | None) -> Row:
    """Freeze a month: its latest completed run becomes final."""
    tx.require_role("admin", "operator")
    run = None
    if run_id is not None:
        run = (await tx.conn.execute(select(RUNS).where(RUNS.c.id == run_id))).first()
    if run is None or not tx.may_see(run.esco_id):
        raise reject("billingRunId", ErrorCode.NOT_FOUND, "No billing run with this id.")
    if not await tx.conn.scalar(select(run_lock(run.esco_id, run.month))):
        raise reject(
            "billingRunId", ErrorCode.RUN_IN_PROGRESS, "This month is being billed right now."
        )
    if await _month_finalized(tx, run.esco_id, run.month):
        raise reject("billingRunId", ErrorCode.MONTH_FINALIZED, "This month is already finalized.")
    latest = await tx.conn.scalar(
        select(RUNS.c.id)
        .where(
            RUNS.c.esco_id == run.esco_id,
            RUNS.c.month == run.month,
            RUNS.c.status == BillingRunStatus.COMPLETED,
        )
        .order_by(RUNS.c.started_at.desc(), RUNS.c.created_at.desc())
        .limit(1)
    )
    if run.status != BillingRunStatus.COMPLETED or latest != run.id:
        raise reject(
            "billingRunId",
            ErrorCode.INVALID,
            "Only the month's latest completed run can be finalized.",
        )
    row = (
        await tx.conn.execute(
            update(RUNS)
            .where(RUNS.c.id == run.id)
            .values(status=BillingRunStatus.FINALIZED)
            .returning(RUNS)
        )
    ).one()
    await tx.audit(
        "finalizeBillingRun",
        "billing_run",
        run.id,
        {"changed": {"status": {"old": run.status, "new": BillingRunStatus.FINALIZED}}},
        run.esco_id,
    )
    return row
