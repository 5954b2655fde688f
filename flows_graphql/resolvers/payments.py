"""Payment mutations (createPayment, updatePaymentStatus)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from ..context import Context
from ..db.models.enums import PaymentStatus
from ..services import payments as service
from ..types.billing import Payment
from ..types.errors import UserError
from ..types.node import parse_id
from .mutation import run

Info = strawberry.Info[Context, None]


@strawberry.input(description="A customer's payment towards one of their accounts.")
class CreatePaymentInput:
    customer_id: strawberry.ID = strawberry.field(
        description="The paying customer (global id or uuid); must be `ACTIVE`."
    )
    account_id: strawberry.ID = strawberry.field(
        description="The account paid towards (global id or uuid): `ACTIVE`, and the "
        "customer currently linked to it (as owner or occupier)."
    )
    amount_pence: int = strawberry.field(description="Whole pence, 1..50000.")
    idempotency_key: str = strawberry.field(
        description="Chosen by the client, unique per customer (1..255 characters). "
        "Repeating a create with the same key and input returns the original payment; "
        "the same key with different input is `IDEMPOTENCY_KEY_REUSED`."
    )
    description: str | None = strawberry.field(
        default=None, description="What it is for (at most 1000 characters)."
    )
    scheduled_at: datetime | None = strawberry.field(
        default=None,
        description="When to take it, with its UTC offset; not in the past (its date in "
        "Europe/London is today or later).",
    )


@strawberry.type(description="The result of createPayment.")
class CreatePaymentPayload:
    payment: Payment | None = strawberry.field(
        description="The new payment, or the original one when the idempotency key was "
        "already used with the same input."
    )
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(description="Move a payment forward through its states.")
class UpdatePaymentStatusInput:
    payment_id: strawberry.ID = strawberry.field(description="The payment (global id or uuid).")
    status: PaymentStatus = strawberry.field(
        description="The new status: CREATED → PENDING | CANCELLED; PENDING → PROCESSING | "
        "FAILED | CANCELLED; PROCESSING → SUCCEEDED | FAILED. Anything else is "
        "`INVALID_STATUS_TRANSITION`."
    )
    provider_reference: str | None = strawberry.field(
        default=None,
        description="The card processor's payment id (at most 255 characters); once "
        "recorded it cannot be replaced by a different one.",
    )


@strawberry.type(description="The result of updatePaymentStatus.")
class UpdatePaymentStatusPayload:
    payment: Payment | None = strawberry.field(description="The payment after the change.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.type
class Mutations:
    @strawberry.mutation(
        description="Create a payment (rules.md §5), exactly once per idempotency key. "
        "Admins, operators, customers for themselves, and partner keys with "
        "`payments:write`."
    )
    async def create_payment(
        self,
        info: Info,
        input: Annotated[
            CreatePaymentInput, strawberry.argument(description="The payment to create.")
        ],
    ) -> CreatePaymentPayload:
        row, errors = await run(
            info,
            lambda tx: service.create_payment(
                tx,
                parse_id(input.customer_id, "Customer"),
                parse_id(input.account_id, "Account"),
                input.amount_pence,
                input.description,
                input.scheduled_at,
                input.idempotency_key,
            ),
        )
        return CreatePaymentPayload(payment=row, user_errors=errors)

    @strawberry.mutation(
        description="Move a payment's status forward; each change is audited. Admins, "
        "operators and partner keys with `payments:write`."
    )
    async def update_payment_status(
        self,
        info: Info,
        input: Annotated[
            UpdatePaymentStatusInput,
            strawberry.argument(description="The payment and its new status."),
        ],
    ) -> UpdatePaymentStatusPayload:
        row, errors = await run(
            info,
            lambda tx: service.update_payment_status(
                tx,
                parse_id(input.payment_id, "Payment"),
                input.status,
                input.provider_reference,
            ),
        )
        return UpdatePaymentStatusPayload(payment=row, user_errors=errors)
