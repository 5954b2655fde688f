"""Relay connections: edges with keyset cursors, nodes, pageInfo, totalCount (the
shapes; fields.py's `paged` and `root_connection` fill them).
"""

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, Any, Generic, TypeVar

import strawberry

from ..pagination import Page, SortKey, encode_cursor

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
