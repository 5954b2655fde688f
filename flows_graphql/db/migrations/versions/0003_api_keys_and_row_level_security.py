"""API keys; row-level security on every tenant table for the API's role

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

The API connects as (or switches to) role `flows_api`, which owns nothing and so
cannot bypass the policies; each transaction sets `flows.esco_ids` to the viewer's
ESCOs. The role is cluster-wide and is not dropped on downgrade (other databases of
the cluster may use it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

API_ROLE = "flows_api"
TENANT_TABLES = [
    "audit_log",
    "billing_runs",
    "circuits",
    "contract_terms_esco",
    "customers",
    "meters",
    "microgrid_tariffs",
    "sites",
    "solar_credit_tariffs",
    "circuit_meter",
    "customer_events",
    "customer_invites",
    "customer_tariffs",
    "monthly_usage",
    "properties",
    "accounts",
    "monthly_costs",
    "monthly_solar_credits",
    "solar_installation",
    "account_audit_logs",
    "account_events",
    "customer_accounts",
    "payments",
    "api_keys",
]
APPEND_ONLY_TABLES = {"audit_log", "customer_events", "account_events", "account_audit_logs"}
GLOBAL_TABLES = ["regions", "benchmark_tariffs", "contract_terms", "escos", "alembic_version"]


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("esco_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.Text(), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
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
            "scopes <@ ARRAY['read', 'usage:write', 'payments:write']::text[]",
            name=op.f("ck_api_keys_known_scopes"),
        ),
        sa.ForeignKeyConstraint(["esco_id"], ["escos.id"], name=op.f("fk_api_keys_esco_id_escos")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index(op.f("ix_api_keys_esco_id"), "api_keys", ["esco_id"], unique=False)
    op.execute(
        "CREATE TRIGGER api_keys_touch_updated_at BEFORE UPDATE ON api_keys "
        "FOR EACH ROW EXECUTE FUNCTION flows_touch_updated_at()"
    )

    op.execute(
        """CREATE FUNCTION flows_esco_visible(esco uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT CASE current_setting('flows.esco_ids', true)
        WHEN '*' THEN true
        ELSE esco = ANY (string_to_array(
                 nullif(current_setting('flows.esco_ids', true), ''), ',')::uuid[])
    END
$$"""
    )
    op.execute(
        f"""DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{API_ROLE}') THEN
        CREATE ROLE {API_ROLE} NOLOGIN;
    END IF;
END $$"""
    )
    op.execute(f"GRANT {API_ROLE} TO CURRENT_USER")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {API_ROLE}")
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {API_ROLE}"
    )
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {API_ROLE}"
    )
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {API_ROLE}")
    for table in GLOBAL_TABLES:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {API_ROLE}")
    for table in TENANT_TABLES:
        rights = (
            "SELECT, INSERT" if table in APPEND_ONLY_TABLES else "SELECT, INSERT, UPDATE, DELETE"
        )
        op.execute(f"GRANT {rights} ON {table} TO {API_ROLE}")
    for table, column in [("escos", "id")] + [(t, "esco_id") for t in TENANT_TABLES]:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} "
            f"USING (flows_esco_visible({column})) WITH CHECK (flows_esco_visible({column}))"
        )


def downgrade() -> None:
    for table in ["escos", *TENANT_TABLES]:
        op.execute(f"DROP POLICY tenant_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {API_ROLE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {API_ROLE}")
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {API_ROLE}"
    )
    op.execute(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"REVOKE USAGE, SELECT ON SEQUENCES FROM {API_ROLE}"
    )
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {API_ROLE}")
    op.execute("DROP FUNCTION flows_esco_visible(uuid)")
    op.drop_index(op.f("ix_api_keys_esco_id"), table_name="api_keys")
    op.drop_table("api_keys")
