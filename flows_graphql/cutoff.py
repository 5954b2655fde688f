"""When a request must stop: its running-time cap (`FLOWS_REQUEST_TIMEOUT_S`), the end
of the shutdown grace (`FLOWS_SHUTDOWN_GRACE_S`), or, for reads, its client hanging up.

A request carries one `Cutoff`; the work that may be stopped runs in its `scope()`s,
and moving the cutoff earlier (shutdown, hang-up) moves every open scope with it. The
whole request runs in one scope (app.Bounded): a query stopped there drops its reads
and is answered with one error. Mutations each run in a scope of their own
(resolvers/mutation.py), and a request of mutations moves its outer scope a little
later (`relax`), so that it is the mutation's scope that stops: that one rolls back,
the later ones do not start, the earlier ones stay committed, and the answer lists each
one's outcome. (One timer per scope: they cost some 10 µs each, so a query has one.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

from .faults import Cut

# Time left at the end of the shutdown grace to roll back and answer before uvicorn
# cancels what is still running (a plain-text 500).
DRAIN_MARGIN_S = 1.0
# A request of mutations: its outer scope ends this much after its cutoff. The
# mutations' scopes answer at the cutoff itself, this one only if something under them
# did not stop.
BACKSTOP_S = 0.5


class Cutoff:
    def __init__(self, seconds: float | None) -> None:
        self._loop = None if seconds is None else asyncio.get_running_loop()
        self.when: float | None = None
        if seconds is not None and self._loop is not None:
            self.when = self._loop.time() + seconds
        self.reason = "timeout"
        # Open scopes, outermost first: [timer, seconds after the cutoff].
        self._scopes: list[list[Any]] = []

    def cut_at(self, when: float, reason: str) -> None:
        """Stop the request at loop time `when`, if that is earlier than planned."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        if self.when is not None and when >= self.when:
            return
        self.when, self.reason = when, reason
        for timeout, extra in self._scopes:
            timeout.reschedule(when + extra)

    def extend(self, seconds: float) -> None:
        """Let the request run `seconds` from now when that is later than planned: a
        synchronous billing run is bounded by its own timeout (FLOWS_BILLING_TIMEOUT_S),
        not the request's. A shutdown's earlier cut is kept."""
        if self.when is None or self.reason != "timeout":
            return
        when = asyncio.get_running_loop().time() + seconds
        if when <= self.when:
            return
        self.when = when
        for timeout, extra in self._scopes:
            timeout.reschedule(when + extra)

    def cut_now(self, reason: str) -> None:
        self.cut_at(asyncio.get_running_loop().time(), reason)

    @property
    def passed(self) -> bool:
        return self.when is not None and asyncio.get_running_loop().time() >= self.when

    def check(self) -> None:
        if self.passed:
            raise Cut(self.reason)

    def relax(self, extra: float) -> None:
        """End the outermost open scope `extra` seconds after the cutoff."""
        if self._scopes and self.when is not None:
            outer = self._scopes[0]
            outer[1] = extra
            outer[0].reschedule(self.when + extra)

    @contextlib.asynccontextmanager
    async def scope(self, extra: float = 0.0) -> AsyncIterator[None]:
        """Run the block until the cutoff (plus `extra`); past it the block is
        cancelled and `Cut` raised instead."""
        self.check()
        entry: list[Any] | None = None
        try:
            async with asyncio.timeout_at(
                None if self.when is None else self.when + extra
            ) as timeout:
                entry = [timeout, extra]
                self._scopes.append(entry)
                yield
        except TimeoutError as exc:
            # Ours only when our timeout expired; asyncpg's own timeouts pass through.
            if entry is not None and entry[0].expired():
                raise Cut(self.reason) from exc
            raise
        finally:
            if entry is not None:
                self._scopes.remove(entry)


class Cutoffs:
    """The cutoffs of the requests in flight, so a shutdown can bring them forward."""

    def __init__(self, request_timeout_s: float, shutdown_grace_s: float) -> None:
        self.request_timeout_s = request_timeout_s
        self.shutdown_grace_s = shutdown_grace_s
        self.active: set[Cutoff] = set()
        self.drain_at: float | None = None

    @contextlib.contextmanager
    def open(self, seconds: float | None = None) -> Iterator[Cutoff]:
        """A request's cutoff: `seconds` from now (the request cap by default)."""
        cutoff = Cutoff(self.request_timeout_s if seconds is None else seconds)
        if self.drain_at is not None:
            cutoff.cut_at(self.drain_at, "shutdown")
        self.active.add(cutoff)
        try:
            yield cutoff
        finally:
            self.active.discard(cutoff)

    def drain(self) -> None:
        """The server is shutting down: what is in flight may finish within the grace,
        and is stopped (answered, rolled back) just before it ends."""
        grace = self.shutdown_grace_s
        self.drain_at = asyncio.get_running_loop().time() + max(grace - DRAIN_MARGIN_S, grace / 2)
        for cutoff in list(self.active):
            cutoff.cut_at(self.drain_at, "shutdown")
