"""Subscriptions over graphql-transport-ws, fed by the event log (issue 12).

A real server (uvicorn on a loopback port, lifespan on, so the event-log reader runs)
and a real WebSocket client. Rows are written with raw SQL or through the HTTP API;
the log's triggers turn them into events, the broker hands them to the feeds, and each
subscriber gets exactly what its own reads could see.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import httpx
import pytest
import websockets
from sqlalchemy.ext.asyncio import AsyncEngine

from flows_graphql.app import create_app
from flows_graphql.auth.apikeys import revoke_key
from flows_graphql.config import OidcIssuer, Settings
from flows_graphql.types.node import to_global_id
from tests.support.api import TODAY, bearer
from tests.support.live import serving as serving_app
from tests.support.oidc_provider import AUDIENCE, Provider, make_key
from tests.support.sockets import Subscriber, _refused, feeds_open, serving, token
from tests.support.world import World, issue_partner_key, make_world, seed_payment

EVENTS = "subscription ($after: ID) { events(after: $after) { id type subject { id } } }"


@pytest.fixture
async def world(raw: asyncpg.Connection, engine: AsyncEngine) -> World:
    return await make_world(raw)


@pytest.fixture
async def server(
    settings: Settings, database_url: str, engine: AsyncEngine
) -> AsyncIterator[tuple[str, Any]]:
    """The app on a real socket; yields (ws url, app)."""
    async with serving(settings, database_url) as served:
        yield served


async def test_each_subscriber_gets_exactly_what_it_may_see(
    server: tuple[str, Any], settings: Settings, raw: asyncpg.Connection, world: World, engine
) -> None:
    url, app = server
    _, partner_key = await issue_partner_key(engine, world.esco, ["read"])
    principals = {
        "ann": token(settings, "customer", customer_id=str(world.ann)),
        "bob": token(settings, "customer", customer_id=str(world.bob)),
        "operator": token(settings, "operator", escos=[str(world.esco)]),
        "other_operator": token(settings, "operator", escos=[str(world.other_esco)]),
        "partner": {"X-API-Key": partner_key},
    }
    async with contextlib.AsyncExitStack() as stack:
        subs = {
            name: await stack.enter_async_context(Subscriber.connect(url, payload))
            for name, payload in principals.items()
        }
        for sub in subs.values():
            await sub.subscribe(EVENTS)
        await feeds_open(app, len(subs))  # before anything commits

        anns = await seed_payment(raw, world.ann, world.home)
        await raw.execute("UPDATE payments SET status = 'pending' WHERE id = $1", uuid.UUID(anns))
        # Markers: the first event each negative subscriber may see.
        bobs = await seed_payment(raw, world.bob, world.bobs_home)
        cats = await seed_payment(raw, world.cat, world.cats_home)

        async def events(name: str, n: int) -> list[tuple[str, str]]:
            got = [await subs[name].next() for _ in range(n)]
            assert all(m["type"] == "next" for m in got), got
            return [
                (
                    m["payload"]["data"]["events"]["type"],
                    m["payload"]["data"]["events"]["subject"]["id"],
                )
                for m in got
            ]

        ann_payment = to_global_id("Payment", anns)
        bob_payment = to_global_id("Payment", bobs)
        cat_payment = to_global_id("Payment", cats)
        assert await events("ann", 2) == [
            ("payment.created", ann_payment),
            ("payment.status_changed", ann_payment),
        ]
        esco_wide = [
            ("payment.created", ann_payment),
            ("payment.status_changed", ann_payment),
            ("payment.created", bob_payment),
        ]
        assert await events("operator", 3) == esco_wide
        assert await events("partner", 3) == esco_wide
        assert await events("bob", 1) == [("payment.created", bob_payment)]
        assert await events("other_operator", 1) == [("payment.created", cat_payment)]
        # Nothing else is on its way to the customers.
        with pytest.raises(TimeoutError):
            await subs["ann"].next(within=0.5)


@pytest.mark.parametrize(
    "credentials",
    [
        {},
        {"Authorization": "Bearer not-a-token"},
        {"X-API-Key": "flows_00000000000000000000000000000000_nope"},
        "usage-only key",
    ],
)
async def test_bad_credentials_close_the_connection_before_any_subscription(
    server: tuple[str, Any], world: World, engine: AsyncEngine, credentials: Any
) -> None:
    url, _app = server
    if credentials == "usage-only key":
        _, key = await issue_partner_key(engine, world.esco, ["usage:write"])
        credentials = {"X-API-Key": key}
    code, _reason = await _refused(url, credentials)
    assert code == 4403


async def test_subscribing_before_connection_init_is_unauthorised(
    server: tuple[str, Any],
) -> None:
    url, _app = server
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as socket:
        message = {"query": EVENTS, "variables": {}}
        await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": message}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_reconnecting_with_after_misses_nothing_and_repeats_nothing(
    server: tuple[str, Any], settings: Settings, raw: asyncpg.Connection, world: World
) -> None:
    url, app = server
    ann = token(settings, "customer", customer_id=str(world.ann))
    async with Subscriber.connect(url, ann) as sub:
        await sub.subscribe(EVENTS)
        await feeds_open(app, 1)
        first = await seed_payment(raw, world.ann, world.home)
        seen = (await sub.next())["payload"]["data"]["events"]
        assert seen["type"] == "payment.created"
    # Away: two changes, one of them another household's.
    await raw.execute("UPDATE payments SET status = 'pending' WHERE id = $1", uuid.UUID(first))
    await seed_payment(raw, world.bob, world.bobs_home)
    second = await seed_payment(raw, world.ann, world.home)
    async with Subscriber.connect(url, ann) as sub:
        await sub.subscribe(EVENTS, {"after": seen["id"]})
        replayed = [(await sub.next())["payload"]["data"]["events"] for _ in range(2)]
        assert [(e["type"], e["subject"]["id"]) for e in replayed] == [
            ("payment.status_changed", to_global_id("Payment", first)),
            ("payment.created", to_global_id("Payment", second)),
        ]
        # Then live, without a gap and without the replayed ones again.
        third = await seed_payment(raw, world.ann, world.home)
        live = (await sub.next())["payload"]["data"]["events"]
        assert (live["type"], live["subject"]["id"]) == (
            "payment.created",
            to_global_id("Payment", third),
        )
        assert int(replayed[0]["id"]) < int(replayed[1]["id"]) < int(live["id"])


async def test_a_rolled_back_change_emits_nothing(raw: asyncpg.Connection, world: World) -> None:
    before = await raw.fetchval("SELECT count(*) FROM events")
    tx = raw.transaction()
    await tx.start()
    await seed_payment(raw, world.ann, world.home)
    await tx.rollback()
    assert await raw.fetchval("SELECT count(*) FROM events") == before
    await seed_payment(raw, world.ann, world.home)
    assert await raw.fetchval("SELECT count(*) FROM events") == before + 1


async def test_a_revoked_key_ends_its_subscriptions_at_once(
    server: tuple[str, Any], raw: asyncpg.Connection, world: World, engine: AsyncEngine
) -> None:
    url, app = server
    key_id, key = await issue_partner_key(engine, world.esco, ["read"])
    async with Subscriber.connect(url, {"X-API-Key": key}) as sub:
        await sub.subscribe(EVENTS)
        await feeds_open(app, 1)
        async with engine.begin() as conn:  # the code `apikey revoke` runs
            assert await revoke_key(conn, key_id)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await sub.next(within=1.0)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_a_billing_run_reaches_operators_and_each_bill_its_customer(
    server: tuple[str, Any], settings: Settings, raw: asyncpg.Connection, world: World
) -> None:
    url, app = server
    runs = "subscription ($esco: ID!) { billingRunChanged(escoId: $esco) { uuid status month } }"
    bills = "subscription { monthlyBillReady { month customer { email } costs { total } } }"
    operator = token(settings, "operator", escos=[str(world.esco)])
    async with (
        Subscriber.connect(url, operator) as ops,
        Subscriber.connect(url, token(settings, "customer", customer_id=str(world.ann))) as ann,
        Subscriber.connect(url, token(settings, "customer", customer_id=str(world.bob))) as bob,
    ):
        await ops.subscribe(runs, {"esco": to_global_id("Esco", world.esco)})
        await ann.subscribe(bills)
        await bob.subscribe(bills)
        await feeds_open(app, 3)
        run = await raw.fetchval(
            "INSERT INTO billing_runs (esco_id, month, status, actor, started_at) "
            "VALUES ($1, '2025-02-01', 'running', 'system', now()) RETURNING id",
            world.esco,
        )
        meter = await raw.fetchval(
            "INSERT INTO meters (esco_id, serial) VALUES ($1, 'LIVE-1') RETURNING id", world.esco
        )
        usage = await raw.fetchval(
            "INSERT INTO monthly_usage (esco_id, meter_id, month, power_kwh) "
            "VALUES ($1, $2, '2025-02-01', 100) RETURNING id",
            world.esco,
            meter,
        )
        zeros = ", ".join(["0"] * 8)
        await raw.execute(
            "INSERT INTO monthly_costs (esco_id, monthly_usage_id, customer_id, month, "
            "billing_run_id, power, heat, standing_charge, total, microgrid_power, "
            "microgrid_heat, microgrid_standing_charge, microgrid_total, benchmark_power, "
            "benchmark_heat, benchmark_standing_charge, benchmark_total) "
            f"VALUES ($1, $2, $3, '2025-02-01', $4, 21.131, 0, 0, 21.131, {zeros})",
            world.esco,
            usage,
            world.ann,
            run,
        )
        await raw.execute("UPDATE billing_runs SET status = 'completed' WHERE id = $1", run)

        started = (await ops.next())["payload"]["data"]["billingRunChanged"]
        completed = (await ops.next())["payload"]["data"]["billingRunChanged"]
        assert (started["uuid"], completed["uuid"]) == (str(run), str(run))
        assert [started["status"], completed["status"]] == ["RUNNING", "COMPLETED"]
        bill = (await ann.next())["payload"]["data"]["monthlyBillReady"]
        assert bill == {
            "month": "2025-02-01",
            "customer": {"email": "ann@example.com"},
            "costs": [{"total": "21.131"}],
        }
        with pytest.raises(TimeoutError):
            await bob.next(within=0.5)


async def test_customers_cannot_follow_billing_runs(
    server: tuple[str, Any], settings: Settings, world: World
) -> None:
    url, _app = server
    runs = "subscription ($esco: ID!) { billingRunChanged(escoId: $esco) { uuid } }"
    ann = token(settings, "customer", customer_id=str(world.ann))
    async with Subscriber.connect(url, ann) as sub:
        await sub.subscribe(runs, {"esco": to_global_id("Esco", world.esco)})
        message = await sub.next()
    assert message["type"] in {"next", "error"}
    errors = message["payload"]["errors"] if message["type"] == "next" else message["payload"]
    assert errors[0]["extensions"]["code"] == "FORBIDDEN"


async def test_only_subscriptions_are_served_over_a_websocket(
    server: tuple[str, Any], settings: Settings, raw: asyncpg.Connection, world: World
) -> None:
    """Queries and mutations go over HTTP, where their transaction, limits and masking
    are: over a WebSocket they get an `error`, and nothing is left holding a snapshot."""
    url, _app = server
    admin = token(settings, "admin")
    async with Subscriber.connect(url, admin) as sub:
        op = await sub.subscribe("{ escos(first: 1) { nodes { code } } }")
        refused = await sub.next()
        assert refused["type"] == "error" and refused["id"] == op
        assert refused["payload"][0]["extensions"]["code"] == "BAD_REQUEST"
        aliases = " ".join(f"a{i}: events {{ id }}" for i in range(60))
        too_many = await sub.subscribe(f"subscription {{ {aliases} }}")
        refused = await sub.next()
        assert refused["id"] == too_many
        assert refused["payload"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    idle = await raw.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND state = 'idle in transaction' AND pid <> pg_backend_pid()"
    )
    assert idle == 0


@pytest.mark.parametrize(
    "message",
    [
        [1, 2],
        {"type": "subscribe", "id": "1", "payload": "x"},
        {"type": "subscribe", "id": ["x"], "payload": {"query": "subscription { events { id } }"}},
    ],
)
async def test_a_malformed_message_closes_with_4400(
    server: tuple[str, Any], settings: Settings, world: World, message: Any
) -> None:
    url, _app = server
    async with Subscriber.connect(url, token(settings, "admin")) as sub:
        await sub.socket.send(json.dumps(message))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await sub.next()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400


@pytest.mark.parametrize("after", ["99999999999999999", "+5", " 7", "١٢", "1_0", "-1"])
async def test_a_cursor_that_is_not_a_past_event_is_invalid(
    server: tuple[str, Any], settings: Settings, world: World, after: str
) -> None:
    url, _app = server
    async with Subscriber.connect(url, token(settings, "admin")) as sub:
        await sub.subscribe(EVENTS, {"after": after})
        message = await sub.next()
    errors = message["payload"]["errors"] if message["type"] == "next" else message["payload"]
    assert errors[0]["extensions"]["code"] == "INVALID"


async def test_a_failure_inside_a_subscription_names_no_host_and_carries_a_code(
    server: tuple[str, Any], settings: Settings, world: World, monkeypatch: Any
) -> None:
    """The driver's text (here a host) stays in the log; the client gets UNAVAILABLE and
    a request id, and knows to resubscribe with `after:`."""
    url, app = server

    async def refused(*args: Any) -> list[Any]:
        raise ConnectionRefusedError("connection to 10.0.0.5:5432 (secret-host) refused")

    monkeypatch.setattr(app.state.broker, "read_after", refused)
    async with Subscriber.connect(url, token(settings, "admin")) as sub:
        await sub.subscribe(EVENTS, {"after": "0"})
        message = await sub.next()
    errors = message["payload"]["errors"] if message["type"] == "next" else message["payload"]
    assert errors[0]["extensions"]["code"] == "UNAVAILABLE"
    assert errors[0]["extensions"]["requestId"]
    assert "secret-host" not in json.dumps(message) and "10.0.0.5" not in json.dumps(message)


async def test_a_revoked_staff_grant_ends_its_subscriptions_in_every_process(
    settings: Settings, database_url: str, raw: asyncpg.Connection, world: World
) -> None:
    """Two server processes' worth of apps (each its own broker and listening
    connection); a grant revoked through one ends the operator's sockets on both within
    a second, long before their periodic recheck."""
    idp = Provider(keys=[make_key("RS256")]).start()
    try:
        trusting = replace(
            settings,
            oidc_issuers=(OidcIssuer(idp.issuer, AUDIENCE, idp.jwks_uri),),
            ws_recheck_seconds=60,
            ws_ping_seconds=0.2,
        )
        await raw.execute(
            "INSERT INTO staff_grants (esco_id, issuer, subject, granted_by) "
            "VALUES ($1, $2, 'op-7', 'system')",
            world.esco,
            idp.issuer,
        )
        signed_in = {"Authorization": f"Bearer {idp.token('op-7', lifetime=600)}"}
        one = create_app(trusting, database_url, today=lambda: TODAY)
        two = create_app(trusting, database_url, today=lambda: TODAY)
        async with (
            serving_app(one) as port_one,
            serving_app(two) as port_two,
            Subscriber.connect(f"ws://127.0.0.1:{port_one}/graphql", signed_in) as first,
            Subscriber.connect(f"ws://127.0.0.1:{port_two}/graphql", signed_in) as second,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port_one}") as http,
        ):
            for sub, app in ((first, one), (second, two)):
                await sub.subscribe(EVENTS)
                await feeds_open(app, 1)
            revoked = await http.post(
                "/graphql",
                json={
                    "query": "mutation($i: RevokeOperatorAccessInput!) { "
                    "revokeOperatorAccess(input: $i) { userErrors { code } } }",
                    "variables": {"i": {"issuer": idp.issuer, "subject": "op-7"}},
                },
                headers=bearer(trusting, "admin"),
            )
            assert revoked.json()["data"]["revokeOperatorAccess"]["userErrors"] == []
            for sub in (first, second):
                with pytest.raises(websockets.ConnectionClosed):
                    await sub.next(within=1.0)
            # Signing in again is refused (who it is comes from the database).
            code, _ = await _refused(f"ws://127.0.0.1:{port_two}/graphql", signed_in)
            assert code in (4401, 4403)
    finally:
        idp.stop()
