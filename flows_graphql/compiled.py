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
  computed fields' own resolvers run on a row of those values (global ids), every leaf
  serialized by its GraphQL type. Identical to the walk by construction, which the
  differential tests check (tests/test_compiled.py). A formula (fields.Formula:
  `savings`, a difference of two numerics) is computed in the statement, and its text
  taken only where Decimal would give the same (FORMULA); else the walk answers.
- The page sizes are written into the statement and the root found by one key, so
  that PostgreSQL plans it once (a generic plan) rather than for each request (_renamed).
- Anything else goes the walk's way: a field without a compilable source (a value made
  in Python from its rows, a resolver with arguments of its own, an interface), any
  directive, a cursor or filter argument, a page's `edges`/`pageInfo`/`totalCount`, a
  root field other than `node` and a lookup by an argument (`esco(code:)`), middleware.
  Found while running (a null where the schema says non-null, a value a serializer
  refuses, an id naming nothing), the compiled answer is dropped before anything is
  sent and the walk answers, errors and all: never a different answer, at worst the
  cost of a second read of the snapshot.

Plans are made once per document (its syntax tree is cached by its text, trusted.py)
and runtime type of `node`; the statement once per plan and the loaders' statement
objects it is made of (they differ by viewer kind and page size).
"""

from __future__ import annotations

import datetime
import decimal
import inspect
import logging
import operator
import uuid
from collections.abc import Callable
from decimal import Decimal
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
    case,
    cast,
    func,
    literal_column,
    null,
    select,
)
from sqlalchemy import Uuid as SqlUuid
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import aggregate_order_by, array
from sqlalchemy.sql.elements import BindParameter, ColumnClause
from sqlalchemy.sql.selectable import _OffsetLimitParam
from sqlalchemy.sql.visitors import replacement_traverse

from .breadth_first import ALWAYS_SERIALIZE
from .caches import Bounded
from .fields import DECLARED, PLAN, Formula, Plan, Source, _page_args
from .loaders.base import PageLoader, RowLoader, joinable
from .rows import row_shape

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

# The rules of formulas (fields.Formula) PostgreSQL computes exactly, as Decimal does
# while the exact value has at most the context's precision in digits: a sum or a
# difference of numerics has the larger scale of the two in both, and no rounding.
EXACT_RULES = frozenset({operator.add, operator.sub})
# The precision the finishing checks a formula's text against (at most this many
# characters: digits, sign and point), the Decimal context's default: a request
# running under less is the walk's.
PRECISION = 28

_DIALECT = postgresql.asyncpg.dialect()  # type: ignore[no-untyped-call]
_UTC: Any = literal_column("'UTC'")
_ISO: Any = literal_column("'YYYY-MM-DD\"T\"HH24:MI:SS.US'")


class NotCompiled(Exception):
    """The document (or this shape of it) has a part that is not compiled."""


class Fallback(Exception):
    """This request's compiled answer is not the walk's: the walk answers."""


# --- plans: what a document asks for, made once per document and runtime type ----------

Convert = Callable[[Any], Any] | None


class ObjectPlan:
    """The selection of an object type on rows of a loader's statement: the columns it
    reads (with how each decodes from JSON, known once the statement is made), its
    children, and its outputs in response order; `finish` turns one row's JSON array
    into the object (made with the statement)."""

    __slots__ = ("children", "columns", "converts", "finish", "outputs", "types")

    def __init__(self) -> None:
        # A column's name, or a formula computed from columns in SQL.
        self.columns: list[str | Formula] = []
        self.converts: list[Convert] = []
        self.types: list[Any] = []
        self.children: list[ChildPlan] = []
        # (response key, kind, detail): kind "typename" (detail: the name), "column"
        # and "formula" (detail: (column index, leaf, non-null)), "resolved" (detail:
        # (resolve, leaf, non-null)), "child" (detail: child index).
        self.outputs: list[tuple[str, str, Any]] = []
        self.finish: Callable[[list[Any], Run], dict[str, Any]] | None = None

    def column(self, name: str | Formula) -> int:
        if name not in self.columns:
            self.columns.append(name)
        return self.columns.index(name)


class ChildPlan:
    """A loader-backed field: the rows its source finds by the parent row's key
    column, as one object, a list, or (paged) a connection's `nodes`; or (carried) the
    object its parent row carries under a column prefix."""

    __slots__ = (
        "details",
        "field",
        "index",
        "many",
        "non_null",
        "object",
        "outputs",
        "single",
        "source",
    )

    def __init__(
        self, field: Any, details: list[FieldDetails], source: Source, object_plan: ObjectPlan
    ) -> None:
        self.field = field
        self.details = details
        self.source = source
        self.object = object_plan
        # Its place among the plan's statements, depth first (0: the root's); carried
        # objects have none.
        self.index = 0
        self.many = False
        self.non_null = False
        # Found by its table's primary key: at most one row, no aggregate needed.
        self.single = False
        # A connection's own selection: (response key, "nodes" | "typename", name).
        self.outputs: list[tuple[str, str, str]] | None = None


class RootPlan:
    """The root field for one runtime type (`node`'s is the id's)."""

    __slots__ = ("children", "non_null", "object")

    def __init__(self, obj: ObjectPlan, non_null: bool) -> None:
        self.object = obj
        self.non_null = non_null
        self.children = _number(obj, [1])


class Document:
    """The compiled plans of one operation: its root field (`node`, or a lookup by an
    argument) and, per runtime type, the plan (None: that type is not compiled)."""

    __slots__ = ("details", "field", "key", "lookup", "operation", "typename_keys", "types")

    def __init__(self, operation: OperationDefinitionNode) -> None:
        self.operation = operation
        self.types: dict[str, RootPlan | None] = {}
        self.key = ""
        self.field: Any = None
        self.details: list[FieldDetails] = []
        # A root field finding a row by an argument (fields.Source: loader, argument).
        self.lookup: Source | None = None
        # The root keys in order, None for the compiled field's (the others are
        # `__typename`s).
        self.typename_keys: list[str | None] = []


# id(operation) → (its Document, or None: not compiled). The Document holds the
# operation, so its id is not reused while cached.
_DOCUMENTS: Bounded[int, tuple[OperationDefinitionNode, Document | None]] = Bounded(KEPT)


def _has_directive(executor: Executor[Any]) -> bool:
    found = False

    class Find(Visitor):
        def enter_directive(self, *_: Any) -> None:
            nonlocal found
            found = True

    visit(executor.operation, Find())
    for fragment in executor.fragments.values():
        definition: Any = getattr(fragment, "definition", fragment)
        visit(definition, Find())
    return found


def document_for(executor: Executor[Any]) -> Document | None:
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


def _document(executor: Executor[Any]) -> Document:
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
    for key, details in collected.grouped_field_set.items():
        name = details[0].node.name.value
        if name == "__typename":
            document.typename_keys.append(key)
            continue
        if document.field is not None:
            raise NotCompiled("two root fields")
        field = root.fields.get(name)
        definition = (field.extensions or {}).get(DEFINITION) if field else None
        if field is None or definition is None or definition.extensions:
            raise NotCompiled(f"root field {name}")
        declared = (definition.metadata or {}).get(DECLARED)
        source = declared.source if declared is not None else None
        if name != "node" and source is None:
            raise NotCompiled(f"root field {name}")
        document.lookup = source
        document.key = key
        document.field = field
        document.details = details
        document.typename_keys.append(None)
    if document.field is None:
        raise NotCompiled("no root field")
    return document


def root_plan(executor: Executor[Any], document: Document, type_name: str) -> RootPlan | None:
    if type_name in document.types:
        return document.types[type_name]
    plan: RootPlan | None
    try:
        runtime = executor.schema.get_type(type_name)
        if not isinstance(runtime, GraphQLObjectType):
            raise NotCompiled(f"{type_name} is not an object type")
        grouped = executor.collect_subfields(runtime, document.details).grouped_field_set
        non_null = isinstance(document.field.type, GraphQLNonNull)
        plan = RootPlan(_object(executor, runtime, grouped), non_null)
    except NotCompiled as reason:
        log.debug("not compiled: %s", reason)
        plan = None
    document.types[type_name] = plan
    return plan


def _number(obj: ObjectPlan, counter: list[int]) -> list[ChildPlan]:
    """Each child with a statement gets its place, depth first; returns them in order."""
    found: list[ChildPlan] = []
    for child in obj.children:
        if child.source.prefix is None:
            child.index = counter[0]
            counter[0] += 1
            found.append(child)
        found.extend(_number(child.object, counter))
    return found


def _unwrap(field_type: GraphQLOutputType) -> tuple[bool, Any]:
    if isinstance(field_type, GraphQLNonNull):
        return True, field_type.of_type
    return False, field_type


def _object(
    executor: Executor[Any], object_type: GraphQLObjectType, grouped: dict[str, list[FieldDetails]]
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
        made = declared.formula if declared is not None else None
        if made is not None and made.rule in EXACT_RULES:
            plan.outputs.append((key, "formula", (plan.column(made), inner, non_null)))
            continue
        resolver = definition.base_resolver
        if (
            declared is None
            or not declared.hand_written
            or declared.prefix is not None
            or resolver.arguments
            or resolver.info_parameter is not None
            or inspect.iscoroutinefunction(resolver.wrapped_func)
            or (resolver.self_parameter is None and resolver.root_parameter is None)
            or {p.name for p in resolver.signature.parameters.values()} - {"self", "root"}
        ):
            raise NotCompiled(f"{object_type.name}.{name}: resolver")
        read = tuple(sorted(declared.columns))
        for column in read:
            plan.column(column)
        # The resolver itself, on a row of the decoded columns (as execution._direct
        # calls it: the row alone).
        resolve = resolver.wrapped_func
        plan.outputs.append((key, "resolved", (resolve, inner, non_null, read)))
    if len(plan.columns) + len(plan.children) > MOST_VALUES:
        raise NotCompiled("too many values for json_build_array")
    return plan


def _child(
    executor: Executor[Any],
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
        _, item = _unwrap(nodes.of_type)
        if not (nodes_non_null and isinstance(item, GraphQLObjectType)):
            raise NotCompiled("connection nodes")
        obj = ObjectPlan()
        if node_details:
            selected = executor.collect_subfields(item, node_details).grouped_field_set
            obj = _object(executor, item, selected)
        child = ChildPlan(field, details, source, obj)
        child.outputs = outputs
        child.non_null = non_null
        child.many = True
        return child
    many = isinstance(inner, GraphQLList)
    if source.prefix is None and not (
        issubclass(loader, RowLoader)
        and loader.batch_load_fn is RowLoader.batch_load_fn
        and loader.arrange is RowLoader.arrange
        and many == loader.many
    ):
        raise NotCompiled(f"loader {loader.__name__}")
    if many:
        _, inner = _unwrap(inner.of_type)
    if not isinstance(inner, GraphQLObjectType):
        raise NotCompiled("not an object")
    grouped = executor.collect_subfields(inner, details).grouped_field_set
    child = ChildPlan(field, details, source, _object(executor, inner, grouped))
    if source.prefix is not None and (many or child.object.children):
        raise NotCompiled("a carried object with children of its own")
    child.many = many
    child.non_null = non_null
    child.single = source.prefix is None and joinable(loader)
    return child


# --- per request: the loaders' statements and parameters --------------------------------


class Run:
    """One request's pieces: each field's statement (in plan order) and parameters,
    and each page's size."""

    __slots__ = ("limits", "params", "statements")

    def __init__(self) -> None:
        self.statements: list[Select[Any]] = []
        self.params: dict[str, Any] = {}
        self.limits: list[int] = []


