"""The database itself enforces the domain's integrity rules.

Everything here goes through a plain asyncpg connection with hand-written SQL, never
the ORM or the API, so a passing test means PostgreSQL refuses the bad row whatever
the application does. Each rejection names the exact error class and constraint, and
is paired with an accepted near miss, so no test passes merely because the row was
malformed.

Speed: conftest's per-test TRUNCATE (through the `engine` fixture) costs ~0.2 s on the
embedded server, so these tests do not use `engine`. The module empties the tables
once, and each test runs in a transaction that is rolled back; a rejected statement
runs in a savepoint so the test can carry on. Only the updated_at test that needs
two real transactions commits, and it deletes what it made.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from flows_graphql.config import Settings
from flows_graphql.db.engine import create_engine
from flows_graphql.db.migrate import upgrade
from flows_graphql.db.models import metadata
from tests.support import SEEDED_TABLES
from tests.support.db import direct_dsn

D = date.fromisoformat


# --------------------------------------------------------------------------------------
# Fixtures and helpers: a minimal valid graph per ESCO, inserted with raw SQL

EMPTY_TABLES = "TRUNCATE {} RESTART IDENTITY CASCADE".format(
    ", ".join(t.name for t in metadata.sorted_tables if t.name not in SEEDED_TABLES)
)


@pytest.fixture(scope="module")
async def conn(settings: Settings, database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain asyncpg connection, like conftest's `raw` but one per module: a new
    connection spends ~30 ms introspecting the enum types on first use.

    The database is brought to the latest migration (a no-op once the `engine` fixture
    has run) and emptied once, whatever earlier test modules left in it.
    """
    engine = create_engine(settings, database_url)
    try:
        await upgrade(engine)
        async with engine.begin() as connection:
            await connection.exec_driver_sql(EMPTY_TABLES)
    finally:
        await engine.dispose()
    connection = await asyncpg.connect(direct_dsn(database_url))
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def db(conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """The module's connection inside a transaction that is rolled back after the test."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        yield conn
    finally:
        await transaction.rollback()


async def insert(db: asyncpg.Connection, table: str, **values: Any) -> asyncpg.Record:
    columns = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    sql = f"INSERT INTO {table} ({columns}) VALUES ({params}) RETURNING *"
    row = await db.fetchrow(sql, *values.values())
    assert row is not None
    return row


async def rejects(
    db: asyncpg.Connection,
    error: type[asyncpg.PostgresError],
    constraint: str | None,
    statement: Awaitable[Any],
) -> asyncpg.PostgresError:
    """Await `statement` in a savepoint, expecting exactly `error` from `constraint`."""
    with pytest.raises(error) as info:
        async with db.transaction():
            await statement
    assert type(info.value) is error
    if constraint is not None:
        assert info.value.constraint_name == constraint
    return info.value


@dataclass(frozen=True)
class Tenant:
    code: str
    esco: uuid.UUID
    site: uuid.UUID
    meter: uuid.UUID
    circuit: uuid.UUID
    property: uuid.UUID
    customer: uuid.UUID
    account: uuid.UUID


async def make_tenant(db: asyncpg.Connection, code: str, region: str) -> Tenant:
    esco = (await insert(db, "escos", code=code, name=code.upper(), region_code=region))["id"]
    site = (await insert(db, "sites", esco_id=esco, code="main", name="Main site"))["id"]
    meter = (await insert(db, "meters", esco_id=esco, serial=f"{code}-M1"))["id"]
    circuit = (await insert(db, "circuits", esco_id=esco, type="power"))["id"]
    prop = (await insert(db, "properties", esco_id=esco, site_id=site, plot="1"))["id"]
    customer = (await insert(db, "customers", esco_id=esco, email=f"first@{code}.io"))["id"]
    account = (
        await insert(db, "accounts", esco_id=esco, property_id=prop, opened_on=D("2024-01-01"))
    )["id"]
    return Tenant(code, esco, site, meter, circuit, prop, customer, account)


@pytest.fixture
async def a(db: asyncpg.Connection) -> Tenant:
    return await make_tenant(db, "esco-a", "south_west")


@pytest.fixture
async def b(db: asyncpg.Connection) -> Tenant:
    return await make_tenant(db, "esco-b", "south_east")


async def add_property(db: asyncpg.Connection, t: Tenant, plot: str) -> uuid.UUID:
    return (await insert(db, "properties", esco_id=t.esco, plot=plot))["id"]


async def add_account(db: asyncpg.Connection, t: Tenant, plot: str) -> asyncpg.Record:
    """A new active account on a new property of `t`."""
    prop = await add_property(db, t, plot)
    return await insert(db, "accounts", esco_id=t.esco, property_id=prop, opened_on=D("2024-01-01"))


async def add_customer(db: asyncpg.Connection, t: Tenant, email: str) -> uuid.UUID:
    return (await insert(db, "customers", esco_id=t.esco, email=email))["id"]


def link(
    db: asyncpg.Connection,
    t: Tenant,
    customer: uuid.UUID,
    account: uuid.UUID,
    start: str,
    end: str | None = None,
    role: str = "occupier",
) -> Awaitable[asyncpg.Record]:
    return insert(
        db,
        "customer_accounts",
        esco_id=t.esco,
        customer_id=customer,
        account_id=account,
        role=role,
        start_date=D(start),
        end_date=D(end) if end else None,
    )


# --------------------------------------------------------------------------------------
# Multi-tenancy: composite (x_id, esco_id) foreign keys

Row = Callable[[Tenant, Tenant], dict[str, Any]]
# (table, the foreign key that must refuse it, row of ESCO `o` pointing at ESCO `x`)
CROSS_TENANT: dict[str, tuple[str, str, Row]] = {
    "account-on-other-property": (
        "accounts",
        "fk_accounts_property_id_esco_id_properties",
        lambda o, x: {
            "esco_id": o.esco,
            "property_id": x.property,
            "status": "closed",
            "opened_on": D("2023-01-01"),
            "closed_on": D("2023-12-31"),
        },
    ),
    "property-with-other-supply-meter": (
        "properties",
        "fk_properties_supply_meter_id_esco_id_meters",
        lambda o, x: {"esco_id": o.esco, "plot": "2", "supply_meter_id": x.meter},
    ),
    "property-on-other-site": (
        "properties",
        "fk_properties_site_id_esco_id_sites",
        lambda o, x: {"esco_id": o.esco, "plot": "2", "site_id": x.site},
    ),
    "customer-account-to-other-account": (
        "customer_accounts",
        "fk_customer_accounts_account_id_esco_id_accounts",
        lambda o, x: {
            "esco_id": o.esco,
            "customer_id": o.customer,
            "account_id": x.account,
            "role": "occupier",
            "start_date": D("2024-01-01"),
        },
    ),
    "customer-account-of-other-customer": (
        "customer_accounts",
        "fk_customer_accounts_customer_id_esco_id_customers",
        lambda o, x: {
            "esco_id": o.esco,
            "customer_id": x.customer,
            "account_id": o.account,
            "role": "owner",
            "start_date": D("2024-01-01"),
        },
    ),
    "usage-on-other-meter": (
        "monthly_usage",
        "fk_monthly_usage_meter_id_esco_id_meters",
        lambda o, x: {"esco_id": o.esco, "meter_id": x.meter, "month": D("2025-03-01")},
    ),
    "circuit-on-other-meter": (
        "circuit_meter",
        "fk_circuit_meter_meter_id_esco_id_meters",
        lambda o, x: {"esco_id": o.esco, "circuit_id": o.circuit, "meter_id": x.meter},
    ),
    "payment-to-other-account": (
        "payments",
        "fk_payments_account_id_esco_id_accounts",
        lambda o, x: {
            "esco_id": o.esco,
            "customer_id": o.customer,
            "account_id": x.account,
            "amount_pence": 1000,
            "idempotency_key": "k1",
        },
    ),
    "tariff-of-other-customer": (
        "customer_tariffs",
        "fk_customer_tariffs_customer_id_esco_id_customers",
        lambda o, x: {
            "esco_id": o.esco,
            "customer_id": x.customer,
            "period_start": D("2025-01-01"),
            "discount_percent": 10,
            "unit_rate": Decimal("0.2"),
            "standing_charge": Decimal("0.5"),
        },
    ),
    "solar-on-other-property": (
        "solar_installation",
        "fk_solar_installation_property_id_esco_id_properties",
        lambda o, x: {"esco_id": o.esco, "property_id": x.property, "mcs_certificate": "MCS-1"},
    ),
    "event-of-other-customer": (
        "customer_events",
        "fk_customer_events_customer_id_esco_id_customers",
        lambda o, x: {
            "esco_id": o.esco,
            "customer_id": x.customer,
            "event_type": "updated",
            "actor": "system",
        },
    ),
    "event-of-other-account": (
        "account_events",
        "fk_account_events_account_id_esco_id_accounts",
        lambda o, x: {
            "esco_id": o.esco,
            "account_id": x.account,
            "event_type": "opened",
            "actor": "system",
        },
    ),
}


@pytest.mark.parametrize("case", CROSS_TENANT)
async def test_cross_tenant_link_is_rejected(db, a, b, case):
    table, constraint, row = CROSS_TENANT[case]
    await rejects(db, asyncpg.ForeignKeyViolationError, constraint, insert(db, table, **row(a, b)))
    # The same row within one ESCO is fine.
    accepted = await insert(db, table, **row(a, a))
    assert accepted["esco_id"] == a.esco


async def test_moving_a_row_to_another_esco_is_rejected(db, a, b):
    await rejects(
        db,
        asyncpg.ForeignKeyViolationError,
        "fk_accounts_property_id_esco_id_properties",
        db.execute("UPDATE accounts SET esco_id = $1 WHERE id = $2", b.esco, a.account),
    )
    assert await db.fetchval("SELECT esco_id FROM accounts WHERE id = $1", a.account) == a.esco


async def test_unknown_region_is_rejected(db):
    await rejects(
        db,
        asyncpg.ForeignKeyViolationError,
        "fk_escos_region_code_regions",
        insert(db, "escos", code="x1", name="X", region_code="atlantis"),
    )


# --------------------------------------------------------------------------------------
# Occupancy: one occupier per account per day (end_date inclusive)


async def test_overlapping_occupancy_is_rejected(db, a):
    first = a.customer
    second = await add_customer(db, a, "second@a.io")
    third = await add_customer(db, a, "third@a.io")
    await link(db, a, first, a.account, "2024-01-01", "2024-06-30")

    # Starting on the previous occupier's last day overlaps that day.
    await rejects(
        db,
        asyncpg.ExclusionViolationError,
        "ex_customer_accounts_one_occupier",
        link(db, a, second, a.account, "2024-06-30"),
    )
    # The same customer cannot hold a second overlapping occupancy either.
    await rejects(
        db,
        asyncpg.ExclusionViolationError,
        "ex_customer_accounts_one_occupier",
        link(db, a, first, a.account, "2024-03-01", "2024-03-31"),
    )
    # The day after is free.
    await link(db, a, second, a.account, "2024-07-01")
    # An open-ended occupancy blocks every later start.
    await rejects(
        db,
        asyncpg.ExclusionViolationError,
        "ex_customer_accounts_one_occupier",
        link(db, a, third, a.account, "2030-01-01", "2030-01-01"),
    )
    rows = await db.fetch(
        "SELECT customer_id, start_date, end_date FROM customer_accounts ORDER BY start_date"
    )
    assert [tuple(r) for r in rows] == [
        (first, D("2024-01-01"), D("2024-06-30")),
        (second, D("2024-07-01"), None),
    ]


async def test_owner_may_overlap_occupier(db, a):
    owner = await add_customer(db, a, "owner@a.io")
    co_owner = await add_customer(db, a, "co-owner@a.io")
    await link(db, a, a.customer, a.account, "2024-01-01")
    await link(db, a, owner, a.account, "2024-01-01", role="owner")
    await link(db, a, co_owner, a.account, "2024-03-01", role="owner")
    # The occupier may also be an owner over the same days.
    await link(db, a, a.customer, a.account, "2024-01-01", role="owner")
    roles = await db.fetch(
        "SELECT role::text FROM customer_accounts WHERE account_id = $1", a.account
    )
    assert sorted(r["role"] for r in roles) == ["occupier", "owner", "owner", "owner"]


async def test_occupiers_of_different_accounts_may_share_dates(db, a):
    other = await add_account(db, a, "2")
    neighbour = await add_customer(db, a, "neighbour@a.io")
    await link(db, a, a.customer, a.account, "2024-01-01")
    await link(db, a, neighbour, other["id"], "2024-01-01")
    assert await db.fetchval("SELECT count(*) FROM customer_accounts") == 2


async def test_occupancy_end_before_start_is_rejected(db, a):
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "ck_customer_accounts_end_after_start",
        link(db, a, a.customer, a.account, "2024-06-30", "2024-06-29"),
    )
    # A one-day occupancy is fine.
    row = await link(db, a, a.customer, a.account, "2024-06-30", "2024-06-30")
    assert row["end_date"] == D("2024-06-30")


# --------------------------------------------------------------------------------------
# Enums and NOT NULL

# (table, Tenant attribute holding the row's id, column, enum type, bad value)
BAD_ENUM_VALUES = [
    ("customers", "customer", "status", "customer_status", "deleted"),
    # The Python enum's *name*: what a mapping without values_callable would send.
    ("customers", "customer", "status", "customer_status", "ACTIVE"),
    ("meters", "meter", "mode", "meter_mode", "broken"),
    ("accounts", "account", "status", "account_status", "suspended"),
    ("circuits", "circuit", "type", "circuit_type", "gas"),
    ("escos", "esco", "tariff_generation", "tariff_generation", "manual"),
]


@pytest.mark.parametrize(("table", "attr", "column", "enum", "value"), BAD_ENUM_VALUES)
async def test_bad_enum_value_is_rejected(db, a, table, attr, column, enum, value):
    row_id = getattr(a, attr)
    select = f"SELECT {column}::text FROM {table} WHERE id = $1"
    before = await db.fetchval(select, row_id)
    update = f"UPDATE {table} SET {column} = $1 WHERE id = $2"
    error = await rejects(
        db, asyncpg.InvalidTextRepresentationError, None, db.execute(update, value, row_id)
    )
    assert f'invalid input value for enum {enum}: "{value}"' in str(error)
    assert before in {"active", "power", "auto"}
    assert await db.fetchval(select, row_id) == before


async def test_good_enum_values_are_accepted(db, a):
    await db.execute("UPDATE customers SET status = 'suspended' WHERE id = $1", a.customer)
    await db.execute("UPDATE meters SET mode = 'decommissioned' WHERE id = $1", a.meter)
    assert await db.fetchval("SELECT status::text FROM customers") == "suspended"
    assert await db.fetchval("SELECT mode::text FROM meters") == "decommissioned"


async def test_bad_enum_value_is_rejected_on_insert(db, a):
    await rejects(
        db,
        asyncpg.InvalidTextRepresentationError,
        None,
        insert(db, "customers", esco_id=a.esco, email="x@a.io", status="deleted"),
    )
    await rejects(
        db,
        asyncpg.InvalidTextRepresentationError,
        None,
        insert(db, "meters", esco_id=a.esco, serial="S-9", mode="broken"),
    )


@pytest.mark.parametrize(
    ("table", "row", "column"),
    [
        ("customers", {"email": None}, "email"),
        ("meters", {"esco_id": None, "serial": "S-9"}, "esco_id"),
        ("accounts", {"opened_on": None}, "opened_on"),
    ],
)
async def test_missing_required_value_is_rejected(db, a, table, row, column):
    base = {"esco_id": a.esco}
    if table == "accounts":
        base["property_id"] = await add_property(db, a, "2")
    error = await rejects(db, asyncpg.NotNullViolationError, None, insert(db, table, **base | row))
    assert (error.table_name, error.column_name) == (table, column)


# --------------------------------------------------------------------------------------
# Usage, billing runs and payments


@pytest.mark.parametrize("column", ["power_kwh", "heat_kwh", "solar_kwh"])
async def test_negative_kwh_is_rejected(db, a, column):
    name = column.removesuffix("_kwh")
    row = {"esco_id": a.esco, "meter_id": a.meter, "month": D("2025-03-01")}
    await rejects(
        db,
        asyncpg.CheckViolationError,
        f"ck_monthly_usage_{name}_non_negative",
        insert(db, "monthly_usage", **row, **{column: Decimal("-0.001")}),
    )
    accepted = await insert(db, "monthly_usage", **row, **{column: Decimal("0")})
    assert accepted[column] == 0 and accepted["source"] == "meter"


async def test_usage_month_must_be_first_of_month(db, a):
    row = {"esco_id": a.esco, "meter_id": a.meter}
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "ck_monthly_usage_month_first_day",
        insert(db, "monthly_usage", **row, month=D("2025-03-15")),
    )
    accepted = await insert(db, "monthly_usage", **row, month=D("2025-03-01"))
    assert accepted["month"] == D("2025-03-01")
    # One row per meter and month.
    await rejects(
        db,
        asyncpg.UniqueViolationError,
        "uq_monthly_usage_meter_id_month",
        insert(db, "monthly_usage", **row, month=D("2025-03-01")),
    )


async def test_billing_run_month_must_be_first_of_month(db, a):
    row = {"esco_id": a.esco, "actor": "system"}
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "ck_billing_runs_month_first_day",
        insert(db, "billing_runs", **row, month=D("2025-03-15")),
    )
    accepted = await insert(db, "billing_runs", **row, month=D("2025-03-01"))
    assert (accepted["month"], accepted["status"]) == (D("2025-03-01"), "running")


async def test_one_finalized_billing_run_per_esco_and_month(db, a, b):
    async def run(t: Tenant, month: str, status: str) -> asyncpg.Record:
        return await insert(
            db, "billing_runs", esco_id=t.esco, actor="system", month=D(month), status=status
        )

    await run(a, "2025-03-01", "finalized")
    await rejects(
        db,
        asyncpg.UniqueViolationError,
        "uq_billing_runs_esco_id_month_finalized",
        run(a, "2025-03-01", "finalized"),
    )
    completed = await run(a, "2025-03-01", "completed")
    await run(a, "2025-03-01", "failed")
    await run(a, "2025-04-01", "finalized")
    await run(b, "2025-03-01", "finalized")
    # Finalizing another run of an already finalized month is refused too.
    await rejects(
        db,
        asyncpg.UniqueViolationError,
        "uq_billing_runs_esco_id_month_finalized",
        db.execute("UPDATE billing_runs SET status = 'finalized' WHERE id = $1", completed["id"]),
    )
    finalized = await db.fetchval(
        "SELECT count(*) FROM billing_runs WHERE status = 'finalized' AND esco_id = $1", a.esco
    )
    assert finalized == 2


async def test_payment_amount_bounds(db, a):
    def pay(amount: int, key: str) -> Awaitable[asyncpg.Record]:
        return insert(
            db,
            "payments",
            esco_id=a.esco,
            customer_id=a.customer,
            account_id=a.account,
            amount_pence=amount,
            idempotency_key=key,
        )

    for amount in (0, 50001, -1):
        await rejects(db, asyncpg.CheckViolationError, "ck_payments_amount_range", pay(amount, "k"))
    low, high = await pay(1, "low"), await pay(50000, "high")
    assert (low["amount_pence"], high["amount_pence"]) == (1, 50000)
    assert (low["currency"], low["status"]) == ("GBP", "created")


async def test_payment_idempotency_key_unique_per_customer(db, a):
    other = await add_customer(db, a, "other@a.io")

    def pay(customer: uuid.UUID) -> Awaitable[asyncpg.Record]:
        return insert(
            db,
            "payments",
            esco_id=a.esco,
            customer_id=customer,
            account_id=a.account,
            amount_pence=500,
            idempotency_key="order-1",
        )

    await pay(a.customer)
    await rejects(
        db, asyncpg.UniqueViolationError, "uq_payments_customer_id_idempotency_key", pay(a.customer)
    )
    await pay(other)  # the same key from another customer is a different payment
    assert await db.fetchval("SELECT count(*) FROM payments") == 2


async def test_payment_currency_must_be_a_code(db, a):
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "ck_payments_currency_code",
        insert(
            db,
            "payments",
            esco_id=a.esco,
            customer_id=a.customer,
            account_id=a.account,
            amount_pence=500,
            idempotency_key="k",
            currency="gbp",
        ),
    )


# --------------------------------------------------------------------------------------
# Uniqueness: meters, customers, properties


async def test_meter_serial_is_globally_unique(db, a, b):
    for t in (a, b):  # a-M1 exists already; neither ESCO may reuse it
        await rejects(
            db,
            asyncpg.UniqueViolationError,
            "uq_meters_serial",
            insert(db, "meters", esco_id=t.esco, serial=f"{a.code}-M1"),
        )
    accepted = await insert(db, "meters", esco_id=b.esco, serial=f"{a.code}-M2")
    assert accepted["mode"] == "active"


async def test_customer_email_unique_per_esco_case_insensitively(db, a, b):
    await add_customer(db, a, "A@x.io")
    await rejects(
        db,
        asyncpg.UniqueViolationError,
        "uq_customers_esco_id_lower_email",
        insert(db, "customers", esco_id=a.esco, email="a@x.io"),
    )
    await add_customer(db, b, "a@x.io")
    emails = await db.fetch("SELECT esco_id, email FROM customers WHERE lower(email) = 'a@x.io'")
    assert sorted((r["esco_id"] == a.esco, r["email"]) for r in emails) == [
        (False, "a@x.io"),
        (True, "A@x.io"),
    ]


async def test_customer_email_must_look_like_one(db, a):
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "ck_customers_email_shape",
        insert(db, "customers", esco_id=a.esco, email="not an email"),
    )


async def test_plot_unique_per_esco_and_meter_supplies_one_property(db, a, b):
    await rejects(
        db,
        asyncpg.UniqueViolationError,
        "uq_properties_esco_id_plot",
        insert(db, "properties", esco_id=a.esco, plot="1"),
    )
    assert await add_property(db, b, "1a") is not None
    await db.execute(
        "UPDATE properties SET supply_meter_id = $1 WHERE id = $2", a.meter, a.property
    )
    await rejects(
        db,
        asyncpg.UniqueViolationError,
        "uq_properties_supply_meter_id",
        insert(db, "properties", esco_id=a.esco, plot="2", supply_meter_id=a.meter),
    )


# --------------------------------------------------------------------------------------
# Accounts


async def test_one_active_account_per_property(db, a):
    row = {"esco_id": a.esco, "property_id": a.property}
    await rejects(
        db,
        asyncpg.UniqueViolationError,
        "uq_accounts_property_id_active",
        insert(db, "accounts", **row, opened_on=D("2024-07-01")),
    )
    await db.execute(
        "UPDATE accounts SET status = 'closed', closed_on = '2024-06-30' WHERE id = $1", a.account
    )
    successor = await insert(db, "accounts", **row, opened_on=D("2024-07-01"))
    statuses = await db.fetch(
        "SELECT status::text FROM accounts WHERE property_id = $1 ORDER BY opened_on", a.property
    )
    assert [r["status"] for r in statuses] == ["closed", "active"]
    assert successor["status"] == "active"


async def test_closed_on_before_opened_on_is_rejected(db, a):
    prop = await add_property(db, a, "2")
    row = {"esco_id": a.esco, "property_id": prop, "status": "closed", "opened_on": D("2024-01-01")}
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "ck_accounts_closed_after_opened",
        insert(db, "accounts", **row, closed_on=D("2023-12-31")),
    )
    # Closed without a date, or a date while active, is refused too.
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "ck_accounts_closed_on_iff_closed",
        insert(db, "accounts", **row | {"status": "active"}, closed_on=D("2024-02-01")),
    )
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "ck_accounts_closed_on_iff_closed",
        insert(db, "accounts", **row, closed_on=None),
    )
    same_day = await insert(db, "accounts", **row, closed_on=D("2024-01-01"))
    assert same_day["closed_on"] == D("2024-01-01")


async def test_contract_terms_must_be_allowed_for_the_esco(db, a, b):
    terms = (await insert(db, "contract_terms", type="supply", version=1, title="Supply"))["id"]

    def set_terms() -> Awaitable[str]:
        return db.execute(
            "UPDATE accounts SET contract_terms_id = $1 WHERE id = $2", terms, a.account
        )

    fk = "fk_accounts_contract_terms_id_esco_id_contract_terms_esco"
    await rejects(db, asyncpg.ForeignKeyViolationError, fk, set_terms())
    # Allowed for another ESCO is not allowed for this one.
    await insert(db, "contract_terms_esco", esco_id=b.esco, contract_terms_id=terms)
    await rejects(db, asyncpg.ForeignKeyViolationError, fk, set_terms())

    await insert(db, "contract_terms_esco", esco_id=a.esco, contract_terms_id=terms)
    await set_terms()
    stored = await db.fetchval("SELECT contract_terms_id FROM accounts WHERE id = $1", a.account)
    assert stored == terms
    # ...and once in use the permission cannot be withdrawn underneath the account.
    await rejects(
        db,
        asyncpg.ForeignKeyViolationError,
        fk,
        db.execute("DELETE FROM contract_terms_esco WHERE esco_id = $1", a.esco),
    )


async def test_contract_terms_version_starts_at_one(db):
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "ck_contract_terms_version_positive",
        insert(db, "contract_terms", type="solar", version=0, title="Solar"),
    )


async def test_account_numbers_come_from_a_sequence(db, a):
    second = await add_account(db, a, "2")
    third = await add_account(db, a, "3")
    first = await db.fetchval("SELECT account_number FROM accounts WHERE id = $1", a.account)
    numbers = [first, second["account_number"], third["account_number"]]
    assert numbers == sorted(set(numbers)), numbers  # distinct and increasing
    assert first >= 10_000_001
    assert await db.fetchval("SELECT last_value FROM account_number_seq") == numbers[-1]
    await rejects(
        db,
        asyncpg.UniqueViolationError,
        "uq_accounts_account_number",
        db.execute("UPDATE accounts SET account_number = $1 WHERE id = $2", first, third["id"]),
    )


# --------------------------------------------------------------------------------------
# Tariffs and ESCOs


@pytest.mark.parametrize("discount", [101, -1])
async def test_discount_percent_out_of_range_is_rejected(db, a, discount):
    customer_row = {
        "esco_id": a.esco,
        "customer_id": a.customer,
        "period_start": D("2025-01-01"),
        "unit_rate": Decimal("0.2"),
        "standing_charge": Decimal("0.5"),
    }
    microgrid_row = {
        "esco_id": a.esco,
        "period_start": D("2025-01-01"),
        "unit_rate": Decimal("0.2"),
        "standing_charge": Decimal("0.5"),
        "emergency_credit": 10,
        "ecredit_button_threshold": 5,
        "debt_recovery_rate": 1,
    }
    for table, row in [("customer_tariffs", customer_row), ("microgrid_tariffs", microgrid_row)]:
        await rejects(
            db,
            asyncpg.CheckViolationError,
            f"ck_{table}_discount_range",
            insert(db, table, **row, discount_percent=discount),
        )
        assert (await insert(db, table, **row, discount_percent=100))["discount_percent"] == 100


async def test_benchmark_rates_out_of_range_are_rejected(db):
    row = {"region_code": "south_west", "period_start": D("2025-01-01")}
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "ck_benchmark_tariffs_unit_rate_range",
        insert(
            db, "benchmark_tariffs", **row, unit_rate=Decimal("100.1"), standing_charge=Decimal(1)
        ),
    )
    await rejects(
        db,
        asyncpg.CheckViolationError,
        "ck_benchmark_tariffs_standing_charge_range",
        insert(
            db, "benchmark_tariffs", **row, unit_rate=Decimal(1), standing_charge=Decimal("-0.01")
        ),
    )
    accepted = await insert(
        db, "benchmark_tariffs", **row, unit_rate=Decimal(100), standing_charge=Decimal(0)
    )
    assert accepted["unit_rate"] == Decimal("100.00000")


@pytest.mark.parametrize(
    ("column", "value", "constraint"),
    [
        ("code", "Bad Code", "ck_escos_code_slug"),
        ("code", "x", "ck_escos_code_slug"),
        ("code", "a" * 33, "ck_escos_code_slug"),
        ("app_url", "ftp://flows.example", "ck_escos_app_url_http"),
        ("app_url", "https://has space.example", "ck_escos_app_url_http"),
    ],
)
async def test_bad_esco_code_or_url_is_rejected(db, column, value, constraint):
    row = {"code": "good-code_1", "name": "Good", "region_code": "london"}
    await rejects(
        db, asyncpg.CheckViolationError, constraint, insert(db, "escos", **row | {column: value})
    )
    accepted = await insert(db, "escos", **row, app_url="https://app.example/x")
    assert (accepted["code"], accepted["tariff_generation"]) == ("good-code_1", "auto")


async def test_esco_code_is_unique(db, a):
    await rejects(
        db,
        asyncpg.UniqueViolationError,
        "uq_escos_code",
        insert(db, "escos", code=a.code, name="Copy", region_code="london"),
    )


# --------------------------------------------------------------------------------------
# Timestamps and the audit trail


@pytest.mark.parametrize(
    ("table", "attr"),
    [("customers", "customer"), ("accounts", "account"), ("meters", "meter"), ("escos", "esco")],
)
async def test_update_sets_updated_at_to_now(db, a, table, attr):
    """Clock-independent: an UPDATE that writes a stale updated_at still gets now()."""
    row_id = getattr(a, attr)
    created_at = await db.fetchval(f"SELECT created_at FROM {table} WHERE id = $1", row_id)
    after = await db.fetchrow(
        f"UPDATE {table} SET updated_at = '2000-01-01' WHERE id = $1"
        " RETURNING created_at, updated_at, now() AS now",
        row_id,
    )
    assert after["updated_at"] == after["now"]
    assert after["updated_at"].year != 2000
    assert after["created_at"] == created_at


async def test_update_in_a_later_transaction_bumps_updated_at(conn):
    """With real commits (so outside `db`'s transaction): updated_at moves past created_at."""
    code = f"touch-{uuid.uuid4().hex[:8]}"
    before = await insert(conn, "escos", code=code, name="Touch", region_code="london")
    try:
        assert before["updated_at"] == before["created_at"]
        await conn.execute("SELECT pg_sleep(0.01)")
        after = await conn.fetchrow(
            "UPDATE escos SET name = 'Touched' WHERE id = $1 RETURNING created_at, updated_at",
            before["id"],
        )
        assert after["created_at"] == before["created_at"]
        assert after["updated_at"] > before["updated_at"]
    finally:
        await conn.execute("DELETE FROM escos WHERE id = $1", before["id"])


async def test_every_table_with_updated_at_has_the_touch_trigger(db):
    tables_with_column = {
        r["table_name"]
        for r in await db.fetch(
            "SELECT table_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND column_name = 'updated_at'"
        )
    }
    tables_with_trigger = {
        r["relname"]
        for r in await db.fetch(
            "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            " JOIN pg_proc p ON p.oid = t.tgfoid"
            " WHERE p.proname = 'flows_touch_updated_at' AND NOT t.tgisinternal"
        )
    }
    assert len(tables_with_column) == 28  # + webhook_endpoints, webhook_deliveries
    assert tables_with_trigger == tables_with_column


AUDIT_ROWS: dict[str, Callable[[Tenant], dict[str, Any]]] = {
    "audit_log": lambda t: {"esco_id": t.esco, "actor": "system", "action": "x", "entity": "meter"},
    "customer_events": lambda t: {
        "esco_id": t.esco,
        "customer_id": t.customer,
        "event_type": "created",
        "actor": "system",
    },
    "account_events": lambda t: {
        "esco_id": t.esco,
        "account_id": t.account,
        "event_type": "opened",
        "actor": "system",
    },
    "account_audit_logs": lambda t: {
        "esco_id": t.esco,
        "account_id": t.account,
        "action": "update",
        "actor": "system",
    },
}


@pytest.mark.parametrize("table", AUDIT_ROWS)
async def test_audit_tables_are_append_only(db, a, table):
    row = await insert(db, table, **AUDIT_ROWS[table](a))
    for statement in (
        f"UPDATE {table} SET actor = 'someone-else' WHERE id = $1",
        f"DELETE FROM {table} WHERE id = $1",
    ):
        error = await rejects(
            db, asyncpg.IntegrityConstraintViolationError, None, db.execute(statement, row["id"])
        )
        assert error.sqlstate == "23000"
        assert str(error) == f"{table} is append-only"
    assert await db.fetchrow(f"SELECT * FROM {table}") == row
