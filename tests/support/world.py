"""The world the event-log tests share (live updates and webhooks): two ESCOs, two
households in one and one in the other, partner keys, and payments written with raw SQL
so the log's triggers alone turn them into events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from flows_graphql.auth.apikeys import create_key
from tests.support.seed import seed_esco, seed_household


@dataclass
class World:
    esco: uuid.UUID
    other_esco: uuid.UUID
    ann: uuid.UUID  # occupier of `home`
    bob: uuid.UUID  # another household of the same ESCO
    cat: uuid.UUID  # a customer of the other ESCO
    home: uuid.UUID
    bobs_home: uuid.UUID
    cats_home: uuid.UUID


async def make_world(raw: asyncpg.Connection) -> World:
    esco, other = await seed_esco(raw, "live"), await seed_esco(raw, "elsewhere")
    ann, home = await seed_household(raw, esco, "ann@example.com", "1")
    bob, bobs_home = await seed_household(raw, esco, "bob@example.com", "2")
    cat, cats_home = await seed_household(raw, other, "cat@example.com", "1")
    return World(esco, other, ann, bob, cat, home, bobs_home, cats_home)


async def issue_partner_key(
    engine: AsyncEngine, esco: uuid.UUID, scopes: list[str]
) -> tuple[uuid.UUID, str]:
    """A partner API key of `esco`: (its id, the key)."""
    async with engine.begin() as conn:
        issued = await create_key(conn, esco, scopes, "partner")
    return issued.id, issued.key


async def seed_payment(raw: asyncpg.Connection, customer: uuid.UUID, account: uuid.UUID) -> str:
    """A created payment of 12.00 by `customer` on `account`; its id."""
    esco = await raw.fetchval("SELECT esco_id FROM accounts WHERE id = $1", account)
    payment = await raw.fetchval(
        "INSERT INTO payments (esco_id, customer_id, account_id, amount_pence, status, "
        "idempotency_key) VALUES ($1, $2, $3, 1200, 'created', $4) RETURNING id",
        esco,
        customer,
        account,
        uuid.uuid4().hex,
    )
    return str(payment)
