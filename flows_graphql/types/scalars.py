"""The API's scalars: exact decimals as strings, dates, times with explicit offsets."""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any

import strawberry

from ..rules import formats


def _parse_decimal(value: Any) -> decimal.Decimal:
    # Floats are refused: 0.1 as a float is not 0.1, and money must be exact.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError('A Decimal is written as a string, e.g. "0.17527".')
    return formats.parse_decimal(str(value))


def _parse_datetime(value: Any) -> datetime.datetime:
    if not isinstance(value, str):
        raise ValueError("A DateTime is an ISO 8601 string with an offset.")
    return formats.parse_datetime(value)


def _parse_date(value: Any) -> datetime.date:
    if not isinstance(value, str):
        raise ValueError("A Date is written YYYY-MM-DD.")
    return formats.parse_date(value)


def _parse_uuid(value: Any) -> uuid.UUID:
    if not isinstance(value, str):
        raise ValueError("A UUID is written as a string.")
    return uuid.UUID(value)


DecimalScalar = strawberry.scalar(
    name="Decimal",
    description='An exact decimal number, written as a JSON string ("0.17527") so no '
    "precision is lost. Money is GBP unless a field says pence; energy is kWh.",
    serialize=str,
    parse_value=_parse_decimal,
)
DateScalar = strawberry.scalar(
    name="Date",
    description="A calendar date, YYYY-MM-DD. Months are the date of their 1st.",
    serialize=datetime.date.isoformat,
    parse_value=_parse_date,
)
DateTimeScalar = strawberry.scalar(
    name="DateTime",
    description="An instant, ISO 8601 with its UTC offset (2025-03-10T09:00:00+00:00).",
    serialize=datetime.datetime.isoformat,
    parse_value=_parse_datetime,
)
UUIDScalar = strawberry.scalar(
    name="UUID",
    description="A database id (RFC 4122 UUID); `ID` arguments accept these too.",
    serialize=str,
    parse_value=_parse_uuid,
)

SCALAR_MAP: dict[object, Any] = {
    decimal.Decimal: DecimalScalar,
    datetime.date: DateScalar,
    datetime.datetime: DateTimeScalar,
    uuid.UUID: UUIDScalar,
}
