"""A query compiled into one SQL statement that builds its answer as JSON in PostgreSQL.

The loaders answer a query with one statement per nesting level, and the walk
(breadth_first.py) then resolves and serializes every field in Python: for the app
screen (one customer, their tariff, a year of costs, ten payments) that is four
statements, each a round trip with its futures, and most of the request's execution
time (bench/README.md, issue 14). PostGraphile and Hasura answer such a query with a
single statement. So do we, for documents whose every field can be compiled:

- The statement is made of the loaders' own statements (the very same scope and
  customer conditions, loaders/visibility.py, and row-level security by the
  transaction's setting, db/request.py): each child's statement becomes a correlated
  subquery, its `= ANY(:keys)` bound to its parent row's column, aggregated with
  `json_agg` in the loader's order; each row a `json_build_array` of the columns its
  fields read and its children's arrays. Parameters are bound, never inlined, and
  renamed per field (two `from`s may differ).
- The answer is finished in Python by the schema itself: each column decoded into the
  value asyncpg would have given (Decimal, date, datetime with zone, enum, UUID), the
  computed fields' own resolvers run on a row of those values (`savings`, global ids),
  every leaf serialized by its GraphQL type. Identical to the walk by construction,
  which the differential tests check (tests/test_compiled.py).
- Anything else goes the walk's way: a field without a compilable source (a value made
  in Python from its rows, a resolver with arguments of its own, an interface), any
  directive, a cursor or filter argument, a page's `edges`/`pageInfo`/`totalCount`, a
  root field other than `node`, middleware. Found while running (a null where the
  schema says non-null, a value a serializer refuses, an id naming nothing), the
  compiled answer is dropped before anything is sent and the walk answers, errors and
  all: never a different answer, at worst the cost of a second read of the snapshot.

Plans are made once per document (its syntax tree is cached by its text, trusted.py)
and runtime type of `node`; the statement once per plan and the loaders' statement
objects it is made of (they differ by viewer kind and page size).
"""

from __future__ import annotations

import datetime
import inspect
import logging
import uuid
from collections.abc import Callable
from decimal import Decimal
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import orjson
from graphql import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    OperationDefinitionNode,
    OperationType,
    is_leaf_type,
)
from graphql.execution.collect_fields import FieldDetails, collect_fields
from graphql.execution.values import get_argument_values
from graphql.language import Visitor, visit
from graphql.pyutils.undefined import Undefined
from sqlalchemy import Boolean as SqlBoolean
from sqlalchemy import (
    Date,
    DateTime,
    Enum,
    Integer,
    Numeric,
    Select,
    String,
    Text,
    bindparam,
    cast,
    func,
    select,
)
from sqlalchemy import Uuid as SqlUuid
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import aggregate_order_by, array
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.visitors import replacement_traverse

from .caches import Bounded
from .fields import DECLARED, PLAN, Plan, Source, _page_args
from .loaders.base import PageLoader, RowLoader

if TYPE_CHECKING:
    from graphql.execution import Executor

log = logging.getLogger(__name__)

DEFINITION = "strawberry-definition"
# Parameters with one value for the whole request (the viewer's): never renamed.
SHARED = frozenset({"scope", "viewer_customer"})
# json_build_array takes at most 100 arguments (PostgreSQL's FUNC_MAX_ARGS).
MOST_VALUES = 100
# Plans and statements kept: documents and page sizes are the clients' choice.
KEPT = 512

_DIALECT = postgresql.asyncpg.dialect()  # type: ignore[attr-defined]


class NotCompiled(Exception):
    """The document (or this shape of it) has a part that is not compiled."""


class Fallback(Exception):
    """This request's compiled answer is not the walk's: the walk answers."""


# --- plans: what a document asks for, made once per document and runtime type ----------

Convert = Callable[[Any], Any] | None


