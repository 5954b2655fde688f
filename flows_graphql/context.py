"""What every resolver can reach: settings, the viewer, the request's database access."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.websockets import WebSocket

from .auth.viewer import Viewer
from .config import Settings
from .cutoff import Cutoff
from .db.request import RequestDb
from .faults import Outcome
from .live.broker import Broker
from .loaders import Loaders
from .rules.clock import Today, london_today
from .services.billing_jobs import BillingJobs


@dataclass
class Context:
    request: Request | None
    settings: Settings
    viewer: Viewer
    db: RequestDb
    # The billing clock (Europe/London); tests inject a fixed day.
    today: Today = london_today
    # The process's event-log reader (subscriptions).
    broker: Broker | None = None
    # A graphql-transport-ws connection: its socket and `connection_init` payload
    # (Strawberry sets `connection_params`).
    socket: WebSocket | None = None
    connection_params: dict[str, Any] | None = None
    # The subscriptions of one connection share this context: each event takes its
    # turn, with a snapshot of its own (renew).
    delivery: asyncio.Lock = field(default_factory=asyncio.Lock)
    # When the request must stop (cutoff.py), and what its mutations met (faults.py).
    cutoff: Cutoff = field(default_factory=lambda: Cutoff(None))
    outcome: Outcome = field(default_factory=Outcome)
    # The server's billing runs (runBilling starts them here).
    billing_jobs: BillingJobs | None = None
    # Set once the operation runs (execution.py): an error without a path after that
    # is a failure of the execution itself, not of the document or its variables.
    executing: bool = False
    # The view closes the database access itself, once the answer is sent
    # (graphql_view._post): the read's ROLLBACK is then off the answer's path.
    close_after_answer: bool = False
    loaders: Loaders = field(init=False)
    # While an event's shared reads are lent (`lend`): the context's own, given back after.
    _own: tuple[RequestDb, Loaders] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        # Every loader reads within the viewer's limits (ESCOs; a customer's own rows).
        self.loaders = Loaders(self.db, self.viewer.esco_scope, self.viewer.customer_id)
        self.loaders.today = self.today

    def become(self, viewer: Viewer) -> None:
        """Run the rest of the request as `viewer` (an identity that a mutation has just
        linked). Only between statements: the read snapshot was ended by the write."""
        self.viewer = viewer
        self.db.rescope(viewer.esco_scope)
        self.loaders.release()
        self.loaders = Loaders(self.db, viewer.esco_scope, viewer.customer_id)

    async def close(self) -> None:
        # Shared reads lent to this context are their owner's to close (live/sharing.py).
        db, loaders = self._own if self._own is not None else (self.db, self.loaders)
        await db.close()
        loaders.release()

    @contextlib.contextmanager
    def lend(self, db: RequestDb, loaders: Loaders) -> Iterator[None]:
        """Resolve with `db` and `loaders` (an event's reads shared by every subscriber
        of the same reads) instead of the context's own, until the block ends."""
        assert self._own is None, "one event at a time per connection (delivery)"
        self._own = (self.db, self.loaders)
        self.db, self.loaders = db, loaders
        try:
            yield
        finally:
            self.db, self.loaders = self._own
            self._own = None

    async def renew(self, viewer: Viewer | None = None) -> None:
        """A fresh snapshot and loaders, for the next event of a long-lived connection
        (and for its viewer once `connection_init` has said who it is)."""
        await self.close()
        if viewer is not None:
            self.viewer = viewer
        self.db = self.db.fresh(self.viewer.esco_scope)
        self.loaders = Loaders(self.db, self.viewer.esco_scope, self.viewer.customer_id)
