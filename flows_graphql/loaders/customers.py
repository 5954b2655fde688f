"""Loaders over customers, accounts, occupancies, invites and their event trails."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Date, Select, bindparam, or_, select

from ..db.models import (
    Account,
    AccountAuditLog,
    AccountEvent,
    Customer,
    CustomerAccount,
    CustomerEvent,
    CustomerInvite,
)
from ..db.models.enums import AccountStatus, CustomerAccountRole
from ..pagination import SortKey, parse_datetime, parse_text
from .base import ConnectionSpec, CountLoader, PageLoader, RowLoader, any_key

CUSTOMERS = Customer.__table__
ACCOUNTS = Account.__table__
LINKS = CustomerAccount.__table__
INVITES = CustomerInvite.__table__
CUSTOMER_EVENTS = CustomerEvent.__table__
ACCOUNT_EVENTS = AccountEvent.__table__
ACCOUNT_AUDIT = AccountAuditLog.__table__


class CustomerById(RowLoader):
    table = CUSTOMERS
    key = "id"


class AccountById(RowLoader):
    table = ACCOUNTS
    key = "id"


class ActiveAccountByPropertyId(RowLoader):
    table = ACCOUNTS
    key = "property_id"

    @classmethod
    def base_statement(cls) -> Select[Any]:
        return super().base_statement().where(ACCOUNTS.c.status == AccountStatus.ACTIVE)


class AccountsByPropertyId(RowLoader):
    """All of a property's accounts, newest first (closed ones are its history)."""

    table = ACCOUNTS
    key = "property_id"
    many = True
    order_by = ("opened_on desc", "account_number desc")


class AccountsByCustomerId(RowLoader):
    """A customer's links to accounts (customer_accounts rows), current ones first."""

    table = LINKS
    key = "customer_id"
    many = True
    order_by = ("start_date desc", "role")


class CustomersByAccountId(RowLoader):
    """An account's links to customers (customer_accounts rows), current ones first."""

    table = LINKS
    key = "account_id"
    many = True
    order_by = ("start_date desc", "role")


class OccupierByAccountId(RowLoader):
    """The customer occupying each account on a day (made with that day)."""

    table = LINKS
    key = "account_id"

    @classmethod
    def base_statement(cls) -> Select[Any]:
        on = bindparam("on", type_=Date())
        return (
            select(CUSTOMERS, LINKS.c.account_id)
            .join(LINKS, LINKS.c.customer_id == CUSTOMERS.c.id)
            .where(
                any_key(LINKS.c.account_id),
                LINKS.c.role == CustomerAccountRole.OCCUPIER,
                LINKS.c.start_date <= on,
                or_(LINKS.c.end_date.is_(None), LINKS.c.end_date >= on),
            )
        )

    def bind(self, keys: list[Any]) -> dict[str, Any]:
        (on,) = self.params
        return self.loaders.bind({"keys": keys, "on": on})


class InvitesByCustomerId(RowLoader):
    table = INVITES
    key = "customer_id"
    many = True
    order_by = ("created_at desc", "token")


class InviteByToken(RowLoader):
    table = INVITES
    key = "token"


CUSTOMER_SORTS = {
    "EMAIL": SortKey("EMAIL", lambda: CUSTOMERS.c.email_key, parse_text),
    "CREATED_AT": SortKey("CREATED_AT", lambda: CUSTOMERS.c.created_at, parse_datetime),
    "UPDATED_AT": SortKey("UPDATED_AT", lambda: CUSTOMERS.c.updated_at, parse_datetime),
}
CUSTOMER_SPEC = ConnectionSpec(CUSTOMERS, CUSTOMER_SORTS, "EMAIL")


class CustomersByEscoId(PageLoader):
    spec = CUSTOMER_SPEC
    parent = "esco_id"


class CustomerCountByEscoId(CountLoader):
    spec = CUSTOMER_SPEC
    parent = "esco_id"


def _newest_first(table: Any) -> dict[str, SortKey]:
    return {
        "NEWEST": SortKey("NEWEST", lambda: table.c.created_at, parse_datetime, descending=True)
    }


CUSTOMER_EVENT_SPEC = ConnectionSpec(CUSTOMER_EVENTS, _newest_first(CUSTOMER_EVENTS), "NEWEST")
ACCOUNT_EVENT_SPEC = ConnectionSpec(ACCOUNT_EVENTS, _newest_first(ACCOUNT_EVENTS), "NEWEST")
ACCOUNT_AUDIT_SPEC = ConnectionSpec(ACCOUNT_AUDIT, _newest_first(ACCOUNT_AUDIT), "NEWEST")


class EventsByCustomerId(PageLoader):
    spec = CUSTOMER_EVENT_SPEC
    parent = "customer_id"


class EventCountByCustomerId(CountLoader):
    spec = CUSTOMER_EVENT_SPEC
    parent = "customer_id"


class EventsByAccountId(PageLoader):
    spec = ACCOUNT_EVENT_SPEC
    parent = "account_id"


class EventCountByAccountId(CountLoader):
    spec = ACCOUNT_EVENT_SPEC
    parent = "account_id"


class AuditLogsByAccountId(PageLoader):
    spec = ACCOUNT_AUDIT_SPEC
    parent = "account_id"


class AuditLogCountByAccountId(CountLoader):
    spec = ACCOUNT_AUDIT_SPEC
    parent = "account_id"


class CustomerEventById(RowLoader):
    table = CUSTOMER_EVENTS
    key = "id"


class AccountEventById(RowLoader):
    table = ACCOUNT_EVENTS
    key = "id"


class AccountAuditLogById(RowLoader):
    table = ACCOUNT_AUDIT
    key = "id"
