"""The Node interface, global ids, and how `node(id:)` finds any object.

Types read their fields straight off database rows (see loaders/base.py), so the
resolvers here take the row as `root`. A global id is base64url("Type:key"); the key
is the row's uuid, or for rows keyed by several columns (tariffs, occupancies) those
values joined by "|".
"""

from __future__ import annotations

import base64
import binascii
import uuid as uuid_mod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import strawberry
from graphql import GraphQLAbstractType, GraphQLResolveInfo

from ..fields import declare
from ..loaders.base import Loaders, RowLoader


def to_global_id(type_name: str, key: object) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{key}".encode()).decode().rstrip("=")


def from_global_id(global_id: str) -> tuple[str, str] | None:
    """(type name, key), or None when the id is not one of ours."""
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        type_name, sep, key = base64.urlsafe_b64decode(padded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    # A NUL cannot reach PostgreSQL: such an id names nothing (composite keys are text).
    return (type_name, key) if sep and type_name and key and "\x00" not in key else None


def parse_id(value: str, type_name: str) -> uuid_mod.UUID | None:
    """An `ID` argument: the global id of a `type_name`, or a bare uuid (partners keep
    the uuids they stored). None when it names another type or nothing."""
    try:
        return uuid_mod.UUID(value)
    except ValueError:
        pass
    decoded = from_global_id(value)
    if decoded is None or decoded[0] != type_name:
        return None
    try:
        return uuid_mod.UUID(decoded[1])
    except ValueError:
        return None


class TypedRow:
    """A row that knows its GraphQL type, for fields typed as the Node interface."""

    __slots__ = ("row", "typename")

    def __init__(self, typename: str, row: Any) -> None:
        self.typename = typename
        self.row = row

    def __getattr__(self, name: str) -> Any:
        return getattr(self.row, name)


@strawberry.interface(description="An object with an opaque global id.")
class Node:
    id: strawberry.ID = strawberry.field(
        description="Opaque global id; `node(id:)` resolves it to this object."
    )

    @classmethod
    def resolve_type(
        cls, obj: Any, info: GraphQLResolveInfo, abstract_type: GraphQLAbstractType
    ) -> str:
        return str(obj.typename)


class RowType:
    """Base of the types served from rows: the row is always of the declared type
    (execution.install marks these types, and the breadth-first walk skips the check).
    Every resolver of such a type declares the columns it reads (fields.py)."""

    @classmethod
    def is_type_of(cls, obj: Any, info: GraphQLResolveInfo) -> bool:
        return True


def global_id(type_name: str, *key_columns: str) -> Any:
    """A resolver for `id`: the global id of the row (keyed by `id`, or by the given
    columns)."""
    if not key_columns:

        def resolve_uuid_key(root: Any) -> strawberry.ID:
            return strawberry.ID(to_global_id(type_name, root.id))

        return strawberry.field(
            resolver=resolve_uuid_key,
            description="Opaque global id; `node(id:)` resolves it to this object.",
            metadata=declare("id"),
        )

    def resolve_composite(root: Any) -> strawberry.ID:
        # Enum columns (CustomerAccount.role) contribute their value, as the fetch parses it.
        key = "|".join(str(getattr(v, "value", v)) for v in (getattr(root, c) for c in key_columns))
        return strawberry.ID(to_global_id(type_name, key))

    return strawberry.field(
        resolver=resolve_composite,
        description="Opaque global id; `node(id:)` resolves it to this object.",
        metadata=declare(*key_columns),
    )


def _uuid_of(root: Any) -> uuid_mod.UUID:
    return root.id


def uuid_field() -> Any:
    return strawberry.field(
        resolver=_uuid_of,
        description="The id of this object in the database.",
        metadata=declare("id"),
    )


# How node(id:) finds each type: the type name → fetch(loaders, key) → row or None.
Fetch = Callable[[Loaders, str], Awaitable[Any]]


@dataclass(frozen=True)
class NodeSource:
    fetch: Fetch
    # The loader finding the type by its uuid (by_uuid), which compiled.py reads too.
    loader: type[RowLoader] | None = None


NODE_SOURCES: dict[str, NodeSource] = {}


def by_uuid(loader: type[RowLoader]) -> NodeSource:
    async def fetch(loaders: Loaders, key: str) -> Any:
        try:
            key_uuid = uuid_mod.UUID(key)
        except ValueError:
            return None
        return await loaders.get(loader).load(key_uuid)

    return NodeSource(fetch, loader)


def register_node(type_name: str, source: NodeSource) -> None:
    NODE_SOURCES[type_name] = source


async def resolve_node(loaders: Loaders, global_id_value: str) -> TypedRow | None:
    decoded = from_global_id(global_id_value)
    if decoded is None:
        return None
    type_name, key = decoded
    source = NODE_SOURCES.get(type_name)
    if source is None:
        return None
    row = await source.fetch(loaders, key)
    return TypedRow(type_name, row) if row is not None else None
