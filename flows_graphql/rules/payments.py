"""Payments (rules.md §5): bounds and the forward-only status machine."""

from __future__ import annotations

from ..db.models.enums import PaymentStatus

MIN_AMOUNT_PENCE = 1
MAX_AMOUNT_PENCE = 50_000

S = PaymentStatus
TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    S.CREATED: frozenset({S.PENDING, S.CANCELLED}),
    S.PENDING: frozenset({S.PROCESSING, S.FAILED, S.CANCELLED}),
    S.PROCESSING: frozenset({S.SUCCEEDED, S.FAILED}),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}


def amount_in_bounds(amount_pence: int) -> bool:
    return MIN_AMOUNT_PENCE <= amount_pence <= MAX_AMOUNT_PENCE


def can_move(current: PaymentStatus, new: PaymentStatus) -> bool:
    return new in TRANSITIONS[current]


def is_final(status: PaymentStatus) -> bool:
    return not TRANSITIONS[status]
