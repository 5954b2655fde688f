"""The `rateLimit` query: what the viewer has left, after this request."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry
from strawberry.types import Info

from ..context import Context
from ..observe import operation_of
from ..types.ratelimit import RateLimit


@strawberry.type
class RateLimitQuery:
    @strawberry.field(
        description="The viewer's rate limit after this request; null when rate limits are off."
    )
    def rate_limit(self, info: Info[Context, None]) -> RateLimit | None:
        request = info.context.request
        spend = operation_of(request.scope).spend if request is not None else None
        if spend is None:
            return None
        return RateLimit(
            limit=spend.limit,
            cost=spend.requested,
            used=spend.used,
            remaining=spend.remaining,
            reset_at=datetime.fromtimestamp(spend.reset_at, UTC),
            window_seconds=info.context.settings.rate_limits.window_s,
        )
