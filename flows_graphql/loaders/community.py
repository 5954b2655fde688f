"""Loaders over regions, ESCOs, sites and contract terms."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select

from ..db.models import ContractTerms, ContractTermsEsco, Esco, Region, Site
from ..pagination import SortKey, parse_text
from .base import TEXT_ARRAY, ConnectionSpec, RowLoader, any_key

ESCOS = Esco.__table__
SITES = Site.__table__
REGIONS = Region.__table__
TERMS = ContractTerms.__table__
TERMS_ESCO = ContractTermsEsco.__table__


class EscoById(RowLoader):
    table = ESCOS
    key = "id"
    scope_column = "id"  # an ESCO row is the tenant itself


class EscoByCode(RowLoader):
    table = ESCOS
    key = "code"
    key_type = TEXT_ARRAY
    scope_column = "id"


class RegionByCode(RowLoader):
    table = REGIONS
    key = "code"
    key_type = TEXT_ARRAY
    scope_column = None


class SiteById(RowLoader):
    table = SITES
    key = "id"


class SitesByEscoId(RowLoader):
    table = SITES
    key = "esco_id"
    many = True
    order_by = ("code", "id")


class ContractTermsById(RowLoader):
    table = TERMS
    key = "id"
    scope_column = None


class ContractTermsByEscoId(RowLoader):
    """The terms each ESCO may use (through contract_terms_esco)."""

    table = TERMS_ESCO
    key = "esco_id"
    many = True

    @classmethod
    def base_statement(cls) -> Select[Any]:
        return (
            select(TERMS, TERMS_ESCO.c.esco_id)
            .join(TERMS_ESCO, TERMS_ESCO.c.contract_terms_id == TERMS.c.id)
            .where(any_key(TERMS_ESCO.c.esco_id))
            .order_by(TERMS.c.type, TERMS.c.title, TERMS.c.version)
        )


ESCO_SORTS = {"CODE": SortKey("CODE", lambda: ESCOS.c.code, parse_text)}
ESCO_SPEC = ConnectionSpec(ESCOS, ESCO_SORTS, "CODE", scope_column="id")
