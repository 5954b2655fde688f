"""identities of identity providers: customer links and staff grants

Revision ID: 0006
Revises: 0007
Create Date: 2026-12-01

`customer_identities` links an (issuer, subject) to a customer; `staff_grants` gives
an identity (by subject, or by verified e-mail until its first sign-in) the operator
role in one ESCO. Both are tenant tables under row-level security;
`flows_identity_principal` reads them for the authenticator, before any tenant is
known (SECURITY DEFINER, as the tables' owner).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

API_ROLE = "flows_api"
PRINCIPAL_FUNCTION = """CREATE FUNCTION flows_identity_principal(
    iss text, sub text, verified_email text
) RETURNS TABLE (kind text, esco_id uuid, customer_id uuid, revoked boolean, by_email boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT 'staff', g.esco_id, NULL::uuid, g.revoked_at IS NOT NULL, g.subject IS NULL
    FROM staff_grants g
    WHERE g.issuer = iss
      AND (g.subject = sub
           OR (g.subject IS NULL AND verified_email IS NOT NULL
               AND lower(g.email) = lower(verified_email)))
    UNION ALL
    SELECT 'customer', i.esco_id, i.customer_id, false, false
    FROM customer_identities i
    WHERE i.issuer = iss AND i.subject = sub
$$"""


def _tenant_table(table: str) -> None:
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {API_ROLE}")
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} "
        "USING (flows_esco_visible(esco_id)) WITH CHECK (flows_esco_visible(esco_id))"
    )


def upgrade() -> None:
    op.create_table(
        "customer_identities",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("esco_id", sa.UUID(), nullable=False),
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("invite_token", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["invite_token"],
            ["customer_invites.token"],
            name=op.f("fk_customer_identities_invite_token_customer_invites"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id", "esco_id"],
            ["customers.id", "customers.esco_id"],
            name=op.f("fk_customer_identities_customer_id_esco_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["esco_id"], ["escos.id"], name=op.f("fk_customer_identities_esco_id_escos")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_identities")),
        sa.UniqueConstraint(
            "issuer", "subject", name=op.f("uq_customer_identities_issuer_subject")
        ),
    )
    op.create_index("ix_customer_identities_customer_id", "customer_identities", ["customer_id"])
    op.create_table(
        "staff_grants",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("esco_id", sa.UUID(), nullable=False),
        sa.Column("role", sa.Text(), server_default=sa.text("'operator'"), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("granted_by", sa.Text(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.Text(), nullable=True),
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
        sa.CheckConstraint("role = 'operator'", name=op.f("ck_staff_grants_known_role")),
        sa.CheckConstraint(
            "subject IS NOT NULL OR email IS NOT NULL", name=op.f("ck_staff_grants_names_someone")
        ),
        sa.CheckConstraint(
            "(revoked_at IS NULL) = (revoked_by IS NULL)",
            name=op.f("ck_staff_grants_revoked_by_someone"),
        ),
        sa.ForeignKeyConstraint(
            ["esco_id"], ["escos.id"], name=op.f("fk_staff_grants_esco_id_escos")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_grants")),
    )
    op.create_index(
        "uq_staff_grants_active_subject",
        "staff_grants",
        ["issuer", "subject", "esco_id"],
        unique=True,
        postgresql_where=sa.text("revoked_at IS NULL AND subject IS NOT NULL"),
    )
    op.create_index(
        "uq_staff_grants_active_email",
        "staff_grants",
        ["issuer", sa.text("lower(email)"), "esco_id"],
        unique=True,
        postgresql_where=sa.text("revoked_at IS NULL AND subject IS NULL"),
    )
    op.create_index("ix_staff_grants_esco_id", "staff_grants", ["esco_id"])
    op.execute(
        "CREATE TRIGGER staff_grants_touch_updated_at BEFORE UPDATE ON staff_grants "
        "FOR EACH ROW EXECUTE FUNCTION flows_touch_updated_at()"
    )
    for table in ("customer_identities", "staff_grants"):
        _tenant_table(table)
    op.execute(PRINCIPAL_FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION flows_identity_principal(text, text, text)")
    op.drop_table("staff_grants")
    op.drop_table("customer_identities")