class ObjectPlan:
    """The selection of an object type on rows of a loader's statement: the columns it
    reads (with how each decodes from JSON), and its outputs in response order."""

    __slots__ = ("children", "columns", "converts", "outputs")

    def __init__(self) -> None:
        self.columns: list[str] = []
        self.converts: list[Convert] = []
        self.children: list[ChildPlan] = []
        # (response key, kind, detail): kind "typename" (detail: the name), "column"
        # (detail: (column index, leaf, non-null)), "resolved" (detail: (resolve, leaf,
        # non-null)), "child" (detail: child index).
        self.outputs: list[tuple[str, str, Any]] = []

    def column(self, name: str) -> int:
        if name not in self.columns:
            self.columns.append(name)
        return self.columns.index(name)


class ChildPlan:
    """A loader-backed field: the rows its source finds by the parent row's key
    column, as one object, a list, or (paged) a connection's `nodes`."""

    __slots__ = (
        "details",
        "field",
        "index",
        "item_non_null",
        "many",
        "non_null",
        "object",
        "outputs",
        "source",
    )

    def __init__(
        self, field: Any, details: list[FieldDetails], source: Source, object_plan: ObjectPlan
    ) -> None:
        self.field = field
        self.details = details
        self.source = source
        self.object = object_plan
        # Its place among the plan's fields, depth first (its statement and page size).
        self.index = 0
        self.many = False
        self.non_null = False
        self.item_non_null = False
        # A connection's own selection: (response key, "nodes" | "typename", name).
        self.outputs: list[tuple[str, str, str]] | None = None


class RootPlan:
    """`node(id:)` of one runtime type."""

    __slots__ = ("details", "field", "key", "object", "type_name")

    def __init__(
        self, key: str, field: Any, details: list[FieldDetails], type_name: str, obj: ObjectPlan
    ) -> None:
        self.key = key
        self.field = field
        self.details = details
        self.type_name = type_name
        self.object = obj


class Document:
    """The compiled plans of one operation: its root field and, per runtime type of
    `node`, the plan (None: that type is not compiled)."""

    __slots__ = ("details", "field", "key", "operation", "typename_keys", "types")

    def __init__(self, operation: OperationDefinitionNode) -> None:
        self.operation = operation
        self.types: dict[str, RootPlan | None] = {}
        self.key = ""
        self.field: Any = None
        self.details: list[FieldDetails] = []
        # Root `__typename`s, with where they sit among the root keys.
        self.typename_keys: list[tuple[int, str]] = []


# id(operation) → (its Document, or None: not compiled). The Document holds the
# operation, so its id is not reused while cached.
_DOCUMENTS: Bounded[int, tuple[OperationDefinitionNode, Document | None]] = Bounded(KEPT)


def _has_directive(executor: Executor) -> bool:
    found = False

    class Find(Visitor):
        def enter_directive(self, *_: Any) -> None:
            nonlocal found
            found = True

    visit(executor.operation, Find())
    for fragment in executor.fragments.values():
        definition = getattr(fragment, "definition", fragment)
        visit(definition, Find())
    return found


def document_for(executor: Executor) -> Document | None:
    operation = executor.operation
    cached = _DOCUMENTS.get(id(operation))
    if cached is not None and cached[0] is operation:
        return cached[1]
    try:
        made: Document | None = _document(executor)
    except NotCompiled as reason:
        log.debug("not compiled: %s", reason)
        made = None
    _DOCUMENTS[id(operation)] = (operation, made)
    return made


def _document(executor: Executor) -> Document:
    operation = executor.operation
    if operation.operation is not OperationType.QUERY or operation.directives:
        raise NotCompiled("not a query")
    if _has_directive(executor):
        raise NotCompiled("a directive")
    root = executor.schema.query_type
    assert root is not None
    collected = collect_fields(
        executor.schema,
        executor.fragments,
        executor.variable_values,
        root,
        operation,
        executor.hide_suggestions,
    )
    if collected.new_defer_usages or collected.forbidden_directive_instances:
        raise NotCompiled("defer")
    document = Document(operation)
    for position, (key, details) in enumerate(collected.grouped_field_set.items()):
        name = details[0].node.name.value
        if name == "__typename":
            document.typename_keys.append((position, key))
            continue
        if name != "node" or document.field is not None:
            raise NotCompiled(f"root field {name}")
        document.key = key
        document.field = executor.schema.get_field(root, name)
        document.details = details
    if document.field is None:
        raise NotCompiled("no node")
    return document


