"""Sign-ins at identity providers: which person (issuer, subject) is which principal.

A token from an identity provider says who someone is, never what they may do: a
customer identity is linked by accepting an invite, staff access is granted by an
admin, per ESCO (docs/identity.md).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    DDL,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, CreatedAt, Timestamps, esco_fk, metadata, tenant_fk, uuid_pk


class CustomerIdentity(CreatedAt, Base):
    """An identity provider's account linked to a customer (`created_at`: when linked)."""

    __tablename__ = "customer_identities"
    __table_args__ = (
        tenant_fk(["customer_id"], "customers"),
        UniqueConstraint("issuer", "subject"),
        Index("ix_customer_identities_customer_id", "customer_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    esco_id: Mapped[uuid.UUID] = esco_fk()
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    issuer: Mapped[str] = mapped_column(Text, nullable=False)
    subject: Mapped[str] = mapped_column(Text, nullable=False)
    # The verified e-mail the provider vouched for when the identity was linked.
    email: Mapped[str | None] = mapped_column(Text)
    # The invite whose acceptance linked it: accepting that invite again is a no-op.
    invite_token: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("customer_invites.token")
    )


class StaffGrant(Timestamps, Base):
    """The operator role in one ESCO, granted to an identity by subject or, before its
    first sign-in, by verified e-mail (the subject is filled in at that sign-in)."""

    __tablename__ = "staff_grants"
    __table_args__ = (
        CheckConstraint("role = 'operator'", name="known_role"),
        CheckConstraint("subject IS NOT NULL OR email IS NOT NULL", name="names_someone"),
        CheckConstraint("(revoked_at IS NULL) = (revoked_by IS NULL)", name="revoked_by_someone"),
        Index(
            "uq_staff_grants_active_subject",
            "issuer",
            "subject",
            "esco_id",
            unique=True,
            postgresql_where=text("revoked_at IS NULL AND subject IS NOT NULL"),
        ),
        Index(
            "uq_staff_grants_active_email",
            "issuer",
            text("lower(email)"),
            "esco_id",
            unique=True,
            postgresql_where=text("revoked_at IS NULL AND subject IS NULL"),
        ),
        Index("ix_staff_grants_esco_id", "esco_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    esco_id: Mapped[uuid.UUID] = esco_fk()
    role: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'operator'"))
    issuer: Mapped[str] = mapped_column(Text, nullable=False)
    subject: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    granted_by: Mapped[str] = mapped_column(Text, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[str | None] = mapped_column(Text)


# Who an identity is, in one round trip and before any tenant is known: every grant
# naming it (by subject, or by e-mail while unclaimed; revoked ones too, so a revoked
# operator is told so) and its customer link. SECURITY DEFINER: it runs as the tables'
# owner, past row-level security, like the authenticator's other look-ups. The
# migration (0006) creates the same text.
IDENTITY_PRINCIPAL_SQL = """CREATE FUNCTION flows_identity_principal(
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

event.listen(metadata, "after_create", DDL(IDENTITY_PRINCIPAL_SQL.replace("%", "%%")))
event.listen(
    metadata,
    "after_drop",
    DDL("DROP FUNCTION IF EXISTS flows_identity_principal(text, text, text)"),
)
