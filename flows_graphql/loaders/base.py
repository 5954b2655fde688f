"""Dataloader machinery: one batched `= ANY($1)` statement per relation and request.

Each loader class is named after the SQL path it batches (`MeterById`,
`AccountsByCustomerId`) and declares its table, key column and order; the base class
builds the statement once, adds the viewer's ESCO scope, and hands results back in
key order. Loaders return rows (SQLAlchemy `Row`s); the Strawberry types read their
fields straight off them, so nothing is copied into intermediate objects.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from operator import attrgetter
from typing import Any, ClassVar, TypeVar

from aiodataloader import DataLoader
from sqlalchemy import (
    ColumnElement,
    Date,
    FromClause,
    Select,
    Text,
    and_,
    any_,
    bindparam,
    column,
    func,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from ..caches import Bounded
from ..db.request import RequestDb
from ..pagination import Page, PageArgs, SortKey, apply_window, make_page, window
from ..rules.clock import london_today
from .visibility import customer_condition

L = TypeVar("L", bound="BaseLoader")

UUID_ARRAY = ARRAY(UUID(as_uuid=True))
TEXT_ARRAY = ARRAY(Text())


def any_key(column: ColumnElement[Any], name: str = "keys", type_: Any = UUID_ARRAY) -> Any:
    """`column = ANY(:name)`: one statement text whatever the number of keys, so
    PostgreSQL's prepared statement is reused."""
    return column == any_(bindparam(name, type_=type_))


def in_scope(table: FromClause, column: str = "esco_id") -> Any:
    """Only the viewer's ESCOs: the one filter that keeps tenants apart."""
    return any_key(table.c[column], "scope")


