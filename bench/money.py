"""Balances, summaries and exports at scale (issue 13), in process:

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/flows_bench_money \\
        python -m bench.money [--reuse] [--repeat N]

On the big ESCO of the bench data set (10,000 customers, 12 billed months):
- `Esco.monthlySummaries` of the 12 months: statements and ms per request, against
  paging every customer's 12 `monthlyCosts` (the rows the summaries add up) with
  `customers(first: 100, after:)` and adding them up in the client;
- one account's `statements` over 24 months with its `balance`;
- an export of 100,000 payment rows through `flows-graphql export` (a child process):
  seconds and its peak RSS.
Requests go through the ASGI app in this process (no HTTP server), as an admin.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from flows_graphql.app import create_app
from flows_graphql.auth.tokens import issue_token
from flows_graphql.config import Settings
from flows_graphql.types.node import to_global_id

from .datagen import Shape, add_months
from .dataset import describe
from .load import current_label, generate, this_month
from .settings import BenchSettings

SUMMARY_FIELDS = (
    "month customersBilled metersSkipped powerKwh heatKwh solarKwh total microgridTotal "
    "benchmarkTotal savings solarCredits paymentsReceived outstanding"
)
EXPORT_ROWS = 100_000


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


async def post(client: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> Any:
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    body = response.json()
    if "errors" in body:
        raise SystemExit(f"errors: {body['errors']}")
    return body


async def timed(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any], repeat: int
) -> tuple[float, int, Any]:
    """Median seconds, statements and the last body of `repeat` runs (after one warm-up)."""
    body = await post(client, query, variables)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        body = await post(client, query, variables)
        times.append(time.perf_counter() - started)
    return statistics.median(times), body["extensions"]["sqlStatements"], body


async def summaries(client: httpx.AsyncClient, code: str, first: date, last: date, repeat: int):
    query = f"""query($code: String!, $from: Date, $to: Date) {{ esco(code: $code) {{
      monthlySummaries(from: $from, to: $to) {{ {SUMMARY_FIELDS} }} }} }}"""
    variables = {"code": code, "from": first.isoformat(), "to": last.isoformat()}
    seconds, statements, body = await timed(client, query, variables, repeat)
    rows = body["data"]["esco"]["monthlySummaries"]
    total = sum((Decimal(r["total"]) for r in rows), Decimal(0))
    return seconds, statements, len(rows), total


async def paging(client: httpx.AsyncClient, esco_id: str, first: date, last: date):
    """Every customer's costs of the 12 months, page after page, added up here."""
    query = """query($e: ID, $after: String, $from: Date, $to: Date) {
      customers(escoId: $e, first: 100, after: $after) {
        pageInfo { hasNextPage endCursor }
        nodes { monthlyCosts(from: $from, to: $to) { month total
          microgrid { total } benchmark { total } usage { powerKwh heatKwh solarKwh } } } } }"""
    after = None
    pages = statements = rows = 0
    total = Decimal(0)
    started = time.perf_counter()
    while True:
        body = await post(
            client,
            query,
            {"e": esco_id, "after": after, "from": first.isoformat(), "to": last.isoformat()},
        )
        pages += 1
        statements += body["extensions"]["sqlStatements"]
        page = body["data"]["customers"]
        for node in page["nodes"]:
            for costs in node["monthlyCosts"]:
                rows += 1
                total += Decimal(costs["total"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    return time.perf_counter() - started, statements, pages, rows, total


async def statement_24(client: httpx.AsyncClient, db: asyncpg.Connection, esco_id, anchor, repeat):
    account = await db.fetchval(
        "SELECT a.id FROM accounts a WHERE a.esco_id = $1 AND a.status = 'active'"
        " ORDER BY a.opened_on, a.id LIMIT 1",
        esco_id,
    )
    query = """query($id: ID!, $from: Date) { node(id: $id) { ... on Account {
      balance statements(from: $from) { month openingBalance closingBalance solarCredit payments
        charges { power heat standingCharge total } } } } }"""
    variables = {
        "id": to_global_id("Account", account),
        "from": add_months(anchor, -23).isoformat(),
    }
    seconds, statements, body = await timed(client, query, variables, repeat)
    return seconds, statements, len(body["data"]["node"]["statements"])


async def export_100k(db: asyncpg.Connection, settings: BenchSettings, esco_id, code: str):
    """100,000 payments due in one month far from the data set's, exported by the CLI."""
    month = date(2031, 1, 1)
    customer, account = await db.fetchrow(
        "SELECT ca.customer_id, ca.account_id FROM customer_accounts ca"
        " WHERE ca.esco_id = $1 LIMIT 1",
        esco_id,
    )
    await db.execute(
        "DELETE FROM payments WHERE esco_id = $1 AND scheduled_at >= '2031-01-01'", esco_id
    )
    await db.execute(
        "INSERT INTO payments (esco_id, customer_id, account_id, amount_pence, status,"
        " scheduled_at, idempotency_key, provider_reference, description)"
        " SELECT $1, $2, $3, 100 + g % 900, 'succeeded',"
        " timestamptz '2031-01-02 12:00Z' + g * interval '10 seconds', 'bench-' || g,"
        " 'pi_bench_' || g, 'bench export row ' || g FROM generate_series(1, $4) AS g",
        esco_id,
        customer,
        account,
        EXPORT_ROWS,
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "payments.csv"
            env = {**os.environ, "DATABASE_URL": settings.database_url, "FLOWS_DATA_DIR": tmp}
            command = [
                sys.executable,
                "-m",
                "flows_graphql.cli",
                "export",
                "payments",
                "--esco",
                code,
                "--month",
                month.strftime("%Y-%m"),
                "-o",
                str(out),
            ]
            started = time.perf_counter()
            process = await asyncio.to_thread(subprocess.Popen, command, env=env)
            # wait4: the peak RSS of this child alone (KiB on Linux), not of every
            # child so far (the data load's migration is one).
            _, status, usage = await asyncio.to_thread(os.wait4, process.pid, 0)
            seconds = time.perf_counter() - started
            process.returncode = os.waitstatus_to_exitcode(status)
            if process.returncode != 0:
                raise SystemExit(f"export failed: {process.returncode}")
            peak_kib = usage.ru_maxrss
            lines = out.read_bytes().count(b"\n")
            size = out.stat().st_size
    finally:
        await db.execute(
            "DELETE FROM payments WHERE esco_id = $1 AND scheduled_at >= '2031-01-01'", esco_id
        )
    return seconds, peak_kib, lines - 1, size


async def main_async(args: argparse.Namespace) -> None:
    settings = BenchSettings.from_env()
    shape = Shape(10_000, 1, this_month())
    if not (args.reuse and await current_label(settings) == shape.label):
        await generate(settings, shape)
    data = await describe(settings, shape.label)
    app_settings = Settings(
        data_dir=Path(tempfile.mkdtemp()), debug_sql=True, jwt_secret=settings.jwt_secret
    )
    app = create_app(app_settings, settings.database_url)
    token = issue_token(settings.jwt_secret, sub="bench", role="admin")
    db = await asyncpg.connect(settings.database_url)
    first, last = data.first_month, data.last_month
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://bench",
            headers={"Authorization": f"Bearer {token}"},
            timeout=600,
        ) as client:
            s_sec, s_stm, s_rows, s_total = await summaries(
                client, data.esco_code, first, last, args.repeat
            )
            p_sec, p_stm, p_pages, p_rows, p_total = await paging(
                client, str(data.esco_id), first, last
            )
            t_sec, t_stm, t_rows = await statement_24(
                client, db, data.esco_id, data.anchor, args.repeat
            )
        e_sec, e_kib, e_rows, e_size = await export_100k(db, settings, data.esco_id, data.esco_code)
    finally:
        await db.close()
        await app.state.engine.dispose()
    assert s_total == p_total, (s_total, p_total)
    print(f"data: {shape.label}, {data.customers:,} customers, months {first} .. {last}")
    print("| measure | requests | SQL statements | time |")
    print("|---|---|---|---|")
    print(
        f"| `Esco.monthlySummaries`, 12 months ({s_rows} rows) | 1 | {s_stm} | "
        f"{ms(s_sec)} ms (median of {args.repeat}) |"
    )
    print(
        f"| the same by paging `customers(first: 100)` → 12 × `monthlyCosts` "
        f"({p_rows:,} cost rows), summed in the client | {p_pages} | {p_stm} | "
        f"{ms(p_sec)} ms |"
    )
    print(
        f"| one account's `statements` over 24 months ({t_rows} statements) + `balance` "
        f"| 1 | {t_stm} | {ms(t_sec)} ms (median of {args.repeat}) |"
    )
    print(
        f"| `flows-graphql export payments`, {e_rows:,} rows ({e_size / 1e6:.1f} MB) | — | "
        f"— | {e_sec:.2f} s, peak RSS {e_kib / 1024:.0f} MiB |"
    )
    print(f"(totals agree: {s_total} GBP)")


def main() -> None:
    parser = argparse.ArgumentParser(description="Balances, summaries and exports at scale.")
    parser.add_argument("--reuse", action="store_true", help="keep a loaded data set")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per measure")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
