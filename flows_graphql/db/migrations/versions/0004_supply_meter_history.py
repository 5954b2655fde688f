"""supply-meter history of properties; account events name the customer of their link

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

`property_supply_meters` keeps which meter supplied a property in which months (written
by a trigger on `properties`); today's supply meters become periods since before any
record. `account_events.customer_id` names the customer whose link an event is about,
filled for past events from their notes ("Customer <uuid>: …").
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

API_ROLE = "flows_api"
MONTHS = "daterange(first_month, last_month, '[]')"
# The history's writer, as db/models/supply.py has it (tests/test_migrations.py compares).
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


def upgrade() -> None:
    op.create_table(
        "property_supply_meters",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("esco_id", sa.UUID(), nullable=False),
        sa.Column("property_id", sa.UUID(), nullable=False),
        sa.Column("meter_id", sa.UUID(), nullable=False),
        sa.Column("first_month", sa.Date(), nullable=True),
        sa.Column("last_month", sa.Date(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "extract(day FROM first_month) = 1",
            name=op.f("ck_property_supply_meters_first_month_is_a_month"),
        ),
        sa.CheckConstraint(
            "extract(day FROM last_month) = 1",
            name=op.f("ck_property_supply_meters_last_month_is_a_month"),
        ),
        sa.CheckConstraint(
            "last_month >= first_month", name=op.f("ck_property_supply_meters_last_after_first")
        ),
        sa.ForeignKeyConstraint(
            ["esco_id"], ["escos.id"], name=op.f("fk_property_supply_meters_esco_id_escos")
        ),
        sa.ForeignKeyConstraint(
            ["meter_id", "esco_id"],
            ["meters.id", "meters.esco_id"],
            name=op.f("fk_property_supply_meters_meter_id_esco_id_meters"),
        ),
        sa.ForeignKeyConstraint(
            ["property_id", "esco_id"],
            ["properties.id", "properties.esco_id"],
            name=op.f("fk_property_supply_meters_property_id_esco_id_properties"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_property_supply_meters")),
        postgresql.ExcludeConstraint(
            (sa.text("uuid_range(property_id, property_id, '[]')"), "&&"),
            (sa.text(MONTHS), "&&"),
            name="ex_property_supply_meters_one_meter",
            using="gist",
        ),
        postgresql.ExcludeConstraint(
            (sa.text("uuid_range(meter_id, meter_id, '[]')"), "&&"),
            (sa.text(MONTHS), "&&"),
            name="ex_property_supply_meters_one_property",
            using="gist",
        ),
    )
    op.create_index(
        "ix_property_supply_meters_property_id", "property_supply_meters", ["property_id"]
    )
    op.create_index("ix_property_supply_meters_meter_id", "property_supply_meters", ["meter_id"])
    op.execute(
        "CREATE TRIGGER property_supply_meters_touch_updated_at BEFORE UPDATE ON "
        "property_supply_meters FOR EACH ROW EXECUTE FUNCTION flows_touch_updated_at()"
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON property_supply_meters TO {API_ROLE}")
    op.execute("ALTER TABLE property_supply_meters ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_isolation ON property_supply_meters "
        "USING (flows_esco_visible(esco_id)) WITH CHECK (flows_esco_visible(esco_id))"
    )
    op.execute(
        "INSERT INTO property_supply_meters (esco_id, property_id, meter_id) "
        "SELECT esco_id, id, supply_meter_id FROM properties WHERE supply_meter_id IS NOT NULL"
    )
    op.execute(TRACK_SUPPLY_FUNCTION_SQL)
    op.execute(TRACK_SUPPLY_TRIGGER_SQL)

    op.add_column("account_events", sa.Column("customer_id", sa.UUID(), nullable=True))
    op.create_foreign_key(
        op.f("fk_account_events_customer_id_esco_id_customers"),
        "account_events",
        "customers",
        ["customer_id", "esco_id"],
        ["id", "esco_id"],
    )
    # Past events of links name their customer in the notes; the table is append-only,
    # so its trigger steps aside for this one backfill.
    op.execute("ALTER TABLE account_events DISABLE TRIGGER account_events_append_only")
    op.execute(
        r"""UPDATE account_events e SET customer_id = c.id
  FROM customers c
 WHERE c.esco_id = e.esco_id
   AND e.notes ~ '^Customer [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:'
   AND c.id = substring(e.notes FROM 10 FOR 36)::uuid"""
    )
    op.execute("ALTER TABLE account_events ENABLE TRIGGER account_events_append_only")


def downgrade() -> None:
    op.drop_constraint(
        op.f("fk_account_events_customer_id_esco_id_customers"),
        "account_events",
        type_="foreignkey",
    )
    op.drop_column("account_events", "customer_id")
    op.execute("DROP TRIGGER properties_track_supply_meter ON properties")
    op.execute("DROP FUNCTION flows_track_supply_meter()")
    op.drop_index("ix_property_supply_meters_meter_id", table_name="property_supply_meters")
    op.drop_index("ix_property_supply_meters_property_id", table_name="property_supply_meters")
    op.drop_table("property_supply_meters")
