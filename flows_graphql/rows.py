"""The one kind of row the GraphQL types read: a named tuple of a statement's columns.

Loaders read most statements straight through asyncpg (db/direct.py) and the rest
through SQLAlchemy; both hand over rows of this module's classes, so a type never asks
which kind of row it holds. A named tuple reads a column with one C-level index
(rather than a name lookup through a SQLAlchemy Row), has `_fields`, indexes like the
Row it replaces, and is never awaitable (execution.py answers that without probing).
"""

from __future__ import annotations

import functools
from collections import namedtuple
from collections.abc import Callable, Iterable
from operator import itemgetter
from typing import Any

from .caches import Bounded

# A statement's columns → the class of its rows, and how to make one from a sequence.
RowShape = tuple[type, Callable[[Iterable[Any]], Any]]
# Client queries choose the column sets (fields.projection): a bounded number kept.
_CLASSES: dict[tuple[str, ...], RowShape] = Bounded(1024)

# A row shape's part under a prefix: how to pick its values, and the named tuple of them.
Shape = tuple[Callable[[Any], tuple[Any, ...]], Callable[..., Any]]
_SHAPES: dict[tuple[str, tuple[str, ...]], Shape] = Bounded(256)


def row_shape(names: tuple[str, ...]) -> RowShape:
    """The row class of a statement with columns `names`, and its maker."""
    shape = _CLASSES.get(names)
    if shape is None:
        # rename: a name that is no identifier (or repeated) must not stop the read.
        cls = namedtuple("Row", names, rename=True)  # type: ignore[misc]  # names known at run time
        # tuple.__new__ straight: `_make` is a Python call per row.
        shape = _CLASSES[names] = (cls, functools.partial(tuple.__new__, cls))
    return shape


def from_sqlalchemy(rows: Iterable[Any], names: Iterable[str]) -> list[Any]:
    """SQLAlchemy's rows (of a result with columns `names`) as this module's rows."""
    _, make = row_shape(tuple(names))
    return list(map(make, rows))


def part_shape(fields: tuple[str, ...], prefix: str) -> Shape:
    """How to read the columns of rows with `fields` named `prefix…` as an object of
    their own, named without the prefix: the costs a usage row carries as `costs_id`,
    `costs_total`… read as `id`, `total`. A named tuple, so each read is one C-level
    index rather than a name lookup through the row."""
    key = (prefix, fields)
    shape = _SHAPES.get(key)
    if shape is None:
        indexes = [i for i, name in enumerate(fields) if name.startswith(prefix)]
        names = tuple(fields[i][len(prefix) :] for i in indexes)
        pick = itemgetter(*indexes) if len(indexes) > 1 else lambda row: (row[indexes[0]],)
        shape = _SHAPES[key] = (pick, row_shape(names)[1])
    return shape


def row_part(row: Any, prefix: str) -> Any:
    """One row's part under `prefix` (see part_shape)."""
    pick, make = part_shape(row._fields, prefix)
    return make(pick(row))
