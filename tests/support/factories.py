"""Fast bulk test data, written with a handful of plain SQL statements.

`build_esco` creates a whole ESCO graph in one transaction on an asyncpg connection:
N customers, each the occupier of an account on a property whose supply meter is
connected to a heat and a power circuit; M months of usage per meter; one billing run
per month and a monthly_costs row per usage; one customer tariff per customer. Every
table is one `INSERT ... SELECT FROM unnest(...)` (ids are made here, so the caller
knows them without reading anything back), and every child row carries its parent's
`esco_id`, as the composite tenant keys demand.

The values are deterministic functions of (customer index i, month index m), so tests
can state exactly what the API must return (see `power_kwh`, `costs`, `unit_rate`).

`module_world` gives a test module one client and one connection for all its tests,
with tables emptied once: conftest's per-test TRUNCATE (through `engine`/`client`)
costs ~0.2 s a test, which a module of read-only tests need not pay.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from flows_graphql.app import create_app
from flows_graphql.config import Settings
from flows_graphql.db.engine import create_engine
from flows_graphql.db.migrate import upgrade
from flows_graphql.db.models import metadata
from tests.support import SEEDED_TABLES
from tests.support.api import TODAY, asgi_client, bearer
from tests.support.db import direct_dsn

FIRST_MONTH = date(2024, 1, 1)


def month_at(first: date, m: int) -> date:
    index = first.year * 12 + first.month - 1 + m
    return date(index // 12, index % 12 + 1, 1)


# --- the values every row gets -------------------------------------------------------


def email(code: str, i: int) -> str:
    return f"{code}.{i:03d}@example.com"


def plot(i: int) -> str:
    return f"P{i:03d}"


def serial(code: str, i: int) -> str:
    return f"{code.upper()}-M{i:03d}"


def power_kwh(i: int, m: int) -> Decimal:
    return Decimal(f"{100 + i}.{m:03d}")  # numeric(14,3): reads back as e.g. "103.007"


def heat_kwh(i: int, m: int) -> Decimal:
    return Decimal(f"{200 + i}.5{m:02d}")


@dataclass(frozen=True)
class Costs:
    power: Decimal
    heat: Decimal
    standing_charge: Decimal
    total: Decimal
    microgrid: tuple[Decimal, Decimal, Decimal, Decimal]
    benchmark: tuple[Decimal, Decimal, Decimal, Decimal]

    @property
    def savings(self) -> Decimal:
        return self.benchmark[3] - self.total


def _four(power: Decimal, heat: Decimal, standing: Decimal) -> tuple[Decimal, ...]:
    return power, heat, standing, power + heat + standing


def costs(i: int, m: int) -> Costs:
    """Simple exact Decimals (numeric columns keep their scale): total = the sum."""
    power, heat, standing, total = _four(
        Decimal(f"{10 + i}.{m:02d}125"), Decimal(f"{20 + i}.{m:02d}25"), Decimal("9.3")
    )
    microgrid = _four(power + Decimal("1.1"), heat + Decimal("2.2"), Decimal("9.5"))
    benchmark = _four(power + Decimal("3.01"), heat + Decimal("4.002"), Decimal("10.15"))
    return Costs(power, heat, standing, total, microgrid, benchmark)  # type: ignore[arg-type]


def unit_rate(i: int) -> Decimal:
    return Decimal(f"0.2{i:04d}")  # numeric(10,5): "0.20007"


def standing_charge(i: int) -> Decimal:
    return Decimal(f"0.4{i:04d}")


DISCOUNT_PERCENT = 15


# --- the builder ---------------------------------------------------------------------


@dataclass
class EscoData:
    id: uuid.UUID
    code: str
    region: str
    months: list[date]
    customer_ids: list[uuid.UUID]  # index i; email order is index order
    emails: list[str]
    property_ids: list[uuid.UUID]
    meter_ids: list[uuid.UUID]
    account_ids: list[uuid.UUID]
    heat_circuit_ids: list[uuid.UUID]
    power_circuit_ids: list[uuid.UUID]
    billing_run_ids: list[uuid.UUID]  # one per month
    usage_ids: list[list[uuid.UUID]] = field(default_factory=list)  # [i][m]
    cost_ids: list[list[uuid.UUID]] = field(default_factory=list)  # [i][m]


def _ids(n: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(n)]


async def build_esco(
    conn: asyncpg.Connection,
    code: str,
    region: str = "south_west",
    *,
    customers: int = 5,
    months: int = 12,
    first_month: date = FIRST_MONTH,
) -> EscoData:
    n = customers
    month_list = [month_at(first_month, m) for m in range(months)]
    data = EscoData(
        id=uuid.uuid4(),
        code=code,
        region=region,
        months=month_list,
        customer_ids=_ids(n),
        emails=[email(code, i) for i in range(n)],
        property_ids=_ids(n),
        meter_ids=_ids(n),
        account_ids=_ids(n),
        heat_circuit_ids=_ids(n),
        power_circuit_ids=_ids(n),
        billing_run_ids=_ids(months),
        usage_ids=[_ids(months) for _ in range(n)],
        cost_ids=[_ids(months) for _ in range(n)],
    )
    e = data.id
    pairs = [(i, m) for i in range(n) for m in range(months)]
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO escos (id, code, name, region_code, app_url) VALUES ($1, $2, $3, $4, $5)",
            e,
            code,
            f"ESCO {code}",
            region,
            f"https://{code}.example.com",
        )
        await conn.execute(
            "INSERT INTO meters (id, esco_id, serial, name) "
            "SELECT id, $1, serial, 'Supply ' || serial FROM unnest($2::uuid[], $3::text[]) "
            "AS t(id, serial)",
            e,
            data.meter_ids,
            [serial(code, i) for i in range(n)],
        )
        await conn.execute(
            "INSERT INTO properties (id, esco_id, plot, address, supply_meter_id) "
            "SELECT id, $1, plot, plot || ' Solar Street', meter "
            "FROM unnest($2::uuid[], $3::text[], $4::uuid[]) AS t(id, plot, meter)",
            e,
            data.property_ids,
            [plot(i) for i in range(n)],
            data.meter_ids,
        )
        await conn.execute(
            "INSERT INTO circuits (id, esco_id, type, name) "
            "SELECT id, $1, type::circuit_type, name "
            "FROM unnest($2::uuid[], $3::text[], $4::text[]) AS t(id, type, name)",
            e,
            data.heat_circuit_ids + data.power_circuit_ids,
            ["heat"] * n + ["power"] * n,
            [f"{plot(i)} heat" for i in range(n)] + [f"{plot(i)} power" for i in range(n)],
        )
        await conn.execute(
            "INSERT INTO circuit_meter (circuit_id, meter_id, esco_id) "
            "SELECT circuit, meter, $1 FROM unnest($2::uuid[], $3::uuid[]) AS t(circuit, meter)",
            e,
            data.heat_circuit_ids + data.power_circuit_ids,
            data.meter_ids + data.meter_ids,
        )
        await conn.execute(
            "INSERT INTO customers (id, esco_id, email, full_name) "
            "SELECT id, $1, email, name FROM unnest($2::uuid[], $3::text[], $4::text[]) "
            "AS t(id, email, name)",
            e,
            data.customer_ids,
            data.emails,
            [f"Customer {i}" for i in range(n)],
        )
        await conn.execute(
            "INSERT INTO accounts (id, esco_id, property_id, opened_on) "
            "SELECT id, $1, property, $3 FROM unnest($2::uuid[], $4::uuid[]) "
            "AS t(id, property)",
            e,
            data.account_ids,
            first_month,
            data.property_ids,
        )
        await conn.execute(
            "INSERT INTO customer_accounts (customer_id, account_id, role, start_date, esco_id) "
            "SELECT customer, account, 'occupier', $3, $1 "
            "FROM unnest($2::uuid[], $4::uuid[]) AS t(customer, account)",
            e,
            data.customer_ids,
            first_month,
            data.account_ids,
        )
        await conn.execute(
            "INSERT INTO customer_tariffs "
            "(customer_id, period_start, esco_id, discount_percent, unit_rate, standing_charge) "
            "SELECT customer, $3, $1, $4, rate, standing "
            "FROM unnest($2::uuid[], $5::numeric[], $6::numeric[]) AS t(customer, rate, standing)",
            e,
            data.customer_ids,
            first_month,
            DISCOUNT_PERCENT,
            [unit_rate(i) for i in range(n)],
            [standing_charge(i) for i in range(n)],
        )
        await conn.execute(
            "INSERT INTO monthly_usage (id, esco_id, meter_id, month, power_kwh, heat_kwh) "
            "SELECT id, $1, meter, month, power, heat "
            "FROM unnest($2::uuid[], $3::uuid[], $4::date[], $5::numeric[], $6::numeric[]) "
            "AS t(id, meter, month, power, heat)",
            e,
            [data.usage_ids[i][m] for i, m in pairs],
            [data.meter_ids[i] for i, _ in pairs],
            [month_list[m] for _, m in pairs],
            [power_kwh(i, m) for i, m in pairs],
            [heat_kwh(i, m) for i, m in pairs],
        )
        await conn.execute(
            "INSERT INTO billing_runs "
            "(id, esco_id, month, status, actor, finished_at, customers_billed, total) "
            "SELECT id, $1, month, 'completed', 'system', now(), $4, total "
            "FROM unnest($2::uuid[], $3::date[], $5::numeric[]) AS t(id, month, total)",
            e,
            data.billing_run_ids,
            month_list,
            n,
            [sum((costs(i, m).total for i in range(n)), Decimal(0)) for m in range(months)],
        )
        cost_rows = [costs(i, m) for i, m in pairs]
        await conn.execute(
            "INSERT INTO monthly_costs (id, esco_id, monthly_usage_id, customer_id, month, "
            "billing_run_id, power, heat, standing_charge, total, microgrid_power, "
            "microgrid_heat, microgrid_standing_charge, microgrid_total, benchmark_power, "
            "benchmark_heat, benchmark_standing_charge, benchmark_total) "
            "SELECT id, $1, usage, customer, month, run, "
            "p, h, s, t, mp, mh, ms, mt, bp, bh, bs, bt "
            "FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::date[], $6::uuid[], "
            "$7::numeric[], $8::numeric[], $9::numeric[], $10::numeric[], $11::numeric[], "
            "$12::numeric[], $13::numeric[], $14::numeric[], $15::numeric[], $16::numeric[], "
            "$17::numeric[], $18::numeric[]) "
            "AS x(id, usage, customer, month, run, p, h, s, t, mp, mh, ms, mt, bp, bh, bs, bt)",
            e,
            [data.cost_ids[i][m] for i, m in pairs],
            [data.usage_ids[i][m] for i, m in pairs],
            [data.customer_ids[i] for i, _ in pairs],
            [month_list[m] for _, m in pairs],
            [data.billing_run_ids[m] for _, m in pairs],
            [c.power for c in cost_rows],
            [c.heat for c in cost_rows],
            [c.standing_charge for c in cost_rows],
            [c.total for c in cost_rows],
            *([c.microgrid[k] for c in cost_rows] for k in range(4)),
            *([c.benchmark[k] for c in cost_rows] for k in range(4)),
        )
    return data


# --- one client and connection per test module ---------------------------------------


async def empty_tables(settings: Settings, database_url: str) -> None:
    """Bring the scratch database to the latest migration and empty it (but regions)."""
    engine = create_engine(settings, database_url)
    try:
        await upgrade(engine)
        names = ", ".join(t.name for t in metadata.sorted_tables if t.name not in SEEDED_TABLES)
        async with engine.begin() as conn:
            await conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await engine.dispose()


@dataclass
class World:
    client: httpx.AsyncClient
    conn: asyncpg.Connection
    engine: AsyncEngine  # not the app's: for calling services directly


@asynccontextmanager
async def module_world(settings: Settings, database_url: str) -> AsyncIterator[World]:
    """Empty tables, an asyncpg connection and an ASGI client signed in as an admin
    (like conftest's `client`), for a module's tests."""
    await empty_tables(settings, database_url)
    app = create_app(settings, database_url, today=lambda: TODAY)
    engine = create_engine(settings, database_url)
    conn = await asyncpg.connect(direct_dsn(database_url))
    try:
        async with asgi_client(app, bearer(settings, "admin")) as http:
            yield World(http, conn, engine)
    finally:
        await conn.close()
        await engine.dispose()
        await app.state.engine.dispose()


async def query(
    client: httpx.AsyncClient, text: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    """POST a query; fails the test on any GraphQL error. Returns the whole body."""
    response = await client.post("/graphql", json={"query": text, "variables": variables})
    body: dict[str, Any] = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return body


# --- one of every other entity --------------------------------------------------------


@dataclass
class Extras:
    """One row of every entity the factory does not make, all on ESCO "small"."""

    site: uuid.UUID
    terms: uuid.UUID
    solar_credit: uuid.UUID
    invite: uuid.UUID
    customer_event: uuid.UUID
    account_event: uuid.UUID
    audit_log: uuid.UUID
    payment: uuid.UUID
    decommissioned_meter: uuid.UUID


async def add_extras(conn: Any, esco: EscoData) -> Extras:
    e, customer, account, prop = (
        esco.id,
        esco.customer_ids[0],
        esco.account_ids[0],
        esco.property_ids[0],
    )
    x = Extras(*(uuid.uuid4() for _ in range(9)))
    statements: list[tuple[str, tuple[Any, ...]]] = [
        (
            "INSERT INTO sites (id, esco_id, code, name) VALUES ($1, $2, 'north', 'North')",
            (x.site, e),
        ),
        ("UPDATE properties SET site_id = $1 WHERE id = $2", (x.site, prop)),
        (
            "INSERT INTO contract_terms (id, type, version, title) "
            "VALUES ($1, 'supply', 2, 'Supply terms')",
            (x.terms,),
        ),
        (
            "INSERT INTO contract_terms_esco (esco_id, contract_terms_id) VALUES ($1, $2)",
            (e, x.terms),
        ),
        ("UPDATE accounts SET contract_terms_id = $1 WHERE id = $2", (x.terms, account)),
        (
            "INSERT INTO solar_installation (property_id, esco_id, mcs_certificate, "
            "declared_net_capacity_kw, commissioning_date) "
            "VALUES ($1, $2, 'MCS-0001', 3.25, '2023-06-01')",
            (prop, e),
        ),
        (
            "INSERT INTO monthly_solar_credits (id, esco_id, property_id, month, credit_pence, "
            "billing_run_id) VALUES ($1, $2, $3, '2024-01-01', 1234, $4)",
            (x.solar_credit, e, prop, esco.billing_run_ids[0]),
        ),
        (
            "INSERT INTO customer_invites (token, esco_id, customer_id, invite_url) "
            "VALUES ($1, $2, $3, $4)",
            (x.invite, e, customer, f"https://small.example.com/invite/{x.invite}"),
        ),
        (
            "INSERT INTO customer_events (id, esco_id, customer_id, event_type, actor, data) "
            "VALUES ($1, $2, $3, 'updated', 'system', '{\"changed\": {}}')",
            (x.customer_event, e, customer),
        ),
        (
            "INSERT INTO customer_identities (esco_id, customer_id, issuer, subject, email) "
            "VALUES ($1, $2, 'https://id.small.example', 'small-sub-0', 'small.000@x.example')",
            (e, customer),
        ),
        (
            "INSERT INTO staff_grants (esco_id, issuer, subject, granted_by) "
            "VALUES ($1, 'https://id.small.example', 'small-operator', 'system')",
            (e,),
        ),
        (
            "INSERT INTO account_events (id, esco_id, account_id, event_type, notes, actor) "
            "VALUES ($1, $2, $3, 'opened', 'welcome', 'system')",
            (x.account_event, e, account),
        ),
        (
            "INSERT INTO account_audit_logs (id, esco_id, account_id, action, actor, changes) "
            "VALUES ($1, $2, $3, 'openAccount', 'system', '{\"status\": {\"new\": \"active\"}}')",
            (x.audit_log, e, account),
        ),
        (
            "INSERT INTO benchmark_tariffs (region_code, period_start, unit_rate, standing_charge)"
            " VALUES ('south_west', '2024-01-01', 0.245, 0.6), "
            "('south_west', '2024-04-01', 0.25, 0.61)",
            (),
        ),
        (
            "INSERT INTO microgrid_tariffs (esco_id, period_start, discount_percent, unit_rate, "
            "standing_charge, emergency_credit, ecredit_button_threshold, debt_recovery_rate) "
            "VALUES ($1, '2024-01-01', 10, 0.2205, 0.54, 10, 5, 1)",
            (e,),
        ),
        (
            "INSERT INTO solar_credit_tariffs (esco_id, period_start, credit_pence_per_year, "
            "credit_pence_per_day) VALUES ($1, '2024-01-01', 5000, 13.6612)",
            (e,),
        ),
        (
            "INSERT INTO payments (id, esco_id, customer_id, account_id, amount_pence, "
            "description, idempotency_key) VALUES ($1, $2, $3, $4, 2500, 'Top-up', 'k-1')",
            (x.payment, e, customer, account),
        ),
        (
            "INSERT INTO meters (id, esco_id, serial, mode) "
            "VALUES ($1, $2, 'SMALL-SPARE', 'decommissioned')",
            (x.decommissioned_meter, e),
        ),
        # Statuses and modes for the filters.
        (
            "UPDATE customers SET status = 'suspended' WHERE id = $1",
            (esco.customer_ids[1],),
        ),
        ("UPDATE customers SET status = 'inactive' WHERE id = $1", (esco.customer_ids[3],)),
        ("UPDATE billing_runs SET status = 'finalized' WHERE id = $1", (esco.billing_run_ids[2],)),
    ]
    async with conn.transaction():
        for sql, args in statements:
            await conn.execute(sql, *args)
    return x
