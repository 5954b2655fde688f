"""indexes serving the text-prefix filters, customers' payments by time and the
payment look-up by provider reference; (esco_id, updated_at, id) for incremental sync

Revision ID: 0007
Revises: 0009
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Root lists with updatedSince / orderBy: UPDATED_AT.
SYNCED = ("customers", "properties", "meters", "billing_runs")


def upgrade() -> None:
    # LIKE 'prefix%' uses a btree only under the C collation or with text_pattern_ops.
    op.create_index(
        "ix_customers_esco_id_lower_email_pattern",
        "customers",
        ["esco_id", sa.func.lower(sa.text("email")).label("lower_email")],
        postgresql_ops={"lower_email": "text_pattern_ops"},
    )
    op.create_index(
        "ix_properties_esco_id_plot_pattern",
        "properties",
        ["esco_id", "plot"],
        postgresql_ops={"plot": "text_pattern_ops"},
    )
    op.create_index(
        "ix_meters_esco_id_serial_pattern",
        "meters",
        ["esco_id", "serial"],
        postgresql_ops={"serial": "text_pattern_ops"},
    )
    op.create_index(
        "ix_payments_customer_id_created_at_id", "payments", ["customer_id", "created_at", "id"]
    )
    op.create_index("ix_payments_provider_reference", "payments", ["provider_reference"])
    for table in SYNCED:
        op.create_index(f"ix_{table}_esco_id_updated_at_id", table, ["esco_id", "updated_at", "id"])


def downgrade() -> None:
    for table in SYNCED:
        op.drop_index(f"ix_{table}_esco_id_updated_at_id", table_name=table)
    op.drop_index("ix_payments_provider_reference", table_name="payments")
    op.drop_index("ix_payments_customer_id_created_at_id", table_name="payments")
    op.drop_index("ix_meters_esco_id_serial_pattern", table_name="meters")
    op.drop_index("ix_properties_esco_id_plot_pattern", table_name="properties")
    op.drop_index("ix_customers_esco_id_lower_email_pattern", table_name="customers")
