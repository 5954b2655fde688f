"""Rows as the GraphQL types read them."""

from __future__ import annotations

from typing import Any


class PrefixedRow:
    """The columns of a joined row that carry a prefix, read without it: the costs of a
    usage row fetched with it are `costs_total`, `costs_id`… and read as `total`, `id`."""

    __slots__ = ("_prefix", "_row")

    def __init__(self, row: Any, prefix: str) -> None:
        self._row = row
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        return getattr(self._row, self._prefix + name)
