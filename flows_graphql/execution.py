"""Execution without per-field overhead where none is needed.

0. Field plans. `install` gives every field of the object types, in its graphql-core
`extensions`, what the fast paths read (fields.Plan: its columns, its level resolver,
the getter of a plain column), and marks the row types; the breadth-first walk and
fields.projection read them there.

1. Direct resolvers for the fields that need none of Strawberry's per-call machinery.

A dashboard page resolves thousands of fields. Strawberry wraps every one of them in
argument conversion, an `Info` object and extension plumbing, even a plain column read
off a row. For fields without arguments, permissions or extensions this module installs
a plain function instead: an attribute read for data fields, a direct call for
resolvers that take only the row (and `info`, of which ours use just `.context`, which
graphql-core's own info has too). Fields with arguments, and the root fields, keep
Strawberry's path.

2. A faster "is this awaitable?" check. graphql-core asks it of every resolved value;
for a database row the generic check probes `__await__`, which a row answers by
searching its columns and raising — the dearest single step of a large page.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import logging
import uuid
from collections.abc import Awaitable, Callable
from operator import attrgetter
from types import CoroutineType
from typing import Any, TypeGuard

import strawberry
from graphql import ExecutionResult, GraphQLError, GraphQLObjectType, GraphQLResolveInfo
from strawberry.execution import optimized_is_awaitable
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from . import breadth_first, compiled, faults
from .fields import DECLARED, PLAN, ROW_TYPE, Declared, DeclaredRow, LevelResolve, Plan
from .types.node import RowType

log = logging.getLogger(__name__)

DEFINITION = "strawberry-definition"
ROOT_TYPES = frozenset({"Query", "Mutation", "Subscription"})

Resolve = Callable[..., Any]

# Values that are never awaitable: is_awaitable answers them without probing, and the
# breadth-first walk skips the per-value check for a level of only these.
NEVER_AWAITABLE = frozenset(
    {
        str,
        int,
        bool,
        float,
        decimal.Decimal,
        datetime.date,
        datetime.datetime,
        uuid.UUID,
        type(None),
        list,
        dict,
    }
)


class UndeclaredField(TypeError):
    """A resolver of a row type that does not say which columns it reads (fields.py)."""


def install(schema: strawberry.Schema, *, strict_rows: set[str] | None = None) -> int:
    """Give every field of the object types its Plan (in its GraphQL `extensions`),
    mark the row types, and replace the resolvers of every eligible field; returns how
    many were replaced. With `strict_rows` (tests), the hand-written resolvers of row
    types read their rows through a DeclaredRow (a column they did not declare raises),
    and each adds its `Type.field` to the set when called."""
    installed = 0
    for graphql_type in schema._schema.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType) or graphql_type.name in ROOT_TYPES:
            continue
        if graphql_type.name.startswith("__"):
            continue
        extensions = graphql_type.extensions
        definition = extensions.get(DEFINITION)
        origin = getattr(definition, "origin", None)
        rows = _is_row_type(origin)
        extensions[ROW_TYPE] = rows
        for name, graphql_field in graphql_type.fields.items():
            field = (graphql_field.extensions or {}).get(DEFINITION)
            if field is None:
                continue
            declared: Declared | None = (field.metadata or {}).get(DECLARED)
            where = f"{graphql_type.name}.{name}"
            if rows and field.base_resolver is not None and declared is None:
                raise UndeclaredField(
                    f"{where} has a resolver but declares no columns: build it with "
                    "flows_graphql/fields.py (see docs/contributing.md)"
                )
            plan = _plan(field, declared)
            graphql_field.extensions = {**(graphql_field.extensions or {}), PLAN: plan}
            if field.extensions:  # Strawberry's own per-call machinery: its path
                plan.level = None
                continue
            if not graphql_field.args:
                direct = _direct(field)
                if direct is not None:
                    if rows and strict_rows is not None and _hand_written(declared):
                        direct = _strict(direct, declared, where, strict_rows)
                    graphql_field.resolve = direct
                    installed += 1
                    if field.base_resolver is None:
                        plan.attribute = attrgetter(field.python_name)
            if declared is not None and declared.level is not None:
                level = declared.level
                if rows and strict_rows is not None and declared.hand_written:
                    level = _strict_level(level, declared, where, strict_rows)
                plan.level = level if graphql_field.resolve is not None else None
    return installed


def _is_row_type(origin: Any) -> bool:
    """A RowType whose `is_type_of` is RowType's (always True: the walk skips it)."""
    return (
        isinstance(origin, type)
        and issubclass(origin, RowType)
        and origin.is_type_of.__func__ is RowType.is_type_of.__func__  # type: ignore[attr-defined]
    )


def _hand_written(declared: Declared | None) -> TypeGuard[Declared]:
    """A resolver of a type's own code: the factories' read only their key columns."""
    return declared is not None and declared.hand_written


def _plan(field: Any, declared: Declared | None) -> Plan:
    if field.base_resolver is None:
        return Plan(frozenset({field.python_name}))
    if declared is None:
        return Plan(None)
    return Plan(declared.columns, declared.prefix, join=declared.join, source=declared.source)


