"""Fields of row types, each declared once: the one place to add a loader-backed field.

A field of a type served from rows (types/node.py's RowType) is used three ways: its
per-row resolver (graphql-core's walk), its level resolver (the breadth-first walk,
breadth_first.py, which resolves a field for every row of a level in one call), and the
columns it reads off its row (so that the loader fetching the row fetches those and no
others: decoding columns nobody asked for was the dearest step of a dashboard request,
bench/README.md). The factories here build all three from one declaration:

- `relation`: the row (or rows) a loader finds by a column of this row (a single row
  found by its primary key is joined into the parent's statement when it can be);
- `ranged`: a list made with a `from`/`to` range (`RangeLoader`s);
- `on_day`: the row a loader finds for a day argument (default today, UTC);
- `loaded`: the general case: a loader made with parameters from the arguments or the
  request, and a function turning each row's answer into the field's value;
- `carried`: a to-one row the parent's statement may carry under a column prefix;
- `paged`: a Relay connection over this row's children (one statement per level);
- `computed`: a value computed from the row's own columns, which it names.

A loader-backed field reads only its key column, by construction. A computed field
names the columns it reads; `execution.install` refuses a schema where a resolver of a
row type declares nothing, and in tests runs each such resolver on a row that raises
on any other column (`DeclaredRow`, tests/test_breadth_first.py).

No `from __future__ import annotations` here: the factories build resolvers whose
annotations Strawberry must read as real objects.
"""

import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from operator import attrgetter
from typing import Annotated, Any

import strawberry
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    GraphQLResolveInfo,
    InlineFragmentNode,
    SelectionSetNode,
    get_named_type,
)

from .context import Context
from .loaders.base import (
    BaseLoader,
    CountLoader,
    Joined,
    PageLoader,
    RowLoader,
    Where,
    joinable,
    root_page,
)
from .pagination import PageArgs, SortKey, page_args
from .rows import Shape, part_shape
from .types.connection import After, Before, Connection, First, FromDay, Last, ToDay, connection

Info = strawberry.Info[Context, None]

# Strawberry field metadata: a field's declaration (`declare`).
DECLARED = "flows.declared"
# graphql-core field extensions: the field's Plan (set by execution.install).
PLAN = "flows.plan"
# graphql-core object type extensions: True for a RowType (its objects are always of it).
ROW_TYPE = "flows.row_type"

# Column names, and the to-one children to join (loaders/base.py's Joined); None: every
# column.
Columns = frozenset[Any] | None
# (the level's source rows, the field's info, its arguments by GraphQL name) → values,
# or an awaitable of them.
LevelResolve = Callable[
    [list[Any], GraphQLResolveInfo, dict[str, Any]], list[Any] | Awaitable[list[Any]]
]
# A field's argument: its Python name, its GraphQL name, its annotation.
Argument = tuple[str, str, Any]
# A to-one relation its parent's statement may join: the prefix of its columns there,
# its loader, the parent's column it is found by.
Join = tuple[str, type[RowLoader], str]


class Source:
    """Where a factory's field finds its rows, for compiled.py (one SQL statement per
    query): `loader` by the `key` column of this row, made with `params(info, args)`
    (`loaded`), or for `paged`, the page loader (`pages`) by `key`, `paged` set (its
    filter and order are compiled only when not given); for `carried`, the `prefix`
    of its columns in the parent row. For a root field, `key` names the argument the
    loader finds its row by. A field with `each` (a value made from the rows in
    Python) is not compiled."""

    __slots__ = ("each", "key", "loader", "paged", "params", "prefix")

    def __init__(
        self,
        loader: type[BaseLoader],
        key: str,
        params: Callable[[Any, dict[str, Any]], tuple[Any, ...]] | None = None,
        each: Callable[..., Any] | None = None,
        paged: bool = False,
        prefix: str | None = None,
    ) -> None:
        self.loader = loader
        self.key = key
        self.params = params
        self.each = each
        self.paged = paged
        self.prefix = prefix


class Formula:
    """A value that is `rule` of a row's `columns`, in order: `rule(row.a, row.b)`.

    The one definition of a field's value wherever it is computed: the walk applies
    the rule to each row's values (and to a whole level's at once), and a compiled
    statement (compiled.py) to the columns themselves, in SQL — only for a rule
    PostgreSQL computes exactly as Decimal does (compiled.EXACT_RULES), and only where
    the finishing can tell the two agree (compiled.py: at most the context's precision
    in digits)."""

    __slots__ = ("columns", "rule")

    def __init__(self, rule: Callable[..., Any], columns: Sequence[str]) -> None:
        self.rule = rule
        self.columns = tuple(columns)

    def of_row(self, row: Any) -> Any:
        rule = self.rule
        return rule(*[getattr(row, column) for column in self.columns])

    def of_level(self, sources: list[Any], info: Any, args: dict[str, Any]) -> list[Any]:
        return list(map(self.rule, *(list(map(attrgetter(c), sources)) for c in self.columns)))


