"""Which meter supplied a property in which months (rules.md §7).

`properties.supply_meter_id` is the meter now; `property_supply_meters` keeps every
period, in whole months: a row supplies its property from `first_month` (null: since
before any record) to `last_month` inclusive (null: still). A trigger on `properties`
writes it, so no write path (mutation, seed, import) can change a meter without its
history; the day a change takes effect is the transaction's `flows.today` (the billing
clock, set by the services) or else today in Europe/London. A change on the 1st takes
effect that month, any later day from the next month: the meter of month M is the one
supplying the property on day 1 of M.
"""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import DDL, CheckConstraint, Date, Index, event, text
from sqlalchemy.dialects.postgresql import UUID, ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, Timestamps, esco_fk, metadata, tenant_fk, uuid_pk


def _months(first: str, last: str) -> str:
    return f"daterange({first}, {last}, '[]')"


class PropertySupplyMeter(Timestamps, Base):
    __tablename__ = "property_supply_meters"
    __table_args__ = (
        tenant_fk(["property_id"], "properties"),
        tenant_fk(["meter_id"], "meters"),
        CheckConstraint("extract(day FROM first_month) = 1", name="first_month_is_a_month"),
        CheckConstraint("extract(day FROM last_month) = 1", name="last_month_is_a_month"),
        CheckConstraint("last_month >= first_month", name="last_after_first"),
        # One meter per property per month, and one property per meter per month (see
        # SUPPORT_SQL for uuid_range).
        ExcludeConstraint(
            (text("uuid_range(property_id, property_id, '[]')"), "&&"),
            (text(_months("first_month", "last_month")), "&&"),
            name="ex_property_supply_meters_one_meter",
            using="gist",
        ),
        ExcludeConstraint(
            (text("uuid_range(meter_id, meter_id, '[]')"), "&&"),
            (text(_months("first_month", "last_month")), "&&"),
            name="ex_property_supply_meters_one_property",
            using="gist",
        ),
        Index("ix_property_supply_meters_property_id", "property_id"),
        Index("ix_property_supply_meters_meter_id", "meter_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    esco_id: Mapped[uuid.UUID] = esco_fk()
    property_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    meter_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    first_month: Mapped[date | None] = mapped_column(Date)
    last_month: Mapped[date | None] = mapped_column(Date)


# The history's writer: run after every insert of a property and every change of its
# supply meter. The models and migration 0004 create it from this same text.
TRACK_SUPPLY_FUNCTION_SQL = """CREATE FUNCTION flows_track_supply_meter() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    day date := coalesce(nullif(current_setting('flows.today', true), '')::date,
                         (now() AT TIME ZONE 'Europe/London')::date);
    -- The first month the change applies to: the first one starting on or after it.
    since date := CASE WHEN extract(day FROM day) = 1 THEN day
                       ELSE (date_trunc('month', day) + interval '1 month')::date END;
    latest date;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.supply_meter_id IS NOT DISTINCT FROM OLD.supply_meter_id THEN
            RETURN NULL;
        END IF;
        -- The meter so far supplies up to the month before; a period that had not
        -- begun yet never was.
        DELETE FROM property_supply_meters
         WHERE property_id = NEW.id AND last_month IS NULL AND first_month >= since;
        UPDATE property_supply_meters
           SET last_month = (since - interval '1 month')::date
         WHERE property_id = NEW.id AND last_month IS NULL;
    END IF;
    IF NEW.supply_meter_id IS NOT NULL THEN
        -- With no period of the property or the meter before, since before any
        -- record (a new home's meter had no other home); else from the change, and
        -- never before the month after the latest of those periods.
        SELECT max(last_month) INTO latest FROM property_supply_meters
         WHERE property_id = NEW.id OR meter_id = NEW.supply_meter_id;
        INSERT INTO property_supply_meters (esco_id, property_id, meter_id, first_month)
        VALUES (NEW.esco_id, NEW.id, NEW.supply_meter_id,
                CASE WHEN latest IS NOT NULL
                     THEN greatest(since, (latest + interval '1 month')::date) END);
    END IF;
    RETURN NULL;
END
$$"""
TRACK_SUPPLY_TRIGGER_SQL = (
    "CREATE TRIGGER properties_track_supply_meter "
    "AFTER INSERT OR UPDATE OF supply_meter_id ON properties "
    "FOR EACH ROW EXECUTE FUNCTION flows_track_supply_meter()"
)

for _sql in (TRACK_SUPPLY_FUNCTION_SQL, TRACK_SUPPLY_TRIGGER_SQL):
    event.listen(PropertySupplyMeter.__table__, "after_create", DDL(_sql))
event.listen(metadata, "after_drop", DDL("DROP FUNCTION IF EXISTS flows_track_supply_meter()"))
