"""billing runs record skipped meters; index for customers by creation

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "billing_runs",
        sa.Column(
            "skipped_meters",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )
    op.create_index(
        "ix_customers_esco_id_created_at_id", "customers", ["esco_id", "created_at", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_customers_esco_id_created_at_id", table_name="customers")
    op.drop_column("billing_runs", "skipped_meters")
