"""Identities of identity providers: a customer's linked sign-ins, and the operator
access admins grant to staff (docs/identity.md).

A provider's token says who someone is; what they may do is decided here and kept in
the database: `customer_identities` (linked by accepting an invite, removed by
unlinking) and `staff_grants` (the operator role in one ESCO, by subject or by
verified e-mail until the first sign-in).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update

from ..auth.identities import NOTIFY_IDENTITY, identity_changed_payload
from ..config import checked_url
from ..db.engine import SET_TENANT, tenant_setting
from ..db.models import CustomerIdentity, CustomerInvite, StaffGrant, table_of
from ..rules.emails import grant_email, normalized_email, same_email
from .inputs import is_email
from .problems import ErrorCode, Problems, reject
from .scope import ESCOS
from .tx import Row, Tx

IDENTITIES = table_of(CustomerIdentity)
GRANTS = table_of(StaffGrant)
INVITES = table_of(CustomerInvite)

SUBJECT_MAX = 255


def signs_in_with_provider(tx: Tx) -> bool:
    """Whether the viewer is a provider identity that accepting an invite links."""
    return tx.viewer.issuer is not None and tx.viewer.role in ("unlinked", "customer")


async def reach_invite(tx: Tx, token: uuid.UUID) -> None:
    """Let an identity not linked to anyone yet reach the invite it holds the token of.

    It has no ESCO, so row-level security shows it nothing; the token (a random
    secret sent to the customer) is what entitles it to the invite. Its ESCO is found
    past the policies, and the rest of the transaction sees that ESCO only.
    """
    await tx.conn.execute(SET_TENANT, {"esco_ids": "*"})
    esco_id = await tx.conn.scalar(select(INVITES.c.esco_id).where(INVITES.c.token == token))
    await tx.conn.execute(
        SET_TENANT, {"esco_ids": tenant_setting(frozenset({esco_id} if esco_id else ()))}
    )


async def identity_of_viewer(tx: Tx) -> Row | None:
    """The viewer's linked identity (visible in the transaction's scope), if any."""
    return (
        await tx.conn.execute(
            select(IDENTITIES).where(
                IDENTITIES.c.issuer == tx.viewer.issuer, IDENTITIES.c.subject == tx.viewer.sub
            )
        )
    ).first()


def check_email(tx: Tx, customer: Row) -> None:
    """The provider must vouch for the invited customer's own e-mail."""
    email = tx.viewer.email
    if email is None:
        raise reject(
            "token",
            ErrorCode.INVITE_EMAIL_MISMATCH,
            "Your sign-in carries no verified e-mail; the invite is for a verified e-mail address.",
        )
    if not same_email(email, customer.email):
        raise reject(
            "token",
            ErrorCode.INVITE_EMAIL_MISMATCH,
            "This invite is for another e-mail address than the one you signed in with.",
        )


async def link(tx: Tx, invite: Row, existing: Row | None) -> Row:
    """Link the viewer's identity to the invite's customer (kept if already linked)."""
    if existing is not None:
        return existing
    row = (
        await tx.conn.execute(
            insert(IDENTITIES)
            .values(
                esco_id=invite.esco_id,
                customer_id=invite.customer_id,
                issuer=tx.viewer.issuer,
                subject=tx.viewer.sub,
                email=tx.viewer.email,
                invite_token=invite.token,
            )
            .returning(IDENTITIES)
        )
    ).one()
    await tx.customer_event(
        row.esco_id,
        row.customer_id,
        "identity_linked",
        {"issuer": row.issuer, "subject": row.subject, "email": row.email},
    )
    return row


@dataclass(frozen=True)
class Unlinked:
    identity: Row
    customer_id: uuid.UUID


async def unlink_identity(tx: Tx, identity_id: uuid.UUID | None) -> Unlinked:
    """Remove a sign-in from a customer: the customer themself, or staff."""
    tx.require_role("admin", "operator", "customer")
    row = await tx.visible(
        IDENTITIES,
        identity_id,
        "identityId",
        "identity",
        lock="update",
        # A customer sees only their own sign-ins.
        also=lambda row: tx.viewer.role != "customer" or row.customer_id == tx.viewer.customer_id,
    )
    await tx.conn.execute(delete(IDENTITIES).where(IDENTITIES.c.id == row.id))
    await tx.conn.execute(NOTIFY_IDENTITY, identity_changed_payload(row.issuer, row.subject))
    await tx.customer_event(
        row.esco_id,
        row.customer_id,
        "identity_unlinked",
        {"issuer": row.issuer, "subject": row.subject, "email": row.email},
    )
    return Unlinked(row, row.customer_id)


# --- staff ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Someone:
    """An identity named by an admin: issuer, and subject or verified e-mail."""

    issuer: str
    subject: str | None
    email: str | None


