"""Monthly usage writes (rules.md §6): one meter-month, or a whole batch set-wise.

Both mutations apply the same rules to every row, collected before anything is
written:
- the meter exists in the viewer's scope (NOT_FOUND otherwise) and is not
  decommissioned (METER_DECOMMISSIONED);
- `month` is the 1st of a month (INVALID) and not after the current month by the
  billing clock (FUTURE_MONTH; the current month is accepted, it is billed
  month-to-date);
- the month is not finalized for the meter's ESCO (MONTH_FINALIZED);
- each quantity is a finite number of kWh, 0 or more, below 10^11 and with at most 3
  decimal places (the columns are numeric(14,3); more decimals are refused, never
  rounded).

A month being billed or finalized right now is RUN_IN_PROGRESS: a usage write holds
the month's billing lock (services/billing.py) in shared mode until it commits, so the
month cannot be billed or finalized under it (those answer RUN_IN_PROGRESS meanwhile),
and it does not wait for a run to finish (a run may take longer than the statement
timeout); the caller retries.

A meter-month already recorded is replaced as a whole (all three quantities and the
source), which is why every quantity is required. Costs already computed for a month
that is not finalized are recomputed by the next billing run.

An import is one ESCO's rows (`escoId`, or the ESCO of the meters when omitted), at most
MAX_IMPORT_ROWS of them; a meter-month appearing twice is DUPLICATE on the later row.
If any row is bad nothing is written and every bad row is reported with its index.
Otherwise all rows are upserted by one INSERT ... SELECT FROM unnest(...) ON CONFLICT
statement, which skips rows whose values are unchanged and reports how many rows it
created and updated (xmax = 0 marks a row the statement inserted). The whole import
runs a constant number of statements, whatever its size.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    Numeric,
    Text,
    any_,
    bindparam,
    cast,
    column,
    func,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.dialects.postgresql import UUID as PG_UUID

from ..db.models import BillingRun, Esco, Meter, MonthlyUsage, table_of
from ..db.models.enums import BillingRunStatus, MeterMode, UsageSource
from .billing import RUN_LOCK_CLASS, run_lock_name
from .problems import ErrorCode, Problems, reject
from .tx import Row, Tx, changed

USAGE = table_of(MonthlyUsage)
METERS = table_of(Meter)
RUNS = table_of(BillingRun)
ESCOS = table_of(Esco)

MAX_IMPORT_ROWS = 10_000
KWH_LIMIT = Decimal("1E11")  # numeric(14,3) holds values below 10^11
KWH_QUANTUM = Decimal("0.001")
QUANTITIES = ("power_kwh", "heat_kwh", "solar_kwh")
FIELD_NAMES = {"power_kwh": "powerKwh", "heat_kwh": "heatKwh", "solar_kwh": "solarKwh"}
USAGE_ROLES = ("admin", "operator", "partner")
USAGE_SCOPE = "usage:write"


@dataclass(frozen=True)
class UsageRow:
    """One meter-month as given. The meter is named by id or by serial: `meter_id_given`
    says an id was given (then `meter_id` is None when it names no meter)."""

    month: date
    power_kwh: Decimal
    heat_kwh: Decimal
    solar_kwh: Decimal
    source: UsageSource = UsageSource.METER
    meter_id: uuid.UUID | None = None
    meter_id_given: bool = False
    meter_serial: str | None = None

    def values(self) -> dict[str, Any]:
        return {
            "power_kwh": self.power_kwh,
            "heat_kwh": self.heat_kwh,
            "solar_kwh": self.solar_kwh,
            "source": self.source,
        }


@dataclass(frozen=True)
class ImportReport:
    imported: int
    created: int
    updated: int
    unchanged: int


# Where a row's problem is reported: the row index (unused for a single row)
# and the input field name, or None for the row as a whole.
Path = Callable[[int, str | None], tuple[str, ...]]


def _require(tx: Tx) -> None:
    """Admins, operators, and partner keys with the `usage:write` scope."""
    tx.require_role(*USAGE_ROLES, scope=USAGE_SCOPE)


def _single_path(_: int, field: str | None) -> tuple[str, ...]:
    return (field,) if field else ()


def _rows_path(i: int, field: str | None) -> tuple[str, ...]:
    return ("rows", str(i), field) if field else ("rows", str(i))


def first_of_month(day: date) -> date:
    return day.replace(day=1)


def check_kwh(problems: Problems, path: tuple[str, ...], value: Decimal) -> None:
    if not value.is_finite() or value < 0:
        problems.add(path, ErrorCode.INVALID, "Must be a number of kWh, 0 or more.")
    elif value >= KWH_LIMIT:
        problems.add(path, ErrorCode.INVALID, "Must be less than 100,000,000,000 kWh.")
    elif value != value.quantize(KWH_QUANTUM):
        problems.add(path, ErrorCode.INVALID, "At most 3 decimal places (it is stored to the Wh).")


def _meter_field(row: UsageRow) -> str:
    return "meterId" if row.meter_id_given else "meterSerial"


def _check_shape(problems: Problems, rows: Sequence[UsageRow], path: Path, today: date) -> None:
    """What each row says by itself: meter reference, month, quantities."""
    current_month = first_of_month(today)
    for i, row in enumerate(rows):
        if row.meter_id_given and row.meter_serial is not None:
            problems.add(
                path(i, "meterSerial"), ErrorCode.INVALID, "Give meterId or meterSerial, not both."
            )
        elif not row.meter_id_given and row.meter_serial is None:
            problems.add(path(i, "meterId"), ErrorCode.INVALID, "Give meterId or meterSerial.")
        if row.month.day != 1:
            problems.add(path(i, "month"), ErrorCode.INVALID, "Must be the 1st of a month.")
        elif row.month > current_month:
            problems.add(path(i, "month"), ErrorCode.FUTURE_MONTH, "The month has not begun.")
        for name in QUANTITIES:
            check_kwh(problems, path(i, FIELD_NAMES[name]), getattr(row, name))


async def _resolve_meters(tx: Tx, rows: Sequence[UsageRow]) -> list[Row | None]:
    """Every row's meter, in one statement (None when missing or out of scope)."""
    ids = list({r.meter_id for r in rows if r.meter_id_given and r.meter_id is not None})
    serials = list({r.meter_serial for r in rows if not r.meter_id_given and r.meter_serial})
    found: list[Row] = []
    if ids or serials:
        found = list(
            (
                await tx.conn.execute(
                    select(METERS.c.id, METERS.c.esco_id, METERS.c.serial, METERS.c.mode).where(
                        or_(
                            METERS.c.id
                            == any_(bindparam("ids", ids, type_=ARRAY(PG_UUID(as_uuid=True)))),
                            METERS.c.serial == any_(bindparam("serials", serials, ARRAY(Text))),
                        )
                    )
                )
            ).all()
        )
    visible = [m for m in found if tx.may_see(m.esco_id)]
    by_id = {m.id: m for m in visible}
    by_serial = {m.serial: m for m in visible}
    meters: list[Row | None] = []
    for row in rows:
        if row.meter_id_given:
            meters.append(by_id.get(row.meter_id) if row.meter_id is not None else None)
        elif row.meter_serial is not None:
            meters.append(by_serial.get(row.meter_serial))
        else:
            meters.append(None)
    return meters


