"""Arguments and input fields shared by the root queries and the mutations: the
`escoId` argument, and the `ID`s an input names, as the services take them."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import strawberry
from sqlalchemy import FromClause
from strawberry import Maybe, Some

from ..errors import invalid_argument
from ..services.inputs import NO_SUCH_ID
from ..types.node import parse_id

EscoIdArg = Annotated[
    strawberry.ID | None, strawberry.argument(description="Only this ESCO (global id or uuid).")
]


def esco_id_argument(value: str | None) -> uuid.UUID | None:
    """`escoId`: a global id of an Esco or a uuid; anything else is INVALID."""
    if value is None:
        return None
    parsed = parse_id(value, "Esco")
    if parsed is None:
        raise invalid_argument("`escoId` is not the id of an ESCO.", "escoId")
    return parsed


def in_esco(table: FromClause, esco_id: str | None) -> list[Any]:
    """The condition of a root list's `escoId` argument (none when left out)."""
    esco = esco_id_argument(esco_id)
    return [table.c.esco_id == esco] if esco is not None else []


def optional_id(value: strawberry.ID | None, type_name: str) -> uuid.UUID | None:
    """An optional `ID` input: null is None, anything else the uuid it names (an id
    of another type names nothing: NOT_FOUND)."""
    return None if value is None else parse_id(value, type_name) or NO_SUCH_ID


def maybe_id(value: Maybe[strawberry.ID | None], type_name: str) -> Maybe[uuid.UUID | None]:
    """A clearable `ID` input of an update: left out stays left out (None), null
    stays null (`Some(None)`), an id becomes the uuid it names."""
    return None if value is None else Some(optional_id(value.value, type_name))
