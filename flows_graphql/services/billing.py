"""Monthly billing runs (rules.md §3 and §4) and their finalization.

A run bills one ESCO for one month in one transaction, set-wise: one statement
gathers every billable meter with its occupier and tariff, the rules price them in
Python, and a statement per batch of costs and one for the solar credits write the
month (replacing any from an earlier run of the same month). `prepare_run` checks and
locks, `insert_run` records the run as running, `bill` does the work; the API and the
CLI run them as a job (billing_jobs.py), the demo all in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

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

# How far a run is: (meters done, meters to bill), after each batch.
Progress = Callable[[int, int], Awaitable[None]]

# Costs priced and written per statement: bounds the memory and the time between two
# progress reports of a big ESCO's run, at a handful of statements for 100,000 homes.
BATCH = 5_000

# A run's work_mem (billing_jobs.RUN_SETTINGS): BILLABLE_SQL's hash tables and sorts
# of a 100,000-home ESCO (10-15 MB each) stay in memory instead of spilling to disk in
# batches (PostgreSQL's default: 4 MB), up to a few hundred thousand homes. One backend
# per running ESCO-month uses it.
WORK_MEM = "64MB"

# The priced columns of INSERT_COSTS_SQL: a letter for the price (the customer's own,
# the microgrid's, the benchmark's) and one for the part (power, heat, standing charge,
# total): "p", "h", ..., "mp", ..., "bt".
PRICES = {"": "own", "m": "microgrid", "b": "benchmark"}
PARTS = {"p": "power", "h": "heat", "s": "standing_charge", "t": "total"}

# The error of a run found `running` with no transaction behind it any more.
INTERRUPTED = (
    "The run was interrupted (the server stopped or lost its database connection) "
    "before it finished; nothing of it was written. Run the month again."
)


async def _no_progress(done: int, total: int) -> None:
    return None


@dataclass
class RunResult:
    run: Row
    skipped: list[tuple[uuid.UUID, rules.SkipReason]] = field(default_factory=list)


# Every meter of the ESCO with usage for M that supplied a property in M (the supply
# history: a later swap changes no past month) whose property has an account open on
# day 1 of M (the latest opened, if several), with that day's occupier and the
# occupier's tariff in force on M (the greatest period_start <= M, rules.md §1).
#
# The month's candidates and the ESCO's occupiers on day 1 are each read once and
# hash-joined (at most one occupier per account and day:
# ex_customer_accounts_one_occupier, so the join adds no rows; a link carries its
# account's ESCO, a tenant key). The tariff is then looked up per occupier, in
# customer order: one index probe reads the one row in force, where a hash over all
# of the ESCO's tariffs reads nine a customer at 100,000 homes (900,000 rows, each
# paying row-level security's check: slower, measured in docs/billing-runs.md), and
# in key order the probes walk the tariffs' index once instead of at random.
BILLABLE_SQL = text(
    """
SELECT b.usage_id, b.meter_id, b.power_kwh, b.heat_kwh,
       b.customer_id, ct.unit_rate, ct.standing_charge
  FROM (SELECT c.usage_id, c.meter_id, c.power_kwh, c.heat_kwh, occ.customer_id
          FROM (SELECT DISTINCT ON (u.id)
                       u.id AS usage_id, u.meter_id, u.power_kwh, u.heat_kwh,
                       a.id AS account_id
                  FROM monthly_usage u
                  JOIN property_supply_meters sm
                    ON sm.meter_id = u.meter_id AND sm.esco_id = u.esco_id
                   AND (sm.first_month IS NULL OR sm.first_month <= :month)
                   AND (sm.last_month IS NULL OR sm.last_month >= :month)
                  JOIN accounts a
                    ON a.property_id = sm.property_id AND a.esco_id = sm.esco_id
                   AND a.opened_on <= :month
                   AND (a.closed_on IS NULL OR a.closed_on >= :month)
                 WHERE u.esco_id = :esco_id AND u.month = :month
                 ORDER BY u.id, a.opened_on DESC, a.id) c
          LEFT JOIN customer_accounts occ
            ON occ.account_id = c.account_id AND occ.esco_id = :esco_id
           AND occ.role = 'occupier' AND occ.start_date <= :month
           AND (occ.end_date IS NULL OR occ.end_date >= :month)
         ORDER BY occ.customer_id) b
  LEFT JOIN LATERAL (
        SELECT t.unit_rate, t.standing_charge FROM customer_tariffs t
         WHERE t.customer_id = b.customer_id AND t.period_start <= :month
         ORDER BY t.period_start DESC LIMIT 1) ct ON true
 ORDER BY b.usage_id
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
    id, esco_id, monthly_usage_id, customer_id, month, billing_run_id,
    power, heat, standing_charge, total,
    microgrid_power, microgrid_heat, microgrid_standing_charge, microgrid_total,
    benchmark_power, benchmark_heat, benchmark_standing_charge, benchmark_total)
