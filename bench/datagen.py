"""Deterministic benchmark data at scale N (customers).

For a scale N, a seed and a current month, the generator makes:

- 2 regions with quarterly benchmark tariffs over two years;
- 1 big ESCO with most customers and 3 small ones (2% of the customers each), each with
  quarterly microgrid tariffs, a solar credit tariff, sites and allowed contract terms;
- per customer a property with a supply meter, power and heat circuits (solar on a
  fifth of them, with a solar installation), an active account with the customer as
  occupier, quarterly customer tariffs, 12 months of usage, the costs of those months
  and a payment per month; one customer in 20 also owns the next customer's account;
- 7% more properties that are metered but vacant: half with an account and no
  occupier (billing skips them: NO_OCCUPIER), half without any account;
- a billing run per ESCO and month: finalized, except the last month, left completed
  so that the billing scenario may bill it again.

Every id and figure comes from one seeded generator, so the same shape gives the same
rows. Costs and credits are priced by the product's own rules, so billing a loaded month
again writes back the same figures. Every child row carries its parent's esco_id (the
composite tenant keys) and every value is inside the CHECKs.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from asyncpg.pgproto.pgproto import UUID

from flows_graphql.rules import billing as billing_rules
from flows_graphql.rules import solar as solar_rules
from flows_graphql.rules.tariffs import Rates, customer_rates, microgrid_rates

SMALL_ESCOS = 3
SMALL_SHARE = 0.02
VACANT_SHARE = 0.07
MONTHS = 12
# Tariffs start this many months before the first month with usage.
TARIFF_HISTORY_MONTHS = 12
PROPERTIES_PER_SITE = 500
BIG_ESCO = "bench-big"
ACTOR = "bench-datagen"
FIRST_ACCOUNT_NUMBER = 10_000_001
SOLAR_CREDIT_PENCE_PER_YEAR = Decimal(5000)

Record = tuple[Any, ...]

# The columns written per table, in COPY order (the others take their defaults).
COLUMNS: dict[str, tuple[str, ...]] = {
    "regions": ("code", "name"),
    "benchmark_tariffs": ("region_code", "period_start", "unit_rate", "standing_charge"),
    "contract_terms": ("id", "type", "version", "title"),
    "escos": ("id", "code", "name", "region_code", "app_url"),
    "contract_terms_esco": ("esco_id", "contract_terms_id"),
    "microgrid_tariffs": (
        "esco_id",
        "period_start",
        "discount_percent",
        "unit_rate",
        "standing_charge",
        "emergency_credit",
        "ecredit_button_threshold",
        "debt_recovery_rate",
    ),
    "solar_credit_tariffs": (
        "esco_id",
        "period_start",
        "credit_pence_per_year",
        "credit_pence_per_day",
    ),
    "sites": ("id", "esco_id", "code", "name"),
    "meters": ("id", "esco_id", "serial", "name", "hardware", "mode"),
    "properties": ("id", "esco_id", "site_id", "plot", "address", "supply_meter_id"),
    "circuits": ("id", "esco_id", "type", "name"),
    "circuit_meter": ("circuit_id", "meter_id", "esco_id"),
    "solar_installation": (
        "property_id",
        "esco_id",
        "mcs_certificate",
        "declared_net_capacity_kw",
        "commissioning_date",
    ),
    "accounts": (
        "id",
        "esco_id",
        "account_number",
        "property_id",
        "status",
        "contract_terms_id",
        "opened_on",
    ),
    "customers": ("id", "esco_id", "email", "full_name", "status", "created_at", "updated_at"),
    "customer_accounts": ("customer_id", "account_id", "role", "start_date", "esco_id"),
    "customer_tariffs": (
        "customer_id",
        "period_start",
        "esco_id",
        "discount_percent",
        "unit_rate",
        "standing_charge",
    ),
    "monthly_usage": (
        "id",
        "esco_id",
        "meter_id",
        "month",
        "power_kwh",
        "heat_kwh",
        "solar_kwh",
        "source",
    ),
    "billing_runs": (
        "id",
        "esco_id",
        "month",
        "status",
        "actor",
        "started_at",
        "finished_at",
        "customers_billed",
        "total",
        "skipped_meters",
    ),
    "monthly_costs": (
        "id",
        "esco_id",
        "monthly_usage_id",
        "customer_id",
        "month",
        "billing_run_id",
        "power",
        "heat",
        "standing_charge",
        "total",
        "microgrid_power",
        "microgrid_heat",
        "microgrid_standing_charge",
        "microgrid_total",
        "benchmark_power",
        "benchmark_heat",
        "benchmark_standing_charge",
        "benchmark_total",
    ),
    "monthly_solar_credits": (
        "id",
        "esco_id",
        "property_id",
        "month",
        "credit_pence",
        "billing_run_id",
    ),
    "payments": (
        "id",
        "esco_id",
        "customer_id",
        "account_id",
        "amount_pence",
        "currency",
        "status",
        "provider_reference",
        "description",
        "scheduled_at",
        "idempotency_key",
        "created_at",
        "updated_at",
    ),
}
# Parents before children (the order COPY loads them in).
TABLES = tuple(COLUMNS)


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def quarter_start(day: date) -> date:
    return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass(frozen=True)
class Shape:
    """What the data set depends on: the same shape gives the same rows."""

    scale: int
    seed: int
    # The current month: usage and costs cover the 12 months before it.
    anchor: date

    @property
    def months(self) -> list[date]:
        return [add_months(self.anchor, n) for n in range(-MONTHS, 0)]

    @property
    def label(self) -> str:
        # `layout=month`: month-keyed tables are loaded a month at a time (bench/load.py).
        return f"bench scale={self.scale} seed={self.seed} anchor={self.anchor:%Y-%m} layout=month"


@dataclass(frozen=True)
class Month:
    """A billed month and what every row of it shares (computed once)."""

    start: date
    days: int
    quarter: date
    last: bool
    description: str
    idempotency_key: str
    paid_from: datetime
    winter: bool


@dataclass
class EscoPlan:
    id: UUID
    code: str
    name: str
    region: str
    customers: int
    discount: int


class Generator:
    """Every table's rows, in memory (a few hundred MB at 100,000 customers)."""

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self.rng = random.Random(shape.seed)
        self.rows: dict[str, list[Record]] = {name: [] for name in TABLES}
        self.account_number = FIRST_ACCOUNT_NUMBER
        self.meter_number = 0
        self.anchor_at = midnight(shape.anchor)
        months = shape.months
        first_tariff = add_months(months[0], -TARIFF_HISTORY_MONTHS)
        self.quarters = sorted(
            {quarter_start(add_months(first_tariff, n)) for n in range(TARIFF_HISTORY_MONTHS)}
            | {quarter_start(m) for m in months}
        )
        self.months = [
            Month(
                start=m,
                days=billing_rules.days_in_month(m),
                quarter=quarter_start(m),
                last=m == months[-1],
                description=f"Energy bill {m:%B %Y}",
                idempotency_key=f"bench-{m:%Y-%m}",
                paid_from=midnight(add_months(m, 1)) + timedelta(days=2),
                winter=m.month in (11, 12, 1, 2, 3),
            )
            for m in months
        ]
        self.benchmarks: dict[tuple[str, date], Rates] = {}
        self._customer_rates: dict[tuple[str, date, int], Rates] = {}

    def uuid(self) -> UUID:
        # asyncpg's own UUID type: made from 16 bytes and copied without conversion.
        return UUID(self.rng.randbytes(16))

    def between(self, low: int, high: int) -> int:
        """A uniform integer in [low, high] (faster than randint; as deterministic)."""
        return low + int(self.rng.random() * (high - low + 1))

    def customer_rates(self, region: str, quarter: date, discount: int) -> Rates:
        key = (region, quarter, discount)
        rates = self._customer_rates.get(key)
        if rates is None:
            rates = customer_rates(self.benchmarks[region, quarter], discount)
            self._customer_rates[key] = rates
        return rates

    @staticmethod
    def benchmark(region_index: int, quarter_index: int) -> Rates:
        # Prices drift up a little each quarter; the second region is a bit dearer.
        unit = Decimal("0.24500") + Decimal("0.00350") * quarter_index
        standing = Decimal("0.53000") + Decimal("0.00120") * quarter_index
        if region_index:
            unit += Decimal("0.01250")
            standing += Decimal("0.02000")
        return Rates(unit, standing)

    # --- the data set ----------------------------------------------------------------

    def build(self) -> dict[str, list[Record]]:
        regions = ["bench-south", "bench-north"]
        for r, code in enumerate(regions):
            self.rows["regions"].append((code, f"Bench region {r + 1}"))
            for q, start in enumerate(self.quarters):
                rates = self.benchmarks[code, start] = self.benchmark(r, q)
                self.rows["benchmark_tariffs"].append(
                    (code, start, rates.unit_rate, rates.standing_charge)
                )
        self.terms_id = self.uuid()
        self.rows["contract_terms"].append((self.terms_id, "supply", 1, "Bench supply terms"))
        small = max(1, round(self.shape.scale * SMALL_SHARE))
        big = max(1, self.shape.scale - SMALL_ESCOS * small)
        plans = [EscoPlan(self.uuid(), BIG_ESCO, "Big Community Energy", regions[0], big, 15)]
        plans += [
            EscoPlan(
                self.uuid(),
                f"bench-s{n}",
                f"Small Community Energy {n}",
                regions[n % 2],
                small,
                10 + 5 * (n % 2),
            )
            for n in range(1, SMALL_ESCOS + 1)
        ]
        for plan in plans:
            EscoBuilder(self, plan).build()
        return self.rows


