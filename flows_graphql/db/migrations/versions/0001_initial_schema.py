"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28 18:23:16.596375
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

TOUCHED_TABLES = [
    "contract_terms",
    "regions",
    "benchmark_tariffs",
    "escos",
    "billing_runs",
    "circuits",
    "contract_terms_esco",
    "customers",
    "meters",
    "microgrid_tariffs",
    "sites",
    "solar_credit_tariffs",
    "circuit_meter",
    "customer_invites",
    "customer_tariffs",
    "monthly_usage",
    "properties",
    "accounts",
    "monthly_costs",
    "monthly_solar_credits",
    "solar_installation",
    "customer_accounts",
    "payments",
]
APPEND_ONLY_TABLES = ["audit_log", "customer_events", "account_audit_logs", "account_events"]
ENUMS = [
    "tariff_generation",
    "contract_terms_type",
    "meter_mode",
    "circuit_type",
    "customer_status",
    "account_status",
    "customer_account_role",
    "usage_source",
    "billing_run_status",
    "payment_status",
    "account_event_type",
]
REGIONS = [
    ("north_west", "North West"),
    ("northern", "Northern"),
    ("yorkshire", "Yorkshire"),
    ("north_wales_mersey", "North Wales and Mersey"),
    ("east_midlands", "East Midlands"),
    ("west_midlands", "West Midlands"),
    ("eastern", "Eastern"),
    ("south_wales", "South Wales"),
    ("london", "London"),
    ("south_east", "South East"),
    ("southern", "Southern"),
    ("south_west", "South West"),
    ("north_scotland", "North Scotland"),
    ("south_scotland", "South Scotland"),
]

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # btree_gist is missing from some PostgreSQL builds (the embedded one), so the
    # occupancy exclusion constraint compares accounts as degenerate uuid ranges.
    op.execute("CREATE TYPE uuid_range AS RANGE (subtype = uuid)")
    op.execute(
        """CREATE FUNCTION flows_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$"""
    )
    op.execute(
        """CREATE FUNCTION flows_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END
$$"""
    )
    op.execute("CREATE SEQUENCE account_number_seq START WITH 10000001")
    op.create_table(
        "contract_terms",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "type", postgresql.ENUM("supply", "solar", name="contract_terms_type"), nullable=False
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("document_url", sa.Text(), nullable=True),
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
        sa.CheckConstraint("version >= 1", name=op.f("ck_contract_terms_version_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contract_terms")),
        sa.UniqueConstraint(
            "type", "title", "version", name=op.f("uq_contract_terms_type_title_version")
        ),
    )
    op.create_table(
        "regions",
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
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
        sa.PrimaryKeyConstraint("code", name=op.f("pk_regions")),
        sa.UniqueConstraint("name", name=op.f("uq_regions_name")),
    )
    op.create_table(
        "benchmark_tariffs",
        sa.Column("region_code", sa.Text(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("unit_rate", sa.Numeric(precision=10, scale=5), nullable=False),
        sa.Column("standing_charge", sa.Numeric(precision=10, scale=5), nullable=False),
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
            "standing_charge BETWEEN 0 AND 100",
            name=op.f("ck_benchmark_tariffs_standing_charge_range"),
        ),
        sa.CheckConstraint(
            "unit_rate BETWEEN 0 AND 100", name=op.f("ck_benchmark_tariffs_unit_rate_range")
        ),
        sa.ForeignKeyConstraint(
            ["region_code"], ["regions.code"], name=op.f("fk_benchmark_tariffs_region_code_regions")
        ),
        sa.PrimaryKeyConstraint("region_code", "period_start", name=op.f("pk_benchmark_tariffs")),
    )
    op.create_table(
        "escos",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("region_code", sa.Text(), nullable=False),
        sa.Column("app_url", sa.Text(), nullable=True),
        sa.Column(
            "tariff_generation",
            postgresql.ENUM("auto", "frozen", name="tariff_generation"),
            server_default="auto",
            nullable=False,
        ),
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
            "app_url ~ '^https?://[^[:space:]]+$'", name=op.f("ck_escos_app_url_http")
        ),
        sa.CheckConstraint("code ~ '^[a-z0-9_-]{2,32}$'", name=op.f("ck_escos_code_slug")),
        sa.ForeignKeyConstraint(
            ["region_code"], ["regions.code"], name=op.f("fk_escos_region_code_regions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escos")),
        sa.UniqueConstraint("code", name=op.f("uq_escos_code")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("esco_id", sa.UUID(), nullable=True),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("entity_id", sa.Text(), nullable=True),
        sa.Column(
            "changes",
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
        sa.ForeignKeyConstraint(["esco_id"], ["escos.id"], name=op.f("fk_audit_log_esco_id_escos")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        info={"append_only": True},
    )
    op.create_index(
        "ix_audit_log_entity_entity_id", "audit_log", ["entity", "entity_id"], unique=False
    )
    op.create_index(
        "ix_audit_log_esco_id_created_at", "audit_log", ["esco_id", "created_at"], unique=False
    )
    op.create_table(
        "billing_runs",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("esco_id", sa.UUID(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column(
            "status",
            postgresql.ENUM(
                "running", "completed", "failed", "finalized", name="billing_run_status"
            ),
            server_default="running",
            nullable=False,
        ),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("customers_billed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("total", sa.Numeric(), server_default=sa.text("0"), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
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
            "customers_billed >= 0", name=op.f("ck_billing_runs_customers_billed_non_negative")
        ),
        sa.CheckConstraint(
            "extract(day from month) = 1", name=op.f("ck_billing_runs_month_first_day")
        ),
        sa.ForeignKeyConstraint(
            ["esco_id"], ["escos.id"], name=op.f("fk_billing_runs_esco_id_escos")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_runs")),
        sa.UniqueConstraint("id", "esco_id", name=op.f("uq_billing_runs_id_esco_id")),
    )
    op.create_index(
        "ix_billing_runs_esco_id_month", "billing_runs", ["esco_id", "month"], unique=False
    )
    op.create_index(
        "uq_billing_runs_esco_id_month_finalized",
        "billing_runs",
        ["esco_id", "month"],
        unique=True,
        postgresql_where=sa.text("status = 'finalized'"),
    )
    op.create_table(
        "circuits",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("esco_id", sa.UUID(), nullable=False),
        sa.Column(
            "type", postgresql.ENUM("heat", "power", "solar", name="circuit_type"), nullable=False
        ),
        sa.Column("name", sa.Text(), nullable=True),
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
        sa.ForeignKeyConstraint(["esco_id"], ["escos.id"], name=op.f("fk_circuits_esco_id_escos")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_circuits")),
        sa.UniqueConstraint("id", "esco_id", name=op.f("uq_circuits_id_esco_id")),
    )
    op.create_table(
        "contract_terms_esco",
        sa.Column("esco_id", sa.UUID(), nullable=False),
        sa.Column("contract_terms_id", sa.UUID(), nullable=False),
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
        sa.ForeignKeyConstraint(
            ["contract_terms_id"],
            ["contract_terms.id"],
            name=op.f("fk_contract_terms_esco_contract_terms_id_contract_terms"),
        ),
        sa.ForeignKeyConstraint(
            ["esco_id"], ["escos.id"], name=op.f("fk_contract_terms_esco_esco_id_escos")
        ),
        sa.PrimaryKeyConstraint(
            "esco_id", "contract_terms_id", name=op.f("pk_contract_terms_esco")
        ),
    )
    op.create_table(
        "customers",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("esco_id", sa.UUID(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("full_name", sa.Text(), nullable=True),
        sa.Column(
            "status",
            postgresql.ENUM("active", "inactive", "suspended", name="customer_status"),
            server_default="active",
            nullable=False,
        ),
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
            "email ~ '^[^@[:space:]]+@[^@[:space:]]+$'", name=op.f("ck_customers_email_shape")
        ),
        sa.ForeignKeyConstraint(["esco_id"], ["escos.id"], name=op.f("fk_customers_esco_id_escos")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint("id", "esco_id", name=op.f("uq_customers_id_esco_id")),
    )
    op.create_index(
        "uq_customers_esco_id_lower_email",
        "customers",
        ["esco_id", sa.literal_column("lower(email)")],
        unique=True,
    )
    op.create_table(
        "meters",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("esco_id", sa.UUID(), nullable=False),
        sa.Column("serial", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("hardware", sa.Text(), nullable=True),
        sa.Column(
            "mode",
            postgresql.ENUM("active", "passive", "decommissioned", name="meter_mode"),
            server_default="active",
            nullable=False,
        ),
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
        sa.ForeignKeyConstraint(["esco_id"], ["escos.id"], name=op.f("fk_meters_esco_id_escos")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meters")),
        sa.UniqueConstraint("id", "esco_id", name=op.f("uq_meters_id_esco_id")),
        sa.UniqueConstraint("serial", name=op.f("uq_meters_serial")),
    )
    op.create_table(
        "microgrid_tariffs",
        sa.Column("esco_id", sa.UUID(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("discount_percent", sa.Integer(), nullable=False),
        sa.Column("unit_rate", sa.Numeric(), nullable=False),
        sa.Column("standing_charge", sa.Numeric(), nullable=False),
        sa.Column("emergency_credit", sa.Numeric(), nullable=False),
        sa.Column("ecredit_button_threshold", sa.Numeric(), nullable=False),
        sa.Column("debt_recovery_rate", sa.Numeric(), nullable=False),
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
            "debt_recovery_rate BETWEEN 0 AND 500",
            name=op.f("ck_microgrid_tariffs_debt_recovery_range"),
        ),
        sa.CheckConstraint(
            "discount_percent BETWEEN 0 AND 100", name=op.f("ck_microgrid_tariffs_discount_range")
        ),
        sa.CheckConstraint(
            "ecredit_button_threshold BETWEEN 0 AND 5000",
            name=op.f("ck_microgrid_tariffs_ecredit_threshold_range"),
        ),
        sa.CheckConstraint(
            "emergency_credit BETWEEN 0 AND 5000",
            name=op.f("ck_microgrid_tariffs_emergency_credit_range"),
        ),
        sa.ForeignKeyConstraint(
            ["esco_id"], ["escos.id"], name=op.f("fk_microgrid_tariffs_esco_id_escos")
        ),
        sa.PrimaryKeyConstraint("esco_id", "period_start", name=op.f("pk_microgrid_tariffs")),
    )
    op.create_table(
        "sites",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("esco_id", sa.UUID(), nullable=False),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
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
        sa.ForeignKeyConstraint(["esco_id"], ["escos.id"], name=op.f("fk_sites_esco_id_escos")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sites")),
        sa.UniqueConstraint("esco_id", "code", name=op.f("uq_sites_esco_id_code")),
        sa.UniqueConstraint("id", "esco_id", name=op.f("uq_sites_id_esco_id")),
    )
    op.create_table(
        "solar_credit_tariffs",
        sa.Column("esco_id", sa.UUID(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("credit_pence_per_year", sa.Numeric(), nullable=False),
        sa.Column("credit_pence_per_day", sa.Numeric(), nullable=False),
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
            "credit_pence_per_year BETWEEN 0 AND 30000",
            name=op.f("ck_solar_credit_tariffs_credit_range"),
        ),
        sa.ForeignKeyConstraint(
            ["esco_id"], ["escos.id"], name=op.f("fk_solar_credit_tariffs_esco_id_escos")
        ),
        sa.PrimaryKeyConstraint("esco_id", "period_start", name=op.f("pk_solar_credit_tariffs")),
    )
    op.create_table(
        "circuit_meter",
        sa.Column("circuit_id", sa.UUID(), nullable=False),
        sa.Column("meter_id", sa.UUID(), nullable=False),
        sa.Column("esco_id", sa.UUID(), nullable=False),
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
        sa.ForeignKeyConstraint(
            ["circuit_id", "esco_id"],
            ["circuits.id", "circuits.esco_id"],
            name=op.f("fk_circuit_meter_circuit_id_esco_id_circuits"),
        ),
        sa.ForeignKeyConstraint(
            ["esco_id"], ["escos.id"], name=op.f("fk_circuit_meter_esco_id_escos")
        ),
        sa.ForeignKeyConstraint(
            ["meter_id", "esco_id"],
            ["meters.id", "meters.esco_id"],
            name=op.f("fk_circuit_meter_meter_id_esco_id_meters"),
        ),
        sa.PrimaryKeyConstraint("circuit_id", "meter_id", name=op.f("pk_circuit_meter")),
    )
    op.create_index(op.f("ix_circuit_meter_meter_id"), "circuit_meter", ["meter_id"], unique=False)
    op.create_table(
        "customer_events",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("esco_id", sa.UUID(), nullable=False),
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column(
            "data",
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
        sa.ForeignKeyConstraint(
            ["customer_id", "esco_id"],
            ["customers.id", "customers.esco_id"],
            name=op.f("fk_customer_events_customer_id_esco_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["esco_id"], ["escos.id"], name=op.f("fk_customer_events_esco_id_escos")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_events")),
        info={"append_only": True},
    )
    op.create_index(
        "ix_customer_events_customer_id_created_at",
        "customer_events",
        ["customer_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "customer_invites",
        sa.Column("token", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("esco_id", sa.UUID(), nullable=False),
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("invite_url", sa.Text(), nullable=False),
        sa.Column(
            "expires_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now() + interval '7 days'"),
            nullable=False,
        ),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
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
        sa.ForeignKeyConstraint(
            ["customer_id", "esco_id"],
            ["customers.id", "customers.esco_id"],
            name=op.f("fk_customer_invites_customer_id_esco_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["esco_id"], ["escos.id"], name=op.f("fk_customer_invites_esco_id_escos")
        ),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_customer_invites")),
    )
    op.create_index(
        "ix_customer_invites_customer_id", "customer_invites", ["customer_id"], unique=False
    )
    op.create_table(
        "customer_tariffs",
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("esco_id", sa.UUID(), nullable=False),
        sa.Column("discount_percent", sa.Integer(), nullable=False),
        sa.Column("unit_rate", sa.Numeric(precision=10, scale=5), nullable=False),
        sa.Column("standing_charge", sa.Numeric(precision=10, scale=5), nullable=False),
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
            "discount_percent BETWEEN 0 AND 100", name=op.f("ck_customer_tariffs_discount_range")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id", "esco_id"],
            ["customers.id", "customers.esco_id"],
            name=op.f("fk_customer_tariffs_customer_id_esco_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["esco_id"], ["escos.id"], name=op.f("fk_customer_tariffs_esco_id_escos")
        ),
        sa.PrimaryKeyConstraint("customer_id", "period_start", name=op.f("pk_customer_tariffs")),
    )
    op.create_index(
        op.f("ix_customer_tariffs_esco_id"), "customer_tariffs", ["esco_id"], unique=False
    )
    op.create_table(
        "monthly_usage",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("esco_id", sa.UUID(), nullable=False),
        sa.Column("meter_id", sa.UUID(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column(
            "power_kwh",
            sa.Numeric(precision=14, scale=3),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column(
            "heat_kwh",
            sa.Numeric(precision=14, scale=3),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column(
            "solar_kwh",
            sa.Numeric(precision=14, scale=3),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column(
            "source",
            postgresql.ENUM("meter", "estimate", "manual", name="usage_source"),
            server_default="meter",
            nullable=False,
        ),
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
            "extract(day from month) = 1", name=op.f("ck_monthly_usage_month_first_day")
        ),
        sa.CheckConstraint("heat_kwh >= 0", name=op.f("ck_monthly_usage_heat_non_negative")),
        sa.CheckConstraint("power_kwh >= 0", name=op.f("ck_monthly_usage_power_non_negative")),
        sa.CheckConstraint("solar_kwh >= 0", name=op.f("ck_monthly_usage_solar_non_negative")),
        sa.ForeignKeyConstraint(
            ["esco_id"], ["escos.id"], name=op.f("fk_monthly_usage_esco_id_escos")
        ),
        sa.ForeignKeyConstraint(
            ["meter_id", "esco_id"],
            ["meters.id", "meters.esco_id"],
            name=op.f("fk_monthly_usage_meter_id_esco_id_meters"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monthly_usage")),
        sa.UniqueConstraint("id", "esco_id", name=op.f("uq_monthly_usage_id_esco_id")),
        sa.UniqueConstraint("meter_id", "month", name=op.f("uq_monthly_usage_meter_id_month")),
    )
    op.create_index(
        "ix_monthly_usage_esco_id_month", "monthly_usage", ["esco_id", "month"], unique=False
    )
    op.create_table(
        "properties",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("esco_id", sa.UUID(), nullable=False),
        sa.Column("site_id", sa.UUID(), nullable=True),
        sa.Column("plot", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("supply_meter_id", sa.UUID(), nullable=True),
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
        sa.ForeignKeyConstraint(
            ["esco_id"], ["escos.id"], name=op.f("fk_properties_esco_id_escos")
        ),
        sa.ForeignKeyConstraint(
            ["site_id", "esco_id"],
            ["sites.id", "sites.esco_id"],
            name=op.f("fk_properties_site_id_esco_id_sites"),
        ),
        sa.ForeignKeyConstraint(
            ["supply_meter_id", "esco_id"],
            ["meters.id", "meters.esco_id"],
            name=op.f("fk_properties_supply_meter_id_esco_id_meters"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_properties")),
        sa.UniqueConstraint("esco_id", "plot", name=op.f("uq_properties_esco_id_plot")),
        sa.UniqueConstraint("id", "esco_id", name=op.f("uq_properties_id_esco_id")),
        sa.UniqueConstraint("supply_meter_id", name=op.f("uq_properties_supply_meter_id")),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("esco_id", sa.UUID(), nullable=False),
        sa.Column(
            "account_number",
            sa.BigInteger(),
            server_default=sa.text("nextval('account_number_seq')"),
            nullable=False,
        ),
        sa.Column("property_id", sa.UUID(), nullable=False),
        sa.Column(
            "status",
            postgresql.ENUM("active", "closed", name="account_status"),
            server_default="active",
            nullable=False,
        ),
        sa.Column("contract_terms_id", sa.UUID(), nullable=True),
        sa.Column("opened_on", sa.Date(), nullable=False),
        sa.Column("closed_on", sa.Date(), nullable=True),
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
            "(status = 'closed') = (closed_on IS NOT NULL)",
            name=op.f("ck_accounts_closed_on_iff_closed"),
        ),
        sa.CheckConstraint("closed_on >= opened_on", name=op.f("ck_accounts_closed_after_opened")),
        sa.ForeignKeyConstraint(
            ["contract_terms_id", "esco_id"],
            ["contract_terms_esco.contract_terms_id", "contract_terms_esco.esco_id"],
            name=op.f("fk_accounts_contract_terms_id_esco_id_contract_terms_esco"),
        ),
        sa.ForeignKeyConstraint(["esco_id"], ["escos.id"], name=op.f("fk_accounts_esco_id_escos")),
        sa.ForeignKeyConstraint(
            ["property_id", "esco_id"],
            ["properties.id", "properties.esco_id"],
            name=op.f("fk_accounts_property_id_esco_id_properties"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("account_number", name=op.f("uq_accounts_account_number")),
        sa.UniqueConstraint("id", "esco_id", name=op.f("uq_accounts_id_esco_id")),
    )
    op.create_index(
        "ix_accounts_esco_id_property_id", "accounts", ["esco_id", "property_id"], unique=False
    )
    op.create_index(
        "uq_accounts_property_id_active",
        "accounts",
        ["property_id"],
        unique=True,
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_table(
        "monthly_costs",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("esco_id", sa.UUID(), nullable=False),
        sa.Column("monthly_usage_id", sa.UUID(), nullable=False),
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("billing_run_id", sa.UUID(), nullable=False),
        sa.Column("power", sa.Numeric(), nullable=False),
        sa.Column("heat", sa.Numeric(), nullable=False),
        sa.Column("standing_charge", sa.Numeric(), nullable=False),
        sa.Column("total", sa.Numeric(), nullable=False),
        sa.Column("microgrid_power", sa.Numeric(), nullable=False),
        sa.Column("microgrid_heat", sa.Numeric(), nullable=False),
        sa.Column("microgrid_standing_charge", sa.Numeric(), nullable=False),
        sa.Column("microgrid_total", sa.Numeric(), nullable=False),
        sa.Column("benchmark_power", sa.Numeric(), nullable=False),
        sa.Column("benchmark_heat", sa.Numeric(), nullable=False),
        sa.Column("benchmark_standing_charge", sa.Numeric(), nullable=False),
        sa.Column("benchmark_total", sa.Numeric(), nullable=False),
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
            "extract(day from month) = 1", name=op.f("ck_monthly_costs_month_first_day")
        ),
        sa.ForeignKeyConstraint(
            ["billing_run_id", "esco_id"],
            ["billing_runs.id", "billing_runs.esco_id"],
            name=op.f("fk_monthly_costs_billing_run_id_esco_id_billing_runs"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id", "esco_id"],
            ["customers.id", "customers.esco_id"],
            name=op.f("fk_monthly_costs_customer_id_esco_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["esco_id"], ["escos.id"], name=op.f("fk_monthly_costs_esco_id_escos")
        ),
        sa.ForeignKeyConstraint(
            ["monthly_usage_id", "esco_id"],
            ["monthly_usage.id", "monthly_usage.esco_id"],
            name=op.f("fk_monthly_costs_monthly_usage_id_esco_id_monthly_usage"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monthly_costs")),
        sa.UniqueConstraint("monthly_usage_id", name=op.f("uq_monthly_costs_monthly_usage_id")),
    )
    op.create_index(
        "ix_monthly_costs_billing_run_id", "monthly_costs", ["billing_run_id"], unique=False
    )
    op.create_index(
        "ix_monthly_costs_customer_id_month",
        "monthly_costs",
        ["customer_id", "month"],
        unique=False,
    )
    op.create_index(
        "ix_monthly_costs_esco_id_month", "monthly_costs", ["esco_id", "month"], unique=False
    )
    op.create_table(
        "monthly_solar_credits",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("esco_id", sa.UUID(), nullable=False),
        sa.Column("property_id", sa.UUID(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("credit_pence", sa.Integer(), nullable=False),
        sa.Column("billing_run_id", sa.UUID(), nullable=False),
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
            "credit_pence >= 0", name=op.f("ck_monthly_solar_credits_credit_non_negative")
        ),
        sa.CheckConstraint(
            "extract(day from month) = 1", name=op.f("ck_monthly_solar_credits_month_first_day")
        ),
        sa.ForeignKeyConstraint(
            ["billing_run_id", "esco_id"],
            ["billing_runs.id", "billing_runs.esco_id"],
            name=op.f("fk_monthly_solar_credits_billing_run_id_esco_id_billing_runs"),
        ),
        sa.ForeignKeyConstraint(
            ["esco_id"], ["escos.id"], name=op.f("fk_monthly_solar_credits_esco_id_escos")
        ),
        sa.ForeignKeyConstraint(
            ["property_id", "esco_id"],
            ["properties.id", "properties.esco_id"],
            name=op.f("fk_monthly_solar_credits_property_id_esco_id_properties"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monthly_solar_credits")),
        sa.UniqueConstraint(
            "property_id", "month", name=op.f("uq_monthly_solar_credits_property_id_month")
        ),
    )
    op.create_index(
        "ix_monthly_solar_credits_billing_run_id",
        "monthly_solar_credits",
        ["billing_run_id"],
        unique=False,
    )
    op.create_index(
        "ix_monthly_solar_credits_esco_id_month",
        "monthly_solar_credits",
        ["esco_id", "month"],
        unique=False,
    )
    op.create_table(
        "solar_installation",
        sa.Column("property_id", sa.UUID(), nullable=False),
        sa.Column("esco_id", sa.UUID(), nullable=False),
        sa.Column("mcs_certificate", sa.Text(), nullable=False),
        sa.Column("declared_net_capacity_kw", sa.Numeric(), nullable=True),
        sa.Column("commissioning_date", sa.Date(), nullable=True),
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
            "declared_net_capacity_kw >= 0",
            name=op.f("ck_solar_installation_capacity_non_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["esco_id"], ["escos.id"], name=op.f("fk_solar_installation_esco_id_escos")
        ),
        sa.ForeignKeyConstraint(
            ["property_id", "esco_id"],
            ["properties.id", "properties.esco_id"],
            name=op.f("fk_solar_installation_property_id_esco_id_properties"),
        ),
        sa.PrimaryKeyConstraint("property_id", name=op.f("pk_solar_installation")),
        sa.UniqueConstraint("mcs_certificate", name=op.f("uq_solar_installation_mcs_certificate")),
    )
    op.create_index(
        op.f("ix_solar_installation_esco_id"), "solar_installation", ["esco_id"], unique=False
    )
    op.create_table(
        "account_audit_logs",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("esco_id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column(
            "changes",
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
        sa.ForeignKeyConstraint(
            ["account_id", "esco_id"],
            ["accounts.id", "accounts.esco_id"],
            name=op.f("fk_account_audit_logs_account_id_esco_id_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["esco_id"], ["escos.id"], name=op.f("fk_account_audit_logs_esco_id_escos")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_audit_logs")),
        info={"append_only": True},
    )
    op.create_index(
        "ix_account_audit_logs_account_id_created_at",
        "account_audit_logs",
        ["account_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "account_events",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("esco_id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column(
            "event_type",
            postgresql.ENUM(
                "opened",
                "closed",
                "occupancy_started",
                "occupancy_ended",
                "owner_added",
                "owner_removed",
                name="account_event_type",
            ),
            nullable=False,
        ),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["account_id", "esco_id"],
            ["accounts.id", "accounts.esco_id"],
            name=op.f("fk_account_events_account_id_esco_id_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["esco_id"], ["escos.id"], name=op.f("fk_account_events_esco_id_escos")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_events")),
        info={"append_only": True},
    )
    op.create_index(
        "ix_account_events_account_id_created_at",
        "account_events",
        ["account_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "customer_accounts",
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column(
            "role",
            postgresql.ENUM("owner", "occupier", name="customer_account_role"),
            nullable=False,
        ),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("esco_id", sa.UUID(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
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
        postgresql.ExcludeConstraint(
            (sa.text("uuid_range(account_id, account_id, '[]')"), "&&"),
            (sa.text("daterange(start_date, end_date, '[]')"), "&&"),
            where=sa.text("role = 'occupier'"),
            using="gist",
            name="ex_customer_accounts_one_occupier",
        ),
        sa.CheckConstraint(
            "end_date >= start_date", name=op.f("ck_customer_accounts_end_after_start")
        ),
        sa.ForeignKeyConstraint(
            ["account_id", "esco_id"],
            ["accounts.id", "accounts.esco_id"],
            name=op.f("fk_customer_accounts_account_id_esco_id_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id", "esco_id"],
            ["customers.id", "customers.esco_id"],
            name=op.f("fk_customer_accounts_customer_id_esco_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["esco_id"], ["escos.id"], name=op.f("fk_customer_accounts_esco_id_escos")
        ),
        sa.PrimaryKeyConstraint(
            "customer_id", "account_id", "role", "start_date", name=op.f("pk_customer_accounts")
        ),
    )
    op.create_index(
        "ix_customer_accounts_account_id", "customer_accounts", ["account_id"], unique=False
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("esco_id", sa.UUID(), nullable=False),
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("amount_pence", sa.Integer(), nullable=False),
        sa.Column("currency", sa.CHAR(length=3), server_default="GBP", nullable=False),
        sa.Column(
            "status",
            postgresql.ENUM(
                "created",
                "pending",
                "processing",
                "succeeded",
                "failed",
                "cancelled",
                name="payment_status",
            ),
            server_default="created",
            nullable=False,
        ),
        sa.Column("provider_reference", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
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
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_payments_currency_code")),
        sa.CheckConstraint(
            "amount_pence BETWEEN 1 AND 50000", name=op.f("ck_payments_amount_range")
        ),
        sa.ForeignKeyConstraint(
            ["account_id", "esco_id"],
            ["accounts.id", "accounts.esco_id"],
            name=op.f("fk_payments_account_id_esco_id_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id", "esco_id"],
            ["customers.id", "customers.esco_id"],
            name=op.f("fk_payments_customer_id_esco_id_customers"),
        ),
        sa.ForeignKeyConstraint(["esco_id"], ["escos.id"], name=op.f("fk_payments_esco_id_escos")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint(
            "customer_id", "idempotency_key", name=op.f("uq_payments_customer_id_idempotency_key")
        ),
    )
    op.create_index("ix_payments_account_id", "payments", ["account_id"], unique=False)
    op.create_index(
        "ix_payments_esco_id_created_at", "payments", ["esco_id", "created_at"], unique=False
    )
    for table in TOUCHED_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_touch_updated_at BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION flows_touch_updated_at()"
        )
    for table in APPEND_ONLY_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION flows_append_only()"
        )
    regions = sa.table("regions", sa.column("code", sa.Text), sa.column("name", sa.Text))
    op.bulk_insert(regions, [{"code": code, "name": name} for code, name in REGIONS])


def downgrade() -> None:
    op.drop_index("ix_payments_esco_id_created_at", table_name="payments")
    op.drop_index("ix_payments_account_id", table_name="payments")
    op.drop_table("payments")
    op.drop_index("ix_customer_accounts_account_id", table_name="customer_accounts")
    op.drop_table("customer_accounts")
    op.drop_index("ix_account_events_account_id_created_at", table_name="account_events")
    op.drop_table("account_events")
    op.drop_index("ix_account_audit_logs_account_id_created_at", table_name="account_audit_logs")
    op.drop_table("account_audit_logs")
    op.drop_index(op.f("ix_solar_installation_esco_id"), table_name="solar_installation")
    op.drop_table("solar_installation")
    op.drop_index("ix_monthly_solar_credits_esco_id_month", table_name="monthly_solar_credits")
    op.drop_index("ix_monthly_solar_credits_billing_run_id", table_name="monthly_solar_credits")
    op.drop_table("monthly_solar_credits")
    op.drop_index("ix_monthly_costs_esco_id_month", table_name="monthly_costs")
    op.drop_index("ix_monthly_costs_customer_id_month", table_name="monthly_costs")
    op.drop_index("ix_monthly_costs_billing_run_id", table_name="monthly_costs")
    op.drop_table("monthly_costs")
    op.drop_index(
        "uq_accounts_property_id_active",
        table_name="accounts",
        postgresql_where=sa.text("status = 'active'"),
    )
    op.drop_index("ix_accounts_esco_id_property_id", table_name="accounts")
    op.drop_table("accounts")
    op.drop_table("properties")
    op.drop_index("ix_monthly_usage_esco_id_month", table_name="monthly_usage")
    op.drop_table("monthly_usage")
    op.drop_index(op.f("ix_customer_tariffs_esco_id"), table_name="customer_tariffs")
    op.drop_table("customer_tariffs")
    op.drop_index("ix_customer_invites_customer_id", table_name="customer_invites")
    op.drop_table("customer_invites")
    op.drop_index("ix_customer_events_customer_id_created_at", table_name="customer_events")
    op.drop_table("customer_events")
    op.drop_index(op.f("ix_circuit_meter_meter_id"), table_name="circuit_meter")
    op.drop_table("circuit_meter")
    op.drop_table("solar_credit_tariffs")
    op.drop_table("sites")
    op.drop_table("microgrid_tariffs")
    op.drop_table("meters")
    op.drop_index("uq_customers_esco_id_lower_email", table_name="customers")
    op.drop_table("customers")
    op.drop_table("contract_terms_esco")
    op.drop_table("circuits")
    op.drop_index(
        "uq_billing_runs_esco_id_month_finalized",
        table_name="billing_runs",
        postgresql_where=sa.text("status = 'finalized'"),
    )
    op.drop_index("ix_billing_runs_esco_id_month", table_name="billing_runs")
    op.drop_table("billing_runs")
    op.drop_index("ix_audit_log_esco_id_created_at", table_name="audit_log")
    op.drop_index("ix_audit_log_entity_entity_id", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("escos")
    op.drop_table("benchmark_tariffs")
    op.drop_table("regions")
    op.drop_table("contract_terms")
    for name in ENUMS:
        op.execute(f"DROP TYPE {name}")
    op.execute("DROP SEQUENCE account_number_seq")
    op.execute("DROP FUNCTION flows_append_only()")
    op.execute("DROP FUNCTION flows_touch_updated_at()")
    op.execute("DROP TYPE uuid_range")