class Loaders:
    """The loaders of one request, made on first use."""

    def __init__(
        self,
        db: RequestDb,
        scope: frozenset[uuid.UUID] | None,
        customer_id: uuid.UUID | None = None,
    ) -> None:
        self.db = db
        # The billing clock (Context sets the request's): ranges default from it.
        self.today: Callable[[], date] = london_today
        self.scope = scope
        # Set for customers: they read only their own rows (see visibility.py).
        self.customer_id = customer_id
        self._made: dict[Hashable, BaseLoader] = {}
        # The columns each selection of this request reads (fields.projection).
        self.projections: dict[Hashable, frozenset[Any] | None] = {}

    def get(self, cls: type[L], *params: Hashable, columns: frozenset[Any] | None = None) -> L:
        """The request's loader of `cls` (with `params`, e.g. a month range), fetching
        `columns` (and what it needs itself) or, by default, every column."""
        key = (cls, params, columns)
        loader = self._made.get(key)
        if loader is None:
            loader = self._made[key] = cls(self, *params)
            loader.columns = columns
        return loader  # type: ignore[return-value]  # made as cls above

    def release(self) -> None:
        """Drop every loader and what it cached (new ones are made on next use). At a
        request's end this lets its rows go: each loader points back at this object,
        so they would otherwise wait for the cyclic garbage collector, every row and
        future of a request collected over and over as they aged (bench/README.md)."""
        for loader in self._made.values():
            loader.clear_all()
        self._made.clear()
        self.projections.clear()

    def bind(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.scope is not None:
            params["scope"] = list(self.scope)
        if self.customer_id is not None:
            params["viewer_customer"] = self.customer_id
        return params

    def limits(self, table: FromClause, scope_column: str | None) -> list[Any]:
        """The viewer's limits on a read of `table`: its ESCOs, and for a customer
        their own rows."""
        conditions = []
        if scope_column is not None and self.scope is not None:
            conditions.append(in_scope(table, scope_column))
        if self.customer_id is not None:
            condition = customer_condition(table)
            if condition is not None:
                conditions.append(condition)
        return conditions

    def restrict(
        self, stmt: Select[Any], table: FromClause, scope_column: str | None
    ) -> Select[Any]:
        return stmt.where(*self.limits(table, scope_column))


class BaseLoader(DataLoader):
    """A loader of one request, made by `Loaders.get` with optional parameters."""

    # Set by Loaders.get: the columns asked for; None for all.
    columns: frozenset[Any] | None = None

    def __init__(self, loaders: Loaders, *params: Any) -> None:
        super().__init__()
        self.loaders = loaders
        self.params = params

    async def load_level(self, keys: list[Any]) -> list[Any]:
        """The values of a whole level of keys (None for a None key), through the
        same batch and cache as `load`: one future per distinct key, not per row."""
        distinct = list(dict.fromkeys(key for key in keys if key is not None))
        if not distinct:
            return [None] * len(keys)
        found = dict(zip(distinct, await self.load_many(distinct), strict=True))
        return [None if key is None else found[key] for key in keys]


# Statements kept per loader class: client queries choose the column sets and windows.
PROJECTIONS_KEPT = 256
# PostgreSQL's longest name (NAMEDATALEN - 1): a longer label would come back cut.
LONGEST_NAME = 63


@dataclass(frozen=True)
class Joined:
    """A to-one child read in its parent's statement (LEFT JOIN): the rows `loader`
    finds by the parent's `parent_column`, their `columns` (strings, and Joined for
    their own children) labelled `prefix…`. Among the columns a loader is asked for;
    a loader that cannot join leaves it out, and the child is then loaded on its own."""

    prefix: str
    loader: type[RowLoader]
    parent_column: str
    columns: frozenset[Any]


def joinable(loader: type[BaseLoader]) -> bool:
    """Whether `loader`'s rows can be read as a LEFT JOIN of their parent's statement:
    one row per key, found by the table's primary key with no statement of its own."""
    return (
        issubclass(loader, RowLoader)
        and not loader.many
        and loader.base_statement.__func__ is RowLoader.base_statement.__func__  # type: ignore[attr-defined]
        and loader.bind is RowLoader.bind
        and [column.key for column in loader.table.primary_key] == [loader.key]
    )


class RowLoader(BaseLoader):
    """Rows of `table` whose `key` column equals each key: one row (or None) per key,
    or with `many`, the list of rows per key in `order_by` order."""

    table: ClassVar[FromClause]
    key: ClassVar[str]
    many: ClassVar[bool] = False
    order_by: ClassVar[Sequence[str]] = ()
    key_type: ClassVar[Any] = UUID_ARRAY
    # The column naming the row's ESCO; None for global reference data (regions,
    # benchmark tariffs, contract terms).
    scope_column: ClassVar[str | None] = "esco_id"
    _statements: ClassVar[dict[tuple[type, bool, bool], Select[Any]]]
    _projected: ClassVar[dict[tuple[int, frozenset[Any]], Select[Any]]]

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls._statements = {}
        cls._projected = Bounded(PROJECTIONS_KEPT)

    @classmethod
    def base_statement(cls) -> Select[Any]:
        table = cls.table
        stmt = select(table).where(any_key(table.c[cls.key], type_=cls.key_type))
        if cls.order_by:
            stmt = stmt.order_by(*(cls._order(o) for o in cls.order_by))
        return stmt

    @classmethod
    def _order(cls, spec: str) -> Any:
        name, _, direction = spec.partition(" ")
        column = cls.table.c[name]
        return column.desc() if direction.lower() == "desc" else column.asc()

    def full_statement(self) -> Select[Any]:
        """Every column, within the viewer's limits."""
        loaders = self.loaders
        cache_key = (type(self), loaders.scope is not None, loaders.customer_id is not None)
        stmt = self._statements.get(cache_key)
        if stmt is None:
            stmt = loaders.restrict(self.base_statement(), self.table, self.scope_column)
            self._statements[cache_key] = stmt
        return stmt

    def statement(self) -> Select[Any]:
        """The columns asked for, and the key the rows are arranged by; with the to-one
        children asked for (Joined) in the same statement, when this loader's
        statement is a plain lookup by key."""
        full = self.full_statement()
        if self.columns is None:
            return full
        cache_key = (id(full), self.columns)
        stmt = self._projected.get(cache_key)
        if stmt is None:
            keep = self.columns | {self.key}
            joins: list[Joined] = [c for c in self.columns if isinstance(c, Joined)]
            if joins and type(self).base_statement.__func__ is RowLoader.base_statement.__func__:  # type: ignore[attr-defined]
                stmt = self._joined(keep, joins)
            else:
                stmt = full.with_only_columns(
                    *(c for c in full.selected_columns if c.key in keep),
                    maintain_column_froms=True,
                )
            self._projected[cache_key] = stmt
        return stmt

    def _joined(self, keep: frozenset[Any], joins: list[Joined]) -> Select[Any]:
        """base_statement with `keep`'s columns and each child LEFT JOINed, the
        viewer's limits on a child in its ON clause (out of reach: null, as its loader
        would answer)."""
        table = self.table
        columns: list[Any] = [c for c in table.c if c.key in keep]
        source: Any = table
        used = {table}
        for joined in sorted(joins, key=attrgetter("prefix")):
            source = self._join(source, table, joined, "", columns, used)
        stmt = select(*columns).select_from(source)
        stmt = stmt.where(any_key(table.c[self.key], type_=self.key_type))
        if self.order_by:
            stmt = stmt.order_by(*(self._order(o) for o in self.order_by))
        return self.loaders.restrict(stmt, table, self.scope_column)

    def _join(
        self,
        source: Any,
        parent: FromClause,
        joined: Joined,
        outer: str,
        columns: list[Any],
        used: set[FromClause],
    ) -> Any:
        child = joined.loader.table
        label = outer + joined.prefix
        keep = {c for c in joined.columns if isinstance(c, str)} | {joined.loader.key}
        names = [label + c.key for c in child.c if c.key in keep]
        # The same table twice would need aliases, and a cut label would be misread:
        # such a child is loaded on its own (its rows lack the columns; fields.py).
        if child in used or joined.parent_column not in parent.c:
            return source
        if any(len(name) > LONGEST_NAME for name in names):
            return source
        used.add(child)
        on = and_(
            child.c[joined.loader.key] == parent.c[joined.parent_column],
            *self.loaders.limits(child, joined.loader.scope_column),
        )
        source = source.outerjoin(child, on)
        columns.extend(c.label(label + c.key) for c in child.c if c.key in keep)
        for inner in sorted(
            (c for c in joined.columns if isinstance(c, Joined)), key=attrgetter("prefix")
        ):
            source = self._join(source, child, inner, label, columns, used)
        return source

    def bind(self, keys: list[Any]) -> dict[str, Any]:
        return self.loaders.bind({"keys": keys})

    async def batch_load_fn(self, keys: list[Any]) -> list[Any]:
        rows = await self.loaders.db.prepared_rows(self.statement(), self.bind(list(keys)))
        return self.arrange(keys, rows)

    def arrange(self, keys: Iterable[Any], rows: Sequence[Any]) -> list[Any]:
        row_keys = map(attrgetter(self.key), rows)
        if self.many:
            grouped: dict[Any, list[Any]] = defaultdict(list)
            for key, row in zip(row_keys, rows, strict=True):
                grouped[key].append(row)
            return [grouped.get(k, []) for k in keys]
        by_key = dict(zip(row_keys, rows, strict=True))
        return [by_key.get(k) for k in keys]


EARLIEST = date(1, 1, 1)
LATEST = date(9999, 12, 31)
# Months a ranged list holds when `from` is left out: these, up to `to` (or the
# current month) — a list of months or quarters stays bounded by default.
DEFAULT_MONTHS = 24


def default_from(end: date | None, today: date) -> date:
    """The first day of a ranged list whose `from` is left out: the 1st of the month
    DEFAULT_MONTHS - 1 months before `end`'s month (or the current month)."""
    anchor = end if end is not None and end < today else today
    index = anchor.year * 12 + anchor.month - 1 - (DEFAULT_MONTHS - 1)
    if index < 12:  # before year 1 (a `to` near 0001-01-01): from the first day there is
        return EARLIEST
    return date(index // 12, index % 12 + 1, 1)


class RangeLoader(RowLoader):
    """A RowLoader made with a (from, to) date range over `range_column`, inclusive;
    no `to` is unbounded, no `from` is DEFAULT_MONTHS months up to `to` (or now)."""

    many = True
    range_column: ClassVar[str]

    @classmethod
    def base_statement(cls) -> Select[Any]:
        column = cls.table.c[cls.range_column]
        return (
            super()
            .base_statement()
            .where(column >= bindparam("range_from", type_=Date()))
            .where(column <= bindparam("range_to", type_=Date()))
        )

    def bind(self, keys: list[Any]) -> dict[str, Any]:
        start, end = self.params
        if start is None:
            start = default_from(end, self.loaders.today())
        return self.loaders.bind({"keys": keys, "range_from": start, "range_to": end or LATEST})


class ConnectionSpec:
    """What a connection pages over: its table, base filters, sort keys."""

    def __init__(
        self,
        table: FromClause,
        sorts: dict[str, SortKey],
        default: str,
        scope_column: str = "esco_id",
    ) -> None:
        self.table = table
        self.sorts = sorts
        self.default = default
        self.scope_column = scope_column

    def sort(self, name: str | None) -> SortKey:
        return self.sorts[name or self.default]


class Where:
    """A nested connection's filter: its SQL conditions, compared and hashed by `key`
    (the filter's values), so parents asking with the same filter share a loader."""

    __slots__ = ("conditions", "key")

    def __init__(self, key: Hashable, conditions: Sequence[Any]) -> None:
        self.key = key
        self.conditions = tuple(conditions)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Where) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)


