"""Argument handling shared by the root queries."""

from __future__ import annotations

import uuid

from ..errors import invalid_argument
from ..types.node import parse_id


def esco_id_argument(value: str | None) -> uuid.UUID | None:
    """`escoId`: a global id of an Esco or a uuid; anything else is INVALID."""
    if value is None:
        return None
    parsed = parse_id(value, "Esco")
    if parsed is None:
        raise invalid_argument("`escoId` is not the id of an ESCO.", "escoId")
    return parsed
