"""Prometheus metrics at /metrics: scraped, and seen to move as requests are made;
who may scrape them; one set for `serve --workers N`."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flows_graphql.app import create_app
from flows_graphql.config import RateLimits
from tests.support.api import TODAY, asgi_client, bearer
from tests.support.net import free_port, serve

REGIONS = "query Regions { regions { code name } }"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def make_client(engine, database_url):
    made = []

    async def make(settings, **headers):
        app = create_app(settings, database_url, today=lambda: TODAY)
        client = asgi_client(app, {**bearer(settings, "admin"), **headers})
        made.append((client, app))
        return client

    yield make
    for client, app in made:
        await client.aclose()
        await app.state.engine.dispose()


async def scrape(client: httpx.AsyncClient, **headers: str) -> str:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_requests_are_counted_by_operation_status_and_code(settings, make_client):
    client = await make_client(settings)
    before = await scrape(client)
    ok = {"operation": "Regions", "type": "query", "status": "200", "code": "none"}
    for _ in range(3):
        assert (await client.post("/graphql", json={"query": REGIONS})).status_code == 200
    await client.post("/graphql", json={"query": "query Broken { nope }"})
    await client.post(
        "/graphql", json={"query": REGIONS}, headers={"Authorization": "Bearer nonsense"}
    )
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("flows_graphql_requests_total", **ok) == 3
    broken = {"operation": "Broken", "type": "query", "code": "GRAPHQL_VALIDATION_FAILED"}
    assert delta("flows_graphql_requests_total", status="200", **broken) == 1
    unauthenticated = {"operation": "anonymous", "type": "unknown", "status": "401"}
    assert delta("flows_graphql_requests_total", code="UNAUTHENTICATED", **unauthenticated) == 1
    assert delta("flows_graphql_request_duration_seconds_count", operation="Regions") == 3
    assert delta("flows_graphql_request_duration_seconds_sum", operation="Regions") > 0
    # The regions query runs two statements (the snapshot's BEGIN, the SELECT).
    assert delta("flows_graphql_sql_statements_count", operation="Regions") == 3
    assert delta("flows_graphql_sql_statements_sum", operation="Regions") == 6
    assert delta("flows_graphql_sql_statements_bucket", operation="Regions", le="2.0") == 3


async def test_pool_gauges_follow_the_connections(settings, make_client):
    client = await make_client(settings)
    before = await scrape(client)
    await client.post("/graphql", json={"query": REGIONS})
    after = await scrape(client)
    # Capacity: this app's pool (10 + 10 overflow) was added when it was made.
    assert value(after, "flows_db_pool_capacity") >= 20
    # The request's connection was opened and is back in the pool: open, not in use.
    assert value(after, "flows_db_pool_open") >= value(before, "flows_db_pool_open") + 1
    assert value(after, "flows_db_pool_in_use") == value(before, "flows_db_pool_in_use")
    assert value(after, "flows_db_pool_waiting") == 0


async def test_waiting_for_a_connection_is_seen(settings, make_client):
    """Every connection of a pool of one (plus one overflow) taken: the next request
    waits, and the gauge says so until a connection comes back."""
    small = dataclasses.replace(settings, db_pool_size=1)
    client = await make_client(small)
    engine = client._transport.app.state.engine  # type: ignore[attr-defined]
    held = [await engine.connect(), await engine.connect()]
    request = asyncio.create_task(client.post("/graphql", json={"query": REGIONS}))
    try:
        for _ in range(100):
            if value(await scrape(client), "flows_db_pool_waiting") == 1:
                break
            await asyncio.sleep(0.02)
        assert value(await scrape(client), "flows_db_pool_waiting") == 1
        assert not request.done()
    finally:
        for conn in held:
            await conn.close()
    assert (await request).status_code == 200
    assert value(await scrape(client), "flows_db_pool_waiting") == 0


async def test_rate_limit_refusals_are_counted(settings, make_client):
    tight = dataclasses.replace(settings, rate_limits=RateLimits(admin=10))
    client = await make_client(tight, **bearer(settings, "admin", sub=f"m-{uuid.uuid4()}"))
    before = await scrape(client)
    statuses = [(await client.post("/graphql", json={"query": REGIONS})).status_code for _ in "ab"]
    assert statuses == [200, 429]
    after = await scrape(client)
    assert value(after, "flows_rate_limit_refusals_total", tier="admin") == (
        value(before, "flows_rate_limit_refusals_total", tier="admin") + 1
    )
    limited = {"operation": "Regions", "type": "query", "status": "429", "code": "RATE_LIMITED"}
    assert value(after, "flows_graphql_requests_total", **limited) == (
        value(before, "flows_graphql_requests_total", **limited) + 1
    )


async def test_billing_runs_and_imports_are_timed(settings, make_client, raw):
    client = await make_client(settings)
    esco = uuid.uuid4()
    await raw.execute(
        "INSERT INTO escos (id, code, name, region_code) VALUES ($1, 'mx', 'M', 'london')", esco
    )
    before = await scrape(client)
    run = await client.post(
        "/graphql",
        json={
            "query": "mutation R($i: RunBillingInput!) { runBilling(input: $i) "
            "{ billingRun { customersBilled } userErrors { code } } }",
            "variables": {"i": {"escoId": str(esco), "month": "2025-02-01"}},
        },
    )
    assert run.json()["data"]["runBilling"]["userErrors"] == [], run.json()
    imported = await client.post(
        "/graphql",
        json={
            "query": "mutation I($i: ImportMonthlyUsageInput!) { importMonthlyUsage(input: $i) "
            "{ importedCount userErrors { code } } }",
            "variables": {
                "i": {
                    "rows": [
                        {
                            "meterSerial": "NO-SUCH-METER",
                            "month": "2025-02-01",
                            "powerKwh": "1",
                            "heatKwh": "1",
                            "solarKwh": "0",
                        }
                    ]
                }
            },
        },
    )
    assert imported.json()["data"]["importMonthlyUsage"]["userErrors"], imported.json()
    after = await scrape(client)
    runs = {"job": "billing_run", "outcome": "ok"}
    assert value(after, "flows_job_duration_seconds_count", **runs) == (
        value(before, "flows_job_duration_seconds_count", **runs) + 1
    )
    refused = {"job": "usage_import", "outcome": "failed"}
    assert value(after, "flows_job_duration_seconds_count", **refused) == (
        value(before, "flows_job_duration_seconds_count", **refused) + 1
    )


async def test_a_metrics_token_guards_the_endpoint(settings, make_client):
    client = await make_client(dataclasses.replace(settings, metrics_token="s3cret-scrape"))
    assert (await client.get("/metrics")).status_code == 401
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer guess"})
    assert wrong.status_code == 401
    text = await scrape(client, Authorization="Bearer s3cret-scrape")
    assert "flows_graphql_requests_total" in text


async def test_production_serves_no_metrics_unless_asked(settings, make_client):
    production = dataclasses.replace(settings, env="production", graphiql=False)
    assert (await (await make_client(production)).get("/metrics")).status_code == 404
    # With a port of their own, the API's port never serves them, in development too.
    own_port = dataclasses.replace(settings, metrics_port=9999)
    assert (await (await make_client(own_port)).get("/metrics")).status_code == 404


def test_workers_report_one_set_on_the_metrics_port(settings, database_url, engine, tmp_path):
    """`serve --workers 2`: whichever worker answers, the metrics port sums them all."""
    metrics_port = free_port()
    with serve(
        settings,
        database_url,
        tmp_path,
        "--workers",
        "2",
        env={"FLOWS_METRICS_PORT": str(metrics_port)},
        dropped=("PROMETHEUS_",),
    ) as port:
        headers = bearer(settings, "admin")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as http:
            for _ in range(20):
                # A new connection each time, so both workers get requests.
                response = http.post(
                    "/graphql", json={"query": REGIONS}, headers={"Connection": "close"}
                )
                assert response.status_code == 200, response.text
            assert http.get("/metrics").status_code == 404  # not on the API's port
        # Two workers, each with its pool: the capacities add up. A worker reports its
        # pool when it has started, and /healthz answering says one has: the other may
        # still be starting on a busy machine, so wait for it (the bound is generous).
        deadline = time.monotonic() + 30
        while True:
            text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            if value(text, "flows_db_pool_capacity") == 2 * 20 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert value(text, "flows_db_pool_capacity") == 2 * 20
        ok = {"operation": "Regions", "type": "query", "status": "200", "code": "none"}
        assert value(text, "flows_graphql_requests_total", **ok) == 20
        assert value(text, "flows_graphql_sql_statements_sum", operation="Regions") == 40


async def test_the_graphiql_page_is_no_operation(settings, make_client):
    client = await make_client(settings)

    def total(text: str) -> float:
        return sum(
            v for (name, _), v in samples(text).items() if name == "flows_graphql_requests_total"
        )

    before = total(await scrape(client))
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert total(await scrape(client)) == before
