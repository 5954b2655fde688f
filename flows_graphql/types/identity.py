"""Sign-ins at identity providers: customers' linked identities and staff grants."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import strawberry

from ..fields import relation
from ..loaders import community as community_loaders
from ..loaders import customers as customer_loaders
from ..loaders import identity as loaders
from .node import Node, RowType, by_uuid, global_id, register_node, uuid_field

if TYPE_CHECKING:
    from .community import Esco
    from .customers import Customer

Lazy = strawberry.lazy


@strawberry.type(
    description="An account at an identity provider through which a customer signs in "
    "(linked by accepting an invite)."
)
class CustomerIdentity(RowType, Node):
    id: strawberry.ID = global_id("CustomerIdentity")
    uuid: UUID = uuid_field()
    issuer: str = strawberry.field(description="The provider (the tokens' `iss`).")
    subject: str = strawberry.field(description="The provider's id of the person (`sub`).")
    email: str | None = strawberry.field(
        description="The verified e-mail the provider vouched for when it was linked."
    )
    created_at: datetime = strawberry.field(
        description="When it was linked: the customer's first sign-in with the invite."
    )
    customer_id: strawberry.Private[UUID]

    customer = relation(
        Annotated["Customer", Lazy("flows_graphql.types.customers")],
        customer_loaders.CustomerById,
        "customer_id",
        "The customer this identity signs in as.",
    )


@strawberry.type(
    description="The operator role in one ESCO, granted by an admin to an identity of "
    "an identity provider (by subject, or by verified e-mail until its first sign-in)."
)
class StaffGrant(RowType, Node):
    id: strawberry.ID = global_id("StaffGrant")
    uuid: UUID = uuid_field()
    role: str = strawberry.field(description="`operator`.")
    issuer: str = strawberry.field(description="The provider (the tokens' `iss`).")
    subject: str | None = strawberry.field(
        description="The provider's id of the person; null until they first sign in, "
        "when granted by e-mail."
    )
    email: str | None = strawberry.field(description="The verified e-mail it was granted to.")
    granted_by: str = strawberry.field(description="Who granted it (`user:…`).")
    created_at: datetime = strawberry.field(description="When it was granted.")
    revoked_at: datetime | None = strawberry.field(
        description="When it was revoked (null while in force)."
    )
    revoked_by: str | None = strawberry.field(description="Who revoked it.")
    esco_id: strawberry.Private[UUID]

    esco = relation(
        Annotated["Esco", Lazy("flows_graphql.types.community")],
        community_loaders.EscoById,
        "esco_id",
        "The ESCO it gives access to.",
    )


register_node("CustomerIdentity", by_uuid(loaders.IdentityById))
register_node("StaffGrant", by_uuid(loaders.StaffGrantById))
