"""Root queries over tariffs."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated

import strawberry
from sqlalchemy import select

from ..context import Context
from ..db.models import BenchmarkTariff as BenchmarkTariffModel
from ..loaders.base import default_from
from ..services import tariffs as service
from ..types.connection import FromDay, ToDay
from ..types.errors import UserError
from ..types.node import parse_id
from ..types.tariffs import BenchmarkTariff, CustomerTariff, MicrogridTariff, SolarCreditTariff
from .mutation import run

Info = strawberry.Info[Context, None]
BENCHMARKS = BenchmarkTariffModel.__table__


@strawberry.type
class TariffsQuery:
    @strawberry.field(
        description="Benchmark tariffs with a period start in [from, to], oldest first."
        " Without `from`: the 24 months up to `to` (or the current month)."
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
        # Bounded by default like the other ranged lists (loaders/base.py).
        start = from_ if from_ is not None else default_from(to, info.context.today())
        stmt = stmt.where(BENCHMARKS.c.period_start >= start)
        if to is not None:
            stmt = stmt.where(BENCHMARKS.c.period_start <= to)
        return list(await info.context.db.rows(stmt))


@strawberry.input(description="A region's benchmark price from a date.")
class PublishBenchmarkTariffInput:
    region_code: str = strawberry.field(description="Region code, e.g. `south_east`.")
    period_start: date = strawberry.field(description="First day it applies.")
    unit_rate: Decimal = strawberry.field(description="GBP per kWh, 0..100, at most 5 dp.")
    standing_charge: Decimal = strawberry.field(description="GBP per day, 0..100, at most 5 dp.")


@strawberry.type(description="What publishing a benchmark generated and recomputed.")
class TariffGenerationReport:
    microgrid_tariffs_created: int = strawberry.field(description="New microgrid tariffs.")
    microgrid_tariffs_recomputed: int = strawberry.field(
        description="Existing microgrid tariffs whose rates changed."
    )
    customer_tariffs_created: int = strawberry.field(description="New customer tariffs.")
    customer_tariffs_recomputed: int = strawberry.field(
        description="Existing customer tariffs whose rates changed."
    )


@strawberry.type(description="The result of publishBenchmarkTariff.")
class PublishBenchmarkTariffPayload:
    benchmark_tariff: BenchmarkTariff | None = strawberry.field(description="The tariff.")
    generation: TariffGenerationReport | None = strawberry.field(
        description="What quarterly generation did."
    )
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(description="An ESCO's microgrid discount and prepayment settings from a date.")
class SetMicrogridTariffInput:
    esco_id: strawberry.ID = strawberry.field(description="The ESCO (global id or uuid).")
    period_start: date = strawberry.field(description="First day it applies.")
    discount_percent: int = strawberry.field(description="Discount on the benchmark, 0..100.")
    emergency_credit: Decimal | None = strawberry.field(
        default=None, description="GBP 0..5000 (default: kept, or 15.00)."
    )
    ecredit_button_threshold: Decimal | None = strawberry.field(
        default=None, description="GBP 0..5000 (default: kept, or 10.00)."
    )
    debt_recovery_rate: Decimal | None = strawberry.field(
        default=None, description="GBP 0..500 (default: kept, or 0.25)."
    )


@strawberry.type(description="The result of setMicrogridTariff.")
class SetMicrogridTariffPayload:
    microgrid_tariff: MicrogridTariff | None = strawberry.field(description="The tariff.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(description="A customer's discount from a date.")
class SetCustomerDiscountInput:
    customer_id: strawberry.ID = strawberry.field(description="The customer (global id or uuid).")
    period_start: date = strawberry.field(description="First day it applies.")
    discount_percent: int = strawberry.field(description="Discount on the benchmark, 0..100.")


@strawberry.type(description="The result of setCustomerDiscount.")
class SetCustomerDiscountPayload:
    customer_tariff: CustomerTariff | None = strawberry.field(description="The tariff.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.input(description="An ESCO's solar credit rate from a date.")
class SetSolarCreditTariffInput:
    esco_id: strawberry.ID = strawberry.field(description="The ESCO (global id or uuid).")
    period_start: date = strawberry.field(description="First day it applies.")
    credit_pence_per_year: Decimal = strawberry.field(
        description="Pence per kW per year, 0..30000."
    )


@strawberry.type(description="The result of setSolarCreditTariff.")
class SetSolarCreditTariffPayload:
    solar_credit_tariff: SolarCreditTariff | None = strawberry.field(description="The tariff.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing was written.")


@strawberry.type
class Mutations:
    @strawberry.mutation(
        description="Publish (or correct) a region's benchmark: recomputes the tariffs it "
        "prices and generates the quarter's tariffs of `AUTO` ESCOs. Admins only."
    )
    async def publish_benchmark_tariff(
        self,
        info: Info,
        input: Annotated[
            PublishBenchmarkTariffInput,
            strawberry.argument(
                description="The region, the first day, and the unit rate and standing charge."
            ),
        ],
    ) -> PublishBenchmarkTariffPayload:
        result, errors = await run(
            info,
            lambda tx: service.publish_benchmark(
                tx, input.region_code, input.period_start, input.unit_rate, input.standing_charge
            ),
        )
        if result is None:
            return PublishBenchmarkTariffPayload(
                benchmark_tariff=None, generation=None, user_errors=errors
            )
        row, report = result
        return PublishBenchmarkTariffPayload(
            benchmark_tariff=row,
            generation=TariffGenerationReport(
                microgrid_tariffs_created=report.microgrid_created,
                microgrid_tariffs_recomputed=report.microgrid_recomputed,
                customer_tariffs_created=report.customer_created,
                customer_tariffs_recomputed=report.customer_recomputed,
            ),
            user_errors=[],
        )

    @strawberry.mutation(description="Set an ESCO's microgrid discount from a date.")
    async def set_microgrid_tariff(
        self,
        info: Info,
        input: Annotated[
            SetMicrogridTariffInput,
            strawberry.argument(
                description="The ESCO, the first day, and the discount and credit terms from then."
            ),
        ],
    ) -> SetMicrogridTariffPayload:
        row, errors = await run(
            info,
            lambda tx: service.set_microgrid_tariff(
                tx,
                parse_id(input.esco_id, "Esco"),
                input.period_start,
                input.discount_percent,
                input.emergency_credit,
                input.ecredit_button_threshold,
                input.debt_recovery_rate,
            ),
        )
        return SetMicrogridTariffPayload(microgrid_tariff=row, user_errors=errors)

    @strawberry.mutation(description="Set a customer's discount from a date.")
    async def set_customer_discount(
        self,
        info: Info,
        input: Annotated[
            SetCustomerDiscountInput,
            strawberry.argument(
                description="The customer, the first day, and their discount from then."
            ),
        ],
    ) -> SetCustomerDiscountPayload:
        row, errors = await run(
            info,
            lambda tx: service.set_customer_discount(
                tx,
                parse_id(input.customer_id, "Customer"),
                input.period_start,
                input.discount_percent,
            ),
        )
        return SetCustomerDiscountPayload(customer_tariff=row, user_errors=errors)

    @strawberry.mutation(description="Set an ESCO's solar credit rate from a date.")
    async def set_solar_credit_tariff(
        self,
        info: Info,
        input: Annotated[
            SetSolarCreditTariffInput,
            strawberry.argument(
                description="The ESCO, the first day, and the solar credit rate from then."
            ),
        ],
    ) -> SetSolarCreditTariffPayload:
        row, errors = await run(
            info,
            lambda tx: service.set_solar_credit_tariff(
                tx,
                parse_id(input.esco_id, "Esco"),
                input.period_start,
                input.credit_pence_per_year,
            ),
        )
        return SetSolarCreditTariffPayload(solar_credit_tariff=row, user_errors=errors)