class Declared:
    """What a field declares: the `columns` its resolver reads off its row (with
    `prefix`, also the columns its own object selection reads, under that prefix: the
    costs a usage row carries as `costs_*`), and how to resolve it a level at a time.
    `hand_written`: its resolver is a type's own code (`computed`), not a factory's
    (which reads only the key column it was given)."""

    __slots__ = ("columns", "formula", "hand_written", "join", "level", "prefix", "source")

    def __init__(
        self,
        columns: Iterable[str],
        prefix: str | None = None,
        level: LevelResolve | None = None,
        hand_written: bool = True,
        join: Join | None = None,
        source: Source | None = None,
        formula: Formula | None = None,
    ) -> None:
        self.columns = frozenset(columns)
        self.prefix = prefix
        self.level = level
        self.hand_written = hand_written
        self.join = join
        self.source = source
        self.formula = formula


def declare(
    *columns: str,
    prefix: str | None = None,
    level: LevelResolve | None = None,
    hand_written: bool = True,
    join: Join | None = None,
    source: Source | None = None,
    formula: Formula | None = None,
) -> dict[str, Any]:
    """Field metadata: the declaration of a resolver's columns (and level resolver)."""
    return {DECLARED: Declared(columns, prefix, level, hand_written, join, source, formula)}


def formula(rule: Callable[..., Any], *columns: str, returns: Any, description: str) -> Any:
    """A field whose value is `rule` of the row's `columns` (Formula): what `computed`
    gives for a resolver that is one operation on its columns, said once so that SQL
    can compute it too."""
    made = Formula(rule, columns)

    def resolve(root: Any) -> Any:
        return made.of_row(root)

    resolve.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("root", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Any)],
        return_annotation=returns,
    )
    resolve.__annotations__ = {"root": Any, "return": returns}
    return strawberry.field(
        resolver=resolve,
        description=description,
        metadata=declare(*columns, level=made.of_level, formula=made),
    )


class Plan:
    """What the fast paths know of a GraphQL field (in its `extensions`, under PLAN):
    the columns it reads (None: every column), the prefix of those its selection reads,
    its level resolver, for a plain column its getter, for a to-one relation how
    its parent's statement may join it, and where a factory's field finds its rows
    (`source`, compiled.py)."""

    __slots__ = ("attribute", "columns", "join", "level", "prefix", "source")

    def __init__(
        self,
        columns: Columns,
        prefix: str | None = None,
        level: LevelResolve | None = None,
        attribute: Callable[[Any], Any] | None = None,
        join: Join | None = None,
        source: Source | None = None,
    ) -> None:
        self.columns = columns
        self.prefix = prefix
        self.level = level
        self.attribute = attribute
        self.join = join
        self.source = source


class UndeclaredColumn(Exception):
    """A resolver read a column it did not declare (not an AttributeError: a
    `getattr(row, name, default)` must not hide it)."""


class DeclaredRow:
    """A row as a resolver may read it: the declared columns (and those under the
    declared prefix) and `_fields`; any other column raises UndeclaredColumn. Used in
    place of the row in tests (execution.install(strict_rows=True))."""

    __slots__ = ("_allowed", "_prefix", "_row", "_where")

    def __init__(self, row: Any, declared: Declared, where: str) -> None:
        self._row = row
        self._allowed = declared.columns
        self._prefix = declared.prefix
        self._where = where

    def _allows(self, name: str) -> bool:
        prefix = self._prefix
        return name in self._allowed or (prefix is not None and name.startswith(prefix))

    def __getattr__(self, name: str) -> Any:
        if name == "_fields" or self._allows(name):
            return getattr(self._row, name)
        raise UndeclaredColumn(f"{self._where} reads `{name}`, which it does not declare")

    def __getitem__(self, index: int) -> Any:
        name = self._row._fields[index]
        if not self._allows(name):
            raise UndeclaredColumn(f"{self._where} reads `{name}`, which it does not declare")
        return self._row[index]


# --- projection: the columns a selection reads ------------------------------------------


