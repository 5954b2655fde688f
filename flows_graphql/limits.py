"""Checks made before a GraphQL operation runs.

Limits — size, depth, aliases, tokens, operations, page sizes and an estimated cost: a
request over any of them is answered HTTP 400 with `QUERY_TOO_COMPLEX`. And text that
PostgreSQL cannot hold (NUL, unpaired surrogates) is refused with `INVALID`. Neither
reaches a resolver."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    ListValueNode,
    Node,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    ValueNode,
    VariableNode,
    get_named_type,
    parse,
    value_from_ast_untyped,
)


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 4 * 1024 * 1024  # importMonthlyUsage sends whole months
    max_tokens: int = 5_000
    max_depth: int = 15
    max_aliases: int = 50
    max_operations: int = 10
    max_page_size: int = 100
    max_cost: int = 50_000
    default_page_size: int = 20
    # Lists that are not connections: month ranges (a year), small relations.
    month_list_size: int = 12
    list_size: int = 3
    # Rows of input the mutations of one request may carry, aliases counted: one full
    # importMonthlyUsage (services/usage.py MAX_IMPORT_ROWS), not twenty of them.
    max_input_rows: int = 10_000
    # Fields answering one path of the response (the same field repeated, in the
    # selection or through fragments): graphql-core's validation compares them pairwise,
    # level by level — 20 × `esco { customers … }` each 20 times took it 1.7 s.
    max_field_repeats: int = 20
    # The analysis is linear in the document (a few ms for the largest allowed one);
    # this wall-clock bound is only the backstop, loose enough that a starved machine
    # (a GC pause, a busy core) never refuses an honest query.
    max_analysis_seconds: float = 1.0


# Fields returning month-ranged lists, and other (small) lists, by name.
MONTH_LISTS = frozenset(
    {
        "monthlyUsage",
        "monthlyCosts",
        "solarCredits",
        "tariffs",
        "microgridTariffs",
        "benchmarkTariffs",
        "statements",
        "monthlySummaries",
    }
)
SMALL_LISTS = frozenset(
    {
        "accounts",
        "customers",
        "circuits",
        "meters",
        "sites",
        "invites",
        "contractTerms",
        "solarCreditTariffs",
        "skipped",
        "nodes",
        "edges",
        "regions",
        "statusHistory",
    }
)
PAGED_ARGS = ("first", "last")


class TooComplex(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@functools.lru_cache(maxsize=512)
def _parse(query: str, max_tokens: int) -> DocumentNode:
    return parse(query, max_tokens=max_tokens)


def document(query: str, limits: Limits) -> DocumentNode | None:
    """The parsed document, or None when it does not parse (GraphQL reports that)."""
    try:
        return _parse(query, limits.max_tokens)
    except GraphQLError as exc:
        if "tokens" in exc.message and "aborted" in exc.message:
            raise TooComplex(f"The query has more than {limits.max_tokens} tokens.") from exc
        if "nested too deeply" in exc.message:
            raise TooComplex(f"The query is nested deeper than {limits.max_depth} levels.") from exc
        return None
    except RecursionError as exc:
        # The parser recurses once per nesting level: `{a{a{a…` 2,000 deep within the
        # token limit would otherwise escape as an internal error.
        raise TooComplex(f"The query is nested deeper than {limits.max_depth} levels.") from exc


@dataclass(frozen=True)
class _Cost:
    """What a selection set costs wherever it is spread: its estimated cost, its
    height (nesting levels, itself included) and the aliases it holds."""

    cost: int
    height: int
    aliases: int


_NOTHING = _Cost(0, 0, 0)


@dataclass
class _Walk:
    """The cost walk: every fragment is costed once (its type condition fixes what it
    costs, wherever it is spread), and the walk stops as soon as a limit is passed —
    every figure only grows on the way up, so a part over a limit means the whole is.
    Linear in the document, which the token limit bounds; a clock bounds it too."""

    limits: Limits
    fragments: Mapping[str, FragmentDefinitionNode]
    variables: Mapping[str, Any]
    defaults: Mapping[str, Any]
    schema: GraphQLSchema | None = None
    introspects: bool = False
    costed: dict[str, _Cost] = field(default_factory=dict)
    costing: set[str] = field(default_factory=set)
    merged_fragments: dict[str, dict[tuple[str, ...], int]] = field(default_factory=dict)
    steps: int = 0
    deadline: float = 0.0
    # The variables the walk read (None: some literal may hold any of them): the
    # verdict is the same for every request sending the same values of those.
    reads: set[str] | None = field(default_factory=set)

    def __post_init__(self) -> None:
        self.deadline = time.perf_counter() + self.limits.max_analysis_seconds

    # -- values ---------------------------------------------------------------------

    def value(self, node: ValueNode) -> Any:
        """An argument's value as the resolver will see it: a literal, a variable as
        sent, or unsent, the variable's default (None when it has none)."""
        if isinstance(node, VariableNode):
            name = node.name.value
            if self.reads is not None:
                self.reads.add(name)
            if name in self.variables:
                return self.variables[name]
            default = self.defaults.get(name)
            return None if default is None else _literal(default, {})
        if isinstance(node, ListValueNode | ObjectValueNode):
            self.reads = None  # a list or object literal may hold variables
        return _literal(node, dict(self.variables))

    def page_size(self, node: FieldNode) -> int:
        """The rows a connection returns: `first`/`last` as resolved, else the default."""
        sizes = []
        for argument in node.arguments or ():
            if argument.name.value not in PAGED_ARGS:
                continue
            size = _as_int(self.value(argument.value))
            if size is None:
                continue
            if size > self.limits.max_page_size:
                raise TooComplex(
                    f"`{argument.name.value}` is over the page size limit "
                    f"({self.limits.max_page_size})."
                )
            sizes.append(max(size, 0))
        # An unset or null `first` is the default page, not a page of one.
        return max(sizes) if sizes else self.limits.default_page_size

    def list_length(self, node: FieldNode, argument_name: str) -> int | None:
        for argument in node.arguments or ():
            if argument.name.value == argument_name:
                value = self.value(argument.value)
                return len(value) if isinstance(value, list) else 1
        return None

    # -- sizes ------------------------------------------------------------------------

    def size(self, node: FieldNode, parent: GraphQLNamedType | None) -> tuple[int, Any]:
        """How many times a field's selection is answered, and the field's type."""
        name = node.name.value
        definition = None
        if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            definition = parent.fields.get(name)
        if definition is None:
            return self.size_by_name(node), None
        named = get_named_type(definition.type)
        if named.name.endswith("Connection") and isinstance(named, GraphQLObjectType):
            return self.page_size(node), named
        if not _is_list(definition.type):
            return 1, named
        if parent is not None and parent.name.endswith("Connection"):
            return 1, named  # edges/nodes: the connection's page is counted on it
        ids = self.list_length(node, "ids")
        if ids is not None:
            return ids, named
        if name in MONTH_LISTS:
            return self.limits.month_list_size, named
        return self.limits.list_size, named

    def size_by_name(self, node: FieldNode) -> int:
        """Without a schema (or for a field it lacks: validation refuses it later)."""
        name = node.name.value
        if node.selection_set is None or name in ("edges", "nodes"):
            return 1
        if any(a.name.value in PAGED_ARGS for a in node.arguments or ()):
            return self.page_size(node)
        if name in MONTH_LISTS:
            return self.limits.month_list_size
        if name in SMALL_LISTS:
            return self.limits.list_size
        if _is_connection(node):
            return self.limits.default_page_size
        return 1

    # -- the walk -----------------------------------------------------------------------

    def tick(self) -> None:
        self.steps += 1
        if self.steps % 64 == 0 and time.perf_counter() > self.deadline:
            raise TooComplex("The query took too long to analyse.")

    def over(self, found: _Cost, depth: int) -> None:
        """Raise when a part already passes a limit (then so does the whole)."""
        limits = self.limits
        if depth + found.height - 1 > limits.max_depth:
            raise TooComplex(f"The query is nested deeper than {limits.max_depth} levels.")
        if found.aliases > limits.max_aliases:
            raise TooComplex(f"The query uses more than {limits.max_aliases} aliases.")
        if found.cost > limits.max_cost:
            raise TooComplex(f"The query's estimated cost is over the limit of {limits.max_cost}.")

    def selections(
        self, selection_set: SelectionSetNode, parent: GraphQLNamedType | None, depth: int
    ) -> _Cost:
        self.tick()
        if depth > self.limits.max_depth:
            raise TooComplex(f"The query is nested deeper than {self.limits.max_depth} levels.")
        cost, height, aliases = 0, 1, 0
        for selection in selection_set.selections:
            inner = _NOTHING
            if isinstance(selection, FieldNode):
                if selection.alias is not None:
                    aliases += 1
                if selection.name.value in ("__schema", "__type"):
                    self.introspects = True
                size, field_type = self.size(selection, parent)
                if selection.selection_set is not None:
                    inner = self.selections(selection.selection_set, field_type, depth + 1)
                cost += 1 + max(size, 1) * inner.cost
                height = max(height, 1 + inner.height)
            else:
                if isinstance(selection, InlineFragmentNode):
                    inner = self.selections(
                        selection.selection_set, self.type_of(selection, parent), depth
                    )
                elif isinstance(selection, FragmentSpreadNode):
                    inner = self.fragment(selection.name.value, depth)
                cost += inner.cost
                height = max(height, inner.height)
            aliases += inner.aliases
            self.over(_Cost(cost, height, aliases), depth)
        return _Cost(cost, height, aliases)

    def fragment(self, name: str, depth: int) -> _Cost:
        found = self.costed.get(name)
        if found is not None:
            self.tick()
            self.over(found, depth)
            return found
        fragment = self.fragments.get(name)
        if fragment is None or name in self.costing:
            return _NOTHING  # unknown or cyclic: validation reports it
        self.costing.add(name)
        found = self.selections(fragment.selection_set, self.type_of(fragment, None), depth)
        self.costing.discard(name)
        self.costed[name] = found
        return found

    def type_of(
        self, node: InlineFragmentNode | FragmentDefinitionNode, parent: GraphQLNamedType | None
    ) -> GraphQLNamedType | None:
        if node.type_condition is None:
            return parent
        if self.schema is None:
            return None
        return self.schema.get_type(node.type_condition.name.value)

    # -- fields merged into one response path --------------------------------------------

    def merged(self, selection_set: SelectionSetNode) -> dict[tuple[str, ...], int]:
        """How many field nodes answer each response path below this selection set,
        through every fragment (each costed once). Run after the cost check, which
        bounds the sum of these counts."""
        counts: dict[tuple[str, ...], int] = {}
        for selection in selection_set.selections:
            self.tick()
            if isinstance(selection, FieldNode):
                key = ((selection.alias or selection.name).value,)
                inner: dict[tuple[str, ...], int] = {(): 1}
                if selection.selection_set is not None:
                    inner.update(self.merged(selection.selection_set))
                found = {key + path: count for path, count in inner.items()}
            elif isinstance(selection, InlineFragmentNode):
                found = self.merged(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                found = self.merged_fragment(selection.name.value)
            else:
                continue
            for path, count in found.items():
                total = counts.get(path, 0) + count
                if total > self.limits.max_field_repeats:
                    raise TooComplex(
                        f"`{'.'.join(path)}` is selected more than "
                        f"{self.limits.max_field_repeats} times."
                    )
                counts[path] = total
        return counts

    def merged_fragment(self, name: str) -> dict[tuple[str, ...], int]:
        found = self.merged_fragments.get(name)
        if found is not None:
            return found
        fragment = self.fragments.get(name)
        if fragment is None or name in self.costing:
            return {}
        self.costing.add(name)
        found = self.merged(fragment.selection_set)
        self.costing.discard(name)
        self.merged_fragments[name] = found
        return found

    # -- mutations' input rows ------------------------------------------------------------

    def input_rows(self, selection_set: SelectionSetNode) -> int:
        """Rows the root fields of a mutation carry: each field the elements of the
        lists in its arguments, and at least one (20 aliased imports count 20 times; one
        import of the maximum, 10,000 rows, is 10,000, as docs/limits.md says)."""
        rows = 0
        for selection in selection_set.selections:
            self.tick()
            if isinstance(selection, FieldNode):
                rows += max(
                    1,
                    sum(
                        _elements(self.value(argument.value))
                        for argument in selection.arguments or ()
                    ),
                )
            elif isinstance(selection, InlineFragmentNode):
                rows += self.input_rows(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None and selection.name.value not in self.costing:
                    self.costing.add(selection.name.value)
                    rows += self.input_rows(fragment.selection_set)
                    self.costing.discard(selection.name.value)
            if rows > self.limits.max_input_rows:
                raise TooComplex(
                    f"The mutations of a request may carry at most "
                    f"{self.limits.max_input_rows} input rows."
                )
        return rows


def _literal(node: ValueNode, variables: dict[str, Any]) -> Any:
    try:
        return value_from_ast_untyped(node, variables)
    except ValueError:  # e.g. an Int literal of 5,000 digits: validation refuses it
        return None


def _as_int(value: Any) -> int | None:
    # GraphQL's Int takes 100.0 as 100: so must the estimate.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _elements(value: Any) -> int:
    """List elements anywhere in an argument value, iteratively (values are hostile)."""
    count, pending = 0, [value]
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            count += len(item)
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item.values())
    return count


def _is_list(graphql_type: Any) -> bool:
    if isinstance(graphql_type, GraphQLNonNull):
        graphql_type = graphql_type.of_type
    return isinstance(graphql_type, GraphQLList)


def _is_connection(node: FieldNode) -> bool:
    if node.selection_set is None:
        return False
    names = {s.name.value for s in node.selection_set.selections if isinstance(s, FieldNode)}
    return bool(names & {"edges", "nodes", "pageInfo", "totalCount"})


@dataclass(frozen=True)
class Verdict:
    cost: int
    introspects: bool
    operation: str  # "query", "mutation" or "subscription"
    # The variables the verdict depends on (None: possibly all of them; trusted.py).
    reads: frozenset[str] | None = field(default=None, compare=False)


def check(
    query: str,
    variables: Mapping[str, Any] | None,
    operation_name: str | None,
    limits: Limits,
    schema: GraphQLSchema | None = None,
) -> Verdict | None:
    """Raise TooComplex when the request is over a limit; None when it does not parse
    (GraphQL's own validation then answers). With `schema`, connections and lists are
    told by their types, else by their names."""
    doc = document(query, limits)
    if doc is None:
        return None
    operations = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) > limits.max_operations:
        raise TooComplex(f"A document may hold at most {limits.max_operations} operations.")
    fragments = {d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)}
    chosen = [
        op
        for op in operations
        if operation_name is None or (op.name is not None and op.name.value == operation_name)
    ]
    candidates = chosen or operations
    if not candidates:
        return None
    operation = candidates[0]
    defaults = {
        definition.variable.name.value: definition.default_value
        for definition in operation.variable_definitions or ()
        if definition.default_value is not None
    }
    walk = _Walk(limits, fragments, variables or {}, defaults, schema)
    root = None
    if schema is not None:
        root = schema.get_root_type(operation.operation)
    cost = walk.selections(operation.selection_set, root, 1).cost
    # Validation runs on every fragment of the document, used or not; cost them all
    # (each once) so that nothing the limits did not see reaches it.
    for name in fragments:
        walk.fragment(name, 1)
    walk.merged(operation.selection_set)
    for name in fragments:
        walk.merged_fragment(name)
    if operation.operation.value == "mutation":
        walk.input_rows(operation.selection_set)
    reads = frozenset(walk.reads) if walk.reads is not None else None
    return Verdict(cost, walk.introspects, operation.operation.value, reads)


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(text: str) -> bool:
    """PostgreSQL text holds no NUL character, and UTF-8 has no unpaired surrogate."""
    return _UNSTORABLE.search(text) is not None


def _strings(value: Any) -> Any:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def has_unstorable_text(query: str, variables: Mapping[str, Any] | None, limits: Limits) -> bool:
    """Whether any string of the request (variables or literals) could not be stored
    or even sent to PostgreSQL; such a request is refused before it runs."""
    if any(unstorable(s) for s in _strings(variables or {})):
        return True
    return document(query, limits) is not None and _literals_unstorable(query, limits.max_tokens)


@functools.lru_cache(maxsize=512)
def _literals_unstorable(query: str, max_tokens: int) -> bool:
    # Cached by query text like the parse, so a repeated query walks its literals once.
    doc = _parse(query, max_tokens)
    return any(isinstance(node, StringValueNode) and unstorable(node.value) for node in _walk(doc))


def _walk(node: Any) -> Any:
    yield node
    for key in getattr(node, "keys", ()):
        child = getattr(node, key, None)
        if isinstance(child, Node):
            yield from _walk(child)
        elif isinstance(child, tuple | list):
            for item in child:
                if isinstance(item, Node):
                    yield from _walk(item)
