"""What subscriptions deliver: entries of the event log, and a customer's ready bill."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from ..context import Context
from ..loaders import billing as billing_loaders
from .node import Node, TypedRow

if TYPE_CHECKING:
    from .billing import MonthlyCosts
    from .customers import Customer

Info = strawberry.Info[Context, None]
Lazy = strawberry.lazy


@strawberry.type(description="One entry of the event log, as the viewer may see it.")
class Event:
    id: strawberry.ID = strawberry.field(
        description="The event's place in the log (commit order); pass it as `after:` to "
        "resume after this event."
    )
    type: str = strawberry.field(description="What happened, e.g. `payment.status_changed`.")
    occurred_at: datetime = strawberry.field(description="When the change committed.")
    subject_row: strawberry.Private[TypedRow]

    @strawberry.field(description="The object the event is about, as it is now.")
    def subject(self) -> Node:
        return self.subject_row  # type: ignore[return-value]


@strawberry.type(description="A customer's bill for a month is ready to show.")
class BillReady:
    month: date = strawberry.field(description="The billed month (its 1st).")
    customer_row: strawberry.Private[Any]

    @strawberry.field(description="The billed customer.")
    def customer(self) -> Annotated[Customer, Lazy("flows_graphql.types.customers")]:
        return self.customer_row

    @strawberry.field(description="The month's costs, one per metered home.")
    async def costs(
        self, info: Info
    ) -> list[Annotated[MonthlyCosts, Lazy("flows_graphql.types.billing")]]:
        loader = info.context.loaders.get(billing_loaders.CostsByCustomerId, self.month, self.month)
        return await loader.load(self.customer_row.id)
