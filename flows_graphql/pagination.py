"""Keyset pagination for Relay connections.

A cursor is the page's sort value plus the row id, so a page boundary never moves
when rows are inserted or deleted elsewhere (unlike an offset). Cursors are opaque
(base64url JSON) and tied to their sort order: a cursor from another order is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_

from .errors import invalid_argument
from .rules import formats


@dataclass(frozen=True)
class SortKey:
    """One orderBy choice: a (usually indexed) expression, ascending, plus the row id."""

    name: str
    expression: Callable[[], ColumnElement[Any]]
    parse: Callable[[str], Any]
    descending: bool = False


def parse_text(value: str) -> str:
    return value


def parse_date(value: str) -> date:
    return formats.parse_date(value)


def parse_datetime(value: str) -> datetime:
    return formats.parse_datetime(value)


@dataclass(frozen=True)
class PageArgs:
    first: int | None
    after: tuple[Any, uuid.UUID] | None
    last: int | None
    before: tuple[Any, uuid.UUID] | None

    @property
    def backwards(self) -> bool:
        return self.last is not None and self.first is None

    @property
    def limit(self) -> int:
        size = self.last if self.backwards else self.first
        assert size is not None
        return size


def page_args(
    sort: SortKey,
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    default_size: int,
    max_size: int,
) -> PageArgs:
    if first is not None and last is not None:
        raise invalid_argument("Pass `first` or `last`, not both.", "first")
    for name, size in (("first", first), ("last", last)):
        if size is not None and not 0 <= size <= max_size:
            raise invalid_argument(f"`{name}` must be between 0 and {max_size}.", name)
    if first is None and last is None:
        first = default_size
    return PageArgs(
        first=first,
        after=decode_cursor(sort, after, "after") if after else None,
        last=last,
        before=decode_cursor(sort, before, "before") if before else None,
    )


def encode_cursor(sort: SortKey, value: Any, row_id: uuid.UUID) -> str:
    if isinstance(value, date | datetime):
        value = value.isoformat()
    elif isinstance(value, uuid.UUID):
        value = str(value)
    raw = json.dumps([sort.name, value, str(row_id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(sort: SortKey, cursor: str, argument: str) -> tuple[Any, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
        # Ours are ["ORDER", "value", "uuid"]: anything else (an object, a number, 1e400,
        # a NUL that PostgreSQL cannot compare) is not a cursor of this list.
        if not (
            isinstance(decoded, list)
            and len(decoded) == 3
            and all(isinstance(part, str) and "\x00" not in part for part in decoded)
        ):
            raise ValueError("not a cursor")
        name, value, row_id = decoded
        if name != sort.name:
            raise ValueError("cursor of another order")
        return sort.parse(value), uuid.UUID(row_id)
    except (binascii.Error, ValueError, TypeError, RecursionError) as exc:
        raise invalid_argument(f"`{argument}` is not a cursor of this list.", argument) from exc


# The leading `key >= value` (`<=`) says nothing the rest does not, but PostgreSQL can
# seek an index with it; the OR alone it can only filter with, so the page after row
# 90,000 of a big ESCO read and dropped the 90,000 before it (120 ms a page, all pages
# of 94,000 customers quadratic; docs/billing-runs.md "At 100,000 homes").
def _after(key: ColumnElement[Any], id_col: ColumnElement[Any], value: Any, row_id: Any) -> Any:
    return and_(key >= value, or_(key > value, and_(key == value, id_col > row_id)))


def _before(key: ColumnElement[Any], id_col: ColumnElement[Any], value: Any, row_id: Any) -> Any:
    return and_(key <= value, or_(key < value, and_(key == value, id_col < row_id)))


def window(
    sort: SortKey, id_col: ColumnElement[Any], args: PageArgs
) -> tuple[list[Any], list[Any]]:
    """The conditions that keep the rows between the cursors, and the fetch order
    (page order, or its reverse when paging backwards)."""
    key = sort.expression()
    forward_after, forward_before = (_before, _after) if sort.descending else (_after, _before)
    conditions = []
    if args.after is not None:
        conditions.append(forward_after(key, id_col, *args.after))
    if args.before is not None:
        conditions.append(forward_before(key, id_col, *args.before))
    if sort.descending == args.backwards:
        order = [key.asc(), id_col.asc()]
    else:
        order = [key.desc(), id_col.desc()]
    return conditions, order


def apply_window(
    stmt: Select[Any], sort: SortKey, id_col: ColumnElement[Any], args: PageArgs
) -> Select[Any]:
    """Rows between the cursors in fetch order, one beyond the page (to learn whether
    there is a next page without counting)."""
    conditions, order = window(sort, id_col, args)
    return stmt.where(*conditions).order_by(*order).limit(args.limit + 1)


@dataclass
class Page:
    rows: list[Any]
    has_next_page: bool
    has_previous_page: bool


def make_page(rows: list[Any], args: PageArgs) -> Page:
    """Rows as fetched by apply_window → the page in display order."""
    more = len(rows) > args.limit
    rows = rows[: args.limit]
    if args.backwards:
        rows.reverse()
        return Page(rows, has_next_page=args.before is not None, has_previous_page=more)
    return Page(rows, has_next_page=more, has_previous_page=args.after is not None)