def _bind(run: Run, index: int, params: dict[str, Any]) -> None:
    for name, value in params.items():
        if name in SHARED:
            run.params[name] = value
        else:
            run.params[f"f{index}_{name}"] = value


def _arguments(executor: Executor[Any], field: Any, details: list[FieldDetails]) -> dict[str, Any]:
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


class _Info:
    """What the factories' `params` and page arguments read of a field's info."""

    __slots__ = ("context",)

    def __init__(self, context: Any) -> None:
        self.context = context


def _prepare(executor: Executor[Any], plan: RootPlan, run: Run, info: _Info) -> None:
    loaders = executor.context_value.loaders
    for child in plan.children:
        index = child.index
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
                page_args = _page_args(info, sort, args.get("first"), None, None, None)
            except Exception as error:  # the walk reports it
                raise Fallback("page arguments") from error
            loader = loaders.get(pages, None, page_args, None)
            statement = loader.statement()
            if statement is None:
                raise Fallback("no page statement")
            run.statements.append(statement)
            run.limits.append(page_args.limit)
            _bind(run, index, loaders.bind({}))
        else:
            made = source.params(info, args) if source.params is not None else ()
            row_loader: Any = loaders.get(source.loader, *made)
            run.statements.append(row_loader.full_statement())
            run.limits.append(0)
            params = row_loader.bind([])
            params.pop("keys", None)
            _bind(run, index, params)