SELECT CAST(:id_prefix || lpad(to_hex(:first_id + x.n), 12, '0') AS uuid),
       :esco_id, x.usage_id, x.customer_id, :month, :run_id,
       x.p, x.h, x.s, x.t, x.mp, x.mh, x.ms, x.mt, x.bp, x.bh, x.bs, x.bt
  FROM unnest(CAST(string_to_array(:usage_ids, ',') AS uuid[]),
              CAST(string_to_array(:customer_ids, ',') AS uuid[]),
              CAST(string_to_array(:p, ',') AS numeric[]),
              CAST(string_to_array(:h, ',') AS numeric[]),
              CAST(string_to_array(:s, ',') AS numeric[]),
              CAST(string_to_array(:t, ',') AS numeric[]),
              CAST(string_to_array(:mp, ',') AS numeric[]),
              CAST(string_to_array(:mh, ',') AS numeric[]),
              CAST(string_to_array(:ms, ',') AS numeric[]),
              CAST(string_to_array(:mt, ',') AS numeric[]),
              CAST(string_to_array(:bp, ',') AS numeric[]),
              CAST(string_to_array(:bh, ',') AS numeric[]),
              CAST(string_to_array(:bs, ',') AS numeric[]),
              CAST(string_to_array(:bt, ',') AS numeric[]))
       WITH ORDINALITY
       AS x(usage_id, customer_id, p, h, s, t, mp, mh, ms, mt, bp, bh, bs, bt, n)
    ON CONFLICT (monthly_usage_id) DO UPDATE SET
       customer_id = EXCLUDED.customer_id, billing_run_id = EXCLUDED.billing_run_id,
       power = EXCLUDED.power, heat = EXCLUDED.heat,
       standing_charge = EXCLUDED.standing_charge, total = EXCLUDED.total,
       microgrid_power = EXCLUDED.microgrid_power, microgrid_heat = EXCLUDED.microgrid_heat,
       microgrid_standing_charge = EXCLUDED.microgrid_standing_charge,
       microgrid_total = EXCLUDED.microgrid_total,
       benchmark_power = EXCLUDED.benchmark_power, benchmark_heat = EXCLUDED.benchmark_heat,
       benchmark_standing_charge = EXCLUDED.benchmark_standing_charge,
       benchmark_total = EXCLUDED.benchmark_total
"""
)

INSERT_CREDITS_SQL = text(
    """
INSERT INTO monthly_solar_credits (
    id, esco_id, property_id, month, credit_pence, billing_run_id)
SELECT CAST(:id_prefix || lpad(to_hex(:first_id + x.n), 12, '0') AS uuid),
       :esco_id, x.property_id, :month, x.credit, :run_id
  FROM unnest(CAST(:property_ids AS uuid[]), CAST(:credits AS integer[]))
       WITH ORDINALITY AS x(property_id, credit, n)
    ON CONFLICT (property_id, month) DO UPDATE SET
       credit_pence = EXCLUDED.credit_pence, billing_run_id = EXCLUDED.billing_run_id
