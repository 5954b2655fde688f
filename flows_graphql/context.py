"""What every resolver can reach: settings, the viewer, the request's database access."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from .auth.viewer import Viewer
from .config import Settings
from .db.request import RequestDb


@dataclass
class Context:
    request: Request | None
    settings: Settings
    viewer: Viewer
    db: RequestDb
    extensions: dict[str, object] = field(default_factory=dict)

    async def close(self) -> None:
        await self.db.close()
