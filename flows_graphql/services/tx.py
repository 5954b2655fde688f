"""The transaction a mutation runs in: the connection, who acts, and the audit trail."""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import Select, Table, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..auth.viewer import Viewer
from ..db.models import AccountAuditLog, AccountEvent, AuditLog, CustomerEvent
from ..db.models.enums import AccountEventType
from ..rules.clock import Today, london_today
from .problems import ErrorCode, Problems, reject

EMIT = text("SELECT flows_emit(:esco, :kind, :entity, :key, NULL, NULL, CAST(:payload AS jsonb))")

# A database row as services return it; the GraphQL types read its fields directly.
Row = Any

# How `Tx.visible` locks the row it finds: "update" is FOR UPDATE; "no key update" is
# FOR NO KEY UPDATE, as an UPDATE itself takes (it does not block rows being inserted
# that reference this one); "share" is FOR SHARE.
Lock = Literal["update", "no key update", "share"]


@dataclass
class Tx:
    conn: AsyncConnection
    viewer: Viewer
    today: Today = london_today

    @property
    def actor(self) -> str:
        return self.viewer.actor

    def require_role(self, *roles: str, scope: str | None = None) -> None:
        """Refuse the whole mutation unless the viewer has one of `roles` (and, for a
        partner key, the `scope` the mutation needs)."""
        if self.viewer.role not in roles:
            raise reject((), ErrorCode.FORBIDDEN, "Your role may not do this.")
        if self.viewer.role == "partner" and (scope is None or scope not in self.viewer.scopes):
            raise reject((), ErrorCode.FORBIDDEN, f"This API key lacks the `{scope}` scope.")

    def may_see(self, esco_id: uuid.UUID) -> bool:
        scope = self.viewer.esco_scope
        return scope is None or esco_id in scope

    def require_esco(self, esco_id: uuid.UUID | None, field: str, what: str) -> uuid.UUID:
        """The ESCO a write targets, if the viewer may act in it; out of scope looks
        exactly like missing."""
        if esco_id is None or not self.may_see(esco_id):
            raise reject(field, ErrorCode.NOT_FOUND, f"No {what} with this id.")
        return esco_id

    async def visible(
        self,
        table: Table,
        row_id: uuid.UUID | None,
        field: str | Sequence[str],
        what: str,
        *,
        problems: Problems | None = None,
        esco_id: uuid.UUID | None = None,
        lock: Lock | None = None,
        stmt: Select[Any] | None = None,
        also: Callable[[Row], bool] | None = None,
    ) -> Row:
        """The row of `table` with this id that the viewer may see (with `esco_id`:
        of that ESCO; with `also`: for which it holds). Anything else looks exactly
        like missing: NOT_FOUND on `field`, raised at once, or with `problems` added
        there and None returned, so the rest of the input is still checked.

        `stmt` selects other columns than the whole row (it must have `esco_id`)."""
        row = None
        if row_id is not None:
            query = (stmt if stmt is not None else select(table)).where(table.c.id == row_id)
            if lock is not None:
                query = query.with_for_update(
                    read=lock == "share", key_share=lock == "no key update"
                )
            row = (await self.conn.execute(query)).first()
        if (
            row is not None
            and self.may_see(row.esco_id)
            and (esco_id is None or row.esco_id == esco_id)
            and (also is None or also(row))
        ):
            return row
        suffix = " in this ESCO" if esco_id is not None else ""
        message = f"No {what} with this id{suffix}."
        if problems is None:
            raise reject(field, ErrorCode.NOT_FOUND, message)
        problems.add(field, ErrorCode.NOT_FOUND, message)
        return None

    async def audit(
        self,
        action: str,
        entity: str,
        entity_id: object,
        changes: dict[str, Any],
        esco_id: uuid.UUID | None,
    ) -> None:
        await self.conn.execute(
            insert(AuditLog).values(
                esco_id=esco_id,
                actor=self.actor,
                action=action,
                entity=entity,
                entity_id=str(entity_id),
                changes=jsonable(changes),
            )
        )

    async def insert_audited(
        self,
        table: Table,
        values: dict[str, Any],
        action: str,
        entity: str,
        esco_id: uuid.UUID | None,
    ) -> Row:
        """Insert a row of `values` and audit it as created; returns the new row."""
        row = (await self.conn.execute(insert(table).values(**values).returning(table))).one()
        await self.audit(action, entity, row.id, created(values), esco_id)
        return row

    async def update_audited(
        self,
        table: Table,
        row: Row,
        values: dict[str, Any],
        action: str,
        entity: str,
        esco_id: uuid.UUID | None,
    ) -> Row:
        """Write the columns of `values` that differ from `row` (none: no UPDATE) and
        audit the difference; returns the row as it now is."""
        diff = changed({k: getattr(row, k) for k in values}, values)
        if diff["changed"]:
            row = (
                await self.conn.execute(
                    update(table)
                    .where(table.c.id == row.id)
                    .values({k: values[k] for k in diff["changed"]})
                    .returning(table)
                )
            ).one()
        await self.audit(action, entity, row.id, diff, esco_id)
        return row

    async def emit(
        self, esco_id: uuid.UUID, kind: str, entity: str, key: object, payload: dict[str, Any]
    ) -> None:
        """Append to the event log (db/models/events.py) an event no single row change
        stands for; the triggers write the others. It commits with the change or not
        at all."""
        await self.conn.execute(
            EMIT,
            {
                "esco": esco_id,
                "kind": kind,
                "entity": entity,
                "key": str(key),
                "payload": json.dumps(jsonable(payload)),
            },
        )

    async def customer_event(
        self, esco_id: uuid.UUID, customer_id: uuid.UUID, event_type: str, data: dict[str, Any]
    ) -> None:
        await self.conn.execute(
            insert(CustomerEvent).values(
                esco_id=esco_id,
                customer_id=customer_id,
                event_type=event_type,
                actor=self.actor,
                data=jsonable(data),
            )
        )

    async def account_event(
        self,
        esco_id: uuid.UUID,
        account_id: uuid.UUID,
        event_type: AccountEventType,
        notes: str | None = None,
        customer_id: uuid.UUID | None = None,
    ) -> None:
        """An account's event; `customer_id` names the customer whose link it is about
        (a customer is shown only the events of their own links)."""
        await self.conn.execute(
            insert(AccountEvent).values(
                esco_id=esco_id,
                account_id=account_id,
                customer_id=customer_id,
                event_type=event_type,
                notes=notes,
                actor=self.actor,
            )
        )

    async def account_audit(
        self, esco_id: uuid.UUID, account_id: uuid.UUID, action: str, changes: dict[str, Any]
    ) -> None:
        await self.conn.execute(
            insert(AccountAuditLog).values(
                esco_id=esco_id,
                account_id=account_id,
                action=action,
                actor=self.actor,
                changes=jsonable(changes),
            )
        )


def jsonable(value: Any) -> Any:
    """Audit payloads as JSON: Decimals and dates as strings, enums as their values."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    return value


def created(values: dict[str, Any]) -> dict[str, Any]:
    """The audit changes of a new row: `{"created": {column: value}}`."""
    return {"created": values}


def before_of(row: Row, values: dict[str, Any]) -> dict[str, Any]:
    return {k: getattr(row, k) for k in values}


def changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """`{"changed": {field: {"old": …, "new": …}}}` for the fields whose value changed."""
    diff = {k: {"old": before.get(k), "new": v} for k, v in after.items() if before.get(k) != v}
    return {"changed": diff}