"""
)


@dataclass(frozen=True)
class Cost:
    """One meter's month (rules.md §3): billed to its occupier at their tariff, and
    priced at the microgrid's and the benchmark's rates to compare."""

    usage_id: uuid.UUID
    customer_id: uuid.UUID
    own: rules.Costs
    microgrid: rules.Costs
    benchmark: rules.Costs


def cost_columns(costs: Sequence[Cost]) -> dict[str, str]:
    """The parameters of INSERT_COSTS_SQL for these costs: each column as one text of
    comma-separated values, exact to the last digit, split again by the statement.
    The driver's encoding of 14 arrays of Decimals and uuids, value by value, was most
    of a 100,000-home run's Python time."""
    columns: dict[str, list[Any]] = {
        "usage_ids": [cost.usage_id for cost in costs],
        "customer_ids": [cost.customer_id for cost in costs],
    }
    for prefix, price in PRICES.items():
        for letter, part in PARTS.items():
            columns[prefix + letter] = [getattr(getattr(c, price), part) for c in costs]
    return {key: ",".join(map(str, values)) for key, values in columns.items()}


@dataclass(frozen=True)
class MonthRates:
    """What prices a month: its billed days, and the microgrid's and the benchmark's
    rates in force on it (None: none, which costs 0)."""

    days: int
    microgrid: Rates | None
    benchmark: Rates | None

    def price(self, row: Any) -> Cost | rules.SkipReason:
        """The cost of one billable meter (a row of BILLABLE_SQL), or why it is skipped."""
        reason = rules.skip_reason(row.customer_id is not None, row.unit_rate is not None)
        if reason is not None:
            return reason
        usage = rules.Usage(row.power_kwh, row.heat_kwh)
        return Cost(
            row.usage_id,
            row.customer_id,
            own=rules.costs(Rates(row.unit_rate, row.standing_charge), usage, self.days),
            microgrid=rules.costs(self.microgrid, usage, self.days),
            benchmark=rules.costs(self.benchmark, usage, self.days),
        )


@dataclass
class MonthTotals:
    """What a run billed so far: the costs written, the customers billed and their
    total, and the meters skipped."""

    costs: int = 0
    customers: set[uuid.UUID] = field(default_factory=set)
    total: Decimal = Decimal(0)
    skipped: list[tuple[uuid.UUID, rules.SkipReason]] = field(default_factory=list)

    def price(self, rates: MonthRates, rows: Sequence[Any]) -> list[Cost]:
        """One batch's costs; its skipped meters, customers and total are counted."""
        costs = []
        for row in rows:
            cost = rates.price(row)
            if isinstance(cost, rules.SkipReason):
                self.skipped.append((row.meter_id, cost))
                continue
            costs.append(cost)
            self.customers.add(cost.customer_id)
            self.total += cost.own.total
        return costs


def ordered_id_prefix() -> str:
    """The first 20 hex digits of the ids a run gives its rows, the last 12 being a
    counter: the layout of a version-7 UUID (milliseconds, then random bits). A run's
    rows then sit side by side in their primary key's index instead of at random
    places in all of it: a 100,000-home run touched (and logged whole) every page of
    a 70 MB index (bench/README.md)."""
    millis = time.time_ns() // 1_000_000
    value = (millis & (2**48 - 1)) << 80 | 0x7 << 76 | secrets.randbits(12) << 64
    value |= 0b10 << 62 | secrets.randbits(14) << 48
    return f"{value:032x}"[:20]


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


@dataclass(frozen=True)
class Plan:
    """A run that may go ahead: checked, and its ESCO-month's lock held by the
    transaction that will write it."""

    esco_id: uuid.UUID
    region_code: str
    month: date
    days: int


async def prepare_run(tx: Tx, esco_id: uuid.UUID | None, month: date) -> Plan:
    """Check that the month may be billed now and take its lock for `tx`'s
    transaction; refused (`Rejected`) otherwise, with nothing written."""
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
    return Plan(esco.id, esco.region_code, month, rules.billable_days(month, today))


