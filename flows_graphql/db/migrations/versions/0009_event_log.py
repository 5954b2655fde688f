"""the event log (subscriptions, webhooks): table, writer triggers, notifications

Revision ID: 0009
Revises: 0004
Create Date: 2026-12-01

Ids are handed out in commit order (flows_emit holds an advisory lock to commit).
The API's role may append and read, never update or delete; the retention sweep runs
as the owner.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

API_ROLE = "flows_api"

EVENT_SQL = [
    """CREATE FUNCTION flows_emit(
    esco uuid, kind text, entity text, entity_key text,
    customer uuid, account uuid, payload jsonb
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- Held to commit: ids are handed out in commit order.
    PERFORM pg_advisory_xact_lock(hashtext('flows.events'));
    INSERT INTO events (esco_id, type, entity, entity_key, customer_id, account_id, payload)
    VALUES (esco, kind, entity, entity_key, customer, account, coalesce(payload, '{}'));
END
$$""",
    """CREATE FUNCTION flows_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('flows_events', '');
    RETURN NULL;
END
$$""",
    """CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION flows_events_notify()""",
    """CREATE FUNCTION flows_event_billing_run() RETURNS trigger LANGUAGE plpgsql AS $$
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
        WHERE c.billing_run_id = NEW.id
        GROUP BY c.customer_id
        ORDER BY c.customer_id;
    END IF;
    RETURN NULL;
END
$$""",
    """CREATE TRIGGER billing_runs_events AFTER INSERT OR UPDATE OF status ON billing_runs
    FOR EACH ROW EXECUTE FUNCTION flows_event_billing_run()""",
    """CREATE FUNCTION flows_event_payment() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM flows_emit(NEW.esco_id, 'payment.created', 'Payment', NEW.id::text,
            NEW.customer_id, NEW.account_id, jsonb_build_object('status', NEW.status));
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        PERFORM flows_emit(NEW.esco_id, 'payment.status_changed', 'Payment', NEW.id::text,
            NEW.customer_id, NEW.account_id,
            jsonb_build_object('old', OLD.status, 'new', NEW.status));
    END IF;
    RETURN NULL;
END
$$""",
    """CREATE TRIGGER payments_events AFTER INSERT OR UPDATE OF status ON payments
    FOR EACH ROW EXECUTE FUNCTION flows_event_payment()""",
    """CREATE FUNCTION flows_event_invite() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.accepted_at IS NULL AND NEW.accepted_at IS NOT NULL THEN
        PERFORM flows_emit(NEW.esco_id, 'invite.accepted', 'Customer', NEW.customer_id::text,
            NEW.customer_id, NULL, '{}'::jsonb);
    END IF;
    RETURN NULL;
END
$$""",
    """CREATE TRIGGER customer_invites_events AFTER UPDATE OF accepted_at ON customer_invites
    FOR EACH ROW EXECUTE FUNCTION flows_event_invite()""",
    """CREATE FUNCTION flows_event_customer() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed jsonb;
BEGIN
    -- The names of the changed columns, never their values: the log outlives them.
    SELECT coalesce(jsonb_agg(n.key ORDER BY n.key), '[]'::jsonb) INTO changed
    FROM jsonb_each(to_jsonb(NEW)) n
    JOIN jsonb_each(to_jsonb(OLD)) o USING (key)
    WHERE n.value IS DISTINCT FROM o.value AND n.key NOT IN ('updated_at');
    IF changed <> '[]'::jsonb THEN
        PERFORM flows_emit(NEW.esco_id, 'customer.updated', 'Customer', NEW.id::text,
            NEW.id, NULL, jsonb_build_object('changed', changed));
    END IF;
    RETURN NULL;
END
$$""",
    """CREATE TRIGGER customers_events AFTER UPDATE ON customers
    FOR EACH ROW EXECUTE FUNCTION flows_event_customer()""",
    """CREATE FUNCTION flows_event_tariff() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.unit_rate IS NOT DISTINCT FROM OLD.unit_rate
        AND NEW.standing_charge IS NOT DISTINCT FROM OLD.standing_charge
        AND NEW.discount_percent IS NOT DISTINCT FROM OLD.discount_percent THEN
        RETURN NULL;
    END IF;
    PERFORM flows_emit(NEW.esco_id, 'tariff.published', 'MicrogridTariff',
        NEW.esco_id::text || '|' || NEW.period_start::text, NULL, NULL,
        jsonb_build_object('periodStart', NEW.period_start));
    RETURN NULL;
END
$$""",
    """CREATE TRIGGER microgrid_tariffs_events AFTER INSERT OR UPDATE ON microgrid_tariffs
    FOR EACH ROW EXECUTE FUNCTION flows_event_tariff()""",
]
EVENT_DROP_SQL = [
    "DROP TRIGGER IF EXISTS microgrid_tariffs_events ON microgrid_tariffs",
    "DROP FUNCTION IF EXISTS flows_event_tariff()",
    "DROP TRIGGER IF EXISTS customers_events ON customers",
    "DROP FUNCTION IF EXISTS flows_event_customer()",
    "DROP TRIGGER IF EXISTS customer_invites_events ON customer_invites",
    "DROP FUNCTION IF EXISTS flows_event_invite()",
    "DROP TRIGGER IF EXISTS payments_events ON payments",
    "DROP FUNCTION IF EXISTS flows_event_payment()",
    "DROP TRIGGER IF EXISTS billing_runs_events ON billing_runs",
    "DROP FUNCTION IF EXISTS flows_event_billing_run()",
    "DROP TRIGGER IF EXISTS events_notify ON events",
    "DROP FUNCTION IF EXISTS flows_events_notify()",
    "DROP FUNCTION IF EXISTS flows_emit(uuid, text, text, text, uuid, uuid, jsonb)",
]


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("esco_id", sa.UUID(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("entity_key", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.UUID(), nullable=True),
        sa.Column("account_id", sa.UUID(), nullable=True),
        sa.Column(
            "payload",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["esco_id"], ["escos.id"], name=op.f("fk_events_esco_id_escos")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index("ix_events_esco_id_id", "events", ["esco_id", "id"], unique=False)
    op.create_index("ix_events_created_at", "events", ["created_at"], unique=False)
    op.execute(f"GRANT SELECT, INSERT ON events TO {API_ROLE}")
    op.execute("ALTER TABLE events ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_isolation ON events "
        "USING (flows_esco_visible(esco_id)) WITH CHECK (flows_esco_visible(esco_id))"
    )
    for sql in EVENT_SQL:
        op.execute(sql)


def downgrade() -> None:
    for sql in EVENT_DROP_SQL:
        op.execute(sql)
    op.drop_index("ix_events_created_at", table_name="events")
    op.drop_index("ix_events_esco_id_id", table_name="events")
    op.drop_table("events")
