"""Rows as the GraphQL types read them."""

from __future__ import annotations

import functools
from collections import namedtuple
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from .caches import Bounded

# A row shape's part under a prefix: how to pick its values, and the named tuple of them.
Shape = tuple[Callable[[Any], tuple[Any, ...]], Callable[..., Any]]
# Client queries choose the column sets (types/projection.py): a bounded number kept.
_SHAPES: dict[tuple[str, tuple[str, ...]], Shape] = Bounded(256)


def part_shape(fields: tuple[str, ...], prefix: str) -> Shape:
    """How to read the columns of rows with `fields` named `prefix…` as an object of
    their own, named without the prefix: the costs a usage row carries as `costs_id`,
    `costs_total`… read as `id`, `total`. A named tuple, so each read is one C-level
    index rather than a name lookup through the row."""
    key = (prefix, fields)
    shape = _SHAPES.get(key)
    if shape is None:
        indexes = [i for i, name in enumerate(fields) if name.startswith(prefix)]
        names = [fields[i][len(prefix) :] for i in indexes]
        cls = namedtuple("RowPart", names)  # type: ignore[misc]  # names known at run time
        pick = itemgetter(*indexes) if len(indexes) > 1 else lambda row: (row[indexes[0]],)
        shape = _SHAPES[key] = (pick, functools.partial(tuple.__new__, cls))
    return shape


def row_part(row: Any, prefix: str) -> Any:
    """One row's part under `prefix` (see part_shape)."""
    pick, make = part_shape(row._fields, prefix)
    return make(pick(row))
