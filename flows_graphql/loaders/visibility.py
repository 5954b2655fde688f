"""What a customer may read: their own customer record and what hangs off it, and of a
home's months only those they were billed for (rules.md §7, docs/privacy.md).

Tenancy (the ESCO scope) is applied to everyone; for a customer every read adds the
condition of the table read, from `CUSTOMER_RULES`. A table without a rule is not
visible to customers at all, so a new table is private until someone decides.

The conditions are SQL inside each loader's one statement (correlated EXISTS on the
viewer's links, which the primary key of `customer_accounts` serves), never a filter
per row. `customer_billed_for`, `customer_sees_meter_month` and
`customer_occupied_account_on` are the reusable pieces: the month rule of billing,
stated once, for whoever needs "the months this customer may see" (statements,
balances).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    FromClause,
    and_,
    bindparam,
    cast,
    exists,
    false,
    func,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import UUID

from ..db.models import (
    Account,
    CircuitMeter,
    CustomerAccount,
    MonthlyCosts,
    PropertySupplyMeter,
    table_of,
)
from ..db.models.enums import CustomerAccountRole

ACCOUNTS = table_of(Account)
LINKS = table_of(CustomerAccount)
SUPPLY = table_of(PropertySupplyMeter)
CIRCUIT_METER = table_of(CircuitMeter)
COSTS = table_of(MonthlyCosts)

ME = bindparam("viewer_customer", type_=UUID(as_uuid=True))


def _link_covers(links: FromClause, day: Any) -> ColumnElement[bool]:
    return and_(links.c.start_date <= day, or_(links.c.end_date.is_(None), links.c.end_date >= day))


def customer_occupied_account_on(account_id: Any, day: Any) -> Any:
    """The viewer occupied the account on `day` (inclusive dates)."""
    links = LINKS.alias("vis_occ")
    return exists(
        select(1)
        .select_from(links)
        .where(
            links.c.customer_id == ME,
            links.c.account_id == account_id,
            links.c.role == CustomerAccountRole.OCCUPIER,
            _link_covers(links, day),
        )
    )


def customer_billed_for(property_id: Any, month: Any) -> Any:
    """The viewer is the one billed for the property's month M: its account's occupier
    on day 1 of M (rules.md §3). Occupancies lie within their account's open dates and
    a property's accounts never overlap, so the occupier link alone decides."""
    links = LINKS.alias("vis_links")
    accounts = ACCOUNTS.alias("vis_accounts")
    return exists(
        select(1)
        .select_from(links.join(accounts, accounts.c.id == links.c.account_id))
        .where(
            links.c.customer_id == ME,
            links.c.role == CustomerAccountRole.OCCUPIER,
            _link_covers(links, month),
            accounts.c.property_id == property_id,
        )
    )


def customer_sees_meter_month(meter_id: Any, month: Any) -> Any:
    """A meter's month M is the viewer's when the property the meter supplied in M (the
    supply history) billed the viewer for M."""
    links = LINKS.alias("vis_links")
    accounts = ACCOUNTS.alias("vis_accounts")
    supply = SUPPLY.alias("vis_supply")
    return exists(
        select(1)
        .select_from(
            links.join(accounts, accounts.c.id == links.c.account_id).join(
                supply, supply.c.property_id == accounts.c.property_id
            )
        )
        .where(
            links.c.customer_id == ME,
            links.c.role == CustomerAccountRole.OCCUPIER,
            _link_covers(links, month),
            supply.c.meter_id == meter_id,
            or_(supply.c.first_month.is_(None), supply.c.first_month <= month),
            or_(supply.c.last_month.is_(None), supply.c.last_month >= month),
        )
    )


def _usage_of_own_months(usage: FromClause) -> Any:
    """A meter's months that are the viewer's (occupier on day 1, through the supply
    history), and any month billed to them: a bill stays readable, usage included,
    when an occupancy is corrected after billing, until the month is billed again."""
    costs = COSTS.alias("vis_costs")
    return or_(
        customer_sees_meter_month(usage.c.meter_id, usage.c.month),
        exists(
            select(1)
            .select_from(costs)
            .where(costs.c.monthly_usage_id == usage.c.id, costs.c.customer_id == ME)
        ),
    )


