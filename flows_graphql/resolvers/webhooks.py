"""Partner webhooks: the endpoints and delivery log (queries), and their mutations."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from sqlalchemy import false

from ..auth.viewer import Viewer
from ..context import Context
from ..errors import invalid_argument
from ..fields import root_connection
from ..loaders.webhooks import ATTEMPT_SPEC, ATTEMPTS, ENDPOINT_SPEC, ENDPOINTS
from ..services import webhooks as service
from ..types.connection import After, Before, Connection, First, Last
from ..types.errors import UserError
from ..types.node import parse_id
from ..types.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from .arguments import EscoIdArg, in_esco
from .mutation import run

Info = strawberry.Info[Context, None]


def may_read_webhooks(viewer: Viewer) -> bool:
    """Staff, and partner keys with `webhooks:write` (the scope that manages them)."""
    if viewer.role == "partner":
        return service.WEBHOOKS_SCOPE in viewer.scopes
    return viewer.role in ("admin", "operator")


@strawberry.type
class WebhooksQuery:
    @strawberry.field(
        description="Webhook endpoints (not deleted), oldest first: admins, operators of "
        "the ESCO, partner keys with `webhooks:write` (and `read`); empty for anyone else."
    )
    async def webhook_endpoints(
        self,
        info: Info,
        esco_id: EscoIdArg = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[WebhookEndpoint]:
        conditions: list[Any] = [ENDPOINTS.c.status != "deleted", *in_esco(ENDPOINTS, esco_id)]
        if not may_read_webhooks(info.context.viewer):
            conditions.append(false())
        page: Connection[WebhookEndpoint] = await root_connection(
            info, ENDPOINT_SPEC, None, conditions, first=first, after=after, last=last,
            before=before,
        )  # fmt: skip
        return page

    @strawberry.field(
        description="The delivery log of an endpoint: every attempt, newest first (who "
        "may see the endpoint; empty for anyone else)."
    )
    async def webhook_deliveries(
        self,
        info: Info,
        endpoint_id: Annotated[
            strawberry.ID, strawberry.argument(description="The endpoint (global id or uuid).")
        ],
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[WebhookAttempt]:
        endpoint = parse_id(endpoint_id, "WebhookEndpoint")
        if endpoint is None:
            raise invalid_argument(
                "`endpointId` is not the id of a webhook endpoint.", "endpointId"
            )
        conditions: list[Any] = [ATTEMPTS.c.endpoint_id == endpoint]
        if not may_read_webhooks(info.context.viewer):
            conditions.append(false())
        page: Connection[WebhookAttempt] = await root_connection(
            info, ATTEMPT_SPEC, None, conditions, first=first, after=after, last=last,
            before=before,
        )  # fmt: skip
        return page


# --- mutations -------------------------------------------------------------------------

EVENT_TYPES_DESCRIPTION = (
    "The event types to receive (e.g. `payment.status_changed`; the list is in "
    "docs/webhooks.md); at least one."
)


@strawberry.input(description="A new webhook endpoint of an ESCO.")
class CreateWebhookEndpointInput:
    esco_id: strawberry.ID = strawberry.field(description="The ESCO (global id or uuid).")
    url: str = strawberry.field(
        description="An https:// URL whose host resolves to public addresses only."
    )
    event_types: list[str] = strawberry.field(description=EVENT_TYPES_DESCRIPTION)


@strawberry.type(description="The result of createWebhookEndpoint.")
class CreateWebhookEndpointPayload:
    webhook_endpoint: WebhookEndpoint | None = strawberry.field(description="The new endpoint.")
    secret: str | None = strawberry.field(
        description="The signing secret (`whsec_…`, Standard Webhooks): shown this once."
    )
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(description="Changes to a webhook endpoint; left-out fields stay.")
class UpdateWebhookEndpointInput:
    endpoint_id: strawberry.ID = strawberry.field(description="The endpoint (global id or uuid).")
    url: strawberry.Maybe[str | None] = strawberry.field(
        description="A new URL (same rules); cannot be null."
    )
    event_types: strawberry.Maybe[list[str] | None] = strawberry.field(
        description=EVENT_TYPES_DESCRIPTION + " Cannot be null."
    )
    enabled: strawberry.Maybe[bool | None] = strawberry.field(
        description="false pauses deliveries; true resumes them where they stopped (what "
        "committed meanwhile is delivered, while the event log keeps it).",
    )


@strawberry.type(description="The result of updateWebhookEndpoint.")
class UpdateWebhookEndpointPayload:
    webhook_endpoint: WebhookEndpoint | None = strawberry.field(
        description="The endpoint as it is now."
    )
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(description="A webhook endpoint to act on.")
class WebhookEndpointInput:
    endpoint_id: strawberry.ID = strawberry.field(description="The endpoint (global id or uuid).")


@strawberry.type(description="The result of deleteWebhookEndpoint.")
class DeleteWebhookEndpointPayload:
    webhook_endpoint: WebhookEndpoint | None = strawberry.field(
        description="The endpoint, now DELETED: nothing more is sent to it."
    )
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.type(description="The result of rotateWebhookSecret.")
class RotateWebhookSecretPayload:
    webhook_endpoint: WebhookEndpoint | None = strawberry.field(description="The endpoint.")
    secret: str | None = strawberry.field(
        description="The new signing secret, shown this once; the old one signs nothing more."
    )
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(description="An event to send to an endpoint again.")
class RedeliverWebhookEventInput:
    endpoint_id: strawberry.ID = strawberry.field(description="The endpoint (global id or uuid).")
    event_id: strawberry.ID = strawberry.field(
        description="The event (its id in the log): one of the endpoint's types, of its ESCO."
    )


@strawberry.type(description="The result of redeliverWebhookEvent.")
class RedeliverWebhookEventPayload:
    webhook_delivery: WebhookDelivery | None = strawberry.field(
        description="The delivery, PENDING again: sent in its place by event id."
    )
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


WHO = "Admins, operators of the ESCO, partner keys with `webhooks:write`."


@strawberry.type
class Mutations:
    @strawberry.mutation(
        description="Register a URL for an ESCO's events, signed per Standard Webhooks; "
        f"the secret is answered once. {WHO}"
    )
    async def create_webhook_endpoint(
        self,
        info: Info,
        input: Annotated[
            CreateWebhookEndpointInput, strawberry.argument(description="The endpoint.")
        ],
    ) -> CreateWebhookEndpointPayload:
        allow = info.context.settings.webhooks_allow_loopback
        made, errors = await run(
            info,
            lambda tx: service.create_endpoint(
                tx,
                parse_id(input.esco_id, "Esco"),
                input.url,
                list(input.event_types),
                allow_loopback=allow,
            ),
        )
        row, secret = made if made is not None else (None, None)
        return CreateWebhookEndpointPayload(webhook_endpoint=row, secret=secret, user_errors=errors)

    @strawberry.mutation(description=f"Change an endpoint's URL, types or state. {WHO}")
    async def update_webhook_endpoint(
        self,
        info: Info,
        input: Annotated[
            UpdateWebhookEndpointInput, strawberry.argument(description="The changes.")
        ],
    ) -> UpdateWebhookEndpointPayload:
        allow = info.context.settings.webhooks_allow_loopback
        row, errors = await run(
            info,
            lambda tx: service.update_endpoint(
                tx,
                parse_id(input.endpoint_id, "WebhookEndpoint"),
                input.url,
                input.event_types,
                input.enabled,
                allow_loopback=allow,
            ),
        )
        return UpdateWebhookEndpointPayload(webhook_endpoint=row, user_errors=errors)

    @strawberry.mutation(description=f"Delete an endpoint: nothing more is sent to it. {WHO}")
    async def delete_webhook_endpoint(
        self,
        info: Info,
        input: Annotated[WebhookEndpointInput, strawberry.argument(description="The endpoint.")],
    ) -> DeleteWebhookEndpointPayload:
        row, errors = await run(
            info,
            lambda tx: service.delete_endpoint(tx, parse_id(input.endpoint_id, "WebhookEndpoint")),
        )
        return DeleteWebhookEndpointPayload(webhook_endpoint=row, user_errors=errors)

    @strawberry.mutation(
        description=f"A new signing secret, answered once; the old one stops at once. {WHO}"
    )
    async def rotate_webhook_secret(
        self,
        info: Info,
        input: Annotated[WebhookEndpointInput, strawberry.argument(description="The endpoint.")],
    ) -> RotateWebhookSecretPayload:
        made, errors = await run(
            info,
            lambda tx: service.rotate_secret(tx, parse_id(input.endpoint_id, "WebhookEndpoint")),
        )
        row, secret = made if made is not None else (None, None)
        return RotateWebhookSecretPayload(webhook_endpoint=row, secret=secret, user_errors=errors)

    @strawberry.mutation(
        description=f"Send an event to an endpoint again (same `webhook-id`). {WHO}"
    )
    async def redeliver_webhook_event(
        self,
        info: Info,
        input: Annotated[
            RedeliverWebhookEventInput, strawberry.argument(description="Endpoint and event.")
        ],
    ) -> RedeliverWebhookEventPayload:
        row, errors = await run(
            info,
            lambda tx: service.redeliver(
                tx, parse_id(input.endpoint_id, "WebhookEndpoint"), str(input.event_id)
            ),
        )
        delivery = None if row is None else WebhookDelivery.of(row)
        return RedeliverWebhookEventPayload(webhook_delivery=delivery, user_errors=errors)