class EscoBuilder:
    """One ESCO: its tariffs, sites, properties, customers and their months."""

    def __init__(self, gen: Generator, plan: EscoPlan) -> None:
        self.gen = gen
        self.plan = plan
        self.rows = gen.rows
        self.microgrid: dict[date, Rates] = {}
        self.run_ids = {m.start: gen.uuid() for m in gen.months}
        self.run_totals = {m.start: Decimal(0) for m in gen.months}
        self.run_customers = dict.fromkeys(self.run_ids, 0)
        self.skipped: list[dict[str, str]] = []
        self.customers: list[UUID] = []
        # Per property in order: its account (id, opened on), if it has one.
        self.accounts: list[tuple[UUID, date] | None] = []
        self.solar: list[tuple[UUID, Decimal]] = []
        self.solar_start = gen.quarters[0]

    def build(self) -> None:
        gen, plan, rows = self.gen, self.plan, self.rows
        rows["escos"].append(
            (plan.id, plan.code, plan.name, plan.region, f"https://{plan.code}.example/app")
        )
        rows["contract_terms_esco"].append((plan.id, gen.terms_id))
        for start in gen.quarters:
            rates = self.microgrid[start] = microgrid_rates(
                gen.benchmarks[plan.region, start], plan.discount
            )
            rows["microgrid_tariffs"].append(
                (
                    plan.id,
                    start,
                    plan.discount,
                    rates.unit_rate,
                    rates.standing_charge,
                    Decimal(1500),
                    Decimal(500),
                    Decimal(30),
                )
            )
        rows["solar_credit_tariffs"].append(
            (
                plan.id,
                self.solar_start,
                SOLAR_CREDIT_PENCE_PER_YEAR,
                solar_rules.credit_pence_per_day(SOLAR_CREDIT_PENCE_PER_YEAR, self.solar_start),
            )
        )
        properties = plan.customers + math.ceil(plan.customers * VACANT_SHARE)
        sites = [gen.uuid() for _ in range(math.ceil(properties / PROPERTIES_PER_SITE))]
        for n, site_id in enumerate(sites, start=1):
            rows["sites"].append((site_id, plan.id, f"site-{n}", f"{plan.name} site {n}"))
        for j in range(properties):
            self.property(j, sites[j // PROPERTIES_PER_SITE], occupied=j < plan.customers)
        # One customer in 20 also owns the next property's account (a landlord).
        for j in range(0, plan.customers - 1, 20):
            account = self.accounts[j + 1]
            assert account is not None
            rows["customer_accounts"].append(
                (self.customers[j], account[0], "owner", account[1], plan.id)
            )
        self.billing_runs()
        self.solar_credits()

    def property(self, j: int, site_id: UUID, occupied: bool) -> None:
        gen, plan, rows = self.gen, self.plan, self.rows
        gen.meter_number += 1
        meter_id = gen.uuid()
        rows["meters"].append(
            (meter_id, plan.id, f"BM{gen.meter_number:08d}", None, "EM-1", "active")
        )
        property_id = gen.uuid()
        rows["properties"].append(
            (property_id, plan.id, site_id, f"P{j + 1:06d}", f"{j + 1} Bench Street", meter_id)
        )
        solar = j % 5 == 2
        for kind in ("power", "heat", "solar") if solar else ("power", "heat"):
            circuit_id = gen.uuid()
            rows["circuits"].append((circuit_id, plan.id, kind, None))
            rows["circuit_meter"].append((circuit_id, meter_id, plan.id))
        if solar:
            capacity = Decimal("3.5") + Decimal(j % 4) / 2
            self.solar.append((property_id, capacity))
            rows["solar_installation"].append(
                (
                    property_id,
                    plan.id,
                    f"MCS-{gen.meter_number:08d}",
                    capacity,
                    add_months(gen.months[0].start, -24),
                )
            )
        usage = self.usage(meter_id, solar)
        # Vacant properties: every other one still has an (unoccupied) account.
        account = self.account(property_id) if occupied or j % 2 == 0 else None
        self.accounts.append(account)
        if not occupied:
            if account is not None:
                self.skipped.append({"meter_id": str(meter_id), "reason": "NO_OCCUPIER"})
            return
        assert account is not None
        account_id, opened_on = account
        customer_id = self.customer(account_id, opened_on)
        # Every tenth customer negotiated 5 points more discount than the ESCO's.
        discount = plan.discount + (5 if j % 10 == 3 else 0)
        self.customer_tariffs(customer_id, discount)
        costs = rows["monthly_costs"].append
        for month, (usage_id, power, heat) in zip(gen.months, usage, strict=True):
            quarter = month.quarter
            use = billing_rules.Usage(power, heat)
            own = billing_rules.costs(
                gen.customer_rates(plan.region, quarter, discount), use, month.days
            )
            mg = billing_rules.costs(self.microgrid[quarter], use, month.days)
            bm = billing_rules.costs(gen.benchmarks[plan.region, quarter], use, month.days)
            costs(
                (
                    gen.uuid(),
                    plan.id,
                    usage_id,
                    customer_id,
                    month.start,
                    self.run_ids[month.start],
                    own.power,
                    own.heat,
                    own.standing_charge,
                    own.total,
                    mg.power,
                    mg.heat,
                    mg.standing_charge,
                    mg.total,
                    bm.power,
                    bm.heat,
                    bm.standing_charge,
                    bm.total,
                )
            )
            self.run_totals[month.start] += own.total
            self.run_customers[month.start] += 1
            self.payment(customer_id, account_id, month, own.total)

    def usage(self, meter_id: UUID, solar: bool) -> list[tuple[UUID, Decimal, Decimal]]:
        gen, plan = self.gen, self.plan
        between = gen.between
        append = self.rows["monthly_usage"].append
        made = []
        for month in gen.months:
            # kWh with 3 decimals (the column's scale), more power and heat in winter.
            if month.winter:
                power = Decimal(between(180_000, 480_000)).scaleb(-3)
                heat = Decimal(between(300_000, 650_000)).scaleb(-3)
                generated = between(20_000, 90_000)
            else:
                power = Decimal(between(120_000, 420_000)).scaleb(-3)
                heat = Decimal(between(40_000, 160_000)).scaleb(-3)
                generated = between(150_000, 380_000)
            usage_id = gen.uuid()
            append(
                (
                    usage_id,
                    plan.id,
                    meter_id,
                    month.start,
                    power,
                    heat,
                    Decimal(generated).scaleb(-3) if solar else Decimal(0),
                    "meter",
                )
            )
            made.append((usage_id, power, heat))
        return made

    def account(self, property_id: UUID) -> tuple[UUID, date]:
        gen = self.gen
        account_id = gen.uuid()
        # Opened 1 to 24 months before the first billed month: billable in all of them.
        opened_on = add_months(gen.months[0].start, -gen.between(1, 24)) + timedelta(
            days=gen.between(0, 27)
        )
        self.rows["accounts"].append(
            (
                account_id,
                self.plan.id,
                gen.account_number,
                property_id,
                "active",
                gen.terms_id,
                opened_on,
            )
        )
        gen.account_number += 1
        return account_id, opened_on

    def customer(self, account_id: UUID, opened_on: date) -> UUID:
        plan = self.plan
        n = len(self.customers) + 1
        customer_id = self.gen.uuid()
        created = self.gen.anchor_at - timedelta(days=800, minutes=-n)
        self.rows["customers"].append(
            (
                customer_id,
                plan.id,
                f"c{n:06d}@{plan.code}.example",
                f"Customer {n} of {plan.name}",
                "inactive" if n % 33 == 7 else "active",
                created,
                created,
            )
        )
        self.customers.append(customer_id)
        self.rows["customer_accounts"].append(
            (customer_id, account_id, "occupier", opened_on, plan.id)
        )
        return customer_id

    def customer_tariffs(self, customer_id: UUID, discount: int) -> None:
        gen, plan = self.gen, self.plan
        append = self.rows["customer_tariffs"].append
        for start in gen.quarters:
            rates = gen.customer_rates(plan.region, start, discount)
            append((customer_id, start, plan.id, discount, rates.unit_rate, rates.standing_charge))

    def payment(self, customer_id: UUID, account_id: UUID, month: Month, total: Decimal) -> None:
        gen = self.gen
        created = month.paid_from + timedelta(seconds=gen.between(0, 86_000))
        self.rows["payments"].append(
            (
                gen.uuid(),
                self.plan.id,
                customer_id,
                account_id,
                min(max(int(total * 100), 1), 50_000),
                "GBP",
                "pending" if month.last else "succeeded",
                None if month.last else f"pi_bench_{gen.rng.getrandbits(48):012x}",
                month.description,
                created,
                month.idempotency_key,
                created,
                created,
            )
        )

    def billing_runs(self) -> None:
        skipped = json.dumps(self.skipped)
        for month in self.gen.months:
            started = month.paid_from
            self.rows["billing_runs"].append(
                (
                    self.run_ids[month.start],
                    self.plan.id,
                    month.start,
                    # The last month stays open: the billing scenario bills it again.
                    "completed" if month.last else "finalized",
                    ACTOR,
                    started,
                    started + timedelta(seconds=3),
                    self.run_customers[month.start],
                    self.run_totals[month.start],
                    skipped,
                )
            )

    def solar_credits(self) -> None:
        gen, plan = self.gen, self.plan
        append = self.rows["monthly_solar_credits"].append
        for property_id, capacity in self.solar:
            for month in gen.months:
                credit = solar_rules.monthly_credit_pence(
                    capacity, month.start, SOLAR_CREDIT_PENCE_PER_YEAR, self.solar_start
                )
                append(
                    (
                        gen.uuid(),
                        plan.id,
                        property_id,
                        month.start,
                        credit,
                        self.run_ids[month.start],
                    )
                )