# --- the statement --------------------------------------------------------------------

# (plan's id, the loaders' statements' ids) → (plan, statements, the statement).
_STATEMENTS: Bounded[tuple[Any, ...], tuple[Any, list[Any], Select[Any]]] = Bounded(KEPT)


def _renamed(statement: Select[Any], index: int, keys: Any) -> Select[Any]:
    """The loader's statement with its `keys` replaced (by the parent row's key, or for
    the root (`keys` None) an array of its one key's parameter), its named parameters
    made this field's own, and its page size written into the text.

    Why the last two: PostgreSQL plans a prepared statement for each run's values
    (a custom plan) until a generic plan, made once, is estimated to cost no more;
    planning this statement was a seventh of its time in PostgreSQL. A generic plan
    estimates `LIMIT $n` at a tenth of the rows and `= ANY($n)` at ten keys, so it was
    estimated at twice the custom plans and never chosen. The page size is constant
    per statement anyway (the loaders' page statements are made per size), and the
    root always has one key."""

    def replace(element: Any) -> Any:
        if isinstance(element, _OffsetLimitParam) and type(element.value) is int:
            return literal_column(str(element.value), Integer)
        if isinstance(element, BindParameter) and not element.unique:
            if element.key == "keys":
                if keys is not None:
                    return keys
                keys_type: Any = element.type  # an ARRAY: `= ANY(:keys)`
                return array([bindparam(f"f{index}_key", type_=keys_type.item_type)])
            if element.key not in SHARED:
                return bindparam(f"f{index}_{element.key}", type_=element.type)
        return None

    return replacement_traverse(statement, {}, replace)  # type: ignore[call-overload,no-any-return]


