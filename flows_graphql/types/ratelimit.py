"""The viewer's rate limit, as a query answers it."""

from __future__ import annotations

from datetime import datetime

import strawberry


@strawberry.type(
    description="The viewer's rate limit: cost points per window, spent by every request "
    "(docs/operations.md)."
)
class RateLimit:
    limit: int = strawberry.field(description="Points the viewer may spend per window.")
    cost: int = strawberry.field(description="Points this request cost.")
    used: int = strawberry.field(description="Points spent in this window, this request's too.")
    remaining: int = strawberry.field(description="Points left in this window.")
    reset_at: datetime = strawberry.field(description="When the window ends and refills.")
    window_seconds: int = strawberry.field(description="Length of a window, in seconds.")
