"""Mutations of identity-provider sign-ins: unlinking a customer's identity, and
granting or revoking staff the operator role (docs/identity.md)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from ..context import Context
from ..loaders.customers import CustomerById
from ..services import identity as service
from ..types.customers import Customer
from ..types.errors import UserError
from ..types.identity import StaffGrant
from ..types.node import parse_id, to_global_id
from .mutation import run

Info = strawberry.Info[Context, None]


@strawberry.input(description="An identity-provider account to unlink from its customer.")
class UnlinkIdentityInput:
    identity_id: strawberry.ID = strawberry.field(
        description="The CustomerIdentity (global id or uuid)."
    )


@strawberry.type(description="The result of unlinkIdentity.")
class UnlinkIdentityPayload:
    unlinked_identity_id: strawberry.ID | None = strawberry.field(
        description="The global id of the removed identity (it no longer signs in as the customer)."
    )
    customer: Customer | None = strawberry.field(description="The customer it was linked to.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(description="An identity-provider account and ESCOs to operate.")
class GrantOperatorAccessInput:
    issuer: str = strawberry.field(
        description="The provider, exactly as the tokens' `iss` (one of FLOWS_OIDC_ISSUERS)."
    )
    subject: str | None = strawberry.field(
        default=None, description="The provider's id of the person (`sub`)."
    )
    email: str | None = strawberry.field(
        default=None,
        description="Or their e-mail, before they first sign in: the first sign-in with "
        "this e-mail verified claims the grant.",
    )
    esco_ids: list[strawberry.ID] = strawberry.field(
        description="The ESCOs to operate (global ids or uuids)."
    )


@strawberry.input(description="An identity-provider account whose operator access ends.")
class RevokeOperatorAccessInput:
    issuer: str = strawberry.field(description="The provider, exactly as the tokens' `iss`.")
    subject: str | None = strawberry.field(
        default=None, description="The provider's id of the person (`sub`)."
    )
    email: str | None = strawberry.field(
        default=None, description="Or the e-mail the access was granted to."
    )
    esco_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Only these ESCOs (left out: every ESCO)."
    )


@strawberry.type(description="The result of grantOperatorAccess or revokeOperatorAccess.")
class OperatorAccessPayload:
    staff_grants: list[StaffGrant] | None = strawberry.field(
        description="The grants made (or already in force), or the grants revoked; null "
        "when refused."
    )
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.type
class Mutations:
    @strawberry.mutation(
        description="Stop an identity-provider account signing in as its customer (the "
        "customer themself, or staff)."
    )
    async def unlink_identity(
        self,
        info: Info,
        input: Annotated[
            UnlinkIdentityInput, strawberry.argument(description="The identity to unlink.")
        ],
    ) -> UnlinkIdentityPayload:
        result, errors = await run(
            info,
            lambda tx: service.unlink_identity(tx, parse_id(input.identity_id, "CustomerIdentity")),
        )
        if result is None:
            return UnlinkIdentityPayload(
                unlinked_identity_id=None, customer=None, user_errors=errors
            )
        customer = await info.context.loaders.get(CustomerById).load(result.customer_id)
        return UnlinkIdentityPayload(
            unlinked_identity_id=strawberry.ID(
                to_global_id("CustomerIdentity", result.identity.id)
            ),
            customer=customer,
            user_errors=[],
        )

    @strawberry.mutation(
        description="Give an identity-provider account the operator role in ESCOs (admins "
        "only; audited). Granting what it already has changes nothing."
    )
    async def grant_operator_access(
        self,
        info: Info,
        input: Annotated[
            GrantOperatorAccessInput,
            strawberry.argument(description="The identity, and the ESCOs it may operate."),
        ],
    ) -> OperatorAccessPayload:
        rows, errors = await run(
            info,
            lambda tx: service.grant_operator(
                tx,
                input.issuer,
                input.subject,
                input.email,
                [parse_id(e, "Esco") for e in input.esco_ids],
            ),
        )
        return OperatorAccessPayload(staff_grants=rows, user_errors=errors)

    @strawberry.mutation(
        description="End an identity-provider account's operator role (admins only; "
        "audited). Its next request is refused."
    )
    async def revoke_operator_access(
        self,
        info: Info,
        input: Annotated[
            RevokeOperatorAccessInput,
            strawberry.argument(description="The identity, and the ESCOs it stops operating."),
        ],
    ) -> OperatorAccessPayload:
        rows, errors = await run(
            info,
            lambda tx: service.revoke_operator(
                tx,
                input.issuer,
                input.subject,
                input.email,
                None if input.esco_ids is None else [parse_id(e, "Esco") for e in input.esco_ids],
            ),
        )
        return OperatorAccessPayload(staff_grants=rows, user_errors=errors)
