"""Community writes: ESCOs, sites, contract terms and the terms an ESCO may use."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from strawberry import Maybe

from ..db.models import ContractTerms, ContractTermsEsco, Esco, Site, table_of
from ..db.models.enums import ContractTermsType, TariffGeneration
from . import inputs
from .inputs import LONG_TEXT, SLUG, flagged, http_url, optional_text, required_text
from .problems import ErrorCode, Problems
from .scope import find_esco
from .tx import Row, Tx, created

ESCOS = table_of(Esco)
SITES = table_of(Site)
TERMS = table_of(ContractTerms)
TERMS_ESCO = table_of(ContractTermsEsco)


# --- mutations ----------------------------------------------------------------------


async def create_esco(
    tx: Tx,
    code: str,
    name: str,
    region_code: str,
    app_url: str | None,
    tariff_generation: TariffGeneration,
) -> Row:
    tx.require_role("admin")
    problems = Problems()
    code = inputs.slug(problems, "code", code)
    name = required_text(problems, "name", name)
    app_url = http_url(problems, "appUrl", app_url, base=True)
    await inputs.region(tx, problems, region_code)
    if SLUG.fullmatch(code):
        taken = await tx.conn.scalar(select(ESCOS.c.id).where(ESCOS.c.code == code))
        if taken is not None:
            problems.add("code", ErrorCode.DUPLICATE, "An ESCO with this code already exists.")
    problems.raise_if_any()

    values = {
        "code": code,
        "name": name,
        "region_code": region_code,
        "app_url": app_url,
        "tariff_generation": tariff_generation,
    }
    row = (await tx.conn.execute(insert(Esco).values(**values).returning(ESCOS))).one()
    await tx.audit("createEsco", "esco", row.id, created(values), row.id)
    return row


async def update_esco(
    tx: Tx,
    esco_id: uuid.UUID | None,
    name: Maybe[str | None] = None,
    app_url: Maybe[str | None] = None,
    tariff_generation: Maybe[TariffGeneration | None] = None,
    region_code: Maybe[str | None] = None,
) -> Row:
    """Change the given fields; a field left out (None) is kept."""
    tx.require_role("admin", "operator")
    problems = Problems()
    values: dict[str, Any] = {}
    if name is not None:
        if name.value is None:
            problems.add("name", ErrorCode.INVALID, "An ESCO must have a name.")
        else:
            values["name"] = required_text(problems, "name", name.value)
    if app_url is not None:
        values["app_url"] = http_url(problems, "appUrl", app_url.value, base=True)
    if tariff_generation is not None:
        if tariff_generation.value is None:
            problems.add("tariffGeneration", ErrorCode.INVALID, "Must be AUTO or FROZEN.")
        else:
            values["tariff_generation"] = tariff_generation.value
    if region_code is not None:
        if region_code.value is None:
            problems.add("regionCode", ErrorCode.INVALID, "An ESCO must have a region.")
        else:
            await inputs.region(tx, problems, region_code.value)
            values["region_code"] = region_code.value
    esco = await find_esco(tx, problems, esco_id, lock=True)
    problems.raise_if_any()
    assert esco is not None

    return await tx.update_audited(ESCOS, esco, values, "updateEsco", "esco", esco.id)


async def create_site(tx: Tx, esco_id: uuid.UUID | None, code: str, name: str) -> Row:
    tx.require_role("admin", "operator")
    problems = Problems()
    code = required_text(problems, "code", code)
    name = required_text(problems, "name", name)
    esco = await find_esco(tx, problems, esco_id)
    if esco is not None and not flagged(problems, "code"):
        taken = await tx.conn.scalar(
            select(SITES.c.id).where(SITES.c.esco_id == esco.id, SITES.c.code == code)
        )
        if taken is not None:
            problems.add(
                "code", ErrorCode.DUPLICATE, "This ESCO already has a site with this code."
            )
    problems.raise_if_any()
    assert esco is not None

    values = {"esco_id": esco.id, "code": code, "name": name}
    return await tx.insert_audited(SITES, values, "createSite", "site", esco.id)


async def create_contract_terms(
    tx: Tx,
    type: ContractTermsType,
    title: str,
    version: int,
    summary: str | None,
    document_url: str | None,
) -> Row:
    tx.require_role("admin")
    problems = Problems()
    title = required_text(problems, "title", title)
    if version < 1:
        problems.add("version", ErrorCode.INVALID, "Versions start at 1.")
    summary = optional_text(problems, "summary", summary, LONG_TEXT)
    document_url = http_url(problems, "documentUrl", document_url)
    if not flagged(problems, "title") and version >= 1:
        taken = await tx.conn.scalar(
            select(TERMS.c.id).where(
                TERMS.c.type == type, TERMS.c.title == title, TERMS.c.version == version
            )
        )
        if taken is not None:
            problems.add(
                "version", ErrorCode.DUPLICATE, "This version of these terms already exists."
            )
    problems.raise_if_any()

    values = {
        "type": type,
        "title": title,
        "version": version,
        "summary": summary,
        "document_url": document_url,
    }
    return await tx.insert_audited(TERMS, values, "createContractTerms", "contract_terms", None)


async def allow_contract_terms(
    tx: Tx, esco_id: uuid.UUID | None, contract_terms_id: uuid.UUID | None
) -> tuple[Row, Row]:
    """Let an ESCO use these terms on its accounts. Allowing them again changes nothing
    (and succeeds)."""
    tx.require_role("admin", "operator")
    problems = Problems()
    esco = await find_esco(tx, problems, esco_id)
    # Contract terms belong to no ESCO: any viewer here (admin, operator) may name them.
    terms = None
    if contract_terms_id is not None:
        terms = (
            await tx.conn.execute(select(TERMS).where(TERMS.c.id == contract_terms_id))
        ).first()
    if terms is None:
        problems.add("contractTermsId", ErrorCode.NOT_FOUND, "No contract terms with this id.")
    problems.raise_if_any()
    assert esco is not None and terms is not None

    values = {"esco_id": esco.id, "contract_terms_id": terms.id}
    inserted = (
        await tx.conn.execute(
            insert(ContractTermsEsco)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["esco_id", "contract_terms_id"])
            .returning(TERMS_ESCO.c.esco_id)
        )
    ).first()
    await tx.audit(
        "allowContractTerms",
        "contract_terms_esco",
        f"{esco.id}|{terms.id}",
        created(values) if inserted is not None else {"changed": {}},
        esco.id,
    )
    return esco, terms
