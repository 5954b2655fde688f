"""Relationship fields: the row a column of this row points at, through a loader.

No `from __future__ import annotations` here: `relation` builds resolvers whose
return annotations Strawberry must read as real objects.
"""

from typing import Any

import strawberry

from ..context import Context
from ..loaders.base import BaseLoader
from .levels import by_loader, level
from .projection import projection, reads


def relation(target: Any, loader: type[BaseLoader], key: str, description: str) -> Any:
    """A field resolved by `loader` from the `key` column of the row it sits on (null
    when that column is null). The resolver is synchronous and hands graphql-core the
    loader's future, so a relation costs no coroutine of its own."""

    def resolve(root: Any, info: strawberry.Info[Context, None]) -> Any:
        value = getattr(root, key)
        if value is None:
            return None
        return info.context.loaders.get(loader, columns=projection(info)).load(value)

    resolve.__annotations__["return"] = target
    return strawberry.field(
        resolver=resolve,
        description=description,
        metadata={**reads(key), **level(by_loader(loader, key))},
    )