def _value(column: Any) -> tuple[Any, Convert]:
    """A column as json_build_array gets it, and how its JSON decodes back into what
    asyncpg would have given."""
    kind = column.type
    if isinstance(kind, Enum):
        # As text: PostgreSQL looks up an enum's output function for every value it
        # turns into JSON (a third of a dashboard's statement).
        return cast(column, Text), kind._cached_result_processor(_DIALECT, None)
    if isinstance(kind, Numeric) and not isinstance(kind, Integer):
        if not kind.asdecimal:
            raise NotCompiled("float column")
        return cast(column, Text), Decimal
    if isinstance(kind, DateTime):
        if kind.timezone:
            return func.to_char(func.timezone(_UTC, column), _ISO), _utc_datetime
        return func.to_char(column, _ISO), datetime.datetime.fromisoformat
    if isinstance(kind, Date):
        return column, datetime.date.fromisoformat
    if isinstance(kind, SqlUuid):
        return column, uuid.UUID if kind.as_uuid else None
    if isinstance(kind, Integer | String | SqlBoolean):
        return column, None
    raise NotCompiled(f"column type {kind!r}")


def _utc_datetime(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC)


class _Prefixed:
    """The columns a parent row carries under a prefix, by their own names."""

    def __init__(self, parent: Any, prefix: str) -> None:
        self.c = {
            column.key[len(prefix) :]: column
            for column in parent.c
            if column.key.startswith(prefix)
        }


