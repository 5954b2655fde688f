"""Breadth-first execution of queries: each field resolved for a whole level at once.

graphql-core completes a result object by object and field by field: for one dashboard
page that is ~4,600 rounds of `execute_field`/`complete_value`, each building an info
object and a path, and for every list of objects a gather of one awaitable per item —
three quarters of the request's time (bench/README.md). The loaders already fetch
breadth-first (one statement per level); this executes the same way. A selection is
run for all the objects of a level together: each field's resolver is called for every
object in one loop with one info object (a field with a level resolver, fields.py,
once for the whole level), everything awaitable is awaited in one gather, leaves are
serialized in place, and each object field's children are completed as one flat list,
one level further down.

Field collection (fragments, `@skip`/`@include`), argument coercion, resolvers and
serializers are graphql-core's and Strawberry's own; only the walk is ours. It gives
the answer of the happy path only. Anything else is left to graphql-core, which has
the spec's answer: an operation that is not a query, `@defer`/`@stream`, an abort
signal; and, found while running, a resolver raising, null in a non-null position, a
value that does not serialize, an unexpected runtime type. Then the fast result is
dropped and the operation runs again the standard way, from fresh loaders: a read is
idempotent and sees the same snapshot (one transaction per request), so errors, their
paths and partial data are exactly graphql-core's. Only a failing query pays twice.
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
from collections.abc import Iterable, Mapping
from itertools import repeat
from typing import TYPE_CHECKING, Any

from graphql import (
    GraphQLAbstractType,
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    OperationType,
    is_abstract_type,
    is_leaf_type,
)
from graphql.execution.collect_fields import FieldDetails, collect_fields
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path
from graphql.pyutils.undefined import UndefinedType
from graphql.type.scalars import (
    serialize_boolean,
    serialize_float,
    serialize_id,
    serialize_int,
    serialize_string,
)

from .fields import PLAN, ROW_TYPE, Plan

if TYPE_CHECKING:
    from graphql.execution import Executor

FieldDetailsList = list[FieldDetails]
GroupedFieldSet = dict[str, FieldDetailsList]


# Scalars that serialize a str as itself.
TEXT_SCALARS = frozenset({"String", "ID"})
TEXT = frozenset({str, type(None)})
NoneType = type(None)
# Serializers that answer a value or raise, never null or Undefined: graphql-core's own
# and those of our scalars (types/scalars.py).
ALWAYS_SERIALIZE = frozenset(
    {
        serialize_string,
        serialize_id,
        serialize_int,
        serialize_float,
        serialize_boolean,
        str,
        datetime.date.isoformat,
        datetime.datetime.isoformat,
    }
)


class Abandon(Exception):
    """The fast walk cannot give graphql-core's answer: run the operation its way."""


def applies(executor: Executor) -> GroupedFieldSet | None:
    """The root fields to walk, or None when the operation is for graphql-core."""
    if executor.operation.operation is not OperationType.QUERY:
        return None
    if executor.abort_signal is not None:
        return None
    root_type = executor.schema.query_type
    if root_type is None:
        return None
    try:
        collected = collect_fields(
            executor.schema,
            executor.fragments,
            executor.variable_values,
            root_type,
            executor.operation,
            executor.hide_suggestions,
        )
    except Exception:  # graphql-core reports it properly
        return None
    if collected.new_defer_usages or collected.forbidden_directive_instances:
        return None
    return collected.grouped_field_set


async def execute(
    executor: Executor, grouped: GroupedFieldSet, never_awaitable: frozenset[type]
) -> dict[str, Any]:
    """The operation's data, or Abandon. A level whose values are all of
    `never_awaitable` types skips the per-value `executor.is_awaitable` check."""
    root_type = executor.schema.query_type
    assert root_type is not None  # checked by applies()
    walk = Walk(executor, never_awaitable)
    [data] = await walk.objects(root_type, grouped, [executor.root_value], None)
    return data


def _close(awaitables: list[Any]) -> None:
    """Resolver coroutines made for a level that will not run: closed, not left to warn
    that they were never awaited."""
    for awaitable in awaitables:
        if inspect.iscoroutine(awaitable):
            awaitable.close()


