"""The root lists of an ESCO's rows (customers, properties, meters, billing runs): one
declaration each, the same arguments and the same statement for all.

No `from __future__ import annotations` here: the resolver's annotations name the
list's own filter, order and node types, so they are evaluated when it is built.
"""

from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any

import strawberry
from sqlalchemy import FromClause

from ..context import Context
from ..fields import root_connection
from ..types.connection import After, Before, Connection, First, Last
from ..types.filters import UpdatedSince
from ..types.filters import updated_since as changed_since
from .arguments import EscoIdArg, in_esco


def esco_rows(
    node: type,
    spec: Any,
    table: FromClause,
    filter_type: type,
    conditions: Callable[[Any], list[Any]],
    order_type: type[Enum],
    *,
    description: str,
    filter_description: str,
    order_description: str,
) -> Any:
    """A root list field of `node`s, the rows of `table` the viewer may see: narrowed
    by `escoId`, by a `filter_type` (its `conditions`) and by `updatedSince`, ordered
    by an `order_type`, paged as a connection."""

    async def resolve(
        self: Any,
        info: strawberry.Info[Context, None],
        esco_id: EscoIdArg = None,
        filter: Annotated[
            filter_type | None,  # type: ignore[valid-type]
            strawberry.argument(description=filter_description),
        ] = None,
        order_by: Annotated[
            order_type | None,  # type: ignore[valid-type]
            strawberry.argument(description=order_description),
        ] = None,
        updated_since: UpdatedSince = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[node]:  # type: ignore[valid-type]
        page: Connection[Any] = await root_connection(
            info,
            spec,
            _order(order_by),
            [
                *in_esco(table, esco_id),
                *conditions(filter),
                *changed_since(table, updated_since),
            ],
            first=first,
            after=after,
            last=last,
            before=before,
        )
        return page

    return strawberry.field(resolver=resolve, description=description)


def _order(value: Enum | None) -> str | None:
    return None if value is None else str(value.value)
