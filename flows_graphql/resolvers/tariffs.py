"""Root queries over tariffs."""

from __future__ import annotations

from typing import Annotated

import strawberry
from sqlalchemy import select

from ..context import Context
from ..db.models import BenchmarkTariff as BenchmarkTariffModel
from ..types.connection import FromDay, ToDay
from ..types.tariffs import BenchmarkTariff

Info = strawberry.Info[Context, None]
BENCHMARKS = BenchmarkTariffModel.__table__


@strawberry.type
class TariffsQuery:
    @strawberry.field(
        description="Benchmark tariffs with a period start in [from, to], oldest first."
    )
    async def benchmark_tariffs(
        self,
        info: Info,
        region_code: Annotated[
            str | None, strawberry.argument(description="Only this region.")
        ] = None,
        from_: FromDay = None,
        to: ToDay = None,
    ) -> list[BenchmarkTariff]:
        stmt = select(BENCHMARKS).order_by(BENCHMARKS.c.region_code, BENCHMARKS.c.period_start)
        if region_code is not None:
            stmt = stmt.where(BENCHMARKS.c.region_code == region_code)
        if from_ is not None:
            stmt = stmt.where(BENCHMARKS.c.period_start >= from_)
        if to is not None:
            stmt = stmt.where(BENCHMARKS.c.period_start <= to)
        return list(await info.context.db.rows(stmt))
