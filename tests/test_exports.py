"""CSV exports over HTTP and the command line: the rows, who may export, the audit
record, and memory that does not grow with the number of rows (streamed)."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import sys
import tracemalloc
from decimal import Decimal as D

from flows_graphql.auth.viewer import SYSTEM
from flows_graphql.exports import export_csv
from tests.support import ROOT
from tests.support import factories as f
from tests.support.api import TODAY, bearer


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_costs_payments_usage_over_http(client, raw, settings):
    esco = await f.build_esco(raw, "exp", customers=5, months=2)
    await f.build_esco(raw, "oth", customers=1, months=2)
    for i in range(5):
        await raw.execute(
            "INSERT INTO payments (esco_id, customer_id, account_id, amount_pence, status,"
            " scheduled_at, idempotency_key) VALUES ($1, $2, $3, $4, 'succeeded',"
            " timestamptz '2024-02-10 12:00Z', $5)",
            esco.id,
            esco.customer_ids[i],
            esco.account_ids[i],
            500 + i,
            f"k{i}",
        )
    response = await client.get("/exports/costs.csv", params={"esco": "exp", "month": "2024-02"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    costs = rows_of(response.text)
    assert [r["customer_email"] for r in costs] == esco.emails
    for i, row in enumerate(costs):
        want = f.costs(i, 1)
        assert (D(row["total"]), D(row["savings"]), row["month"]) == (
            want.total,
            want.savings,
            "2024-02-01",
        )
        assert D(row["power_kwh"]) == f.power_kwh(i, 1) and row["run_status"] == "completed"
    payments = rows_of((await client.get("/exports/payments.csv?esco=exp&month=2024-02")).text)
    # Same due time for all: in id order, so compared as a set of rows.
    assert sorted((r["amount_pence"], r["amount"], r["status"]) for r in payments) == [
        (str(500 + i), f"{5 + i / 100:.2f}", "succeeded") for i in range(5)
    ]
    usage = rows_of((await client.get("/exports/usage.csv?esco=exp&month=2024-01")).text)
    assert [r["meter_serial"] for r in usage] == [f.serial("exp", i) for i in range(5)]
    assert [D(r["heat_kwh"]) for r in usage] == [f.heat_kwh(i, 0) for i in range(5)]
    # Every export is audited.
    audited = await raw.fetch(
        "SELECT entity_id, changes FROM audit_log WHERE action = 'exportCsv' ORDER BY created_at"
    )
    assert [r["entity_id"] for r in audited] == ["costs", "payments", "usage"]


async def test_who_may_export(client, raw, settings):
    esco = await f.build_esco(raw, "exp", customers=1, months=1)
    other = await f.build_esco(raw, "oth", customers=1, months=1)
    url = "/exports/usage.csv?esco=exp&month=2024-01"

    async def status(path: str, headers: dict[str, str] | None) -> tuple[int, str]:
        response = await client.get(path, headers=headers)
        code = (
            ""
            if response.status_code == 200
            else response.json()["errors"][0]["extensions"]["code"]
        )
        return response.status_code, code

    operator = bearer(settings, "operator", escos=[str(esco.id)])
    stranger = bearer(settings, "operator", escos=[str(other.id)])
    customer = bearer(settings, "customer", customer_id=str(esco.customer_ids[0]))
    assert await status(url, operator) == (200, "")
    assert await status(url, stranger) == (404, "NOT_FOUND")  # like a missing ESCO
    assert await status(url.replace("esco=exp", "esco=nope"), operator) == (404, "NOT_FOUND")
    assert await status(url, customer) == (403, "FORBIDDEN")
    assert await status(url.replace("2024-01", "2024-1"), operator) == (400, "INVALID")
    assert await status(url.replace("usage", "secrets"), operator) == (404, "NOT_FOUND")
    assert await status("/exports/usage.json?esco=exp&month=2024-01", operator) == (
        404,
        "NOT_FOUND",
    )
    client.headers.pop("authorization")
    response = await client.get(url)
    assert response.status_code == 401


async def test_memory_does_not_grow_with_rows(engine, raw):
    """Peak memory of an export of 30,000 rows is that of 3,000: rows are streamed."""
    esco = await f.build_esco(raw, "exp", customers=1, months=1)

    async def peak(n: int) -> tuple[int, int]:
        await raw.execute("DELETE FROM payments")
        await raw.execute(
            "INSERT INTO payments (esco_id, customer_id, account_id, amount_pence, status,"
            " scheduled_at, idempotency_key) SELECT $1, $2, $3, 100, 'succeeded',"
            " timestamptz '2024-01-05 12:00Z' + g * interval '1 second', 'k' || g"
            " FROM generate_series(1, $4) AS g",
            esco.id,
            esco.customer_ids[0],
            esco.account_ids[0],
            n,
        )
        lines = 0
        tracemalloc.start()
        try:
            chunks = await export_csv(engine, SYSTEM, "payments", "exp", "2024-01", lambda: TODAY)
            async for chunk in chunks:
                lines += chunk.count(b"\n")
            return lines, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small_lines, small = await peak(3_000)
    big_lines, big = await peak(30_000)
    assert (small_lines, big_lines) == (3_001, 30_001)
    assert big < small * 2, (small, big)


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flows_graphql.cli",
        *args,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, stderr.decode()


async def test_command_line_export(raw, database_url, tmp_path, engine):
    await f.build_esco(raw, "exp", customers=3, months=1)
    out = tmp_path / "usage.csv"
    env = {**os.environ, "DATABASE_URL": database_url, "FLOWS_DATA_DIR": str(tmp_path)}
    code, stderr = await run_cli(
        "export", "usage", "--esco", "exp", "--month", "2024-01", "-o", str(out), env=env
    )
    assert code == 0, stderr
    assert "wrote 3 rows" in stderr
    assert [r["meter_serial"] for r in rows_of(out.read_text())] == [
        f.serial("exp", i) for i in range(3)
    ]
    code, stderr = await run_cli("export", "usage", "--esco", "nope", "--month", "2024-01", env=env)
    assert code == 1 and "NOT_FOUND" in stderr


async def test_an_esco_code_hiding_a_nul_is_unknown_not_a_crash(client):
    response = await client.get("/exports/costs.csv", params={"esco": "\x00", "month": "2025-01"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
