"""An event costs the same statements whatever the number of subscribers (issue 12).

Subscribers whose reads are made of the same inputs (an ESCO's operators with the same
grants and its partner keys; each customer) share each event's reads
(flows_graphql/live/sharing.py). Counted on a real server in this event loop: its tasks
inherit the statement counter set here (WebSockets have no per-request counter).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field, replace

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from flows_graphql.app import create_app
from flows_graphql.config import Settings
from flows_graphql.db.engine import StatementCounter, current_counter
from flows_graphql.live.sharing import Shares
from flows_graphql.types.node import to_global_id
from tests.support import live
from tests.support.api import TODAY
from tests.support.sockets import Subscriber, feeds_open, token
from tests.support.world import World, issue_partner_key, make_world, seed_payment

# `account` is loaded beyond the event's object: one batched read for all who ask.
SELECTION = (
    "subscription { events { id type subject { id"
    " ... on Payment { status amountPence account { id } } } } }"
)


@pytest.fixture
async def world(raw: asyncpg.Connection, engine: AsyncEngine) -> World:
    return await make_world(raw)


@dataclass
class Run:
    statements: int
    # Per subscriber kind: the payments each of its subscriptions received.
    received: dict[str, list[list[str]]] = field(default_factory=dict)


async def _measure(
    settings: Settings,
    database_url: str,
    engine: AsyncEngine,
    raw: asyncpg.Connection,
    world: World,
    mix: dict[str, tuple[int, int]],
) -> Run:
    """Subscribe `mix` (kind → (connections, subscriptions on each)), commit one
    payment of Ann's, and count the server's statements from the commit to the last
    delivery."""
    _, partner_key = await issue_partner_key(engine, world.esco, ["read"])
    quick = replace(
        settings,
        ws_ping_seconds=0.2,
        ws_idle_seconds=30,
        ws_recheck_seconds=600,  # no credential checks while counting
        ws_max_connections=50,
    )

    def credentials(kind: str, n: int) -> dict[str, str]:
        if kind == "operator":  # each an operator of their own, with the same grants
            return token(settings, "operator", escos=[str(world.esco)], sub=f"op-{n}")
        if kind == "other_operator":
            return token(settings, "operator", escos=[str(world.other_esco)], sub=f"other-{n}")
        if kind == "partner":
            return {"X-API-Key": partner_key}
        customer = {"ann": world.ann, "bob": world.bob}[kind]
        return token(settings, "customer", customer_id=str(customer))

    counter = StatementCounter()
    reset = current_counter.set(counter)
    try:
        app = create_app(quick, database_url, today=lambda: TODAY)
        async with live.serving(app) as port, contextlib.AsyncExitStack() as stack:
            # A slow machine must not make the shares stale within the count.
            app.state.broker.shares.fresh_seconds = 60
            url = f"ws://127.0.0.1:{port}/graphql"
            subs: list[tuple[str, Subscriber, list[str]]] = []
            for kind, (connections, each) in mix.items():
                for n in range(connections):
                    sub = await stack.enter_async_context(
                        Subscriber.connect(url, credentials(kind, n))
                    )
                    ops = [await sub.subscribe(SELECTION) for _ in range(each)]
                    subs.append((kind, sub, ops))
            await feeds_open(app, sum(c * e for c, e in mix.values()))
            await asyncio.sleep(0.2)  # the connections' own reads are done
            before = counter.count
            payment = await seed_payment(raw, world.ann, world.home)
            run = Run(0)

            async def collect(kind: str, sub: Subscriber, ops: list[str]) -> None:
                got: dict[str, list[str]] = {op: [] for op in ops}
                with contextlib.suppress(TimeoutError):
                    while True:
                        message = await sub.next(within=1.5)
                        assert message["type"] == "next", message
                        event = message["payload"]["data"]["events"]
                        subject = event["subject"]
                        assert subject["status"] == "CREATED", subject
                        assert subject["amountPence"] == 1200, subject
                        assert subject["account"]["id"] == to_global_id("Account", world.home)
                        got[message["id"]].append(subject["id"])
                run.received.setdefault(kind, []).extend(got.values())

            await asyncio.gather(*(collect(kind, sub, ops) for kind, sub, ops in subs))
            run.statements = counter.count - before
    finally:
        current_counter.reset(reset)
    assert payment  # committed
    run.received = {k: sorted(v) for k, v in run.received.items()}
    return run


async def test_statements_per_event_do_not_grow_with_subscribers(
    settings: Settings, database_url: str, engine: AsyncEngine, raw: asyncpg.Connection, world
) -> None:
    one_each = {k: (1, 1) for k in ("operator", "partner", "ann", "bob", "other_operator")}
    fifty = {
        "operator": (15, 1),  # 15 operators of their own, with the same grants
        "partner": (1, 5),
        "ann": (3, 5),  # Ann on three devices
        "bob": (1, 5),
        "other_operator": (10, 1),
    }
    assert sum(c * e for c, e in fifty.values()) == 50
    small = await _measure(settings, database_url, engine, raw, world, one_each)
    large = await _measure(settings, database_url, engine, raw, world, fifty)

    for run, mix in ((small, one_each), (large, fifty)):
        count = {kind: c * e for kind, (c, e) in mix.items()}
        payments = {p for got in run.received["operator"] for p in got}
        assert len(payments) == 1
        # Everyone who may see it gets it once; Bob and the other ESCO nothing.
        for kind in ("operator", "partner", "ann"):
            assert run.received[kind] == [sorted(payments)] * count[kind], kind
        for kind in ("bob", "other_operator"):
            assert run.received[kind] == [[]] * count[kind], kind
    # Two kinds of viewer may see it (the ESCO's staff and partner; Ann), each reading
    # the payment (BEGIN, SELECT) and the account (BEGIN, SELECT) once.
    assert small.statements == 8
    assert large.statements == small.statements


class _Value:
    def __init__(self) -> None:
        self.failed = False
        self.idled = 0
        self.dropped = 0

    async def idle(self) -> None:
        self.idled += 1

    def drop(self) -> None:
        self.dropped += 1


async def test_a_share_serves_every_feed_offered_then_goes() -> None:
    now = [0.0]
    shares = Shares(fresh_seconds=1.0, clock=lambda: now[0])
    key = (7, "group")
    made: list[_Value] = []

    def make() -> _Value:
        made.append(_Value())
        return made[-1]

    shares.expect(key, 3)
    first = shares.acquire(key, True, make)
    await shares.release(key, first)
    assert made[0].idled == 1 and made[0].dropped == 0  # two feeds still to come
    second = shares.acquire(key, True, make)
    assert second is first
    await shares.release(key, second)
    shares.leave(key)  # the third feed closed: nobody else will come
    assert len(made) == 1 and made[0].dropped == 1 and len(shares) == 0


async def test_a_stale_or_failed_share_is_read_again() -> None:
    now = [0.0]
    shares = Shares(fresh_seconds=1.0, clock=lambda: now[0])
    key = (8, "group")
    values: list[_Value] = []

    def make() -> _Value:
        values.append(_Value())
        return values[-1]

    shares.expect(key, 3)
    first = shares.acquire(key, True, make)
    now[0] = 1.5  # older than fresh_seconds: the next subscriber reads again
    second = shares.acquire(key, True, make)
    assert second is not first and len(values) == 2
    await shares.release(key, first)  # replaced: let go once its reader is done
    assert values[0].dropped == 1
    second.value.failed = True
    third = shares.acquire(key, True, make)
    assert third is not second and len(values) == 3
    await shares.release(key, second)
    await shares.release(key, third)
    assert len(shares) == 0 and values[2].dropped == 1
