"""Who the request runs as."""

from __future__ import annotations

from enum import Enum

import strawberry


@strawberry.enum(
    description="What a principal may do (see the README's Auth section). UNLINKED: "
    "signed in at a trusted identity provider, but neither linked to a customer nor "
    "granted staff access; it sees nothing and may only call acceptInvite."
)
class Role(Enum):
    ADMIN = "admin"
    OPERATOR = "operator"
    CUSTOMER = "customer"
    PARTNER = "partner"
    UNLINKED = "unlinked"