def _column(alias: Any, name: str) -> Any:
    if name not in alias.c:
        raise NotCompiled(f"no column {name}")
    return alias.c[name]


def _formula(alias: Any, made: Formula) -> Any:
    """The formula's rule applied to the columns in SQL: numerics only (an integer
    overflows in PostgreSQL, never in Python)."""
    columns = [_column(alias, name) for name in made.columns]
    for column in columns:
        if not isinstance(column.type, Numeric) or isinstance(column.type, Integer):
            raise NotCompiled(f"a formula of {column.type!r}")
    return made.rule(*columns)


def _row_json(alias: Any, obj: ObjectPlan, statements: list[Any]) -> Any:
    values: list[Any] = []
    converts: list[Convert] = []
    types: list[Any] = []
    for name in obj.columns:
        column = _formula(alias, name) if isinstance(name, Formula) else _column(alias, name)
        value, convert = _value(column)
        values.append(value)
        converts.append(convert)
        types.append(column.type)
    obj.converts = converts
    obj.types = types
    for child in obj.children:
        values.append(_child_json(alias, child, statements))
    obj.finish = _finisher(obj)
    return func.json_build_array(*values)


def _in(sub: Any, clause: Any) -> Any:
    """An ORDER BY of a loader's statement, on the columns of its subquery."""

    def replace(element: Any) -> Any:
        if isinstance(element, ColumnClause):
            found = sub.corresponding_column(element)
            if found is None:
                raise NotCompiled(f"order by {element}")
            return found
        return None

    return replacement_traverse(clause, {}, replace)  # type: ignore[call-overload]


def _child_json(parent: Any, child: ChildPlan, statements: list[Any]) -> Any:
    source = child.source
    if source.prefix is not None:
        marker = f"{source.prefix}id"
        if marker not in parent.c:
            raise NotCompiled("the parent row does not carry it")
        row = _row_json(_Prefixed(parent, source.prefix), child.object, statements)
        return case((parent.c[marker].is_(None), null()), else_=row)
    index = child.index
    if source.key not in parent.c:
        raise NotCompiled(f"no key column {source.key}")
    keys = array([parent.c[source.key]])
    statement = statements[index]
    inner = _renamed(statement, index, keys).correlate(parent)
    if not (child.single or source.paged) and _orders_only(statement):
        # The aggregate below puts the rows in this order itself, and PostgreSQL (15)
        # sorts an ordered aggregate's rows whatever order they come in: the
        # subquery's own sort was a second one, per parent row.
        inner = inner.order_by(None)
    sub = inner.subquery(f"c{index}")
    row = _row_json(sub, child.object, statements)
    if child.single:
        return select(row).select_from(sub).scalar_subquery()
    if source.paged:
        # The walk sorts each page again (PageLoader.batch_load_fn): so does this.
        descending = source.loader.spec.sort(None).descending  # type: ignore[attr-defined]
        order: list[Any] = [sub.c.sort_value, sub.c.id]
        order = [o.desc() if descending else o.asc() for o in order]
    else:
        # RowLoader.arrange keeps the statement's order.
        order = [_in(sub, clause) for clause in statement._order_by_clauses]
    aggregated = func.json_agg(aggregate_order_by(row, *order) if order else row)
    return select(aggregated).select_from(sub).scalar_subquery()


def _orders_only(statement: Select[Any]) -> bool:
    """Whether the statement's ORDER BY only orders its rows: no LIMIT, OFFSET, FETCH,
    DISTINCT (ON) or syntax extension (PostgreSQL's `distinct_on` is one) that might
    depend on it."""
    return (
        statement._limit_clause is None
        and statement._offset_clause is None
        and statement._fetch_clause is None
        and not statement._distinct
        and not statement._distinct_on
        and not getattr(statement, "_syntax_extensions", None)
    )


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


# --- finishing the answer in Python -----------------------------------------------------


