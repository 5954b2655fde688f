"""Loaders over the audit table: each payment's status changes, and the audit log
connection staff read."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import TextClause, text

from ..db.models import AuditLog, table_of
from ..pagination import SortKey, parse_datetime
from .base import BaseLoader, ConnectionSpec

AUDIT = table_of(AuditLog)

AUDIT_SORTS = {
    "NEWEST": SortKey("NEWEST", lambda: AUDIT.c.created_at, parse_datetime, descending=True),
    "OLDEST": SortKey("OLDEST", lambda: AUDIT.c.created_at, parse_datetime),
}
AUDIT_SPEC = ConnectionSpec(AUDIT, AUDIT_SORTS, "NEWEST")

# Every audit record of a payment that set its status (the create, each update), oldest
# first; the status moved from `old` to `new` (`old` null for the create).
HISTORY_SQL = """
SELECT CAST(a.entity_id AS uuid) AS payment_id, a.created_at, a.actor,
       a.changes -> 'changed' -> 'status' ->> 'old' AS old_status,
       a.changes -> 'changed' -> 'status' ->> 'new' AS new_status
  FROM audit_log a
 WHERE a.entity = 'payment' AND a.entity_id = ANY(CAST(:keys AS text[]))
   AND a.action IN ('createPayment', 'updatePaymentStatus')
   AND a.changes -> 'changed' ? 'status' {limits}
 ORDER BY a.entity_id, a.created_at, a.id
"""

_HISTORY: dict[tuple[bool, bool], TextClause] = {}


def history_statement(scoped: bool, customer: bool) -> TextClause:
    stmt = _HISTORY.get((scoped, customer))
    if stmt is None:
        limits = ""
        if scoped:
            limits += " AND a.esco_id = ANY(CAST(:scope AS uuid[]))"
        if customer:
            # The audit table is not a customer's; their own payments' entries are.
            limits += (
                " AND a.entity_id IN (SELECT CAST(p.id AS text) FROM payments p"
                " WHERE p.customer_id = :viewer_customer)"
            )
        stmt = _HISTORY[(scoped, customer)] = text(HISTORY_SQL.format(limits=limits))
    return stmt


class StatusHistoryByPaymentId(BaseLoader):
    async def batch_load_fn(self, keys: list[Any]) -> list[list[Any]]:
        loaders = self.loaders
        params: dict[str, Any] = {"keys": [str(k) for k in keys]}
        if loaders.scope is not None:
            params["scope"] = list(loaders.scope)
        if loaders.customer_id is not None:
            params["viewer_customer"] = loaders.customer_id
        stmt = history_statement(loaders.scope is not None, loaders.customer_id is not None)
        grouped: dict[Any, list[Any]] = defaultdict(list)
        for row in await loaders.db.rows(stmt, params):
            grouped[row.payment_id].append(row)
        return [grouped.get(key, []) for key in keys]
