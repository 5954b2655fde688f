"""Who is calling: a JWT (admins, operators, customers), a token of a configured
identity provider (docs/identity.md) or a partner's API key.

No credentials, or bad ones, raise `Unauthenticated`; the endpoint answers 401. A
database fault while looking a credential up propagates (app.py answers it 503). An
identity provider whose keys cannot be fetched raises `ProviderUnavailable` (503).
"""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping

import jwt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..config import OidcIssuer
from ..db.engine import transaction
from ..db.models import ApiKey, Customer, table_of
from .apikeys import hash_secret, parse_key
from .errors import ProviderUnavailable, Unauthenticated, refusal
from .identities import identity_viewer
from .oidc import OidcVerifier, Verified
from .tokens import ALGORITHM, decode_token
from .viewer import Viewer

__all__ = ["Authenticator", "ProviderUnavailable", "Unauthenticated"]

log = logging.getLogger("flows_graphql.auth")
KEYS = table_of(ApiKey)
CUSTOMERS = table_of(Customer)
ALL_ESCOS = {"esco_ids": "*"}


class _Cache:
    """A small LRU with expiry for lookups done on every request."""

    def __init__(self, size: int, ttl: float) -> None:
        self.size, self.ttl = size, ttl
        self.items: OrderedDict[object, tuple[float, object]] = OrderedDict()

    def get(self, key: object) -> object | None:
        found = self.items.get(key)
        if found is None or found[0] < time.monotonic():
            return None
        self.items.move_to_end(key)
        return found[1]

    def put(self, key: object, value: object) -> None:
        self.items[key] = (time.monotonic() + self.ttl, value)
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


# Clocks of token issuers differ a little.
LEEWAY_S = 60
# How long an API key id that names no key is remembered as unknown: a flood of bad
# keys then costs a transaction per id and period, not one per request. Only while
# the server listens for key changes (watch_keys): a key created meanwhile is then
# forgotten as unknown as soon as its transaction commits.
UNKNOWN_KEY_TTL_S = 10.0
UNKNOWN = object()


