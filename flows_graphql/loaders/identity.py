"""Loaders of identity-provider sign-ins: customers' linked identities, staff grants."""

from __future__ import annotations

from ..db.models import CustomerIdentity, StaffGrant, table_of
from .base import RowLoader

IDENTITIES = table_of(CustomerIdentity)
GRANTS = table_of(StaffGrant)


class IdentityById(RowLoader):
    table = IDENTITIES
    key = "id"


class IdentitiesByCustomerId(RowLoader):
    table = IDENTITIES
    key = "customer_id"
    many = True
    order_by = ("created_at", "id")


class StaffGrantById(RowLoader):
    table = GRANTS
    key = "id"


class StaffGrantsByEscoId(RowLoader):
    table = GRANTS
    key = "esco_id"
    many = True
    order_by = ("created_at desc", "id")
