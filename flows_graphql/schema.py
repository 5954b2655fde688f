"""The Strawberry schema, assembled from the per-domain resolvers."""

from __future__ import annotations

import strawberry
from strawberry.schema.config import StrawberryConfig

from . import execution
from .resolvers import billing as billing_resolvers
from .resolvers import community as community_resolvers
from .resolvers import customers as customer_resolvers
from .resolvers import identity as identity_resolvers
from .resolvers import metering as metering_resolvers
from .resolvers import payments as payment_resolvers
from .resolvers import tariffs as tariff_resolvers
from .resolvers import usage as usage_resolvers
from .resolvers import webhooks as webhook_resolvers
from .resolvers.audit import AuditQuery
from .resolvers.billing import BillingQuery
from .resolvers.community import CommunityQuery
from .resolvers.customers import CustomersQuery
from .resolvers.lookups import LookupsQuery
from .resolvers.metering import MeteringQuery
from .resolvers.node import NodeQuery
from .resolvers.ratelimit import RateLimitQuery
from .resolvers.subscriptions import Subscription
from .resolvers.tariffs import TariffsQuery
from .resolvers.webhooks import WebhooksQuery
from .trusted import Documents
from .types import billing, community, customers, identity, metering, tariffs
from .types.scalars import SCALAR_MAP

# Types reached only through `node(id:)` still belong in the schema.
NODE_TYPES = [
    community.Region,
    community.Esco,
    community.Site,
    community.ContractTerms,
    metering.Property,
    metering.Meter,
    metering.Circuit,
    metering.SolarInstallation,
    customers.Customer,
    customers.CustomerAccount,
    customers.Account,
    customers.CustomerInvite,
    customers.CustomerEvent,
    customers.AccountEvent,
    customers.AuditLogEntry,
    identity.CustomerIdentity,
    identity.StaffGrant,
    tariffs.BenchmarkTariff,
    tariffs.MicrogridTariff,
    tariffs.CustomerTariff,
    tariffs.SolarCreditTariff,
    billing.MonthlyUsage,
    billing.MonthlyCosts,
    billing.MonthlySolarCredit,
    billing.BillingRun,
    billing.Payment,
]


@strawberry.type(description="Read the Flows graph.")
class Query(
    NodeQuery,
    CommunityQuery,
    CustomersQuery,
    MeteringQuery,
    TariffsQuery,
    BillingQuery,
    LookupsQuery,
    AuditQuery,
    RateLimitQuery,
    WebhooksQuery,
):
    pass


# Each domain's resolvers module may define `Mutations`; together they are the root.
MUTATION_CLASSES = [
    module.Mutations
    for module in (
        community_resolvers,
        metering_resolvers,
        customer_resolvers,
        identity_resolvers,
        tariff_resolvers,
        usage_resolvers,
        billing_resolvers,
        payment_resolvers,
        webhook_resolvers,
    )
    if hasattr(module, "Mutations")
]
Mutation = strawberry.type(
    type("Mutation", tuple(MUTATION_CLASSES), {}), description="Change the Flows graph."
)


def build_schema(strict_rows: set[str] | None = None) -> strawberry.Schema:
    """The schema; with `strict_rows`, resolvers that read a column they do not
    declare raise (tests: execution.install)."""
    built = strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        execution_context_class=execution.ExecutionContext,
        types=NODE_TYPES,
        # Parsing and validation once per document (trusted.py).
        extensions=[Documents],
    )
    execution.install(built, strict_rows=strict_rows)
    return built


schema = build_schema()
