"""Monthly usage, the costs billing computes from it, billing runs, solar credits and
payments."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from operator import sub
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry

from ..context import Context
from ..db.models.enums import BillingRunStatus, PaymentStatus, UsageSource
from ..fields import carried, computed, formula, loaded, paged, relation
from ..loaders import audit as audit_loaders
from ..loaders import billing as loaders
from ..loaders import community as community_loaders
from ..loaders import customers as customer_loaders
from ..loaders import metering as metering_loaders
from .node import Node, RowType, by_uuid, global_id, register_node, uuid_field

if TYPE_CHECKING:
    from .community import Esco
    from .customers import Account, Customer
    from .metering import Meter, Property

Info = strawberry.Info[Context, None]
Lazy = strawberry.lazy


@strawberry.type(description="One month of a meter's readings.")
class MonthlyUsage(RowType, Node):
    id: strawberry.ID = global_id("MonthlyUsage")
    uuid: UUID = uuid_field()
    month: date = strawberry.field(description="The month (its 1st).")
    power_kwh: Decimal = strawberry.field(description="Power used, kWh.")
    heat_kwh: Decimal = strawberry.field(description="Heat used, kWh.")
    solar_kwh: Decimal = strawberry.field(
        description="Solar generated, kWh (recorded, not billed)."
    )
    source: UsageSource = strawberry.field(description="Meter reading, estimate or manual entry.")
    meter_id: strawberry.Private[UUID]

    meter = relation(
        Annotated["Meter", Lazy("flows_graphql.types.metering")],
        metering_loaders.MeterById,
        "meter_id",
        "The meter.",
    )

    costs = carried(
        Annotated["MonthlyCosts", Lazy("flows_graphql.types.billing")] | None,
        loaders.CostsByUsageId,
        "costs_",
        "What this month cost, once billed.",
    )


@strawberry.type(
    description="Power, heat and standing charge at one tariff, and their total (GBP)."
)
class CostBreakdown:
    power: Decimal = strawberry.field(description="Unit rate x power kWh.")
    heat: Decimal = strawberry.field(description="Unit rate x heat kWh.")
    standing_charge: Decimal = strawberry.field(description="Standing charge x days.")
    total: Decimal = strawberry.field(description="Power + heat + standing charge.")


@strawberry.type(
    description="What a month of usage cost its occupier, beside what the microgrid tariff "
    "and the benchmark would have charged. Full precision: round only to present."
)
class MonthlyCosts(RowType, Node):
    id: strawberry.ID = global_id("MonthlyCosts")
    uuid: UUID = uuid_field()
    month: date = strawberry.field(description="The month (its 1st).")
    power: Decimal = strawberry.field(description="Unit rate x power kWh, GBP.")
    heat: Decimal = strawberry.field(description="Unit rate x heat kWh, GBP.")
    standing_charge: Decimal = strawberry.field(description="Standing charge x days, GBP.")
    total: Decimal = strawberry.field(description="Power + heat + standing charge, GBP.")
    customer_id: strawberry.Private[UUID]
    monthly_usage_id: strawberry.Private[UUID]
    billing_run_id: strawberry.Private[UUID]
    microgrid_power: strawberry.Private[Decimal]
    microgrid_heat: strawberry.Private[Decimal]
    microgrid_standing_charge: strawberry.Private[Decimal]
    microgrid_total: strawberry.Private[Decimal]
    benchmark_power: strawberry.Private[Decimal]
    benchmark_heat: strawberry.Private[Decimal]
    benchmark_standing_charge: strawberry.Private[Decimal]
    benchmark_total: strawberry.Private[Decimal]

    @computed(
        "microgrid_power",
        "microgrid_heat",
        "microgrid_standing_charge",
        "microgrid_total",
        description="The same usage at the ESCO's microgrid tariff.",
    )
    def microgrid(self) -> CostBreakdown:
        return CostBreakdown(
            power=self.microgrid_power,
            heat=self.microgrid_heat,
            standing_charge=self.microgrid_standing_charge,
            total=self.microgrid_total,
        )

    @computed(
        "benchmark_power",
        "benchmark_heat",
        "benchmark_standing_charge",
        "benchmark_total",
        description="The same usage at the region's benchmark.",
    )
    def benchmark(self) -> CostBreakdown:
        return CostBreakdown(
            power=self.benchmark_power,
            heat=self.benchmark_heat,
            standing_charge=self.benchmark_standing_charge,
            total=self.benchmark_total,
        )

    savings = formula(
        sub,
        "benchmark_total",
        "total",
        returns=Decimal,
        description="Benchmark total minus total: what the community saved.",
    )

    customer = relation(
        Annotated["Customer", Lazy("flows_graphql.types.customers")],
        customer_loaders.CustomerById,
        "customer_id",
        "The billed customer (the occupier on the 1st).",
    )

    usage = relation(
        Annotated["MonthlyUsage", Lazy("flows_graphql.types.billing")],
        loaders.UsageById,
        "monthly_usage_id",
        "The usage billed.",
    )

    billing_run = relation(
        Annotated["BillingRun", Lazy("flows_graphql.types.billing")] | None,
        loaders.BillingRunById,
        "billing_run_id",
        "The run that computed these costs (null for customers, who do not see billing runs).",
    )


@strawberry.type(description="A supply meter a billing run could not bill, and why.")
class SkippedMeter:
    reason: str = strawberry.field(description="`NO_OCCUPIER` or `NO_TARIFF`.")
    meter_id: strawberry.Private[UUID]

    meter = relation(
        Annotated["Meter", Lazy("flows_graphql.types.metering")] | None,
        metering_loaders.MeterById,
        "meter_id",
        "The meter.",
    )


@strawberry.type(description="The credit a property's solar installation earned in a month.")
class MonthlySolarCredit(RowType, Node):
    id: strawberry.ID = global_id("MonthlySolarCredit")
    uuid: UUID = uuid_field()
    month: date = strawberry.field(description="The month (its 1st).")
    credit_pence: int = strawberry.field(description="Whole pence.")
    property_id: strawberry.Private[UUID]

    property = relation(
        Annotated["Property", Lazy("flows_graphql.types.metering")],
        metering_loaders.PropertyById,
        "property_id",
        "The property credited.",
    )


@strawberry.type(description="How far a billing run is.")
class BillingRunProgress:
    billed: int = strawberry.field(
        description="Supply meters done so far: their costs written, or skipped."
    )
    total: int = strawberry.field(description="Supply meters the run bills or skips.")


@strawberry.type(description="One billing of one ESCO for one month.")
class BillingRun(RowType, Node):
    id: strawberry.ID = global_id("BillingRun")
    uuid: UUID = uuid_field()
    month: date = strawberry.field(description="The month billed (its 1st).")
    status: BillingRunStatus = strawberry.field(description="Finalized runs freeze their month.")
    started_at: datetime = strawberry.field(description="When the run started.")
    finished_at: datetime | None = strawberry.field(description="When it finished.")
    customers_billed: int = strawberry.field(description="Customers with costs this month.")
    total: Decimal = strawberry.field(description="Sum of the month's customer totals, GBP.")
    updated_at: datetime = strawberry.field(
        description="When this row was last written (its transaction's start): the sort "
        "key of orderBy: UPDATED_AT and updatedSince."
    )
    error: str | None = strawberry.field(
        description="Why the run failed (FAILED only); nothing of a failed run is written."
    )
    esco_id: strawberry.Private[UUID]
    progress_billed: strawberry.Private[int | None]
    progress_total: strawberry.Private[int | None]
    skipped_meters: strawberry.Private[list[dict[str, Any]] | None]

    esco = relation(
        Annotated["Esco", Lazy("flows_graphql.types.community")],
        community_loaders.EscoById,
        "esco_id",
        "The ESCO billed.",
    )

    @computed(
        "progress_billed",
        "progress_total",
        description="Meters done of the meters to bill, updated while the run is RUNNING; "
        "null until it has read the month's usage.",
    )
    def progress(self) -> BillingRunProgress | None:
        billed, total = self.progress_billed, self.progress_total
        if billed is None or total is None:
            return None
        return BillingRunProgress(billed=billed, total=total)

    @computed(
        "skipped_meters", description="Supply meters the run could not bill, with the reason."
    )
    def skipped(self) -> list[SkippedMeter]:
        entries = self.skipped_meters or []
        return [SkippedMeter(reason=e["reason"], meter_id=UUID(e["meter_id"])) for e in entries]

    costs = paged(
        MonthlyCosts,
        loaders.CostsByBillingRunId,
        loaders.CostCountByBillingRunId,
        "The costs this run wrote.",
    )
    solar_credits = paged(
        MonthlySolarCredit,
        loaders.SolarCreditsByBillingRunId,
        loaders.SolarCreditCountByBillingRunId,
        "The solar credits this run wrote.",
    )


def shown_actor(actor: str, viewer: Any) -> str:
    """Who made a change, as the viewer may see it: staff and partners see the actor;
    a customer sees a role (`you`, `operator`, `partner`, `system`), never a person."""
    if viewer.role != "customer":
        return actor
    if actor == viewer.actor:
        return "you"
    kind = actor.partition(":")[0]
    return {"user": "operator", "partner": "partner", "customer": "customer"}.get(kind, "system")


@strawberry.type(description="One change of a payment's status.")
class PaymentStatusChange:
    status: PaymentStatus = strawberry.field(description="The status it moved to.")
    previous_status: PaymentStatus | None = strawberry.field(
        description="The status it left (null for its creation)."
    )
    actor: str = strawberry.field(
        description="Who: `user:…`, `partner:…`, `customer:…`, `system` (for a customer: "
        "`you`, `operator`, `partner` or `system`)."
    )
    changed_at: datetime = strawberry.field(description="When.")


def _status_changes(rows: list[Any], viewer: Any) -> list[PaymentStatusChange]:
    return [
        PaymentStatusChange(
            status=PaymentStatus(row.new_status),
            previous_status=PaymentStatus(row.old_status) if row.old_status else None,
            actor=shown_actor(row.actor, viewer),
            changed_at=row.created_at,
        )
        for row in rows
    ]


@strawberry.type(description="A customer's payment towards an account, in pence.")
class Payment(RowType, Node):
    id: strawberry.ID = global_id("Payment")
    uuid: UUID = uuid_field()
    amount_pence: int = strawberry.field(description="Whole pence, 1..50000.")
    currency: str = strawberry.field(description="ISO 4217 code (GBP).")
    status: PaymentStatus = strawberry.field(description="Moves only forward.")
    description: str | None = strawberry.field(description="What it is for.")
    provider_reference: str | None = strawberry.field(
        description="The card processor's payment id, once known."
    )
    scheduled_at: datetime | None = strawberry.field(description="When it is due to be taken.")
    created_at: datetime = strawberry.field(description="When it was created.")
    customer_id: strawberry.Private[UUID]
    account_id: strawberry.Private[UUID]

    customer = relation(
        Annotated["Customer", Lazy("flows_graphql.types.customers")],
        customer_loaders.CustomerById,
        "customer_id",
        "The paying customer.",
    )

    account = relation(
        Annotated["Account", Lazy("flows_graphql.types.customers")],
        customer_loaders.AccountById,
        "account_id",
        "The account paid towards.",
    )

    status_history = loaded(
        list[PaymentStatusChange],
        audit_loaders.StatusHistoryByPaymentId,
        "Each change of status, oldest first: what it moved from and to, who made it and "
        "when (from the audit trail every mutation writes).",
        each=lambda rows, info, args: _status_changes(rows or [], info.context.viewer),
        project=False,
    )


register_node("MonthlyUsage", by_uuid(loaders.UsageById))
register_node("MonthlyCosts", by_uuid(loaders.CostsById))
register_node("MonthlySolarCredit", by_uuid(metering_loaders.SolarCreditById))
register_node("BillingRun", by_uuid(loaders.BillingRunById))
register_node("Payment", by_uuid(loaders.PaymentById))
