"""Customer and account mutations through the GraphQL API: createCustomer,
updateCustomer, setCustomerStatus, openAccount, closeAccount, addCustomerToAccount,
endCustomerAccount, inviteCustomer, acceptInvite.

For speed the module shares one app and one connection (tables emptied once): every
test seeds an ESCO of its own (unique code) and counts rows by that ESCO, so what a
failed mutation leaves behind is measured exactly.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from flows_graphql.auth.viewer import Viewer
from flows_graphql.config import Settings
from flows_graphql.db.models.enums import CustomerStatus
from flows_graphql.services import customers as service
from flows_graphql.services.problems import ErrorCode, Rejected
from flows_graphql.services.tx import Tx
from flows_graphql.types.node import to_global_id
from tests.support.api import ACTOR, TODAY, Error, mutate, ok, refusal, unchanged
from tests.support.factories import World, module_world
from tests.support.seed import (
    counts,
    data,
    seed_account,
    seed_customer,
    seed_esco,
    seed_link,
    seed_property,
    seed_terms,
)

# Tenant tables a customer/account mutation may write, counted per ESCO.
TABLES = (
    "customers",
    "accounts",
    "customer_accounts",
    "customer_events",
    "customer_invites",
    "account_events",
    "account_audit_logs",
    "audit_log",
)


@pytest.fixture(scope="module")
async def world(settings: Settings, database_url: str) -> AsyncIterator[World]:
    async with module_world(settings, database_url) as w:
        yield w


# What each payload holds besides userErrors.
ENTITY = {
    "createCustomer": "customer { uuid }",
    "updateCustomer": "customer { uuid }",
    "setCustomerStatus": "customer { uuid }",
    "openAccount": "account { uuid }",
    "closeAccount": "account { uuid }",
    "addCustomerToAccount": "customerAccount { id }",
    "endCustomerAccount": "customerAccount { id }",
    "inviteCustomer": "customerInvite { token } customer { uuid }",
    "acceptInvite": "customerInvite { token } customer { uuid }",
}


async def refused(
    world: World,
    esco: uuid.UUID,
    name: str,
    input: dict[str, Any],
) -> list[Error]:
    """Run a mutation that must be refused; asserts it returned no entity and wrote
    nothing in `esco`."""
    async with unchanged(lambda: counts(world.conn, TABLES, esco)):
        payload = await mutate(world.client, name, input, ENTITY[name])
    return refusal(payload)


async def customer_events(conn: asyncpg.Connection, customer: uuid.UUID) -> list[Any]:
    return await conn.fetch(
        "SELECT event_type, actor, data FROM customer_events WHERE customer_id = $1 "
        "ORDER BY created_at, id",
        customer,
    )


async def account_events(conn: asyncpg.Connection, account: uuid.UUID) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        "SELECT event_type::text, actor, notes FROM account_events WHERE account_id = $1",
        account,
    )
    assert all(r["actor"] == ACTOR for r in rows)
    return sorted((r["event_type"], r["notes"] or "") for r in rows)


async def account_audits(conn: asyncpg.Connection, account: uuid.UUID) -> list[Any]:
    rows = await conn.fetch(
        "SELECT action, actor, changes FROM account_audit_logs WHERE account_id = $1 "
        "ORDER BY created_at, id",
        account,
    )
    assert all(r["actor"] == ACTOR for r in rows)
    return [(r["action"], data(r["changes"])) for r in rows]


CUSTOMER = "customer { id uuid email fullName status esco { uuid } }"

# --- createCustomer ----------------------------------------------------------------------


async def test_create_customer(world: World) -> None:
    esco = await seed_esco(world.conn)
    payload = ok(
        await mutate(
            world.client,
            "createCustomer",
            {"escoId": str(esco), "email": "  Ada.Lovelace@Example.COM ", "fullName": " Ada "},
            CUSTOMER,
        )
    )
    customer = payload["customer"]
    assert customer["email"] == "ada.lovelace@example.com"
    assert customer["fullName"] == "Ada"
    assert customer["status"] == "ACTIVE"
    assert customer["esco"]["uuid"] == str(esco)
    row = await world.conn.fetchrow(
        "SELECT * FROM customers WHERE id = $1", uuid.UUID(customer["uuid"])
    )
    assert (row["email"], row["full_name"], row["status"], row["esco_id"]) == (
        "ada.lovelace@example.com",
        "Ada",
        "active",
        esco,
    )
    events = await customer_events(world.conn, row["id"])
    assert [(e["event_type"], e["actor"], data(e["data"])) for e in events] == [
        (
            "created",
            ACTOR,
            {"email": "ada.lovelace@example.com", "fullName": "Ada", "status": "active"},
        )
    ]
    # A status can be given; the same e-mail in another ESCO is fine.
    other = await seed_esco(world.conn)
    payload = ok(
        await mutate(
            world.client,
            "createCustomer",
            {"escoId": str(other), "email": "ADA.LOVELACE@example.com", "status": "SUSPENDED"},
            CUSTOMER,
        )
    )
    assert payload["customer"]["status"] == "SUSPENDED"
    assert payload["customer"]["fullName"] is None


async def test_create_customer_errors(world: World) -> None:
    esco = await seed_esco(world.conn)
    await seed_customer(world.conn, esco, "taken@example.com")
    create = "createCustomer"
    assert await refused(
        world, esco, create, {"escoId": str(esco), "email": "TAKEN@example.com"}
    ) == [(["email"], "DUPLICATE")]
    for bad in ("no-at-sign", "two@@example.com", "a b@example.com", "x@nodot", ""):
        assert await refused(world, esco, create, {"escoId": str(esco), "email": bad}) == [
            (["email"], "INVALID")
        ], bad
    assert await refused(
        world, esco, create, {"escoId": str(uuid.uuid4()), "email": "new@example.com"}
    ) == [(["escoId"], "NOT_FOUND")]
    # Every problem of the input at once.
    assert await refused(
        world, esco, create, {"escoId": "garbage", "email": "bad", "fullName": "x" * 201}
    ) == [(["escoId"], "NOT_FOUND"), (["email"], "INVALID"), (["fullName"], "INVALID")]
    assert await refused(
        world,
        esco,
        create,
        {"escoId": str(esco), "email": "taken@example.com", "fullName": "x" * 201},
    ) == [(["email"], "DUPLICATE"), (["fullName"], "INVALID")]


# --- updateCustomer / setCustomerStatus ----------------------------------------------------


async def test_update_customer(world: World) -> None:
    esco = await seed_esco(world.conn)
    customer = await seed_customer(world.conn, esco, "old@example.com")
    await world.conn.execute("UPDATE customers SET full_name = 'Old Name' WHERE id = $1", customer)
    payload = ok(
        await mutate(
            world.client,
            "updateCustomer",
            {"customerId": str(customer), "email": "New@Example.com", "fullName": "New Name"},
            CUSTOMER,
        )
    )
    assert (payload["customer"]["email"], payload["customer"]["fullName"]) == (
        "new@example.com",
        "New Name",
    )
    row = await world.conn.fetchrow(
        "SELECT email, full_name FROM customers WHERE id = $1", customer
    )
    assert tuple(row) == ("new@example.com", "New Name")
    # Left-out fields stay; an explicit null name clears it; the global id works too.
    payload = ok(
        await mutate(
            world.client,
            "updateCustomer",
            {"customerId": payload["customer"]["id"], "fullName": None},
            CUSTOMER,
        )
    )
    assert (payload["customer"]["email"], payload["customer"]["fullName"]) == (
        "new@example.com",
        None,
    )
    # Changing nothing (same e-mail in another case) writes nothing.
    before = await counts(world.conn, TABLES, esco)
    payload = ok(
        await mutate(
            world.client,
            "updateCustomer",
            {"customerId": str(customer), "email": "NEW@example.com"},
            CUSTOMER,
        )
    )
    assert payload["customer"]["email"] == "new@example.com"
    assert await counts(world.conn, TABLES, esco) == before
    events = await customer_events(world.conn, customer)
    assert [(e["event_type"], e["actor"], data(e["data"])) for e in events] == [
        (
            "updated",
            ACTOR,
            {
                "changed": {
                    "email": {"old": "old@example.com", "new": "new@example.com"},
                    "fullName": {"old": "Old Name", "new": "New Name"},
                }
            },
        ),
        ("updated", ACTOR, {"changed": {"fullName": {"old": "New Name", "new": None}}}),
    ]


async def test_update_customer_errors(world: World) -> None:
    esco = await seed_esco(world.conn)
    customer = await seed_customer(world.conn, esco, "me@example.com")
    await seed_customer(world.conn, esco, "other@example.com")
    other_esco = await seed_esco(world.conn)
    stranger = await seed_customer(world.conn, other_esco)
    update = "updateCustomer"
    cid = str(customer)
    assert await refused(
        world, esco, update, {"customerId": cid, "email": "OTHER@example.com"}
    ) == [(["email"], "DUPLICATE")]
    assert await refused(world, esco, update, {"customerId": cid, "email": None}) == [
        (["email"], "INVALID")
    ]
    assert await refused(
        world, esco, update, {"customerId": cid, "email": "nope", "fullName": "y" * 300}
    ) == [(["email"], "INVALID"), (["fullName"], "INVALID")]
    assert await refused(
        world, esco, update, {"customerId": str(uuid.uuid4()), "fullName": "A"}
    ) == [(["customerId"], "NOT_FOUND")]
    # A global id of another type names no customer.
    assert await refused(world, esco, update, {"customerId": "RXNjbzp4", "fullName": "A"}) == [
        (["customerId"], "NOT_FOUND")
    ]
    # Another ESCO's e-mail is no duplicate.
    ok(
        await mutate(
            world.client, update, {"customerId": str(stranger), "email": "me@example.com"}, CUSTOMER
        )
    )


async def test_set_customer_status(world: World) -> None:
    esco = await seed_esco(world.conn)
    customer = await seed_customer(world.conn, esco)
    payload = ok(
        await mutate(
            world.client,
            "setCustomerStatus",
            {"customerId": str(customer), "status": "SUSPENDED"},
            CUSTOMER,
        )
    )
    assert payload["customer"]["status"] == "SUSPENDED"
    assert await world.conn.fetchval("SELECT status FROM customers WHERE id = $1", customer) == (
        "suspended"
    )
    # The same status again is a no-op: no write, no event.
    before = await counts(world.conn, TABLES, esco)
    payload = ok(
        await mutate(
            world.client,
            "setCustomerStatus",
            {"customerId": str(customer), "status": "SUSPENDED"},
            CUSTOMER,
        )
    )
    assert payload["customer"]["status"] == "SUSPENDED"
    assert await counts(world.conn, TABLES, esco) == before
    ok(
        await mutate(
            world.client,
            "setCustomerStatus",
            {"customerId": str(customer), "status": "INACTIVE"},
            CUSTOMER,
        )
    )
    events = await customer_events(world.conn, customer)
    assert [(e["event_type"], e["actor"], data(e["data"])) for e in events] == [
        ("status_changed", ACTOR, {"changed": {"status": {"old": "active", "new": "suspended"}}}),
        ("status_changed", ACTOR, {"changed": {"status": {"old": "suspended", "new": "inactive"}}}),
    ]
    assert await refused(
        world, esco, "setCustomerStatus", {"customerId": str(uuid.uuid4()), "status": "ACTIVE"}
    ) == [(["customerId"], "NOT_FOUND")]


# --- openAccount / closeAccount ----------------------------------------------------------

ACCOUNT = (
    "account { id uuid accountNumber status openedOn closedOn property { uuid } "
    "contractTerms { uuid } customers { customer { uuid } role startDate endDate } }"
)


async def test_open_account(world: World) -> None:
    esco = await seed_esco(world.conn)
    prop = await seed_property(world.conn, esco)
    terms = await seed_terms(world.conn, allowed_for=esco)
    payload = ok(
        await mutate(
            world.client,
            "openAccount",
            {"propertyId": str(prop), "openedOn": "2025-02-01", "contractTermsId": str(terms)},
            ACCOUNT,
        )
    )
    account = payload["account"]
    assert account["status"] == "ACTIVE"
    assert (account["openedOn"], account["closedOn"]) == ("2025-02-01", None)
    assert account["property"]["uuid"] == str(prop)
    assert account["contractTerms"]["uuid"] == str(terms)
    assert account["customers"] == []
    account_id = uuid.UUID(account["uuid"])
    row = await world.conn.fetchrow("SELECT * FROM accounts WHERE id = $1", account_id)
    assert (row["esco_id"], row["property_id"], row["status"], row["contract_terms_id"]) == (
        esco,
        prop,
        "active",
        terms,
    )
    assert account["accountNumber"] == str(row["account_number"])
    assert await account_events(world.conn, account_id) == [("opened", "")]
    assert await account_audits(world.conn, account_id) == [
        (
            "openAccount",
            {
                "changed": {
                    "accountNumber": {"old": None, "new": row["account_number"]},
                    "propertyId": {"old": None, "new": str(prop)},
                    "status": {"old": None, "new": "active"},
                    "contractTermsId": {"old": None, "new": str(terms)},
                    "openedOn": {"old": None, "new": "2025-02-01"},
                }
            },
        )
    ]
    # Without terms (the global id of the property works too).
    prop2 = await seed_property(world.conn, esco)
    payload = ok(
        await mutate(
            world.client,
            "openAccount",
            {"propertyId": to_global_id("Property", prop2), "openedOn": "2025-03-01"},
            ACCOUNT,
        )
    )
    assert payload["account"]["contractTerms"] is None


async def test_open_account_errors(world: World) -> None:
    esco = await seed_esco(world.conn)
    prop = await seed_property(world.conn, esco)
    other_esco = await seed_esco(world.conn)
    elsewhere = await seed_property(world.conn, other_esco)
    other_terms = await seed_terms(world.conn, allowed_for=other_esco)
    unallowed = await seed_terms(world.conn, allowed_for=None)
    open_ = "openAccount"
    p = str(prop)
    assert await refused(
        world, esco, open_, {"propertyId": str(uuid.uuid4()), "openedOn": "2025-01-01"}
    ) == [(["propertyId"], "NOT_FOUND")]
    assert await refused(
        world, esco, open_, {"propertyId": "nonsense", "openedOn": "2025-01-01"}
    ) == [(["propertyId"], "NOT_FOUND")]
    for terms in (other_terms, unallowed):
        assert await refused(
            world,
            esco,
            open_,
            {"propertyId": p, "openedOn": "2025-01-01", "contractTermsId": str(terms)},
        ) == [(["contractTermsId"], "TERMS_NOT_ALLOWED")]
    assert await refused(
        world,
        esco,
        open_,
        {"propertyId": p, "openedOn": "2025-01-01", "contractTermsId": str(uuid.uuid4())},
    ) == [(["contractTermsId"], "NOT_FOUND")]
    # A property of an ESCO is found only in it; terms of the other ESCO work there.
    ok(
        await mutate(
            world.client,
            open_,
            {
                "propertyId": str(elsewhere),
                "openedOn": "2025-01-01",
                "contractTermsId": str(other_terms),
            },
            "account { uuid }",
        )
    )
    # An active account blocks a second one.
    ok(
        await mutate(
            world.client, open_, {"propertyId": p, "openedOn": "2024-01-01"}, "account { uuid }"
        )
    )
    assert await refused(world, esco, open_, {"propertyId": p, "openedOn": "2025-01-01"}) == [
        (["propertyId"], "DUPLICATE")
    ]
    # Once closed, a new account may open only after the closing day.
    await world.conn.execute(
        "UPDATE accounts SET status = 'closed', closed_on = '2024-06-30' WHERE property_id = $1",
        prop,
    )
    for day in ("2024-03-01", "2024-06-30"):
        assert await refused(world, esco, open_, {"propertyId": p, "openedOn": day}) == [
            (["openedOn"], "INVALID")
        ]
    payload = ok(
        await mutate(world.client, open_, {"propertyId": p, "openedOn": "2024-07-01"}, ACCOUNT)
    )
    assert payload["account"]["openedOn"] == "2024-07-01"


async def test_close_account_ends_links(world: World) -> None:
    esco = await seed_esco(world.conn)
    account = await seed_account(world.conn, esco, opened_on=date(2024, 1, 1))
    tenant, earlier, owner = [await seed_customer(world.conn, esco) for _ in range(3)]
    await seed_link(
        world.conn, esco, earlier, account, "occupier", date(2024, 1, 1), date(2024, 5, 31)
    )
    await seed_link(world.conn, esco, tenant, account, "occupier", date(2024, 6, 1))
    await seed_link(world.conn, esco, owner, account, "owner", date(2024, 1, 1))
    payload = ok(
        await mutate(
            world.client,
            "closeAccount",
            {"accountId": str(account), "closedOn": "2025-02-28"},
            ACCOUNT,
        )
    )
    closed = payload["account"]
    assert (closed["status"], closed["closedOn"]) == ("CLOSED", "2025-02-28")
    links = {
        (c["customer"]["uuid"], c["role"]): (c["startDate"], c["endDate"])
        for c in closed["customers"]
    }
    assert links == {
        (str(earlier), "OCCUPIER"): ("2024-01-01", "2024-05-31"),
        (str(tenant), "OCCUPIER"): ("2024-06-01", "2025-02-28"),
        (str(owner), "OWNER"): ("2024-01-01", "2025-02-28"),
    }
    row = await world.conn.fetchrow("SELECT status, closed_on FROM accounts WHERE id = $1", account)
    assert tuple(row) == ("closed", date(2025, 2, 28))
    ends = await world.conn.fetch(
        "SELECT customer_id, end_date FROM customer_accounts WHERE account_id = $1", account
    )
    assert {r["customer_id"]: r["end_date"] for r in ends} == {
        earlier: date(2024, 5, 31),
        tenant: date(2025, 2, 28),
        owner: date(2025, 2, 28),
    }
    events = await account_events(world.conn, account)
    assert [e for e, _ in events] == ["closed", "occupancy_ended", "owner_removed"]
    assert str(tenant) in events[1][1] and str(owner) in events[2][1]
    audits = await account_audits(world.conn, account)
    assert audits == [
        (
            "closeAccount",
            {
                "changed": {
                    "status": {"old": "active", "new": "closed"},
                    "closedOn": {"old": None, "new": "2025-02-28"},
                },
                "endedLinks": [
                    {
                        "customerId": str(owner),
                        "role": "owner",
                        "startDate": "2024-01-01",
                        "endDate": "2025-02-28",
                    },
                    {
                        "customerId": str(tenant),
                        "role": "occupier",
                        "startDate": "2024-06-01",
                        "endDate": "2025-02-28",
                    },
                ],
            },
        )
    ]
    # Closing again is refused.
    assert await refused(
        world, esco, "closeAccount", {"accountId": str(account), "closedOn": "2025-03-01"}
    ) == [(["accountId"], "INVALID")]


async def test_close_account_errors(world: World) -> None:
    esco = await seed_esco(world.conn)
    account = await seed_account(world.conn, esco, opened_on=date(2024, 6, 1))
    customer = await seed_customer(world.conn, esco)
    close = "closeAccount"
    a = str(account)
    assert await refused(
        world, esco, close, {"accountId": str(uuid.uuid4()), "closedOn": "2025-01-01"}
    ) == [(["accountId"], "NOT_FOUND")]
    assert await refused(world, esco, close, {"accountId": a, "closedOn": "2024-05-31"}) == [
        (["closedOn"], "INVALID")
    ]
    # Not in the future of the billing clock (TODAY is 2025-03-10).
    assert await refused(world, esco, close, {"accountId": a, "closedOn": "2025-03-11"}) == [
        (["closedOn"], "INVALID")
    ]
    # A link starting after the closing day, or already ended after it.
    await seed_link(world.conn, esco, customer, account, "occupier", date(2025, 1, 1))
    assert await refused(world, esco, close, {"accountId": a, "closedOn": "2024-12-31"}) == [
        (["closedOn"], "INVALID")
    ]
    await world.conn.execute(
        "UPDATE customer_accounts SET end_date = '2025-02-01' WHERE account_id = $1", account
    )
    assert await refused(world, esco, close, {"accountId": a, "closedOn": "2025-01-15"}) == [
        (["closedOn"], "INVALID")
    ]
    # Closing on the opening day and on today are fine.
    ok(await mutate(world.client, close, {"accountId": a, "closedOn": "2025-03-10"}, ACCOUNT))
    other = await seed_account(world.conn, esco, opened_on=date(2024, 6, 1))
    ok(
        await mutate(
            world.client, close, {"accountId": str(other), "closedOn": "2024-06-01"}, ACCOUNT
        )
    )


# --- addCustomerToAccount / endCustomerAccount --------------------------------------------

LINK = "customerAccount { id role startDate endDate customer { uuid } account { uuid } }"


async def test_add_customer_to_account(world: World) -> None:
    esco = await seed_esco(world.conn)
    account = await seed_account(world.conn, esco, opened_on=date(2024, 1, 1))
    occupier = await seed_customer(world.conn, esco, status="suspended")
    owner = await seed_customer(world.conn, esco)
    payload = ok(
        await mutate(
            world.client,
            "addCustomerToAccount",
            {
                "customerId": str(occupier),
                "accountId": str(account),
                "role": "OCCUPIER",
                "startDate": "2024-01-01",
            },
            LINK,
        )
    )
    link = payload["customerAccount"]
    assert (link["role"], link["startDate"], link["endDate"]) == ("OCCUPIER", "2024-01-01", None)
    assert (link["customer"]["uuid"], link["account"]["uuid"]) == (str(occupier), str(account))
    ok(
        await mutate(
            world.client,
            "addCustomerToAccount",
            {
                "customerId": str(owner),
                "accountId": str(account),
                "role": "OWNER",
                "startDate": "2024-02-01",
            },
            LINK,
        )
    )
    rows = await world.conn.fetch(
        "SELECT customer_id, role::text, start_date, end_date, esco_id FROM customer_accounts "
        "WHERE account_id = $1 ORDER BY start_date",
        account,
    )
    assert [tuple(r) for r in rows] == [
        (occupier, "occupier", date(2024, 1, 1), None, esco),
        (owner, "owner", date(2024, 2, 1), None, esco),
    ]
    events = await account_events(world.conn, account)
    assert [e for e, _ in events] == ["occupancy_started", "owner_added"]
    assert str(occupier) in events[0][1] and str(owner) in events[1][1]
    assert await account_audits(world.conn, account) == [
        (
            "addCustomerToAccount",
            {
                "link": {
                    "customerId": str(occupier),
                    "role": "occupier",
                    "startDate": "2024-01-01",
                },
                "changed": {"startDate": {"old": None, "new": "2024-01-01"}},
            },
        ),
        (
            "addCustomerToAccount",
            {
                "link": {"customerId": str(owner), "role": "owner", "startDate": "2024-02-01"},
                "changed": {"startDate": {"old": None, "new": "2024-02-01"}},
            },
        ),
    ]
    # The node id of the link resolves.
    node = await world.client.post(
        "/graphql",
        json={
            "query": "query($id: ID!) { node(id: $id) { ... on CustomerAccount { startDate } } }",
            "variables": {"id": link["id"]},
        },
    )
    assert node.json()["data"]["node"] == {"startDate": "2024-01-01"}


async def test_add_customer_to_account_errors(world: World) -> None:
    esco = await seed_esco(world.conn)
    account = await seed_account(world.conn, esco, opened_on=date(2024, 1, 1))
    closed = await seed_account(
        world.conn, esco, opened_on=date(2024, 1, 1), closed_on=date(2024, 12, 31)
    )
    customer = await seed_customer(world.conn, esco)
    inactive = await seed_customer(world.conn, esco, status="inactive")
    other_esco = await seed_esco(world.conn)
    foreign_account = await seed_account(world.conn, other_esco)
    add = "addCustomerToAccount"

    def link(**kw: str) -> dict[str, str]:
        base = {
            "customerId": str(customer),
            "accountId": str(account),
            "role": "OCCUPIER",
            "startDate": "2024-03-01",
        }
        return {**base, **kw}

    assert await refused(world, esco, add, link(customerId=str(uuid.uuid4()))) == [
        (["customerId"], "NOT_FOUND")
    ]
    assert await refused(world, esco, add, link(accountId=str(uuid.uuid4()))) == [
        (["accountId"], "NOT_FOUND")
    ]
    # Another ESCO's account looks missing (and nothing is written there either).
    assert await refused(world, other_esco, add, link(accountId=str(foreign_account))) == [
        (["accountId"], "NOT_FOUND")
    ]
    assert await refused(world, esco, add, link(accountId=str(closed))) == [
        (["accountId"], "INVALID")
    ]
    assert await refused(world, esco, add, link(startDate="2023-12-31")) == [
        (["startDate"], "INVALID")
    ]
    assert await refused(world, esco, add, link(customerId=str(inactive))) == [
        (["customerId"], "INVALID")
    ]
    assert await refused(
        world,
        esco,
        add,
        link(customerId=str(uuid.uuid4()), accountId="bad", startDate="2020-01-01"),
    ) == [(["customerId"], "NOT_FOUND"), (["accountId"], "NOT_FOUND")]

    # The same link twice is a DUPLICATE.
    ok(await mutate(world.client, add, link(), LINK))
    assert await refused(world, esco, add, link()) == [(["startDate"], "DUPLICATE")]
    ok(await mutate(world.client, add, link(role="OWNER"), LINK))
    assert await refused(world, esco, add, link(role="OWNER")) == [(["startDate"], "DUPLICATE")]
    assert await refused(world, esco, add, link(role="OWNER", startDate="2024-06-01")) == [
        (["startDate"], "DUPLICATE")
    ]


async def test_occupancy_overlap(world: World) -> None:
    esco = await seed_esco(world.conn)
    account = await seed_account(world.conn, esco, opened_on=date(2024, 1, 1))
    first, second = [await seed_customer(world.conn, esco) for _ in range(2)]
    add = "addCustomerToAccount"

    def occupy(customer: uuid.UUID, start: str) -> dict[str, str]:
        return {
            "customerId": str(customer),
            "accountId": str(account),
            "role": "OCCUPIER",
            "startDate": start,
        }

    ok(await mutate(world.client, add, occupy(first, "2024-03-01"), LINK))
    # A current occupancy overlaps any later start, and an earlier one (open-ended).
    for start in ("2024-03-01", "2024-09-01", "2024-01-01"):
        assert await refused(world, esco, add, occupy(second, start)) == [
            (["startDate"], "OCCUPANCY_OVERLAP")
        ], start
    # Owners may overlap occupiers and each other.
    ok(await mutate(world.client, add, {**occupy(second, "2024-04-01"), "role": "OWNER"}, LINK))
    # Once the first occupancy has ended (inclusive), the next may start the day after.
    ok(
        await mutate(
            world.client,
            "endCustomerAccount",
            {
                "customerId": str(first),
                "accountId": str(account),
                "role": "OCCUPIER",
                "endDate": "2024-08-31",
            },
            LINK,
        )
    )
    assert await refused(world, esco, add, occupy(second, "2024-08-31")) == [
        (["startDate"], "OCCUPANCY_OVERLAP")
    ]
    ok(await mutate(world.client, add, occupy(second, "2024-09-01"), LINK))
    assert (
        await world.conn.fetchval(
            "SELECT count(*) FROM customer_accounts WHERE account_id = $1 AND role = 'occupier'",
            account,
        )
        == 2
    )


async def test_end_customer_account(world: World) -> None:
    esco = await seed_esco(world.conn)
    account = await seed_account(world.conn, esco, opened_on=date(2024, 1, 1))
    customer = await seed_customer(world.conn, esco)
    await seed_link(
        world.conn, esco, customer, account, "owner", date(2024, 1, 1), date(2024, 3, 31)
    )
    await seed_link(world.conn, esco, customer, account, "owner", date(2024, 6, 1))
    await seed_link(world.conn, esco, customer, account, "occupier", date(2024, 1, 1))
    end = "endCustomerAccount"
    base = {"customerId": str(customer), "accountId": str(account)}
    # Identified by its start date...
    payload = ok(
        await mutate(
            world.client,
            end,
            {**base, "role": "OCCUPIER", "startDate": "2024-01-01", "endDate": "2025-01-31"},
            LINK,
        )
    )
    assert (payload["customerAccount"]["startDate"], payload["customerAccount"]["endDate"]) == (
        "2024-01-01",
        "2025-01-31",
    )
    # ...or, without one, the current link in that role (an end on the start day is fine).
    payload = ok(
        await mutate(world.client, end, {**base, "role": "OWNER", "endDate": "2024-06-01"}, LINK)
    )
    assert (payload["customerAccount"]["startDate"], payload["customerAccount"]["endDate"]) == (
        "2024-06-01",
        "2024-06-01",
    )
    rows = await world.conn.fetch(
        "SELECT role::text, start_date, end_date FROM customer_accounts WHERE account_id = $1 "
        "ORDER BY role, start_date",
        account,
    )
    assert [tuple(r) for r in rows] == [
        ("occupier", date(2024, 1, 1), date(2025, 1, 31)),
        ("owner", date(2024, 1, 1), date(2024, 3, 31)),
        ("owner", date(2024, 6, 1), date(2024, 6, 1)),
    ]
    assert [e for e, _ in await account_events(world.conn, account)] == [
        "occupancy_ended",
        "owner_removed",
    ]
    assert await account_audits(world.conn, account) == [
        (
            "endCustomerAccount",
            {
                "link": {
                    "customerId": str(customer),
                    "role": "occupier",
                    "startDate": "2024-01-01",
                },
                "changed": {"endDate": {"old": None, "new": "2025-01-31"}},
            },
        ),
        (
            "endCustomerAccount",
            {
                "link": {"customerId": str(customer), "role": "owner", "startDate": "2024-06-01"},
                "changed": {"endDate": {"old": None, "new": "2024-06-01"}},
            },
        ),
    ]


async def test_end_customer_account_errors(world: World) -> None:
    esco = await seed_esco(world.conn)
    account = await seed_account(world.conn, esco, opened_on=date(2024, 1, 1))
    customer = await seed_customer(world.conn, esco)
    stranger = await seed_customer(world.conn, await seed_esco(world.conn))
    await seed_link(
        world.conn, esco, customer, account, "owner", date(2024, 1, 1), date(2024, 3, 31)
    )
    await seed_link(world.conn, esco, customer, account, "occupier", date(2024, 2, 1))
    end = "endCustomerAccount"

    def ending(**kw: str) -> dict[str, str]:
        base = {
            "customerId": str(customer),
            "accountId": str(account),
            "role": "OCCUPIER",
            "endDate": "2024-12-31",
        }
        return {**base, **kw}

    assert await refused(world, esco, end, ending(customerId=str(uuid.uuid4()))) == [
        (["customerId"], "NOT_FOUND")
    ]
    assert await refused(world, esco, end, ending(accountId=str(uuid.uuid4()))) == [
        (["accountId"], "NOT_FOUND")
    ]
    assert await refused(world, esco, end, ending(customerId=str(stranger))) == [
        (["accountId"], "NOT_FOUND")
    ]
    assert await refused(world, esco, end, ending(startDate="2024-02-02")) == [
        (["startDate"], "NOT_FOUND")
    ]
    assert await refused(world, esco, end, ending(endDate="2024-01-31")) == [
        (["endDate"], "INVALID")
    ]
    # Already ended, by start date or as "the current owner link".
    assert await refused(world, esco, end, ending(role="OWNER", startDate="2024-01-01")) == [
        (["startDate"], "INVALID")
    ]
    assert await refused(world, esco, end, ending(role="OWNER")) == [(["role"], "INVALID")]
    other = await seed_account(world.conn, esco)
    assert await refused(world, esco, end, ending(accountId=str(other))) == [
        (["role"], "NOT_FOUND")
    ]


# --- inviteCustomer / acceptInvite ----------------------------------------------------------

INVITE = "customerInvite { id token inviteUrl expiresAt acceptedAt status } customer { uuid }"


async def test_invite_customer(world: World) -> None:
    esco = await seed_esco(world.conn, app_url="https://app.example.org/flows/")
    customer = await seed_customer(world.conn, esco)
    payload = ok(
        await mutate(world.client, "inviteCustomer", {"customerId": str(customer)}, INVITE)
    )
    invite = payload["customerInvite"]
    assert payload["customer"]["uuid"] == str(customer)
    token = uuid.UUID(invite["token"])
    assert invite["inviteUrl"] == f"https://app.example.org/flows/invite/{token}"
    assert invite["status"] == "PENDING" and invite["acceptedAt"] is None
    row = await world.conn.fetchrow(
        "SELECT esco_id, customer_id, invite_url, expires_at, created_at FROM customer_invites "
        "WHERE token = $1",
        token,
    )
    assert (row["esco_id"], row["customer_id"], row["invite_url"]) == (
        esco,
        customer,
        invite["inviteUrl"],
    )
    assert row["expires_at"] - row["created_at"] == timedelta(days=7)
    assert datetime.fromisoformat(invite["expiresAt"]) == row["expires_at"]
    events = await customer_events(world.conn, customer)
    assert [(e["event_type"], e["actor"]) for e in events] == [("invited", ACTOR)]
    assert data(events[0]["data"]) == {"expiresAt": row["expires_at"].isoformat()}

    # An app URL without a trailing slash; an explicit expiry.
    esco2 = await seed_esco(world.conn, app_url="http://localhost:3000")
    customer2 = await seed_customer(world.conn, esco2)
    expires = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    payload = ok(
        await mutate(
            world.client,
            "inviteCustomer",
            {"customerId": str(customer2), "expiresAt": expires.isoformat()},
            INVITE,
        )
    )
    invite = payload["customerInvite"]
    assert invite["inviteUrl"] == f"http://localhost:3000/invite/{invite['token']}"
    assert datetime.fromisoformat(invite["expiresAt"]) == expires


async def test_invite_customer_errors(world: World) -> None:
    no_app = await seed_esco(world.conn, app_url=None)
    customer = await seed_customer(world.conn, no_app)
    invite = "inviteCustomer"
    assert await refused(world, no_app, invite, {"customerId": str(customer)}) == [
        (["customerId"], "NO_APP_URL")
    ]
    esco = await seed_esco(world.conn)
    inactive = await seed_customer(world.conn, esco, status="inactive")
    active = await seed_customer(world.conn, esco)
    assert await refused(world, esco, invite, {"customerId": str(inactive)}) == [
        (["customerId"], "INVALID")
    ]
    assert await refused(world, esco, invite, {"customerId": str(uuid.uuid4())}) == [
        (["customerId"], "NOT_FOUND")
    ]
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    assert await refused(world, esco, invite, {"customerId": str(active), "expiresAt": past}) == [
        (["expiresAt"], "INVALID")
    ]


async def test_accept_invite(world: World) -> None:
    esco = await seed_esco(world.conn)
    customer = await seed_customer(world.conn, esco)
    made = ok(await mutate(world.client, "inviteCustomer", {"customerId": str(customer)}, INVITE))
    token = made["customerInvite"]["token"]
    payload = ok(await mutate(world.client, "acceptInvite", {"token": token}, INVITE))
    invite = payload["customerInvite"]
    assert invite["status"] == "ACCEPTED" and invite["acceptedAt"] is not None
    assert payload["customer"]["uuid"] == str(customer)
    accepted_at = await world.conn.fetchval(
        "SELECT accepted_at FROM customer_invites WHERE token = $1", uuid.UUID(token)
    )
    assert datetime.fromisoformat(invite["acceptedAt"]) == accepted_at
    events = await customer_events(world.conn, customer)
    assert [(e["event_type"], e["actor"]) for e in events] == [
        ("invited", ACTOR),
        ("invite_accepted", ACTOR),
    ]
    assert data(events[1]["data"]) == {"acceptedAt": accepted_at.isoformat()}

    accept = "acceptInvite"
    assert await refused(world, esco, accept, {"token": token}) == [(["token"], "INVITE_USED")]
    for unknown in (str(uuid.uuid4()), "not-a-token", ""):
        assert await refused(world, esco, accept, {"token": unknown}) == [
            (["token"], "NOT_FOUND")
        ], unknown
    made = ok(await mutate(world.client, "inviteCustomer", {"customerId": str(customer)}, INVITE))
    expired = uuid.UUID(made["customerInvite"]["token"])
    await world.conn.execute(
        "UPDATE customer_invites SET expires_at = now() - interval '1 second' WHERE token = $1",
        expired,
    )
    assert await refused(world, esco, accept, {"token": str(expired)}) == [
        (["token"], "INVITE_EXPIRED")
    ]


# --- roles and scope (service level: until auth lands, requests run as an admin) ---------


async def test_roles_and_scope(world: World) -> None:
    esco = await seed_esco(world.conn)
    customer = await seed_customer(world.conn, esco)
    other = await seed_customer(world.conn, esco)
    made = ok(await mutate(world.client, "inviteCustomer", {"customerId": str(customer)}, INVITE))
    token = uuid.UUID(made["customerInvite"]["token"])

    async def attempt(viewer: Viewer, work: Any) -> list[tuple[tuple[str, ...], ErrorCode]]:
        async with world.engine.connect() as conn:
            tx = Tx(conn, viewer, lambda: TODAY)
            try:
                await work(tx)
            except Rejected as rejected:
                return [(p.field, p.code) for p in rejected.problems]
            finally:
                await conn.rollback()
        return []

    partner = Viewer(role="partner", sub="k1", esco_ids=frozenset({esco}))
    assert await attempt(
        partner, lambda tx: service.set_customer_status(tx, customer, CustomerStatus.SUSPENDED)
    ) == [((), ErrorCode.FORBIDDEN)]
    # An operator of another ESCO sees nothing.
    outsider = Viewer(role="operator", sub="op", esco_ids=frozenset({uuid.uuid4()}))
    assert await attempt(outsider, lambda tx: service.invite_customer(tx, customer)) == [
        (("customerId",), ErrorCode.NOT_FOUND)
    ]
    assert await attempt(outsider, lambda tx: service.accept_invite(tx, token)) == [
        (("token",), ErrorCode.NOT_FOUND)
    ]
    # A customer accepts only their own invite.
    someone_else = Viewer(role="customer", sub="c", esco_ids=frozenset({esco}), customer_id=other)
    assert await attempt(someone_else, lambda tx: service.accept_invite(tx, token)) == [
        (("token",), ErrorCode.NOT_FOUND)
    ]
    themself = Viewer(role="customer", sub="c", esco_ids=frozenset({esco}), customer_id=customer)
    assert await attempt(themself, lambda tx: service.accept_invite(tx, token)) == []


# --- concurrency: the locks serialise, the constraints are the backstop -------------------


async def test_concurrent_writes_leave_one(world: World) -> None:
    esco = await seed_esco(world.conn)
    account = await seed_account(world.conn, esco, opened_on=date(2024, 1, 1))
    first, second = [await seed_customer(world.conn, esco) for _ in range(2)]

    def occupy(customer: uuid.UUID, start: str) -> dict[str, str]:
        return {
            "customerId": str(customer),
            "accountId": str(account),
            "role": "OCCUPIER",
            "startDate": start,
        }

    results = await asyncio.gather(
        mutate(world.client, "addCustomerToAccount", occupy(first, "2024-02-01"), LINK),
        mutate(world.client, "addCustomerToAccount", occupy(second, "2024-03-01"), LINK),
    )
    codes = sorted(tuple(e["code"] for e in r["userErrors"]) for r in results)
    assert codes == [(), ("OCCUPANCY_OVERLAP",)]
    assert (
        await world.conn.fetchval(
            "SELECT count(*) FROM customer_accounts WHERE account_id = $1", account
        )
        == 1
    )
    assert (
        await world.conn.fetchval(
            "SELECT count(*) FROM account_events WHERE account_id = $1", account
        )
        == 1
    )

    created = await asyncio.gather(
        *(
            mutate(
                world.client,
                "createCustomer",
                {"escoId": str(esco), "email": f"{case}@example.com"},
                "customer { uuid }",
            )
            for case in ("same", "SAME")
        )
    )
    codes = sorted(tuple(e["code"] for e in r["userErrors"]) for r in created)
    assert codes == [(), ("DUPLICATE",)]

    made = ok(await mutate(world.client, "inviteCustomer", {"customerId": str(first)}, INVITE))
    token = made["customerInvite"]["token"]
    accepted = await asyncio.gather(
        *(mutate(world.client, "acceptInvite", {"token": token}, INVITE) for _ in range(2))
    )
    codes = sorted(tuple(e["code"] for e in r["userErrors"]) for r in accepted)
    assert codes == [(), ("INVITE_USED",)]
    assert [e["event_type"] for e in await customer_events(world.conn, first)] == [
        "invited",
        "invite_accepted",
    ]
