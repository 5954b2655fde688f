"""What every resolver can reach: settings, the viewer, the request's database access."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from .auth.viewer import Viewer
from .config import Settings
from .db.request import RequestDb
from .loaders import Loaders


@dataclass
class Context:
    request: Request | None
    settings: Settings
    viewer: Viewer
    db: RequestDb
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        # Every loader filters by the viewer's ESCO scope.
        self.loaders = Loaders(self.db, self.viewer.esco_scope)

    async def close(self) -> None:
        await self.db.close()
