"""Regions and ESCOs."""

from __future__ import annotations

from typing import Any

import strawberry

from ..db.models.enums import TariffGeneration
from . import enums as _registered  # noqa: F401  (registers the GraphQL enums)
from .node import Node, to_global_id


@strawberry.type(description="A GB price-cap region that benchmark tariffs are published for.")
class Region:
    code: str = strawberry.field(description="Snake-case region code, e.g. `south_west`.")
    name: str = strawberry.field(description="Display name.")

    @classmethod
    def from_row(cls, row: Any) -> Region:
        return cls(code=row.code, name=row.name)


@strawberry.type(description="An Energy Service Company: the tenant that runs a microgrid.")
class Esco(Node):
    code: str = strawberry.field(description="Lower-case slug, unique.")
    name: str = strawberry.field(description="Display name.")
    region_code: strawberry.Private[str]
    app_url: str | None = strawberry.field(
        description="URL of the ESCO's customer app, used in invite links."
    )
    tariff_generation: TariffGeneration = strawberry.field(
        description="`AUTO`: new quarters generate tariffs; `FROZEN`: current tariffs are kept."
    )

    @classmethod
    def from_row(cls, row: Any) -> Esco:
        return cls(
            id=strawberry.ID(to_global_id("Esco", row.id)),
            uuid=row.id,
            code=row.code,
            name=row.name,
            region_code=row.region_code,
            app_url=row.app_url,
            tariff_generation=row.tariff_generation,
        )