async def insert_run(conn: AsyncConnection, plan: Plan, actor: str) -> Row:
    """The run's row, `running`. Whoever calls this holds the ESCO-month's lock, so any
    other row of that month still `running` belongs to a run that died (a crash):
    those are marked failed first."""
    await conn.execute(
        update(RUNS)
        .where(
            RUNS.c.esco_id == plan.esco_id,
            RUNS.c.month == plan.month,
            RUNS.c.status == BillingRunStatus.RUNNING,
        )
        .values(
            status=BillingRunStatus.FAILED,
            error=INTERRUPTED,
            finished_at=func.coalesce(RUNS.c.finished_at, func.clock_timestamp()),
        )
    )
    return (
        await conn.execute(
            RUNS.insert()
            .values(
                esco_id=plan.esco_id,
                month=plan.month,
                status=BillingRunStatus.RUNNING,
                actor=actor,
            )
            .returning(RUNS)
        )
    ).one()


async def run_billing(
    tx: Tx, esco_id: uuid.UUID | None, month: date, progress: Progress = _no_progress
) -> RunResult:
    """A whole run in `tx`'s transaction, its row included (the demo's months; the API
    and the CLI run theirs as jobs, services/billing_jobs.py)."""
    plan = await prepare_run(tx, esco_id, month)
    run = await insert_run(tx.conn, plan, tx.actor)
    return await bill(tx, plan, run.id, progress)


async def bill(
    tx: Tx, plan: Plan, run_id: uuid.UUID, progress: Progress = _no_progress
) -> RunResult:
    """Price the month and write its costs, solar credits and the run's outcome in
    `tx`'s transaction (prepared by `prepare_run`, whose lock it holds). Costs are
    priced and written BATCH rows at a time; `progress` hears of each batch."""
    esco_id, month = plan.esco_id, plan.month
    rates = MonthRates(
        plan.days,
        microgrid=await _rates_in_force(tx, MICROGRID, MICROGRID.c.esco_id, esco_id, month),
        benchmark=await _rates_in_force(
            tx, BENCHMARKS, BENCHMARKS.c.region_code, plan.region_code, month
        ),
    )
    billable = (await tx.conn.execute(BILLABLE_SQL, {"esco_id": esco_id, "month": month})).all()
    await progress(0, len(billable))
    pending_credits = await _solar_credits(tx, esco_id, month)
    params = {
        "esco_id": esco_id,
        "month": month,
        "run_id": run_id,
        "id_prefix": ordered_id_prefix(),
    }
    try:
        totals = await _write_costs(tx, rates, billable, params, progress)
    except BaseException:
        pending_credits.cancel()
        raise
    credits = await pending_credits
    if credits:
        await tx.conn.execute(
            INSERT_CREDITS_SQL,
            {
                **params,
                "first_id": totals.costs,
                "property_ids": list(credits),
                "credits": list(credits.values()),
            },
        )
    await _drop_earlier_runs(tx, plan, run_id)
    run = await _complete(tx, plan, run_id, totals, len(billable), len(credits))
    return RunResult(run, totals.skipped)


async def _rates_in_force(
    tx: Tx, table: Any, owner_col: Any, owner: Any, month: date
) -> Rates | None:
    tariff = await _in_force(tx, table, owner_col, owner, month)
    return Rates(tariff.unit_rate, tariff.standing_charge) if tariff else None