def _serializer(leaf: Any) -> Callable[[Any], Any]:
    """The leaf's serializer, checked for null or Undefined (graphql-core's error)
    unless it is one of those that answer a value or raise."""
    if not isinstance(leaf, GraphQLScalarType | GraphQLEnumType):
        raise NotCompiled("not a leaf")
    serialize = leaf.serialize
    if serialize in ALWAYS_SERIALIZE:
        return serialize

    def checked(value: Any) -> Any:
        out = serialize(value)
        if out is None or out is Undefined:
            raise Fallback("serializer")
        return out

    return checked


def _enum(convert: Convert, serialize: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A database label → its GraphQL name, through the column's converter and the
    enum's serializer once per label (an enum has few)."""
    names: dict[Any, Any] = {}

    def label(value: Any) -> Any:
        found = names.get(value)
        if found is None:
            found = names[value] = serialize(convert(value) if convert is not None else value)
        return found

    return label


def _as_it_is(leaf: Any, column_type: Any) -> bool:
    """Whether the leaf's serializer gives the column's JSON value back unchanged."""
    if leaf.name in ("String", "ID"):
        return isinstance(column_type, String) and not isinstance(column_type, Enum)
    return leaf.name == "Boolean" and isinstance(column_type, SqlBoolean)


def _decimal_text(text: str) -> str:
    """str(Decimal(text)) for PostgreSQL's text of a numeric: the text itself unless
    Decimal would write it with an exponent (below 1e-6 in magnitude, `0.00000000`
    included), which only a text starting `0.` or `-0.` can be."""
    if text[0] == "0" or text[:2] == "-0":
        return str(Decimal(text))
    return text


def _date_text(text: str) -> str:
    """date.fromisoformat(text).isoformat() for PostgreSQL's JSON of a date: the text
    itself when it is `YYYY-MM-DD` (years 1 to 9999); BC or later years go the long
    way (and fail there: the walk answers)."""
    if len(text) == 10:
        return text
    return datetime.date.fromisoformat(text).isoformat()


def _same_text(leaf: Any, convert: Convert) -> str | None:
    """For a Decimal or Date leaf read as text, an expression of the serialized value
    straight from the text `{x}` (the same string the decode-and-serialize gives,
    without making the value): the text itself in the common case, tested inline (a
    Python call per value is most of what it saves), the function otherwise."""
    serialize = getattr(leaf, "serialize", None)
    # `==` for the date: each read of a classmethod (date.fromisoformat) is a new object.
    if convert is Decimal and serialize is str:
        # _decimal_text's own test, inlined: a numeric's text starts with a digit, `-`
        # or a letter (NaN, Infinity), never empty.
        return "({x} if {x}[0] not in '0-' else %s({x}))"
    if convert == datetime.date.fromisoformat and serialize == datetime.date.isoformat:
        return "({x} if len({x}) == 10 else %s({x}))"
    return None


def _leaf(leaf: Any, convert: Convert, column_type: Any, name: Callable[[Any], str]) -> str:
    """The expression serializing one column's JSON value `{x}` (not null) as the
    leaf's GraphQL type does."""
    if isinstance(leaf, GraphQLEnumType):
        return f"{name(_enum(convert, _serializer(leaf)))}({{x}})"
    if _as_it_is(leaf, column_type):
        return "{x}"
    shortcut = _same_text(leaf, convert)
    if shortcut is not None:
        helper = _decimal_text if convert is Decimal else _date_text
        return shortcut % name(helper)
    prepare = f"{name(convert)}({{x}})" if convert is not None else "{x}"
    return f"{name(_serializer(leaf))}({prepare})"


NULL = "raise Fallback('null in a non-null field')"
# A formula's text that Decimal would give too: not null (Python would raise), at most
# PRECISION characters, ending in a digit (not NaN or Infinity, where Decimal raises).
FORMULA = (
    "if {x} is None or len({x}) > " + str(PRECISION) + " or {x}[-1] not in '0123456789':"
    " raise Fallback('a formula Decimal may compute otherwise')"
)


def _finisher(obj: ObjectPlan) -> Callable[[list[Any], Run], dict[str, Any]]:
    """A function made for this selection: one row's JSON array → the object, each
    column decoded and serialized by the schema's own serializers, computed fields by
    their resolvers on a row of the decoded values, children by their own finishers
    (written out as Python source once: a generic loop over fields cost more than the
    walk it replaces). Objects of one row (to-one children, carried objects) are
    written inline, each object one dict display: a call and a store per field were
    most of a dashboard's finishing."""
    names: dict[str, Any] = {"Fallback": Fallback}

    def name(value: Any) -> str:
        label = f"n{len(names)}"
        names[label] = value
        return label

    lines = ["def finish(v, run):"]
    made = _object_code(obj, "v", "    ", name, [0], lines)
    lines.append(f"    return {made}")
    scope: dict[str, Any] = {}
    try:
        exec("\n".join(lines), names, scope)  # our own source, made above
    except (SyntaxError, RecursionError, MemoryError) as error:
        # Nested past what CPython compiles (20 loops in one another, 100 indents):
        # a deployment's depth limit may allow it.
        raise NotCompiled("nested too deep for one finisher") from error
    return scope["finish"]  # type: ignore[no-any-return]


def _object_code(
    obj: ObjectPlan,
    v: str,
    indent: str,
    name: Callable[[Any], str],
    counter: list[int],
    lines: list[str],
) -> str:
    """Appends to `lines` the statements finishing the object of the JSON array `v`
    (null checks, computed fields, inline children); returns the dict display."""

    def local(prefix: str) -> str:
        counter[0] += 1
        return f"{prefix}{counter[0]}"

    # The non-null columns, checked before anything reads them.
    checked = sorted({d[0] for _, kind, d in obj.outputs if kind == "column" and d[2]})
    if checked:
        tests = " or ".join(f"{v}[{index}] is None" for index in checked)
        lines.append(f"{indent}if {tests}: {NULL}")

    def convert(index: int) -> str:
        converter = obj.converts[index]
        item = f"{v}[{index}]"
        if converter is None:
            return item
        if index in checked:
            return f"{name(converter)}({item})"
        return f"({name(converter)}({item}) if {item} is not None else None)"

    columns = len(obj.columns)
    # The computed fields' row: the columns they declare (only those: they read no
    # others, tests/test_breadth_first.py), decoded.
    read = sorted({c for _, kind, d in obj.outputs if kind == "resolved" for c in d[3]})
    row = local("r")
    if read:
        _, make = row_shape(tuple(read))
        decoded = ", ".join(convert(obj.columns.index(c)) for c in read)
        lines.append(f"{indent}{row} = {name(make)}(({decoded},))")
    entries: list[str] = []
    for key, kind, detail in obj.outputs:
        if kind == "typename":
            entries.append(f"{key!r}: {detail!r}")
        elif kind == "child":
            child = obj.children[detail]
            made = _child_code(child, f"{v}[{columns + detail}]", indent, name, counter, lines)
            entries.append(f"{key!r}: {made}")
        elif kind == "formula":
            index, leaf, _ = detail
            item = f"{v}[{index}]"
            lines.append(indent + FORMULA.format(x=item))
            done = _leaf(leaf, obj.converts[index], obj.types[index], name).format(x=item)
            entries.append(f"{key!r}: {done}")
        elif kind == "column":
            index, leaf, non_null = detail
            item = f"{v}[{index}]"
            done = _leaf(leaf, obj.converts[index], obj.types[index], name).format(x=item)
            if not non_null and done != item:
                done = f"({done} if {item} is not None else None)"
            entries.append(f"{key!r}: {done}")
        else:
            resolve, leaf, non_null, _ = detail
            x = local("x")
            lines.append(f"{indent}{x} = {name(resolve)}({row})")
            done = f"{name(_serializer(leaf))}({x})"
            if non_null:
                lines.append(f"{indent}if {x} is None: {NULL}")
            else:
                done = f"({done} if {x} is not None else None)"
            entries.append(f"{key!r}: {done}")
    return "{" + ", ".join(entries) + "}"


def _child_code(
    child: ChildPlan,
    value: str,
    indent: str,
    name: Callable[[Any], str],
    counter: list[int],
    lines: list[str],
) -> str:
    """Appends to `lines` the statements finishing one child from the JSON `value` of
    its parent's row; returns the expression of its answer."""
    c = f"c{counter[0] + 1}"
    counter[0] += 1
    lines.append(f"{indent}{c} = {value}")
    if child.source.prefix is not None or child.single or not child.many:
        out = f"o{counter[0]}"
        # One object or null; a key's rows, of which RowLoader.arrange keeps the last.
        empty = f"{c} is None" if child.source.prefix is not None or child.single else f"not {c}"
        lines.append(f"{indent}if {empty}: {NULL if child.non_null else out + ' = None'}")
        lines.append(f"{indent}else:")
        inner = indent + "    "
        if not (child.source.prefix is not None or child.single):
            lines.append(f"{inner}{c} = {c}[-1]")
        made = _object_code(child.object, c, inner, name, counter, lines)
        lines.append(f"{inner}{out} = {made}")
        return out
    if child.source.paged:
        lines.append(f"{indent}{c} = {c}[: run.limits[{child.index}]] if {c} else ()")
    # A loop written out here rather than a call of the item's finisher per row.
    number = counter[0]
    each, out, add = f"i{number}", f"l{number}", f"a{number}"
    lines.append(f"{indent}{out} = []")
    lines.append(f"{indent}if {c}:")
    lines.append(f"{indent}    {add} = {out}.append")
    lines.append(f"{indent}    for {each} in {c}:")
    made = _object_code(child.object, each, indent + "        ", name, counter, lines)
    lines.append(f"{indent}        {add}({made})")
    c = out
    if child.outputs is None:
        return c
    parts = ", ".join(
        f"{key!r}: {c if kind == 'nodes' else repr(field)}" for key, kind, field in child.outputs
    )
    return "{" + parts + "}"


# --- running ----------------------------------------------------------------------------


async def execute(executor: Executor[Any], document: Document) -> dict[str, Any]:
    """The operation's data from one statement, or Fallback."""
    from .types.node import NODE_SOURCES, from_global_id

    context = executor.context_value
    loaders = context.loaders
    args = _arguments(executor, document.field, document.details)
    lookup = document.lookup
    if lookup is not None:
        type_name = document.field.type
        _, type_name = _unwrap(type_name)
        type_name = type_name.name
        loader_class: Any = lookup.loader
        key: Any = args.get(lookup.key)
        if key is None:
            raise Fallback("no key")
    else:
        decoded = from_global_id(str(args.get("id", "")))
        if decoded is None:
            raise Fallback("not an id")
        type_name, text = decoded
        node_source = NODE_SOURCES.get(type_name)
        if node_source is None or node_source.loader is None:
            raise Fallback("no node loader")
        loader_class = node_source.loader
        try:
            key = uuid.UUID(text)
        except ValueError as error:
            raise Fallback("not a uuid") from error
    plan = root_plan(executor, document, type_name)
    if plan is None:
        raise Fallback("type not compiled")
    if decimal.getcontext().prec < PRECISION:
        raise Fallback("formulas are checked against the default precision")
    root_loader: Any = loaders.get(loader_class)
    run = Run()
    run.statements.append(root_loader.full_statement())
    run.limits.append(0)
    params = root_loader.bind([key])
    (params["key"],) = params.pop("keys")
    _bind(run, 0, params)
    _prepare(executor, plan, run, _Info(context))
    try:
        statement = _statement(plan, run)
    except NotCompiled as reason:
        log.debug("not compiled: %s", reason)
        document.types[type_name] = None
        raise Fallback(str(reason)) from reason
    rows = await context.db.prepared_rows(statement, run.params)
    value: Any = None
    if rows:
        finish = plan.object.finish
        assert finish is not None
        value = finish(orjson.loads(rows[0].data), run)
    elif plan.non_null:
        raise Fallback("null root")
    return {
        key if key is not None else document.key: "Query" if key is not None else value
        for key in document.typename_keys
    }
