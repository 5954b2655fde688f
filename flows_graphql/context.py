"""What every resolver can reach: settings, the viewer, the request's database access."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from .auth.viewer import Viewer
from .config import Settings
from .cutoff import Cutoff
from .db.request import RequestDb
from .faults import Outcome
from .loaders import Loaders
from .rules.clock import Today, london_today


@dataclass
class Context:
    request: Request | None
    settings: Settings
    viewer: Viewer
    db: RequestDb
    # The billing clock (Europe/London); tests inject a fixed day.
    today: Today = london_today
    # When the request must stop (cutoff.py), and what its mutations met (faults.py).
    cutoff: Cutoff = field(default_factory=lambda: Cutoff(None))
    outcome: Outcome = field(default_factory=Outcome)
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        # Every loader reads within the viewer's limits (ESCOs; a customer's own rows).
        self.loaders = Loaders(self.db, self.viewer.esco_scope, self.viewer.customer_id)

    async def close(self) -> None:
        await self.db.close()
        self.loaders.release()
