"""Loader reads straight through asyncpg, past SQLAlchemy's execution layer.

A loader's statement is built once and run on every request. SQLAlchemy would, on
each run, work out the statement's cache key, set up an execution context and a
result, and wrap every record in a Row: about 150 µs a statement plus a little per
row, a tenth of a dashboard request (bench/README.md). Here a statement is compiled
once into its SQL, the order of its parameters and a named-tuple class for its rows;
a run binds the parameters, fetches the records on the request's connection and makes
each a row of rows.py (a named tuple, the rows of every read).

Only what SQLAlchemy would hand over unchanged is read this way: columns whose types
need no result processing under asyncpg, plus enums, converted as SQLAlchemy does. A
statement with any other column type, or one SQLAlchemy must render at execution time
(expanding parameters), goes through SQLAlchemy as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Enum, Executable
from sqlalchemy.dialects.postgresql import ARRAY, JSON, JSONB, UUID
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import sqltypes

from ..caches import Bounded
from ..rows import row_shape

# Column types asyncpg returns as SQLAlchemy would (no result processor).
_PLAIN_TYPES = (
    sqltypes.String,
    sqltypes.Integer,
    sqltypes.Numeric,
    sqltypes.Boolean,
    sqltypes.Date,
    sqltypes.DateTime,
    sqltypes.NullType,
    UUID,
    sqltypes.Uuid,
    JSON,
    JSONB,
)


class Compiled:
    """A statement ready to run on asyncpg, or `None` from `compile_direct` when it
    must go through SQLAlchemy."""

    __slots__ = ("binds", "constants", "convert", "make", "names", "sql")

    def __init__(
        self,
        sql: str,
        names: list[str],
        constants: dict[str, Any],
        binds: dict[str, Callable[[Any], Any]],
        make: Callable[..., Any],
        convert: list[tuple[int, Callable[[Any], Any]]],
    ) -> None:
        self.sql = sql
        self.names = names
        self.constants = constants
        self.binds = binds
        self.make = make
        self.convert = convert

    def arguments(self, params: dict[str, Any]) -> list[Any]:
        values = {**self.constants, **params}
        out = []
        for name in self.names:
            value = values[name]
            bind = self.binds.get(name)
            out.append(bind(value) if bind is not None and value is not None else value)
        return out

    def rows(self, records: Sequence[Any]) -> list[Any]:
        make = self.make
        if not self.convert:
            return list(map(make, records))
        rows = []
        for record in records:
            values = list(record)
            for index, convert in self.convert:
                if values[index] is not None:
                    values[index] = convert(values[index])
            rows.append(make(values))
        return rows


def compile_direct(statement: Executable, dialect: Dialect) -> Compiled | None:
    compiled: Any = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    if "POSTCOMPILE" in compiled.string or compiled.positiontup is None:
        return None
    columns = compiled._result_columns
    keys = [column.keyname for column in columns]
    if len(set(keys)) != len(keys) or not all(key.isidentifier() for key in keys):
        return None
    convert: list[tuple[int, Callable[[Any], Any]]] = []
    for index, column in enumerate(columns):
        type_ = column.type
        if isinstance(type_, Enum):
            processor = type_._cached_result_processor(dialect, None)
            if processor is not None:
                convert.append((index, processor))
        elif isinstance(type_, ARRAY) or not isinstance(type_, _PLAIN_TYPES):
            return None
    binds = {
        name: processor
        for name, processor in compiled._bind_processors.items()
        if processor is not None
    }
    # The rows the GraphQL types read (rows.py), as SQLAlchemy's reads give them too.
    _, make = row_shape(tuple(keys))
    # Literal values of the statement; the named parameters come with each run.
    constants = {
        name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required
    }
    return Compiled(compiled.string, list(compiled.positiontup), constants, binds, make, convert)


# Statements are kept with their compiled form, so an id is not reused while cached.
_COMPILED: dict[int, tuple[Executable, Compiled | None]] = Bounded(1024)


def compiled_for(statement: Executable, dialect: Dialect) -> Compiled | None:
    cached = _COMPILED.get(id(statement))
    if cached is not None and cached[0] is statement:
        return cached[1]
    direct = compile_direct(statement, dialect)
    _COMPILED[id(statement)] = (statement, direct)
    return direct
