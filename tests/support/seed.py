"""Rows a test needs before it calls the API, written with plain SQL on an asyncpg
connection (fast, and independent of the mutations under test). Each returns the id
it made; every child row carries its parent's `esco_id`, as the tenant keys demand.

For a whole ESCO graph with usage, costs and tariffs, see factories.py.
"""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import Any

import asyncpg

from tests.support.api import ACTOR


async def seed_esco(
    conn: asyncpg.Connection,
    code: str | None = None,
    *,
    region: str = "south_east",
    app_url: str | None = "https://app.example",
) -> uuid.UUID:
    """An ESCO named after its code (a fresh one unless given)."""
    esco = uuid.uuid4()
    code = code or f"t-{esco.hex[:12]}"
    await conn.execute(
        "INSERT INTO escos (id, code, name, region_code, app_url) VALUES ($1, $2, $3, $4, $5)",
        esco,
        code,
        code.upper(),
        region,
        app_url,
    )
    return esco


async def seed_property(
    conn: asyncpg.Connection, esco: uuid.UUID, plot: str | None = None
) -> uuid.UUID:
    prop = uuid.uuid4()
    await conn.execute(
        "INSERT INTO properties (id, esco_id, plot) VALUES ($1, $2, $3)",
        prop,
        esco,
        plot or f"Plot {prop.hex[:8]}",
    )
    return prop


async def seed_account(
    conn: asyncpg.Connection,
    esco: uuid.UUID,
    opened_on: date = date(2024, 1, 1),
    closed_on: date | None = None,
    *,
    plot: str | None = None,
) -> uuid.UUID:
    """An account (closed when `closed_on` is given) of a new property."""
    prop = await seed_property(conn, esco, plot)
    account = uuid.uuid4()
    await conn.execute(
        "INSERT INTO accounts (id, esco_id, property_id, status, opened_on, closed_on) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        account,
        esco,
        prop,
        "closed" if closed_on else "active",
        opened_on,
        closed_on,
    )
    return account


async def seed_customer(
    conn: asyncpg.Connection, esco: uuid.UUID, email: str | None = None, status: str = "active"
) -> uuid.UUID:
    customer = uuid.uuid4()
    await conn.execute(
        "INSERT INTO customers (id, esco_id, email, status) VALUES ($1, $2, $3, $4)",
        customer,
        esco,
        email or f"{customer.hex[:10]}@example.com",
        status,
    )
    return customer


async def seed_link(
    conn: asyncpg.Connection,
    esco: uuid.UUID,
    customer: uuid.UUID,
    account: uuid.UUID,
    role: str = "occupier",
    start: date = date(2024, 1, 1),
    end: date | None = None,
) -> None:
    """The customer's link to the account in `role`, from `start` (to `end`)."""
    await conn.execute(
        "INSERT INTO customer_accounts (customer_id, account_id, role, start_date, esco_id, "
        "end_date) VALUES ($1, $2, $3, $4, $5, $6)",
        customer,
        account,
        role,
        start,
        esco,
        end,
    )


async def seed_household(
    conn: asyncpg.Connection, esco: uuid.UUID, email: str, plot: str
) -> tuple[uuid.UUID, uuid.UUID]:
    """A customer occupying an account (of plot `plot`) since 2024-01-01: (customer,
    account)."""
    customer = await seed_customer(conn, esco, email)
    account = await seed_account(conn, esco, plot=plot)
    await seed_link(conn, esco, customer, account)
    return customer, account


async def seed_terms(conn: asyncpg.Connection, allowed_for: uuid.UUID | None) -> uuid.UUID:
    """Supply terms, version 1, allowed for an ESCO (or none)."""
    terms = uuid.uuid4()
    await conn.execute(
        "INSERT INTO contract_terms (id, type, version, title) VALUES ($1, 'supply', 1, $2)",
        terms,
        f"Supply terms {terms.hex[:8]}",
    )
    if allowed_for is not None:
        await conn.execute(
            "INSERT INTO contract_terms_esco (esco_id, contract_terms_id) VALUES ($1, $2)",
            allowed_for,
            terms,
        )
    return terms


async def seed_meters(
    conn: asyncpg.Connection, esco: uuid.UUID, serials: list[str], mode: str = "active"
) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in serials]
    await conn.execute(
        "INSERT INTO meters (id, esco_id, serial, mode) "
        "SELECT id, $2, serial, $4::meter_mode FROM unnest($1::uuid[], $3::text[]) "
        "AS t(id, serial)",
        ids,
        esco,
        serials,
        mode,
    )
    return ids


# --- what was written ---------------------------------------------------------------


async def counts(
    conn: asyncpg.Connection, tables: tuple[str, ...], esco: uuid.UUID | None = None
) -> dict[str, int]:
    """Rows per table (of one ESCO with `esco`): what a refused mutation must leave."""
    where = " WHERE esco_id = $1" if esco is not None else ""
    args = (esco,) if esco is not None else ()
    return {t: await conn.fetchval(f"SELECT count(*) FROM {t}{where}", *args) for t in tables}


async def audit_rows(conn: asyncpg.Connection, action: str, entity_id: object) -> list[Any]:
    """The audit rows of `action` on one entity, oldest first."""
    rows = await conn.fetch(
        "SELECT esco_id, actor, action, entity, entity_id, changes FROM audit_log "
        "WHERE action = $1 AND entity_id = $2 ORDER BY created_at",
        action,
        str(entity_id),
    )
    return list(rows)


async def one_audit(conn: asyncpg.Connection, action: str, entity_id: object) -> Any:
    """The one audit row of `action` on `entity_id`, by the admin of the tests."""
    rows = await audit_rows(conn, action, entity_id)
    assert len(rows) == 1, rows
    row = rows[0]
    assert row["actor"] == ACTOR and row["action"] == action
    return row


def data(value: Any) -> Any:
    """A jsonb column as asyncpg reads it (text), decoded."""
    return json.loads(value) if isinstance(value, str) else value


def changes(row: Any) -> Any:
    """An audit row's changes."""
    return data(row["changes"])
