"""CORS for browser dashboards on other origins (FLOWS_CORS_ORIGINS, docs/identity.md).

Exact origins only, never `*`: credentials are allowed, and a wildcard with
credentials would let any site call the API in a signed-in browser's name.
"""

from __future__ import annotations

from typing import Any

from .config import Settings

# Development without FLOWS_CORS_ORIGINS: a dashboard served from this machine.
LOCALHOST_ORIGINS = r"https?://(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?"
# X-Flows-Cost-Only: ask for a query's cost without running it (docs/operations.md).
ALLOWED_HEADERS = [
    "Authorization",
    "X-API-Key",
    "Content-Type",
    "X-Request-ID",
    "X-Flows-Cost-Only",
]
# What a browser script may read of a response besides the simple headers.
EXPOSED_HEADERS = [
    "X-Request-ID",
    "Retry-After",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "WWW-Authenticate",
]


def cors_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of Starlette's CORSMiddleware for these settings."""
    origins = settings.cors_origins
    options: dict[str, Any] = {
        "allow_origins": list(origins or ()),
        "allow_methods": ["GET", "POST"],
        "allow_headers": ALLOWED_HEADERS,
        "expose_headers": EXPOSED_HEADERS,
        "allow_credentials": True,
        "max_age": 600,
    }
    if origins is None and not settings.production:
        options["allow_origin_regex"] = LOCALHOST_ORIGINS
    return options
