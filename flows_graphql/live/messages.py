"""What a webhook delivery carries: the body (Standard Webhooks' `type`, `timestamp`,
`data`) and the message id, the same on every attempt of one event to one endpoint."""

from __future__ import annotations

from typing import Any

from ..types.node import to_global_id


def message_id(event_id: int) -> str:
    """`webhook-id`: a receiver that has seen it may drop the repeat (at least once)."""
    return f"evt_{event_id}"


def delivery_body(event: Any) -> dict[str, Any]:
    """The JSON body of an event row (the log's columns), with global ids as the API
    gives them, so a receiver can ask `node(id:)` for the object as it is now."""
    return {
        "type": event.type,
        "timestamp": event.created_at.isoformat(),
        "data": {
            "eventId": str(event.id),
            "escoId": to_global_id("Esco", event.esco_id),
            "subject": {
                "type": event.entity,
                "id": to_global_id(event.entity, event.entity_key),
            },
            "customerId": (
                to_global_id("Customer", event.customer_id) if event.customer_id else None
            ),
            "accountId": to_global_id("Account", event.account_id) if event.account_id else None,
            "payload": event.payload,
        },
    }
