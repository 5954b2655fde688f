"""Process-wide caches whose keys clients choose (column sets, page windows, statements)."""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Bounded(dict[K, V]):
    """A dict emptied when it reaches `size` entries: new queries keep adding keys, so
    it must not grow without end, and refilling is cheap."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def __setitem__(self, key: K, value: V) -> None:
        if len(self) >= self.size and key not in self:
            self.clear()
        super().__setitem__(key, value)
