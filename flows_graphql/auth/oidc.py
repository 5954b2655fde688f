"""Tokens of identity providers (OpenID Connect): RS256/ES256/EdDSA JWTs checked
against each configured issuer's published keys (JWKS).

The crypto is PyJWT's (with `cryptography`); this module only decides which key and
which algorithms a token may use, and keeps the keys: fetched with an async HTTP
client (never blocking the event loop, with a timeout), cached as long as the
provider's cache headers say (within bounds), refetched when a token names a key id
not seen yet — at most once a minute per issuer, so random `kid`s cannot make us
hammer the provider. Without `jwks_uri`, the keys' address comes from the issuer's
discovery document.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from ..config import OidcIssuer, checked_url
from ..rules.emails import normalized_email
from .errors import ProviderUnavailable, Unauthenticated, refusal

log = logging.getLogger("flows_graphql.oidc")

# Clocks of providers and servers drift a little.
LEEWAY_S = 30
# Cache lifetime of a JWKS: what its headers say, within these bounds (a provider
# sending `no-cache` is not asked on every request), and without headers the default.
MIN_TTL_S = 60.0
MAX_TTL_S = 24 * 3600.0
DEFAULT_TTL_S = 600.0
# An unknown `kid` refetches the keys at most this often per issuer.
REFETCH_INTERVAL_S = 60.0
# After a failed fetch, requests needing that issuer's keys fail fast (503) for this
# long instead of each waiting for another timeout.
RETRY_AFTER_S = 5.0
# Key types that verify asymmetric signatures; an `oct` (shared secret) key in a JWKS
# is never used.
PUBLIC_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})
MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)


def cache_ttl(headers: Mapping[str, str]) -> float:
    """Seconds a response may be reused, from Cache-Control (less Age) or Expires."""
    control = headers.get("cache-control", "")
    ttl: float | None = None
    found = MAX_AGE.search(control)
    if found:
        ttl = float(found.group(1))
        with contextlib.suppress(ValueError):
            ttl -= float(headers.get("age", "0"))
    elif "no-store" in control.lower() or "no-cache" in control.lower():
        ttl = 0.0
    elif "expires" in headers:
        try:
            expires = email.utils.parsedate_to_datetime(headers["expires"]).timestamp()
            date = headers.get("date")
            now = email.utils.parsedate_to_datetime(date).timestamp() if date else time.time()
            ttl = expires - now
        except (TypeError, ValueError):
            ttl = 0.0
    if ttl is None:
        return DEFAULT_TTL_S
    return min(max(ttl, MIN_TTL_S), MAX_TTL_S)


@dataclass(frozen=True)
class Verified:
    """A provider token that passed every check."""

    issuer: str
    subject: str
    # The `email` claim, only when the provider says it is verified.
    email: str | None
    expires: float
    claims: dict[str, Any]


class IssuerKeys:
    """The published keys of one issuer, and when to fetch them again."""

    def __init__(
        self,
        config: OidcIssuer,
        http: httpx.AsyncClient,
        refetch_interval: float = REFETCH_INTERVAL_S,
    ) -> None:
        self.config = config
        self.http = http
        self.refetch_interval = refetch_interval
        self.jwks_uri = config.jwks_uri
        self.keys: list[dict[str, Any]] = []
        self.fresh_until = -math.inf
        self.last_kid_refetch = -math.inf
        self.fetches = 0  # how many times the JWKS was fetched (tests read it)
        self.retry_at = -math.inf
        self.last_error = ""
        self._lock = asyncio.Lock()
        self._attempts = 0
        self._background: asyncio.Future[None] | None = None
        self._built: dict[tuple[str | None, str], jwt.PyJWK] = {}

    async def key(self, kid: str | None, alg: str) -> jwt.PyJWK:
        now = time.monotonic()
        if now < self.retry_at and not self.keys:
            raise ProviderUnavailable(self.last_error)
        if now >= self.fresh_until and now >= self.retry_at:
            if self.keys:
                # Stale but usable: refresh in the background, this request goes on.
                self._refresh_later()
            else:
                await self._refresh(self._attempts)
        found = self._find(kid)
        if (
            found is None
            and now - self.last_kid_refetch >= self.refetch_interval
            and now >= self.retry_at
        ):
            # A key we have not seen: the provider may have rotated its keys.
            self.last_kid_refetch = now
            await self._refresh(self._attempts)
            found = self._find(kid)
        if found is None:
            if kid is None:
                raise Unauthenticated(
                    "The token names no signing key (`kid`) and the issuer has several."
                )
            raise Unauthenticated(
                "The token's signing key (`kid`) is not one of the issuer's keys."
            )
        return self._build(found, alg)

    def _refresh_later(self) -> None:
        if self._background is None or self._background.done():
            self._background = asyncio.ensure_future(self._refresh_quietly(self._attempts))

    async def _refresh_quietly(self, seen: int) -> None:
        with contextlib.suppress(ProviderUnavailable):
            await self._refresh(seen)

    def _find(self, kid: str | None) -> dict[str, Any] | None:
        if kid is None:
            return self.keys[0] if len(self.keys) == 1 else None
        return next((k for k in self.keys if k.get("kid") == kid), None)

    def _build(self, jwk: dict[str, Any], alg: str) -> jwt.PyJWK:
        if jwk.get("alg") not in (None, alg):
            raise Unauthenticated("The token's algorithm is not the one of its signing key.")
        cache_key = (jwk.get("kid"), alg)
        built = self._built.get(cache_key)
        if built is None:
            try:
                built = jwt.PyJWK(jwk, algorithm=alg)
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError) as exc:
                raise Unauthenticated(
                    "The token's algorithm does not fit its signing key."
                ) from exc
            self._built[cache_key] = built
        return built

    async def _refresh(self, seen: int) -> None:
        """Fetch the keys, once for all the requests waiting at the same moment."""
        async with self._lock:
            if self._attempts != seen:
                # Another request fetched (or failed to) while this one waited.
                if not self.keys:
                    raise ProviderUnavailable(self.last_error)
                return
            self._attempts += 1
            try:
                try:
                    keys, ttl = await self._fetch()
                except (TypeError, AttributeError, KeyError) as exc:
                    # A document of a shape no check above foresaw: the provider's
                    # answer is unusable, as if it had not answered (503, not 500).
                    raise ProviderUnavailable(
                        f"{self.config.issuer}: the provider's keys are malformed"
                    ) from exc
            except ProviderUnavailable as exc:
                self.last_error = exc.message
                self.retry_at = time.monotonic() + RETRY_AFTER_S
                if self.keys:
                    # Keep verifying with the keys we have (they were valid a moment
                    # ago) and try the provider again shortly.
                    return
                raise
            self.keys, self._built = keys, {}
            self.fresh_until = time.monotonic() + ttl

    async def _fetch(self) -> tuple[list[dict[str, Any]], float]:
        issuer = self.config.issuer
        if self.jwks_uri is None:
            self.jwks_uri = await self._discover()
        uri = self.jwks_uri
        body, ttl = await self._get_json(uri, "keys")
        self.fetches += 1
        raw = body.get("keys")
        if not isinstance(raw, list):
            if self.config.jwks_uri is None:
                self.jwks_uri = None  # discover again next time
            raise ProviderUnavailable(f"{issuer}: the JWKS at {uri} has no `keys` list")
        return [k for k in raw if usable_jwk(k)], ttl

    async def _discover(self) -> str:
        issuer = self.config.issuer
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        body, _ = await self._get_json(url, "discovery document")
        # OpenID Connect Discovery §4.3: the document must name the issuer it is for.
        if body.get("issuer") != issuer:
            raise ProviderUnavailable(f"{issuer}: the discovery document names another issuer")
        try:
            return checked_url(body.get("jwks_uri"), f"{issuer}'s jwks_uri")
        except ValueError as exc:
            raise ProviderUnavailable(str(exc)) from exc

    async def _get_json(self, url: str, what: str) -> tuple[dict[str, Any], float]:
        try:
            response = await self.http.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning(
                "identity provider unavailable",
                extra={"issuer": self.config.issuer, "url": url, "error": type(exc).__name__},
            )
            raise ProviderUnavailable(
                f"{self.config.issuer}: could not fetch the {what} ({type(exc).__name__})"
            ) from exc
        if not isinstance(body, dict):
            raise ProviderUnavailable(f"{self.config.issuer}: the {what} is not a JSON object")
        return body, cache_ttl(response.headers)


def usable_jwk(jwk: object) -> bool:
    """A JWKS entry that may verify a signature: a public key for signing whose members
    the lookups read are of their JSON types. The JWKS is the provider's input like any
    other: a `kty` or `kid` that is a list or an object (unhashable, or never equal to a
    token's `kid`) is an unusable key, ignored like an `oct` one, never a crash."""
    if not isinstance(jwk, dict):
        return False
    kty, use, kid, alg = (jwk.get(m) for m in ("kty", "use", "kid", "alg"))
    return (
        isinstance(kty, str)
        and kty in PUBLIC_KEY_TYPES
        and (use is None or use == "sig")
        and (kid is None or isinstance(kid, str))
        and (alg is None or isinstance(alg, str))
    )


def verified_email(claims: Mapping[str, Any]) -> str | None:
    """The `email` claim when `email_verified` is true (some providers send the
    string "true")."""
    email_claim = claims.get("email")
    if not isinstance(email_claim, str) or not email_claim.strip():
        return None
    if claims.get("email_verified") not in (True, "true"):
        return None
    # Never str.lower(): it maps look-alikes (the Kelvin sign) onto ASCII letters.
    return normalized_email(email_claim)


class OidcVerifier:
    """Checks tokens of the configured issuers."""

    def __init__(
        self,
        issuers: tuple[OidcIssuer, ...],
        timeout_s: float = 5.0,
        refetch_interval: float = REFETCH_INTERVAL_S,
    ) -> None:
        self.http = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)
        self.issuers = {i.issuer: IssuerKeys(i, self.http, refetch_interval) for i in issuers}

    def trusts(self, issuer: object) -> bool:
        return isinstance(issuer, str) and issuer in self.issuers

    async def verify(self, token: str, header: Mapping[str, Any], issuer: str) -> Verified:
        keys = self.issuers[issuer]
        config = keys.config
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in config.algorithms:
            raise Unauthenticated(f"The token's algorithm ({alg}) is not allowed for its issuer.")
        kid = header.get("kid")
        key = await keys.key(kid if isinstance(kid, str) else None, alg)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=list(config.algorithms),
                audience=config.audience,
                issuer=config.issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.InvalidTokenError as exc:
            raise refusal(exc) from exc
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise Unauthenticated("The token's `sub` is not a usable subject.")
        return Verified(issuer, subject, verified_email(claims), float(claims["exp"]), claims)

    async def close(self) -> None:
        await self.http.aclose()
