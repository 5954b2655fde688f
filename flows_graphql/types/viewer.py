"""Who the request runs as."""

from __future__ import annotations

from enum import Enum

import strawberry


@strawberry.enum(description="What a principal may do (see the README's Auth section).")
class Role(Enum):
    ADMIN = "admin"
    OPERATOR = "operator"
    CUSTOMER = "customer"
    PARTNER = "partner"
