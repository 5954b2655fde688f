"""The root lists of partner webhooks: an ESCO's endpoints, an endpoint's attempts."""

from __future__ import annotations

from ..db.models import WebhookAttempt, WebhookEndpoint, table_of
from ..pagination import SortKey, parse_datetime
from .base import ConnectionSpec

ENDPOINTS = table_of(WebhookEndpoint)
ATTEMPTS = table_of(WebhookAttempt)

ENDPOINT_SPEC = ConnectionSpec(
    ENDPOINTS,
    {"OLDEST": SortKey("OLDEST", lambda: ENDPOINTS.c.created_at, parse_datetime)},
    "OLDEST",
)
ATTEMPT_SPEC = ConnectionSpec(
    ATTEMPTS,
    {"NEWEST": SortKey("NEWEST", lambda: ATTEMPTS.c.created_at, parse_datetime, descending=True)},
    "NEWEST",
)
