"""Deterministic demo data: two ESCOs with enough in them for a dashboard to look real.

`seed_demo` only inserts, in the caller's transaction, and never commits. Every row is
computed in Python first (ids are uuid5 of a fixed namespace, variety comes from seeded
`random.Random`s, dates are relative to `today`), so the same `today` always gives the
same data; then each table is written with one bulk INSERT.

Billing output (monthly costs, billing runs, solar credits) is deliberately absent: it
is produced by running the real billing service over the usage seeded here.
"""

from __future__ import annotations

import calendar
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Context, Decimal, localcontext
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from .db.models import (
    Account,
    AccountEvent,
    AccountEventType,
    AccountStatus,
    Base,
    BenchmarkTariff,
    Circuit,
    CircuitMeter,
    CircuitType,
    ContractTerms,
    ContractTermsEsco,
    ContractTermsType,
    Customer,
    CustomerAccount,
    CustomerAccountRole,
    CustomerEvent,
    CustomerInvite,
    CustomerStatus,
    CustomerTariff,
    Esco,
    Meter,
    MeterMode,
    MicrogridTariff,
    MonthlyUsage,
    Payment,
    PaymentStatus,
    Property,
    Site,
    SolarCreditTariff,
    SolarInstallation,
    TariffGeneration,
    UsageSource,
)
from .rules.solar import credit_pence_per_day
from .rules.tariffs import Rates, customer_rates, microgrid_rates

Row = dict[str, Any]

# Never change: every demo id is derived from it, and stable ids let people bookmark
# demo objects across reseeds.
_NAMESPACE = uuid.UUID("6f0b7a52-3c1e-4d8a-9b57-2f4e1c9d0a63")

# Parents before children: foreign keys are checked at the end of every statement.
_INSERT_ORDER: tuple[type[Base], ...] = (
    Esco,
    Site,
    ContractTerms,
    ContractTermsEsco,
    Meter,
    Property,
    Circuit,
    CircuitMeter,
    SolarInstallation,
    Customer,
    Account,
    CustomerAccount,
    BenchmarkTariff,
    MicrogridTariff,
    CustomerTariff,
    SolarCreditTariff,
    MonthlyUsage,
    Payment,
    CustomerEvent,
    AccountEvent,
    CustomerInvite,
)


@dataclass(frozen=True)
class DemoSummary:
    """What the CLI needs to print ready-to-use tokens for the demo."""

    esco_codes: list[str]
    esco_ids: dict[str, uuid.UUID]
    operator_esco_code: str
    customer_email: str
    customer_id: uuid.UUID
    counts: dict[str, int]


async def seed_demo(session: AsyncSession, *, today: date) -> DemoSummary:
    """Insert the demo data into an empty database (the caller commits)."""
    demo = _build(today)
    for model in _INSERT_ORDER:
        rows = demo.rows.get(model)
        if rows:
            # render_nulls: the ORM otherwise drops None-valued keys, and rows of different
            # shapes (e.g. open and ended occupancies) would go out as separate statements.
            await session.execute(insert(model).execution_options(render_nulls=True), rows)
    return DemoSummary(
        esco_codes=[spec.code for spec in _ESCOS],
        esco_ids={spec.code: _id("esco", spec.code) for spec in _ESCOS},
        operator_esco_code=_ESCOS[0].code,
        customer_email=demo.featured_customer.email,
        customer_id=demo.featured_customer.id,
        counts={model.__tablename__: len(demo.rows.get(model, ())) for model in _INSERT_ORDER},
    )


# --- the shape of the demo -------------------------------------------------------------


# The ESCO the demo's operator and customer tokens belong to (the README uses it).
DEMO_ESCO = "solarvale"


@dataclass(frozen=True)
class _SiteSpec:
    code: str
    name: str
    street: str
    town: str
    postcode: str


@dataclass(frozen=True)
class _EscoSpec:
    code: str
    name: str
    region_code: str
    serial_prefix: str
    properties: int
    discount_percent: int
    sites: tuple[_SiteSpec, ...]
    # How many properties each landlord owns (they do not live in them).
    landlord_holdings: tuple[int, ...]
    # Solar credit rates from 1 January two years ago and one year ago.
    solar_credit_pence_per_year: tuple[Decimal, Decimal]
    seed: int

    @property
    def app_url(self) -> str:
        return f"https://app.{self.code}.example"


