"""Sign-in through identity providers (docs/identity.md), against a real OpenID Connect
provider the suite serves on loopback (tests/support/oidc_provider.py): tokens checked against
its JWKS, every refusal a 401 with a clear message, key rotation, cache headers,
discovery, an unreachable provider (503, not a hang), staff grants and their
revocation, the onboarding of a customer from an invite, and CORS."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from flows_graphql.app import create_app
from flows_graphql.auth.oidc import cache_ttl
from flows_graphql.config import OidcIssuer, Settings, parse_issuers, parse_origins
from flows_graphql.types.node import to_global_id
from tests.support import factories as f
from tests.support.api import TODAY, asgi_client, bearer
from tests.support.oidc_provider import AUDIENCE, Provider, make_key

ME = "{ viewer { role subject issuer email escos { code } customer { uuid email } } }"


@pytest.fixture
def idp() -> Iterator[Provider]:
    provider = Provider(keys=[make_key("RS256"), make_key("ES256"), make_key("EdDSA")]).start()
    try:
        yield provider
    finally:
        provider.stop()


def with_issuers(settings: Settings, *issuers: dict[str, Any], **kw: Any) -> Settings:
    return replace(settings, oidc_issuers=parse_issuers(json.dumps(list(issuers))), **kw)


class Api:
    """A client of an app that trusts the given provider(s); no default credentials."""

    def __init__(self, http: httpx.AsyncClient, app: Any) -> None:
        self.http, self.app = http, app

    async def post(self, token: str | None, query: str, variables: Any = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.http.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )

    async def data(self, token: str, query: str, variables: Any = None) -> dict[str, Any]:
        response = await self.post(token, query, variables)
        body = response.json()
        assert response.status_code == 200 and "errors" not in body, body
        result: dict[str, Any] = body["data"]
        return result


async def make_api(settings: Settings, database_url: str) -> tuple[Api, Any]:
    app = create_app(settings, database_url, today=lambda: TODAY)
    http = asgi_client(app)
    return Api(http, app), app


@pytest.fixture
async def api(settings, database_url, engine, idp) -> AsyncIterator[Api]:
    client, app = await make_api(with_issuers(settings, idp.config()), database_url)
    try:
        yield client
    finally:
        await client.http.aclose()
        await app.state.authenticator.oidc.close()
        await app.state.engine.dispose()


def refused(response: httpx.Response) -> str:
    """A 401 with one UNAUTHENTICATED error and nothing else; returns its message."""
    assert response.status_code == 401, response.text
    body = response.json()
    assert set(body) == {"errors"}, body
    [error] = body["errors"]
    assert error["extensions"] == {"code": "UNAUTHENTICATED"}
    return str(error["message"])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A token built by hand, as an attacker would (no library to stop them)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = b""
    if secret is not None:
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def claims(idp: Provider, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": idp.issuer,
        "aud": AUDIENCE,
        "sub": "someone",
        "iat": now,
        "exp": now + 300,
        **over,
    }


# --- tokens --------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
async def test_a_valid_token_of_an_unknown_identity_sees_only_itself(api, idp, alg) -> None:
    key = next(k for k in idp.keys if k.alg == alg)
    token = idp.token("new-person", key=key, email="New.Person@Example.com")
    viewer = (await api.data(token, ME))["viewer"]
    assert viewer == {
        "role": "UNLINKED",
        "subject": "new-person",
        "issuer": idp.issuer,
        "email": "new.person@example.com",
        "escos": [],
        "customer": None,
    }


@pytest.mark.parametrize(
    "query",
    [
        "{ regions { code } }",
        '{ viewer { role } benchmarkTariffs(regionCode: "london") { unitRate } }',
        "{ ...F } fragment F on Query { contractTerms { title } }",
        "{ ... on Query { escos(first: 1) { totalCount } } }",
        'mutation { createEsco(input: {code: "x", name: "X", regionCode: "london"}) '
        "{ userErrors { code } } }",
    ],
)
async def test_an_unknown_identity_may_ask_nothing_else(api, idp, query) -> None:
    response = await api.post(idp.token("stranger"), query)
    assert response.status_code == 403
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "FORBIDDEN"}
    assert "only `viewer` and `acceptInvite`" in error["message"]


async def test_an_unverified_email_is_not_an_email(api, idp) -> None:
    token = idp.token("p", email="p@example.com", email_verified=False)
    assert (await api.data(token, ME))["viewer"]["email"] is None


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: p.token("x", iss="https://evil.example/"), "issuer is not one"),
        (lambda p: p.token("x", aud="another-api"), "not meant for this API"),
        (lambda p: p.token("x", lifetime=-120), "expired"),
        (lambda p: p.token("x", lifetime=400 * 24 * 3600), "lives longer than"),
        (lambda p: p.token("x", nbf=int(time.time()) + 3600), "`nbf` is in the future"),
        (lambda p: p.token("x", iat=int(time.time()) + 3600), "`iat` is in the future"),
        (
            lambda p: p.token("x", key=make_key("RS256", kid=p.keys[0].kid)),
            "signature is not valid",
        ),
        (lambda p: p.token("x", key=make_key("RS256")), "`kid`) is not one of the issuer"),
        (lambda p: forged({"alg": "none", "typ": "JWT"}, claims(p), None), "alg: none"),
        (lambda p: forged({"alg": "None"}, claims(p), None), "alg: none"),
        (
            # The provider's public key (published!) as an HMAC secret.
            lambda p: forged(
                {"alg": "HS256", "kid": p.keys[0].kid},
                claims(p),
                p.keys[0]
                .private.public_key()
                .public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                ),
            ),
            "algorithm (HS256) is not allowed",
        ),
        (
            # The same with the JWK's modulus as the secret.
            lambda p: forged(
                {"alg": "HS256", "kid": p.keys[0].kid},
                claims(p),
                p.keys[0].public_jwk()["n"].encode(),
            ),
            "algorithm (HS256) is not allowed",
        ),
        (
            lambda p: jwt.encode(
                {k: v for k, v in claims(p).items() if k != "sub"},
                p.keys[0].private,
                algorithm="RS256",
                headers={"kid": p.keys[0].kid},
            ),
            "lacks the `sub` claim",
        ),
        (lambda p: p.token("x", key=p.keys[1], headers={"kid": p.keys[0].kid}), "algorithm"),
    ],
    ids=[
        "wrong-issuer",
        "wrong-audience",
        "expired",
        "too-long-lived",
        "nbf-future",
        "iat-future",
        "bad-signature",
        "unknown-kid",
        "alg-none",
        "alg-None",
        "hs256-public-key-pem",
        "hs256-public-key-jwk",
        "no-sub",
        "alg-of-another-key",
    ],
)
async def test_bad_provider_tokens_are_401_with_a_clear_message(api, idp, make, says) -> None:
    message = refused(await api.post(make(idp), ME))
    assert says in message, message


async def test_the_servers_own_tokens_still_work_beside_a_provider(api, settings) -> None:
    response = await api.http.post(
        "/graphql", json={"query": ME}, headers=bearer(settings, "admin", sub="cli")
    )
    assert response.json()["data"]["viewer"]["role"] == "ADMIN"
    assert response.json()["data"]["viewer"]["issuer"] is None


async def test_keys_are_fetched_once_and_cached_per_their_headers(api, idp) -> None:
    for i in range(5):
        await api.data(idp.token(f"p{i}", key=idp.keys[i % 3]), ME)
    assert idp.jwks_fetches() == 1


async def test_key_rotation_mid_run(api, idp) -> None:
    old = idp.keys[0]
    await api.data(idp.token("p", key=old), ME)
    assert idp.jwks_fetches() == 1

    # The provider rotates: a new key signs, the old one is withdrawn.
    new = make_key("RS256")
    idp.keys = [new, *idp.keys[1:]]
    await api.data(idp.token("p", key=new), ME)
    assert idp.jwks_fetches() == 2  # the unknown kid fetched the keys again

    # A token of the withdrawn key was checked before: remembered for at most a
    # minute, never past its own expiry. A fresh one is refused, and unknown kids
    # within the minute do not make the server ask the provider again.
    message = refused(await api.post(idp.token("q", key=old), ME))
    assert "`kid`) is not one of the issuer" in message
    refused(await api.post(idp.token("r", key=make_key("ES256")), ME))
    assert idp.jwks_fetches() == 2


def test_cache_lifetime_follows_the_headers_within_bounds() -> None:
    assert cache_ttl({"cache-control": "public, max-age=3600"}) == 3600
    assert cache_ttl({"cache-control": "max-age=3600", "age": "600"}) == 3000
    # A provider asking not to cache is still not asked on every request.
    assert cache_ttl({"cache-control": "no-cache"}) == 60
    assert cache_ttl({"cache-control": "max-age=10"}) == 60
    assert cache_ttl({"cache-control": "max-age=99999999"}) == 24 * 3600
    assert cache_ttl({}) == 600
    assert (
        cache_ttl(
            {"date": "Tue, 01 Dec 2026 08:00:00 GMT", "expires": "Tue, 01 Dec 2026 08:30:00 GMT"}
        )
        == 1800
    )


async def test_keys_found_through_discovery(settings, database_url, engine, idp) -> None:
    config = {k: v for k, v in idp.config().items() if k != "jwks_uri"}
    client, app = await make_api(with_issuers(settings, config), database_url)
    try:
        await client.data(idp.token("p"), ME)
        assert idp.hits == [
            "/realms/flows/.well-known/openid-configuration",
            "/realms/flows/protocol/openid-connect/certs",
        ]
    finally:
        await client.http.aclose()
        await app.state.engine.dispose()


async def test_a_discovery_document_of_another_issuer_is_not_trusted(
    settings, database_url, engine, idp
) -> None:
    idp.discovery_issuer = "https://impostor.example"
    config = {k: v for k, v in idp.config().items() if k != "jwks_uri"}
    client, app = await make_api(with_issuers(settings, config), database_url)
    try:
        response = await client.post(idp.token("p"), ME)
        assert response.status_code == 503
        assert "/realms/flows/protocol/openid-connect/certs" not in idp.hits
    finally:
        await client.http.aclose()
        await app.state.engine.dispose()


async def test_an_unreachable_provider_is_a_quick_503_and_blocks_nobody(
    settings, database_url, engine, idp
) -> None:
    idp.stall_s = 4.0
    # A timeout well above a request's time on a busy machine (or through PgBouncer):
    # answered before it means not blocked by the stalled fetch.
    client, app = await make_api(
        with_issuers(settings, idp.config(), oidc_timeout_s=1.5), database_url
    )
    try:
        started = time.monotonic()
        stalled = asyncio.ensure_future(client.post(idp.token("p"), ME))
        await asyncio.sleep(0.05)
        # While the provider stalls, the server's own tokens are answered at once: the
        # key fetch does not block the event loop.
        other = await client.http.post(
            "/graphql", json={"query": ME}, headers=bearer(settings, "admin")
        )
        assert other.status_code == 200
        assert time.monotonic() - started < 1.4
        response = await stalled
        assert 1.4 < time.monotonic() - started < 3.5
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        [error] = response.json()["errors"]
        assert error["extensions"] == {"code": "UNAVAILABLE"}
        assert "identity provider" in error["message"]
        # Failing fast afterwards, without waiting for another timeout.
        started = time.monotonic()
        assert (await client.post(idp.token("q"), ME)).status_code == 503
        assert time.monotonic() - started < 0.3
    finally:
        await client.http.aclose()
        await app.state.engine.dispose()
        idp.stall_s = 0


def _hostile(idp: Provider, **over: Any) -> dict[str, Any]:
    return {**idp.keys[0].public_jwk(), **over}


@pytest.mark.parametrize(
    "member",
    [{"kty": ["RSA"]}, {"kty": {"RSA": 1}}, {"kty": 7}, {"kid": ["k"]}, {"kid": {"k": 1}},
     {"use": ["sig"]}, {"alg": ["RS256"]}, {"n": 12345}, {"e": None}],
)  # fmt: skip
async def test_a_jwks_of_wrong_json_types_is_refused_never_a_500(
    api, idp, member, settings, database_url
) -> None:
    """The JWKS is the provider's input like any other: a key whose `kty`, `kid`,
    `use`, `alg` or numbers are of the wrong JSON type is an unusable key (401 for the
    token that needs it), and beside it a good key still verifies."""
    idp.jwks_body = {"keys": [_hostile(idp, **member)]}
    # With its `kid`, and without one (the issuer's only key would then be the one).
    no_kid = jwt.encode(claims(idp, sub="p"), idp.keys[0].private, algorithm="RS256")
    for token in (idp.token("p"), no_kid):
        response = await api.post(token, ME)
        assert response.status_code == 401, (member, response.text)
        refused(response)
    idp.jwks_body = {"keys": [_hostile(idp, **member), "not a key", None, idp.keys[1].public_jwk()]}
    fresh, app = await make_api(with_issuers(settings, idp.config()), database_url)
    try:
        await fresh.data(idp.token("p", key=idp.keys[1]), ME)
        refused(await fresh.post(idp.token("p"), ME))
    finally:
        await fresh.http.aclose()
        await app.state.authenticator.oidc.close()
        await app.state.engine.dispose()


@pytest.mark.parametrize(
    "jwks, discovery",
    [({"keys": {"kty": "RSA"}}, None), ({"keys": "all"}, None), (["keys"], None),
     (None, {"issuer": ["x"], "jwks_uri": 5}), (None, ["issuer"]),
     (None, {"issuer": "ISSUER", "jwks_uri": {"u": 1}})],
)  # fmt: skip
async def test_a_malformed_jwks_or_discovery_document_is_the_provider_unavailable(
    settings, database_url, engine, idp, jwks, discovery
) -> None:
    idp.jwks_body = jwks
    if discovery is not None:
        idp.discovery_body = json.loads(json.dumps(discovery).replace("ISSUER", idp.issuer))
    config = {k: v for k, v in idp.config().items() if k != "jwks_uri"}
    client, app = await make_api(with_issuers(settings, config), database_url)
    try:
        response = await client.post(idp.token("p"), ME)
        assert response.status_code == 503, response.text
        [error] = response.json()["errors"]
        assert error["extensions"] == {"code": "UNAVAILABLE"}
    finally:
        await client.http.aclose()
        await app.state.authenticator.oidc.close()
        await app.state.engine.dispose()


async def test_stale_keys_keep_working_while_the_provider_is_slow_or_down(api, idp) -> None:
    await api.data(idp.token("p"), ME)
    keys = api.app.state.authenticator.oidc.issuers[idp.issuer]
    keys.fresh_until = 0  # the cache lifetime is over
    idp.stall_s = 1.5
    started = time.monotonic()
    # Verified with the keys at hand while they are fetched again in the background.
    await api.data(idp.token("q"), ME)
    assert time.monotonic() - started < 0.5
    await asyncio.sleep(1.8)
    assert idp.jwks_fetches() == 2
    idp.stall_s = 0
    idp.down = True
    keys.fresh_until = 0
    await api.data(idp.token("r"), ME)
    await asyncio.sleep(0.3)
    await api.data(idp.token("s"), ME)


def test_issuer_configuration_is_checked() -> None:
    [issuer] = parse_issuers(
        '[{"issuer": "https://id.example", "audience": "flows-api", '
        '"jwks_uri": "https://id.example/jwks"}]'
    )
    assert issuer == OidcIssuer(
        "https://id.example", "flows-api", "https://id.example/jwks", ("RS256", "ES256", "EdDSA")
    )
    for bad, says in [
        ('[{"issuer": "http://id.example", "audience": "a"}]', "loopback"),
        ('[{"issuer": "https://id.example"}]', "audience"),
        ('[{"issuer": "https://id.example", "audience": "a", "jwks_url": "x"}]', "unknown"),
        ('[{"issuer": "https://id.example", "audience": "a", "algorithms": ["HS256"]}]', "among"),
        ('[{"issuer": "https://id.example", "audience": "a", "algorithms": ["none"]}]', "among"),
        ('{"issuer": "https://id.example"}', "list"),
    ]:
        with pytest.raises(ValueError, match=says):
            parse_issuers(bad)
    assert (
        parse_issuers('[{"issuer": "http://127.0.0.1:9/x", "audience": "a"}]')[0].jwks_uri is None
    )


# --- staff ---------------------------------------------------------------------------

GRANT = """
mutation($input: GrantOperatorAccessInput!) {
  grantOperatorAccess(input: $input) {
    staffGrants { id issuer subject email role grantedBy revokedAt esco { code } }
    userErrors { field code message }
  }
}
"""
REVOKE = """
mutation($input: RevokeOperatorAccessInput!) {
  revokeOperatorAccess(input: $input) {
    staffGrants { subject email revokedAt revokedBy esco { code } }
    userErrors { field code message }
  }
}
"""


@pytest.fixture
async def escos(raw: asyncpg.Connection) -> tuple[f.EscoData, f.EscoData]:
    return (
        await f.build_esco(raw, "alpha", customers=2, months=1),
        await f.build_esco(raw, "bravo", customers=2, months=1),
    )


async def test_a_revoked_operator_is_refused_on_the_next_request(
    api, idp, settings, escos, raw
) -> None:
    admin = bearer(settings, "admin", sub="root")["Authorization"].split()[1]
    alpha, _ = escos
    body = await api.data(
        admin,
        GRANT,
        {"input": {"issuer": idp.issuer, "subject": "op-1", "escoIds": [str(alpha.id)]}},
    )
    [grant] = body["grantOperatorAccess"]["staffGrants"]
    assert grant["subject"] == "op-1" and grant["role"] == "operator"
    assert grant["grantedBy"] == "user:root" and grant["esco"] == {"code": "alpha"}

    token = idp.token("op-1")
    viewer = (await api.data(token, ME))["viewer"]
    assert viewer["role"] == "OPERATOR" and viewer["escos"] == [{"code": "alpha"}]
    customers = await api.data(token, "{ customers(first: 10) { totalCount } }")
    assert customers["customers"]["totalCount"] == 2

    body = await api.data(admin, REVOKE, {"input": {"issuer": idp.issuer, "subject": "op-1"}})
    [revoked] = body["revokeOperatorAccess"]["staffGrants"]
    assert revoked["revokedAt"] and revoked["revokedBy"] == "user:root"
    # The same token, checked a moment ago (and remembered): refused at once.
    assert "operator access has been revoked" in refused(await api.post(token, ME))

    actions = [
        r["action"]
        for r in await raw.fetch(
            "SELECT action FROM audit_log WHERE entity = 'staff_grant' ORDER BY created_at"
        )
    ]
    assert actions == ["grantOperatorAccess", "revokeOperatorAccess"]
    again = await api.data(admin, REVOKE, {"input": {"issuer": idp.issuer, "subject": "op-1"}})
    assert again["revokeOperatorAccess"]["userErrors"][0]["code"] == "NOT_FOUND"


async def test_a_grant_by_email_is_claimed_at_the_first_sign_in(
    api, idp, settings, escos, raw
) -> None:
    admin = bearer(settings, "admin", sub="root")["Authorization"].split()[1]
    alpha, _ = escos
    grant = {"issuer": idp.issuer, "email": "Ops@Alpha.example", "escoIds": [str(alpha.id)]}
    await api.data(admin, GRANT, {"input": grant})
    # Twice: nothing new.
    body = await api.data(admin, GRANT, {"input": {**grant, "escoIds": [str(alpha.id)] * 2}})
    assert len(body["grantOperatorAccess"]["staffGrants"]) == 1
    assert await raw.fetchval("SELECT count(*) FROM staff_grants") == 1

    # Someone else's verified e-mail, or an unverified claim to this one: nothing.
    stranger = idp.token("sub-x", email="someone@alpha.example")
    assert (await api.data(stranger, ME))["viewer"]["role"] == "UNLINKED"
    unverified = idp.token("sub-y", email="ops@alpha.example", email_verified=False)
    assert (await api.data(unverified, ME))["viewer"]["role"] == "UNLINKED"

    first = idp.token("sub-ops", email="ops@alpha.example")
    assert (await api.data(first, ME))["viewer"]["escos"] == [{"code": "alpha"}]
    assert await raw.fetchval("SELECT subject FROM staff_grants") == "sub-ops"
    # Claimed: the subject holds it now, whatever e-mail it later signs in with.
    later = idp.token("sub-ops", email="new-address@alpha.example")
    assert (await api.data(later, ME))["viewer"]["role"] == "OPERATOR"
    audit = await raw.fetch("SELECT action, actor FROM audit_log ORDER BY created_at")
    assert [a["action"] for a in audit] == [
        "grantOperatorAccess",
        "grantOperatorAccess",  # the repeat: on the record, nothing changed
        "claimStaffGrant",
    ]
    assert audit[2]["actor"] == f"user:{idp.issuer}#sub-ops"

    # Revoked by the e-mail it was granted to.
    body = await api.data(
        admin, REVOKE, {"input": {"issuer": idp.issuer, "email": "OPS@alpha.example"}}
    )
    assert body["revokeOperatorAccess"]["userErrors"] == []
    assert "revoked" in refused(await api.post(later, ME))


async def test_grants_are_for_admins_and_checked(api, idp, settings, escos) -> None:
    alpha, _ = escos
    operator = bearer(settings, "operator", escos=[str(alpha.id)])["Authorization"].split()[1]
    admin = bearer(settings, "admin")["Authorization"].split()[1]
    body = await api.data(
        operator,
        GRANT,
        {"input": {"issuer": idp.issuer, "subject": "me", "escoIds": [str(alpha.id)]}},
    )
    assert [e["code"] for e in body["grantOperatorAccess"]["userErrors"]] == ["FORBIDDEN"]
    body = await api.data(
        admin,
        GRANT,
        {
            "input": {
                "issuer": "http://id.example",
                "email": "not-an-email",
                "escoIds": [to_global_id("Esco", uuid.uuid4()), "junk"],
            }
        },
    )
    errors = [(e["field"], e["code"]) for e in body["grantOperatorAccess"]["userErrors"]]
    assert errors == [
        (["issuer"], "INVALID"),
        (["email"], "INVALID"),
        (["escoIds", "0"], "NOT_FOUND"),
        (["escoIds", "1"], "NOT_FOUND"),
    ]
    body = await api.data(admin, GRANT, {"input": {"issuer": idp.issuer, "escoIds": []}})
    errors = [(e["field"], e["code"]) for e in body["grantOperatorAccess"]["userErrors"]]
    assert errors == [(["subject"], "INVALID"), (["escoIds"], "INVALID")]


async def test_custom_claims_in_a_provider_token_grant_nothing(api, idp, escos) -> None:
    alpha, _ = escos
    token = idp.token(
        "x", role="admin", escos=[str(alpha.id)], customer_id=str(alpha.customer_ids[0])
    )
    viewer = (await api.data(token, ME))["viewer"]
    assert viewer["role"] == "UNLINKED" and viewer["escos"] == [] and viewer["customer"] is None


# --- onboarding ------------------------------------------------------------------------

INVITE = """
mutation($id: ID!) {
  inviteCustomer(input: {customerId: $id}) { customerInvite { token } userErrors { code } }
}
"""
ACCEPT = """
mutation($token: String!) {
  acceptInvite(input: {token: $token}) {
    customerInvite { status }
    customer { uuid email accounts { account { uuid } } }
    identity { id issuer subject email customer { uuid } }
    userErrors { field code message }
  }
}
"""
MY_BILL = """
{
  viewer {
    role
    customer {
      uuid email
      accounts { account { uuid accountNumber } }
      monthlyCosts { month total }
      identities { id subject }
    }
  }
}
"""


async def invite(api: Api, settings: Settings, esco: f.EscoData, i: int) -> str:
    operator = bearer(settings, "operator", escos=[str(esco.id)])["Authorization"].split()[1]
    body = await api.data(operator, INVITE, {"id": str(esco.customer_ids[i])})
    return str(body["inviteCustomer"]["customerInvite"]["token"])


async def test_a_customer_with_only_a_provider_account_and_an_invite_reaches_their_bill(
    api, idp, settings, escos, raw
) -> None:
    alpha, _ = escos
    token = await invite(api, settings, alpha, 0)
    email = alpha.emails[0]

    # Another person's sign-in holding the link: refused, nothing linked.
    intruder = idp.token("intruder", email="intruder@example.com")
    body = await api.data(intruder, ACCEPT, {"token": token})
    [error] = body["acceptInvite"]["userErrors"]
    assert (error["field"], error["code"]) == (["token"], "INVITE_EMAIL_MISMATCH")
    assert body["acceptInvite"]["customer"] is None
    # The right e-mail, but not verified by the provider: refused too.
    unverified = idp.token("person", email=email, email_verified=False)
    body = await api.data(unverified, ACCEPT, {"token": token})
    assert body["acceptInvite"]["userErrors"][0]["code"] == "INVITE_EMAIL_MISMATCH"
    assert await raw.fetchval("SELECT count(*) FROM customer_identities") == 0

    person = idp.token("person-sub", key=idp.keys[1], email=email.upper())
    assert (await api.data(person, ME))["viewer"]["role"] == "UNLINKED"
    body = (await api.data(person, ACCEPT, {"token": token}))["acceptInvite"]
    assert body["userErrors"] == []
    assert body["customerInvite"] == {"status": "ACCEPTED"}
    # The rest of this request already runs as the customer: their accounts show.
    assert body["customer"] == {
        "uuid": str(alpha.customer_ids[0]),
        "email": email,
        "accounts": [{"account": {"uuid": str(alpha.account_ids[0])}}],
    }
    assert body["identity"]["subject"] == "person-sub"
    assert body["identity"]["customer"] == {"uuid": str(alpha.customer_ids[0])}

    # From now on the identity is that customer, with the customer's privacy rules.
    me = (await api.data(person, MY_BILL))["viewer"]
    assert me["role"] == "CUSTOMER"
    assert me["customer"]["uuid"] == str(alpha.customer_ids[0])
    assert [a["account"]["uuid"] for a in me["customer"]["accounts"]] == [str(alpha.account_ids[0])]
    assert me["customer"]["monthlyCosts"] == [
        {"month": alpha.months[0].isoformat(), "total": str(f.costs(0, 0).total)}
    ]
    assert me["customer"]["identities"] == [{"id": body["identity"]["id"], "subject": "person-sub"}]
    neighbour = to_global_id("Customer", alpha.customer_ids[1])
    other = await api.data(person, "query($id: ID!) { node(id: $id) { id } }", {"id": neighbour})
    assert other["node"] is None
    listed = await api.data(person, "{ customers(first: 10) { nodes { uuid } } }")
    assert listed["customers"]["nodes"] == [{"uuid": str(alpha.customer_ids[0])}]

    # The same identity accepting again: the same answer, nothing new.
    again = (await api.data(person, ACCEPT, {"token": token}))["acceptInvite"]
    assert again["userErrors"] == [] and again["identity"]["id"] == body["identity"]["id"]
    assert (
        await raw.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'acceptInvite' AND changes = $1",
            '{"changed": {}}',
        )
        == 1
    )
    # Another identity with the same verified e-mail: the invite is used.
    twin = idp.token("twin-sub", email=email)
    used = (await api.data(twin, ACCEPT, {"token": token}))["acceptInvite"]
    assert used["userErrors"][0]["code"] == "INVITE_USED"
    assert await raw.fetchval("SELECT count(*) FROM customer_identities") == 1

    # Operators see who has signed in.
    operator = bearer(settings, "operator", escos=[str(alpha.id)])["Authorization"].split()[1]
    seen = await api.data(
        operator, "{ customers(first: 10) { nodes { email identities { subject email } } } }"
    )
    assert {n["email"]: n["identities"] for n in seen["customers"]["nodes"]} == {
        alpha.emails[0]: [{"subject": "person-sub", "email": email}],
        alpha.emails[1]: [],
    }
    events = await raw.fetch(
        "SELECT event_type, actor FROM customer_events WHERE customer_id = $1 ORDER BY created_at",
        alpha.customer_ids[0],
    )
    assert [e["event_type"] for e in events] == ["invited", "invite_accepted", "identity_linked"]
    assert events[1]["actor"] == f"user:{idp.issuer}#person-sub"


async def test_an_expired_invite_and_an_invite_of_another_tenant(
    api, idp, settings, escos, raw
) -> None:
    alpha, bravo = escos
    token = await invite(api, settings, alpha, 1)
    await raw.execute("UPDATE customer_invites SET expires_at = now() - interval '1 minute'")
    person = idp.token("late", email=alpha.emails[1])
    body = (await api.data(person, ACCEPT, {"token": token}))["acceptInvite"]
    assert body["userErrors"][0]["code"] == "INVITE_EXPIRED"
    ghost = (await api.data(person, ACCEPT, {"token": str(uuid.uuid4())}))["acceptInvite"]
    assert ghost["userErrors"][0]["code"] == "NOT_FOUND"

    # A customer of bravo (linked) cannot accept alpha's invite: it is not theirs.
    bravo_token = await invite(api, settings, bravo, 0)
    linked = idp.token("bravo-person", email=bravo.emails[0])
    assert (await api.data(linked, ACCEPT, {"token": bravo_token}))["acceptInvite"][
        "userErrors"
    ] == []
    fresh = await invite(api, settings, alpha, 0)
    body = (await api.data(linked, ACCEPT, {"token": fresh}))["acceptInvite"]
    assert body["userErrors"][0]["code"] == "NOT_FOUND"


async def test_a_customer_unlinks_their_identity(api, idp, settings, escos, raw) -> None:
    alpha, _ = escos
    token = await invite(api, settings, alpha, 0)
    person = idp.token("p-sub", email=alpha.emails[0])
    body = (await api.data(person, ACCEPT, {"token": token}))["acceptInvite"]
    identity = body["identity"]["id"]
    unlink = """mutation($id: ID!) { unlinkIdentity(input: {identityId: $id}) {
        unlinkedIdentityId customer { uuid } userErrors { code } } }"""
    # Another customer (a server token) cannot unlink it: it does not exist for them.
    other = bearer(settings, "customer", customer_id=str(alpha.customer_ids[1]))
    response = await api.http.post(
        "/graphql", json={"query": unlink, "variables": {"id": identity}}, headers=other
    )
    assert response.json()["data"]["unlinkIdentity"]["userErrors"] == [{"code": "NOT_FOUND"}]

    done = (await api.data(person, unlink, {"id": identity}))["unlinkIdentity"]
    assert done == {
        "unlinkedIdentityId": identity,
        "customer": {"uuid": str(alpha.customer_ids[0])},
        "userErrors": [],
    }
    assert (await api.data(person, ME))["viewer"]["role"] == "UNLINKED"
    kinds = await raw.fetch("SELECT event_type FROM customer_events ORDER BY created_at")
    assert kinds[-1]["event_type"] == "identity_unlinked"


# --- CORS ----------------------------------------------------------------------------

PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, x-api-key, content-type",
}


async def cors_client(settings: Settings, database_url: str) -> tuple[httpx.AsyncClient, Any]:
    app = create_app(settings, database_url, today=lambda: TODAY)
    return asgi_client(app), app


async def test_cors_preflight_from_an_allowed_and_a_refused_origin(
    settings, database_url, engine
) -> None:
    http, app = await cors_client(
        replace(settings, env="production", cors_origins=("https://dash.alpha.example",)),
        database_url,
    )
    try:
        ok = await http.options(
            "/graphql", headers={**PREFLIGHT, "Origin": "https://dash.alpha.example"}
        )
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "https://dash.alpha.example"
        allowed = {h.strip().lower() for h in ok.headers["access-control-allow-headers"].split(",")}
        assert {"authorization", "x-api-key", "content-type"} <= allowed
        assert "POST" in ok.headers["access-control-allow-methods"]
        assert ok.headers["access-control-allow-credentials"] == "true"

        for origin in ("https://evil.example", "https://dash.alpha.example.evil.example", "null"):
            bad = await http.options("/graphql", headers={**PREFLIGHT, "Origin": origin})
            assert bad.status_code == 400, origin
            assert "access-control-allow-origin" not in bad.headers

        # A real request from the dashboard: even its 401 is readable by the page.
        denied = await http.post(
            "/graphql", json={"query": ME}, headers={"Origin": "https://dash.alpha.example"}
        )
        assert denied.status_code == 401
        assert denied.headers["access-control-allow-origin"] == "https://dash.alpha.example"
        assert "x-request-id" in denied.headers["access-control-expose-headers"].lower()
        foreign = await http.post(
            "/graphql", json={"query": ME}, headers={"Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in foreign.headers
    finally:
        await http.aclose()
        await app.state.engine.dispose()


async def test_cors_defaults(settings, database_url, engine) -> None:
    local = {**PREFLIGHT, "Origin": "http://localhost:5173"}
    http, app = await cors_client(replace(settings, env="production"), database_url)
    try:
        assert (await http.options("/graphql", headers=local)).status_code == 400
    finally:
        await http.aclose()
        await app.state.engine.dispose()
    http, app = await cors_client(replace(settings, env="development"), database_url)
    try:
        ok = await http.options("/graphql", headers=local)
        assert ok.headers["access-control-allow-origin"] == "http://localhost:5173"
        far = await http.options("/graphql", headers={**PREFLIGHT, "Origin": "https://a.example"})
        assert far.status_code == 400
    finally:
        await http.aclose()
        await app.state.engine.dispose()


def test_cors_origins_are_exact() -> None:
    assert parse_origins("https://a.example, http://localhost:3000") == (
        "https://a.example",
        "http://localhost:3000",
    )
    for bad in ("*", "https://*.example", "https://a.example/path", "a.example"):
        with pytest.raises(ValueError):
            parse_origins(bad)


def test_settings_read_the_issue_s_exact_configuration(monkeypatch) -> None:
    monkeypatch.setenv(
        "FLOWS_OIDC_ISSUERS",
        '[{"issuer": "https://id.example", "audience": "flows-api", '
        '"jwks_uri": "https://id.example/jwks"}]',
    )
    monkeypatch.setenv("FLOWS_CORS_ORIGINS", "https://dash.example")
    settings = Settings.from_env()
    assert [i.issuer for i in settings.oidc_issuers] == ["https://id.example"]
    assert settings.cors_origins == ("https://dash.example",)
    monkeypatch.setenv("FLOWS_CORS_ORIGINS", "*")
    with pytest.raises(ValueError, match="exact origin"):
        Settings.from_env()
    monkeypatch.delenv("FLOWS_CORS_ORIGINS")
    assert Settings.from_env().cors_origins is None


# --- e-mail look-alikes -----------------------------------------------------------------

KELVIN = "\u212a"  # KELVIN SIGN: str.lower() makes it an ASCII "k"
LOOK_ALIKES = [
    f"{KELVIN}ate@alpha.example",  # Kelvin sign for k
    f"{KELVIN}ATE@ALPHA.EXAMPLE",
    "\uff4b\uff41\uff54\uff45@alpha.example",  # fullwidth ｋａｔｅ
    "kate@alpha.exampl\u0435",  # a Cyrillic е in the domain
    "ADM\u0130N@alpha.example",  # İ: lower() gives i + a combining dot
    "stra\u00dfe@alpha.example",  # ß: case folding gives ss
]


async def test_look_alike_emails_claim_no_grant(api, idp, settings, escos, raw) -> None:
    admin = bearer(settings, "admin", sub="root")["Authorization"].split()[1]
    alpha, _ = escos
    for address in ("kate@alpha.example", "admin@alpha.example", "strasse@alpha.example"):
        grant = {"issuer": idp.issuer, "email": address, "escoIds": [str(alpha.id)]}
        assert (await api.data(admin, GRANT, {"input": grant}))["grantOperatorAccess"][
            "userErrors"
        ] == []
    for n, address in enumerate(LOOK_ALIKES):
        token = idp.token(f"look-alike-{n}", email=address)
        viewer = (await api.data(token, ME))["viewer"]
        assert viewer["role"] == "UNLINKED" and viewer["escos"] == [], (address, viewer)
    assert await raw.fetchval("SELECT count(*) FROM staff_grants WHERE subject IS NULL") == 3
    # A grant by e-mail takes ASCII addresses only.
    for address in LOOK_ALIKES[:1] + LOOK_ALIKES[2:]:
        grant = {"issuer": idp.issuer, "email": address, "escoIds": [str(alpha.id)]}
        body = await api.data(admin, GRANT, {"input": grant})
        [error] = body["grantOperatorAccess"]["userErrors"]
        assert (error["field"], error["code"]) == (["email"], "INVALID"), address
    assert await raw.fetchval("SELECT count(*) FROM staff_grants") == 3
    # The address itself, in any ASCII case, is the grant's.
    owner = idp.token("kate-sub", email="KATE@Alpha.Example")
    assert (await api.data(owner, ME))["viewer"]["role"] == "OPERATOR"


async def test_look_alike_emails_accept_no_invite(api, idp, settings, escos, raw) -> None:
    alpha, _ = escos
    await raw.execute(
        "UPDATE customers SET email = 'kate@alpha.example' WHERE id = $1", alpha.customer_ids[0]
    )
    token = await invite(api, settings, alpha, 0)
    for n, address in enumerate(LOOK_ALIKES[:4]):
        body = await api.data(idp.token(f"look-{n}", email=address), ACCEPT, {"token": token})
        [error] = body["acceptInvite"]["userErrors"]
        assert error["code"] == "INVITE_EMAIL_MISMATCH", address
    assert await raw.fetchval("SELECT count(*) FROM customer_identities") == 0
    body = await api.data(idp.token("kate", email="Kate@ALPHA.example"), ACCEPT, {"token": token})
    assert body["acceptInvite"]["userErrors"] == []
