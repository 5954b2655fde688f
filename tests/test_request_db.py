"""A request's database access (flows_graphql/db/request.py) gives its connection back
clean: no transaction left open when graphql-core cancels a read half-way, and no dead
connection kept in the pool."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
import pytest
from sqlalchemy import text

from flows_graphql.app import create_app
from flows_graphql.config import Settings
from flows_graphql.db.engine import create_engine
from flows_graphql.db.request import RequestDb
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


async def test_a_dead_connection_leaves_the_pool(settings: Settings, database_url: str) -> None:
    engine = create_engine(dataclasses.replace(settings, db_pool_size=1), database_url)
    try:
        async with engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
        admin = await asyncpg.connect(direct_dsn(database_url))
        try:
            await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        await asyncio.sleep(0.2)
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
