"""Community writes: ESCOs, sites, contract terms and the terms an ESCO may use.

Also the input checks the metering service shares: text, URLs, and `KEEP`, the value
of an update field the input left out.
"""

from __future__ import annotations

import enum
import re
import uuid
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from ..db.models import ContractTerms, ContractTermsEsco, Esco, Region, Site, table_of
from ..db.models.enums import ContractTermsType, TariffGeneration
from .problems import ErrorCode, Problems
from .scope import find_esco
from .tx import Row, Tx

ESCOS = table_of(Esco)
SITES = table_of(Site)
REGIONS = table_of(Region)
TERMS = table_of(ContractTerms)
TERMS_ESCO = table_of(ContractTermsEsco)

SLUG = re.compile(r"[a-z0-9_-]{2,32}")
HTTP_URL = re.compile(r"https?://\S+")
# Lengths of free text: names, codes, serials, plots, titles…; addresses and summaries;
# URLs.
SHORT_TEXT = 200
LONG_TEXT = 5000
URL_LENGTH = 2048


class Unset(enum.Enum):
    """An update field the input left out: the stored value is kept."""

    KEEP = "keep"


KEEP = Unset.KEEP


# --- input checks -------------------------------------------------------------------


def _text_problem(problems: Problems, field: str, text: str, limit: int) -> bool:
    if len(text) > limit:
        problems.add(field, ErrorCode.INVALID, f"At most {limit} characters.")
        return True
    if not storable(text):
        problems.add(field, ErrorCode.INVALID, "Must be valid Unicode text without NUL.")
        return True
    return False


def storable(text: str) -> bool:
    """Whether PostgreSQL text can hold this: no NUL, and valid UTF-8 (no lone
    surrogates, which JSON can carry)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def required_text(problems: Problems, field: str, value: str, limit: int = SHORT_TEXT) -> str:
    """Text that must be there: surrounding whitespace is dropped; blank is INVALID."""
    text = value.strip()
    if not text:
        problems.add(field, ErrorCode.INVALID, "Must not be blank.")
    else:
        _text_problem(problems, field, text, limit)
    return text


def optional_text(
    problems: Problems, field: str, value: str | None, limit: int = SHORT_TEXT
) -> str | None:
    """Text that may be missing: surrounding whitespace is dropped; blank means none."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    _text_problem(problems, field, text, limit)
    return text


def http_url(
    problems: Problems, field: str, value: str | None, *, base: bool = False
) -> str | None:
    """An optional http(s) URL with a host; blank means none. A `base` URL (an ESCO's
    app, which invite links extend with `/invite/<token>`) has no query or fragment,
    and loses its trailing slashes."""
    if value is None:
        return None
    url = value.strip()
    if not url:
        return None
    if len(url) > URL_LENGTH:
        problems.add(field, ErrorCode.INVALID, f"At most {URL_LENGTH} characters.")
        return url
    try:
        parts = urlsplit(url)
        valid = (
            bool(HTTP_URL.fullmatch(url))
            and url.isprintable()
            and storable(url)
            and bool(parts.hostname)
        )
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        valid = False
    if not valid:
        problems.add(field, ErrorCode.INVALID, "Must be an http:// or https:// URL with a host.")
        return url
    if base:
        if parts.query or parts.fragment or url.endswith(("?", "#")):
            problems.add(field, ErrorCode.INVALID, "Must not have a query or a fragment.")
            return url
        url = url.rstrip("/")
    return url


def esco_code(problems: Problems, field: str, value: str) -> str:
    code = value.strip()
    if not SLUG.fullmatch(code):
        problems.add(
            field,
            ErrorCode.INVALID,
            "Must be 2 to 32 characters of lower-case letters, digits, `_` and `-`.",
        )
    return code


def flagged(problems: Problems, field: str) -> bool:
    """Whether `field` already has a problem (then it is not looked up: a value the
    database cannot hold, such as text with NUL, must not reach a query)."""
    return any(p.field == (field,) for p in problems.items)


def created(values: dict[str, Any]) -> dict[str, Any]:
    """The audit changes of a new row: `{"created": {column: value}}`."""
    return {"created": values}


def before_of(row: Row, values: dict[str, Any]) -> dict[str, Any]:
    return {k: getattr(row, k) for k in values}


# --- lookups ------------------------------------------------------------------------


async def _check_region(tx: Tx, problems: Problems, region_code: str) -> None:
    found = None  # text the database cannot hold names no region
    if len(region_code) <= SHORT_TEXT and storable(region_code):
        found = await tx.conn.scalar(select(REGIONS.c.code).where(REGIONS.c.code == region_code))
    if found is None:
        problems.add("regionCode", ErrorCode.NOT_FOUND, "No region with this code.")


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
    code = esco_code(problems, "code", code)
    name = required_text(problems, "name", name)
    app_url = http_url(problems, "appUrl", app_url, base=True)
    await _check_region(tx, problems, region_code)
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
    name: str | Unset | None = KEEP,
    app_url: str | Unset | None = KEEP,
    tariff_generation: TariffGeneration | Unset | None = KEEP,
    region_code: str | Unset | None = KEEP,
) -> Row:
    tx.require_role("admin", "operator")
    problems = Problems()
    values: dict[str, Any] = {}
    if name is None:
        problems.add("name", ErrorCode.INVALID, "An ESCO must have a name.")
    elif not isinstance(name, Unset):
        values["name"] = required_text(problems, "name", name)
    if not isinstance(app_url, Unset):
        values["app_url"] = http_url(problems, "appUrl", app_url, base=True)
    if tariff_generation is None:
        problems.add("tariffGeneration", ErrorCode.INVALID, "Must be AUTO or FROZEN.")
    elif not isinstance(tariff_generation, Unset):
        values["tariff_generation"] = tariff_generation
    if region_code is None:
        problems.add("regionCode", ErrorCode.INVALID, "An ESCO must have a region.")
    elif not isinstance(region_code, Unset):
        await _check_region(tx, problems, region_code)
        values["region_code"] = region_code
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
    row = (await tx.conn.execute(insert(Site).values(**values).returning(SITES))).one()
    await tx.audit("createSite", "site", row.id, created(values), esco.id)
    return row


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
    row = (await tx.conn.execute(insert(ContractTerms).values(**values).returning(TERMS))).one()
    await tx.audit("createContractTerms", "contract_terms", row.id, created(values), None)
    return row


async def allow_contract_terms(
    tx: Tx, esco_id: uuid.UUID | None, contract_terms_id: uuid.UUID | None
) -> tuple[Row, Row]:
    """Let an ESCO use these terms on its accounts. Allowing them again changes nothing
    (and succeeds)."""
    tx.require_role("admin", "operator")
    problems = Problems()
    esco = await find_esco(tx, problems, esco_id)
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
