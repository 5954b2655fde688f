"""Root queries over customers."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import strawberry
from sqlalchemy import func

from ..context import Context
from ..db.models.enums import CustomerStatus
from ..loaders.customers import CUSTOMER_SPEC, CUSTOMERS
from ..types.connection import After, Before, Connection, First, Last, root_connection
from ..types.customers import Customer
from .arguments import esco_id_argument, like_prefix

Info = strawberry.Info[Context, None]
EscoIdArg = Annotated[
    strawberry.ID | None, strawberry.argument(description="Only this ESCO (global id or uuid).")
]


@strawberry.enum(description="Orders of the customer list (each backed by an index).")
class CustomerOrder(Enum):
    EMAIL = "EMAIL"
    CREATED_AT = "CREATED_AT"


@strawberry.input(description="Narrows the customer list; all given conditions apply.")
class CustomerFilter:
    status: CustomerStatus | None = strawberry.field(default=None, description="This status.")
    email_prefix: str | None = strawberry.field(
        default=None, description="Email starts with this (any case)."
    )


def customer_conditions(esco_id: str | None, filter: CustomerFilter | None) -> list[Any]:
    conditions: list[Any] = []
    esco = esco_id_argument(esco_id)
    if esco is not None:
        conditions.append(CUSTOMERS.c.esco_id == esco)
    if filter is not None:
        if filter.status is not None:
            conditions.append(CUSTOMERS.c.status == filter.status)
        if filter.email_prefix:
            conditions.append(
                func.lower(CUSTOMERS.c.email).like(like_prefix(filter.email_prefix.lower()))
            )
    return conditions


@strawberry.type
class CustomersQuery:
    @strawberry.field(description="Customers the viewer may see.")
    async def customers(
        self,
        info: Info,
        esco_id: EscoIdArg = None,
        filter: Annotated[
            CustomerFilter | None, strawberry.argument(description="Conditions.")
        ] = None,
        order_by: Annotated[
            CustomerOrder | None, strawberry.argument(description="Default EMAIL.")
        ] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Customer]:
        return await root_connection(
            info,
            CUSTOMER_SPEC,
            order_by.value if order_by else None,
            customer_conditions(esco_id, filter),
            first=first,
            after=after,
            last=last,
            before=before,
        )
