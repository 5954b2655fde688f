"""Partner webhooks as the API shows them: endpoints, deliveries and their attempts.

Leaves only (no relations): a partner key without `read` may select all of them in a
mutation's payload (auth/scopes.py), and nothing here leads to other rows. The secret
is no field of any type: the mutations that make one answer it beside the endpoint.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

import strawberry

from ..fields import declare
from ..live.messages import message_id
from .node import RowType, to_global_id, uuid_field


def _own_id(type_name: str) -> Any:
    def resolve(root: strawberry.Parent[Any]) -> strawberry.ID:
        return strawberry.ID(to_global_id(type_name, root.id))

    return strawberry.field(
        resolver=resolve, description="Opaque id of this object.", metadata=declare("id")
    )


def _esco_id(root: strawberry.Parent[Any]) -> strawberry.ID:
    return strawberry.ID(to_global_id("Esco", root.esco_id))


def _webhook_id(root: strawberry.Parent[Any]) -> str:
    return message_id(root.event_id)


def _enum(kind: type[Enum], column: str, description: str) -> Any:
    def resolve(root: strawberry.Parent[Any]) -> Any:
        return kind(getattr(root, column))

    resolve.__annotations__["return"] = kind
    return strawberry.field(resolver=resolve, description=description, metadata=declare(column))


def _webhook_id_field(description: str) -> Any:
    return strawberry.field(
        resolver=_webhook_id, description=description, metadata=declare("event_id")
    )


@strawberry.enum(description="Whether an endpoint receives deliveries.")
class WebhookEndpointStatus(Enum):
    ENABLED = "enabled"
    DISABLED = "disabled"
    DELETED = "deleted"


@strawberry.enum(description="Where a delivery of one event to one endpoint stands.")
class WebhookDeliveryStatus(Enum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@strawberry.enum(description="How one attempt of a delivery ended.")
class WebhookAttemptOutcome(Enum):
    SENDING = "sending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@strawberry.type(description="A partner's URL that receives an ESCO's events, signed.")
class WebhookEndpoint(RowType):
    id: strawberry.ID = _own_id("WebhookEndpoint")
    uuid: UUID = uuid_field()
    url: str = strawberry.field(description="Where deliveries are POSTed (https).")
    event_types: list[str] = strawberry.field(
        description="The event types it receives (see `events` for the list)."
    )
    failing_since: datetime | None = strawberry.field(
        description="The first failed attempt since the last success (null: healthy)."
    )
    disabled_at: datetime | None = strawberry.field(description="When it was disabled.")
    disabled_reason: str | None = strawberry.field(
        description="Why: after failing for too long, or by whom."
    )
    created_at: datetime = strawberry.field(description="When it was created.")
    updated_at: datetime = strawberry.field(description="When it last changed.")
    esco_id: strawberry.ID = strawberry.field(
        resolver=_esco_id,
        description="The ESCO whose events it receives (its global id).",
        metadata=declare("esco_id"),
    )
    status: WebhookEndpointStatus = _enum(
        WebhookEndpointStatus,
        "status",
        "ENABLED, DISABLED (after failing, or by hand) or DELETED.",
    )


@strawberry.type(description="One event's delivery to one endpoint, over all its attempts.")
class WebhookDelivery:
    # Answered by redeliverWebhookEvent only, made from its row (WebhookDelivery.of).
    id: strawberry.ID = strawberry.field(description="Opaque id of this object.")
    event_id: strawberry.ID = strawberry.field(description="The event (its place in the log).")
    event_type: str = strawberry.field(description="The event's type.")
    attempts: int = strawberry.field(description="Attempts made so far.")
    next_attempt_at: datetime = strawberry.field(
        description="When it is tried next (while PENDING)."
    )
    delivered_at: datetime | None = strawberry.field(description="When a 2xx answer came.")
    webhook_id: str = strawberry.field(
        description="The `webhook-id` header: the same on every attempt."
    )
    status: WebhookDeliveryStatus = strawberry.field(
        description="PENDING, SUCCEEDED or FAILED (no tries left)."
    )

    @classmethod
    def of(cls, row: Any) -> WebhookDelivery:
        return cls(
            id=strawberry.ID(to_global_id("WebhookDelivery", row.id)),
            event_id=strawberry.ID(str(row.event_id)),
            event_type=row.event_type,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            delivered_at=row.delivered_at,
            webhook_id=message_id(row.event_id),
            status=WebhookDeliveryStatus(row.status),
        )


@strawberry.type(description="One attempt to deliver an event: the delivery log's entry.")
class WebhookAttempt(RowType):
    id: strawberry.ID = _own_id("WebhookAttempt")
    attempt: int = strawberry.field(description="1 for the first try, 2 for the next, …")
    event_id: strawberry.ID = strawberry.field(description="The event (its place in the log).")
    event_type: str = strawberry.field(description="The event's type.")
    status_code: int | None = strawberry.field(
        description="The receiver's HTTP status (null: no answer)."
    )
    duration_ms: int | None = strawberry.field(description="How long the attempt took.")
    error: str | None = strawberry.field(description="Why it failed (null when it did not).")
    response_prefix: str | None = strawberry.field(
        description="The start of the receiver's answer (at most 512 characters)."
    )
    next_retry_at: datetime | None = strawberry.field(
        description="When the delivery is tried again after this failure (null: it is "
        "not, having succeeded or run out of tries)."
    )
    created_at: datetime = strawberry.field(description="When the attempt started.")
    webhook_id: str = _webhook_id_field("The `webhook-id` header it carried.")
    outcome: WebhookAttemptOutcome = _enum(
        WebhookAttemptOutcome, "outcome", "SENDING, SUCCEEDED, FAILED or INTERRUPTED."
    )