def projection(info: Any) -> Columns:
    """The columns the selection of the field being resolved reads from the rows it
    returns (None: all). Taken generously: every fragment counts whatever its type
    condition and `@skip`/`@include` are ignored, so it is never smaller than what
    execution will read. Cached per request: the same field resolves for every parent."""
    raw: GraphQLResolveInfo = getattr(info, "_raw_info", info)
    cache: dict[Any, Columns] = raw.context.loaders.projections
    named = get_named_type(raw.return_type)
    key = (named.name, *map(id, raw.field_nodes))
    if key in cache:
        return cache[key]
    result: Columns = None
    if isinstance(named, GraphQLObjectType):
        rows: GraphQLObjectType | None = named
        sets = [node.selection_set for node in raw.field_nodes if node.selection_set]
        if named.name.endswith("Connection") and "edges" in named.fields:
            rows, sets = _connection_nodes(named, sets, raw.fragments)
        if rows is not None:
            result = _columns(rows, sets, raw.fragments)
    cache[key] = result
    return result


def _connection_nodes(
    connection: GraphQLObjectType,
    sets: list[SelectionSetNode],
    fragments: dict[str, FragmentDefinitionNode],
) -> tuple[GraphQLObjectType | None, list[SelectionSetNode]]:
    """A connection's rows are selected under `nodes` and `edges { node }`."""
    node_type = get_named_type(connection.fields["nodes"].type)
    found: list[SelectionSetNode] = []
    for field in _selected(sets, fragments):
        if field.selection_set is None:
            continue
        if field.name.value == "nodes":
            found.append(field.selection_set)
        elif field.name.value == "edges":
            for inner in _selected([field.selection_set], fragments):
                if inner.name.value == "node" and inner.selection_set is not None:
                    found.append(inner.selection_set)
    if not isinstance(node_type, GraphQLObjectType):
        return None, []
    return node_type, found


def _columns(
    object_type: GraphQLObjectType,
    sets: list[SelectionSetNode],
    fragments: dict[str, FragmentDefinitionNode],
) -> Columns:
    wanted: set[Any] = set()
    # The to-one children to join, by prefix: their selections (aliases merged).
    joins: dict[str, tuple[Join, GraphQLObjectType, list[SelectionSetNode]]] = {}
    for node in _selected(sets, fragments):
        graphql_field = object_type.fields.get(node.name.value)
        if graphql_field is None:  # __typename, or a fragment on another type
            continue
        plan: Plan | None = (graphql_field.extensions or {}).get(PLAN)
        if plan is None or plan.columns is None:
            return None
        wanted |= plan.columns
        if plan.prefix is None and plan.join is None:
            continue
        inner_type = get_named_type(graphql_field.type)
        if plan.prefix is not None:
            if not isinstance(inner_type, GraphQLObjectType) or node.selection_set is None:
                return None
            inner = _columns(inner_type, [node.selection_set], fragments)
            if inner is None:
                return None
            wanted |= {plan.prefix + column for column in inner if isinstance(column, str)}
        joined = plan.join
        if joined and node.selection_set and isinstance(inner_type, GraphQLObjectType):
            found = joins.setdefault(joined[0], (joined, inner_type, []))
            if found[0] == joined:  # else another relation took the prefix
                found[2].append(node.selection_set)
    for (prefix, loader, parent_column), inner_type, inner_sets in joins.values():
        inner = _columns(inner_type, inner_sets, fragments)
        if inner is not None:
            wanted.add(Joined(prefix, loader, parent_column, inner))
    return frozenset(wanted)


def _selected(
    sets: Iterable[SelectionSetNode], fragments: dict[str, FragmentDefinitionNode]
) -> Iterable[FieldNode]:
    """Every field of the selection sets, through all their fragments."""
    pending = list(sets)
    seen: set[str] = set()
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                yield selection
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name not in seen and name in fragments:
                    seen.add(name)
                    pending.append(fragments[name].selection_set)


# --- the factories ------------------------------------------------------------------------


def _with_signature(
    resolve: Callable[..., Any], arguments: Sequence[Argument], returns: Any
) -> Callable[..., Any]:
    """`resolve(root, info, **arguments)` as Strawberry must see it: its arguments
    named, annotated and defaulting to null, and its return type."""
    parameters = [
        inspect.Parameter("root", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Any),
        inspect.Parameter("info", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Info),
        *(
            inspect.Parameter(python, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=a)
            for python, _, a in arguments
        ),
    ]
    resolve.__signature__ = inspect.Signature(parameters, return_annotation=returns)  # type: ignore[attr-defined]
    resolve.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": returns}
    return resolve


