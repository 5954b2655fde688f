"""Rows as the GraphQL types read them."""

from __future__ import annotations

from typing import Any


class PrefixedRow:
    """The columns of a joined row that carry a prefix, read without it: the costs of a
    usage row fetched with it are `costs_total`, `costs_id`… and read as `total`, `id`."""

    __slots__ = ("_names", "_row")

    def __init__(self, row: Any, prefix: str) -> None:
        self._row = row
        # The prefixed names, made once per prefix rather than on every read.
        names = _PREFIXED.get(prefix)
        self._names = (
            names if names is not None else _PREFIXED.setdefault(prefix, _Prefixed(prefix))
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._row, self._names[name])


class _Prefixed(dict[str, str]):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def __missing__(self, name: str) -> str:
        self[name] = prefixed = self.prefix + name
        return prefixed


_PREFIXED: dict[str, _Prefixed] = {}