def root_plan(executor: Executor, document: Document, type_name: str) -> RootPlan | None:
    if type_name in document.types:
        return document.types[type_name]
    plan: RootPlan | None
    try:
        runtime = executor.schema.get_type(type_name)
        if not isinstance(runtime, GraphQLObjectType):
            raise NotCompiled(f"{type_name} is not an object type")
        grouped = executor.collect_subfields(runtime, document.details).grouped_field_set
        obj = _object(executor, runtime, grouped)
        _number(obj, [1])
        plan = RootPlan(document.key, document.field, document.details, type_name, obj)
    except NotCompiled as reason:
        log.debug("not compiled: %s", reason)
        plan = None
    document.types[type_name] = plan
    return plan


def _number(obj: ObjectPlan, counter: list[int]) -> None:
    for child in obj.children:
        child.index = counter[0]
        counter[0] += 1
        _number(child.object, counter)


def _unwrap(field_type: GraphQLOutputType) -> tuple[bool, Any]:
    if isinstance(field_type, GraphQLNonNull):
        return True, field_type.of_type
    return False, field_type


def _object(
    executor: Executor, object_type: GraphQLObjectType, grouped: dict[str, list[FieldDetails]]
) -> ObjectPlan:
    plan = ObjectPlan()
    for key, details in grouped.items():
        node = details[0].node
        name = node.name.value
        if name == "__typename":
            plan.outputs.append((key, "typename", object_type.name))
            continue
        field = object_type.fields.get(name)
        if field is None:
            raise NotCompiled(f"{object_type.name}.{name}")
        definition = (field.extensions or {}).get(DEFINITION)
        graphql_plan: Plan | None = (field.extensions or {}).get(PLAN)
        if definition is None or graphql_plan is None or definition.extensions:
            raise NotCompiled(f"{object_type.name}.{name}: no plan or extensions")
        non_null, inner = _unwrap(field.type)
        source = graphql_plan.source
        if source is not None:
            plan.outputs.append((key, "child", len(plan.children)))
            plan.children.append(_child(executor, field, details, source, non_null, inner))
            continue
        if field.args or node.arguments or not is_leaf_type(inner):
            raise NotCompiled(f"{object_type.name}.{name}: arguments or not a leaf")
        if definition.base_resolver is None:
            index = plan.column(definition.python_name)
            plan.outputs.append((key, "column", (index, inner, non_null)))
            continue
        declared = (definition.metadata or {}).get(DECLARED)
        resolver = definition.base_resolver
        if (
            declared is None
            or not declared.hand_written
            or declared.prefix is not None
            or resolver.arguments
            or resolver.info_parameter is not None
            or inspect.iscoroutinefunction(resolver.wrapped_func)
            or field.resolve is None
        ):
            raise NotCompiled(f"{object_type.name}.{name}: resolver")
        for column in sorted(declared.columns):
            plan.column(column)
        plan.outputs.append((key, "resolved", (field.resolve, inner, non_null)))
    if len(plan.columns) + len(plan.children) > MOST_VALUES:
        raise NotCompiled("too many values for json_build_array")
    return plan


