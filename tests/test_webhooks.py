"""Partner webhooks (issue 12): endpoints, signed deliveries, retries, order, SSRF rules,
the worker's leases (two workers; a worker killed with SIGKILL mid-send), isolation.

Receivers are served by the test on loopback (tests/receiver.py) and verify every
request with the `standardwebhooks` package. Events are written with raw SQL: the
event log's triggers turn a payment row into `payment.created`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from flows_graphql.app import create_app
from flows_graphql.config import Settings
from flows_graphql.db.urls import asyncpg_dsn
from flows_graphql.live import webhooks as webhooks_module
from flows_graphql.live.targets import TargetRefused, parse_target
from flows_graphql.live.webhooks import WebhookWorker, send
from flows_graphql.types.node import to_global_id
from tests.support import live
from tests.support.api import TODAY, bearer
from tests.support.receiver import HANG, receiving
from tests.support.world import World, issue_partner_key, make_world, seed_payment

CREATE = """mutation($i: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $i) {
  webhookEndpoint { id uuid url eventTypes status escoId failingSince }
  secret userErrors { field code message } } }"""
UPDATE = """mutation($i: UpdateWebhookEndpointInput!) { updateWebhookEndpoint(input: $i) {
  webhookEndpoint { id url eventTypes status disabledReason } userErrors { field code } } }"""
ROTATE = """mutation($i: WebhookEndpointInput!) { rotateWebhookSecret(input: $i) {
  webhookEndpoint { id } secret userErrors { field code } } }"""
DELETE = """mutation($i: WebhookEndpointInput!) { deleteWebhookEndpoint(input: $i) {
  webhookEndpoint { id status } userErrors { field code } } }"""
REDELIVER = """mutation($i: RedeliverWebhookEventInput!) { redeliverWebhookEvent(input: $i) {
  webhookDelivery { id eventId status webhookId attempts } userErrors { field code } } }"""
ENDPOINTS = """query($e: ID) { webhookEndpoints(escoId: $e) { totalCount nodes {
  id url status eventTypes disabledAt disabledReason failingSince } } }"""
LOG = """query($id: ID!) { webhookDeliveries(endpointId: $id, first: 50) { totalCount nodes {
  attempt eventId eventType webhookId outcome statusCode durationMs error nextRetryAt
  responsePrefix } } }"""


@pytest.fixture
async def world(raw: asyncpg.Connection, engine: AsyncEngine) -> World:
    return await make_world(raw)


def quick(settings: Settings, **kw: Any) -> Settings:
    """Settings for tests: loopback receivers, tiny delays."""
    values: dict[str, Any] = {
        "webhooks_allow_loopback": True,
        "webhooks_retry_schedule": (0.2,) * 7,
        "webhooks_timeout_s": 2.0,
        "webhooks_poll_s": 0.1,
        **kw,
    }
    return replace(settings, **values)


class Api:
    """The app's GraphQL over ASGI (no lifespan: no worker of its own)."""

    def __init__(self, app: Any) -> None:
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")

    async def __call__(
        self, headers: dict[str, str], query: str, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        body: dict[str, Any] = response.json()
        assert response.status_code == 200 and "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data


@contextlib.asynccontextmanager
async def api_of(settings: Settings, database_url: str) -> AsyncIterator[Api]:
    app = create_app(settings, database_url, today=lambda: TODAY)
    api = Api(app)
    try:
        yield api
    finally:
        await api.http.aclose()
        await app.state.engine.dispose()


@contextlib.asynccontextmanager
async def working(settings: Settings, database_url: str) -> AsyncIterator[WebhookWorker]:
    worker = WebhookWorker(asyncpg_dsn(database_url), settings)
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop()


def operator(settings: Settings, esco: uuid.UUID) -> dict[str, str]:
    return bearer(settings, "operator", escos=[str(esco)])


async def create(
    api: Api, headers: dict[str, str], esco: uuid.UUID, url: str, types: list[str] | None = None
) -> dict[str, Any]:
    data = await api(
        headers,
        CREATE,
        {"i": {"escoId": str(esco), "url": url, "eventTypes": types or ["payment.created"]}},
    )
    payload: dict[str, Any] = data["createWebhookEndpoint"]
    return payload


def verified(secret: str, got: Any) -> dict[str, Any]:
    body: dict[str, Any] = Webhook(secret).verify(got.body, got.headers)
    return body


async def until(check: Any, within: float = 15.0) -> Any:
    async with asyncio.timeout(within):
        while True:
            value = await check()
            if value:
                return value
            await asyncio.sleep(0.05)


# --- the serve path: retries, one event, the same webhook-id ---------------------------


async def test_500_twice_then_200_is_three_signed_attempts_of_one_event(
    settings: Settings, database_url: str, raw: asyncpg.Connection, world: World
) -> None:
    """Through `serve`'s own worker (started in the lifespan, woken by the broker)."""
    fast = quick(settings)
    app = create_app(fast, database_url, today=lambda: TODAY)
    api = Api(app)
    async with receiving([500, 500, 200]) as receiver, live.serving(app):
        made = await create(api, operator(fast, world.esco), world.esco, receiver.url)
        assert made["userErrors"] == []
        secret = made["secret"]
        assert secret.startswith("whsec_") and len(secret) > 30
        endpoint = made["webhookEndpoint"]
        assert endpoint["status"] == "ENABLED"
        assert endpoint["escoId"] == to_global_id("Esco", world.esco)

        payment = await seed_payment(raw, world.ann, world.home)
        got = await receiver.wait_for(3)
        bodies = [verified(secret, g) for g in got]
        assert {g.headers["webhook-id"] for g in got} == {got[0].headers["webhook-id"]}
        assert len({g.body for g in got}) == 1  # the same bytes each time
        body = bodies[0]
        assert body["type"] == "payment.created"
        assert body["data"]["subject"] == {
            "type": "Payment",
            "id": to_global_id("Payment", payment),
        }
        assert body["data"]["escoId"] == to_global_id("Esco", world.esco)
        assert body["data"]["eventId"] == got[0].headers["webhook-id"].removeprefix("evt_")

        async def settled() -> Any:
            log = (await api(operator(fast, world.esco), LOG, {"id": endpoint["id"]}))[
                "webhookDeliveries"
            ]
            return log if [n["outcome"] for n in log["nodes"]][:1] == ["SUCCEEDED"] else None

        log = await until(settled)
    await api.http.aclose()
    nodes = log["nodes"]  # newest first
    assert log["totalCount"] == 3
    assert [n["attempt"] for n in nodes] == [3, 2, 1]
    assert [n["statusCode"] for n in nodes] == [200, 500, 500]
    assert [n["outcome"] for n in nodes] == ["SUCCEEDED", "FAILED", "FAILED"]
    assert [n["nextRetryAt"] is None for n in nodes] == [True, False, False]
    assert nodes[1]["error"] == "The receiver answered 500."
    assert nodes[0]["responsePrefix"] == "received"
    assert {n["webhookId"] for n in nodes} == {got[0].headers["webhook-id"]}
    assert all(n["durationMs"] is not None and n["durationMs"] >= 0 for n in nodes)
    assert len(receiver.got) == 3  # nothing after the success


async def test_the_secret_is_shown_once_and_rotating_it_signs_with_the_new_one(
    settings: Settings, database_url: str, raw: asyncpg.Connection, world: World
) -> None:
    fast = quick(settings)
    who = operator(fast, world.esco)
    async with (
        api_of(fast, database_url) as api,
        receiving([200]) as receiver,
        working(fast, database_url),
    ):
        made = await create(api, who, world.esco, receiver.url)
        old = made["secret"]
        gid = made["webhookEndpoint"]["id"]
        # No field of any type answers it again.
        assert "secret" not in json.dumps(await api(who, ENDPOINTS, {"e": str(world.esco)}))
        audit = await raw.fetch(
            "SELECT action, changes::text FROM audit_log WHERE entity = 'webhook_endpoint'"
        )
        assert [a["action"] for a in audit] == ["createWebhookEndpoint"]
        assert old not in audit[0]["changes"] and old.removeprefix("whsec_") not in str(audit)

        await seed_payment(raw, world.ann, world.home)
        first = (await receiver.wait_for(1))[0]
        verified(old, first)

        rotated = (await api(who, ROTATE, {"i": {"endpointId": gid}}))["rotateWebhookSecret"]
        assert rotated["userErrors"] == [] and rotated["secret"] != old
        new = rotated["secret"]
        await seed_payment(raw, world.bob, world.bobs_home)
        second = (await receiver.wait_for(2))[1]
        verified(new, second)
        with pytest.raises(WebhookVerificationError):
            verified(old, second)
        actions = await raw.fetch(
            "SELECT action, changes::text AS c FROM audit_log WHERE entity = 'webhook_endpoint' "
            "ORDER BY created_at"
        )
        assert [a["action"] for a in actions] == ["createWebhookEndpoint", "rotateWebhookSecret"]
        assert new not in actions[1]["c"]


async def test_a_later_event_waits_while_an_earlier_one_is_retried(
    settings: Settings, database_url: str, raw: asyncpg.Connection, world: World
) -> None:
    fast = quick(settings)
    async with (
        api_of(fast, database_url) as api,
        receiving([500, 500, 200]) as receiver,
    ):
        made = await create(api, operator(fast, world.esco), world.esco, receiver.url)
        secret = made["secret"]
        # Three events committed before any worker runs: all due at once.
        payments = [await seed_payment(raw, world.ann, world.home) for _ in range(3)]
        async with working(replace(fast, webhooks_concurrency=8), database_url):
            got = await receiver.wait_for(5)
            await asyncio.sleep(0.5)
    subjects = [verified(secret, g)["data"]["subject"]["id"] for g in got]
    ids = [to_global_id("Payment", p) for p in payments]
    assert subjects == [ids[0], ids[0], ids[0], ids[1], ids[2]]
    event_ids = [int(g.headers["webhook-id"].removeprefix("evt_")) for g in got]
    assert event_ids == sorted(event_ids)
    assert receiver.most_at_once == 1


async def test_an_endpoint_gets_only_its_own_escos_events_of_its_types(
    settings: Settings, database_url: str, raw: asyncpg.Connection, world: World
) -> None:
    fast = quick(settings)
    async with (
        api_of(fast, database_url) as api,
        receiving() as mine,
        receiving() as theirs,
        receiving() as statuses,
        working(fast, database_url),
    ):
        await create(api, operator(fast, world.esco), world.esco, mine.url)
        await create(api, operator(fast, world.other_esco), world.other_esco, theirs.url)
        await create(
            api, operator(fast, world.esco), world.esco, statuses.url, ["payment.status_changed"]
        )
        anns = await seed_payment(raw, world.ann, world.home)
        await raw.execute("UPDATE payments SET status = 'pending' WHERE id = $1", uuid.UUID(anns))
        cats = await seed_payment(raw, world.cat, world.cats_home)
        await mine.wait_for(1)
        await theirs.wait_for(1)
        await statuses.wait_for(1)
        await asyncio.sleep(0.5)
    assert [json.loads(g.body)["data"]["subject"]["id"] for g in mine.got] == [
        to_global_id("Payment", anns)
    ]
    assert [json.loads(g.body)["data"]["subject"]["id"] for g in theirs.got] == [
        to_global_id("Payment", cats)
    ]
    assert [json.loads(g.body)["type"] for g in statuses.got] == ["payment.status_changed"]


# --- SSRF ------------------------------------------------------------------------------

REFUSED_ANYWHERE = [
    "https://10.0.0.1/hook",
    "https://192.168.1.10/hook",
    "https://172.16.0.5/hook",
    "https://169.254.169.254/latest/meta-data",
    "https://[fe80::1]/hook",
    "https://224.0.0.1/hook",
    "https://0.0.0.0/hook",
    "https://[::ffff:10.0.0.1]/hook",
    "https://100.64.0.1/hook",
    "https://user:password@93.184.216.34/hook",
    "https://93.184.216.34/hook#fragment",
    "ftp://93.184.216.34/hook",
    "not a url",
    "https:///nohost",
    "",
]
REFUSED_IN_PRODUCTION = [
    "http://93.184.216.34/hook",
    "https://127.0.0.1/hook",
    "https://[::1]/hook",
    "https://localhost/hook",
    "https://2130706433/hook",  # 127.0.0.1 written as a number
]


@pytest.mark.parametrize("url", REFUSED_ANYWHERE + REFUSED_IN_PRODUCTION)
async def test_targets_refused_without_loopback(url: str) -> None:
    with pytest.raises(TargetRefused):
        from flows_graphql.live.targets import resolve

        await resolve(parse_target(url, False), False)


@pytest.mark.parametrize("url", REFUSED_ANYWHERE)
async def test_targets_refused_even_with_loopback_allowed(url: str) -> None:
    with pytest.raises(TargetRefused):
        from flows_graphql.live.targets import resolve

        await resolve(parse_target(url, True), True)


async def test_unsafe_urls_are_user_errors_and_write_nothing(
    settings: Settings, database_url: str, raw: asyncpg.Connection, world: World
) -> None:
    strict = replace(settings, webhooks_allow_loopback=False)
    who = operator(strict, world.esco)
    async with api_of(strict, database_url) as api:
        for url in ["http://127.0.0.1:9/hook", "https://10.1.2.3/x", "https://[::1]/", "x"]:
            made = await create(api, who, world.esco, url)
            assert made["webhookEndpoint"] is None and made["secret"] is None, made
            assert [(e["field"], e["code"]) for e in made["userErrors"]] == [(["url"], "INVALID")]
        made = await create(api, who, world.esco, "https://93.184.216.34/hook", ["nope"])
        assert [(e["field"], e["code"]) for e in made["userErrors"]] == [
            (["eventTypes", "0"], "INVALID")
        ]
        assert await raw.fetchval("SELECT count(*) FROM webhook_endpoints") == 0
        assert await raw.fetchval("SELECT count(*) FROM audit_log") == 0
        ok = await create(api, who, world.esco, "https://93.184.216.34/hook")
        assert ok["userErrors"] == []
        changed = await api(
            who,
            UPDATE,
            {"i": {"endpointId": ok["webhookEndpoint"]["id"], "url": "https://[fd00::1]/"}},
        )
        assert changed["updateWebhookEndpoint"]["userErrors"] == [
            {"field": ["url"], "code": "INVALID"}
        ]
        assert (
            await raw.fetchval("SELECT url FROM webhook_endpoints") == "https://93.184.216.34/hook"
        )
        # Null is not "leave it out": each of the three is refused, and nothing changes.
        nulled = await api(
            who,
            UPDATE,
            {
                "i": {
                    "endpointId": ok["webhookEndpoint"]["id"],
                    "url": None,
                    "eventTypes": None,
                    "enabled": None,
                }
            },
        )
        assert sorted(e["field"][0] for e in nulled["updateWebhookEndpoint"]["userErrors"]) == [
            "enabled",
            "eventTypes",
            "url",
        ]
        row = await raw.fetchrow("SELECT url, event_types, status FROM webhook_endpoints")
        assert tuple(row) == ("https://93.184.216.34/hook", ["payment.created"], "enabled")
        # Surrounding whitespace is dropped (as from every URL input) before the rules.
        trimmed = await api(
            who,
            UPDATE,
            {"i": {"endpointId": ok["webhookEndpoint"]["id"], "url": " https://93.184.216.34/v2 "}},
        )
        assert trimmed["updateWebhookEndpoint"]["userErrors"] == []
        assert await raw.fetchval("SELECT url FROM webhook_endpoints") == "https://93.184.216.34/v2"
        assert await raw.fetchval("SELECT count(*) FROM audit_log") == 2


async def test_the_worker_checks_the_target_again_before_sending(
    settings: Settings, database_url: str, raw: asyncpg.Connection, world: World
) -> None:
    """Registered while loopback was allowed; a worker that does not allow it refuses
    to send (as it would a name that now resolves to a private address)."""
    fast = quick(settings)
    async with api_of(fast, database_url) as api, receiving() as receiver:
        made = await create(api, operator(fast, world.esco), world.esco, receiver.url)
        await seed_payment(raw, world.ann, world.home)
        async with working(replace(fast, webhooks_allow_loopback=False), database_url):

            async def attempted() -> Any:
                return await raw.fetchrow(
                    "SELECT outcome, error, status_code FROM webhook_attempts "
                    "WHERE outcome <> 'sending'"
                )

            attempt = await until(attempted)
        assert made["userErrors"] == []
    assert attempt["outcome"] == "failed" and attempt["status_code"] is None
    assert attempt["error"] == "Not sent: Webhooks are sent to https:// URLs only."
    assert receiver.got == []


async def test_redirects_are_not_followed(
    settings: Settings, database_url: str, raw: asyncpg.Connection, world: World
) -> None:
    fast = quick(settings, webhooks_retry_schedule=(30.0,))
    async with (
        api_of(fast, database_url) as api,
        receiving() as elsewhere,
        receiving([(302, {"location": ""})]) as receiver,
    ):
        receiver.script = [(302, {"location": elsewhere.url})]
        await create(api, operator(fast, world.esco), world.esco, receiver.url)
        await seed_payment(raw, world.ann, world.home)
        async with working(fast, database_url):
            await receiver.wait_for(1)

            async def attempted() -> Any:
                return await raw.fetchrow(
                    "SELECT outcome, error, status_code FROM webhook_attempts "
                    "WHERE outcome <> 'sending'"
                )

            attempt = await until(attempted)
            await asyncio.sleep(0.3)
    assert attempt["status_code"] == 302 and attempt["outcome"] == "failed"
    assert "Redirects are not followed" in attempt["error"]
    assert elsewhere.got == []


# --- the worker's leases -----------------------------------------------------------------


async def test_two_workers_never_send_one_delivery_twice(
    settings: Settings, database_url: str, raw: asyncpg.Connection, world: World
) -> None:
    fast = quick(settings, webhooks_concurrency=4)
    async with (
        api_of(fast, database_url) as api,
        receiving(delay=0.1) as a,
        receiving(delay=0.1) as b,
    ):
        for receiver in (a, b):
            await create(api, operator(fast, world.esco), world.esco, receiver.url)
        for _ in range(6):
            await seed_payment(raw, world.ann, world.home)
        async with working(fast, database_url), working(fast, database_url):
            await a.wait_for(6)
            await b.wait_for(6)
            await asyncio.sleep(0.5)
    for receiver in (a, b):
        ids = [g.headers["webhook-id"] for g in receiver.got]
        assert len(ids) == 6 and len(set(ids)) == 6, ids
        assert ids == sorted(ids, key=lambda i: int(i.removeprefix("evt_")))
        # One at a time per endpoint (the order), whatever the number of workers.
        assert receiver.most_at_once == 1
    assert await raw.fetchval("SELECT count(*) FROM webhook_attempts") == 12


async def test_a_slot_sends_an_endpoints_deliveries_in_a_row_and_gives_it_back(
    settings: Settings,
    database_url: str,
    raw: asyncpg.Connection,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A slot claims its endpoint's next delivery itself (live/webhooks.py, CHAIN), and
    after CHAIN of them gives the slot back: nothing it claimed is left to a lease."""
    monkeypatch.setattr(webhooks_module, "CHAIN", 3)
    fast = quick(settings, webhooks_concurrency=1)
    async with (
        api_of(fast, database_url) as api,
        receiving() as a,
        receiving() as b,
    ):
        for receiver in (a, b):
            await create(api, operator(fast, world.esco), world.esco, receiver.url)
        for _ in range(8):
            await seed_payment(raw, world.ann, world.home)
        async with working(fast, database_url):
            await a.wait_for(8, within=5)
            await b.wait_for(8, within=5)

            async def recorded() -> bool:
                sql = "SELECT count(*) FROM webhook_attempts WHERE outcome <> 'sending'"
                return bool(await raw.fetchval(sql) >= 16)

            await until(recorded, within=5)
    for receiver in (a, b):
        ids = [int(g.headers["webhook-id"].removeprefix("evt_")) for g in receiver.got]
        assert len(ids) == 8 and ids == sorted(set(ids)), ids
    # One attempt each, every one answered: none waited for a lease to run out.
    outcomes = await raw.fetch("SELECT outcome, count(*) FROM webhook_attempts GROUP BY 1")
    assert [tuple(r) for r in outcomes] == [("succeeded", 16)]
    # With one slot the endpoints took turns by the chain's length (3), not 8 in a row:
    # after a chain, the other endpoint's head is the older one.
    order = [("a", g.at) for g in a.got] + [("b", g.at) for g in b.got]
    sequence = [name for name, _ in sorted(order, key=lambda o: o[1])]
    runs = [len(list(run)) for _, run in itertools.groupby(sequence)]
    assert runs == [3, 3, 3, 3, 2, 2], sequence


async def test_a_worker_killed_mid_send_loses_nothing(
    settings: Settings, database_url: str, raw: asyncpg.Connection, world: World, tmp_path: Any
) -> None:
    """`flows-graphql webhooks work` gets SIGKILL while the receiver holds its request;
    started again, it sends the delivery once more after the lease runs out."""
    fast = quick(settings)
    # live.environment(): behind PgBouncer the worker must know it (no prepared
    # statements), or the killed worker's statements, left on the server connection,
    # clash with the new one's.
    env = live.environment()
    env.update(
        DATABASE_URL=database_url,
        FLOWS_DATA_DIR=str(tmp_path),
        FLOWS_WEBHOOKS_ALLOW_LOOPBACK="1",
        FLOWS_WEBHOOKS_TIMEOUT_S="3",
        FLOWS_WEBHOOKS_POLL_S="0.2",
        FLOWS_WEBHOOKS_RETRY_SCHEDULE="0.2",
    )
    command = [sys.executable, "-m", "flows_graphql.cli", "webhooks", "work"]

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    async with api_of(fast, database_url) as api, receiving([HANG, 200]) as receiver:
        made = await create(api, operator(fast, world.esco), world.esco, receiver.url)
        await seed_payment(raw, world.ann, world.home)
        worker = start()
        try:
            await receiver.wait_for(1, within=30)
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
            held = await raw.fetchrow("SELECT status, attempts FROM webhook_deliveries")
            assert (held["status"], held["attempts"]) == ("pending", 1)
            worker = start()
            await receiver.wait_for(2, within=30)

            async def delivered() -> Any:
                return await raw.fetchval(
                    "SELECT status FROM webhook_deliveries WHERE status = 'succeeded'"
                )

            await until(delivered)
            await asyncio.sleep(0.5)
        finally:
            worker.terminate()
            try:
                worker.wait(10)
            except subprocess.TimeoutExpired:
                worker.kill()
        log = await api(operator(fast, world.esco), LOG, {"id": made["webhookEndpoint"]["id"]})
    assert len(receiver.got) == 2  # the killed attempt and exactly one more
    assert receiver.got[0].headers["webhook-id"] == receiver.got[1].headers["webhook-id"]
    verified(made["secret"], receiver.got[1])
    nodes = log["webhookDeliveries"]["nodes"]
    assert [(n["attempt"], n["outcome"], n["statusCode"]) for n in nodes] == [
        (2, "SUCCEEDED", 200),
        (1, "INTERRUPTED", None),
    ]


# --- disabling, redelivery, deletion -----------------------------------------------------


async def test_an_endpoint_failing_for_long_enough_is_disabled_and_shown_so(
    settings: Settings, database_url: str, raw: asyncpg.Connection, world: World
) -> None:
    fast = quick(settings, webhooks_disable_after_s=0.5, webhooks_retry_schedule=(0.2,) * 20)
    who = operator(fast, world.esco)
    async with api_of(fast, database_url) as api, receiving([500]) as receiver:
        made = await create(api, who, world.esco, receiver.url)
        await seed_payment(raw, world.ann, world.home)
        async with working(fast, database_url):

            async def disabled() -> Any:
                return await raw.fetchval(
                    "SELECT status FROM webhook_endpoints WHERE status = 'disabled'"
                )

            await until(disabled)
            tried = len(receiver.got)
            await asyncio.sleep(0.6)
            assert len(receiver.got) == tried  # nothing more is sent
        listed = (await api(who, ENDPOINTS, {"e": str(world.esco)}))["webhookEndpoints"]["nodes"]
        assert [(n["id"], n["status"]) for n in listed] == [
            (made["webhookEndpoint"]["id"], "DISABLED")
        ]
        assert listed[0]["disabledReason"].startswith("Every delivery failed for")
        assert listed[0]["disabledAt"] is not None and listed[0]["failingSince"] is not None
        assert (
            await raw.fetchval(
                "SELECT actor FROM audit_log WHERE action = 'disableWebhookEndpoint'"
            )
            == "system"
        )

        # Enabled again: the pending delivery goes out.
        receiver.script = [200]
        again = await api(
            who, UPDATE, {"i": {"endpointId": made["webhookEndpoint"]["id"], "enabled": True}}
        )
        assert again["updateWebhookEndpoint"]["webhookEndpoint"]["status"] == "ENABLED"
        async with working(fast, database_url):
            got = await receiver.wait_for(tried + 1)
        assert got[-1].headers["webhook-id"] == got[0].headers["webhook-id"]


async def test_redelivery_sends_the_same_message_again_and_deletion_stops_everything(
    settings: Settings, database_url: str, raw: asyncpg.Connection, world: World
) -> None:
    fast = quick(settings)
    who = operator(fast, world.esco)
    async with (
        api_of(fast, database_url) as api,
        # Each answer takes a moment: the redelivery is asked for while the first
        # attempt is still under way, and must not be swallowed by its success.
        receiving(delay=0.3) as receiver,
        working(fast, database_url),
    ):
        made = await create(api, who, world.esco, receiver.url)
        gid = made["webhookEndpoint"]["id"]
        await seed_payment(raw, world.ann, world.home)
        first = (await receiver.wait_for(1))[0]
        event_id = first.headers["webhook-id"].removeprefix("evt_")
        again = (await api(who, REDELIVER, {"i": {"endpointId": gid, "eventId": event_id}}))[
            "redeliverWebhookEvent"
        ]
        assert again["userErrors"] == [] and again["webhookDelivery"]["status"] == "PENDING"
        second = (await receiver.wait_for(2))[1]
        assert second.headers["webhook-id"] == first.headers["webhook-id"]
        assert second.body == first.body
        missing = (await api(who, REDELIVER, {"i": {"endpointId": gid, "eventId": "999999"}}))[
            "redeliverWebhookEvent"
        ]
        assert missing["userErrors"] == [{"field": ["eventId"], "code": "NOT_FOUND"}]

        deleted = (await api(who, DELETE, {"i": {"endpointId": gid}}))["deleteWebhookEndpoint"]
        assert deleted["webhookEndpoint"]["status"] == "DELETED"
        assert await raw.fetchval("SELECT secret FROM webhook_endpoints") == ""
        await seed_payment(raw, world.bob, world.bobs_home)
        await asyncio.sleep(0.6)
        assert len(receiver.got) == 2
        listed = await api(who, ENDPOINTS, {"e": str(world.esco)})
        assert listed["webhookEndpoints"]["totalCount"] == 0


# --- who may ------------------------------------------------------------------------------


async def test_other_escos_customers_and_keys_without_the_scope_see_and_change_nothing(
    settings: Settings,
    database_url: str,
    raw: asyncpg.Connection,
    world: World,
    engine: AsyncEngine,
) -> None:
    fast = quick(settings)
    mine = operator(fast, world.esco)
    _, plain_key = await issue_partner_key(engine, world.esco, ["read", "payments:write"])
    _, hook_key = await issue_partner_key(engine, world.esco, ["read", "webhooks:write"])
    _, other_key = await issue_partner_key(engine, world.other_esco, ["read", "webhooks:write"])
    outsiders = {
        "other operator": operator(fast, world.other_esco),
        "customer": bearer(fast, "customer", customer_id=str(world.ann)),
        "key without the scope": {"X-API-Key": plain_key},
        "other ESCO's key": {"X-API-Key": other_key},
    }
    async with api_of(fast, database_url) as api:
        made = await create(api, mine, world.esco, "https://93.184.216.34/hook")
        gid = made["webhookEndpoint"]["id"]
        before = await raw.fetch("SELECT * FROM webhook_endpoints")
        audited = await raw.fetchval("SELECT count(*) FROM audit_log")
        for name, who in outsiders.items():
            expected = "FORBIDDEN" if name in ("customer", "key without the scope") else None
            tried = {
                "create": (await create(api, who, world.esco, "https://93.184.216.34/other"))[
                    "userErrors"
                ],
                "update": (await api(who, UPDATE, {"i": {"endpointId": gid, "enabled": False}}))[
                    "updateWebhookEndpoint"
                ]["userErrors"],
                "rotate": (await api(who, ROTATE, {"i": {"endpointId": gid}}))[
                    "rotateWebhookSecret"
                ]["userErrors"],
                "delete": (await api(who, DELETE, {"i": {"endpointId": gid}}))[
                    "deleteWebhookEndpoint"
                ]["userErrors"],
                "redeliver": (
                    await api(who, REDELIVER, {"i": {"endpointId": gid, "eventId": "1"}})
                )["redeliverWebhookEvent"]["userErrors"],
            }
            for what, errors in tried.items():
                codes = {e["code"] for e in errors}
                assert codes == {expected or "NOT_FOUND"}, (name, what, errors)
            listed = await api(who, ENDPOINTS, {"e": str(world.esco)})
            assert listed["webhookEndpoints"]["totalCount"] == 0, name
            log = await api(who, LOG, {"id": gid})
            assert log["webhookDeliveries"]["totalCount"] == 0, name
        assert await raw.fetch("SELECT * FROM webhook_endpoints") == before
        assert await raw.fetchval("SELECT count(*) FROM audit_log") == audited

        # A key of the ESCO with the scope may.
        keyed = await create(api, {"X-API-Key": hook_key}, world.esco, "https://93.184.216.34/k")
        assert keyed["userErrors"] == [] and keyed["secret"].startswith("whsec_")
        listed = await api({"X-API-Key": hook_key}, ENDPOINTS, {"e": str(world.esco)})
        assert listed["webhookEndpoints"]["totalCount"] == 2


async def test_row_level_security_keeps_each_escos_webhooks_to_itself(
    raw: asyncpg.Connection, world: World
) -> None:
    """The database's own wall, whatever the API does: as the API's role with another
    ESCO's tenant setting, no endpoint, delivery or attempt of this one is seen or
    written."""
    endpoint = await raw.fetchval(
        "INSERT INTO webhook_endpoints (esco_id, url, event_types, secret, created_by) "
        "VALUES ($1, 'https://93.184.216.34/x', ARRAY['payment.created'], 'whsec_x', 'system') "
        "RETURNING id",
        world.esco,
    )
    delivery = await raw.fetchval(
        "INSERT INTO webhook_deliveries (esco_id, endpoint_id, event_id, event_type, body) "
        "VALUES ($1, $2, 1, 'payment.created', '{}') RETURNING id",
        world.esco,
        endpoint,
    )
    await raw.execute(
        "INSERT INTO webhook_attempts (esco_id, delivery_id, endpoint_id, event_id, event_type, "
        "attempt) VALUES ($1, $2, $3, 1, 'payment.created', 1)",
        world.esco,
        delivery,
        endpoint,
    )
    async with raw.transaction():
        await raw.execute("SET LOCAL ROLE flows_api")
        await raw.execute("SELECT set_config('flows.esco_ids', $1, true)", str(world.other_esco))
        for table in ("webhook_endpoints", "webhook_deliveries", "webhook_attempts"):
            assert await raw.fetchval(f"SELECT count(*) FROM {table}") == 0, table
        assert await raw.execute("UPDATE webhook_endpoints SET url = 'x'") == "UPDATE 0"
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await raw.execute(
                "INSERT INTO webhook_endpoints (esco_id, url, event_types, secret, created_by) "
                "VALUES ($1, 'https://93.184.216.34/y', ARRAY['payment.created'], 'w', 'x')",
                world.esco,
            )
    async with raw.transaction():
        await raw.execute("SET LOCAL ROLE flows_api")
        await raw.execute("SELECT set_config('flows.esco_ids', $1, true)", str(world.esco))
        assert await raw.fetchval("SELECT count(*) FROM webhook_attempts") == 1


async def test_a_send_goes_to_the_checked_address_with_the_name_in_host() -> None:
    """`localhost` is resolved and checked by the worker; the request goes to the address
    (whichever of ::1 and 127.0.0.1 listens) and still names the host as written."""
    async with receiving([204]) as receiver, httpx.AsyncClient() as client:
        url = f"http://localhost:{receiver.port}/hooks?x=1"
        secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        outcome = await send(
            client, url, secret, "evt_7", '{"a": 1}', timeout_s=5, allow_loopback=True
        )
        # Without the setting: refused for the scheme, and an https URL for the name.
        refused = await send(
            client, url, secret, "evt_7", '{"a": 1}', timeout_s=5, allow_loopback=False
        )
        named = await send(
            client,
            f"https://localhost:{receiver.port}/",
            secret,
            "evt_7",
            "{}",
            timeout_s=5,
            allow_loopback=False,
        )
    assert outcome.status_code == 204 and outcome.error is None, outcome
    [got] = receiver.got
    assert got.headers["host"] == f"localhost:{receiver.port}"
    assert Webhook(secret).verify(got.body, got.headers) == {"a": 1}
    assert refused.status_code is None and named.status_code is None
    assert refused.error == "Not sent: Webhooks are sent to https:// URLs only."
    assert named.error == "Not sent: Webhooks may not be sent to loopback addresses."
    assert len(receiver.got) == 1
