"""Payment writes (rules.md §5): creating a payment under an idempotency key, and moving
its status forward.

Decisions:
- The idempotency key is scoped to the customer (UNIQUE (customer_id, idempotency_key)).
  A key already used by the customer is answered before the rules are checked again:
  the same input returns the original payment as it is now (even if the customer was
  suspended or the scheduled time has passed since), writes nothing and audits nothing;
  different input is IDEMPOTENCY_KEY_REUSED. Concurrent creates with one key are made
  safe by INSERT ... ON CONFLICT DO NOTHING: the loser waits for the winner's commit,
  then reads its row and compares.
- "Same input" compares account, amount, description and scheduled time (as an
  instant, whatever offset it was written with).
- An `inactive` customer (the soft delete) is INVALID; CUSTOMER_SUSPENDED is kept for
  `suspended`, which is what it says.
- An account the customer is not currently linked to (any role, start_date <= today <=
  end_date or open) is INVALID on `accountId` — an operator can see the account, so
  NOT_FOUND would be untrue. For a customer viewer an account they were never linked to
  is out of their scope and is NOT_FOUND, like any out-of-scope object.
- `scheduledAt` must carry a UTC offset and must not be in the past: its date in
  Europe/London is today (the billing clock) or later.
- Roles: createPayment is for admins, operators (their ESCOs), customers (themselves
  only) and partner keys with the `payments:write` scope (their ESCO);
  updatePaymentStatus for the same minus customers (moving a payment through its
  provider's states is not theirs to do). The row is locked
  (SELECT ... FOR UPDATE) so concurrent updates serialise and each one is checked
  against the state the previous one left. A provider reference, once recorded, cannot
  be replaced by a different one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert

from ..db.models import Account, Customer, CustomerAccount, Payment, table_of
from ..db.models.enums import AccountStatus, CustomerStatus, PaymentStatus
from ..rules import payments as rules
from ..rules.clock import BILLING_ZONE
from .problems import ErrorCode, Problems, check_window, reject
from .tx import Row, Tx, changed

PAYMENTS = table_of(Payment)
CUSTOMERS = table_of(Customer)
ACCOUNTS = table_of(Account)
LINKS = table_of(CustomerAccount)

MAX_KEY_LENGTH = 255
MAX_DESCRIPTION_LENGTH = 1000
MAX_PROVIDER_REFERENCE_LENGTH = 255

# The columns an idempotent retry must repeat exactly (customer_id is part of the key).
IDEMPOTENT_FIELDS = ("account_id", "amount_pence", "description", "scheduled_at")


PAYMENTS_SCOPE = "payments:write"


def _require(tx: Tx, *roles: str) -> None:
    """The role check, plus a partner key's `payments:write` scope."""
    tx.require_role(*roles, scope=PAYMENTS_SCOPE)


async def _customer_in_scope(tx: Tx, customer_id: uuid.UUID | None) -> Row:
    """The customer the viewer may pay for; anything else looks missing."""
    if tx.viewer.role == "customer" and tx.viewer.customer_id != customer_id:
        customer_id = None  # another customer: not looked up, NOT_FOUND like any unknown id
    return await tx.visible(CUSTOMERS, customer_id, "customerId", "customer")


def _same_request(existing: Row, wanted: dict[str, Any]) -> bool:
    return all(getattr(existing, k) == wanted[k] for k in IDEMPOTENT_FIELDS)


async def _by_key(tx: Tx, customer_id: uuid.UUID, key: str) -> Row | None:
    return (
        await tx.conn.execute(
            select(PAYMENTS).where(
                PAYMENTS.c.customer_id == customer_id, PAYMENTS.c.idempotency_key == key
            )
        )
    ).first()


def _replay(existing: Row, wanted: dict[str, Any]) -> Row:
    """The answer to a key already used: the original payment, or a refusal."""
    if _same_request(existing, wanted):
        return existing
    raise reject(
        "idempotencyKey",
        ErrorCode.IDEMPOTENCY_KEY_REUSED,
        "This idempotency key was already used for a different payment.",
    )


