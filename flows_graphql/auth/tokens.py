"""JWTs (HS256) for admins, operators and customers.

The secret is FLOWS_JWT_SECRET, or one generated once and kept in the data folder, so
the server and `flows-graphql token` agree without any set-up.
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt

from ..config import Settings

ALGORITHM = "HS256"
ROLES = ("admin", "operator", "customer", "partner")


def jwt_secret(settings: Settings) -> str:
    if settings.jwt_secret:
        return settings.jwt_secret
    path = settings.data_dir / "jwt-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_private(path, secrets.token_urlsafe(48))
    return path.read_text().strip()


def _write_private(path: Path, value: str) -> None:
    # O_EXCL: two processes starting at once must not end up with two secrets.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as f:
        f.write(value)


def issue_token(
    secret: str,
    *,
    sub: str,
    role: str,
    escos: list[str] | None = None,
    customer_id: str | None = None,
    ttl: timedelta = timedelta(hours=24),
    now: datetime | None = None,
) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": sub,
        "role": role,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
    }
    if escos is not None:
        claims["escos"] = escos
    if customer_id is not None:
        claims["customer_id"] = customer_id
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_token(secret: str, token: str) -> dict[str, Any]:
    """The token's claims; raises jwt.InvalidTokenError (expired, malformed, bad signature)."""
    claims: dict[str, Any] = jwt.decode(
        token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub", "role"]}
    )
    return claims
