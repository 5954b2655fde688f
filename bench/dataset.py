"""What the scenarios need to know about the loaded data, read back from the database
(so a run can reuse a database loaded earlier)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

import asyncpg

from .datagen import BIG_ESCO, MONTHS, add_months
from .settings import BenchSettings

# Customers whose app screens scenario (b) cycles through.
APP_CUSTOMERS = 200


@dataclass(frozen=True)
class Customer:
    id: uuid.UUID
    email: str


@dataclass(frozen=True)
class Meter:
    id: uuid.UUID
    serial: str


@dataclass(frozen=True)
class DataSet:
    label: str
    esco_id: uuid.UUID
    esco_code: str
    customers: int
    # The month the data set calls current; the dashboards read the 12 before it.
    anchor: date
    app_customers: list[Customer]
    meters: list[Meter]

    @property
    def first_month(self) -> date:
        return add_months(self.anchor, -MONTHS)

    @property
    def last_month(self) -> date:
        return add_months(self.anchor, -1)


async def describe(settings: BenchSettings, label: str) -> DataSet:
    conn = await asyncpg.connect(settings.database_url)
    try:
        esco = await conn.fetchrow("SELECT id, code FROM escos WHERE code = $1", BIG_ESCO)
        if esco is None:
            raise SystemExit("the bench database holds no bench data: run without --reuse")
        count = await conn.fetchval("SELECT count(*) FROM customers WHERE esco_id = $1", esco["id"])
        last = await conn.fetchval(
            "SELECT max(month) FROM monthly_costs WHERE esco_id = $1", esco["id"]
        )
        # Every k-th active customer with an account: spread over the whole table.
        customers = await conn.fetch(
            """
            SELECT id, email FROM (
                SELECT c.id, c.email, row_number() OVER (ORDER BY lower(c.email), c.id) AS n
                  FROM customers c
                 WHERE c.esco_id = $1 AND c.status = 'active'
                   AND EXISTS (SELECT FROM customer_accounts ca WHERE ca.customer_id = c.id)
            ) numbered
             WHERE n % greatest($2::bigint / $3, 1) = 0
             ORDER BY n LIMIT $3
            """,
            esco["id"],
            count,
            APP_CUSTOMERS,
        )
        meters = await conn.fetch(
            "SELECT id, serial FROM meters WHERE esco_id = $1 ORDER BY serial", esco["id"]
        )
    finally:
        await conn.close()
    return DataSet(
        label=label,
        esco_id=esco["id"],
        esco_code=esco["code"],
        customers=count,
        anchor=add_months(last, 1),
        app_customers=[Customer(r["id"], r["email"]) for r in customers],
        meters=[Meter(r["id"], r["serial"]) for r in meters],
    )
