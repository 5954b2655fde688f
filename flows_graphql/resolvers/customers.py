"""Root queries over customers; mutations of customers, accounts, their links and invites."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import date, datetime
from typing import Annotated

import strawberry

from ..context import Context
from ..db.models.enums import CustomerAccountRole, CustomerStatus
from ..loaders.customers import CUSTOMER_SPEC, CUSTOMERS
from ..services import customers as service
from ..types.customers import Account, Customer, CustomerAccount, CustomerInvite
from ..types.errors import UserError
from ..types.filters import CustomerFilter, CustomerOrder, customer_filter
from ..types.identity import CustomerIdentity
from ..types.node import parse_id
from .arguments import optional_id
from .lists import esco_rows
from .mutation import run

Info = strawberry.Info[Context, None]


@strawberry.type
class CustomersQuery:
    customers = esco_rows(
        Customer,
        CUSTOMER_SPEC,
        CUSTOMERS,
        CustomerFilter,
        customer_filter,
        CustomerOrder,
        description="Customers the viewer may see.",
        filter_description="Only the customers that meet all of these conditions.",
        order_description="Default EMAIL.",
    )


# --- mutations -------------------------------------------------------------------------


@strawberry.input(description="A new customer of an ESCO.")
class CreateCustomerInput:
    esco_id: strawberry.ID = strawberry.field(description="The ESCO (global id or uuid).")
    email: str = strawberry.field(
        description="E-mail address, unique within the ESCO (any case); stored lower-cased."
    )
    full_name: str | None = strawberry.field(
        default=None, description="Full name (at most 200 characters)."
    )
    status: CustomerStatus = strawberry.field(
        default=CustomerStatus.ACTIVE, description="Initial status (default ACTIVE)."
    )


@strawberry.type(description="The result of createCustomer.")
class CreateCustomerPayload:
    customer: Customer | None = strawberry.field(description="The new customer.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(description="Changes to a customer; left-out fields stay as they are.")
class UpdateCustomerInput:
    customer_id: strawberry.ID = strawberry.field(description="The customer (global id or uuid).")
    email: strawberry.Maybe[str | None] = strawberry.field(
        description="New e-mail address, unique within the ESCO (any case); cannot be null.",
    )
    full_name: strawberry.Maybe[str | None] = strawberry.field(
        description="New full name; null or blank clears it."
    )


@strawberry.type(description="The result of updateCustomer.")
class UpdateCustomerPayload:
    customer: Customer | None = strawberry.field(description="The customer as it is now.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(description="A customer's new status.")
class SetCustomerStatusInput:
    customer_id: strawberry.ID = strawberry.field(description="The customer (global id or uuid).")
    status: CustomerStatus = strawberry.field(
        description="ACTIVE, INACTIVE (the soft delete) or SUSPENDED."
    )


@strawberry.type(description="The result of setCustomerStatus.")
class SetCustomerStatusPayload:
    customer: Customer | None = strawberry.field(description="The customer as it is now.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(description="A new account for a property without an active one.")
class OpenAccountInput:
    property_id: strawberry.ID = strawberry.field(description="The property (global id or uuid).")
    opened_on: date = strawberry.field(
        description="First day of the account; after the previous account's closing day."
    )
    contract_terms_id: strawberry.ID | None = strawberry.field(
        default=None, description="Contract terms allowed for the property's ESCO, if any."
    )


@strawberry.type(description="The result of openAccount.")
class OpenAccountPayload:
    account: Account | None = strawberry.field(description="The new account.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(description="Closing an account (ends its current links on the same day).")
class CloseAccountInput:
    account_id: strawberry.ID = strawberry.field(description="The account (global id or uuid).")
    closed_on: date = strawberry.field(
        description="Last day of the account (inclusive): not before it opened, not in the "
        "future, not before the last day of any of its links."
    )


@strawberry.type(description="The result of closeAccount.")
class CloseAccountPayload:
    account: Account | None = strawberry.field(description="The closed account.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(description="Corrections to an account.")
class UpdateAccountInput:
    account_id: strawberry.ID = strawberry.field(description="The account (global id or uuid).")
    opened_on: date = strawberry.field(
        description="The corrected first day: within the date window (docs/limits.md), after "
        "the previous account's closing day, not after its links start, and no billed month "
        "between the old and the new day."
    )


@strawberry.type(description="The result of updateAccount.")
class UpdateAccountPayload:
    account: Account | None = strawberry.field(description="The account as it is now.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(description="Linking a customer to an account from a day, open-ended.")
class AddCustomerToAccountInput:
    customer_id: strawberry.ID = strawberry.field(description="The customer (global id or uuid).")
    account_id: strawberry.ID = strawberry.field(
        description="An active account of the customer's ESCO (global id or uuid)."
    )
    role: CustomerAccountRole = strawberry.field(
        description="OCCUPIER (billed; one per account per day) or OWNER."
    )
    start_date: date = strawberry.field(description="First day of the link; not before openedOn.")


@strawberry.type(description="The result of addCustomerToAccount.")
class AddCustomerToAccountPayload:
    customer_account: CustomerAccount | None = strawberry.field(description="The new link.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(description="Ending a customer's current link to an account.")
class EndCustomerAccountInput:
    customer_id: strawberry.ID = strawberry.field(description="The customer (global id or uuid).")
    account_id: strawberry.ID = strawberry.field(description="The account (global id or uuid).")
    role: CustomerAccountRole = strawberry.field(description="The role of the link.")
    start_date: date | None = strawberry.field(
        default=None,
        description="The link's start date; left out, the customer's current link in this role.",
    )
    end_date: date = strawberry.field(
        description="Last day of the link (inclusive); not before its start date."
    )


@strawberry.type(description="The result of endCustomerAccount.")
class EndCustomerAccountPayload:
    customer_account: CustomerAccount | None = strawberry.field(description="The ended link.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(description="An invitation to the ESCO's customer app.")
class InviteCustomerInput:
    customer_id: strawberry.ID = strawberry.field(description="The customer (global id or uuid).")
    expires_at: datetime | None = strawberry.field(
        default=None, description="When the invite stops working (future; default in 7 days)."
    )


@strawberry.type(description="The result of inviteCustomer.")
class InviteCustomerPayload:
    customer_invite: CustomerInvite | None = strawberry.field(
        description="The invite, with its link."
    )
    customer: Customer | None = strawberry.field(description="The invited customer.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(description="Accepting an invitation.")
class AcceptInviteInput:
    token: str = strawberry.field(description="The token from the invite link.")


@strawberry.type(description="The result of acceptInvite.")
class AcceptInvitePayload:
    customer_invite: CustomerInvite | None = strawberry.field(description="The accepted invite.")
    customer: Customer | None = strawberry.field(description="The customer it was for.")
    identity: CustomerIdentity | None = strawberry.field(
        description="The identity-provider sign-in now linked to the customer (null when "
        "the caller did not sign in at an identity provider)."
    )
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


def _token(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        return None


@strawberry.type
class Mutations:
    @strawberry.mutation(description="Create a customer of an ESCO.")
    async def create_customer(
        self,
        info: Info,
        input: Annotated[CreateCustomerInput, strawberry.argument(description="The new customer.")],
    ) -> CreateCustomerPayload:
        row, errors = await run(
            info,
            lambda tx: service.create_customer(
                tx, parse_id(input.esco_id, "Esco"), input.email, input.full_name, input.status
            ),
        )
        return CreateCustomerPayload(customer=row, user_errors=errors)

    @strawberry.mutation(description="Change a customer's e-mail address or name.")
    async def update_customer(
        self,
        info: Info,
        input: Annotated[
            UpdateCustomerInput,
            strawberry.argument(description="The customer and the fields to change."),
        ],
    ) -> UpdateCustomerPayload:
        row, errors = await run(
            info,
            lambda tx: service.update_customer(
                tx,
                parse_id(input.customer_id, "Customer"),
                input.email,
                input.full_name,
            ),
        )
        return UpdateCustomerPayload(customer=row, user_errors=errors)

    @strawberry.mutation(
        description="Set a customer's status (recorded as an event; the same status is a no-op)."
    )
    async def set_customer_status(
        self,
        info: Info,
        input: Annotated[
            SetCustomerStatusInput,
            strawberry.argument(description="The customer and its new status."),
        ],
    ) -> SetCustomerStatusPayload:
        row, errors = await run(
            info,
            lambda tx: service.set_customer_status(
                tx, parse_id(input.customer_id, "Customer"), input.status
            ),
        )
        return SetCustomerStatusPayload(customer=row, user_errors=errors)

    @strawberry.mutation(description="Open an account for a property without an active one.")
    async def open_account(
        self,
        info: Info,
        input: Annotated[
            OpenAccountInput,
            strawberry.argument(description="The property and the account's first day."),
        ],
    ) -> OpenAccountPayload:
        row, errors = await run(
            info,
            lambda tx: service.open_account(
                tx,
                parse_id(input.property_id, "Property"),
                input.opened_on,
                optional_id(input.contract_terms_id, "ContractTerms"),
            ),
        )
        return OpenAccountPayload(account=row, user_errors=errors)

    @strawberry.mutation(description="Close an account and end its current links on that day.")
    async def close_account(
        self,
        info: Info,
        input: Annotated[
            CloseAccountInput, strawberry.argument(description="The account and its last day.")
        ],
    ) -> CloseAccountPayload:
        row, errors = await run(
            info,
            lambda tx: service.close_account(
                tx, parse_id(input.account_id, "Account"), input.closed_on
            ),
        )
        return CloseAccountPayload(account=row, user_errors=errors)

    @strawberry.mutation(
        description="Correct an account's opening day (a mistyped one would lock its "
        "property); refused once a month it moves across is billed."
    )
    async def update_account(
        self,
        info: Info,
        input: Annotated[
            UpdateAccountInput,
            strawberry.argument(description="The account and its corrected opening day."),
        ],
    ) -> UpdateAccountPayload:
        row, errors = await run(
            info,
            lambda tx: service.update_account(
                tx, parse_id(input.account_id, "Account"), input.opened_on
            ),
        )
        return UpdateAccountPayload(account=row, user_errors=errors)

    @strawberry.mutation(description="Link a customer to an account as owner or occupier.")
    async def add_customer_to_account(
        self,
        info: Info,
        input: Annotated[
            AddCustomerToAccountInput,
            strawberry.argument(description="The customer, account, role and first day."),
        ],
    ) -> AddCustomerToAccountPayload:
        row, errors = await run(
            info,
            lambda tx: service.add_customer_to_account(
                tx,
                parse_id(input.customer_id, "Customer"),
                parse_id(input.account_id, "Account"),
                input.role,
                input.start_date,
            ),
        )
        return AddCustomerToAccountPayload(customer_account=row, user_errors=errors)

    @strawberry.mutation(description="End a customer's link to an account on a day.")
    async def end_customer_account(
        self,
        info: Info,
        input: Annotated[
            EndCustomerAccountInput, strawberry.argument(description="The link and its last day.")
        ],
    ) -> EndCustomerAccountPayload:
        row, errors = await run(
            info,
            lambda tx: service.end_customer_account(
                tx,
                parse_id(input.customer_id, "Customer"),
                parse_id(input.account_id, "Account"),
                input.role,
                input.start_date,
                input.end_date,
            ),
        )
        return EndCustomerAccountPayload(customer_account=row, user_errors=errors)

    @strawberry.mutation(description="Invite a customer to their ESCO's app.")
    async def invite_customer(
        self,
        info: Info,
        input: Annotated[
            InviteCustomerInput, strawberry.argument(description="The customer to invite.")
        ],
    ) -> InviteCustomerPayload:
        result, errors = await run(
            info,
            lambda tx: service.invite_customer(
                tx, parse_id(input.customer_id, "Customer"), input.expires_at
            ),
        )
        if result is None:
            return InviteCustomerPayload(customer_invite=None, customer=None, user_errors=errors)
        return InviteCustomerPayload(
            customer_invite=result.invite, customer=result.customer, user_errors=[]
        )

    @strawberry.mutation(description="Accept an invite (once, before it expires).")
    async def accept_invite(
        self,
        info: Info,
        input: Annotated[AcceptInviteInput, strawberry.argument(description="The invite's token.")],
    ) -> AcceptInvitePayload:
        result, errors = await run(info, lambda tx: service.accept_invite(tx, _token(input.token)))
        if result is None:
            return AcceptInvitePayload(
                customer_invite=None, customer=None, identity=None, user_errors=errors
            )
        viewer = info.context.viewer
        if viewer.role == "unlinked" and result.identity is not None:
            # From now on this sign-in is the customer: so is the rest of this request
            # (the payload reads the customer's accounts, bills, …).
            info.context.become(
                replace(
                    viewer,
                    role="customer",
                    esco_ids=frozenset({result.customer.esco_id}),
                    customer_id=result.customer.id,
                )
            )
        return AcceptInvitePayload(
            customer_invite=result.invite,
            customer=result.customer,
            identity=result.identity,
            user_errors=[],
        )