async def _month_states(
    tx: Tx, esco_id: uuid.UUID, months: set[date]
) -> tuple[set[date], set[date]]:
    """(months being billed right now, months finalized) among `months` of the ESCO.

    First takes each month's billing lock (services/billing.py) in shared mode, without
    waiting: while this write is open no billing run or finalization of the month can
    start (they would answer RUN_IN_PROGRESS), so the finalized check cannot go stale
    before the usage is written; a month whose run or finalization holds the lock now
    is reported busy. The check runs as a second statement, after the locks are held.
    """
    if not months:
        return set(), set()
    ordered = sorted(months)
    by_key = {run_lock_name(esco_id, month): month for month in ordered}
    lock_keys = (
        func.unnest(bindparam("lock_keys", list(by_key), ARRAY(Text)))
        .table_valued(column("key", Text))
        .render_derived(name="lock_keys")
    )
    locked = (
        await tx.conn.execute(
            select(
                lock_keys.c.key,
                func.pg_try_advisory_xact_lock_shared(
                    RUN_LOCK_CLASS, func.hashtext(lock_keys.c.key)
                ).label("got"),
            ).select_from(lock_keys)
        )
    ).all()
    busy = {by_key[row.key] for row in locked if not row.got}
    finalized = set(
        (
            await tx.conn.execute(
                select(RUNS.c.month).where(
                    RUNS.c.esco_id == esco_id,
                    RUNS.c.status == BillingRunStatus.FINALIZED,
                    RUNS.c.month == any_(bindparam("months", ordered, ARRAY(Date))),
                )
            )
        )
        .scalars()
        .all()
    )
    return busy, finalized


