"""Partner API keys: `flows_<key id hex>_<secret>`, shown once, stored as sha256."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import API_KEY_SCOPES, ApiKey, table_of

KEYS = table_of(ApiKey)
PREFIX = "flows"
# Servers listen here (auth/authenticate.py): a created or revoked key's id, sent when
# its transaction commits, so their caches of keys forget it at once.
KEY_CHANNEL = "flows_api_keys"
NOTIFY = text(f"SELECT pg_notify('{KEY_CHANNEL}', :key_id)")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    id: uuid.UUID
    key: str  # the only time the full key exists outside the caller's hands


def parse_key(key: str) -> tuple[uuid.UUID, str] | None:
    parts = key.strip().split("_")
    if len(parts) != 3 or parts[0] != PREFIX:
        return None
    try:
        return uuid.UUID(hex=parts[1]), parts[2]
    except ValueError:
        return None


async def create_key(
    conn: AsyncConnection, esco_id: uuid.UUID, scopes: list[str], name: str
) -> IssuedKey:
    unknown = sorted(set(scopes) - set(API_KEY_SCOPES))
    if unknown or not scopes:
        raise ValueError(f"scopes must be among {', '.join(API_KEY_SCOPES)}; got {scopes}")
    key_id = uuid.uuid4()
    secret = secrets.token_urlsafe(32).replace("_", "-")
    await conn.execute(
        KEYS.insert().values(
            id=key_id,
            esco_id=esco_id,
            name=name,
            key_hash=hash_secret(secret),
            scopes=sorted(set(scopes)),
        )
    )
    await conn.execute(NOTIFY, {"key_id": str(key_id)})
    return IssuedKey(key_id, f"{PREFIX}_{key_id.hex}_{secret}")


async def revoke_key(conn: AsyncConnection, key_id: uuid.UUID) -> bool:
    result = await conn.execute(
        update(KEYS)
        .where(KEYS.c.id == key_id, KEYS.c.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )
    await conn.execute(NOTIFY, {"key_id": str(key_id)})
    return bool(result.rowcount)


async def list_keys(conn: AsyncConnection, esco_id: uuid.UUID | None) -> list[Any]:
    stmt = select(
        KEYS.c.id, KEYS.c.esco_id, KEYS.c.name, KEYS.c.scopes, KEYS.c.created_at, KEYS.c.revoked_at
    ).order_by(KEYS.c.created_at)
    if esco_id is not None:
        stmt = stmt.where(KEYS.c.esco_id == esco_id)
    return list((await conn.execute(stmt)).all())