@dataclass(frozen=True)
class Narrowed:
    """Children found through their parent's row: `table` is the parent's, `shared`
    the columns a child has equal to its parent's (an index on them finds a parent's
    children). A billing run's costs have no index on `billing_run_id`, so that a
    re-run's updates are HOT (docs/billing-runs.md): they are found by the run's
    `(esco_id, month)`."""

    table: Any
    shared: tuple[str, ...]

    def parents(self, keys: Any) -> Any:
        """The parents' rows of the keys, as `parents` (id and the shared columns)."""
        table = self.table
        return (
            select(table.c.id, *(table.c[name] for name in self.shared))
            .select_from(keys)
            .join(table, table.c.id == keys.c.id)
            .subquery("parents")
        )

    def conditions(self, child: Any, parent: Any) -> list[Any]:
        return [child.c[name] == parent.c[name] for name in self.shared]


class PageLoader(BaseLoader):
    """One page of a connection for each parent id, all parents in one statement.

    Made per request with the order, page arguments and filter (hashable), so every
    parent asking for the same page shares one loader and one statement.
    """

    spec: ClassVar[ConnectionSpec]
    parent: ClassVar[str]
    # The parent's table and the columns its rows share with their children, for a
    # parent column with no index of its own: the parent's row is joined to its key,
    # and the children are found by the shared columns' index (see `Narrowed`).
    narrowed: ClassVar[Narrowed | None] = None
    _pages: ClassVar[dict[tuple[Any, ...], Select[Any]]] = Bounded(PROJECTIONS_KEPT)

    def __init__(
        self, loaders: Loaders, sort: str | None, args: PageArgs, where: Where | None = None
    ) -> None:
        super().__init__(loaders, sort, args, where)
        self.sort = self.spec.sort(sort)
        self.args = args
        self.where = where

    def statement(self) -> Select[Any] | None:
        """The statement of a first or last page, made once per order, size, columns
        and viewer kind (it then runs straight on asyncpg, db/direct.py); None for a
        page after or before a cursor, whose statement is made for it alone."""
        if self.args.after is not None or self.args.before is not None:
            return None
        loaders = self.loaders
        cache_key = (
            type(self),
            self.sort.name,
            self.args,
            self.where,
            self.columns,
            loaders.scope is not None,
            loaders.customer_id is not None,
        )
        stmt = self._pages.get(cache_key)
        if stmt is None:
            stmt = self._pages[cache_key] = self.build_statement()
        return stmt

    def build_statement(self) -> Select[Any]:
        # For each parent, an index-ordered LIMIT (a LATERAL join) rather than numbering
        # every child row: a page of a large ESCO's customers reads 51 rows, not all.
        table = self.spec.table
        keys = (
            func.unnest(bindparam("keys", type_=UUID_ARRAY))
            .table_valued(column("id", UUID(as_uuid=True)))
            .render_derived(name="parents")
        )
        parents: Any = keys
        conditions, order = window(self.sort, table.c.id, self.args)
        if self.narrowed is not None:
            parents = self.narrowed.parents(keys)
            conditions = [*conditions, *self.narrowed.conditions(table, parents)]
        if self.where is not None:
            conditions = [*conditions, *self.where.conditions]
        columns: list[Any] = [table]
        if self.columns is not None:
            keep = self.columns | {self.parent, "id"}
            columns = [c for c in table.c if c.key in keep]
        page = (
            select(*columns, self.sort.expression().label("sort_value"))
            .where(table.c[self.parent] == parents.c.id, *conditions)
            .order_by(*order)
            .limit(self.args.limit + 1)
        )
        lateral = self.loaders.restrict(page, table, self.spec.scope_column).lateral("page")
        return select(lateral).select_from(parents).join(lateral, true())

    async def batch_load_fn(self, keys: list[Any]) -> list[Page]:
        params = self.loaders.bind({"keys": list(keys)})
        stmt = self.statement()
        if stmt is not None:
            rows = await self.loaders.db.prepared_rows(stmt, params)
        else:  # through SQLAlchemy, which caches it by shape, not by cursor values
            rows = await self.loaders.db.rows(self.build_statement(), params)
        grouped: dict[Any, list[Any]] = defaultdict(list)
        for row in rows:
            grouped[getattr(row, self.parent)].append(row)
        # A join does not promise the LATERAL's order: sort each parent's rows again.
        ascending = self.sort.descending == self.args.backwards
        return [
            make_page(sorted(grouped.get(k, []), key=_sort_key, reverse=not ascending), self.args)
            for k in keys
        ]


