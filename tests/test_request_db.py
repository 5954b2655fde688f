"""A request's database access (flows_graphql/db/request.py) gives its connection back
clean: no transaction left open when graphql-core cancels a read half-way, and no dead
connection kept in the pool."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import String, cast, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.single import post_scope, receive_once
from flows_graphql.app import create_app
from flows_graphql.config import Settings
from flows_graphql.db.engine import StatementCounter, create_engine, current_counter
from flows_graphql.db.models.base import API_ROLE
from flows_graphql.db.request import PARK_S, Parking, RequestDb
from tests.support.api import TODAY, asgi_client, bearer, gql
from tests.support.db import direct_dsn

# `customers` fails at once; graphql-core then cancels `viewer`'s read mid-way, while
# its BEGIN is in flight (the breadth-first walk gives up first, then graphql-core runs).
CANCELLING = '{ viewer { escos { code } } customers(escoId: "nope") { totalCount } }'


@pytest.mark.parametrize("breadth_first", [True, False])
async def test_a_cancelled_read_leaves_no_transaction_in_the_pool(
    settings: Settings, database_url: str, breadth_first: bool
) -> None:
    one = dataclasses.replace(settings, breadth_first=breadth_first, db_pool_size=1)
    app = create_app(one, database_url, today=lambda: TODAY)
    engine = app.state.engine
    try:
        async with asgi_client(app, bearer(one, "admin")) as http:
            for _ in range(5):
                body = await gql(http, CANCELLING)
                assert [e["extensions"]["code"] for e in body["errors"]] == ["INVALID"]
                async with engine.connect() as conn:
                    driver = (await conn.get_raw_connection()).driver_connection
                    assert not driver.is_in_transaction()
    finally:
        await engine.dispose()


async def _terminate(database_url: str, pid: int) -> None:
    """The server ends backend `pid`; its client notices within a moment."""
    admin = await asyncpg.connect(direct_dsn(database_url))
    try:
        await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    await asyncio.sleep(0.2)


async def test_a_dead_connection_leaves_the_pool(settings: Settings, database_url: str) -> None:
    engine = create_engine(dataclasses.replace(settings, db_pool_size=1), database_url)
    try:
        async with engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
        await _terminate(database_url, pid)
        answers = []
        for _ in range(3):
            db = RequestDb(engine, None)
            try:
                answers.append([tuple(r) for r in await db.rows(text("SELECT 1"))])
            except Exception as exc:
                answers.append(type(exc).__name__)
            finally:
                await db.close()
        # At most the first request meets the dead connection; it is not pooled again.
        assert answers[1:] == [[(1,)], [(1,)]], answers
    finally:
        await engine.dispose()


# A read, as admin (the tenant setting `*`).
ESCOS = b'{"query": "{ viewer { escos { code } } }"}'


async def _post(app: Any, headers: dict[str, str], send: Any) -> None:
    """ESCOS POSTed straight into the ASGI app, from no browser origin (the short
    way: FlowsApp to graphql_view._post), by a client that stays connected."""
    lowered = {"content-type": "application/json", **{k.lower(): v for k, v in headers.items()}}
    await app(post_scope(ESCOS, lowered), receive_once(ESCOS), send)


def _answered(message: dict[str, Any]) -> bool:
    return message["type"] == "http.response.body" and not message.get("more_body", False)


async def _pooled_state(engine: AsyncEngine) -> tuple[Any, bool, str | None]:
    """The pooled connection (its driver's), whether it is inside a transaction, and
    the tenant setting a new transaction on it starts with."""
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        in_transaction = driver.is_in_transaction()
        tenant = (
            await conn.execute(text("SELECT current_setting('flows.esco_ids', true)"))
        ).scalar()
    return driver, in_transaction, tenant


OneConnection = tuple[Settings, Any, AsyncEngine]


@pytest.fixture
async def one_connection(
    settings: Settings, database_url: str, engine: AsyncEngine
) -> AsyncIterator[OneConnection]:
    """The app with a pool of one connection (what a request left on it is what the
    next one gets), and that pool's engine."""
    one = dataclasses.replace(settings, db_pool_size=1)
    app = create_app(one, database_url, today=lambda: TODAY)
    try:
        yield one, app, app.state.engine
    finally:
        await app.state.engine.dispose()


async def test_the_answer_goes_out_before_the_read_ends_and_its_connection_comes_back_clean(
    one_connection: OneConnection,
) -> None:
    one, app, ours = one_connection
    pool = ours.sync_engine.pool
    pooled, _, _ = await _pooled_state(ours)
    held_when_answered: list[int] = []
    bodies: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            bodies.append(message.get("body", b""))
        if _answered(message):
            held_when_answered.append(pool.checkedout())

    await _post(app, bearer(one, "admin"), send)
    assert b'"escos"' in b"".join(bodies) and b'"errors"' not in b"".join(bodies)
    # The read still held its connection when the answer went out; then gave it back.
    assert held_when_answered == [1]
    assert pool.checkedout() == 0
    # The same connection, out of the read's transaction and without its tenant.
    assert await _pooled_state(ours) == (pooled, False, "")


class Gone(Exception):
    """A client that went away as its answer was sent (the server's send fails)."""


async def test_a_client_gone_at_the_answer_still_ends_the_read(
    one_connection: OneConnection,
) -> None:
    one, app, ours = one_connection
    pooled, _, _ = await _pooled_state(ours)

    async def send(message: dict[str, Any]) -> None:
        if _answered(message):
            raise Gone

    with pytest.raises(Gone):
        await _post(app, bearer(one, "admin"), send)
    assert ours.sync_engine.pool.checkedout() == 0
    assert await _pooled_state(ours) == (pooled, False, "")


async def test_a_request_cancelled_in_its_closing_rollback_drops_its_connection(
    one_connection: OneConnection,
) -> None:
    one, app, ours = one_connection
    pooled, _, _ = await _pooled_state(ours)
    task: asyncio.Task[None] | None = None
    answered = False

    async def send(message: dict[str, Any]) -> None:
        nonlocal answered
        if _answered(message):
            answered = True
            # Lands at the request's next wait: the ROLLBACK after the answer.
            assert task is not None
            asyncio.get_running_loop().call_soon(task.cancel)

    task = asyncio.ensure_future(_post(app, bearer(one, "admin"), send))
    with pytest.raises(asyncio.CancelledError):
        await task
    assert answered
    assert ours.sync_engine.pool.checkedout() == 0
    # Its state unknown, the connection was dropped: the pool has a new one, clean.
    new, in_transaction, tenant = await _pooled_state(ours)
    assert new is not pooled and pooled.is_closed()
    assert not in_transaction and tenant in (None, "")


async def _backend_pid(db: RequestDb) -> int:
    return (await db.rows(text("SELECT pg_backend_pid() AS pid")))[0].pid


async def test_a_warm_read_takes_and_gives_its_connection_without_a_greenlet(
    settings: Settings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """db/engine.checkout and checkin: an idle pooled connection is taken and given
    back by SQLAlchemy's pool directly (no greenlet, no I/O), and it is the same one."""
    from flows_graphql.db import engine as engine_module

    engine = create_engine(dataclasses.replace(settings, db_pool_size=1), database_url)
    try:
        first = RequestDb(engine, None)
        pid = await _backend_pid(first)  # the pool's first connection: made in a greenlet
        await first.close()
        spawned: list[object] = []
        real_spawn = engine_module.greenlet_spawn

        async def counting(fn: Any, *args: Any, **kwargs: Any) -> Any:
            spawned.append(fn)
            return await real_spawn(fn, *args, **kwargs)

        monkeypatch.setattr(engine_module, "greenlet_spawn", counting)
        monkeypatch.setattr(
            AsyncEngine, "raw_connection", lambda self: pytest.fail("took the greenlet's way")
        )
        for _ in range(3):
            db = RequestDb(engine, None)
            assert await _backend_pid(db) == pid
            await db.close()
        assert spawned == []
        assert engine.sync_engine.pool.checkedin() == 1
    finally:
        await engine.dispose()


async def test_reads_beyond_the_pool_close_their_overflow_connection(
    settings: Settings, database_url: str
) -> None:
    """Two reads at once on a pool of one: the second connection is an overflow one,
    closed (a round trip, so by the greenlet's way) when it comes back; the kept one
    serves the next read."""
    engine = create_engine(dataclasses.replace(settings, db_pool_size=1), database_url)
    admin = await asyncpg.connect(direct_dsn(database_url))
    try:
        warm = RequestDb(engine, None)
        kept = await _backend_pid(warm)
        await warm.close()
        one, two = RequestDb(engine, None), RequestDb(engine, None)
        pids = {await _backend_pid(one), await _backend_pid(two)}
        assert kept in pids and len(pids) == 2
        (overflow,) = pids - {kept}
        await one.close()
        await two.close()
        pool = engine.sync_engine.pool
        assert (pool.checkedin(), pool.checkedout()) == (1, 0)
        if settings.behind_pooler:
            # Which server connection a client's transaction gets is the pooler's choice,
            # and it keeps its server connections open.
            return
        for _ in range(50):
            alive = await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", overflow
            )
            if alive == 0:
                break
            await asyncio.sleep(0.05)
        assert alive == 0
        after = RequestDb(engine, None)
        assert await _backend_pid(after) == kept
        await after.close()
    finally:
        await admin.close()
        await engine.dispose()


# What a read sees of its transaction: its server connection, tenant, role and start.
READ = select(
    func.pg_backend_pid().label("pid"),
    func.current_setting("flows.esco_ids", True).label("tenant"),
    func.current_user().label("role"),
    cast(func.now(), String).label("began"),
)
ONE_ESCO, OTHER_ESCO = uuid.uuid4(), uuid.uuid4()


async def _read(db: RequestDb) -> Any:
    (row,) = await db.prepared_rows(READ, {})
    return row


@pytest.fixture
async def parked(
    settings: Settings, database_url: str
) -> AsyncIterator[tuple[AsyncEngine, Parking]]:
    """An engine as the app's (its role) with a pool of two, and a parking for one."""
    engine = create_engine(
        dataclasses.replace(settings, db_pool_size=2), database_url, api_role=True
    )
    parking = Parking(engine, most=1)
    try:
        yield engine, parking
    finally:
        await parking.close()
        await engine.dispose()


async def test_the_next_read_ends_a_parked_transaction_with_its_own_begin(parked) -> None:
    engine, parking = parked
    pool = engine.sync_engine.pool
    first = RequestDb(engine, frozenset({ONE_ESCO}), parking)
    one = await _read(first)
    await first.close()
    # Parked: still checked out, inside the finished read's transaction.
    assert pool.checkedout() == 1
    counter = StatementCounter()
    token = current_counter.set(counter)
    try:
        second = RequestDb(engine, frozenset({OTHER_ESCO}), parking)
        other = await _read(second)
    finally:
        current_counter.reset(token)
    # The same connection, one round trip before the read (ROLLBACK and BEGIN), and a
    # transaction of its own: the new viewer's tenant, the API's role, a new start.
    assert other.pid == one.pid
    assert counter.count == 2
    assert (one.tenant, other.tenant) == (str(ONE_ESCO), str(OTHER_ESCO))
    assert other.role == one.role == API_ROLE
    assert other.began != one.began
    await second.close()
    await parking.close()
    assert pool.checkedout() == 0
    _, in_transaction, tenant = await _pooled_state(engine)
    assert not in_transaction and tenant in (None, "")


async def test_a_parked_connection_no_read_takes_goes_back_to_the_pool(parked) -> None:
    engine, parking = parked
    pool = engine.sync_engine.pool
    db = RequestDb(engine, frozenset({ONE_ESCO}), parking)
    pid = (await _read(db)).pid
    await db.close()
    assert pool.checkedout() == 1
    for _ in range(100):
        await asyncio.sleep(PARK_S)
        if pool.checkedout() == 0:
            break
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert not driver.is_in_transaction()
        assert (await conn.execute(text("SELECT pg_backend_pid()"))).scalar() == pid


async def test_at_most_the_parking_s_size_waits(parked) -> None:
    engine, parking = parked
    pool = engine.sync_engine.pool
    one, two = RequestDb(engine, None, parking), RequestDb(engine, None, parking)
    await _read(one)
    await _read(two)
    await one.close()
    await two.close()
    # One parked; the other rolled back and pooled at once.
    assert (pool.checkedout(), pool.checkedin()) == (1, 1)


async def test_a_parked_connection_the_server_closed_is_not_reused(
    parked, database_url: str
) -> None:
    engine, parking = parked
    db = RequestDb(engine, None, parking)
    pid = (await _read(db)).pid
    await db.close()
    await _terminate(database_url, pid)
    again = RequestDb(engine, None, parking)
    assert (await _read(again)).pid != pid
    await again.close()
    await parking.close()
    assert engine.sync_engine.pool.checkedout() == 0


async def test_behind_a_transaction_pooler_no_read_is_parked(
    settings: Settings, database_url: str
) -> None:
    pooled = dataclasses.replace(settings, database_pooler="pgbouncer")
    unpooled = dataclasses.replace(settings, database_pooler="none")
    direct = create_app(unpooled, database_url, today=lambda: TODAY)
    behind = create_app(pooled, database_url, today=lambda: TODAY)
    try:
        assert isinstance(direct.state.parking, Parking)
        assert behind.state.parking is None
    finally:
        await direct.state.engine.dispose()
        await behind.state.engine.dispose()