def _someone(problems: Problems, issuer: str, subject: str | None, email: str | None) -> Someone:
    issuer = issuer.strip()
    try:
        checked_url(issuer, "issuer")
    except ValueError:
        problems.add(
            "issuer",
            ErrorCode.INVALID,
            "Must be the issuer URL exactly as in its tokens (https://, http:// only on "
            "a loopback host).",
        )
    subject = (subject or "").strip() or None
    email = normalized_email(email or "") or None
    if subject is not None and len(subject) > SUBJECT_MAX:
        problems.add("subject", ErrorCode.INVALID, f"At most {SUBJECT_MAX} characters.")
    if email is not None and not is_email(email):
        problems.add("email", ErrorCode.INVALID, "Not an e-mail address.")
    elif email is not None and grant_email(email) is None:
        problems.add(
            "email",
            ErrorCode.INVALID,
            "Grants by e-mail take ASCII addresses only (look-alike letters could claim "
            "them); grant this identity by `subject`.",
        )
    if subject is None and email is None:
        problems.add("subject", ErrorCode.INVALID, "Name the identity by `subject` or by `email`.")
    return Someone(issuer, subject, email)


async def _escos(
    tx: Tx, problems: Problems, esco_ids: list[uuid.UUID | None], required: bool
) -> list[uuid.UUID]:
    if required and not esco_ids:
        problems.add("escoIds", ErrorCode.INVALID, "Name at least one ESCO.")
    wanted = [e for e in esco_ids if e is not None]
    found = set((await tx.conn.execute(select(ESCOS.c.id).where(ESCOS.c.id.in_(wanted)))).scalars())
    out: list[uuid.UUID] = []
    for i, esco_id in enumerate(esco_ids):
        if esco_id is None or esco_id not in found or not tx.may_see(esco_id):
            problems.add(("escoIds", str(i)), ErrorCode.NOT_FOUND, "No ESCO with this id.")
        elif esco_id not in out:
            out.append(esco_id)
    return out


def _names(someone: Someone) -> Any:
    """The grants naming this identity: by subject, or by e-mail."""
    conditions = []
    if someone.subject is not None:
        conditions.append(GRANTS.c.subject == someone.subject)
    if someone.email is not None:
        conditions.append(func.lower(GRANTS.c.email) == someone.email)
    return (GRANTS.c.issuer == someone.issuer) & or_(*conditions)


async def grant_operator(
    tx: Tx,
    issuer: str,
    subject: str | None,
    email: str | None,
    esco_ids: list[uuid.UUID | None],
) -> list[Row]:
    """Give an identity the operator role in ESCOs; a role it already has stays as it
    is (granting twice changes nothing)."""
    tx.require_role("admin")
    problems = Problems()
    someone = _someone(problems, issuer, subject, email)
    escos = await _escos(tx, problems, esco_ids, required=True)
    problems.raise_if_any()

    same = GRANTS.c.subject == someone.subject
    if someone.subject is None:
        same = GRANTS.c.subject.is_(None) & (func.lower(GRANTS.c.email) == someone.email)
    active = {
        r.esco_id: r
        for r in (
            await tx.conn.execute(
                select(GRANTS)
                .where(
                    GRANTS.c.issuer == someone.issuer,
                    same,
                    GRANTS.c.esco_id.in_(escos),
                    GRANTS.c.revoked_at.is_(None),
                )
                .with_for_update()
            )
        ).all()
    }
    out = []
    for esco_id in escos:
        if esco_id in active:
            # Already in force: nothing changes, but the request is on the record.
            await tx.audit(
                "grantOperatorAccess", "staff_grant", active[esco_id].id, {"changed": {}}, esco_id
            )
            out.append(active[esco_id])
            continue
        values = {
            "esco_id": esco_id,
            "role": "operator",
            "issuer": someone.issuer,
            "subject": someone.subject,
            "email": someone.email,
            "granted_by": tx.actor,
        }
        row = (await tx.conn.execute(insert(GRANTS).values(**values).returning(GRANTS))).one()
        await tx.audit("grantOperatorAccess", "staff_grant", row.id, {"created": values}, esco_id)
        out.append(row)
    return out


async def revoke_operator(
    tx: Tx,
    issuer: str,
    subject: str | None,
    email: str | None,
    esco_ids: list[uuid.UUID | None] | None,
) -> list[Row]:
    """End an identity's operator role in the ESCOs named (all, when none are): its
    next request is refused."""
    tx.require_role("admin")
    problems = Problems()
    someone = _someone(problems, issuer, subject, email)
    escos = None if esco_ids is None else await _escos(tx, problems, esco_ids, required=False)
    problems.raise_if_any()

    stmt = (
        update(GRANTS)
        .where(_names(someone), GRANTS.c.revoked_at.is_(None))
        .values(revoked_at=func.now(), revoked_by=tx.actor)
        .returning(GRANTS)
    )
    if escos is not None:
        stmt = stmt.where(GRANTS.c.esco_id.in_(escos))
    rows = list((await tx.conn.execute(stmt)).all())
    if not rows:
        field = "subject" if someone.subject is not None else "email"
        raise reject(field, ErrorCode.NOT_FOUND, "This identity has no operator access to revoke.")
    for row in rows:
        if row.subject is not None:
            await tx.conn.execute(
                NOTIFY_IDENTITY, identity_changed_payload(row.issuer, row.subject)
            )
        await tx.audit(
            "revokeOperatorAccess",
            "staff_grant",
            row.id,
            {"changed": {"revokedAt": {"old": None, "new": row.revoked_at}}},
            row.esco_id,
        )
    return rows
