"""The audit trail as a connection, for staff: every mutation's record (who, what,
which row, the changes). Customers and partner keys get an empty list, as for rows
out of their scope."""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import Annotated, Any

import strawberry
from sqlalchemy import false
from strawberry.scalars import JSON

from ..context import Context
from ..fields import root_connection
from ..loaders.audit import AUDIT, AUDIT_SPEC
from ..types.connection import (
    After,
    Before,
    Connection,
    First,
    FromDay,
    Last,
    ToDay,
)
from ..types.filters import london_midnight
from .arguments import EscoIdArg, in_esco

Info = strawberry.Info[Context, None]
STAFF = frozenset({"admin", "operator"})


@strawberry.enum(description="Orders of the audit log.")
class AuditOrder(Enum):
    NEWEST = "NEWEST"
    OLDEST = "OLDEST"


@strawberry.type(description="One record of the audit trail: a mutation's change to a row.")
class AuditRecord:
    action: str = strawberry.field(description="The mutation (e.g. `updatePaymentStatus`).")
    actor: str = strawberry.field(
        description="Who: `user:…`, `partner:…`, `customer:…` or `system`."
    )
    entity: str = strawberry.field(description="The kind of row (e.g. `payment`).")
    entity_id: str | None = strawberry.field(description="The row's id.")
    changes: JSON = strawberry.field(
        description='`{"created": …}`, `{"changed": {field: {old, new}}}` or `{"removed": …}`.'
    )
    created_at: datetime = strawberry.field(description="When.")


@strawberry.type
class AuditQuery:
    @strawberry.field(
        description="The audit trail, newest first (admins and operators of the ESCO; "
        "empty for anyone else)."
    )
    async def audit_log(
        self,
        info: Info,
        esco_id: EscoIdArg = None,
        entity: Annotated[
            str | None, strawberry.argument(description="Only this kind of row.")
        ] = None,
        from_: FromDay = None,
        to: ToDay = None,
        order_by: Annotated[
            AuditOrder | None, strawberry.argument(description="Default NEWEST.")
        ] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[AuditRecord]:
        conditions: list[Any] = []
        if info.context.viewer.role not in STAFF:
            conditions.append(false())
        conditions += in_esco(AUDIT, esco_id)
        if entity is not None:
            conditions.append(AUDIT.c.entity == entity)
        # Days of the billing clock (Europe/London), both included.
        if from_ is not None:
            conditions.append(AUDIT.c.created_at >= london_midnight(from_))
        if to is not None:
            conditions.append(AUDIT.c.created_at < london_midnight(_next_day(to)))
        page: Connection[AuditRecord] = await root_connection(
            info,
            AUDIT_SPEC,
            order_by.value if order_by else None,
            conditions,
            first=first,
            after=after,
            last=last,
            before=before,
        )
        return page


def _next_day(day: date) -> date:
    return date.fromordinal(day.toordinal() + 1)
