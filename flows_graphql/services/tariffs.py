"""Tariff writes: publishing benchmarks (with quarterly generation), setting
microgrid tariffs, customer discounts and solar credit tariffs."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, and_, bindparam, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert

from ..db.models import (
    Account,
    BenchmarkTariff,
    Customer,
    CustomerAccount,
    CustomerTariff,
    Esco,
    MicrogridTariff,
    SolarCreditTariff,
    table_of,
)
from ..db.models.enums import CustomerAccountRole, CustomerStatus, TariffGeneration
from ..rules import generation, solar
from ..rules.tariffs import Rates, customer_rates, microgrid_rates
from . import inputs
from .problems import ErrorCode, Problems, check_window, reject, require_window
from .scope import esco_or_reject
from .tx import Row, Tx, changed

BENCHMARKS = table_of(BenchmarkTariff)
MICROGRID = table_of(MicrogridTariff)
CUSTOMER_TARIFFS = table_of(CustomerTariff)
SOLAR_TARIFFS = table_of(SolarCreditTariff)
ESCOS = table_of(Esco)
CUSTOMERS = table_of(Customer)
LINKS = table_of(CustomerAccount)
ACCOUNTS = table_of(Account)

RATE_LIMIT = Decimal(100)


@dataclass(frozen=True)
class GenerationReport:
    microgrid_created: int = 0
    microgrid_recomputed: int = 0
    customer_created: int = 0
    customer_recomputed: int = 0


def check_rate(problems: Problems, field: str, value: Decimal) -> None:
    if not value.is_finite() or not Decimal(0) <= value <= RATE_LIMIT:
        problems.add(field, ErrorCode.INVALID, "Must be between 0 and 100 (GBP).")
    elif value.as_tuple().exponent < -5:  # type: ignore[operator]
        problems.add(field, ErrorCode.INVALID, "At most 5 decimal places.")


def check_discount(problems: Problems, field: str, value: int) -> None:
    if not 0 <= value <= 100:
        problems.add(field, ErrorCode.INVALID, "Must be a whole percentage from 0 to 100.")


async def benchmark_in_force(tx: Tx, region_code: str, on: date) -> Rates | None:
    row = (
        await tx.conn.execute(
            select(BENCHMARKS.c.unit_rate, BENCHMARKS.c.standing_charge)
            .where(BENCHMARKS.c.region_code == region_code, BENCHMARKS.c.period_start <= on)
            .order_by(BENCHMARKS.c.period_start.desc())
            .limit(1)
        )
    ).first()
    return Rates(row.unit_rate, row.standing_charge) if row else None


async def publish_benchmark(
    tx: Tx, region_code: str, period_start: date, unit_rate: Decimal, standing_charge: Decimal
) -> tuple[Row, GenerationReport]:
    tx.require_role("admin")
    problems = Problems()
    check_window(problems, "periodStart", period_start, tx.today())
    check_rate(problems, "unitRate", unit_rate)
    check_rate(problems, "standingCharge", standing_charge)
    await inputs.region(tx, problems, region_code)
    problems.raise_if_any()

    stmt = insert(BenchmarkTariff).values(
        region_code=region_code,
        period_start=period_start,
        unit_rate=unit_rate,
        standing_charge=standing_charge,
    )
    before = (
        await tx.conn.execute(
            select(BENCHMARKS).where(
                BENCHMARKS.c.region_code == region_code, BENCHMARKS.c.period_start == period_start
            )
        )
    ).first()
    row = (
        await tx.conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["region_code", "period_start"],
                set_={"unit_rate": unit_rate, "standing_charge": standing_charge},
            ).returning(BENCHMARKS)
        )
    ).one()
    report = await _follow_benchmark(tx, region_code, period_start)
    await tx.audit(
        "publishBenchmarkTariff",
        "benchmark_tariff",
        f"{region_code}|{period_start}",
        {
            **changed(
                {"unit_rate": before.unit_rate, "standing_charge": before.standing_charge}
                if before
                else {},
                {"unit_rate": unit_rate, "standing_charge": standing_charge},
            ),
            "generated": report.__dict__,
        },
        esco_id=None,
    )
    return row, report


async def _follow_benchmark(tx: Tx, region_code: str, period_start: date) -> GenerationReport:
    """Recompute every tariff this benchmark is now in force for, then generate the
    quarter's new tariffs for the region's `auto` ESCOs."""
    next_start = await tx.conn.scalar(
        select(func.min(BENCHMARKS.c.period_start)).where(
            BENCHMARKS.c.region_code == region_code, BENCHMARKS.c.period_start > period_start
        )
    )
    benchmark = await benchmark_in_force(tx, region_code, period_start)
    assert benchmark is not None
    microgrid_recomputed, customer_recomputed = await _recompute(
        tx, region_code, period_start, next_start, benchmark
    )
    escos = (
        (
            await tx.conn.execute(
                select(ESCOS.c.id).where(
                    ESCOS.c.region_code == region_code,
                    ESCOS.c.tariff_generation == TariffGeneration.AUTO,
                )
            )
        )
        .scalars()
        .all()
    )
    microgrid_created = customer_created = 0
    for esco_id in escos:
        made_microgrid, made_customers = await _generate(tx, esco_id, period_start, benchmark)
        microgrid_created += made_microgrid
        customer_created += made_customers
    return GenerationReport(
        microgrid_created, microgrid_recomputed, customer_created, customer_recomputed
    )


async def _recompute(
    tx: Tx, region_code: str, start: date, end: date | None, benchmark: Rates
) -> tuple[int, int]:
    """Tariffs of the region's ESCOs starting in [start, end) are priced from this
    benchmark; update those whose computed rates differ (so a re-publish changes
    nothing)."""
    region_escos = select(ESCOS.c.id).where(ESCOS.c.region_code == region_code)
    microgrid = await _reprice(
        tx, MICROGRID, "esco_id", region_escos, start, end, benchmark, microgrid_rates
    )
    customers = await _reprice(
        tx, CUSTOMER_TARIFFS, "customer_id", region_escos, start, end, benchmark, customer_rates
    )
    return microgrid, customers


async def _reprice(
    tx: Tx,
    table: Table,
    owner: str,
    escos: Any,
    start: date,
    end: date | None,
    benchmark: Rates,
    price: Callable[[Rates, int], Rates],
) -> int:
    """Re-price one tariff table's rows of `escos` starting in [start, end); returns how
    many changed."""
    in_period = [table.c.period_start >= start]
    if end is not None:
        in_period.append(table.c.period_start < end)
    rows = (
        await tx.conn.execute(select(table).where(table.c.esco_id.in_(escos), *in_period))
    ).all()
    changes = []
    for row in rows:
        rates = price(benchmark, row.discount_percent)
        if (rates.unit_rate, rates.standing_charge) != (row.unit_rate, row.standing_charge):
            changes.append(
                {
                    "k_owner": getattr(row, owner),
                    "k_start": row.period_start,
                    "unit_rate": rates.unit_rate,
                    "standing_charge": rates.standing_charge,
                }
            )
    if changes:
        await tx.conn.execute(
            update(table)
            .where(
                table.c[owner] == bindparam("k_owner"),
                table.c.period_start == bindparam("k_start"),
            )
            .values(unit_rate=bindparam("unit_rate"), standing_charge=bindparam("standing_charge")),
            changes,
        )
    return len(changes)


async def _generate(
    tx: Tx, esco_id: uuid.UUID, period_start: date, benchmark: Rates
) -> tuple[int, int]:
    """Rule 2 for one `auto` ESCO: its microgrid tariff and its customers' tariffs
    from P, where missing."""
    window_start, _ = generation.carry_forward_window(period_start)
    microgrid_rows = (
        await tx.conn.execute(
            select(MICROGRID).where(
                MICROGRID.c.esco_id == esco_id,
                MICROGRID.c.period_start >= window_start,
                MICROGRID.c.period_start <= period_start,
            )
        )
    ).all()
    at_p = next((r for r in microgrid_rows if r.period_start == period_start), None)
    created_microgrid = 0
    if at_p is None:
        settings = generation.new_microgrid_settings(
            period_start,
            [
                generation.PastMicrogridTariff(
                    r.period_start,
                    generation.MicrogridSettings(
                        r.discount_percent,
                        r.emergency_credit,
                        r.ecredit_button_threshold,
                        r.debt_recovery_rate,
                    ),
                )
                for r in microgrid_rows
            ],
        )
        rates = microgrid_rates(benchmark, settings.discount_percent)
        await tx.conn.execute(
            insert(MicrogridTariff).values(
                esco_id=esco_id,
                period_start=period_start,
                discount_percent=settings.discount_percent,
                unit_rate=rates.unit_rate,
                standing_charge=rates.standing_charge,
                emergency_credit=settings.emergency_credit,
                ecredit_button_threshold=settings.ecredit_button_threshold,
                debt_recovery_rate=settings.debt_recovery_rate,
            )
        )
        microgrid_discount = settings.discount_percent
        created_microgrid = 1
    else:
        microgrid_discount = at_p.discount_percent

    eligible = (await tx.conn.execute(eligible_customers(esco_id, period_start))).scalars().all()
    past = (
        await tx.conn.execute(
            select(
                CUSTOMER_TARIFFS.c.customer_id,
                CUSTOMER_TARIFFS.c.period_start,
                CUSTOMER_TARIFFS.c.discount_percent,
            ).where(
                CUSTOMER_TARIFFS.c.esco_id == esco_id,
                CUSTOMER_TARIFFS.c.period_start >= window_start,
                CUSTOMER_TARIFFS.c.period_start <= period_start,
            )
        )
    ).all()
    have_p = {r.customer_id for r in past if r.period_start == period_start}
    discounts = generation.new_customer_discounts(
        period_start,
        eligible,
        have_p,
        [generation.PastCustomerTariff(*r) for r in past if r.period_start < period_start],
        microgrid_discount,
    )
    if discounts:
        rows = []
        for customer_id, discount in discounts.items():
            rates = customer_rates(benchmark, discount)
            rows.append(
                {
                    "customer_id": customer_id,
                    "period_start": period_start,
                    "esco_id": esco_id,
                    "discount_percent": discount,
                    "unit_rate": rates.unit_rate,
                    "standing_charge": rates.standing_charge,
                }
            )
        await tx.conn.execute(insert(CustomerTariff), rows)
    return created_microgrid, len(discounts)


def eligible_customers(esco_id: uuid.UUID, day: date) -> Any:
    """Active customers occupying, on `day`, an account open on that day."""
    return (
        select(CUSTOMERS.c.id)
        .distinct()
        .join(LINKS, LINKS.c.customer_id == CUSTOMERS.c.id)
        .join(ACCOUNTS, ACCOUNTS.c.id == LINKS.c.account_id)
        .where(
            CUSTOMERS.c.esco_id == esco_id,
            CUSTOMERS.c.status == CustomerStatus.ACTIVE,
            LINKS.c.role == CustomerAccountRole.OCCUPIER,
            LINKS.c.start_date <= day,
            or_(LINKS.c.end_date.is_(None), LINKS.c.end_date >= day),
            account_open_on(day),
        )
    )


def account_open_on(day: date) -> Any:
    """An account is open on a day from its opening day through its closing day."""
    return and_(
        ACCOUNTS.c.opened_on <= day,
        or_(ACCOUNTS.c.closed_on.is_(None), ACCOUNTS.c.closed_on >= day),
    )


async def set_microgrid_tariff(
    tx: Tx,
    esco_id: uuid.UUID | None,
    period_start: date,
    discount_percent: int,
    emergency_credit: Decimal | None,
    ecredit_button_threshold: Decimal | None,
    debt_recovery_rate: Decimal | None,
) -> Row:
    tx.require_role("admin", "operator")
    esco = await esco_or_reject(tx, esco_id)
    problems = Problems()
    check_window(problems, "periodStart", period_start, tx.today())
    check_discount(problems, "discountPercent", discount_percent)
    limits = (
        ("emergencyCredit", emergency_credit, Decimal(5000)),
        ("ecreditButtonThreshold", ecredit_button_threshold, Decimal(5000)),
        ("debtRecoveryRate", debt_recovery_rate, Decimal(500)),
    )
    for field, value, limit in limits:
        if value is not None and (not value.is_finite() or not 0 <= value <= limit):
            problems.add(field, ErrorCode.INVALID, f"Must be between 0 and {limit} (GBP).")
    problems.raise_if_any()
    benchmark = await benchmark_in_force(tx, esco.region_code, period_start)
    if benchmark is None:
        raise reject(
            "periodStart", ErrorCode.NO_BENCHMARK, "No benchmark tariff is in force on this day."
        )
    existing = (
        await tx.conn.execute(
            select(MICROGRID).where(
                MICROGRID.c.esco_id == esco.id, MICROGRID.c.period_start == period_start
            )
        )
    ).first()
    defaults = generation.DEFAULT_SETTINGS
    settings = {
        "discount_percent": discount_percent,
        "emergency_credit": _pick(emergency_credit, existing, "emergency_credit", defaults),
        "ecredit_button_threshold": _pick(
            ecredit_button_threshold, existing, "ecredit_button_threshold", defaults
        ),
        "debt_recovery_rate": _pick(debt_recovery_rate, existing, "debt_recovery_rate", defaults),
    }
    rates = microgrid_rates(benchmark, discount_percent)
    values = {**settings, "unit_rate": rates.unit_rate, "standing_charge": rates.standing_charge}
    row = (
        await tx.conn.execute(
            insert(MicrogridTariff)
            .values(esco_id=esco.id, period_start=period_start, **values)
            .on_conflict_do_update(index_elements=["esco_id", "period_start"], set_=values)
            .returning(MICROGRID)
        )
    ).one()
    before = {k: getattr(existing, k) for k in values} if existing else {}
    await tx.audit(
        "setMicrogridTariff",
        "microgrid_tariff",
        f"{esco.id}|{period_start}",
        changed(before, values),
        esco.id,
    )
    return row


def _pick(value: Decimal | None, existing: Any, name: str, defaults: Any) -> Decimal:
    if value is not None:
        return value
    picked: Decimal = getattr(existing if existing is not None else defaults, name)
    return picked


async def set_customer_discount(
    tx: Tx, customer_id: uuid.UUID | None, period_start: date, discount_percent: int
) -> Row:
    tx.require_role("admin", "operator")
    require_window("periodStart", period_start, tx.today())
    customer = await tx.visible(
        CUSTOMERS,
        customer_id,
        "customerId",
        "customer",
        stmt=select(CUSTOMERS.c.id, CUSTOMERS.c.esco_id, ESCOS.c.region_code).join(
            ESCOS, ESCOS.c.id == CUSTOMERS.c.esco_id
        ),
    )
    problems = Problems()
    check_discount(problems, "discountPercent", discount_percent)
    problems.raise_if_any()
    benchmark = await benchmark_in_force(tx, customer.region_code, period_start)
    if benchmark is None:
        raise reject(
            "periodStart", ErrorCode.NO_BENCHMARK, "No benchmark tariff is in force on this day."
        )
    existing = (
        await tx.conn.execute(
            select(CUSTOMER_TARIFFS).where(
                CUSTOMER_TARIFFS.c.customer_id == customer.id,
                CUSTOMER_TARIFFS.c.period_start == period_start,
            )
        )
    ).first()
    rates = customer_rates(benchmark, discount_percent)
    values = {
        "discount_percent": discount_percent,
        "unit_rate": rates.unit_rate,
        "standing_charge": rates.standing_charge,
    }
    row = (
        await tx.conn.execute(
            insert(CustomerTariff)
            .values(
                customer_id=customer.id,
                period_start=period_start,
                esco_id=customer.esco_id,
                **values,
            )
            .on_conflict_do_update(index_elements=["customer_id", "period_start"], set_=values)
            .returning(CUSTOMER_TARIFFS)
        )
    ).one()
    before = {k: getattr(existing, k) for k in values} if existing else {}
    await tx.customer_event(
        customer.esco_id,
        customer.id,
        "discount_set",
        {"periodStart": period_start, **changed(before, values)},
    )
    await tx.audit(
        "setCustomerDiscount",
        "customer_tariff",
        f"{customer.id}|{period_start}",
        changed(before, values),
        customer.esco_id,
    )
    return row


async def set_solar_credit_tariff(
    tx: Tx, esco_id: uuid.UUID | None, period_start: date, credit_pence_per_year: Decimal
) -> Row:
    tx.require_role("admin", "operator")
    esco = await esco_or_reject(tx, esco_id)
    require_window("periodStart", period_start, tx.today())
    if not credit_pence_per_year.is_finite() or not 0 <= credit_pence_per_year <= 30000:
        raise reject("creditPencePerYear", ErrorCode.INVALID, "Must be between 0 and 30000 pence.")
    values = {
        "credit_pence_per_year": credit_pence_per_year,
        "credit_pence_per_day": solar.credit_pence_per_day(credit_pence_per_year, period_start),
    }
    existing = (
        await tx.conn.execute(
            select(SOLAR_TARIFFS).where(
                SOLAR_TARIFFS.c.esco_id == esco.id, SOLAR_TARIFFS.c.period_start == period_start
            )
        )
    ).first()
    row = (
        await tx.conn.execute(
            insert(SolarCreditTariff)
            .values(esco_id=esco.id, period_start=period_start, **values)
            .on_conflict_do_update(index_elements=["esco_id", "period_start"], set_=values)
            .returning(SOLAR_TARIFFS)
        )
    ).one()
    before = {k: getattr(existing, k) for k in values} if existing else {}
    await tx.audit(
        "setSolarCreditTariff",
        "solar_credit_tariff",
        f"{esco.id}|{period_start}",
        changed(before, values),
        esco.id,
    )
    return row
