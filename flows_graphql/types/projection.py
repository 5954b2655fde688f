"""Which columns a selection reads, so that a loader fetches those and no others.

Decoding columns nobody asked for was the dearest step of a dashboard request: its
600 usage rows carried 30 columns each, timestamps and numerics, to serve four
fields (bench/README.md). Each field of a row type reads some columns of its row: a
data field its own, a resolver those it declares with `reads(...)`. A resolver that
declares nothing reads every column, so forgetting a declaration costs speed, never
correctness. The projection of a selection is the union over its fields, taken
generously: every fragment counts whatever its type condition and `@skip`/`@include`
are ignored, so it is never smaller than what execution will read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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

READS = "flows.reads"
DEFINITION = "strawberry-definition"

# None: every column.
Columns = frozenset[str] | None


class Reads:
    """What a resolver reads off its row: `columns`, and with `prefix`, the columns
    its own (object) selection reads, under that prefix (the costs a usage row
    carries as `costs_*`)."""

    __slots__ = ("columns", "prefix")

    def __init__(self, columns: Iterable[str], prefix: str | None = None) -> None:
        self.columns = frozenset(columns)
        self.prefix = prefix


def reads(*columns: str, prefix: str | None = None) -> dict[str, Any]:
    """Field metadata declaring the columns a resolver reads."""
    return {READS: Reads(columns, prefix)}


def projection(info: Any) -> Columns:
    """The columns the selection of the field being resolved reads from the rows it
    returns (None: all). Cached per request: the same field resolves for every parent."""
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
    for field in _fields(sets, fragments):
        if field.selection_set is None:
            continue
        if field.name.value == "nodes":
            found.append(field.selection_set)
        elif field.name.value == "edges":
            for inner in _fields([field.selection_set], fragments):
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
    wanted: set[str] = set()
    for node in _fields(sets, fragments):
        graphql_field = object_type.fields.get(node.name.value)
        if graphql_field is None:  # __typename, or a fragment on another type
            continue
        field = (graphql_field.extensions or {}).get(DEFINITION)
        if field is None:
            return None
        if field.base_resolver is None:
            wanted.add(field.python_name)
            continue
        declared = field.metadata.get(READS) if field.metadata else None
        if declared is None:
            return None
        wanted |= declared.columns
        if declared.prefix is not None:
            inner_type = get_named_type(graphql_field.type)
            if not isinstance(inner_type, GraphQLObjectType) or node.selection_set is None:
                return None
            inner = _columns(inner_type, [node.selection_set], fragments)
            if inner is None:
                return None
            wanted |= {declared.prefix + column for column in inner}
    return frozenset(wanted)


def _fields(
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