def _own_accounts() -> Any:
    return select(LINKS.c.account_id).where(LINKS.c.customer_id == ME)


def _own_properties() -> Any:
    return select(ACCOUNTS.c.property_id).where(ACCOUNTS.c.id.in_(_own_accounts()))


def _own_meters() -> Any:
    """Every meter that supplied one of the viewer's homes (the one of their months,
    and the one there now: a meter's serial is the home's, not a person's)."""
    return select(SUPPLY.c.meter_id).where(SUPPLY.c.property_id.in_(_own_properties()))


def _own_circuits() -> Any:
    return select(CIRCUIT_METER.c.circuit_id).where(CIRCUIT_METER.c.meter_id.in_(_own_meters()))


def _london_day(timestamp: Any) -> Any:
    return cast(func.timezone("Europe/London", timestamp), Date)


def _own_account_events(events: FromClause) -> Any:
    """Events of the viewer's own links, and the account's own events (opened, closed)
    recorded while the viewer was linked to it; never another customer's link."""
    links = LINKS.alias("vis_event_links")
    during_link = exists(
        select(1)
        .select_from(links)
        .where(
            links.c.customer_id == ME,
            links.c.account_id == events.c.account_id,
            _link_covers(links, _london_day(events.c.created_at)),
        )
    )
    return and_(
        events.c.account_id.in_(_own_accounts()),
        or_(events.c.customer_id == ME, and_(events.c.customer_id.is_(None), during_link)),
    )


Rule = Callable[[FromClause], Any] | None  # None: no condition beyond the ESCO scope

CUSTOMER_RULES: dict[str, Rule] = {
    # Reference data and the customer's own ESCO.
    "regions": None,
    "benchmark_tariffs": None,
    "contract_terms": None,
    "contract_terms_esco": None,
    "escos": None,
    "microgrid_tariffs": None,
    "solar_credit_tariffs": None,
    # The customer and what hangs off them.
    "customers": lambda t: t.c.id == ME,
    "customer_accounts": lambda t: t.c.customer_id == ME,
    "customer_invites": lambda t: t.c.customer_id == ME,
    "customer_events": lambda t: t.c.customer_id == ME,
    "customer_identities": lambda t: t.c.customer_id == ME,
    "customer_tariffs": lambda t: t.c.customer_id == ME,
    # Costs carry the customer billing charged (the occupier on day 1 of the month).
    "monthly_costs": lambda t: t.c.customer_id == ME,
    "payments": lambda t: t.c.customer_id == ME,
    # Their homes, as owner or occupier, at any time.
    "accounts": lambda t: t.c.id.in_(_own_accounts()),
    "account_events": _own_account_events,
    "properties": lambda t: t.c.id.in_(_own_properties()),
    "solar_installation": lambda t: t.c.property_id.in_(_own_properties()),
    "property_supply_meters": lambda t: t.c.property_id.in_(_own_properties()),
    "meters": lambda t: t.c.id.in_(_own_meters()),
    # The circuits their meters measure, and of a circuit only their own meters.
    "circuit_meter": lambda t: t.c.meter_id.in_(_own_meters()),
    "circuits": lambda t: t.c.id.in_(_own_circuits()),
    # A home's months: only those the customer was billed for (not an owner's, not the
    # households' before or after them).
    "monthly_usage": _usage_of_own_months,
    "monthly_solar_credits": lambda t: customer_billed_for(t.c.property_id, t.c.month),
}


def customer_condition(table: FromClause) -> Any | None:
    """The condition a customer's reads of `table` get (`false` when not visible)."""
    name = getattr(table, "name", None)
    if name not in CUSTOMER_RULES:
        return false()
    rule = CUSTOMER_RULES[name]
    return rule(table) if rule is not None else None
