"""Look-ups by the keys partner systems hold: a meter's serial, an account's number, a
customer's (ESCO, e-mail), a payment's provider reference. Each is a RowLoader, so
aliased look-ups of one request are one statement, within the viewer's limits."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import BigInteger, Select, bindparam, func, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY

from ..db.models import Account, Customer, Meter, Payment, table_of
from .base import TEXT_ARRAY, UUID_ARRAY, RowLoader

METERS = table_of(Meter)
ACCOUNTS = table_of(Account)
CUSTOMERS = table_of(Customer)
PAYMENTS = table_of(Payment)


class MeterBySerial(RowLoader):
    table = METERS
    key = "serial"
    key_type = TEXT_ARRAY


class AccountByNumber(RowLoader):
    table = ACCOUNTS
    key = "account_number"
    key_type = ARRAY(BigInteger())


class PaymentByProviderReference(RowLoader):
    """The newest payment carrying each reference (references are the card
    processor's and are not promised unique)."""

    table = PAYMENTS
    key = "provider_reference"
    key_type = TEXT_ARRAY
    order_by = ("created_at desc", "id desc")

    def arrange(self, keys: Any, rows: Any) -> list[Any]:
        newest: dict[Any, Any] = {}
        for row in rows:
            newest.setdefault(row.provider_reference, row)
        return [newest.get(k) for k in keys]


class CustomerByEmail(RowLoader):
    """Customers by `<esco id>|<lower-case e-mail>` (e-mails are unique per ESCO in any
    case, served by the unique (esco_id, lower(email)) index)."""

    table = CUSTOMERS
    key = "lookup_key"
    key_type = TEXT_ARRAY

    @classmethod
    def base_statement(cls) -> Select[Any]:
        lookup = func.concat(CUSTOMERS.c.esco_id, "|", func.lower(CUSTOMERS.c.email))
        wanted = select(
            func.unnest(bindparam("escos", type_=UUID_ARRAY)),
            func.unnest(bindparam("emails", type_=TEXT_ARRAY)),
        )
        return select(CUSTOMERS, lookup.label("lookup_key")).where(
            tuple_(CUSTOMERS.c.esco_id, func.lower(CUSTOMERS.c.email)).in_(wanted)
        )

    def bind(self, keys: list[Any]) -> dict[str, Any]:
        pairs = [key.partition("|") for key in keys]
        return self.loaders.bind(
            {"escos": [uuid.UUID(e) for e, _, _ in pairs], "emails": [m for _, _, m in pairs]}
        )
