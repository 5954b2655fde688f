"""Root queries over the energy community: regions and ESCOs."""

from __future__ import annotations

import strawberry
from sqlalchemy import select

from ..context import Context
from ..db.models import Esco as EscoModel
from ..db.models import Region as RegionModel
from ..types.community import Esco, Region

ESCO_COLUMNS = EscoModel.__table__.c


def _escos_in_scope(info: strawberry.Info[Context, None]):  # type: ignore[no-untyped-def]
    stmt = select(EscoModel.__table__)
    scope = info.context.viewer.esco_scope
    if scope is not None:
        stmt = stmt.where(ESCO_COLUMNS.id.in_(scope))
    return stmt


@strawberry.type
class CommunityQuery:
    @strawberry.field(description="The 14 GB price-cap regions.")
    async def regions(self, info: strawberry.Info[Context, None]) -> list[Region]:
        rows = await info.context.db.rows(
            select(RegionModel.__table__).order_by(RegionModel.__table__.c.code)
        )
        return [Region.from_row(r) for r in rows]

    @strawberry.field(description="The ESCOs the viewer may see, by code.")
    async def escos(self, info: strawberry.Info[Context, None]) -> list[Esco]:
        rows = await info.context.db.rows(_escos_in_scope(info).order_by(ESCO_COLUMNS.code))
        return [Esco.from_row(r) for r in rows]

    @strawberry.field(description="One ESCO by its code; null when missing or out of scope.")
    async def esco(self, info: strawberry.Info[Context, None], code: str) -> Esco | None:
        rows = await info.context.db.rows(_escos_in_scope(info).where(ESCO_COLUMNS.code == code))
        return Esco.from_row(rows[0]) if rows else None
