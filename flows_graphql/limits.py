"""Checks made before a GraphQL operation runs.

Limits — size, depth, aliases, tokens, operations, page sizes and an estimated cost: a
request over any of them is answered HTTP 400 with `QUERY_TOO_COMPLEX`. And text that
PostgreSQL cannot hold (NUL, unpaired surrogates) is refused with `INVALID`. Neither
reaches a resolver."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    Node,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    VariableNode,
    parse,
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


# Fields returning month-ranged lists, and other (small) lists, by name.
MONTH_LISTS = frozenset(
    {
        "monthlyUsage",
        "monthlyCosts",
        "solarCredits",
        "tariffs",
        "microgridTariffs",
        "benchmarkTariffs",
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
        return None


@dataclass
class _Walk:
    limits: Limits
    fragments: Mapping[str, FragmentDefinitionNode]
    variables: Mapping[str, Any]
    aliases: int = 0
    introspects: bool = False

    def page_size(self, field: FieldNode) -> int | None:
        for argument in field.arguments or ():
            if argument.name.value not in PAGED_ARGS:
                continue
            value: Any = None
            if isinstance(argument.value, IntValueNode):
                value = int(argument.value.value)
            elif isinstance(argument.value, VariableNode):
                value = self.variables.get(argument.value.name.value)
            if isinstance(value, int):
                if value > self.limits.max_page_size:
                    raise TooComplex(
                        f"`{argument.name.value}` is over the page size limit "
                        f"({self.limits.max_page_size})."
                    )
                return max(value, 0)
        return None

    def cost(self, selection_set: SelectionSetNode | None, depth: int, seen: frozenset[str]) -> int:
        if selection_set is None:
            return 0
        if depth > self.limits.max_depth:
            raise TooComplex(f"The query is nested deeper than {self.limits.max_depth} levels.")
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                name = selection.name.value
                if selection.alias is not None:
                    self.aliases += 1
                if name in ("__schema", "__type"):
                    self.introspects = True
                inner = self.cost(selection.selection_set, depth + 1, seen)
                size = self.page_size(selection)
                if size is None and selection.selection_set is not None:
                    if any(
                        a.name.value in PAGED_ARGS for a in selection.arguments or ()
                    ) or name in (
                        "edges",
                        "nodes",
                    ):
                        size = 1  # the connection's own page size is counted on it
                    elif name in MONTH_LISTS:
                        size = self.limits.month_list_size
                    elif name in SMALL_LISTS:
                        size = self.limits.list_size
                if size is None and _is_connection(selection):
                    size = self.limits.default_page_size
                total += 1 + (size or 1) * inner
            elif isinstance(selection, InlineFragmentNode):
                total += self.cost(selection.selection_set, depth, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in seen:
                    continue  # unknown or cyclic: validation reports it
                total += self.cost(fragment.selection_set, depth, seen | {name})
        return total


def _is_connection(field: FieldNode) -> bool:
    if field.selection_set is None:
        return False
    names = {s.name.value for s in field.selection_set.selections if isinstance(s, FieldNode)}
    return bool(names & {"edges", "nodes", "pageInfo", "totalCount"})


@dataclass(frozen=True)
class Verdict:
    cost: int
    introspects: bool
    operation: str  # "query", "mutation" or "subscription"


def check(
    query: str, variables: Mapping[str, Any] | None, operation_name: str | None, limits: Limits
) -> Verdict | None:
    """Raise TooComplex when the request is over a limit; None when it does not parse
    (GraphQL's own validation then answers)."""
    doc = document(query, limits)
    if doc is None:
        return None
    operations = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) > limits.max_operations:
        raise TooComplex(f"A document may hold at most {limits.max_operations} operations.")
    fragments = {d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)}
    walk = _Walk(limits, fragments, variables or {})
    chosen = [
        op
        for op in operations
        if operation_name is None or (op.name is not None and op.name.value == operation_name)
    ]
    candidates = chosen or operations
    if not candidates:
        return None
    operation = candidates[0]
    cost = walk.cost(operation.selection_set, 1, frozenset())
    if walk.aliases > limits.max_aliases:
        raise TooComplex(f"The query uses more than {limits.max_aliases} aliases.")
    if cost > limits.max_cost:
        raise TooComplex(
            f"The query's estimated cost {cost} is over the limit of {limits.max_cost}."
        )
    return Verdict(cost, walk.introspects, operation.operation.value)


def _unstorable(text: str) -> bool:
    """PostgreSQL text holds no NUL character, and UTF-8 has no unpaired surrogate."""
    return "\x00" in text or any("\ud800" <= ch <= "\udfff" for ch in text)


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
    if any(_unstorable(s) for s in _strings(variables or {})):
        return True
    return document(query, limits) is not None and _literals_unstorable(query, limits.max_tokens)


@functools.lru_cache(maxsize=512)
def _literals_unstorable(query: str, max_tokens: int) -> bool:
    # Cached by query text like the parse, so a repeated query walks its literals once.
    doc = _parse(query, max_tokens)
    return any(isinstance(node, StringValueNode) and _unstorable(node.value) for node in _walk(doc))


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
