"""The Node interface: an opaque global id plus the database uuid."""

from __future__ import annotations

import base64
import binascii
import uuid as uuid_mod

import strawberry


def to_global_id(type_name: str, key: uuid_mod.UUID | str) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{key}".encode()).decode().rstrip("=")


def from_global_id(global_id: str) -> tuple[str, str] | None:
    """(type name, key), or None when the id is not one of ours."""
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        type_name, sep, key = base64.urlsafe_b64decode(padded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return (type_name, key) if sep and type_name and key else None


@strawberry.interface(description="An object with an opaque global id.")
class Node:
    id: strawberry.ID = strawberry.field(
        description="Opaque global id; `node(id:)` resolves it to this object."
    )
    uuid: uuid_mod.UUID = strawberry.field(description="The id of this object in the database.")
