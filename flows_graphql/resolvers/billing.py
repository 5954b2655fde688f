"""Root queries over billing runs."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import strawberry

from ..context import Context
from ..db.models.enums import BillingRunStatus
from ..loaders.billing import RUN_SPEC, RUNS
from ..types.billing import BillingRun
from ..types.connection import After, Before, Connection, First, Last, root_connection
from .arguments import esco_id_argument
from .customers import EscoIdArg

Info = strawberry.Info[Context, None]


@strawberry.input(description="Narrows the billing run list; all given conditions apply.")
class BillingRunFilter:
    month: date | None = strawberry.field(default=None, description="This month (its 1st).")
    status: BillingRunStatus | None = strawberry.field(default=None, description="This status.")


def run_conditions(esco_id: str | None, filter: BillingRunFilter | None) -> list[Any]:
    conditions: list[Any] = []
    esco = esco_id_argument(esco_id)
    if esco is not None:
        conditions.append(RUNS.c.esco_id == esco)
    if filter is not None:
        if filter.month is not None:
            conditions.append(RUNS.c.month == filter.month)
        if filter.status is not None:
            conditions.append(RUNS.c.status == filter.status)
    return conditions


@strawberry.type
class BillingQuery:
    @strawberry.field(description="Billing runs the viewer may see, newest month first.")
    async def billing_runs(
        self,
        info: Info,
        esco_id: EscoIdArg = None,
        filter: Annotated[
            BillingRunFilter | None, strawberry.argument(description="Conditions.")
        ] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[BillingRun]:
        return await root_connection(
            info,
            RUN_SPEC,
            None,
            run_conditions(esco_id, filter),
            first=first,
            after=after,
            last=last,
            before=before,
        )