def _child(
    executor: Executor,
    field: Any,
    details: list[FieldDetails],
    source: Source,
    non_null: bool,
    inner: Any,
) -> ChildPlan:
    loader = source.loader
    if source.each is not None:
        raise NotCompiled("a value made from its rows in Python")
    if source.paged:
        if not (
            issubclass(loader, PageLoader)
            and loader.batch_load_fn is PageLoader.batch_load_fn
            and isinstance(inner, GraphQLObjectType)
        ):
            raise NotCompiled("page loader")
        outputs: list[tuple[str, str, str]] = []
        node_details: list[FieldDetails] = []
        grouped = executor.collect_subfields(inner, details).grouped_field_set
        for key, inner_details in grouped.items():
            name = inner_details[0].node.name.value
            if name == "__typename":
                outputs.append((key, "typename", inner.name))
            elif name == "nodes" and not node_details:
                outputs.append((key, "nodes", name))
                node_details = inner_details
            else:
                raise NotCompiled(f"connection field {name}")
        nodes_non_null, nodes = _unwrap(inner.fields["nodes"].type)
        item_non_null, item = _unwrap(nodes.of_type)
        if not (nodes_non_null and isinstance(item, GraphQLObjectType)):
            raise NotCompiled("connection nodes")
        obj = ObjectPlan()
        if node_details:
            obj = _object(
                executor, item, executor.collect_subfields(item, node_details).grouped_field_set
            )
        child = ChildPlan(field, details, source, obj)
        child.outputs = outputs
        child.non_null = non_null
        child.many = True
        child.item_non_null = item_non_null
        return child
    if not (
        issubclass(loader, RowLoader)
        and loader.batch_load_fn is RowLoader.batch_load_fn
        and loader.arrange is RowLoader.arrange
    ):
        raise NotCompiled(f"loader {loader.__name__}")
    many = isinstance(inner, GraphQLList)
    if many != loader.many:
        raise NotCompiled("list and loader disagree")
    item_non_null = False
    if many:
        item_non_null, inner = _unwrap(inner.of_type)
    if not isinstance(inner, GraphQLObjectType):
        raise NotCompiled("not an object")
    grouped = executor.collect_subfields(inner, details).grouped_field_set
    child = ChildPlan(field, details, source, _object(executor, inner, grouped))
    child.many = many
    child.non_null = non_null
    child.item_non_null = item_non_null
    return child


# --- per request: the loaders' statements and parameters --------------------------------


class Run:
    """One request's pieces: each field's statement (in plan order) and parameters,
    and each page's size."""

    __slots__ = ("limits", "params", "statements")

    def __init__(self) -> None:
        self.statements: list[Select[Any]] = []
        self.params: dict[str, Any] = {}
        self.limits: list[tuple[int, bool]] = []


def _bind(run: Run, index: int, params: dict[str, Any]) -> None:
    for name, value in params.items():
        if name in SHARED:
            run.params[name] = value
        else:
            run.params[f"f{index}_{name}"] = value


def _arguments(executor: Executor, field: Any, details: list[FieldDetails]) -> dict[str, Any]:
    node = details[0].node
    if not (field.args or node.arguments):
        return {}
    return get_argument_values(
        field,
        node,
        executor.variable_values,
        details[0].fragment_variable_values,
        executor.hide_suggestions,
    )


def _prepare_children(executor: Executor, obj: ObjectPlan, run: Run, shim: Any) -> None:
    loaders = executor.context_value.loaders
    for child in obj.children:
        index = child.index
        assert index == len(run.statements)
        args = _arguments(executor, child.field, child.details)
        source = child.source
        if source.paged:
            pages: Any = source.loader
            if any(args.get(name) is not None for name in ("after", "before", "last")):
                raise Fallback("a cursor")
            if args.get("filter") is not None or args.get("orderBy") is not None:
                raise Fallback("a filter or order")
            sort = pages.spec.sort(None)
            try:
                page_args = _page_args(shim, sort, args.get("first"), None, None, None)
            except Exception as error:  # the walk reports it
                raise Fallback("page arguments") from error
            loader = loaders.get(pages, None, page_args, None)
            statement = loader.statement()
            if statement is None:
                raise Fallback("no page statement")
            run.statements.append(statement)
            run.limits.append((page_args.limit, sort.descending))
            _bind(run, index, loaders.bind({}))
        else:
            made = source.params(shim, args) if source.params is not None else ()
            row_loader: Any = loaders.get(source.loader, *made)
            run.statements.append(row_loader.full_statement())
            run.limits.append((0, False))
            params = row_loader.bind([])
            params.pop("keys", None)
            _bind(run, index, params)
        _prepare_children(executor, child.object, run, shim)