def _strict(resolve: Resolve, declared: Declared, where: str, seen: set[str]) -> Resolve:
    def strict(source: Any, info: GraphQLResolveInfo) -> Any:
        seen.add(where)
        return resolve(DeclaredRow(source, declared, where), info)

    return strict


def _strict_level(
    level: LevelResolve, declared: Declared, where: str, seen: set[str]
) -> LevelResolve:
    def strict(sources: list[Any], info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
        seen.add(where)
        return level([DeclaredRow(source, declared, where) for source in sources], info, args)

    return strict


def _direct(field: Any) -> Resolve | None:
    resolver = field.base_resolver
    if resolver is None:
        get = attrgetter(field.python_name)

        def read(source: Any, info: GraphQLResolveInfo) -> Any:
            return get(source)

        return read
    if resolver.arguments:
        return None
    reserved = {p.name for p in resolver.signature.parameters.values()}
    takes_row = resolver.self_parameter is not None or resolver.root_parameter is not None
    info = resolver.info_parameter
    if reserved - {"self", "root", "info"} or (info is not None and info.name != "info"):
        return None
    function = resolver.wrapped_func
    if takes_row and info is not None:

        def call_with_info(source: Any, info: GraphQLResolveInfo) -> Any:
            return function(source, info=info)

        return call_with_info
    if takes_row:

        def call(source: Any, info: GraphQLResolveInfo) -> Any:
            return function(source)

        return call
    return None


def is_awaitable(value: Any) -> TypeGuard[Awaitable[Any]]:
    kind = type(value)
    # Tuples: the rows of rows.py (named tuples) are never awaitable either.
    if kind in NEVER_AWAITABLE or isinstance(value, enum.Enum | tuple):
        return False
    if kind is CoroutineType:
        return True
    return optimized_is_awaitable(value)


class ExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.is_awaitable = is_awaitable

    def execute_operation(self, serially: bool | None = None) -> Any:
        """Queries compiled into one statement run so (compiled.py), the others walk
        breadth-first (breadth_first.py); what that walk cannot answer, and every
        other operation, goes graphql-core's way."""
        context = self.context_value
        if hasattr(context, "executing"):
            context.executing = True
        settings = getattr(context, "settings", None)
        if not getattr(settings, "breadth_first", False):
            return super().execute_operation(serially)
        if (
            getattr(settings, "compiled", False)
            and self.abort_signal is None
            and not self._has_middleware()
        ):
            document = compiled.document_for(self)
            if document is not None:
                return self._execute_compiled(document, serially)
        return self._walk(serially)

    def _has_middleware(self) -> bool:
        middleware = self.middleware_manager
        return bool(middleware and middleware.middlewares)

    def _walk(self, serially: bool | None) -> Any:
        grouped = breadth_first.applies(self)
        if grouped is None:
            return super().execute_operation(serially)
        return self._execute_breadth_first(grouped, serially)

    async def _execute_compiled(self, document: compiled.Document, serially: bool | None) -> Any:
        try:
            data = await compiled.execute(self, document)
        except compiled.Fallback as fallback:
            log.debug("compiled query falls back: %s", fallback)
        except Exception as error:
            if faults.classify(error) is not None:
                # The database failed (faults.py): the walk would meet the same fault.
                return ExecutionResult(None, [GraphQLError(str(error), original_error=error)])
            # A bug of the compiler must cost speed, not the answer.
            log.warning("compiled query failed, walking it instead", exc_info=True)
        else:
            # No resolver runs on this path. graphql-core's helpers hold a bound method
            # of this executor, a cycle that would keep the whole request (its context,
            # connection wrapper, loaders) for the cyclic collector: ~56 objects a
            # request, a young-generation collection every ~1,000 requests.
            del self.async_helpers
            return self.build_response(data)
        result = self._walk(serially)
        return await result if self.is_awaitable(result) else result

    async def _execute_breadth_first(
        self, grouped: breadth_first.GroupedFieldSet, serially: bool | None
    ) -> Any:
        try:
            data = await breadth_first.execute(self, grouped, NEVER_AWAITABLE)
        except breadth_first.Abandon as abandoned:
            # Expected for errors (graphql-core reports them); for a happy-path query it
            # is a lost speed-up worth a look.
            log.debug("breadth-first walk abandoned: %r", abandoned.__cause__)
            cause = abandoned.__cause__
            if isinstance(cause, Exception) and faults.classify(cause) is not None:
                # The database failed (faults.py): graphql-core's walk would meet the
                # same fault, after waiting for it a second time.
                return ExecutionResult(None, [GraphQLError(str(cause), original_error=cause)])
            # From scratch, as graphql-core alone would run it: with warm caches some
            # fields would finish sooner and a failed query could report other errors.
            loaders = getattr(self.context_value, "loaders", None)
            if loaders is not None:
                loaders.release()
            result = super().execute_operation(serially)
            return await result if self.is_awaitable(result) else result
        return self.build_response(data)
