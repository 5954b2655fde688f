"""Which media type a GraphQL response goes out as, from the request's `Accept` header
(GraphQL-over-HTTP, "Accept" and "Legacy watershed"; docs/http.md).

`application/graphql-response+json` when the client names it, `application/json` for
everyone else: a client naming `application/json`, sending `*/*` or `application/*`, or
no `Accept` at all. `None` when the header rules out both (answered 406).
"""

from __future__ import annotations

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
# The Content-Type of each: JSON is UTF-8 by definition (RFC 8259) and Starlette's
# JSON answers carry no charset; the newer type states it, as the spec's examples do.
CONTENT_TYPE = {GRAPHQL_RESPONSE: f"{GRAPHQL_RESPONSE}; charset=utf-8", JSON: JSON}
# A header longer than this is not parsed past it: no client needs more to say which
# of two media types it takes.
MAX_ACCEPT = 4096


def response_media_type(accept: str | None) -> str | None:
    """The media type to answer with, or None when neither is acceptable.

    Per RFC 9110 §12.5.1, each offer takes the quality of the most specific range that
    matches it (`q=0` refuses it); the higher quality wins. On a tie, a type the client
    named beats one it only reached by a wildcard, and between two named ones the
    GraphQL type wins (a client that names it knows it); `*/*` alone stays JSON.
    """
    if accept is None or not accept.strip():
        return JSON
    ranges = [r for r in (_media_range(part) for part in accept[:MAX_ACCEPT].split(",")) if r]
    best: tuple[float, int, int] | None = None
    chosen: str | None = None
    for offer in (JSON, GRAPHQL_RESPONSE):
        match = _quality(offer, ranges)
        if match is None or match[0] <= 0:
            continue
        quality, specificity = match
        named = specificity == 2
        preferred = offer == (GRAPHQL_RESPONSE if named else JSON)
        rank = (quality, int(named), int(preferred))
        if best is None or rank > best:
            best, chosen = rank, offer
    return chosen


def _media_range(part: str) -> tuple[str, str, float] | None:
    """`type/subtype;q=0.5` → (type, subtype, 0.5); None for what is not a media range."""
    pieces = part.split(";")
    kind, _, subtype = pieces[0].strip().lower().partition("/")
    if not kind or not subtype:
        return None
    quality = 1.0
    for parameter in pieces[1:]:
        name, _, value = parameter.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                quality = min(max(float(value.strip()), 0.0), 1.0)
            except ValueError:
                # A weight that is not a number: the range counts as not weighted.
                quality = 1.0
            if quality != quality:  # NaN
                quality = 0.0
    return kind, subtype, quality


def _quality(offer: str, ranges: list[tuple[str, str, float]]) -> tuple[float, int] | None:
    """The quality the most specific matching range gives `offer`, with that
    specificity (2 exact, 1 `type/*`, 0 `*/*`); None when no range matches."""
    kind, subtype = offer.split("/")
    found: tuple[float, int] | None = None
    for range_kind, range_subtype, quality in ranges:
        if (range_kind, range_subtype) == (kind, subtype):
            specificity = 2
        elif range_kind == kind and range_subtype == "*":
            specificity = 1
        elif (range_kind, range_subtype) == ("*", "*"):
            specificity = 0
        else:
            continue
        if found is None or specificity > found[1]:
            found = (quality, specificity)
        elif specificity == found[1]:
            # The same range twice: the client's more generous weight.
            found = (max(quality, found[0]), specificity)
    return found
