"""The reads of one event shared by every subscriber of a process who would read the same.

Two subscribers whose reads are built from the same inputs — the viewer's ESCOs, the
customer a customer viewer is, the billing clock: everything `Loaders` and row-level
security are made from — get the same answer from the database, so one read serves
them all: an event's object is read once per process and kind of viewer, not once per
subscriber, and the fields a selection loads beyond it are batched by that kind's one
set of dataloaders. Which kinds of viewer there are is never decided here: the key is
the inputs themselves (operators of an ESCO with the same grants and partner keys of it
share one; each customer is one of their own).

A share is kept while the feeds it was offered to have not all come to it (`expect`,
then `acquire` or `leave`), and read again when it is older than `fresh_seconds`: what
a subscriber sees is decided at most that long before its delivery.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar


class Shared(Protocol):
    failed: bool

    async def idle(self) -> None:
        """Nobody reads through it right now: give back the database connection."""

    def drop(self) -> None:
        """Nobody will: let go of what it holds (idempotent)."""


T = TypeVar("T", bound=Shared)
Key = tuple[int, Hashable]  # (event id, the inputs of the reads)


@dataclass(eq=False, slots=True)
class Share(Generic[T]):
    value: T
    made_at: float
    active: int = 0


@dataclass(slots=True)
class _Entry:
    made_at: float
    pending: int = 0  # offered to feeds that have not come to it yet
    share: Share[Shared] | None = None


@dataclass
class Shares:
    fresh_seconds: float = 1.0
    clock: Callable[[], float] = time.monotonic
    # Entries whose feeds vanished without a word (none should) go after this long.
    forget_seconds: float = 300.0
    _entries: dict[Key, _Entry] = field(default_factory=dict)
    _expected: int = 0

    def __len__(self) -> int:
        return len(self._entries)

    def expect(self, key: Key, feeds: int) -> None:
        """`feeds` feeds of these inputs have queued the event."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(self.clock())
        entry.pending += feeds
        self._expected += 1
        if self._expected % 1024 == 0:
            self._sweep()

    def leave(self, key: Key) -> None:
        """A feed that had the event queued drops it (closed, or catching up)."""
        entry = self._entries.get(key)
        if entry is None:
            return
        entry.pending = max(0, entry.pending - 1)
        self._settle(key, entry)

    def acquire(self, key: Key, expected: bool, make: Callable[[], T]) -> Share[T]:
        """The share to read this event through (made now if none is fresh). Not a
        coroutine: a feed's arrival and its acquisition happen in one step, so no
        other subscriber can drop the share in between."""
        now = self.clock()
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(now)
        if expected and entry.pending > 0:
            entry.pending -= 1
        share = entry.share
        if share is None or share.value.failed or now - share.made_at > self.fresh_seconds:
            if share is not None and share.active == 0:
                share.value.drop()
            share = entry.share = Share(make(), now)
        share.active += 1
        return share  # type: ignore[return-value]  # made by `make` above, or by the same key's

    async def release(self, key: Key, share: Share[T]) -> None:
        share.active -= 1
        if share.active:
            return
        await share.value.idle()
        if share.active:  # taken again meanwhile
            return
        entry = self._entries.get(key)
        if entry is None or entry.share is not share:  # replaced by a fresher one
            share.value.drop()
            return
        self._settle(key, entry)

    def _settle(self, key: Key, entry: _Entry) -> None:
        share = entry.share
        if entry.pending == 0 and (share is None or share.active == 0):
            del self._entries[key]
            if share is not None:
                share.value.drop()

    def _sweep(self) -> None:
        old = self.clock() - self.forget_seconds
        for key, entry in list(self._entries.items()):
            if entry.made_at < old and (entry.share is None or entry.share.active == 0):
                entry.pending = 0
                self._settle(key, entry)