class Walk:
    def __init__(self, executor: Executor, never_awaitable: frozenset[type]) -> None:
        self.executor = executor
        self.schema = executor.schema
        self.is_awaitable = executor.is_awaitable
        self.never_awaitable = never_awaitable
        middleware = executor.middleware_manager
        self.middleware = middleware if middleware and middleware.middlewares else None

    async def objects(
        self,
        parent_type: GraphQLObjectType,
        grouped: GroupedFieldSet,
        sources: list[Any],
        path: Path | None,
    ) -> list[dict[str, Any]]:
        """Complete `sources` (all of `parent_type`) with the selection `grouped`."""
        executor = self.executor
        is_awaitable = self.is_awaitable
        never_awaitable = self.never_awaitable
        # Middleware wraps every resolver call: then no field takes a shortcut.
        plans = self.middleware is None
        resolved: list[tuple[GraphQLOutputType, FieldDetailsList, GraphQLResolveInfo]] = []
        columns: list[list[Any]] = []
        waiting: list[Any] = []
        # Where each awaited value goes: (column, row), or (field position, None) for
        # a level resolver's whole column.
        places: list[tuple[Any, int | None]] = []

        for key, details in grouped.items():
            node = details[0].node
            field_def = self.schema.get_field(parent_type, node.name.value)
            if field_def is None:
                raise Abandon
            resolve = field_def.resolve or executor.field_resolver
            if self.middleware is not None:
                resolve = self.middleware.get_field_resolver(resolve)
            field_path = Path(path, key, parent_type.name)
            info = executor.build_resolve_info(
                field_def, [d.node for d in details], parent_type, field_path
            )
            resolved.append((field_def.type, details, info))
            plan: Plan | None = field_def.extensions.get(PLAN) if plans else None
            try:
                args = (
                    get_argument_values(
                        field_def,
                        node,
                        executor.variable_values,
                        details[0].fragment_variable_values,
                        executor.hide_suggestions,
                    )
                    if field_def.args or node.arguments
                    else {}
                )
                if plan is not None and plan.attribute is not None:
                    # A plain attribute read: one C-level pass over the level.
                    values = list(map(plan.attribute, sources))
                elif plan is not None and plan.level is not None:
                    resolved_level = plan.level(sources, info, args)
                    if not isinstance(resolved_level, list):  # awaited with the others below
                        waiting.append(resolved_level)
                        places.append((len(columns), None))
                        columns.append([])
                        continue
                    if len(resolved_level) != len(sources):
                        raise Abandon
                    values = resolved_level
                elif args:
                    values = [resolve(source, info, **args) for source in sources]
                else:
                    values = [resolve(source, info) for source in sources]
            except Exception as error:
                _close(waiting)
                raise Abandon from error
            columns.append(values)
            if not never_awaitable.issuperset(map(type, values)):
                for index, value in enumerate(values):
                    if is_awaitable(value):
                        waiting.append(value)
                        places.append((values, index))

        if waiting:
            # One gather for the whole level: the loaders of every field dispatch
            # together. return_exceptions: nothing is left running when one fails.
            outcomes = await asyncio.gather(*waiting, return_exceptions=True)
            for (where, row), outcome in zip(places, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    raise Abandon from outcome
                if row is None:
                    if len(outcome) != len(sources):
                        raise Abandon
                    columns[where] = outcome
                else:
                    where[row] = outcome

        below: list[tuple[int, Any]] = []
        for position, ((field_type, details, info), values) in enumerate(
            zip(resolved, columns, strict=True)
        ):
            completed = self.complete(field_type, details, info, values)
            if isinstance(completed, list):
                columns[position] = completed
            else:
                below.append((position, completed))
        if below:
            # Sibling subtrees run side by side, so their loaders batch together too.
            # All of them end before an Abandon goes up: none is left running when
            # graphql-core starts over.
            finished = await asyncio.gather(
                *(awaitable for _, awaitable in below), return_exceptions=True
            )
            for (position, _), completed in zip(below, finished, strict=True):
                if isinstance(completed, BaseException):
                    raise completed
                columns[position] = completed
        if not columns:  # a fragment on another type selected nothing here
            return [{} for _ in sources]
        # Every column holds one value per source (checked as they were made): the
        # objects are built in C, without a Python step per object.
        return list(map(dict, map(zip, repeat(list(grouped)), zip(*columns, strict=True))))

    def complete(
        self,
        field_type: GraphQLOutputType,
        details: FieldDetailsList,
        info: GraphQLResolveInfo,
        values: list[Any],
    ) -> Any:
        """The completed values of one field for a level: a list when every value is
        done (leaves), else an awaitable of that list (objects below)."""
        non_null = isinstance(field_type, GraphQLNonNull)
        inner: Any = field_type.of_type if non_null else field_type  # type: ignore[union-attr]
        if is_leaf_type(inner):
            return self.leaves(inner, non_null, values)
        if non_null and None in values:
            raise Abandon
        if isinstance(inner, GraphQLList):
            return self.lists(inner.of_type, details, info, values)
        if isinstance(inner, GraphQLObjectType):
            return self.present(inner, details, info, values)
        if is_abstract_type(inner):
            return self.abstract(inner, details, info, values)
        raise Abandon

    @staticmethod
    def leaves(leaf: Any, non_null: bool, values: list[Any]) -> list[Any]:
        """A level's values of a scalar or enum field, serialized."""
        kinds = set(map(type, values))
        has_null = NoneType in kinds
        if has_null and non_null:
            raise Abandon
        if leaf.name in TEXT_SCALARS and kinds <= TEXT:
            return values  # text is its own serialization
        coerce = leaf.coerce_output_value
        try:
            if has_null:
                out = [None if value is None else coerce(value) for value in values]
            else:
                out = list(map(coerce, values))
        except Exception as error:
            raise Abandon from error
        if coerce in ALWAYS_SERIALIZE or isinstance(leaf, GraphQLEnumType):
            return out  # these raise rather than answer null or Undefined
        done = set(map(type, out))
        # A serializer answering null for a value, or Undefined: graphql-core's error.
        if UndefinedType in done or (NoneType in done and out.count(None) != values.count(None)):
            raise Abandon
        return out

    async def lists(
        self,
        item_type: GraphQLOutputType,
        details: FieldDetailsList,
        info: GraphQLResolveInfo,
        values: list[Any],
    ) -> list[Any]:
        """Complete every list of the level as one flat list of items, then cut it back."""
        items: list[Any] = []
        lengths: list[int | None] = []
        for value in values:
            if value is None:
                lengths.append(None)
                continue
            if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
                raise Abandon
            before = len(items)
            items.extend(value)
            lengths.append(len(items) - before)
        completed = self.complete(item_type, details, info, items)
        if not isinstance(completed, list):
            completed = await completed
        out: list[Any] = []
        start = 0
        for length in lengths:
            if length is None:
                out.append(None)
            else:
                out.append(completed[start : start + length])
                start += length
        return out

    async def present(
        self,
        object_type: GraphQLObjectType,
        details: FieldDetailsList,
        info: GraphQLResolveInfo,
        values: list[Any],
    ) -> list[Any]:
        """Complete the non-null values as objects of `object_type`; null stays null."""
        present = [value for value in values if value is not None]
        check = object_type.is_type_of
        # A row type's objects are always of it (types/node.py): no check per row.
        if check is not None and not object_type.extensions.get(ROW_TYPE):
            for value in present:
                verdict = check(value, info)
                if verdict is not True:  # False, or an awaitable: graphql-core's to judge
                    raise Abandon
        grouped = self.executor.collect_subfields(object_type, details).grouped_field_set
        if not present:
            return list(values)
        completed = iter(await self.objects(object_type, grouped, present, info.path))
        return [None if value is None else next(completed) for value in values]

    async def abstract(
        self,
        abstract_type: GraphQLAbstractType,
        details: FieldDetailsList,
        info: GraphQLResolveInfo,
        values: list[Any],
    ) -> list[Any]:
        """Complete each value as the object type it resolves to, grouped by type."""
        resolve_type = abstract_type.resolve_type or self.executor.type_resolver
        by_type: dict[str, list[int]] = {}
        for index, value in enumerate(values):
            if value is None:
                continue
            try:
                name = resolve_type(value, info, abstract_type)
            except Exception as error:
                raise Abandon from error
            if not isinstance(name, str):
                raise Abandon
            by_type.setdefault(name, []).append(index)
        out = list(values)
        for name, indexes in by_type.items():
            runtime = self.schema.get_type(name)
            if not isinstance(runtime, GraphQLObjectType) or not self.schema.is_sub_type(
                abstract_type, runtime
            ):
                raise Abandon
            completed = await self.present(runtime, details, info, [values[i] for i in indexes])
            for index, value in zip(indexes, completed, strict=True):
                out[index] = value
        return out