def loaded(
    returns: Any,
    loader: type[BaseLoader],
    description: str,
    *,
    key: str = "id",
    arguments: Sequence[Argument] = (),
    params: Callable[[Any, dict[str, Any]], tuple[Any, ...]] | None = None,
    each: Callable[[Any, Any, dict[str, Any]], Any] | None = None,
    project: bool = True,
) -> Any:
    """A field answered by `loader` from the `key` column of its row (null when that
    column is null). The loader is made with `params(info, args)` (arguments by GraphQL
    name) and, with `project`, fetches the columns the field's selection reads; `each`
    turns a row's answer into the field's value (identity by default)."""
    get_key = attrgetter(key)
    names = [(python, graphql) for python, graphql, _ in arguments]

    def made(info: Any, args: dict[str, Any]) -> BaseLoader:
        made_with = params(info, args) if params is not None else ()
        columns = projection(info) if project else None
        return info.context.loaders.get(loader, *made_with, columns=columns)

    def by_graphql_name(kwargs: dict[str, Any]) -> dict[str, Any]:
        return {graphql: kwargs.get(python) for python, graphql in names}

    def resolve_row(root: Any, info: Any, **kwargs: Any) -> Any:
        # Synchronous, handing graphql-core the loader's future: no coroutine per row.
        value = get_key(root)
        if value is None:
            return None
        return made(info, by_graphql_name(kwargs)).load(value)

    async def resolve_value(root: Any, info: Any, **kwargs: Any) -> Any:
        args = by_graphql_name(kwargs)
        value = get_key(root)
        found = None if value is None else await made(info, args).load(value)
        assert each is not None
        return each(found, info, args)

    resolve = resolve_row if each is None else resolve_value

    async def whole(sources: list[Any], info: Any, args: dict[str, Any]) -> list[Any]:
        found = await made(info, args).load_level(list(map(get_key, sources)))
        if each is None:
            return found
        return [each(value, info, args) for value in found]

    return strawberry.field(
        resolver=_with_signature(resolve, arguments, returns),
        description=description,
        metadata=declare(
            key, level=whole, hand_written=False, source=Source(loader, key, params, each)
        ),
    )


def relation(returns: Any, loader: type[BaseLoader], key: str, description: str) -> Any:
    """The row (or list of rows) `loader` finds by the `key` column of this row. A
    single row found by its primary key is read in the parent's statement when that
    can join it (loaders/base.py's Joined: account → property → supply meter in one
    statement), its columns under `<key without _id>__`; else loaded on its own."""
    if not joinable(loader):
        return loaded(returns, loader, description, key=key)
    assert issubclass(loader, RowLoader)  # joinable() checked it
    prefix = key.removesuffix("_id") + "__"
    resolve, whole = _carried(loader, prefix, prefix + loader.key, key)
    return strawberry.field(
        resolver=_with_signature(resolve, (), returns),
        description=description,
        metadata=declare(
            key,
            level=whole,
            hand_written=False,
            join=(prefix, loader, key),
            source=Source(loader, key),
        ),
    )


RANGE: Sequence[Argument] = (("from_", "from", FromDay), ("to", "to", ToDay))


def in_range(info: Any, args: dict[str, Any]) -> tuple[Any, ...]:
    return args.get("from"), args.get("to")


def ranged(returns: Any, loader: type[BaseLoader], description: str, key: str = "id") -> Any:
    """`field(from:, to:)`: the rows `loader` (a RangeLoader) finds in the range."""
    return loaded(returns, loader, description, key=key, arguments=RANGE, params=in_range)


OnDay = Annotated[date | None, strawberry.argument(description="The day.")]


def utc_today() -> date:
    return datetime.now(UTC).date()


def _day(info: Any, args: dict[str, Any]) -> tuple[Any, ...]:
    return (args.get("on") or utc_today(),)


def on_day(returns: Any, loader: type[BaseLoader], description: str, key: str = "id") -> Any:
    """`field(on:)`: the row `loader` (made with the day) finds for this row on a day
    (default today, UTC)."""
    arguments = (("on", "on", OnDay),)
    return loaded(returns, loader, description, key=key, arguments=arguments, params=_day)


