"""The event log: what changed, written by the database in the transaction of the change.

Subscriptions and webhooks read this one log (docs/live-updates.md). Triggers write
it, so no mutation can forget an event and a rolled-back change leaves none; the
services add the few events no single row change stands for (an import).

Ids are in commit order: every writer of an event takes one transaction-level
advisory lock first and holds it to its commit, so an event with a smaller id is
never committed after one with a larger id, and a reader that has seen id N has seen
everything before it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DDL, BigInteger, DateTime, Identity, Index, Text, event, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, esco_fk, metadata

# The channel the log's writers notify at commit (payload-less: readers read the table).
EVENTS_CHANNEL = "flows_events"


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_esco_id_id", "esco_id", "id"),
        Index("ix_events_created_at", "created_at"),
        # The API only appends; the retention sweep deletes as the owner.
        {"info": {"insert_only": True}},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    esco_id: Mapped[uuid.UUID] = esco_fk()
    type: Mapped[str] = mapped_column(Text, nullable=False)
    # The GraphQL type and global-id key of the object the event is about.
    entity: Mapped[str] = mapped_column(Text, nullable=False)
    entity_key: Mapped[str] = mapped_column(Text, nullable=False)
    # Whom it concerns, for a cheap first filter of customers' subscriptions.
    customer_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    account_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    payload: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


# The migration (0009) creates the same objects from the same text.
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
    f"""CREATE FUNCTION flows_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{EVENTS_CHANNEL}', '');
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
        WHERE c.esco_id = NEW.esco_id AND c.month = NEW.month AND c.billing_run_id = NEW.id
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

for _sql in EVENT_SQL:
    # After every table exists: the triggers sit on several of them.
    event.listen(metadata, "after_create", DDL(_sql.replace("%", "%%")))
for _sql in EVENT_DROP_SQL:
    event.listen(metadata, "before_drop", DDL(_sql))
