"""Who a verified identity-provider token is: looked up in the database on every
request (one statement), so a revoked grant or an unlinked identity is refused on its
very next request, in every server process."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ..db.engine import SET_TENANT
from ..rules.emails import grant_email
from .errors import Unauthenticated
from .oidc import Verified
from .viewer import Viewer

# Servers listen here (app.py): `{"issuer": …, "subject": …}` of an identity whose
# staff grant was revoked or whose link to a customer was removed, sent when the
# transaction commits, so every process ends that identity's subscriptions at once (its
# HTTP requests are refused anyway: who it is is read on every request).
GRANT_CHANNEL = "flows_identities"
NOTIFY_IDENTITY = text(f"SELECT pg_notify('{GRANT_CHANNEL}', :who)")


def identity_changed_payload(issuer: str, subject: str) -> dict[str, str]:
    return {"who": json.dumps({"issuer": issuer, "subject": subject})}


def subject_of(payload: str) -> str | None:
    """The subject named by a notification on GRANT_CHANNEL (None: not one of ours)."""
    try:
        who = json.loads(payload)
    except ValueError:
        return None
    subject = who.get("subject") if isinstance(who, dict) else None
    return subject if isinstance(subject, str) else None


PRINCIPAL = text(
    "SELECT kind, esco_id, customer_id, revoked, by_email "
    "FROM flows_identity_principal(:issuer, :subject, :email)"
)
# A grant made by e-mail is claimed by the first verified sign-in with that e-mail:
# from then on it names the subject (a later change of e-mail at the provider does
# not move it). A grant by e-mail for an ESCO the subject already has is retired.
RETIRE_DUPLICATES = text(
    """UPDATE staff_grants g SET revoked_at = now(), revoked_by = :actor
    WHERE g.issuer = :issuer AND g.subject IS NULL AND g.revoked_at IS NULL
      AND lower(g.email) = :email
      AND EXISTS (SELECT 1 FROM staff_grants h
                  WHERE h.issuer = g.issuer AND h.subject = :subject
                    AND h.esco_id = g.esco_id AND h.revoked_at IS NULL)
    RETURNING g.id, g.esco_id"""
)
CLAIM = text(
    """UPDATE staff_grants SET subject = :subject
    WHERE issuer = :issuer AND subject IS NULL AND revoked_at IS NULL
      AND lower(email) = :email
    RETURNING id, esco_id"""
)
AUDIT = text(
    """INSERT INTO audit_log (esco_id, actor, action, entity, entity_id, changes)
    VALUES (:esco_id, :actor, :action, 'staff_grant', :entity_id, CAST(:changes AS jsonb))"""
)


def actor_of(issuer: str, subject: str) -> str:
    return f"user:{issuer}#{subject}"


async def identity_viewer(engine: AsyncEngine, who: Verified) -> Viewer:
    # A grant by e-mail matches an ASCII address only (rules/emails.py); both sides are
    # in that form already, so `lower()` in SQL changes nothing in any locale.
    params = {"issuer": who.issuer, "subject": who.subject, "email": grant_email(who.email)}
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        rows = (await conn.execute(PRINCIPAL, params)).all()
    staff = [r for r in rows if r.kind == "staff" and not r.revoked]
    if staff:
        if any(r.by_email for r in staff):
            await _claim_email_grants(engine, who)
        return _viewer(who, "operator", frozenset(r.esco_id for r in staff))
    customer = next((r for r in rows if r.kind == "customer"), None)
    if customer is not None:
        return _viewer(who, "customer", frozenset({customer.esco_id}), customer.customer_id)
    if rows:
        raise Unauthenticated("This identity's operator access has been revoked.")
    # Signed in at a trusted provider, but nobody here yet: may accept an invite.
    return _viewer(who, "unlinked", frozenset())


def _viewer(
    who: Verified,
    role: str,
    esco_ids: frozenset[uuid.UUID],
    customer_id: uuid.UUID | None = None,
) -> Viewer:
    return Viewer(
        role=role,
        sub=who.subject,
        esco_ids=esco_ids,
        customer_id=customer_id,
        issuer=who.issuer,
        email=who.email,
    )


async def _claim_email_grants(engine: AsyncEngine, who: Verified) -> None:
    actor = actor_of(who.issuer, who.subject)
    params = {
        "issuer": who.issuer,
        "subject": who.subject,
        "email": grant_email(who.email),
        "actor": actor,
    }
    async with engine.begin() as conn:
        await conn.execute(SET_TENANT, {"esco_ids": "*"})
        for action, statement, changes in (
            # The ESCO is already granted by subject: the e-mail grant adds nothing.
            ("retireStaffGrant", RETIRE_DUPLICATES, {"changed": {"revokedBy": actor}}),
            ("claimStaffGrant", CLAIM, {"changed": {"subject": who.subject}}),
        ):
            for grant in (await conn.execute(statement, params)).all():
                await conn.execute(
                    AUDIT,
                    {
                        "esco_id": grant.esco_id,
                        "actor": actor,
                        "action": action,
                        "entity_id": str(grant.id),
                        "changes": json.dumps(changes),
                    },
                )