async def _check_rows(
    tx: Tx,
    rows: Sequence[UsageRow],
    path: Path,
    esco_id: uuid.UUID | None,
    esco_id_given: bool = False,
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """Every rule of every row; raises with all problems, or returns the ESCO and each
    row's meter id. `esco_id`, when given, is the only ESCO the rows may name (None
    when the id given names no ESCO)."""
    problems = Problems()
    if esco_id_given:
        exists = (
            esco_id is not None
            and tx.may_see(esco_id)
            and await tx.conn.scalar(select(ESCOS.c.id).where(ESCOS.c.id == esco_id))
        )
        if not exists:
            raise reject("escoId", ErrorCode.NOT_FOUND, "No ESCO with this id.")
    _check_shape(problems, rows, path, tx.today())
    meters = await _resolve_meters(tx, rows)

    escos = {m.esco_id for m in meters if m is not None}
    if esco_id is None and len(escos) > 1:
        problems.add(
            "escoId",
            ErrorCode.INVALID,
            "The rows name meters of several ESCOs; import one ESCO at a time.",
        )
    target = esco_id if esco_id is not None else (escos.pop() if len(escos) == 1 else None)

    good_months = {
        row.month
        for row, meter in zip(rows, meters, strict=True)
        if meter is not None and row.month.day == 1
    }
    busy, finalized = (
        await _month_states(tx, target, good_months) if target is not None else (set(), set())
    )

    seen: dict[tuple[uuid.UUID, date], int] = {}
    for i, (row, meter) in enumerate(zip(rows, meters, strict=True)):
        if not row.meter_id_given and row.meter_serial is None:
            continue  # already reported: no meter named
        if meter is None or (target is not None and meter.esco_id != target):
            what = "id" if row.meter_id_given else "serial"
            problems.add(
                path(i, _meter_field(row)), ErrorCode.NOT_FOUND, f"No meter with this {what}."
            )
            continue
        if meter.mode == MeterMode.DECOMMISSIONED:
            problems.add(
                path(i, _meter_field(row)),
                ErrorCode.METER_DECOMMISSIONED,
                "The meter is decommissioned and takes no usage.",
            )
        if row.month.day != 1:
            continue
        if row.month in busy:
            problems.add(
                path(i, "month"),
                ErrorCode.RUN_IN_PROGRESS,
                "This month is being billed right now; try again shortly.",
            )
        elif row.month in finalized:
            problems.add(
                path(i, "month"),
                ErrorCode.MONTH_FINALIZED,
                "This month's billing is finalized; its usage cannot change.",
            )
        key = (meter.id, row.month)
        if key in seen:
            problems.add(
                path(i, None),
                ErrorCode.DUPLICATE,
                f"Same meter and month as row {seen[key]}.",
            )
        else:
            seen[key] = i
    # Report in input order: the whole input first, then row by row.
    problems.items.sort(key=lambda p: int(p.field[1]) if p.field[:1] == ("rows",) else -1)
    problems.raise_if_any()
    # No problems: every row named a meter of the one target ESCO.
    assert target is not None
    return target, [m.id for m in meters if m is not None]


async def record_monthly_usage(
    tx: Tx,
    meter_id: uuid.UUID | None,
    month: date,
    power_kwh: Decimal,
    heat_kwh: Decimal,
    solar_kwh: Decimal,
    source: UsageSource,
) -> tuple[Row, bool]:
    """Record one meter-month (create or replace); returns the row and whether it is
    new."""
    _require(tx)
    row = UsageRow(month, power_kwh, heat_kwh, solar_kwh, source, meter_id, meter_id_given=True)
    esco_id, (resolved_meter,) = await _check_rows(tx, [row], _single_path, None)
    before = (
        await tx.conn.execute(
            select(USAGE).where(USAGE.c.meter_id == resolved_meter, USAGE.c.month == month)
        )
    ).first()
    values = row.values()
    saved = (
        await tx.conn.execute(
            insert(MonthlyUsage)
            .values(esco_id=esco_id, meter_id=resolved_meter, month=month, **values)
            .on_conflict_do_update(index_elements=["meter_id", "month"], set_=values)
            .returning(USAGE)
        )
    ).one()
    old = {k: getattr(before, k) for k in values} if before is not None else {}
    await tx.audit(
        "recordMonthlyUsage",
        "monthly_usage",
        saved.id,
        {"meter_id": resolved_meter, "month": month, **changed(old, values)},
        esco_id,
    )
    await tx.emit(
        esco_id, "usage.imported", "Esco", esco_id, {"rows": 1, "months": [month], "meters": 1}
    )
    return saved, before is None


async def import_monthly_usage(
    tx: Tx, esco_id: uuid.UUID | None, rows: Sequence[UsageRow], *, esco_id_given: bool = False
) -> ImportReport:
    """`esco_id_given` with `esco_id` None: an escoId was given that names no ESCO."""
    _require(tx)
    if not rows:
        raise reject("rows", ErrorCode.INVALID, "Give at least one row.")
    if len(rows) > MAX_IMPORT_ROWS:
        raise reject(
            "rows", ErrorCode.INVALID, f"At most {MAX_IMPORT_ROWS} rows per call; split the file."
        )
    target, meter_ids = await _check_rows(
        tx, rows, _rows_path, esco_id, esco_id_given or esco_id is not None
    )

    u = (
        func.unnest(
            bindparam("meter_ids", meter_ids, ARRAY(PG_UUID(as_uuid=True))),
            bindparam("months", [r.month for r in rows], ARRAY(Date)),
            bindparam("power", [r.power_kwh for r in rows], ARRAY(Numeric)),
            bindparam("heat", [r.heat_kwh for r in rows], ARRAY(Numeric)),
            bindparam("solar", [r.solar_kwh for r in rows], ARRAY(Numeric)),
            bindparam("sources", [r.source.value for r in rows], ARRAY(Text)),
        )
        .table_valued(
            column("meter_id", PG_UUID(as_uuid=True)),
            column("month", Date),
            column("power_kwh", Numeric),
            column("heat_kwh", Numeric),
            column("solar_kwh", Numeric),
            column("source", Text),
        )
        .render_derived(name="u")
    )
    stmt = insert(MonthlyUsage).from_select(
        ["esco_id", "meter_id", "month", "power_kwh", "heat_kwh", "solar_kwh", "source"],
        select(
            literal(target, PG_UUID(as_uuid=True)),
            u.c.meter_id,
            u.c.month,
            u.c.power_kwh,
            u.c.heat_kwh,
            u.c.solar_kwh,
            cast(u.c.source, USAGE.c.source.type),
        ),
    )
    columns = [*QUANTITIES, "source"]
    upsert = stmt.on_conflict_do_update(
        index_elements=["meter_id", "month"],
        set_={c: stmt.excluded[c] for c in columns},
        # A row whose values are unchanged is left alone (and not counted as updated).
        where=tuple_(*(USAGE.c[c] for c in columns)).is_distinct_from(
            tuple_(*(stmt.excluded[c] for c in columns))
        ),
    ).returning(literal_column("monthly_usage.xmax = 0", Boolean).label("inserted"))
    written = upsert.cte("written")
    counts = (
        await tx.conn.execute(
            select(
                func.count().filter(written.c.inserted).label("created"),
                func.count().label("written"),
            ).select_from(written)
        )
    ).one()
    report = ImportReport(
        imported=len(rows),
        created=counts.created,
        updated=counts.written - counts.created,
        unchanged=len(rows) - counts.written,
    )
    months = sorted({r.month for r in rows})
    await tx.audit(
        "importMonthlyUsage",
        "esco",
        target,
        {
            "rows": report.imported,
            "created": report.created,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "meters": len(set(meter_ids)),
            "months": months,
        },
        target,
    )
    if report.created or report.updated:
        await tx.emit(
            target,
            "usage.imported",
            "Esco",
            target,
            {
                "rows": report.created + report.updated,
                "months": months,
                "meters": len(set(meter_ids)),
            },
        )
    return report