def _sort_key(row: Any) -> tuple[Any, Any]:
    return row.sort_value, row.id


class CountLoader(BaseLoader):
    """The total count of a connection for each parent id, in one GROUP BY (made with
    the connection's filter, if any)."""

    spec: ClassVar[ConnectionSpec]
    parent: ClassVar[str]
    narrowed: ClassVar[Narrowed | None] = None

    async def batch_load_fn(self, keys: list[Any]) -> list[int]:
        table = self.spec.table
        parent_col = table.c[self.parent]
        where: Where | None = self.params[0] if self.params else None
        stmt = select(parent_col, func.count()).group_by(parent_col)
        if self.narrowed is None:
            stmt = stmt.where(any_key(parent_col))
        else:
            parent = self.narrowed.table
            stmt = stmt.join_from(
                table,
                parent,
                and_(parent.c.id == parent_col, *self.narrowed.conditions(table, parent)),
            ).where(any_key(parent.c.id))
        if where is not None:
            stmt = stmt.where(*where.conditions)
        stmt = self.loaders.restrict(stmt, table, self.spec.scope_column)
        rows = await self.loaders.db.rows(stmt, self.loaders.bind({"keys": list(keys)}))
        counts = {row[0]: row[1] for row in rows}
        return [counts.get(k, 0) for k in keys]


async def root_page(
    loaders: Loaders, spec: ConnectionSpec, sort: SortKey, args: PageArgs, conditions: list[Any]
) -> tuple[Page, Callable[[], Awaitable[int]]]:
    """A root connection's page, and a function counting all its rows (run only when
    the client asks for totalCount)."""
    table = spec.table
    base = select(table, sort.expression().label("sort_value")).where(*conditions)
    count = select(func.count()).select_from(table).where(*conditions)
    base = loaders.restrict(base, table, spec.scope_column)
    count = loaders.restrict(count, table, spec.scope_column)
    params = loaders.bind({})
    rows = await loaders.db.rows(apply_window(base, sort, table.c.id, args), params)

    async def total() -> int:
        return int(await loaders.db.scalar(count, params))

    return make_page(list(rows), args), total