async def _write_costs(
    tx: Tx,
    rates: MonthRates,
    billable: Sequence[Any],
    params: dict[str, Any],
    progress: Progress,
) -> MonthTotals:
    """Price and write the billable meters' costs, BATCH at a time. Each batch is
    priced in a thread while the one before is written: PostgreSQL and Python work on
    two cores at once, and the event loop stays free to serve requests. One statement
    at a time on the connection, as ever."""
    totals = MonthTotals()
    batch = max(1, BATCH)

    async def write(
        costs: Sequence[Cost], columns: dict[str, str], first_id: int, done: int
    ) -> None:
        if costs:
            await tx.conn.execute(INSERT_COSTS_SQL, {**params, **columns, "first_id": first_id})
        await progress(done, len(billable))

    def price(rows: Sequence[Any]) -> tuple[list[Cost], dict[str, str]]:
        costs = totals.price(rates, rows)
        return costs, cost_columns(costs)

    writing: asyncio.Task[None] | None = None
    try:
        for start in range(0, len(billable), batch):
            costs, columns = await asyncio.to_thread(price, billable[start : start + batch])
            if writing is not None:
                await writing
            done = min(start + batch, len(billable))
            writing = asyncio.create_task(write(costs, columns, totals.costs, done))
            totals.costs += len(costs)
        if writing is not None:
            await writing
    except BaseException:
        if writing is not None and not writing.done():
            writing.cancel()
            with contextlib.suppress(BaseException):
                await writing
        raise
    return totals


async def _drop_earlier_runs(tx: Tx, plan: Plan, run_id: uuid.UUID) -> None:
    """Same inputs, same rows: a re-run replaces the month's costs and credits. Rows
    of meters billed again were updated in place (a cost keeps its id, and PostgreSQL
    checks only the foreign key that changed, the run's: four checks a row were most
    of a 100,000-home run's database time); what this run did not write goes."""
    for table in (COSTS, CREDITS):
        await tx.conn.execute(
            delete(table).where(
                table.c.esco_id == plan.esco_id,
                table.c.month == plan.month,
                table.c.billing_run_id != run_id,
            )
        )


async def _complete(
    tx: Tx, plan: Plan, run_id: uuid.UUID, totals: MonthTotals, billable: int, credits: int
) -> Row:
    """The run's outcome, on its row and in the audit trail."""
    run = (
        await tx.conn.execute(
            update(RUNS)
            .where(RUNS.c.id == run_id)
            .values(
                status=BillingRunStatus.COMPLETED,
                finished_at=func.clock_timestamp(),
                customers_billed=len(totals.customers),
                total=totals.total,
                skipped_meters=[
                    {"meter_id": str(meter_id), "reason": reason.value}
                    for meter_id, reason in totals.skipped
                ],
                progress_billed=billable,
                progress_total=billable,
            )
            .returning(RUNS)
        )
    ).one()
    await tx.audit(
        "runBilling",
        "billing_run",
        run_id,
        {
            "month": plan.month,
            "days": plan.days,
            "costs": totals.costs,
            "customersBilled": len(totals.customers),
            "total": totals.total,
            "skipped": len(totals.skipped),
            "solarCredits": credits,
        },
        plan.esco_id,
    )
    return run


async def _solar_credits(
    tx: Tx, esco_id: uuid.UUID, month: date
) -> asyncio.Future[dict[uuid.UUID, int]]:
    """Every solar installation of the ESCO earns a credit for M, 0 included. Read
    now, computed in a thread (the exact fractions of a big ESCO take a second)
    while the run goes on; await the result."""
    tariff = await _in_force(tx, SOLAR_TARIFFS, SOLAR_TARIFFS.c.esco_id, esco_id, month)
    installations = (await tx.conn.execute(SOLAR_SQL, {"esco_id": esco_id})).all()

    def compute() -> dict[uuid.UUID, int]:
        return {
            row.property_id: solar.monthly_credit_pence(
                row.declared_net_capacity_kw,
                month,
                tariff.credit_pence_per_year if tariff else None,
                tariff.period_start if tariff else None,
            )
            for row in installations
        }

    return asyncio.ensure_future(asyncio.to_thread(compute))


async def finalize_run(tx: Tx, run_id: uuid.UUID | None) -> Row:
    """Freeze a month: its latest completed run becomes final."""
    tx.require_role("admin", "operator")
    run = await tx.visible(RUNS, run_id, "billingRunId", "billing run")
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