# --- the statement --------------------------------------------------------------------

# (plan's id, the loaders' statements' ids) → (plan, statements, the statement).
_STATEMENTS: Bounded[tuple[Any, ...], tuple[Any, list[Any], Select[Any]]] = Bounded(KEPT)


def _renamed(statement: Select[Any], index: int, keys: Any) -> Select[Any]:
    """The loader's statement with its `keys` replaced (by the parent row's key, or the
    root's own parameter) and its named parameters made this field's own."""

    def replace(element: Any) -> Any:
        if isinstance(element, BindParameter) and not element.unique:
            if element.key == "keys" and keys is not None:
                return keys
            if element.key not in SHARED:
                return bindparam(f"f{index}_{element.key}", type_=element.type)
        return None

    return replacement_traverse(statement, {}, replace)  # type: ignore[no-any-return]


def _value(column: Any) -> tuple[Any, Convert]:
    """A column as json_build_array gets it, and how its JSON decodes back into what
    asyncpg would have given."""
    kind = column.type
    if isinstance(kind, Enum):
        processor = kind._cached_result_processor(_DIALECT, None)
        return column, processor
    if isinstance(kind, Numeric) and not isinstance(kind, Integer):
        if not kind.asdecimal:
            raise NotCompiled("float column")
        return cast(column, Text), Decimal
    if isinstance(kind, DateTime):
        if kind.timezone:
            text = func.to_char(func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24:MI:SS.US')
            return text, _utc_datetime
        return func.to_char(column, 'YYYY-MM-DD"T"HH24:MI:SS.US'), datetime.datetime.fromisoformat
    if isinstance(kind, Date):
        return column, datetime.date.fromisoformat
    if isinstance(kind, SqlUuid):
        return column, uuid.UUID if getattr(kind, "as_uuid", True) else None
    if isinstance(kind, Integer | String | SqlBoolean):
        return column, None
    raise NotCompiled(f"column type {kind!r}")


def _utc_datetime(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC)


def _row_json(alias: Any, obj: ObjectPlan, statements: list[Any]) -> Any:
    values: list[Any] = []
    converts: list[Convert] = []
    for name in obj.columns:
        if name not in alias.c:
            raise NotCompiled(f"no column {name}")
        value, convert = _value(alias.c[name])
        values.append(value)
        converts.append(convert)
    obj.converts = converts
    for child in obj.children:
        values.append(_child_json(alias, child, statements))
    return func.json_build_array(*values)


def _child_json(parent: Any, child: ChildPlan, statements: list[Any]) -> Any:
    index = child.index
    source = child.source
    if source.key not in parent.c:
        raise NotCompiled(f"no key column {source.key}")
    keys = array([parent.c[source.key]])
    inner = _renamed(statements[index], index, keys).correlate(parent)
    sub = inner.subquery(f"c{index}")
    row = _row_json(sub, child.object, statements)
    if source.paged:
        pages: Any = source.loader
        descending = pages.spec.sort(None).descending
        order = [sub.c.sort_value, sub.c.id]
        order = [o.desc() if descending else o.asc() for o in order]
    else:
        order = []
        for spec in source.loader.order_by:
            name, _, direction = spec.partition(" ")
            if name not in sub.c:
                raise NotCompiled(f"no order column {name}")
            order.append(sub.c[name].desc() if direction.lower() == "desc" else sub.c[name].asc())
    aggregated = func.json_agg(aggregate_order_by(row, *order) if order else row)
    return select(aggregated).select_from(sub).scalar_subquery()


def _statement(plan: RootPlan, run: Run) -> Select[Any]:
    key = (id(plan), *map(id, run.statements))
    cached = _STATEMENTS.get(key)
    if (
        cached is not None
        and cached[0] is plan
        and all(a is b for a, b in zip(cached[1], run.statements, strict=True))
    ):
        return cached[2]
    root = _renamed(run.statements[0], 0, None).subquery("c0")
    for_root = _row_json(root, plan.object, run.statements)
    statement = select(cast(for_root, Text).label("data")).select_from(root)
    _STATEMENTS[key] = (plan, list(run.statements), statement)
    return statement


# --- running, and finishing the answer in Python ------------------------------------------


def _serialize(leaf: Any, value: Any) -> Any:
    if isinstance(leaf, GraphQLScalarType | GraphQLEnumType):
        out = leaf.serialize(value)
        if out is None or out is Undefined:
            raise Fallback("serializer")
        return out
    raise Fallback("not a leaf")


def _finish_object(obj: ObjectPlan, values: list[Any], run: Run) -> Any:
    columns = len(obj.columns)
    decoded = values[:columns]
    for index, convert in enumerate(obj.converts):
        if convert is not None and decoded[index] is not None:
            decoded[index] = convert(decoded[index])
    row = SimpleNamespace(**dict(zip(obj.columns, decoded, strict=True)))
    children = values[columns:]
    finished_children: list[Any] = []
    for position, child in enumerate(obj.children):
        finished_children.append(_finish_child(child, children[position], run))
    out: dict[str, Any] = {}
    for key, kind, detail in obj.outputs:
        if kind == "typename":
            out[key] = detail
        elif kind == "child":
            out[key] = finished_children[detail]
        else:
            if kind == "column":
                index, leaf, non_null = detail
                value = decoded[index]
            else:
                resolve, leaf, non_null = detail
                value = resolve(row, None)
            if value is None:
                if non_null:
                    raise Fallback("null in a non-null field")
                out[key] = None
            else:
                out[key] = _serialize(leaf, value)
    return out


def _finish_child(child: ChildPlan, rows: Any, run: Run) -> Any:
    rows = rows or []
    limit, _ = run.limits[child.index]
    if child.source.paged:
        rows = rows[:limit]
    if not child.many:
        if not rows:
            if child.non_null:
                raise Fallback("null in a non-null field")
            return None
        rows = rows[-1:]  # as RowLoader.arrange: the last row of a key
    items = [_finish_object(child.object, row, run) for row in rows]
    if child.outputs is not None:
        connection: dict[str, Any] = {}
        for key, kind, name in child.outputs:
            connection[key] = name if kind == "typename" else items
        return connection
    return items if child.many else items[0]


async def execute(executor: Executor, document: Document) -> dict[str, Any]:
    """The operation's data from one statement, or Fallback."""
    from .types.node import NODE_SOURCES, from_global_id

    context = executor.context_value
    args = _arguments(executor, document.field, document.details)
    decoded = from_global_id(str(args.get("id", "")))
    if decoded is None:
        raise Fallback("not an id")
    type_name, key = decoded
    node_source = NODE_SOURCES.get(type_name)
    if node_source is None or node_source.loader is None:
        raise Fallback("no node loader")
    try:
        key_uuid = uuid.UUID(key)
    except ValueError as error:
        raise Fallback("not a uuid") from error
    plan = root_plan(executor, document, type_name)
    if plan is None:
        raise Fallback("type not compiled")
    loaders = context.loaders
    root_loader: Any = loaders.get(node_source.loader)
    run = Run()
    run.statements.append(root_loader.full_statement())
    run.limits.append((0, False))
    _bind(run, 0, root_loader.bind([key_uuid]))
    shim = SimpleNamespace(context=context)
    _prepare_children(executor, plan.object, run, shim)
    try:
        statement = _statement(plan, run)
    except NotCompiled as reason:
        log.debug("not compiled: %s", reason)
        document.types[type_name] = None
        raise Fallback(str(reason)) from reason
    rows = await context.db.prepared_rows(statement, run.params)
    value: Any = None
    if rows:
        value = _finish_object(plan.object, orjson.loads(rows[0].data), run)
    data: dict[str, Any] = {}
    keys = dict(document.typename_keys)
    total = len(keys) + 1
    for position in range(total):
        if position in keys:
            data[keys[position]] = "Query"
        else:
            data[document.key] = value
    return data