async def create_payment(
    tx: Tx,
    customer_id: uuid.UUID | None,
    account_id: uuid.UUID | None,
    amount_pence: int,
    description: str | None,
    scheduled_at: datetime | None,
    idempotency_key: str,
) -> Row:
    _require(tx, "admin", "operator", "customer", "partner")
    customer = await _customer_in_scope(tx, customer_id)

    problems = Problems()
    if not idempotency_key or not idempotency_key.strip():
        problems.add("idempotencyKey", ErrorCode.INVALID, "An idempotency key is required.")
    elif len(idempotency_key) > MAX_KEY_LENGTH:
        problems.add("idempotencyKey", ErrorCode.INVALID, f"At most {MAX_KEY_LENGTH} characters.")
    if not rules.amount_in_bounds(amount_pence):
        problems.add(
            "amountPence",
            ErrorCode.INVALID,
            f"Must be a whole number of pence from {rules.MIN_AMOUNT_PENCE} "
            f"to {rules.MAX_AMOUNT_PENCE}.",
        )
    if description is not None and len(description) > MAX_DESCRIPTION_LENGTH:
        problems.add(
            "description", ErrorCode.INVALID, f"At most {MAX_DESCRIPTION_LENGTH} characters."
        )
    if scheduled_at is not None and scheduled_at.utcoffset() is None:
        problems.add("scheduledAt", ErrorCode.INVALID, "Give the time with its UTC offset.")
        scheduled_at = None
    wanted = {
        "account_id": account_id,
        "amount_pence": amount_pence,
        "description": description,
        "scheduled_at": scheduled_at,
    }
    if not problems and account_id is not None:
        # A key already used is answered before the rules are checked again (a retry
        # gets what the first call got, whatever changed since).
        existing = await _by_key(tx, customer.id, idempotency_key)
        if existing is not None:
            return _replay(existing, wanted)

    # A new payment: every rule of §5, all checked before anything is written.
    today = tx.today()
    if customer.status == CustomerStatus.SUSPENDED:
        problems.add("customerId", ErrorCode.CUSTOMER_SUSPENDED, "The customer is suspended.")
    elif customer.status != CustomerStatus.ACTIVE:
        problems.add("customerId", ErrorCode.INVALID, "The customer is inactive.")
    links: Sequence[Any] = []
    if account_id is not None:
        links = (
            await tx.conn.execute(
                select(LINKS.c.start_date, LINKS.c.end_date).where(
                    LINKS.c.customer_id == customer.id, LINKS.c.account_id == account_id
                )
            )
        ).all()
    account = await tx.visible(
        ACCOUNTS,
        account_id,
        "accountId",
        "account",
        problems=problems,
        # For a customer, an account they were never linked to is out of scope.
        also=lambda _: tx.viewer.role != "customer" or bool(links),
    )
    if account is not None:
        if account.status != AccountStatus.ACTIVE:
            problems.add("accountId", ErrorCode.INVALID, "The account is closed.")
        if not any(
            link.start_date <= today and (link.end_date is None or today <= link.end_date)
            for link in links
        ):
            problems.add(
                "accountId",
                ErrorCode.INVALID,
                "The customer is not currently linked to this account.",
            )
    if scheduled_at is not None and scheduled_at.astimezone(BILLING_ZONE).date() < today:
        problems.add("scheduledAt", ErrorCode.INVALID, "Must not be in the past.")
    elif scheduled_at is not None:
        check_window(problems, "scheduledAt", scheduled_at.astimezone(BILLING_ZONE).date(), today)
    problems.raise_if_any()

    row = (
        await tx.conn.execute(
            insert(Payment)
            .values(
                esco_id=customer.esco_id,
                customer_id=customer.id,
                idempotency_key=idempotency_key,
                **wanted,
            )
            .on_conflict_do_nothing(index_elements=["customer_id", "idempotency_key"])
            .returning(PAYMENTS)
        )
    ).first()
    if row is None:
        # A concurrent create with this key committed first (we waited for it).
        existing = await _by_key(tx, customer.id, idempotency_key)
        assert existing is not None
        return _replay(existing, wanted)

    await tx.audit(
        "createPayment",
        "payment",
        row.id,
        changed(
            {},
            {
                "customer_id": row.customer_id,
                "account_id": row.account_id,
                "amount_pence": row.amount_pence,
                "currency": row.currency,
                "status": row.status,
                "description": row.description,
                "scheduled_at": row.scheduled_at,
                "idempotency_key": row.idempotency_key,
            },
        ),
        row.esco_id,
    )
    return row


async def update_payment_status(
    tx: Tx,
    payment_id: uuid.UUID | None,
    status: PaymentStatus,
    provider_reference: str | None,
) -> Row:
    _require(tx, "admin", "operator", "partner")
    payment = await tx.visible(PAYMENTS, payment_id, "paymentId", "payment", lock="update")

    problems = Problems()
    if not rules.can_move(payment.status, status):
        allowed = sorted(s.value.upper() for s in rules.TRANSITIONS[payment.status])
        problems.add(
            "status",
            ErrorCode.INVALID_STATUS_TRANSITION,
            f"A {payment.status.value.upper()} payment cannot become {status.value.upper()}"
            + (f" (allowed: {', '.join(allowed)})." if allowed else "; it is final."),
        )
    if provider_reference is not None:
        if not provider_reference.strip():
            problems.add("providerReference", ErrorCode.INVALID, "Must not be empty.")
        elif len(provider_reference) > MAX_PROVIDER_REFERENCE_LENGTH:
            problems.add(
                "providerReference",
                ErrorCode.INVALID,
                f"At most {MAX_PROVIDER_REFERENCE_LENGTH} characters.",
            )
        elif payment.provider_reference not in (None, provider_reference):
            problems.add(
                "providerReference",
                ErrorCode.INVALID,
                "The payment already has a different provider reference.",
            )
    problems.raise_if_any()

    values: dict[str, Any] = {"status": status}
    if provider_reference is not None:
        values["provider_reference"] = provider_reference
    row = (
        await tx.conn.execute(
            update(PAYMENTS).where(PAYMENTS.c.id == payment.id).values(**values).returning(PAYMENTS)
        )
    ).one()
    before = {k: getattr(payment, k) for k in values}
    await tx.audit("updatePaymentStatus", "payment", row.id, changed(before, values), row.esco_id)
    return row
