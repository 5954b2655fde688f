"""Benchmark, microgrid, customer and solar-credit tariffs."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry

from ..context import Context
from ..fields import relation
from ..loaders import community as community_loaders
from ..loaders import customers as customer_loaders
from ..loaders import tariffs as tariff_loaders
from ..loaders.tariffs import ByOwnerAndStart
from .node import Node, NodeSource, RowType, global_id, register_node

if TYPE_CHECKING:
    from .community import Esco, Region
    from .customers import Customer

Info = strawberry.Info[Context, None]
Lazy = strawberry.lazy


@strawberry.type(description="The regulator-published price of a region from a date.")
class BenchmarkTariff(RowType, Node):
    id: strawberry.ID = global_id("BenchmarkTariff", "region_code", "period_start")
    period_start: date = strawberry.field(description="First day it applies.")
    unit_rate: Decimal = strawberry.field(description="GBP per kWh.")
    standing_charge: Decimal = strawberry.field(description="GBP per day.")
    region_code: strawberry.Private[str]

    region = relation(
        Annotated["Region", Lazy("flows_graphql.types.community")],
        community_loaders.RegionByCode,
        "region_code",
        "The region it is published for.",
    )


@strawberry.type(
    description="An ESCO's community price from a date: the benchmark less its discount "
    "(exact, not truncated), plus its prepayment settings."
)
class MicrogridTariff(RowType, Node):
    id: strawberry.ID = global_id("MicrogridTariff", "esco_id", "period_start")
    period_start: date = strawberry.field(description="First day it applies.")
    discount_percent: int = strawberry.field(description="Discount on the benchmark, 0..100.")
    unit_rate: Decimal = strawberry.field(description="GBP per kWh.")
    standing_charge: Decimal = strawberry.field(description="GBP per day.")
    emergency_credit: Decimal = strawberry.field(description="Prepayment emergency credit, GBP.")
    ecredit_button_threshold: Decimal = strawberry.field(
        description="Balance under which the e-credit button shows, GBP."
    )
    debt_recovery_rate: Decimal = strawberry.field(description="Debt recovered per day, GBP.")
    esco_id: strawberry.Private[UUID]

    esco = relation(
        Annotated["Esco", Lazy("flows_graphql.types.community")],
        community_loaders.EscoById,
        "esco_id",
        "The ESCO.",
    )


@strawberry.type(
    description="A customer's price from a date: the benchmark less the customer's "
    "discount, truncated to 5 decimal places."
)
class CustomerTariff(RowType, Node):
    id: strawberry.ID = global_id("CustomerTariff", "customer_id", "period_start")
    period_start: date = strawberry.field(description="First day it applies.")
    discount_percent: int = strawberry.field(description="Discount on the benchmark, 0..100.")
    unit_rate: Decimal = strawberry.field(description="GBP per kWh.")
    standing_charge: Decimal = strawberry.field(description="GBP per day.")
    customer_id: strawberry.Private[UUID]

    customer = relation(
        Annotated["Customer", Lazy("flows_graphql.types.customers")],
        customer_loaders.CustomerById,
        "customer_id",
        "The customer.",
    )


@strawberry.type(description="What an ESCO credits per kW of solar capacity, from a date.")
class SolarCreditTariff(RowType, Node):
    id: strawberry.ID = global_id("SolarCreditTariff", "esco_id", "period_start")
    period_start: date = strawberry.field(description="First day it applies.")
    credit_pence_per_year: Decimal = strawberry.field(description="Pence per kW per year.")
    credit_pence_per_day: Decimal = strawberry.field(
        description="Pence per kW per day: the yearly figure / 365 (366 in a leap year)."
    )
    esco_id: strawberry.Private[UUID]

    esco = relation(
        Annotated["Esco", Lazy("flows_graphql.types.community")],
        community_loaders.EscoById,
        "esco_id",
        "The ESCO.",
    )


def _by_owner_and_start(loader: type[ByOwnerAndStart], parse_owner: Any) -> NodeSource:
    """node(id:) for a tariff keyed by (owner, period_start), batched per type."""

    async def fetch(loaders_: Any, key: str) -> Any:
        try:
            owner_key, start = key.split("|")
            wanted = (parse_owner(owner_key), date.fromisoformat(start))
        except ValueError:
            return None
        return await loaders_.get(loader).load(wanted)

    return NodeSource(fetch)


register_node("BenchmarkTariff", _by_owner_and_start(tariff_loaders.BenchmarkTariffByKey, str))
register_node("MicrogridTariff", _by_owner_and_start(tariff_loaders.MicrogridTariffByKey, UUID))
register_node("CustomerTariff", _by_owner_and_start(tariff_loaders.CustomerTariffByKey, UUID))
register_node("SolarCreditTariff", _by_owner_and_start(tariff_loaders.SolarCreditTariffByKey, UUID))