_ESCOS: tuple[_EscoSpec, ...] = (
    _EscoSpec(
        code=DEMO_ESCO,
        name="Solarvale Community Energy",
        region_code="south_west",
        serial_prefix="SV",
        properties=54,
        discount_percent=20,
        sites=(
            _SiteSpec("orchard", "Orchard Rise", "Orchard Rise", "Taunton", "TA1 4QX"),
            _SiteSpec("mill", "Mill Lane", "Mill Lane", "Taunton", "TA2 7LP"),
        ),
        landlord_holdings=(5, 3),
        solar_credit_pence_per_year=(Decimal("5490"), Decimal("5475")),
        seed=1101,
    ),
    _EscoSpec(
        code="riverside",
        name="Riverside Microgrid Co-op",
        region_code="south_east",
        serial_prefix="RV",
        properties=30,
        discount_percent=25,
        sites=(
            _SiteSpec("wharf", "Wharf Quarter", "Wharf Street", "Maidstone", "ME14 5BZ"),
            _SiteSpec("meadow", "Meadow Court", "Meadow Way", "Maidstone", "ME16 8RT"),
        ),
        landlord_holdings=(4,),
        solar_credit_pence_per_year=(Decimal("5110"), Decimal("5840")),
        seed=2202,
    ),
)

# Latest-quarter benchmark per region; earlier quarters add _BENCHMARK_DELTAS.
_BENCHMARK_BASE: dict[str, tuple[Decimal, Decimal]] = {
    "south_west": (Decimal("0.2612"), Decimal("0.5843")),
    "south_east": (Decimal("0.2486"), Decimal("0.6097")),
}
# (unit rate, standing charge) deltas, oldest quarter first: prices drifting down from a
# peak with small bumps, the way the GB price cap moved.
_BENCHMARK_DELTAS: tuple[tuple[Decimal, Decimal], ...] = tuple(
    (Decimal(u), Decimal(s))
    for u, s in (
        ("0.0412", "-0.0421"),
        ("0.0275", "-0.0390"),
        ("0.0150", "-0.0112"),
        ("0.0088", "-0.0035"),
        ("0.0031", "0.0010"),
        ("-0.0023", "0.0032"),
        ("0.0046", "-0.0018"),
        ("0", "0"),
    )
)
_QUARTERS = len(_BENCHMARK_DELTAS)

# fmt: off
_FIRST_NAMES = (
    "Amelia", "Oliver", "Isla", "George", "Ava", "Harry", "Mia", "Noah", "Grace", "Jack",
    "Freya", "Leo", "Sophie", "Arthur", "Ella", "Oscar", "Lily", "Theo", "Evie", "Alfie",
    "Poppy", "Charlie", "Florence", "Henry", "Rosie", "Thomas", "Ruby", "Samuel", "Zara",
    "Joshua",
)
_SURNAMES = (
    "Hughes", "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Evans", "Thomas",
    "Roberts", "Walker", "Wright", "Robinson", "Thompson", "White", "Edwards", "Green",
    "Hall", "Wood", "Harris", "Lewis", "Martin", "Jackson", "Clarke", "Clark", "Turner",
    "Hill", "Scott", "Cooper", "Morris",
)
# fmt: on
_METER_HARDWARE = ("Emlite ECA2", "EDMI Atlas Mk10A", "Secure Liberty 100", "Landis+Gyr E470")


def _decimals(*values: str) -> tuple[Decimal, ...]:
    return tuple(Decimal(v) for v in values)


_SOLAR_CAPACITIES_KW = _decimals("2.37", "3.00", "3.60", "4.00", "4.20", "5.00")

# Monthly shape of consumption (1.00 = an average month) and UK PV yield per kW, January
# first.
# fmt: off
_POWER_SEASON = _decimals(
    "1.25", "1.15", "1.05", "0.95", "0.85", "0.80", "0.80", "0.82", "0.90", "1.02", "1.16", "1.30"
)
_HEAT_SEASON = _decimals(
    "2.10", "1.85", "1.45", "0.95", "0.55", "0.30", "0.25", "0.28", "0.50", "0.95", "1.60", "2.05"
)
_SOLAR_KWH_PER_KW = _decimals(
    "20", "35", "65", "95", "115", "120", "118", "100", "75", "45", "25", "15"
)
# fmt: on

