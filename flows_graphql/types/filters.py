"""Filters and orders of the lists that grow, shared by the root lists and the nested
connections of an ESCO (`Esco.customers(filter:, orderBy:)` takes what `customers`
takes). Each filter turns into SQLAlchemy conditions; each order is an indexed sort key
of the list's ConnectionSpec (loaders/)."""

from __future__ import annotations

from datetime import date, datetime, time
from enum import Enum
from typing import Annotated, Any

import strawberry
from sqlalchemy import func

from ..db.models.enums import BillingRunStatus, CustomerStatus, MeterMode, PaymentStatus
from ..loaders.billing import PAYMENTS, RUNS
from ..loaders.customers import CUSTOMERS
from ..loaders.metering import METERS, PROPERTIES
from ..rules.clock import BILLING_ZONE
from .node import parse_id


def like_prefix(prefix: str) -> str:
    """A LIKE pattern matching strings that start with `prefix` literally."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


# --- customers ---------------------------------------------------------------------------


@strawberry.enum(description="Orders of the customer list (each backed by an index).")
class CustomerOrder(Enum):
    EMAIL = "EMAIL"
    CREATED_AT = "CREATED_AT"
    UPDATED_AT = "UPDATED_AT"


@strawberry.input(description="Narrows the customer list; all given conditions apply.")
class CustomerFilter:
    status: CustomerStatus | None = strawberry.field(default=None, description="This status.")
    email_prefix: str | None = strawberry.field(
        default=None, description="Email starts with this (any case)."
    )


def customer_filter(filter: CustomerFilter | None) -> list[Any]:
    conditions: list[Any] = []
    if filter is not None:
        if filter.status is not None:
            conditions.append(CUSTOMERS.c.status == filter.status)
        if filter.email_prefix:
            conditions.append(
                func.lower(CUSTOMERS.c.email).like(like_prefix(filter.email_prefix.lower()))
            )
    return conditions


# --- properties and meters ---------------------------------------------------------------


@strawberry.enum(description="Orders of the property list.")
class PropertyOrder(Enum):
    PLOT = "PLOT"
    UPDATED_AT = "UPDATED_AT"


@strawberry.enum(description="Orders of the meter list.")
class MeterOrder(Enum):
    SERIAL = "SERIAL"
    UPDATED_AT = "UPDATED_AT"


@strawberry.input(description="Narrows the property list; all given conditions apply.")
class PropertyFilter:
    site_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only this site (global id or uuid)."
    )
    plot_prefix: str | None = strawberry.field(default=None, description="Plot starts with this.")


@strawberry.input(description="Narrows the meter list; all given conditions apply.")
class MeterFilter:
    mode: MeterMode | None = strawberry.field(default=None, description="This mode.")
    serial_prefix: str | None = strawberry.field(
        default=None, description="Serial starts with this."
    )


def property_filter(filter: PropertyFilter | None) -> list[Any]:
    conditions: list[Any] = []
    if filter is not None:
        if filter.site_id is not None:
            # An id of anything else matches no site, hence no property.
            conditions.append(PROPERTIES.c.site_id == parse_id(filter.site_id, "Site"))
        if filter.plot_prefix:
            conditions.append(PROPERTIES.c.plot.like(like_prefix(filter.plot_prefix)))
    return conditions


def meter_filter(filter: MeterFilter | None) -> list[Any]:
    conditions: list[Any] = []
    if filter is not None:
        if filter.mode is not None:
            conditions.append(METERS.c.mode == filter.mode)
        if filter.serial_prefix:
            conditions.append(METERS.c.serial.like(like_prefix(filter.serial_prefix)))
    return conditions


# --- billing runs and payments -----------------------------------------------------------


@strawberry.enum(description="Orders of the billing run list.")
class BillingRunOrder(Enum):
    NEWEST_MONTH = "NEWEST_MONTH"
    UPDATED_AT = "UPDATED_AT"


UpdatedSince = Annotated[
    datetime | None,
    strawberry.argument(
        description="Only rows written (created or changed) at or after this instant: "
        "incremental sync (docs/money.md). Pair with orderBy: UPDATED_AT."
    ),
]


def updated_since(table: Any, since: datetime | None) -> list[Any]:
    return [] if since is None else [table.c.updated_at >= since]


@strawberry.input(description="Narrows the billing run list; all given conditions apply.")
class BillingRunFilter:
    month: date | None = strawberry.field(default=None, description="This month (its 1st).")
    status: BillingRunStatus | None = strawberry.field(default=None, description="This status.")
    from_: date | None = strawberry.field(
        default=None, name="from", description="Months from this day's month."
    )
    to: date | None = strawberry.field(default=None, description="Months up to this day's.")


def run_filter(filter: BillingRunFilter | None) -> list[Any]:
    conditions: list[Any] = []
    if filter is not None:
        if filter.month is not None:
            conditions.append(RUNS.c.month == filter.month)
        if filter.status is not None:
            conditions.append(RUNS.c.status == filter.status)
        if filter.from_ is not None:
            conditions.append(RUNS.c.month >= filter.from_.replace(day=1))
        if filter.to is not None:
            conditions.append(RUNS.c.month <= filter.to)
    return conditions


@strawberry.enum(description="Orders of a payment list (each backed by an index).")
class PaymentOrder(Enum):
    NEWEST = "NEWEST"
    OLDEST = "OLDEST"


@strawberry.input(description="Narrows a payment list; all given conditions apply.")
class PaymentFilter:
    status: PaymentStatus | None = strawberry.field(default=None, description="This status.")
    from_: date | None = strawberry.field(
        default=None, name="from", description="Created on or after this day (Europe/London)."
    )
    to: date | None = strawberry.field(
        default=None, description="Created on or before this day (Europe/London)."
    )


def london_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), BILLING_ZONE)


def payment_filter(filter: PaymentFilter | None) -> list[Any]:
    conditions: list[Any] = []
    if filter is not None:
        if filter.status is not None:
            conditions.append(PAYMENTS.c.status == filter.status)
        # Instants, so the (customer_id, created_at) index serves the range.
        if filter.from_ is not None:
            conditions.append(PAYMENTS.c.created_at >= london_midnight(filter.from_))
        if filter.to is not None:
            end = date.fromordinal(filter.to.toordinal() + 1)
            conditions.append(PAYMENTS.c.created_at < london_midnight(end))
    return conditions
