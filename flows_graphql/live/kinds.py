"""The kinds of event the log holds (db/models/events.py writes them)."""

from __future__ import annotations

KINDS = {
    "billing_run.started": "A billing run of an ESCO-month began.",
    "billing_run.completed": "A billing run finished; its costs and credits are written.",
    "billing_run.failed": "A billing run failed; nothing of it was written.",
    "billing_run.finalized": "A billing run's month was frozen.",
    "monthly_costs.ready": "A customer's bill for a month is ready (one per customer).",
    "payment.created": "A payment was created.",
    "payment.status_changed": "A payment moved to another status.",
    "usage.imported": "Monthly usage was recorded or imported.",
    "invite.accepted": "A customer accepted an invite.",
    "customer.updated": "A customer's record changed.",
    "tariff.published": "An ESCO's microgrid tariff was set or recomputed.",
}
BILLING_RUN_KINDS = frozenset(k for k in KINDS if k.startswith("billing_run."))
PAYMENT_KINDS = frozenset({"payment.created", "payment.status_changed"})
