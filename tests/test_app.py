from __future__ import annotations

from flows_graphql.db.migrate import head_revision
from tests.support.api import gql


async def test_healthz(client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert len(response.headers["x-request-id"]) == 32


async def test_request_id_is_kept_from_caller(client):
    response = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"


async def test_readyz_at_latest_migration(client):
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"
    assert response.json()["revision"] == head_revision()


async def test_readyz_503_when_behind(client, raw):
    await raw.execute("UPDATE alembic_version SET version_num = 'stale'")
    try:
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["reason"] == "migrations"
    finally:
        await raw.execute("UPDATE alembic_version SET version_num = $1", head_revision())


async def test_regions_are_seeded_and_counted(client):
    body = await gql(client, "{ regions { code name } }")
    codes = [r["code"] for r in body["data"]["regions"]]
    assert len(codes) == 14
    assert "south_west" in codes and "north_wales_mersey" in codes
    # The tenant setting of row-level security, then the regions.
    assert body["extensions"]["sqlStatements"] == 2
