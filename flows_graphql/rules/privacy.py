"""What a customer is shown of who did something (rules.md §7): a role, never a person."""

from __future__ import annotations

import uuid


def actor_shown(actor: str, viewer_role: str, viewer_customer: uuid.UUID | None) -> str:
    """The actor of an event as `viewer` may see it. Staff and partners see the recorded
    actor (`user:<sub>`, `customer:<uuid>`, `partner:<key id>`, `system`); a customer sees
    `you` for their own actions and otherwise only the kind of actor: `operator` (staff,
    admins included), `partner`, `customer` (another customer) or `system`."""
    if viewer_role != "customer":
        return actor
    if viewer_customer is not None and actor == f"customer:{viewer_customer}":
        return "you"
    kind = actor.partition(":")[0]
    return {"system": "system", "partner": "partner", "customer": "customer"}.get(kind, "operator")
