"""Relay connections: edges with keyset cursors, nodes, pageInfo, totalCount.

No `from __future__ import annotations` here: `connection_field` builds resolvers
whose annotations Strawberry must read as real objects.
"""

import inspect
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, Any, Generic, TypeVar

import strawberry

from ..context import Context
from ..loaders.base import CountLoader, PageLoader, Where, root_page
from ..pagination import Page, SortKey, encode_cursor, page_args
from .filters import filter_key
from .projection import projection, reads

T = TypeVar("T")

First = Annotated[
    int | None, strawberry.argument(description="Page forwards: at most this many rows.")
]
After = Annotated[
    str | None, strawberry.argument(description="Page forwards from after this cursor.")
]
Last = Annotated[
    int | None, strawberry.argument(description="Page backwards: at most this many rows.")
]
Before = Annotated[
    str | None, strawberry.argument(description="Page backwards from before this cursor.")
]
FromDay = Annotated[
    date | None, strawberry.argument(name="from", description="First day (or month) included.")
]
ToDay = Annotated[date | None, strawberry.argument(description="Last day (or month) included.")]


@strawberry.type(description="Where a page sits in its list.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More rows follow this page.")
    has_previous_page: bool = strawberry.field(description="Rows precede this page.")
    start_cursor: str | None = strawberry.field(description="Cursor of the first edge.")
    end_cursor: str | None = strawberry.field(description="Cursor of the last edge.")


@strawberry.type(description="A row of a page, with the cursor to page from it.")
class Edge(Generic[T]):
    node: T = strawberry.field(description="The row.")
    sort: strawberry.Private[SortKey]

    @strawberry.field(description="Opaque keyset cursor of this row.")
    def cursor(self) -> str:
        # Made only when asked for: a dashboard reading `nodes` spends nothing on them.
        row: Any = self.node
        return encode_cursor(self.sort, row.sort_value, row.id)


@strawberry.type(description="A page of a list, Relay style.")
class Connection(Generic[T]):
    page: strawberry.Private[Page]
    sort: strawberry.Private[SortKey]
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="The rows with their cursors.")
    def edges(self) -> list[Edge[T]]:
        return [Edge(node=row, sort=self.sort) for row in self.page.rows]

    @strawberry.field(description="Where this page sits.")
    def page_info(self) -> PageInfo:
        rows, sort = self.page.rows, self.sort
        return PageInfo(
            has_next_page=self.page.has_next_page,
            has_previous_page=self.page.has_previous_page,
            start_cursor=encode_cursor(sort, rows[0].sort_value, rows[0].id) if rows else None,
            end_cursor=encode_cursor(sort, rows[-1].sort_value, rows[-1].id) if rows else None,
        )

    @strawberry.field(description="The rows of this page.")
    def nodes(self) -> list[T]:
        return list(self.page.rows)

    @strawberry.field(description="How many rows the whole list holds (all pages).")
    async def total_count(self) -> int:
        return await self.count()


def connection(page: Page, sort: SortKey, count: Callable[[], Awaitable[int]]) -> Any:
    """A Connection of the page's rows (the rows are the nodes: types read them)."""
    return Connection(page=page, sort=sort, count=count)


def connection_field(
    node: Any,
    pages: type[PageLoader],
    counts: type[CountLoader],
    description: str,
    parent_key: str = "id",
    *,
    filter_type: Any = None,
    conditions: Callable[[Any], list[Any]] | None = None,
    order_type: Any = None,
    default_order: str = "",
) -> Any:
    """A field paging over the children of the row it sits on (`parent_key` of the
    row = `pages.parent` of the children), batched across sibling rows. With
    `filter_type` (and `conditions` turning it into SQL) it takes `filter:`, with
    `order_type` (an enum of the spec's sort keys) `orderBy:`, as the root lists do."""

    async def page_of(
        root: Any,
        info: strawberry.Info[Context, None],
        order: str | None,
        where: Where | None,
        first: int | None,
        after: str | None,
        last: int | None,
        before: str | None,
    ) -> Any:
        settings = info.context.settings
        sort = pages.spec.sort(order)
        args = page_args(
            sort,
            first=first,
            after=after,
            last=last,
            before=before,
            default_size=settings.default_page_size,
            max_size=settings.max_page_size,
        )
        parent = getattr(root, parent_key)
        loaders = info.context.loaders
        page = await loaders.get(pages, order, args, where, columns=projection(info)).load(parent)

        async def count() -> int:
            return await loaders.get(counts, where).load(parent)

        return connection(page, sort, count)

    async def resolve(
        root: Any,
        info: strawberry.Info[Context, None],
        filter: Any = None,
        order_by: Any = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Any:
        where = None
        if filter is not None and conditions is not None:
            where = Where(filter_key(filter), conditions(filter))
        order = order_by.value if order_by is not None else None
        return await page_of(root, info, order, where, first, after, last, before)

    # Only the arguments this connection takes are in its signature (and the schema).
    extra = {
        "filter": None
        if filter_type is None
        else Annotated[filter_type | None, strawberry.argument(description="Conditions.")],
        "order_by": None
        if order_type is None
        else Annotated[
            order_type | None, strawberry.argument(description=f"Default {default_order}.")
        ],
    }
    signature = inspect.signature(resolve)
    resolve.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[
            p.replace(annotation=extra[p.name]) if p.name in extra else p
            for p in signature.parameters.values()
            if p.name not in extra or extra[p.name] is not None
        ],
        return_annotation=Connection[node],
    )
    resolve.__annotations__["return"] = Connection[node]
    return strawberry.field(resolver=resolve, description=description, metadata=reads(parent_key))


async def root_connection(
    info: strawberry.Info[Context, None],
    spec: Any,
    order: str | None,
    conditions: list[Any],
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> Any:
    """A root list's page: the viewer's scope, the filters, the window, one statement
    (plus one COUNT when totalCount is asked for)."""
    settings = info.context.settings
    sort = spec.sort(order)
    args = page_args(
        sort,
        first=first,
        after=after,
        last=last,
        before=before,
        default_size=settings.default_page_size,
        max_size=settings.max_page_size,
    )
    page, count = await root_page(info.context.loaders, spec, sort, args, conditions)
    return connection(page, sort, count)
