"""CSV exports of one ESCO's month: costs, payments, usage (docs/money.md, "Exports").

Rows are read through a server-side cursor and written out a batch at a time, so an
export of any size holds one batch in memory. Who may export is the API's rule for
reading the rows: admins, operators of the ESCO, partner keys with `read`; customers
read their own figures through the API, not as an ESCO's file. Every export is audited
(`exportCsv`) before its first row is sent.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .auth.viewer import Viewer
from .db.engine import SET_TENANT, tenant_setting
from .db.models import Esco, table_of
from .loaders.money import supplied
from .services.tx import Tx

ESCOS = table_of(Esco)
BATCH = 2000
EXPORT_IDLE_MS = 300_000
EXPORT_SETTINGS = text(
    "SELECT set_config('statement_timeout', '0', true),"
    f" set_config('idle_in_transaction_session_timeout', '{EXPORT_IDLE_MS}', true)"
)
# What an export spends of its principal's rate limit (docs/operations.md): a month of
# an ESCO is read whole, so it costs what a large dashboard does. The number of rows is
# not known before the export runs, and the points are spent before, like a query's.
EXPORT_COST = 10_000


@dataclass(frozen=True)
class Export:
    columns: Sequence[str]
    sql: str


# Costs of the month's run in force (the rows a re-run replaced are gone).
COSTS_SQL = """
SELECT c.month, a.account_number, cu.email AS customer_email, m.serial AS meter_serial,
       u.power_kwh, u.heat_kwh, c.power, c.heat, c.standing_charge, c.total,
       c.microgrid_total, c.benchmark_total, c.benchmark_total - c.total AS savings,
       r.status AS run_status
  FROM monthly_costs c
  JOIN billing_runs r ON r.id = c.billing_run_id AND r.status IN ('completed', 'finalized')
  JOIN monthly_usage u ON u.id = c.monthly_usage_id
  JOIN meters m ON m.id = u.meter_id
  JOIN customers cu ON cu.id = c.customer_id
  LEFT {supplied}
  LEFT JOIN accounts a ON a.property_id = sp.property_id AND a.opened_on <= c.month
        AND (a.closed_on IS NULL OR a.closed_on >= c.month)
 WHERE c.esco_id = :esco_id AND c.month = :month
 ORDER BY m.serial, c.id
""".format(supplied=supplied("u.meter_id", "u.month"))
# Payments due (scheduled, else created) in the month on the billing clock, any status.
PAYMENTS_SQL = """
SELECT y.created_at, y.scheduled_at, y.status, y.amount_pence,
       y.amount_pence * 0.01 AS amount, y.currency, cu.email AS customer_email,
       a.account_number, y.provider_reference, y.description, y.id AS payment_id
  FROM payments y
  JOIN customers cu ON cu.id = y.customer_id
  JOIN accounts a ON a.id = y.account_id
 WHERE y.esco_id = :esco_id
   AND date_trunc('month', COALESCE(y.scheduled_at, y.created_at) AT TIME ZONE
       'Europe/London') = CAST(:month AS timestamp)
 ORDER BY COALESCE(y.scheduled_at, y.created_at), y.id
"""
USAGE_SQL = """
SELECT u.month, m.serial AS meter_serial, p.plot, u.power_kwh, u.heat_kwh, u.solar_kwh,
       u.source
  FROM monthly_usage u
  JOIN meters m ON m.id = u.meter_id
  LEFT {supplied}
  LEFT JOIN properties p ON p.id = sp.property_id
 WHERE u.esco_id = :esco_id AND u.month = :month
 ORDER BY m.serial
""".format(supplied=supplied("u.meter_id", "u.month"))

EXPORTS = {
    "costs": Export(
        (
            "month",
            "account_number",
            "customer_email",
            "meter_serial",
            "power_kwh",
            "heat_kwh",
            "power",
            "heat",
            "standing_charge",
            "total",
            "microgrid_total",
            "benchmark_total",
            "savings",
            "run_status",
        ),
        COSTS_SQL,
    ),
    "payments": Export(
        (
            "created_at",
            "scheduled_at",
            "status",
            "amount_pence",
            "amount",
            "currency",
            "customer_email",
            "account_number",
            "provider_reference",
            "description",
            "payment_id",
        ),
        PAYMENTS_SQL,
    ),
    "usage": Export(
        ("month", "meter_serial", "plot", "power_kwh", "heat_kwh", "solar_kwh", "source"),
        USAGE_SQL,
    ),
}


class ExportRefused(Exception):
    """Why an export cannot run: `status` is the HTTP status, `code` the error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def parse_month(value: str | None) -> date:
    try:
        if value is None or len(value) != 7:
            raise ValueError
        return date.fromisoformat(value + "-01")
    except ValueError:
        raise ExportRefused(400, "INVALID", "`month` is YYYY-MM.") from None


