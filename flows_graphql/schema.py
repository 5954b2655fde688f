"""The Strawberry schema, assembled from the per-domain resolvers."""

from __future__ import annotations

import strawberry
from strawberry.extensions import ParserCache, ValidationCache

from .resolvers.billing import BillingQuery
from .resolvers.community import CommunityQuery
from .resolvers.customers import CustomersQuery
from .resolvers.metering import MeteringQuery
from .resolvers.node import NodeQuery
from .resolvers.tariffs import TariffsQuery
from .types import billing, community, customers, metering, tariffs

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
class Query(NodeQuery, CommunityQuery, CustomersQuery, MeteringQuery, TariffsQuery, BillingQuery):
    pass


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        types=NODE_TYPES,
        extensions=[lambda: ParserCache(maxsize=512), lambda: ValidationCache(maxsize=512)],
    )


schema = build_schema()