def _carried(
    loader: type[BaseLoader], prefix: str, marker: str, key: str
) -> tuple[Callable[..., Any], LevelResolve]:
    """The per-row and level resolvers of a to-one row its parent's row may carry as
    columns `prefix…` (null when `marker` is null); rows without them load it by their
    `key` column (null key: null)."""
    get_key = attrgetter(key)

    def may_carry(kind: type) -> bool:
        fields = getattr(kind, "_fields", None)
        return not isinstance(fields, tuple) or marker in fields

    def resolve(root: Any, info: Any) -> Any:
        fields = getattr(root, "_fields", ())
        if marker in fields:
            pick, make = part_shape(fields, prefix)
            return make(pick(root)) if getattr(root, marker) is not None else None
        value = get_key(root)
        if value is None:
            return None
        return info.context.loaders.get(loader, columns=projection(info)).load(value)

    async def whole(sources: list[Any], info: Any, args: dict[str, Any]) -> list[Any]:
        # Rows of rows.py know their columns by their class: when none of the level's
        # classes carries the child, the whole level goes to the loader at once.
        if not any(map(may_carry, set(map(type, sources)))):
            made = info.context.loaders.get(loader, columns=projection(info))
            return await made.load_level(list(map(get_key, sources)))
        out: list[Any] = []
        fetch: list[int] = []
        # The rows of a level come from one statement: one shape, worked out once
        # (each kept with its `_fields`, so that an id is not reused while cached).
        shapes: dict[int, tuple[tuple[str, ...], Shape | None]] = {}
        for position, row in enumerate(sources):
            fields = getattr(row, "_fields", ())
            cached = shapes.get(id(fields))
            if cached is None:
                shape = part_shape(fields, prefix) if marker in fields else None
                shapes[id(fields)] = cached = (fields, shape)
            shape = cached[1]
            if shape is None:
                out.append(None)
                fetch.append(position)
            elif getattr(row, marker) is None:
                out.append(None)
            else:
                pick, make = shape
                out.append(make(pick(row)))
        if fetch:
            made = info.context.loaders.get(loader, columns=projection(info))
            fetched = await made.load_level([get_key(sources[p]) for p in fetch])
            for position, found in zip(fetch, fetched, strict=True):
                out[position] = found
        return out

    return resolve, whole


def carried(
    returns: Any, loader: type[BaseLoader], prefix: str, description: str, key: str = "id"
) -> Any:
    """A to-one row that the parent row may carry as columns `prefix…` (null when its
    `prefix`id is null); rows fetched without them load it by their `key` column
    (`loader`). The usage rows of Meter.monthlyUsage carry their costs."""
    marker = prefix + "id"
    resolve, whole = _carried(loader, prefix, marker, key)
    return strawberry.field(
        resolver=_with_signature(resolve, (), returns),
        description=description,
        metadata=declare(
            key,
            marker,
            prefix=prefix,
            level=whole,
            hand_written=False,
            source=Source(loader, key, prefix=prefix),
        ),
    )


def computed(
    *columns: str,
    description: str,
    prefix: str | None = None,
    level: LevelResolve | None = None,
) -> Callable[[Callable[..., Any]], Any]:
    """A field computed from the row's own `columns` (its resolver reads no other),
    with optionally a level resolver giving the same values for a whole level."""

    def make(resolver: Callable[..., Any]) -> Any:
        return strawberry.field(
            resolver=resolver,
            description=description,
            metadata=declare(*columns, prefix=prefix, level=level),
        )

    return make


def filter_key(filter: Any) -> tuple[tuple[str, Any], ...] | None:
    """A filter input's values, hashable (loaders are kept per filter)."""
    if filter is None:
        return None
    return tuple(sorted((k, v) for k, v in vars(filter).items() if v is not None))


def _page_args(
    info: Any,
    sort: SortKey,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> PageArgs:
    settings = info.context.settings
    return page_args(
        sort,
        first=first,
        after=after,
        last=last,
        before=before,
        default_size=settings.default_page_size,
        max_size=settings.max_page_size,
    )


def paged(
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
    """A connection paging over the children of the row it sits on (`parent_key` of
    the row = `pages.parent` of the children), batched across sibling rows. With
    `filter_type` (and `conditions` turning it into SQL) it takes `filter:`, with
    `order_type` (an enum of the spec's sort keys) `orderBy:`, as the root lists do."""

    async def resolve(
        root: Any,
        info: Info,
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
        sort = pages.spec.sort(order)
        args = _page_args(info, sort, first, after, last, before)
        parent = getattr(root, parent_key)
        loaders = info.context.loaders
        page = await loaders.get(pages, order, args, where, columns=projection(info)).load(parent)

        async def count() -> int:
            return await loaders.get(counts, where).load(parent)

        return connection(page, sort, count)

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
    return strawberry.field(
        resolver=resolve,
        description=description,
        metadata=declare(
            parent_key,
            hand_written=False,
            source=Source(pages, parent_key, paged=True),
        ),
    )


async def root_connection(
    info: Info,
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
    (plus one COUNT when totalCount is asked for; loaders/base.py's root_page)."""
    sort = spec.sort(order)
    args = _page_args(info, sort, first, after, last, before)
    page, count = await root_page(info.context.loaders, spec, sort, args, conditions)
    return connection(page, sort, count)
