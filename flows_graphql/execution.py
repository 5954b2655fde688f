"""Execution without per-field overhead where none is needed.

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

import contextvars
import enum
import logging
from collections.abc import Awaitable, Callable
from operator import attrgetter
from types import CoroutineType
from typing import Any, TypeGuard

import strawberry
from graphql import ExecutionResult, GraphQLError, GraphQLObjectType, GraphQLResolveInfo
from strawberry.execution import optimized_is_awaitable
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from . import breadth_first, faults
from .types.levels import LEVEL

log = logging.getLogger(__name__)

# Set once a request's operation runs: an error without a path after that is a failure
# of the execution itself, not of the document or its variables (graphql_view._mask).
executing: contextvars.ContextVar[bool] = contextvars.ContextVar("flows_executing", default=False)

DEFINITION = "strawberry-definition"
ROOT_TYPES = frozenset({"Query", "Mutation", "Subscription"})

Resolve = Callable[..., Any]


def install(schema: strawberry.Schema) -> int:
    """Replace the resolvers of every eligible field; returns how many."""
    installed = 0
    for graphql_type in schema._schema.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType) or graphql_type.name in ROOT_TYPES:
            continue
        if graphql_type.name.startswith("__"):
            continue
        for graphql_field in graphql_type.fields.values():
            field = (graphql_field.extensions or {}).get(DEFINITION)
            if field is None or field.extensions:
                continue
            if not graphql_field.args:
                direct = _direct(field)
                if direct is not None:
                    graphql_field.resolve = direct
                    installed += 1
            level = (field.metadata or {}).get(LEVEL)
            if level is not None and graphql_field.resolve is not None:
                breadth_first.LEVEL_RESOLVERS[graphql_field.resolve] = level
    return installed


def _direct(field: Any) -> Resolve | None:
    resolver = field.base_resolver
    if resolver is None:
        get = attrgetter(field.python_name)

        def read(source: Any, info: GraphQLResolveInfo) -> Any:
            return get(source)

        breadth_first.ATTRIBUTE_READS[read] = get
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
    # Tuples: the rows of db/direct.py (named tuples) are never awaitable either.
    if kind in breadth_first.PLAIN_TYPES or isinstance(value, enum.Enum | tuple):
        return False
    if kind is CoroutineType:
        return True
    return optimized_is_awaitable(value)


class ExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.is_awaitable = is_awaitable

    def execute_operation(self, serially: bool | None = None) -> Any:
        """Queries walk breadth-first (breadth_first.py); what that walk cannot
        answer, and every other operation, goes graphql-core's way."""
        executing.set(True)
        settings = getattr(self.context_value, "settings", None)
        grouped = breadth_first.applies(self) if getattr(settings, "breadth_first", False) else None
        if grouped is None:
            return super().execute_operation(serially)
        return self._execute_breadth_first(grouped, serially)

    async def _execute_breadth_first(
        self, grouped: breadth_first.GroupedFieldSet, serially: bool | None
    ) -> Any:
        try:
            data = await breadth_first.execute(self, grouped)
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
