"""Partner webhook endpoints: create, change, delete, rotate the secret, redeliver.

Decisions (docs/webhooks.md):
- Admins, operators of the endpoint's ESCO, and partner keys of that ESCO with the
  `webhooks:write` scope. Anyone else: FORBIDDEN; an endpoint of another ESCO looks
  missing (NOT_FOUND), as everywhere.
- The secret (Standard Webhooks `whsec_…`) is answered by the mutation that makes it
  (create, rotate) and never again; the audit trail records that it changed, not what
  it is.
- The URL must pass live/targets.py: https only, and the addresses its name resolves
  to now must be public ones (loopback and http:// only with
  FLOWS_WEBHOOKS_ALLOW_LOOPBACK). The worker checks again before every send.
- A new endpoint receives the events committed after it was made (its cursor starts at
  the ESCO's newest event). Re-enabling a disabled endpoint resumes where it stopped,
  so what committed meanwhile is still delivered (while the log keeps it).
- Deleting keeps the row (status `deleted`, secret wiped) so the audit trail and the
  delivery log still name it; nothing more is sent to it.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import uuid
from typing import Any

from sqlalchemy import func, select, text, update
from strawberry import Maybe

from ..db.models import Event, WebhookDelivery, WebhookEndpoint, table_of
from ..live.kinds import KINDS
from ..live.messages import delivery_body
from ..live.targets import TargetRefused, parse_target, resolve
from . import inputs
from .problems import ErrorCode, Problems, reject
from .tx import Row, Tx, changed

ENDPOINTS = table_of(WebhookEndpoint)
DELIVERIES = table_of(WebhookDelivery)
EVENTS = table_of(Event)

WEBHOOKS_SCOPE = "webhooks:write"
# Endpoints an ESCO may have (deleted ones do not count).
MAX_ENDPOINTS = 20
# How long the URL's name may take to resolve while a mutation waits.
RESOLVE_TIMEOUT_S = 3.0
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _require(tx: Tx) -> None:
    tx.require_role("admin", "operator", "partner", scope=WEBHOOKS_SCOPE)


async def _check_url(problems: Problems, url: str, allow_loopback: bool) -> str:
    """The URL as stored: first the shape every URL input has (services/inputs.py), then
    the webhook rules (live/targets.py: https only, public addresses only)."""
    shaped = inputs.http_url(problems, "url", url)
    if shaped is None:
        problems.add("url", ErrorCode.INVALID, "A URL is required.")
        return url
    if inputs.flagged(problems, "url"):
        return shaped
    try:
        target = parse_target(shaped, allow_loopback)
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            await resolve(target, allow_loopback)
    except TargetRefused as refused:
        problems.add("url", ErrorCode.INVALID, str(refused))
    except TimeoutError:
        problems.add("url", ErrorCode.INVALID, "The host name did not resolve in time.")
    return shaped


def _check_types(problems: Problems, event_types: list[str]) -> list[str]:
    if not event_types:
        problems.add("eventTypes", ErrorCode.INVALID, "Name at least one event type.")
    if len(event_types) > len(KINDS):
        # More than there are kinds: some are unknown or repeated; one error, not one each.
        problems.add("eventTypes", ErrorCode.INVALID, f"At most {len(KINDS)} event types.")
        return []
    for i, kind in enumerate(event_types):
        if kind not in KINDS:
            problems.add(
                ("eventTypes", str(i)),
                ErrorCode.INVALID,
                f"Not an event type; one of: {', '.join(sorted(KINDS))}.",
            )
    return sorted(set(event_types))


async def _endpoint(tx: Tx, endpoint_id: uuid.UUID | None, *, lock: bool = True) -> Row:
    """The endpoint the viewer may change; anything else (a deleted one too) looks
    missing."""
    return await tx.visible(
        ENDPOINTS,
        endpoint_id,
        "endpointId",
        "webhook endpoint",
        lock="update" if lock else None,
        also=lambda row: row.status != "deleted",
    )


def _shown(row: Row) -> dict[str, Any]:
    return {"url": row.url, "event_types": list(row.event_types), "status": row.status}


async def create_endpoint(
    tx: Tx,
    esco_id: uuid.UUID | None,
    url: str,
    event_types: list[str],
    *,
    allow_loopback: bool,
) -> tuple[Row, str]:
    """The new endpoint and its secret (shown this once)."""
    _require(tx)
    esco = tx.require_esco(esco_id, "escoId", "ESCO")
    problems = Problems()
    kinds = _check_types(problems, event_types)
    problems.raise_if_any()
    await _check_url(problems, url, allow_loopback)
    problems.raise_if_any()
    # One endpoint count per ESCO at a time (two creates cannot both pass the bound).
    await tx.conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtext('flows.webhooks:' || :esco))"),
        {"esco": str(esco)},
    )
    count = await tx.conn.scalar(
        select(func.count())
        .select_from(ENDPOINTS)
        .where(ENDPOINTS.c.esco_id == esco, ENDPOINTS.c.status != "deleted")
    )
    if count is not None and count >= MAX_ENDPOINTS:
        raise reject(
            "escoId", ErrorCode.INVALID, f"An ESCO may have at most {MAX_ENDPOINTS} endpoints."
        )
    # From the ESCO's newest event on: ids are in commit order (db/models/events.py),
    # so every event committed after this one has a larger id.
    start = await tx.conn.scalar(
        select(func.coalesce(func.max(EVENTS.c.id), 0)).where(EVENTS.c.esco_id == esco)
    )
    secret = new_secret()
    row = (
        await tx.conn.execute(
            ENDPOINTS.insert()
            .values(
                esco_id=esco,
                url=url,
                event_types=kinds,
                secret=secret,
                cursor=start,
                created_by=tx.actor,
            )
            .returning(ENDPOINTS)
        )
    ).one()
    await tx.audit(
        "createWebhookEndpoint", "webhook_endpoint", row.id, changed({}, _shown(row)), esco
    )
    return row, secret


async def update_endpoint(
    tx: Tx,
    endpoint_id: uuid.UUID | None,
    url: Maybe[str | None],
    event_types: Maybe[list[str] | None],
    enabled: Maybe[bool | None],
    *,
    allow_loopback: bool,
) -> Row:
    """Change the given fields; left-out ones (None) stay, and none of them may be set
    to null."""
    _require(tx)
    row = await _endpoint(tx, endpoint_id)
    problems = Problems()
    values: dict[str, Any] = {}
    for field, given in (("url", url), ("eventTypes", event_types), ("enabled", enabled)):
        if given is not None and given.value is None:
            problems.add(field, ErrorCode.INVALID, "Cannot be null; leave it out to keep it.")
    if event_types is not None and event_types.value is not None:
        values["event_types"] = _check_types(problems, event_types.value)
    problems.raise_if_any()
    if url is not None and url.value is not None:
        values["url"] = await _check_url(problems, url.value, allow_loopback)
    problems.raise_if_any()
    if enabled is not None and enabled.value is not None:
        on = enabled.value
        values["status"] = "enabled" if on else "disabled"
        if on and row.status != "enabled":
            # A fresh start: the failures that disabled it are behind it.
            values.update(failing_since=None, disabled_at=None, disabled_reason=None)
        elif not on and row.status == "enabled":
            values.update(disabled_at=func.now(), disabled_reason="Disabled by " + tx.actor)
    shown = {k: v for k, v in values.items() if k in ("url", "event_types", "status")}
    diff = changed(_shown(row), shown)
    if values:
        row = (
            await tx.conn.execute(
                update(ENDPOINTS)
                .where(ENDPOINTS.c.id == row.id)
                .values(values)
                .returning(ENDPOINTS)
            )
        ).one()
    await tx.audit("updateWebhookEndpoint", "webhook_endpoint", row.id, diff, row.esco_id)
    return row


async def delete_endpoint(tx: Tx, endpoint_id: uuid.UUID | None) -> Row:
    _require(tx)
    row = await _endpoint(tx, endpoint_id)
    row = (
        await tx.conn.execute(
            update(ENDPOINTS)
            .where(ENDPOINTS.c.id == row.id)
            # Nothing is signed with it again: it need not be kept.
            .values(status="deleted", secret="")
            .returning(ENDPOINTS)
        )
    ).one()
    await tx.audit(
        "deleteWebhookEndpoint",
        "webhook_endpoint",
        row.id,
        {"removed": {"url": row.url}},
        row.esco_id,
    )
    return row


async def rotate_secret(tx: Tx, endpoint_id: uuid.UUID | None) -> tuple[Row, str]:
    _require(tx)
    row = await _endpoint(tx, endpoint_id)
    secret = new_secret()
    row = (
        await tx.conn.execute(
            update(ENDPOINTS)
            .where(ENDPOINTS.c.id == row.id)
            .values(secret=secret)
            .returning(ENDPOINTS)
        )
    ).one()
    await tx.audit(
        "rotateWebhookSecret",
        "webhook_endpoint",
        row.id,
        {"changed": {"secret": {"old": "(hidden)", "new": "(hidden)"}}},
        row.esco_id,
    )
    return row, secret


def parse_event_id(value: str) -> int | None:
    text_ = str(value)
    if not (text_.isascii() and text_.isdigit()) or len(text_) > 18:
        return None
    return int(text_)


async def redeliver(tx: Tx, endpoint_id: uuid.UUID | None, event_id: str) -> Row:
    """Send an event to the endpoint again (or for the first time, if it is one of the
    endpoint's types still in the log): queued now, in its place by event id."""
    _require(tx)
    endpoint = await _endpoint(tx, endpoint_id)
    number = parse_event_id(event_id)
    if number is None:
        raise reject("eventId", ErrorCode.NOT_FOUND, "No event with this id.")
    existing = (
        await tx.conn.execute(
            select(DELIVERIES)
            .where(DELIVERIES.c.endpoint_id == endpoint.id, DELIVERIES.c.event_id == number)
            .with_for_update()
        )
    ).first()
    if existing is not None:
        row = (
            await tx.conn.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.id == existing.id)
                .values(status="pending", next_attempt_at=func.now(), delivered_at=None)
                .returning(DELIVERIES)
            )
        ).one()
    else:
        event = (
            await tx.conn.execute(
                select(EVENTS).where(
                    EVENTS.c.id == number,
                    EVENTS.c.esco_id == endpoint.esco_id,
                    EVENTS.c.type.in_(list(endpoint.event_types)),
                )
            )
        ).first()
        if event is None:
            raise reject(
                "eventId",
                ErrorCode.NOT_FOUND,
                "No event with this id for this endpoint (of its types, still in the log).",
            )
        row = (
            await tx.conn.execute(
                DELIVERIES.insert()
                .values(
                    esco_id=endpoint.esco_id,
                    endpoint_id=endpoint.id,
                    event_id=event.id,
                    event_type=event.type,
                    body=delivery_body(event),
                )
                .returning(DELIVERIES)
            )
        ).one()
    await tx.audit(
        "redeliverWebhookEvent",
        "webhook_delivery",
        row.id,
        {"changed": {"status": {"old": existing.status if existing else None, "new": "pending"}}},
        row.esco_id,
    )
    return row
