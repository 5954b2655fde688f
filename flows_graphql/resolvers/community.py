"""Root queries over the energy community: regions, ESCOs, contract terms."""

from __future__ import annotations

from typing import Annotated

import strawberry
from sqlalchemy import select

from ..context import Context
from ..loaders.community import ESCO_SPEC, ESCOS, REGIONS, TERMS
from ..types.community import ContractTerms, Esco, Region
from ..types.connection import After, Before, Connection, First, Last, root_connection

Info = strawberry.Info[Context, None]


@strawberry.type
class CommunityQuery:
    @strawberry.field(description="The 14 GB price-cap regions, by code.")
    async def regions(self, info: Info) -> list[Region]:
        return list(await info.context.db.rows(select(REGIONS).order_by(REGIONS.c.code)))

    @strawberry.field(description="The ESCOs the viewer may see, by code.")
    async def escos(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Esco]:
        return await root_connection(
            info, ESCO_SPEC, None, [], first=first, after=after, last=last, before=before
        )

    @strawberry.field(description="One ESCO by its code; null when missing or out of scope.")
    async def esco(
        self, info: Info, code: Annotated[str, strawberry.argument(description="ESCO code.")]
    ) -> Esco | None:
        stmt = select(ESCOS).where(ESCOS.c.code == code)
        scope = info.context.viewer.esco_scope
        if scope is not None:
            stmt = stmt.where(ESCOS.c.id.in_(scope))
        rows = await info.context.db.rows(stmt)
        return rows[0] if rows else None

    @strawberry.field(description="Every version of every contract terms, by type and title.")
    async def contract_terms(self, info: Info) -> list[ContractTerms]:
        stmt = select(TERMS).order_by(TERMS.c.type, TERMS.c.title, TERMS.c.version)
        return list(await info.context.db.rows(stmt))