_PAYMENT_AMOUNTS_PENCE = (1000, 1500, 2000, 2500, 3000, 4000, 5000, 7500, 10000)
_PAYMENT_DESCRIPTIONS = ("App top-up", "Card payment", "Direct debit", "Top-up at PayPoint")

_THREE_DP = Decimal("0.001")


# --- small helpers ---------------------------------------------------------------------


def _id(*parts: object) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, "/".join(str(p) for p in parts))


def _add_months(d: date, months: int) -> date:
    index = d.year * 12 + d.month - 1 + months
    year, month = divmod(index, 12)
    day = min(d.day, calendar.monthrange(year, month + 1)[1])
    return date(year, month + 1, day)


def _quarter_start(d: date) -> date:
    return date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)


def _at(d: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(d, time(hour, minute, tzinfo=UTC))


def _jitter(rng: random.Random) -> Decimal:
    """A factor in 0.900..1.100, drawn as an integer so no float touches the data."""
    return Decimal(rng.randint(900, 1100)) / 1000


def _microgrid_rates(
    benchmark: tuple[Decimal, Decimal], discount_percent: int
) -> tuple[Decimal, Decimal]:
    rates = microgrid_rates(Rates(*benchmark), discount_percent)
    return rates.unit_rate, rates.standing_charge


def _customer_rates(
    benchmark: tuple[Decimal, Decimal], discount_percent: int
) -> tuple[Decimal, Decimal]:
    rates = customer_rates(Rates(*benchmark), discount_percent)
    return rates.unit_rate, rates.standing_charge


def _solar_pence_per_day(period_start: date, pence_per_year: Decimal) -> Decimal:
    return credit_pence_per_day(pence_per_year, period_start)


# The demo's full months of usage, ending with the month before today's.
USAGE_MONTHS = 12


# --- the builder -----------------------------------------------------------------------


@dataclass
class _Person:
    id: uuid.UUID
    esco: _EscoSpec
    email: str
    full_name: str
    status: CustomerStatus
    joined: date
    signed_up: datetime


@dataclass
class _Home:
    """A property with its supply meter and its (only) account."""

    esco: _EscoSpec
    number: int
    id: uuid.UUID
    plot: str
    meter_id: uuid.UUID
    account_id: uuid.UUID
    opened_on: date
    solar_kw: Decimal | None


@dataclass
class _Link:
    customer: _Person
    home: _Home
    role: CustomerAccountRole
    start: date
    end: date | None


@dataclass
class _Demo:
    today: date
    rows: dict[type[Base], list[Row]] = field(default_factory=dict)
    homes: list[_Home] = field(default_factory=list)
    people: list[_Person] = field(default_factory=list)
    links: list[_Link] = field(default_factory=list)
    discounts: dict[uuid.UUID, int] = field(default_factory=dict)

    def add(self, model: type[Base], row: Row) -> None:
        self.rows.setdefault(model, []).append(row)

    @property
    def quarters(self) -> list[date]:
        """The benchmark quarters, oldest first; the last one contains today."""
        latest = _quarter_start(self.today)
        return [_add_months(latest, -3 * i) for i in reversed(range(_QUARTERS))]

    @property
    def featured_customer(self) -> _Person:
        """The customer the CLI prints a token for: an active, current occupier."""
        return next(
            link.customer
            for link in self.links
            if link.role is CustomerAccountRole.OCCUPIER
            and link.end is None
            and link.customer.status is CustomerStatus.ACTIVE
        )

    def occupancies(self) -> Iterator[_Link]:
        return (link for link in self.links if link.role is CustomerAccountRole.OCCUPIER)


def _build(today: date) -> _Demo:
    # Decimal arithmetic follows the current context: pin it so a caller's cannot change results.
    with localcontext(Context(prec=28)):
        demo = _Demo(today=today)
        _community(demo)
        for spec in _ESCOS:
            rng = random.Random(spec.seed)
            _metering(demo, spec, rng)
            _customers(demo, spec, rng)
        _tariffs(demo)
        _usage(demo)
        _payments(demo)
        _events(demo)
        _invite(demo)
        return demo


def _community(demo: _Demo) -> None:
    supply_id, solar_id = _id("terms", "supply", 1), _id("terms", "solar", 1)
    demo.add(
        ContractTerms,
        {
            "id": supply_id,
            "type": ContractTermsType.SUPPLY,
            "version": 1,
            "title": "Microgrid Supply Agreement",
            "summary": "Heat and power supplied through the community microgrid.",
            "document_url": "https://docs.flows.example/terms/supply-v1.pdf",
        },
    )
    demo.add(
        ContractTerms,
        {
            "id": solar_id,
            "type": ContractTermsType.SOLAR,
            "version": 1,
            "title": "Solar Credit Agreement",
            "summary": "Monthly credits for rooftop solar exported to the microgrid.",
            "document_url": "https://docs.flows.example/terms/solar-v1.pdf",
        },
    )
    for spec in _ESCOS:
        esco_id = _id("esco", spec.code)
        demo.add(
            Esco,
            {
                "id": esco_id,
                "code": spec.code,
                "name": spec.name,
                "region_code": spec.region_code,
                "app_url": spec.app_url,
                "tariff_generation": TariffGeneration.AUTO,
            },
        )
        for site in spec.sites:
            demo.add(
                Site,
                {
                    "id": _id("site", spec.code, site.code),
                    "esco_id": esco_id,
                    "code": site.code,
                    "name": site.name,
                },
            )
        for terms_id in (supply_id, solar_id):
            demo.add(ContractTermsEsco, {"esco_id": esco_id, "contract_terms_id": terms_id})


def _metering(demo: _Demo, spec: _EscoSpec, rng: random.Random) -> None:
    esco_id = _id("esco", spec.code)
    for n in range(1, spec.properties + 1):
        site = spec.sites[(n - 1) * len(spec.sites) // spec.properties]
        plot = f"Plot {n:02d}"
        serial = f"{spec.serial_prefix}-{n:06d}"
        # Between 18 and ~21 months ago: a full year of usage is billable, and the oldest
        # benchmark quarter is already in force on the day the account opened.
        opened_on = _add_months(demo.today, -18 - rng.randint(0, 2)) - timedelta(
            days=rng.randint(0, 27)
        )
        home = _Home(
            esco=spec,
            number=n,
            id=_id("property", spec.code, n),
            plot=plot,
            meter_id=_id("meter", serial),
            account_id=_id("account", spec.code, n),
            opened_on=opened_on,
            solar_kw=rng.choice(_SOLAR_CAPACITIES_KW) if n % 4 == 3 else None,
        )
        demo.homes.append(home)
        demo.add(
            Meter,
            {
                "id": home.meter_id,
                "esco_id": esco_id,
                "serial": serial,
                "name": f"{plot} supply",
                "hardware": rng.choice(_METER_HARDWARE),
                "mode": MeterMode.ACTIVE,
            },
        )
        demo.add(
            Property,
            {
                "id": home.id,
                "esco_id": esco_id,
                "site_id": _id("site", spec.code, site.code),
                "plot": plot,
                "address": f"{n} {site.street}, {site.town} {site.postcode}",
                "supply_meter_id": home.meter_id,
            },
        )
        circuits = [CircuitType.HEAT, CircuitType.POWER]
        if home.solar_kw is not None:
            circuits.append(CircuitType.SOLAR)
        for kind in circuits:
            circuit_id = _id("circuit", spec.code, n, kind.value)
            demo.add(
                Circuit,
                {
                    "id": circuit_id,
                    "esco_id": esco_id,
                    "type": kind,
                    "name": f"{plot} {kind.value}",
                },
            )
            demo.add(
                CircuitMeter,
                {"circuit_id": circuit_id, "meter_id": home.meter_id, "esco_id": esco_id},
            )
        if home.solar_kw is not None:
            demo.add(
                SolarInstallation,
                {
                    "property_id": home.id,
                    "esco_id": esco_id,
                    "mcs_certificate": f"MCS-{spec.serial_prefix}-{n:05d}",
                    "declared_net_capacity_kw": home.solar_kw,
                    "commissioning_date": opened_on - timedelta(days=rng.randint(20, 200)),
                },
            )


def _customers(demo: _Demo, spec: _EscoSpec, rng: random.Random) -> None:
    """Occupiers (one per home), a few landlords and the former occupiers of two homes."""
    esco_id = _id("esco", spec.code)
    supply_terms_id = _id("terms", "supply", 1)
    homes = [h for h in demo.homes if h.esco is spec]
    names = [(first, last) for first in _FIRST_NAMES for last in _SURNAMES]
    rng.shuffle(names)
    name_iter = iter(names)

    def person(status: CustomerStatus, joined: date) -> _Person:
        first, last = next(name_iter)
        email = f"{first}.{last}@{spec.code}.example".lower()
        # Sign-up happens a few days before the customer's first link.
        signed_up = _at(joined - timedelta(days=rng.randint(2, 14)), 10, rng.randint(0, 59))
        p = _Person(
            _id("customer", email), spec, email, f"{first} {last}", status, joined, signed_up
        )
        demo.people.append(p)
        # Mostly the ESCO's default discount; a few negotiated their own.
        roll = rng.randrange(12)
        demo.discounts[p.id] = 15 if roll == 0 else 30 if roll == 1 else spec.discount_percent
        return p

    # Two homes changed hands about five months ago; the mover-in's predecessor is
    # inactive now. The occupier ranges meet but do not overlap (end_date is inclusive).
    moved_in = _add_months(demo.today, -5).replace(day=15)
    changed_hands = {homes[4].number, homes[len(homes) // 2 + 1].number}
    for home in homes:
        demo.add(
            Account,
            {
                "id": home.account_id,
                "esco_id": esco_id,
                "property_id": home.id,
                "status": AccountStatus.ACTIVE,
                "contract_terms_id": supply_terms_id,
                "opened_on": home.opened_on,
                "created_at": _at(home.opened_on, 9),
                "updated_at": _at(home.opened_on, 9),
            },
        )
        if home.number in changed_hands:
            former = person(CustomerStatus.INACTIVE, home.opened_on)
            demo.links.append(
                _Link(
                    former,
                    home,
                    CustomerAccountRole.OCCUPIER,
                    home.opened_on,
                    moved_in - timedelta(days=1),
                )
            )
            start = moved_in
        else:
            start = home.opened_on
        occupier = person(CustomerStatus.ACTIVE, start)
        demo.links.append(_Link(occupier, home, CustomerAccountRole.OCCUPIER, start, None))

    # One occupier in the second ESCO is suspended (blocks payments and new tariffs).
    if spec is _ESCOS[1]:
        occupiers = [
            link.customer
            for link in demo.occupancies()
            if link.home.esco is spec and link.end is None
        ]
        occupiers[7].status = CustomerStatus.SUSPENDED

    # Landlords own every third home from the start of the block they hold.
    owned = iter(homes[1::3])
    for holding in spec.landlord_holdings:
        portfolio = [next(owned) for _ in range(holding)]
        landlord = person(CustomerStatus.ACTIVE, min(h.opened_on for h in portfolio))
        for home in portfolio:
            demo.links.append(
                _Link(landlord, home, CustomerAccountRole.OWNER, home.opened_on, None)
            )

    # Statuses are final only now (the suspension above), so the rows are written last.
    for p in demo.people:
        if p.esco is spec:
            demo.add(
                Customer,
                {
                    "id": p.id,
                    "esco_id": esco_id,
                    "email": p.email,
                    "full_name": p.full_name,
                    "status": p.status,
                    "created_at": p.signed_up,
                    "updated_at": p.signed_up,
                },
            )

    for link in demo.links:
        if link.home.esco is spec:
            demo.add(
                CustomerAccount,
                {
                    "customer_id": link.customer.id,
                    "account_id": link.home.account_id,
                    "role": link.role,
                    "start_date": link.start,
                    "esco_id": esco_id,
                    "end_date": link.end,
                },
            )


def _benchmarks(demo: _Demo) -> dict[tuple[str, date], tuple[Decimal, Decimal]]:
    rates: dict[tuple[str, date], tuple[Decimal, Decimal]] = {}
    for region, (unit, standing) in _BENCHMARK_BASE.items():
        for quarter, (du, ds) in zip(demo.quarters, _BENCHMARK_DELTAS, strict=True):
            rates[region, quarter] = (unit + du, standing + ds)
    return rates


def _tariffs(demo: _Demo) -> None:
    benchmarks = _benchmarks(demo)
    for (region, quarter), (unit, standing) in benchmarks.items():
        demo.add(
            BenchmarkTariff,
            {
                "region_code": region,
                "period_start": quarter,
                "unit_rate": unit,
                "standing_charge": standing,
            },
        )

    current_quarter = demo.quarters[-1]
    for spec in _ESCOS:
        esco_id = _id("esco", spec.code)
        for quarter in demo.quarters:
            unit, standing = _microgrid_rates(
                benchmarks[spec.region_code, quarter], spec.discount_percent
            )
            demo.add(
                MicrogridTariff,
                {
                    "esco_id": esco_id,
                    "period_start": quarter,
                    "discount_percent": spec.discount_percent,
                    "unit_rate": unit,
                    "standing_charge": standing,
                    "emergency_credit": Decimal("15.00"),
                    "ecredit_button_threshold": Decimal("10.00"),
                    "debt_recovery_rate": Decimal("0.25"),
                },
            )
        for years_ago, per_year in zip((2, 1), spec.solar_credit_pence_per_year, strict=True):
            period_start = date(demo.today.year - years_ago, 1, 1)
            demo.add(
                SolarCreditTariff,
                {
                    "esco_id": esco_id,
                    "period_start": period_start,
                    "credit_pence_per_year": per_year,
                    "credit_pence_per_day": _solar_pence_per_day(period_start, per_year),
                },
            )

    # Every quarter an occupancy overlaps gets a tariff from the quarter's first day, so
    # each billable month finds one in force. The suspended customer got none this quarter.
    tariffed: set[tuple[uuid.UUID, date]] = set()
    for link in demo.occupancies():
        person = link.customer
        last_day = link.end or demo.today
        for quarter in demo.quarters:
            overlaps = quarter <= last_day and _add_months(quarter, 3) > link.start
            suspended_now = person.status is CustomerStatus.SUSPENDED and quarter == current_quarter
            if not overlaps or suspended_now or (person.id, quarter) in tariffed:
                continue
            tariffed.add((person.id, quarter))
            discount = demo.discounts[person.id]
            unit, standing = _customer_rates(benchmarks[person.esco.region_code, quarter], discount)
            demo.add(
                CustomerTariff,
                {
                    "customer_id": person.id,
                    "period_start": quarter,
                    "esco_id": _id("esco", person.esco.code),
                    "discount_percent": discount,
                    "unit_rate": unit,
                    "standing_charge": standing,
                },
            )


def _usage(demo: _Demo) -> None:
    """Twelve full months before the current one, for every supply meter."""
    this_month = demo.today.replace(day=1)
    months = [_add_months(this_month, -k) for k in range(USAGE_MONTHS, 0, -1)]
    for home in demo.homes:
        # Per-home rng: adding a home must not reshuffle every other home's usage.
        rng = random.Random(f"usage/{home.esco.code}/{home.number}")
        power_base = Decimal(rng.randint(160_000, 280_000)) / 1000
        heat_base = Decimal(rng.randint(220_000, 460_000)) / 1000

        for month in months:
            season = month.month - 1
            power = power_base * _POWER_SEASON[season] * _jitter(rng)
            heat = heat_base * _HEAT_SEASON[season] * _jitter(rng)
            solar = (
                home.solar_kw * _SOLAR_KWH_PER_KW[season] * _jitter(rng)
                if home.solar_kw is not None
                else Decimal(0)
            )
            demo.add(
                MonthlyUsage,
                {
                    "id": _id("usage", home.meter_id, month),
                    "esco_id": _id("esco", home.esco.code),
                    "meter_id": home.meter_id,
                    "month": month,
                    "power_kwh": power.quantize(_THREE_DP),
                    "heat_kwh": heat.quantize(_THREE_DP),
                    "solar_kwh": solar.quantize(_THREE_DP),
                    "source": UsageSource.METER,
                },
            )


def _payments(demo: _Demo) -> None:
    """A few top-ups per active occupier over recent months, the newest maybe pending."""
    rng = random.Random(3303)
    for link in demo.occupancies():
        person = link.customer
        if link.end is not None or person.status is not CustomerStatus.ACTIVE:
            continue
        for k in range(rng.randint(2, 5)):
            paid_on = demo.today - timedelta(days=30 * k + rng.randint(1, 25))
            if paid_on < link.start:
                break
            roll = rng.randrange(20)
            if k == 0 and roll < 5:
                status = PaymentStatus.PENDING
            elif roll == 19:
                status = PaymentStatus.FAILED
            else:
                status = PaymentStatus.SUCCEEDED
            payment_id = _id("payment", person.id, k)
            created = _at(paid_on, rng.randint(7, 21), rng.randint(0, 59))
            demo.add(
                Payment,
                {
                    "id": payment_id,
                    "esco_id": _id("esco", person.esco.code),
                    "customer_id": person.id,
                    "account_id": link.home.account_id,
                    "amount_pence": rng.choice(_PAYMENT_AMOUNTS_PENCE),
                    "currency": "GBP",
                    "status": status,
                    "provider_reference": f"pi_demo_{payment_id.hex[:16]}",
                    "description": rng.choice(_PAYMENT_DESCRIPTIONS),
                    "idempotency_key": f"demo-{k + 1}",
                    "created_at": created,
                    "updated_at": created,
                },
            )


_EVENT_MINUTE = {
    AccountEventType.OPENED: 0,
    AccountEventType.OWNER_ADDED: 5,
    AccountEventType.OCCUPANCY_STARTED: 10,
    AccountEventType.OCCUPANCY_ENDED: 15,
}


def _events(demo: _Demo) -> None:
    for person in demo.people:
        demo.add(
            CustomerEvent,
            {
                "id": _id("customer-event", person.id, "created"),
                "esco_id": _id("esco", person.esco.code),
                "customer_id": person.id,
                "event_type": "created",
                "actor": "system",
                "data": {},
                "created_at": person.signed_up,
            },
        )

    def account_event(home: _Home, kind: AccountEventType, on: date, notes: str) -> None:
        demo.add(
            AccountEvent,
            {
                "id": _id("account-event", home.account_id, kind.value, on, notes),
                "esco_id": _id("esco", home.esco.code),
                "account_id": home.account_id,
                "event_type": kind,
                "notes": notes,
                "actor": "system",
                # A few minutes apart so a timeline sorted by time keeps cause before effect.
                "created_at": _at(on, 9, _EVENT_MINUTE[kind]),
            },
        )

    for home in demo.homes:
        account_event(home, AccountEventType.OPENED, home.opened_on, f"{home.plot} account opened")
    for link in demo.links:
        name = link.customer.full_name
        if link.role is CustomerAccountRole.OWNER:
            account_event(
                link.home, AccountEventType.OWNER_ADDED, link.start, f"{name} added as owner"
            )
            continue
        account_event(link.home, AccountEventType.OCCUPANCY_STARTED, link.start, f"{name} moved in")
        if link.end is not None:
            account_event(
                link.home, AccountEventType.OCCUPANCY_ENDED, link.end, f"{name} moved out"
            )


def _invite(demo: _Demo) -> None:
    """One pending invite: the first ESCO's first landlord has not joined the app yet."""
    spec = _ESCOS[0]
    landlord = next(
        link.customer
        for link in demo.links
        if link.role is CustomerAccountRole.OWNER and link.home.esco is spec
    )
    token = _id("invite", landlord.id)
    demo.add(
        CustomerInvite,
        {
            "token": token,
            "esco_id": _id("esco", spec.code),
            "customer_id": landlord.id,
            "invite_url": f"{spec.app_url}/invite/{token}",
            "expires_at": _at(demo.today + timedelta(days=7), 12),
        },
    )


# --- billing the demo's months through the real service ---------------------------------


async def bill_demo(engine: AsyncEngine, *, today: date, finalize_before: int = 2) -> int:
    """Run billing for every ESCO and every demo month (each run its own transaction,
    as an operator would), finalizing all but the most recent `finalize_before`
    months. Returns the number of runs."""
    from .auth.viewer import SYSTEM
    from .services.billing import finalize_run, run_billing
    from .services.tx import Tx

    first_month = _add_months(today.replace(day=1), -USAGE_MONTHS)
    months = [_add_months(first_month, i) for i in range(USAGE_MONTHS)]
    async with engine.connect() as conn:
        escos = (await conn.execute(select(Esco.id).order_by(Esco.code))).scalars().all()
    runs = 0
    for esco_id in escos:
        for index, month in enumerate(months):
            async with engine.begin() as conn:
                tx = Tx(conn, SYSTEM, lambda: today)
                result = await run_billing(tx, esco_id, month)
                if index < len(months) - finalize_before:
                    await finalize_run(tx, result.run.id)
            runs += 1
    return runs
