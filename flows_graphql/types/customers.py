"""Customers, accounts, occupancies, invites and their event trails."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, cast
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from ..context import Context
from ..db.models.enums import AccountEventType, AccountStatus, CustomerAccountRole, CustomerStatus
from ..fields import computed, on_day, paged, ranged, relation
from ..loaders import billing as billing_loaders
from ..loaders import community as community_loaders
from ..loaders import customers as loaders
from ..loaders import identity as identity_loaders
from ..loaders import metering as metering_loaders
from ..loaders import money as money_loaders
from ..loaders import tariffs as tariff_loaders
from ..rules.privacy import actor_shown
from .filters import PaymentFilter, PaymentOrder, payment_filter
from .money import balance_field, statements_field, summaries_field
from .node import Node, NodeSource, RowType, by_uuid, global_id, register_node, uuid_field

if TYPE_CHECKING:
    from .billing import MonthlyCosts, Payment
    from .community import ContractTerms, Esco
    from .identity import CustomerIdentity
    from .metering import Property
    from .tariffs import CustomerTariff

Info = strawberry.Info[Context, None]
Lazy = strawberry.lazy
LazyPayment = Annotated["Payment", Lazy("flows_graphql.types.billing")]


@strawberry.type(description="A person billed for, or owning, a property of an ESCO.")
class Customer(RowType, Node):
    id: strawberry.ID = global_id("Customer")
    uuid: UUID = uuid_field()
    email: str = strawberry.field(description="Email, unique within the ESCO (any case).")
    full_name: str | None = strawberry.field(description="Full name.")
    status: CustomerStatus = strawberry.field(description="Active, inactive or suspended.")
    updated_at: datetime = strawberry.field(
        description="When this row was last written (its transaction's start): the sort "
        "key of orderBy: UPDATED_AT and updatedSince."
    )
    esco_id: strawberry.Private[UUID]

    esco = relation(
        Annotated["Esco", Lazy("flows_graphql.types.community")],
        community_loaders.EscoById,
        "esco_id",
        "The ESCO this customer belongs to.",
    )

    accounts = relation(
        list[Annotated["CustomerAccount", Lazy("flows_graphql.types.customers")]],
        loaders.AccountsByCustomerId,
        "id",
        "This customer's links to accounts, newest first.",
    )

    tariffs = ranged(
        list[Annotated["CustomerTariff", Lazy("flows_graphql.types.tariffs")]],
        tariff_loaders.TariffsByCustomerId,
        "Tariffs in force on some day of [from, to]; no `to`: unbounded."
        " Without `from`: the 24 months up to `to` (or the current month).",
    )

    current_tariff = on_day(
        Annotated["CustomerTariff", Lazy("flows_graphql.types.tariffs")] | None,
        tariff_loaders.TariffInForceByCustomerId,
        "The tariff in force on a day (default: today, UTC).",
    )

    monthly_costs = ranged(
        list[Annotated["MonthlyCosts", Lazy("flows_graphql.types.billing")]],
        billing_loaders.CostsByCustomerId,
        "Billed costs for the months of [from, to], oldest first."
        " Without `from`: the 24 months up to `to` (or the current month).",
    )

    payments = paged(
        LazyPayment,
        billing_loaders.PaymentsByCustomerId,
        billing_loaders.PaymentCountByCustomerId,
        "This customer's payments, newest first.",
        filter_type=PaymentFilter,
        conditions=payment_filter,
        order_type=PaymentOrder,
        default_order="NEWEST",
    )

    events = paged(
        Annotated["CustomerEvent", Lazy("flows_graphql.types.customers")],
        loaders.EventsByCustomerId,
        loaders.EventCountByCustomerId,
        "This customer's history (status changes, updates, invites), newest first.",
    )

    invites = relation(
        list[Annotated["CustomerInvite", Lazy("flows_graphql.types.customers")]],
        loaders.InvitesByCustomerId,
        "id",
        "Invitations to the ESCO's customer app, newest first.",
    )

    balance = balance_field(
        money_loaders.MonthsByCustomerId,
        "What this customer owes on a day, GBP, exact (positive = owed): charges minus "
        "solar credits of the months up to that day's month in which they were an "
        "account's occupier on the 1st, over all their accounts, minus the succeeded "
        "payments they made (theirs in any month, even one after they left).",
    )

    monthly_summaries = summaries_field(
        money_loaders.SummariesByCustomerId,
        "The customer's months in [from, to], as Esco.monthlySummaries, over what they "
        "were billed, the accounts they occupied on the 1st and the payments they made "
        "(outstanding is then their balance at the month's end).",
    )

    identities = relation(
        list[Annotated["CustomerIdentity", Lazy("flows_graphql.types.identity")]],
        identity_loaders.IdentitiesByCustomerId,
        "id",
        "The identity-provider accounts this customer signs in with, oldest first "
        "(empty: never signed in to the app).",
    )


@strawberry.type(description="A customer's link to an account, as owner or occupier.")
class CustomerAccount(RowType, Node):
    id: strawberry.ID = global_id(
        "CustomerAccount", "customer_id", "account_id", "role", "start_date"
    )
    role: CustomerAccountRole = strawberry.field(description="Occupiers are billed.")
    start_date: date = strawberry.field(description="First day of the link.")
    end_date: date | None = strawberry.field(
        description="Last day of the link (inclusive); null while current."
    )
    customer_id: strawberry.Private[UUID]
    account_id: strawberry.Private[UUID]

    customer = relation(
        Annotated["Customer", Lazy("flows_graphql.types.customers")],
        loaders.CustomerById,
        "customer_id",
        "The customer.",
    )

    account = relation(
        Annotated["Account", Lazy("flows_graphql.types.customers")],
        loaders.AccountById,
        "account_id",
        "The account.",
    )


@strawberry.type(description="A supply account of a property; closed accounts stay as history.")
class Account(RowType, Node):
    id: strawberry.ID = global_id("Account")
    uuid: UUID = uuid_field()
    account_number: strawberry.ID = strawberry.field(
        description="The number shown to customers (a string: it exceeds 32-bit integers)."
    )
    status: AccountStatus = strawberry.field(description="Active or closed.")
    opened_on: date = strawberry.field(description="Day the account opened.")
    closed_on: date | None = strawberry.field(description="Day the account closed, if closed.")
    property_id: strawberry.Private[UUID]
    contract_terms_id: strawberry.Private[UUID | None]

    property = relation(
        Annotated["Property", Lazy("flows_graphql.types.metering")],
        metering_loaders.PropertyById,
        "property_id",
        "The property this account supplies.",
    )

    customers = relation(
        list[Annotated["CustomerAccount", Lazy("flows_graphql.types.customers")]],
        loaders.CustomersByAccountId,
        "id",
        "Customers linked to this account, newest link first.",
    )

    occupier = on_day(
        Annotated["Customer", Lazy("flows_graphql.types.customers")] | None,
        loaders.OccupierByAccountId,
        "The occupier (the billed customer) on a day (default today).",
    )

    contract_terms = relation(
        Annotated["ContractTerms", Lazy("flows_graphql.types.community")] | None,
        community_loaders.ContractTermsById,
        "contract_terms_id",
        "The contract terms the account is under, if any.",
    )

    events = paged(
        Annotated["AccountEvent", Lazy("flows_graphql.types.customers")],
        loaders.EventsByAccountId,
        loaders.EventCountByAccountId,
        "What happened to this account, newest first.",
    )
    audit_logs = paged(
        Annotated["AuditLogEntry", Lazy("flows_graphql.types.customers")],
        loaders.AuditLogsByAccountId,
        loaders.AuditLogCountByAccountId,
        "Field-level changes to this account and its links, newest first.",
    )
    payments = paged(
        LazyPayment,
        billing_loaders.PaymentsByAccountId,
        billing_loaders.PaymentCountByAccountId,
        "Payments towards this account, newest first.",
        filter_type=PaymentFilter,
        conditions=payment_filter,
        order_type=PaymentOrder,
        default_order="NEWEST",
    )

    balance = balance_field(
        money_loaders.MonthsByAccountId,
        "The account's balance on a day, GBP, exact (positive = owed by the customer): "
        "charges minus solar credits minus succeeded payments of every month up to that "
        "day's month. A customer gets the sum over their own months (as occupier on the "
        "1st) and their own payments only.",
    )
    statements = statements_field(
        money_loaders.MonthsByAccountId,
        "One statement per month from the opening month to the closing (or current) "
        "month, oldest first, limited to [from, to] (days count as their month). A "
        "customer sees only the months they occupied on the 1st and the payments they "
        "made (a month after they left holds their own payment alone), their balance "
        "running over those alone.",
    )


@strawberry.enum(description="Derived when read: accepted, expired or still pending.")
class InviteStatus(Enum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    EXPIRED = "expired"


@strawberry.type(description="An invitation to the ESCO's customer app.")
class CustomerInvite(RowType, Node):
    id: strawberry.ID = global_id("CustomerInvite", "token")
    token: UUID = strawberry.field(description="The secret in the invite link.")
    invite_url: str = strawberry.field(description="`<ESCO app URL>/invite/<token>`.")
    expires_at: datetime = strawberry.field(description="When the invite stops working.")
    accepted_at: datetime | None = strawberry.field(description="When it was accepted.")

    @computed(
        "accepted_at",
        "expires_at",
        description="Derived from acceptedAt and expiresAt at read time.",
    )
    def status(self) -> InviteStatus:
        if self.accepted_at is not None:
            return InviteStatus.ACCEPTED
        if self.expires_at <= datetime.now(UTC):
            return InviteStatus.EXPIRED
        return InviteStatus.PENDING


ACTOR_DESCRIPTION = (
    "Who did it: `user:…`, `customer:…`, `partner:…` or `system`; to a customer, only "
    "a role: `you`, `operator`, `partner`, `customer` or `system`."
)


def _actor(root: Any, info: Info) -> str:
    viewer = info.context.viewer
    return actor_shown(root.actor, viewer.role, viewer.customer_id)


@strawberry.type(description="An entry of a customer's history (status changes, updates).")
class CustomerEvent(RowType, Node):
    id: strawberry.ID = global_id("CustomerEvent")
    uuid: UUID = uuid_field()
    event_type: str = strawberry.field(description="What happened.")
    actor: str = computed("actor", description=ACTOR_DESCRIPTION)(_actor)
    data: JSON = strawberry.field(
        description='Details; updates carry `{"changed": {field: {old, new}}}`.'
    )
    created_at: datetime = strawberry.field(description="When.")


@strawberry.type(description="An entry of an account's history.")
class AccountEvent(RowType, Node):
    id: strawberry.ID = global_id("AccountEvent")
    uuid: UUID = uuid_field()
    event_type: AccountEventType = strawberry.field(description="What happened.")
    notes: str | None = strawberry.field(description="Free-text notes.")
    actor: str = computed("actor", description=ACTOR_DESCRIPTION)(_actor)
    created_at: datetime = strawberry.field(description="When.")

    @computed("notes", description='Details (`{"notes": …}`).')
    def data(self) -> JSON:
        return cast(JSON, {"notes": self.notes} if self.notes else {})


@strawberry.type(description="A field-level change to an account or its links.")
class AuditLogEntry(RowType, Node):
    id: strawberry.ID = global_id("AuditLogEntry")
    uuid: UUID = uuid_field()
    action: str = strawberry.field(description="The change (usually the mutation).")
    actor: str = strawberry.field(description="Who did it.")
    changes: JSON = strawberry.field(description="`{field: {old, new}}`.")
    created_at: datetime = strawberry.field(description="When.")

    @computed("action", description="Same as `action`.")
    def event_type(self) -> str:
        return self.action

    @computed("changes", description="Same as `changes`.")
    def data(self) -> JSON:
        return self.changes


async def _customer_account(loaders_: Any, key: str) -> Any:
    try:
        customer_id, account_id, role, start = key.split("|")
        wanted = (UUID(customer_id), CustomerAccountRole(role), date.fromisoformat(start))
        links = await loaders_.get(loaders.CustomersByAccountId).load(UUID(account_id))
    except ValueError:
        return None
    return next(
        (link for link in links if (link.customer_id, link.role, link.start_date) == wanted), None
    )


async def _invite(loaders_: Any, key: str) -> Any:
    try:
        return await loaders_.get(loaders.InviteByToken).load(UUID(key))
    except ValueError:
        return None


register_node("Customer", by_uuid(loaders.CustomerById))
register_node("Account", by_uuid(loaders.AccountById))
register_node("CustomerAccount", NodeSource(_customer_account))
register_node("CustomerInvite", NodeSource(_invite))
register_node("CustomerEvent", by_uuid(loaders.CustomerEventById))
register_node("AccountEvent", by_uuid(loaders.AccountEventById))
register_node("AuditLogEntry", by_uuid(loaders.AccountAuditLogById))
