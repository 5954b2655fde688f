"""billing runs as jobs: their progress, an index of the runs still running; customers'
lower-cased email stored for the EMAIL order

Revision ID: 0005
Revises: 0006
Create Date: 2026-12-01

A run now shows `running` while it works (docs/billing-runs.md): it records how far
it is, and start-up looks for runs left `running` by a crash. The customers list
ordered by EMAIL seeks on a stored lower(email): under row-level security an index
condition on lower(email) itself is not allowed (lower() is not leakproof).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("billing_runs", sa.Column("progress_billed", sa.Integer(), nullable=True))
    op.add_column("billing_runs", sa.Column("progress_total", sa.Integer(), nullable=True))
    op.create_check_constraint(
        op.f("ck_billing_runs_progress_within_total"),
        "billing_runs",
        "progress_billed >= 0 AND progress_billed <= progress_total",
    )
    op.create_index(
        "ix_billing_runs_running",
        "billing_runs",
        ["esco_id", "month"],
        postgresql_where=sa.text("status = 'running'"),
    )

    op.add_column(
        "customers",
        sa.Column(
            "email_key", sa.Text(), sa.Computed("lower(email)", persisted=True), nullable=False
        ),
    )
    op.create_index(
        "ix_customers_esco_id_email_key_id", "customers", ["esco_id", "email_key", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_customers_esco_id_email_key_id", table_name="customers")
    op.drop_column("customers", "email_key")
    op.drop_index("ix_billing_runs_running", table_name="billing_runs")
    op.drop_constraint(op.f("ck_billing_runs_progress_within_total"), "billing_runs", type_="check")
    op.drop_column("billing_runs", "progress_total")
    op.drop_column("billing_runs", "progress_billed")
