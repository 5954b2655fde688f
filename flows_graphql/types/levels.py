"""Level resolvers: a field resolved for every row of a level in one call.

The breadth-first walk (breadth_first.py) resolves a field for all the objects of a
level together. A field whose value comes from a loader can then skip the per-row
resolver call, its argument conversion and its future: it collects the level's keys
and asks the loader once. Each such field keeps its per-row resolver, which
graphql-core's walk uses and which must give the same values (tests/test_breadth_first.py
compares the two walks).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from operator import attrgetter
from typing import Any

from graphql import GraphQLResolveInfo

from ..loaders.base import BaseLoader
from .projection import projection

LEVEL = "flows.level"

# (the level's source rows, the field's info, its arguments by GraphQL name) → values,
# or an awaitable of them.
LevelResolve = Callable[
    [list[Any], GraphQLResolveInfo, dict[str, Any]], list[Any] | Awaitable[list[Any]]
]


def level(resolve: LevelResolve) -> dict[str, Any]:
    """Field metadata: resolve this field a whole level at a time."""
    return {LEVEL: resolve}


def by_loader(loader: type[BaseLoader], key: str = "id", *params: str) -> LevelResolve:
    """The level resolver of a field answered by `loader` from each row's `key` column,
    the loader made with the field's arguments `params` (e.g. "from", "to")."""
    get_key = attrgetter(key)

    async def resolve(sources: list[Any], info: GraphQLResolveInfo, args: dict[str, Any]) -> Any:
        made = info.context.loaders.get(
            loader, *(args.get(name) for name in params), columns=projection(info)
        )
        return await made.load_level(list(map(get_key, sources)))

    return resolve
