"""createPayment and updatePaymentStatus through the GraphQL API (rules.md §5).

Prerequisite rows are written with raw SQL. The app's billing clock is fixed at
conftest.TODAY (2025-03-10). `client` signs in as an admin; the role tests sign in as a
customer, an operator or a partner key.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from flows_graphql.config import Settings
from flows_graphql.db.models.enums import PaymentStatus
from flows_graphql.rules.payments import TRANSITIONS
from flows_graphql.types.node import to_global_id
from tests.support.api import TODAY, api_key, bearer, call, codes, gql
from tests.support.db import direct_dsn
from tests.support.documents import CREATE_PAYMENT, CREATE_PAYMENT_BARE, UPDATE_PAYMENT_STATUS
from tests.support.seed import seed_account, seed_customer, seed_esco, seed_household, seed_link


@dataclass
class World:
    esco: uuid.UUID
    customer: uuid.UUID
    account: uuid.UUID
    other_esco: uuid.UUID
    other_customer: uuid.UUID
    other_account: uuid.UUID


@pytest.fixture
async def world(raw: asyncpg.Connection, engine: AsyncEngine) -> World:
    esco = await seed_esco(raw, "alpha")
    customer, account = await seed_household(raw, esco, "ann@example.com", "A1")
    other_esco = await seed_esco(raw, "beta")
    other_customer, other_account = await seed_household(raw, other_esco, "bob@example.com", "B1")
    return World(esco, customer, account, other_esco, other_customer, other_account)


def payment_input(w: World, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "customerId": str(w.customer),
        "accountId": str(w.account),
        "amountPence": 2500,
        "description": "March bill",
        "idempotencyKey": "key-1",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


async def create(client: httpx.AsyncClient, input: dict[str, Any]) -> dict[str, Any]:
    return await call(client, CREATE_PAYMENT, input)


async def update(client: httpx.AsyncClient, input: dict[str, Any]) -> dict[str, Any]:
    return await call(client, UPDATE_PAYMENT_STATUS, input)


async def counts(raw: asyncpg.Connection) -> tuple[int, int]:
    payments = await raw.fetchval("SELECT count(*) FROM payments")
    audits = await raw.fetchval("SELECT count(*) FROM audit_log")
    return payments, audits


async def insert_payment(
    raw: asyncpg.Connection,
    w: World,
    status: str,
    key: str,
    reference: str | None = None,
    *,
    other_esco: bool = False,
) -> uuid.UUID:
    """A payment in the given state, written directly (of the other ESCO's customer
    with `other_esco`)."""
    payment = uuid.uuid4()
    esco, customer, account = (
        (w.other_esco, w.other_customer, w.other_account)
        if other_esco
        else (w.esco, w.customer, w.account)
    )
    await raw.execute(
        "INSERT INTO payments (id, esco_id, customer_id, account_id, amount_pence, status, "
        "idempotency_key, provider_reference) VALUES ($1, $2, $3, $4, 1000, $5, $6, $7)",
        payment,
        esco,
        customer,
        account,
        status,
        key,
        reference,
    )
    return payment


# --- createPayment ------------------------------------------------------------------


async def test_create_payment_writes_the_row_and_its_audit(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    result = await create(client, payment_input(world, scheduledAt="2025-03-20T09:30:00+00:00"))
    assert result["userErrors"] == []
    payment = result["payment"]
    assert payment["amountPence"] == 2500
    assert payment["currency"] == "GBP"
    assert payment["status"] == "CREATED"
    assert payment["description"] == "March bill"
    assert payment["providerReference"] is None
    assert payment["scheduledAt"] == "2025-03-20T09:30:00+00:00"
    assert payment["customer"] == {"uuid": str(world.customer)}
    assert payment["account"] == {"uuid": str(world.account)}
    assert payment["id"] == to_global_id("Payment", payment["uuid"])

    row = await raw.fetchrow("SELECT * FROM payments")
    assert str(row["id"]) == payment["uuid"]
    assert row["esco_id"] == world.esco
    assert row["customer_id"] == world.customer
    assert row["account_id"] == world.account
    assert row["amount_pence"] == 2500
    assert row["currency"] == "GBP"
    assert row["status"] == "created"
    assert row["idempotency_key"] == "key-1"
    assert row["scheduled_at"] == datetime(2025, 3, 20, 9, 30, tzinfo=UTC)

    audit = await raw.fetchrow("SELECT * FROM audit_log")
    assert audit["action"] == "createPayment"
    assert audit["entity"] == "payment"
    assert audit["entity_id"] == payment["uuid"]
    assert audit["esco_id"] == world.esco
    assert audit["actor"] == "user:development"
    changes = json.loads(audit["changes"])["changed"]
    assert changes["amount_pence"] == {"old": None, "new": 2500}
    assert changes["status"] == {"old": None, "new": "created"}
    assert changes["idempotency_key"] == {"old": None, "new": "key-1"}
    assert changes["account_id"] == {"old": None, "new": str(world.account)}


async def test_create_payment_takes_global_ids_and_optional_fields(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    result = await create(
        client,
        payment_input(
            world,
            customerId=to_global_id("Customer", world.customer),
            accountId=to_global_id("Account", world.account),
            description=...,
        ),
    )
    assert result["userErrors"] == []
    assert result["payment"]["description"] is None
    assert result["payment"]["scheduledAt"] is None
    assert await counts(raw) == (1, 1)


@pytest.mark.parametrize("amount", [1, 50000])
async def test_amount_bounds_are_accepted(
    client: httpx.AsyncClient, world: World, amount: int
) -> None:
    result = await create(client, payment_input(world, amountPence=amount))
    assert result["userErrors"] == []
    assert result["payment"]["amountPence"] == amount


@pytest.mark.parametrize("amount", [0, -1, 50001, 2_000_000_000])
async def test_amount_out_of_bounds_is_invalid(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World, amount: int
) -> None:
    result = await create(client, payment_input(world, amountPence=amount))
    assert result["payment"] is None
    assert codes(result) == [(["amountPence"], "INVALID")]
    assert await counts(raw) == (0, 0)


async def test_a_fractional_amount_is_refused_by_the_graphql_type(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    body = await gql(client, CREATE_PAYMENT, {"input": payment_input(world, amountPence=10.5)})
    assert body["errors"]
    assert await counts(raw) == (0, 0)


@pytest.mark.parametrize("key", ["", "   ", "k" * 256])
async def test_bad_idempotency_keys_are_invalid(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World, key: str
) -> None:
    result = await create(client, payment_input(world, idempotencyKey=key))
    assert codes(result) == [(["idempotencyKey"], "INVALID")]
    assert await counts(raw) == (0, 0)


async def test_a_255_character_key_is_accepted(client: httpx.AsyncClient, world: World) -> None:
    result = await create(client, payment_input(world, idempotencyKey="k" * 255))
    assert result["userErrors"] == []


async def test_same_key_same_input_returns_the_original_payment(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    input = payment_input(world, scheduledAt="2025-03-20T09:30:00+00:00")
    first = await create(client, input)
    # The same instant written with another offset is the same input.
    again = await create(client, {**input, "scheduledAt": "2025-03-20T10:30:00+01:00"})
    assert again["userErrors"] == []
    assert again["payment"] == first["payment"]
    assert await counts(raw) == (1, 1)


async def test_a_retry_gets_the_original_even_after_the_rules_changed(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    first = await create(client, payment_input(world))
    await raw.execute("UPDATE customers SET status = 'suspended' WHERE id = $1", world.customer)
    await raw.execute("UPDATE payments SET status = 'pending'")
    again = await create(client, payment_input(world))
    assert again["userErrors"] == []
    assert again["payment"]["uuid"] == first["payment"]["uuid"]
    assert again["payment"]["status"] == "PENDING"  # the payment as it is now
    assert await counts(raw) == (1, 1)


@pytest.mark.parametrize(
    "change",
    [
        {"amountPence": 2501},
        {"description": "April bill"},
        {"description": None},
        {"scheduledAt": "2025-03-21T09:30:00+00:00"},
        {"accountId": "other"},
    ],
)
async def test_same_key_different_input_is_refused(
    client: httpx.AsyncClient,
    raw: asyncpg.Connection,
    world: World,
    change: dict[str, Any],
) -> None:
    if change.get("accountId") == "other":
        second_account = await seed_account(raw, world.esco, plot="A2")
        await seed_link(raw, world.esco, world.customer, second_account, role="owner")
        change = {"accountId": str(second_account)}
    first = await create(client, payment_input(world))
    assert first["userErrors"] == []
    result = await create(client, payment_input(world, **change))
    assert result["payment"] is None
    assert codes(result) == [(["idempotencyKey"], "IDEMPOTENCY_KEY_REUSED")]
    assert await counts(raw) == (1, 1)


async def test_keys_are_per_customer(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    flatmate = await seed_customer(raw, world.esco, "flat@example.com")
    await seed_link(raw, world.esco, flatmate, world.account, role="owner")
    one = await create(client, payment_input(world))
    two = await create(client, payment_input(world, customerId=str(flatmate)))
    assert one["userErrors"] == two["userErrors"] == []
    assert one["payment"]["uuid"] != two["payment"]["uuid"]
    assert await counts(raw) == (2, 2)


@pytest.mark.parametrize(
    "customer_id",
    [
        str(uuid.uuid4()),
        "not-an-id",
        to_global_id("Account", uuid.uuid4()),
    ],
)
async def test_unknown_customer_is_not_found(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World, customer_id: str
) -> None:
    result = await create(client, payment_input(world, customerId=customer_id))
    assert codes(result) == [(["customerId"], "NOT_FOUND")]
    assert await counts(raw) == (0, 0)


async def test_suspended_customer(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    await raw.execute("UPDATE customers SET status = 'suspended' WHERE id = $1", world.customer)
    result = await create(client, payment_input(world))
    assert codes(result) == [(["customerId"], "CUSTOMER_SUSPENDED")]
    assert await counts(raw) == (0, 0)


async def test_inactive_customer_is_invalid(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    await raw.execute("UPDATE customers SET status = 'inactive' WHERE id = $1", world.customer)
    result = await create(client, payment_input(world))
    assert codes(result) == [(["customerId"], "INVALID")]
    assert await counts(raw) == (0, 0)


async def test_closed_account_is_invalid(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    closed = await seed_account(raw, world.esco, plot="A2", closed_on=date(2025, 6, 30))
    await seed_link(raw, world.esco, world.customer, closed)
    result = await create(client, payment_input(world, accountId=str(closed)))
    assert codes(result) == [(["accountId"], "INVALID")]
    assert result["userErrors"][0]["message"] == "The account is closed."
    assert await counts(raw) == (0, 0)


@pytest.mark.parametrize(
    "account_id", [str(uuid.uuid4()), "garbage", to_global_id("Customer", uuid.uuid4())]
)
async def test_unknown_account_is_not_found(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World, account_id: str
) -> None:
    result = await create(client, payment_input(world, accountId=account_id))
    assert codes(result) == [(["accountId"], "NOT_FOUND")]
    assert await counts(raw) == (0, 0)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (None, None),  # never linked
        (date(2024, 1, 1), date(2025, 3, 9)),  # ended yesterday
        (date(2025, 3, 11), None),  # starts tomorrow
    ],
)
async def test_customer_not_currently_linked_is_invalid(
    client: httpx.AsyncClient,
    raw: asyncpg.Connection,
    world: World,
    start: date | None,
    end: date | None,
) -> None:
    account = await seed_account(raw, world.esco, plot="A2")
    if start is not None:
        await seed_link(raw, world.esco, world.customer, account, start=start, end=end)
    result = await create(client, payment_input(world, accountId=str(account)))
    assert codes(result) == [(["accountId"], "INVALID")]
    assert result["userErrors"][0]["message"] == (
        "The customer is not currently linked to this account."
    )
    assert await counts(raw) == (0, 0)


@pytest.mark.parametrize(
    ("role", "start", "end"),
    [
        ("owner", date(2024, 1, 1), None),
        ("occupier", TODAY, TODAY),  # a link of exactly today
    ],
)
async def test_any_current_link_will_do(
    client: httpx.AsyncClient,
    raw: asyncpg.Connection,
    world: World,
    role: str,
    start: date,
    end: date | None,
) -> None:
    account = await seed_account(raw, world.esco, plot="A2")
    await seed_link(raw, world.esco, world.customer, account, role=role, start=start, end=end)
    result = await create(client, payment_input(world, accountId=str(account)))
    assert result["userErrors"] == []


async def test_an_account_of_another_esco_is_not_linked(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    result = await create(client, payment_input(world, accountId=str(world.other_account)))
    assert codes(result) == [(["accountId"], "INVALID")]
    assert await counts(raw) == (0, 0)


@pytest.mark.parametrize(
    "scheduled_at",
    [
        "2025-03-09T23:59:59+00:00",  # yesterday in London (GMT in early March)
        "2025-03-10T00:30:00+02:00",  # = 2025-03-09 22:30 in London
        "2024-12-25T12:00:00+00:00",
    ],
)
async def test_scheduled_in_the_past_is_invalid(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World, scheduled_at: str
) -> None:
    result = await create(client, payment_input(world, scheduledAt=scheduled_at))
    assert codes(result) == [(["scheduledAt"], "INVALID")]
    assert await counts(raw) == (0, 0)


@pytest.mark.parametrize(
    "scheduled_at",
    [
        "2025-03-10T00:00:00+00:00",  # today, earlier than now: taken today
        "2025-03-09T23:30:00-01:00",  # = 2025-03-10 00:30 in London
        "2026-01-01T08:00:00+00:00",
    ],
)
async def test_scheduled_today_or_later_is_accepted(
    client: httpx.AsyncClient, world: World, scheduled_at: str
) -> None:
    result = await create(client, payment_input(world, scheduledAt=scheduled_at))
    assert result["userErrors"] == []


async def test_scheduled_without_an_offset_is_refused(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    # The DateTime scalar itself demands the offset (the service checks again).
    body = await gql(
        client, CREATE_PAYMENT, {"input": payment_input(world, scheduledAt="2025-03-20T09:30:00")}
    )
    assert body["errors"] and body["data"] is None
    assert await counts(raw) == (0, 0)


async def test_every_problem_is_reported_at_once(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    await raw.execute("UPDATE customers SET status = 'suspended' WHERE id = $1", world.customer)
    account = await seed_account(raw, world.esco, plot="A2", closed_on=date(2025, 1, 31))
    result = await create(
        client,
        payment_input(
            world,
            accountId=str(account),
            amountPence=0,
            idempotencyKey="",
            scheduledAt="2025-03-01T00:00:00+00:00",
        ),
    )
    assert sorted(codes(result)) == sorted(
        [
            (["idempotencyKey"], "INVALID"),
            (["amountPence"], "INVALID"),
            (["customerId"], "CUSTOMER_SUSPENDED"),
            (["accountId"], "INVALID"),
            (["accountId"], "INVALID"),
            (["scheduledAt"], "INVALID"),
        ]
    )
    assert await counts(raw) == (0, 0)


async def test_concurrent_creates_with_one_key_make_one_payment(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    for attempt in range(5):
        input = payment_input(world, idempotencyKey=f"race-{attempt}")
        one, two = await asyncio.gather(create(client, input), create(client, input))
        assert one["userErrors"] == two["userErrors"] == []
        assert one["payment"]["uuid"] == two["payment"]["uuid"]
    assert await counts(raw) == (5, 5)


async def _wait_for_lock_wait(database_url: str) -> None:
    """Until some backend of the test database waits on a lock."""
    watcher = await asyncpg.connect(direct_dsn(database_url))
    try:
        for _ in range(500):
            waiting = await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiting:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("nothing waited on a lock")
    finally:
        await watcher.close()


@pytest.mark.parametrize(("amount", "same"), [(2500, True), (9999, False)])
async def test_a_create_racing_an_uncommitted_one_waits_and_compares(
    client: httpx.AsyncClient,
    raw: asyncpg.Connection,
    database_url: str,
    world: World,
    amount: int,
    same: bool,
) -> None:
    """Deterministic race: another transaction has inserted the key but not committed.
    Our create passes its key check (it cannot see the row), blocks on the unique index
    in INSERT ... ON CONFLICT, and once the other commits answers from its row."""
    other = await asyncpg.connect(direct_dsn(database_url))
    try:
        tr = other.transaction()
        await tr.start()
        winner = uuid.uuid4()
        await other.execute(
            "INSERT INTO payments (id, esco_id, customer_id, account_id, amount_pence, "
            "description, idempotency_key) VALUES ($1, $2, $3, $4, $5, 'March bill', 'key-1')",
            winner,
            world.esco,
            world.customer,
            world.account,
            amount,
        )
        task = asyncio.create_task(create(client, payment_input(world)))
        await _wait_for_lock_wait(database_url)
        assert not task.done()
        await tr.commit()
        result = await task
    finally:
        await other.close()
    if same:
        assert result["userErrors"] == []
        assert result["payment"]["uuid"] == str(winner)
    else:
        assert codes(result) == [(["idempotencyKey"], "IDEMPOTENCY_KEY_REUSED")]
    # Only the winner's row, and no audit row from the loser.
    assert await counts(raw) == (1, 0)


# --- roles and scope ------------------------------------------------------------------


async def test_a_customer_pays_only_for_themselves(
    bare: httpx.AsyncClient, settings: Settings, raw: asyncpg.Connection, world: World
) -> None:
    me = bearer(settings, "customer", sub="ann", customer_id=str(world.customer))
    result = await call(bare, CREATE_PAYMENT, payment_input(world), me)
    assert result["userErrors"] == []
    assert await raw.fetchval("SELECT actor FROM audit_log") == f"customer:{world.customer}"

    flatmate = await seed_customer(raw, world.esco, "flat@example.com")
    await seed_link(raw, world.esco, flatmate, world.account, role="owner")
    result = await call(
        bare,
        CREATE_PAYMENT,
        payment_input(world, customerId=str(flatmate), idempotencyKey="k2"),
        me,
    )
    assert codes(result) == [(["customerId"], "NOT_FOUND")]

    # An account of their ESCO they were never linked to is out of their scope.
    stranger = await seed_account(raw, world.esco, plot="A2")
    result = await call(
        bare, CREATE_PAYMENT, payment_input(world, accountId=str(stranger), idempotencyKey="k3"), me
    )
    assert codes(result) == [(["accountId"], "NOT_FOUND")]

    # Moving a payment through its states is not a customer's business.
    payment = str(await insert_payment(raw, world, "created", "k4"))
    result = await call(
        bare, UPDATE_PAYMENT_STATUS, {"paymentId": payment, "status": "CANCELLED"}, me
    )
    assert codes(result) == [(None, "FORBIDDEN")]
    assert await counts(raw) == (2, 1)


async def test_an_operator_acts_only_in_their_escos(
    bare: httpx.AsyncClient, settings: Settings, raw: asyncpg.Connection, world: World
) -> None:
    operator = bearer(settings, "operator", sub="op", escos=[str(world.esco)])
    result = await call(
        bare,
        CREATE_PAYMENT,
        payment_input(
            world, customerId=str(world.other_customer), accountId=str(world.other_account)
        ),
        operator,
    )
    assert codes(result) == [(["customerId"], "NOT_FOUND")]
    theirs = str(await insert_payment(raw, world, "created", "x", other_esco=True))
    result = await call(
        bare, UPDATE_PAYMENT_STATUS, {"paymentId": theirs, "status": "PENDING"}, operator
    )
    assert codes(result) == [(["paymentId"], "NOT_FOUND")]
    assert await counts(raw) == (1, 0)

    created = await call(bare, CREATE_PAYMENT, payment_input(world), operator)
    assert created["userErrors"] == []
    moved = await call(
        bare,
        UPDATE_PAYMENT_STATUS,
        {"paymentId": created["payment"]["uuid"], "status": "PENDING"},
        operator,
    )
    assert moved["payment"]["status"] == "PENDING"
    assert await raw.fetchval("SELECT count(DISTINCT actor) FROM audit_log") == 1
    assert await raw.fetchval("SELECT min(actor) FROM audit_log") == "user:op"


async def test_a_partner_key_needs_the_payments_scope(
    bare: httpx.AsyncClient, engine: AsyncEngine, raw: asyncpg.Connection, world: World
) -> None:
    payment = str(await insert_payment(raw, world, "created", "k"))
    reader = await api_key(engine, world.esco, ["read", "usage:write"], "processor")
    assert codes(await call(bare, CREATE_PAYMENT, payment_input(world), reader)) == [
        (None, "FORBIDDEN")
    ]
    result = await call(
        bare, UPDATE_PAYMENT_STATUS, {"paymentId": payment, "status": "PENDING"}, reader
    )
    assert codes(result) == [(None, "FORBIDDEN")]

    processor = await api_key(engine, world.esco, ["payments:write"], "processor")
    result = await call(
        bare,
        UPDATE_PAYMENT_STATUS,
        {"paymentId": payment, "status": "PENDING", "providerReference": "pi_9"},
        processor,
    )
    assert result["userErrors"] == []
    # (A key without `read` reads nothing, so it asks for no related objects.)
    created = await call(bare, CREATE_PAYMENT_BARE, payment_input(world), processor)
    assert created["userErrors"] == [] and created["payment"]["amountPence"] == 2500
    elsewhere = await api_key(engine, world.other_esco, ["payments:write"], "processor")
    result = await call(
        bare, UPDATE_PAYMENT_STATUS, {"paymentId": payment, "status": "PROCESSING"}, elsewhere
    )
    assert codes(result) == [(["paymentId"], "NOT_FOUND")]
    actors = {r["actor"] for r in await raw.fetch("SELECT actor FROM audit_log")}
    assert len(actors) == 1 and actors.pop().startswith("partner:")
    assert await counts(raw) == (2, 2)


# --- updatePaymentStatus --------------------------------------------------------------


ALL_PAIRS = list(itertools.product(PaymentStatus, PaymentStatus))
ALLOWED = [(a, b) for a, b in ALL_PAIRS if b in TRANSITIONS[a]]
FORBIDDEN = [(a, b) for a, b in ALL_PAIRS if b not in TRANSITIONS[a]]


def test_the_state_machine_is_the_one_of_the_rules() -> None:
    S = PaymentStatus
    assert sorted((a.value, b.value) for a, b in ALLOWED) == sorted(
        [
            ("created", "pending"),
            ("created", "cancelled"),
            ("pending", "processing"),
            ("pending", "failed"),
            ("pending", "cancelled"),
            ("processing", "succeeded"),
            ("processing", "failed"),
        ]
    )
    assert len(FORBIDDEN) == 29
    assert (S.SUCCEEDED, S.CANCELLED) in FORBIDDEN


async def test_every_allowed_transition_is_made_and_audited(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    for old, new in ALLOWED:
        payment = await insert_payment(raw, world, old.value, f"{old.value}-{new.value}")
        result = await update(client, {"paymentId": str(payment), "status": new.name})
        assert result["userErrors"] == [], (old, new)
        assert result["payment"] == {
            "uuid": str(payment),
            "status": new.name,
            "providerReference": None,
        }
        assert await raw.fetchval("SELECT status::text FROM payments WHERE id = $1", payment) == (
            new.value
        )
        audit = await raw.fetchrow("SELECT * FROM audit_log WHERE entity_id = $1", str(payment))
        assert audit["action"] == "updatePaymentStatus"
        assert audit["entity"] == "payment"
        assert audit["esco_id"] == world.esco
        assert json.loads(audit["changes"]) == {
            "changed": {"status": {"old": old.value, "new": new.value}}
        }
    assert await counts(raw) == (len(ALLOWED), len(ALLOWED))


async def test_every_other_transition_is_refused(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    for old, new in FORBIDDEN:
        payment = await insert_payment(raw, world, old.value, f"{old.value}-{new.value}")
        result = await update(client, {"paymentId": str(payment), "status": new.name})
        assert result["payment"] is None
        assert codes(result) == [(["status"], "INVALID_STATUS_TRANSITION")], (old, new)
        assert await raw.fetchval("SELECT status::text FROM payments WHERE id = $1", payment) == (
            old.value
        )
    assert await counts(raw) == (len(FORBIDDEN), 0)


async def test_a_payment_walks_to_success_with_its_provider_reference(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    created = await create(client, payment_input(world))
    payment = created["payment"]["id"]  # the global id works too
    steps = [("PENDING", "pi_123"), ("PROCESSING", None), ("SUCCEEDED", "pi_123")]
    for status, reference in steps:
        input: dict[str, Any] = {"paymentId": payment, "status": status}
        if reference:
            input["providerReference"] = reference
        result = await update(client, input)
        assert result["userErrors"] == []
        assert result["payment"]["status"] == status
        assert result["payment"]["providerReference"] == "pi_123"
    audits = await raw.fetch("SELECT action, changes FROM audit_log ORDER BY created_at, action")
    changes = [json.loads(a["changes"]) for a in audits if a["action"] == "updatePaymentStatus"]
    assert changes == [
        {
            "changed": {
                "status": {"old": "created", "new": "pending"},
                "provider_reference": {"old": None, "new": "pi_123"},
            }
        },
        {"changed": {"status": {"old": "pending", "new": "processing"}}},
        {"changed": {"status": {"old": "processing", "new": "succeeded"}}},
    ]
    # A final payment goes nowhere.
    for status in ("FAILED", "CANCELLED", "PENDING"):
        result = await update(client, {"paymentId": payment, "status": status})
        assert codes(result) == [(["status"], "INVALID_STATUS_TRANSITION")]
    assert await counts(raw) == (1, 4)


async def test_provider_reference_rules(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    payment = str(await insert_payment(raw, world, "created", "k", reference="pi_1"))
    for reference, code in (("pi_2", "INVALID"), ("", "INVALID"), ("x" * 256, "INVALID")):
        result = await update(
            client, {"paymentId": payment, "status": "PENDING", "providerReference": reference}
        )
        assert codes(result) == [(["providerReference"], code)]
    # Both problems at once.
    result = await update(
        client, {"paymentId": payment, "status": "SUCCEEDED", "providerReference": "pi_2"}
    )
    assert sorted(codes(result)) == [
        (["providerReference"], "INVALID"),
        (["status"], "INVALID_STATUS_TRANSITION"),
    ]
    assert await raw.fetchval("SELECT provider_reference FROM payments") == "pi_1"
    assert await counts(raw) == (1, 0)


@pytest.mark.parametrize(
    "payment_id", [str(uuid.uuid4()), "nope", to_global_id("Customer", uuid.uuid4())]
)
async def test_unknown_payment_is_not_found(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World, payment_id: str
) -> None:
    result = await update(client, {"paymentId": payment_id, "status": "PENDING"})
    assert codes(result) == [(["paymentId"], "NOT_FOUND")]
    assert await counts(raw) == (0, 0)


async def test_concurrent_updates_serialise(
    client: httpx.AsyncClient, raw: asyncpg.Connection, world: World
) -> None:
    """Two requests move the same CREATED payment to PENDING at once: one wins, the
    other sees PENDING and is refused (without the row lock both would succeed)."""
    for attempt in range(5):
        payment = str(await insert_payment(raw, world, "created", f"k{attempt}"))
        input = {"paymentId": payment, "status": "PENDING"}
        results = await asyncio.gather(update(client, input), update(client, input))
        outcomes = sorted(codes(r) for r in results)
        assert outcomes == [[], [(["status"], "INVALID_STATUS_TRANSITION")]]
    assert await counts(raw) == (5, 5)


async def test_an_update_waits_for_the_row_lock_and_rechecks(
    client: httpx.AsyncClient, raw: asyncpg.Connection, database_url: str, world: World
) -> None:
    """Another transaction has cancelled the payment but not committed. Our move to
    PENDING waits on SELECT ... FOR UPDATE_PAYMENT_STATUS, then sees CANCELLED and is refused."""
    payment = await insert_payment(raw, world, "created", "k")
    other = await asyncpg.connect(direct_dsn(database_url))
    try:
        tr = other.transaction()
        await tr.start()
        await other.execute("UPDATE payments SET status = 'cancelled' WHERE id = $1", payment)
        task = asyncio.create_task(update(client, {"paymentId": str(payment), "status": "PENDING"}))
        await _wait_for_lock_wait(database_url)
        await tr.commit()
        result = await task
    finally:
        await other.close()
    assert codes(result) == [(["status"], "INVALID_STATUS_TRANSITION")]
    assert await raw.fetchval("SELECT status::text FROM payments") == "cancelled"
    assert await counts(raw) == (1, 0)