class Authenticator:
    def __init__(
        self,
        engine: AsyncEngine,
        secret: str,
        *,
        max_token_lifetime_s: int = 24 * 3600,
        issuers: tuple[OidcIssuer, ...] = (),
        oidc_timeout_s: float = 5.0,
    ) -> None:
        self.engine = engine
        self.secret = secret
        self.max_token_lifetime_s = max_token_lifetime_s
        self.oidc = OidcVerifier(issuers, timeout_s=oidc_timeout_s)
        # A customer's ESCO never changes; a revoked key stops working within a minute.
        self.customer_escos = _Cache(size=50_000, ttl=3600)
        self.keys = _Cache(size=10_000, ttl=60)
        self.unknown_keys = _Cache(size=10_000, ttl=UNKNOWN_KEY_TTL_S)
        self.listening = False
        self.key_changes = 0  # a lookup racing a change must not cache its stale answer
        # Tokens whose signature was checked: a dashboard polling with one token pays
        # the HMAC (or RSA/ECDSA) check and JSON decoding once a minute, not on every
        # request. Only the check is remembered: who a provider's token is comes from
        # the database on every request (auth/identities.py).
        self.tokens = _Cache(size=10_000, ttl=60)
        # And who the server's own tokens are, looked up only while their checked
        # claims are: a viewer follows from the claims alone (and a customer's ESCO,
        # cached above), so this spares every request building it again.
        self.viewers = _Cache(size=10_000, ttl=60)

    async def viewer(self, headers: Mapping[str, str]) -> Viewer:
        authorization = headers.get("authorization")
        api_key = headers.get("x-api-key")
        if authorization and api_key:
            raise Unauthenticated("Send a bearer token or an API key, not both.")
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("Authorization must be `Bearer <token>`.")
            return await self._from_token(token.strip())
        if api_key:
            return await self._from_key(api_key)
        raise Unauthenticated("Authentication required: a bearer token or an X-API-Key.")

    async def _from_token(self, token: str) -> Viewer:
        checked = self.tokens.get(token)
        if isinstance(checked, Verified):
            if checked.expires > time.time():
                return await identity_viewer(self.engine, checked)
        elif isinstance(checked, dict) and checked["exp"] > time.time():
            known = self.viewers.get(token)
            if isinstance(known, Viewer):
                return known
            viewer = await self._viewer(checked)
            self.viewers.put(token, viewer)
            return viewer
        header, issuer = self._unverified(token)
        if self.oidc.trusts(issuer):
            verified = await self.oidc.verify(token, header, str(issuer))
            # The same bound as for our own tokens: a provider's too-long token is a
            # leaked token for too long.
            self._check_lifetime(verified.expires)
            self.tokens.put(token, verified)
            return await identity_viewer(self.engine, verified)
        if header.get("alg") != ALGORITHM:
            if issuer is not None:
                raise Unauthenticated("The token's issuer is not one this server trusts.")
            raise Unauthenticated("The token's algorithm is not accepted.")
        claims = self._verified(token)
        self.tokens.put(token, claims)
        return await self._viewer(claims)

    def _unverified(self, token: str) -> tuple[dict[str, object], object]:
        """The header and `iss` of a token not checked yet: they only choose how it
        is checked (an issuer's keys, or the server's own secret)."""
        try:
            header = jwt.get_unverified_header(token)
            payload = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated("The token is malformed.") from exc
        if str(header.get("alg", "")).lower() == "none":
            raise Unauthenticated("The token is not signed (`alg: none`).")
        return header, payload.get("iss")

    def _verified(self, token: str) -> dict[str, object]:
        try:
            claims = decode_token(self.secret, token)
        except jwt.InvalidTokenError as exc:
            raise refusal(exc) from exc
        # A token for the year 3000 is a leaked token forever: `exp` may be at most the
        # maximum lifetime ahead, whatever `iat` says.
        self._check_lifetime(float(claims["exp"]))
        return claims

    def _check_lifetime(self, expires: float) -> None:
        if expires > time.time() + self.max_token_lifetime_s + LEEWAY_S:
            raise Unauthenticated(
                f"The token lives longer than {self.max_token_lifetime_s} seconds "
                "(FLOWS_MAX_TOKEN_LIFETIME_S)."
            )

    async def _viewer(self, claims: dict[str, object]) -> Viewer:
        role, sub = claims.get("role"), str(claims.get("sub"))
        if role == "admin":
            return Viewer(role="admin", sub=sub)
        if role == "operator":
            escos = claims.get("escos")
            if not isinstance(escos, list) or not escos:
                raise Unauthenticated("An operator token must name its ESCOs (`escos`).")
            try:
                return Viewer(
                    role="operator", sub=sub, esco_ids=frozenset(uuid.UUID(e) for e in escos)
                )
            except (ValueError, TypeError, AttributeError) as exc:
                raise Unauthenticated("The token's `escos` are not ESCO ids.") from exc
        if role == "customer":
            try:
                customer_id = uuid.UUID(str(claims.get("customer_id")))
            except ValueError as exc:
                raise Unauthenticated("A customer token must carry `customer_id`.") from exc
            esco_id = await self._customer_esco(customer_id)
            return Viewer(
                role="customer", sub=sub, esco_ids=frozenset({esco_id}), customer_id=customer_id
            )
        raise Unauthenticated("The token's role is not one of admin, operator, customer.")

    async def _customer_esco(self, customer_id: uuid.UUID) -> uuid.UUID:
        cached = self.customer_escos.get(customer_id)
        if isinstance(cached, uuid.UUID):
            return cached
        async with transaction(self.engine, ALL_ESCOS) as conn:
            esco_id = await conn.scalar(
                select(CUSTOMERS.c.esco_id).where(CUSTOMERS.c.id == customer_id)
            )
        if esco_id is None:
            raise Unauthenticated("The token's customer does not exist.")
        self.customer_escos.put(customer_id, esco_id)
        return esco_id

    async def _from_key(self, key: str) -> Viewer:
        parsed = parse_key(key)
        if parsed is None:
            raise Unauthenticated("The API key is malformed.")
        key_id, secret = parsed
        row = self.keys.get(key_id)
        if row is None and self.listening and self.unknown_keys.get(key_id) is UNKNOWN:
            raise Unauthenticated("The API key is not valid.")
        if row is None:
            changes = self.key_changes
            async with transaction(self.engine, ALL_ESCOS) as conn:
                row = (
                    await conn.execute(
                        select(
                            KEYS.c.esco_id, KEYS.c.key_hash, KEYS.c.scopes, KEYS.c.revoked_at
                        ).where(KEYS.c.id == key_id)
                    )
                ).first()
            if row is not None:
                self.keys.put(key_id, row)
            elif self.listening and changes == self.key_changes:
                self.unknown_keys.put(key_id, UNKNOWN)
        if row is None or not hmac.compare_digest(row.key_hash, hash_secret(secret)):  # type: ignore[attr-defined]
            raise Unauthenticated("The API key is not valid.")
        if row.revoked_at is not None:  # type: ignore[attr-defined]
            raise Unauthenticated("The API key has been revoked.")
        return Viewer(
            role="partner",
            sub=str(key_id),
            esco_ids=frozenset({row.esco_id}),  # type: ignore[attr-defined]
            scopes=frozenset(row.scopes),  # type: ignore[attr-defined]
        )

    # -- key changes ------------------------------------------------------------------

    def key_changed(self, key_id: str) -> None:
        """A key was created or revoked (by any process): forget what we knew of it."""
        self.key_changes += 1
        try:
            parsed = uuid.UUID(key_id)
        except ValueError:
            return
        self.keys.items.pop(parsed, None)
        self.unknown_keys.items.pop(parsed, None)

    def listening_changed(self, listening: bool) -> None:
        """The process's listening connection (live/broker.py) came up or went down.
        While down, a key created elsewhere would go unheard: remember no unknown ids."""
        self.listening = listening
        if not listening:
            self.unknown_keys.items.clear()
