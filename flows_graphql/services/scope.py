"""The ESCO a mutation acts in, if the viewer may act there: out of scope looks
exactly like missing (NOT_FOUND on `escoId`)."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from ..db.models import Esco, table_of
from .problems import ErrorCode, Problems
from .tx import Row, Tx

ESCOS = table_of(Esco)


async def find_esco(
    tx: Tx, problems: Problems, esco_id: uuid.UUID | None, *, lock: bool = False
) -> Row | None:
    """The ESCO row, or None with a NOT_FOUND problem on `escoId`."""
    if esco_id is not None and tx.may_see(esco_id):
        stmt = select(ESCOS).where(ESCOS.c.id == esco_id)
        if lock:
            # FOR NO KEY UPDATE: rows being inserted that reference the ESCO go on.
            stmt = stmt.with_for_update(key_share=True)
        row = (await tx.conn.execute(stmt)).first()
        if row is not None:
            return row
    problems.add("escoId", ErrorCode.NOT_FOUND, "No ESCO with this id.")
    return None


async def esco_or_reject(tx: Tx, esco_id: uuid.UUID | None) -> Row:
    """The ESCO row; refuses the mutation when it is missing or out of scope."""
    problems = Problems()
    esco = await find_esco(tx, problems, esco_id)
    problems.raise_if_any()
    assert esco is not None
    return esco