def may_export(viewer: Viewer) -> bool:
    if viewer.role in ("admin", "operator"):
        return True
    return viewer.role == "partner" and "read" in viewer.scopes


async def _esco_id(conn: AsyncConnection, viewer: Viewer, code: str | None) -> uuid.UUID:
    found = None
    # Text PostgreSQL cannot hold (a NUL) names no ESCO: answered like any unknown code.
    if code and "\x00" not in code and len(code) <= 64:
        found = await conn.scalar(select(ESCOS.c.id).where(ESCOS.c.code == code))
    scope = viewer.esco_scope
    if found is None or (scope is not None and found not in scope):
        # Out of scope is answered exactly like missing.
        raise ExportRefused(404, "NOT_FOUND", "No ESCO with this code.")
    return found


# A cell a spreadsheet would run as a formula (customers write payment descriptions).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    enum_value = getattr(value, "value", None)
    if isinstance(enum_value, str):
        return enum_value
    if isinstance(value, date):
        return value.isoformat()
    return value


async def export_csv(
    engine: AsyncEngine,
    viewer: Viewer,
    kind: str,
    esco_code: str | None,
    month_text: str | None,
    today: Any,
    admit: Callable[[int], Awaitable[Any]] | None = None,
) -> AsyncGenerator[bytes, None]:
    """The CSV of `kind` for the ESCO's month, in chunks (the header first). Raises
    ExportRefused before anything is produced when it may not run. `admit(cost)` is
    awaited once the request is known to be a valid one, before the database is used
    (the rate limit: it raises to refuse)."""
    export = EXPORTS.get(kind)
    if export is None:
        raise ExportRefused(404, "NOT_FOUND", f"No export {kind!r} (costs, payments, usage).")
    if not may_export(viewer):
        raise ExportRefused(403, "FORBIDDEN", "Exports are for staff and partner keys.")
    month = parse_month(month_text)
    if admit is not None:
        await admit(EXPORT_COST)
    tenant = {"esco_ids": tenant_setting(viewer.esco_scope)}
    async with engine.begin() as conn:
        await conn.execute(SET_TENANT, tenant)
        esco_id = await _esco_id(conn, viewer, esco_code)
        await Tx(conn, viewer, today).audit(
            "exportCsv", "export", kind, {"kind": kind, "month": month}, esco_id
        )
    rows = _rows(engine, tenant, export, esco_id, month)
    try:
        # The snapshot is opened and the first batch read before anything is sent: a
        # database fault up to here is still an answer in JSON (503), not a cut CSV.
        first = await anext(rows)
    except BaseException:
        await rows.aclose()
        raise
    return _primed(first, rows)


async def _primed(first: bytes, rows: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
    """`first`, then the rest of `rows`; closing this closes `rows` (and its snapshot)
    at once, wherever the reader stopped."""
    try:
        yield first
        async for chunk in rows:
            yield chunk
    finally:
        await rows.aclose()


async def _rows(
    engine: AsyncEngine, tenant: dict[str, str], export: Export, esco_id: uuid.UUID, month: date
) -> AsyncGenerator[bytes, None]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(export.columns)
    async with engine.connect() as plain:
        conn = await plain.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            await conn.execute(text("SET TRANSACTION READ ONLY"))
            await conn.execute(SET_TENANT, tenant)
            # A large ESCO's export may outlast the API's statement timeout, and waits
            # between batches for a client that reads slowly; one that reads nothing
            # for EXPORT_IDLE_MS loses its export (and the snapshot it holds).
            await conn.execute(EXPORT_SETTINGS)
            result = await conn.stream(text(export.sql), {"esco_id": esco_id, "month": month})
            async for batch in result.partitions(BATCH):
                writer.writerows([_cell(v) for v in row] for row in batch)
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()
