"""A real OpenID Connect provider for the tests, on a free loopback port: discovery
document and JWKS over HTTP (http.server in a thread), keys made with `cryptography`,
tokens signed with PyJWT. Tests rotate its keys, change its cache headers, take it
down, and read how many times the API fetched its keys."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

AUDIENCE = "flows-api"


@dataclass
class Key:
    kid: str
    alg: str
    private: Any

    def public_jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        exporter = {"RS256": RSAAlgorithm, "ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}[self.alg]
        jwk: dict[str, Any] = exporter.to_jwk(public, as_dict=True)  # type: ignore[attr-defined]
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}


def make_key(alg: str, kid: str | None = None) -> Key:
    private: Any
    if alg == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(alg)
    return Key(kid or f"{alg.lower()}-{uuid.uuid4().hex[:8]}", alg, private)


@dataclass
class Provider:
    """The provider's state; the HTTP handler reads it on every request."""

    keys: list[Key] = field(default_factory=list)
    cache_control: str | None = "max-age=300"
    # Every path the API fetched, in order.
    hits: list[str] = field(default_factory=list)
    # While set, every request waits this long (an unreachable provider).
    stall_s: float = 0.0
    down: bool = False
    port: int = 0
    server: ThreadingHTTPServer | None = None
    discovery_issuer: str | None = None  # None: the real issuer
    # A hostile provider: served instead of the real JWKS / discovery document.
    jwks_body: Any = None
    discovery_body: Any = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}/realms/flows"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/certs"

    def jwks_fetches(self) -> int:
        return sum(1 for h in self.hits if h.endswith("/certs"))

    def config(self, **extra: Any) -> dict[str, Any]:
        """Its FLOWS_OIDC_ISSUERS entry (with jwks_uri unless extra says otherwise)."""
        return {"issuer": self.issuer, "audience": AUDIENCE, "jwks_uri": self.jwks_uri, **extra}

    def token(
        self,
        sub: str,
        *,
        key: Key | None = None,
        email: str | None = None,
        email_verified: bool = True,
        lifetime: int = 300,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        key = key or self.keys[0]
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": sub,
            "iat": now,
            "exp": now + lifetime,
            **claims,
        }
        if email is not None:
            payload["email"] = email
            payload["email_verified"] = email_verified
        return jwt.encode(
            payload, key.private, algorithm=key.alg, headers={"kid": key.kid, **(headers or {})}
        )

    def start(self) -> Provider:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.hits.append(self.path)
                if provider.stall_s:
                    time.sleep(provider.stall_s)
                if provider.down:
                    self.send_response(503)
                    self.end_headers()
                    return
                base = "/realms/flows"
                if self.path == f"{base}/.well-known/openid-configuration":
                    body: Any = provider.discovery_body or {
                        "issuer": provider.discovery_issuer or provider.issuer,
                        "jwks_uri": provider.jwks_uri,
                        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                    }
                elif self.path == f"{base}/protocol/openid-connect/certs":
                    body = provider.jwks_body or {"keys": [k.public_jwk() for k in provider.keys]}
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if provider.cache_control:
                    self.send_header("Cache-Control", provider.cache_control)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
