"""Usage mutations (recordMonthlyUsage, importMonthlyUsage)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated

import strawberry

from ..context import Context
from ..db.models.enums import UsageSource
from ..metrics import timed_job
from ..services import usage as service
from ..types.billing import MonthlyUsage
from ..types.errors import UserError
from ..types.node import parse_id
from .mutation import run

Info = strawberry.Info[Context, None]

KWH = "kWh, 0 or more, at most 3 decimal places."


@strawberry.input(description="One month of one meter's readings; replaces any recorded.")
class RecordMonthlyUsageInput:
    meter_id: strawberry.ID = strawberry.field(description="The meter (global id or uuid).")
    month: date = strawberry.field(
        description="The month: its 1st, not after the current month, not finalized."
    )
    power_kwh: Decimal = strawberry.field(description=f"Power used, {KWH}")
    heat_kwh: Decimal = strawberry.field(description=f"Heat used, {KWH}")
    solar_kwh: Decimal = strawberry.field(description=f"Solar generated, {KWH}")
    source: UsageSource = strawberry.field(
        default=UsageSource.METER, description="Where the figures come from (default METER)."
    )


@strawberry.type(description="The result of recordMonthlyUsage.")
class RecordMonthlyUsagePayload:
    monthly_usage: MonthlyUsage | None = strawberry.field(description="The month as recorded.")
    created: bool | None = strawberry.field(
        description="True when the meter had no usage for this month before."
    )
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(
    description="One meter-month of an import. Name the meter by exactly one of "
    "`meterId` and `meterSerial`."
)
class UsageRowInput:
    month: date = strawberry.field(
        description="The month: its 1st, not after the current month, not finalized."
    )
    power_kwh: Decimal = strawberry.field(description=f"Power used, {KWH}")
    heat_kwh: Decimal = strawberry.field(description=f"Heat used, {KWH}")
    solar_kwh: Decimal = strawberry.field(description=f"Solar generated, {KWH}")
    meter_id: strawberry.ID | None = strawberry.field(
        default=None, description="The meter (global id or uuid)."
    )
    meter_serial: str | None = strawberry.field(
        default=None, description="The meter's serial, as partner systems know it."
    )
    source: UsageSource = strawberry.field(
        default=UsageSource.METER, description="Where the figures come from (default METER)."
    )


@strawberry.input(description="Many meter-months of one ESCO, written all or nothing.")
class ImportMonthlyUsageInput:
    rows: list[UsageRowInput] = strawberry.field(
        description=f"1..{service.MAX_IMPORT_ROWS} rows; each meter-month at most once."
    )
    esco_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="The ESCO (global id or uuid); every meter must be one of its. "
        "Omitted: the ESCO of the meters, which must all be of one ESCO.",
    )


@strawberry.type(description="The result of importMonthlyUsage.")
class ImportMonthlyUsagePayload:
    imported_count: int = strawberry.field(
        description="Rows accepted (all of them, or 0 when there are user errors)."
    )
    created_count: int = strawberry.field(description="Meter-months recorded for the first time.")
    updated_count: int = strawberry.field(description="Meter-months whose values changed.")
    unchanged_count: int = strawberry.field(
        description="Meter-months already recorded with exactly these values."
    )
    user_errors: list[UserError] = strawberry.field(
        description="Every bad row, with its index in `field` (e.g. "
        '`["rows", "2", "meterSerial"]`); when any, nothing was written.'
    )


def _row(row: UsageRowInput) -> service.UsageRow:
    return service.UsageRow(
        month=row.month,
        power_kwh=row.power_kwh,
        heat_kwh=row.heat_kwh,
        solar_kwh=row.solar_kwh,
        source=row.source,
        meter_id=parse_id(row.meter_id, "Meter") if row.meter_id is not None else None,
        meter_id_given=row.meter_id is not None,
        meter_serial=row.meter_serial,
    )


@strawberry.type
class Mutations:
    @strawberry.mutation(
        description="Record (or replace) one month of a meter's usage. Admins, operators "
        "and partner keys with `usage:write`."
    )
    async def record_monthly_usage(
        self,
        info: Info,
        input: Annotated[
            RecordMonthlyUsageInput, strawberry.argument(description="The meter-month to record.")
        ],
    ) -> RecordMonthlyUsagePayload:
        result, errors = await run(
            info,
            lambda tx: service.record_monthly_usage(
                tx,
                parse_id(input.meter_id, "Meter"),
                input.month,
                input.power_kwh,
                input.heat_kwh,
                input.solar_kwh,
                input.source,
            ),
        )
        if result is None:
            return RecordMonthlyUsagePayload(monthly_usage=None, created=None, user_errors=errors)
        row, created = result
        return RecordMonthlyUsagePayload(monthly_usage=row, created=created, user_errors=[])

    @strawberry.mutation(
        description="Import many meter-months in one call: every row is checked first; if "
        "any is bad nothing is written and every bad row is reported. Admins, operators "
        "and partner keys with `usage:write`."
    )
    async def import_monthly_usage(
        self,
        info: Info,
        input: Annotated[
            ImportMonthlyUsageInput, strawberry.argument(description="The rows to import.")
        ],
    ) -> ImportMonthlyUsagePayload:
        esco_id = parse_id(input.esco_id, "Esco") if input.esco_id is not None else None
        rows = [_row(r) for r in input.rows]
        report, errors = await run(
            info,
            lambda tx: timed_job(
                "usage_import",
                service.import_monthly_usage(
                    tx, esco_id, rows, esco_id_given=input.esco_id is not None
                ),
            ),
        )
        if report is None:
            return ImportMonthlyUsagePayload(
                imported_count=0,
                created_count=0,
                updated_count=0,
                unchanged_count=0,
                user_errors=errors,
            )
        return ImportMonthlyUsagePayload(
            imported_count=report.imported,
            created_count=report.created,
            updated_count=report.updated,
            unchanged_count=report.unchanged,
            user_errors=[],
        )
