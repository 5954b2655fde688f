"""HOT billing re-runs: no index on the costs' and credits' billing_run_id, room on
their pages; the completion trigger reads a run's costs by its month

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01

A re-run rewrites each of the month's costs with its own run's id. With that column
indexed, every update wrote a new entry into each of the table's five indexes; at
100,000 homes that was most of a run's database time (docs/billing-runs.md). Without
it, and with half of each page free, PostgreSQL updates the rows in place (HOT). The
fillfactor applies to pages written from now on; existing pages gain room as VACUUM
or pruning frees the versions a re-run leaves.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "monthly_costs": "ix_monthly_costs_billing_run_id",
    "monthly_solar_credits": "ix_monthly_solar_credits_billing_run_id",
}

TRIGGER = """CREATE OR REPLACE FUNCTION flows_event_billing_run() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    kind text;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.status IS NOT DISTINCT FROM OLD.status THEN
        RETURN NULL;
    END IF;
    kind := CASE NEW.status::text WHEN 'running' THEN 'billing_run.started'
        ELSE 'billing_run.' || NEW.status::text END;
    PERFORM flows_emit(NEW.esco_id, kind, 'BillingRun', NEW.id::text, NULL, NULL,
        jsonb_build_object('month', NEW.month, 'status', NEW.status));
    IF NEW.status::text = 'completed' THEN
        -- One per billed customer and month: the bill is ready to show.
        INSERT INTO events (esco_id, type, entity, entity_key, customer_id, payload)
        SELECT NEW.esco_id, 'monthly_costs.ready', 'Customer', c.customer_id::text,
               c.customer_id, jsonb_build_object('month', NEW.month, 'billingRun', NEW.id)
        FROM monthly_costs c
        WHERE {where}
        GROUP BY c.customer_id
        ORDER BY c.customer_id;
    END IF;
    RETURN NULL;
END
$$"""

NEW_WHERE = "c.esco_id = NEW.esco_id AND c.month = NEW.month AND c.billing_run_id = NEW.id"
OLD_WHERE = "c.billing_run_id = NEW.id"


def upgrade() -> None:
    for table, index in INDEXES.items():
        op.drop_index(index, table_name=table)
        op.execute(f"ALTER TABLE {table} SET (fillfactor = 50)")
    op.execute(TRIGGER.format(where=NEW_WHERE))


def downgrade() -> None:
    op.execute(TRIGGER.format(where=OLD_WHERE))
    for table, index in INDEXES.items():
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
        op.create_index(index, table, ["billing_run_id"])
