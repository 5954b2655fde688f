"""What a customer may read: their own customer record and what hangs off it.

Tenancy (the ESCO scope) is applied to everyone; for a customer every read adds the
condition of the table read, from `CUSTOMER_RULES`. A table without a rule is not
visible to customers at all, so a new table is private until someone decides.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import FromClause, bindparam, exists, false, or_, select
from sqlalchemy.dialects.postgresql import UUID

from ..db.models import Account, CustomerAccount, Property, table_of
from ..db.models.enums import CustomerAccountRole

ACCOUNTS = table_of(Account)
LINKS = table_of(CustomerAccount)
PROPERTIES = table_of(Property)

ME = bindparam("viewer_customer", type_=UUID(as_uuid=True))


def _own_accounts() -> Any:
    return select(LINKS.c.account_id).where(LINKS.c.customer_id == ME)


def _own_properties() -> Any:
    return select(ACCOUNTS.c.property_id).where(ACCOUNTS.c.id.in_(_own_accounts()))


def _own_meters() -> Any:
    return select(PROPERTIES.c.supply_meter_id).where(PROPERTIES.c.id.in_(_own_properties()))


def _usage_while_linked(usage: FromClause) -> Any:
    """A meter's months in which the customer occupied the property it supplies — not
    the months of the occupiers before or after them."""
    return exists(
        select(1)
        .select_from(
            LINKS.join(ACCOUNTS, ACCOUNTS.c.id == LINKS.c.account_id).join(
                PROPERTIES, PROPERTIES.c.id == ACCOUNTS.c.property_id
            )
        )
        .where(
            LINKS.c.customer_id == ME,
            # Occupiers: a landlord (owner) does not see their tenants' consumption.
            LINKS.c.role == CustomerAccountRole.OCCUPIER,
            PROPERTIES.c.supply_meter_id == usage.c.meter_id,
            LINKS.c.start_date < usage.c.month + 31,
            or_(LINKS.c.end_date.is_(None), LINKS.c.end_date >= usage.c.month),
        )
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
    "customer_tariffs": lambda t: t.c.customer_id == ME,
    "monthly_costs": lambda t: t.c.customer_id == ME,
    "payments": lambda t: t.c.customer_id == ME,
    "accounts": lambda t: t.c.id.in_(_own_accounts()),
    "account_events": lambda t: t.c.account_id.in_(_own_accounts()),
    "properties": lambda t: t.c.id.in_(_own_properties()),
    "solar_installation": lambda t: t.c.property_id.in_(_own_properties()),
    "monthly_solar_credits": lambda t: t.c.property_id.in_(_own_properties()),
    "meters": lambda t: t.c.id.in_(_own_meters()),
    "circuit_meter": lambda t: t.c.meter_id.in_(_own_meters()),
    "monthly_usage": _usage_while_linked,
}


def customer_condition(table: FromClause) -> Any | None:
    """The condition a customer's reads of `table` get (`false` when not visible)."""
    name = getattr(table, "name", None)
    if name not in CUSTOMER_RULES:
        return false()
    rule = CUSTOMER_RULES[name]
    return rule(table) if rule is not None else None
