"""Community mutations through the GraphQL API: createEsco, updateEsco, createSite,
createContractTerms, allowContractTerms.

The module shares one app and one connection (tables emptied once); every test makes
its own ESCOs with its own codes, so the tests do not depend on each other. A failed
mutation is checked to leave every table it could write — audit_log included — as it
was.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from flows_graphql.config import Settings
from flows_graphql.types.node import to_global_id
from tests.support import api
from tests.support.api import ACTOR, error_set, mutate, refusal, unchanged
from tests.support.factories import World, module_world
from tests.support.seed import audit_rows, changes, counts, one_audit

TABLES = ("escos", "sites", "contract_terms", "contract_terms_esco", "audit_log")

ESCO_FIELDS = "id uuid code name appUrl tariffGeneration region { code }"


@pytest.fixture(scope="module")
async def world(settings: Settings, database_url: str) -> AsyncIterator[World]:
    async with module_world(settings, database_url) as w:
        yield w


# --- helpers ------------------------------------------------------------------------


async def ok(world: World, name: str, input: dict[str, Any], fields: str) -> dict[str, Any]:
    return api.ok(await mutate(world.client, name, input, fields))


async def refused(
    world: World, name: str, input: dict[str, Any], fields: str
) -> set[tuple[tuple[str, ...] | None, str]]:
    """Run a mutation that must be refused: nothing written, the entity null. Returns
    the (field path, code) of its user errors."""
    async with unchanged(lambda: counts(world.conn, TABLES)):
        payload = await mutate(world.client, name, input, fields)
    return error_set(refusal(payload))


async def new_esco(world: World, code: str, **extra: Any) -> dict[str, Any]:
    payload = await ok(
        world,
        "createEsco",
        {"code": code, "name": f"ESCO {code}", "regionCode": "south_west", **extra},
        f"esco {{ {ESCO_FIELDS} }}",
    )
    esco: dict[str, Any] = payload["esco"]
    return esco


# --- createEsco ---------------------------------------------------------------------


async def test_create_esco(world: World) -> None:
    payload = await ok(
        world,
        "createEsco",
        {
            "code": "north_hill-1",
            "name": "  North Hill Energy ",
            "regionCode": "yorkshire",
            "appUrl": "https://app.northhill.example/",
            "tariffGeneration": "FROZEN",
        },
        f"esco {{ {ESCO_FIELDS} }}",
    )
    esco = payload["esco"]
    esco_id = uuid.UUID(esco["uuid"])
    assert esco == {
        "id": to_global_id("Esco", esco_id),
        "uuid": str(esco_id),
        "code": "north_hill-1",
        "name": "North Hill Energy",
        "appUrl": "https://app.northhill.example",
        "tariffGeneration": "FROZEN",
        "region": {"code": "yorkshire"},
    }
    row = await world.conn.fetchrow("SELECT * FROM escos WHERE id = $1", esco_id)
    assert row["code"] == "north_hill-1"
    assert row["name"] == "North Hill Energy"
    assert row["region_code"] == "yorkshire"
    assert row["app_url"] == "https://app.northhill.example"
    assert row["tariff_generation"] == "frozen"
    audit = await one_audit(world.conn, "createEsco", esco_id)
    assert audit["esco_id"] == esco_id and audit["entity"] == "esco"
    assert changes(audit) == {
        "created": {
            "code": "north_hill-1",
            "name": "North Hill Energy",
            "region_code": "yorkshire",
            "app_url": "https://app.northhill.example",
            "tariff_generation": "frozen",
        }
    }


async def test_create_esco_defaults(world: World) -> None:
    esco = await new_esco(world, "defaults")
    assert esco["tariffGeneration"] == "AUTO" and esco["appUrl"] is None
    row = await world.conn.fetchrow("SELECT * FROM escos WHERE code = 'defaults'")
    assert row["tariff_generation"] == "auto" and row["app_url"] is None


async def test_create_esco_reports_every_problem_at_once(world: World) -> None:
    errors = await refused(
        world,
        "createEsco",
        {"code": "A", "name": "  ", "regionCode": "atlantis", "appUrl": "ftp://x.example"},
        "esco { id }",
    )
    assert errors == {
        (("code",), "INVALID"),
        (("name",), "INVALID"),
        (("regionCode",), "NOT_FOUND"),
        (("appUrl",), "INVALID"),
    }


async def test_create_esco_duplicate_code(world: World) -> None:
    await new_esco(world, "twin")
    errors = await refused(
        world,
        "createEsco",
        {"code": "twin", "name": "Another", "regionCode": "london"},
        "esco { id }",
    )
    assert errors == {(("code",), "DUPLICATE")}


@pytest.mark.parametrize(
    "code", ["a", "x" * 33, "Upper", "with space", "dot.ted", "émoji", "a\x00b"]
)
async def test_create_esco_bad_code(world: World, code: str) -> None:
    errors = await refused(
        world, "createEsco", {"code": code, "name": "N", "regionCode": "london"}, "esco { id }"
    )
    assert errors == {(("code",), "INVALID")}


@pytest.mark.parametrize(
    "url",
    [
        "ftp://files.example",
        "https://",
        "app.example.com",
        "https://app example.com",
        "https://app.example.com/?x=1",
        "https://app.example.com/#top",
        "https://app.example.com:port",
        "https://[::1",
        "HTTPS://APP.EXAMPLE.COM",
        "https://" + "a" * 2050 + ".example",
        "https://app.example.com/\x00",
        "https://app.example.com/\x07",
        "https://app.example.com/\ud800",
    ],
)
async def test_create_esco_bad_app_url(world: World, url: str) -> None:
    errors = await refused(
        world,
        "createEsco",
        {"code": "badurl", "name": "N", "regionCode": "london", "appUrl": url},
        "esco { id }",
    )
    assert errors == {(("appUrl",), "INVALID")}


async def test_create_esco_text_the_database_cannot_hold(world: World) -> None:
    """NUL characters (which PostgreSQL text refuses) are a user error, not a 500: INVALID,
    in a region code too (as publishBenchmarkTariff answers)."""
    errors = await refused(
        world,
        "createEsco",
        {"code": "nul", "name": "a\x00b", "regionCode": "lon\x00don"},
        "esco { id }",
    )
    assert errors == {(("name",), "INVALID"), (("regionCode",), "INVALID")}
    # A lone surrogate (JSON can carry one) is not UTF-8 either.
    errors = await refused(
        world,
        "createEsco",
        {"code": "surrogate", "name": "a\ud800", "regionCode": "\udfff"},
        "esco { id }",
    )
    assert errors == {(("name",), "INVALID"), (("regionCode",), "INVALID")}


async def test_create_esco_blank_app_url_is_none(world: World) -> None:
    esco = await new_esco(world, "blankurl", appUrl="  ")
    assert esco["appUrl"] is None


# --- updateEsco ---------------------------------------------------------------------


@pytest.mark.parametrize("by", ["global", "uuid"])
async def test_update_esco(world: World, by: str) -> None:
    code = f"upd-{by}"
    esco = await new_esco(world, code, appUrl="https://old.example")
    esco_id = uuid.UUID(esco["uuid"])
    payload = await ok(
        world,
        "updateEsco",
        {
            "escoId": esco["id"] if by == "global" else esco["uuid"],
            "name": "Renamed",
            "appUrl": None,
            "tariffGeneration": "FROZEN",
            "regionCode": "london",
        },
        f"esco {{ {ESCO_FIELDS} }}",
    )
    assert payload["esco"] == {
        **esco,
        "name": "Renamed",
        "appUrl": None,
        "tariffGeneration": "FROZEN",
        "region": {"code": "london"},
    }
    row = await world.conn.fetchrow("SELECT * FROM escos WHERE id = $1", esco_id)
    assert (row["code"], row["name"], row["app_url"], row["tariff_generation"]) == (
        code,
        "Renamed",
        None,
        "frozen",
    )
    assert row["region_code"] == "london"
    audit = await one_audit(world.conn, "updateEsco", esco_id)
    assert audit["esco_id"] == esco_id and audit["entity"] == "esco"
    assert changes(audit) == {
        "changed": {
            "name": {"old": f"ESCO {code}", "new": "Renamed"},
            "app_url": {"old": "https://old.example", "new": None},
            "tariff_generation": {"old": "auto", "new": "frozen"},
            "region_code": {"old": "south_west", "new": "london"},
        }
    }


async def test_update_esco_keeps_what_is_left_out(world: World) -> None:
    esco = await new_esco(world, "keep", appUrl="https://keep.example")
    payload = await ok(
        world, "updateEsco", {"escoId": esco["id"], "name": "Kept"}, f"esco {{ {ESCO_FIELDS} }}"
    )
    assert payload["esco"] == {**esco, "name": "Kept"}
    audit = await one_audit(world.conn, "updateEsco", esco["uuid"])
    assert changes(audit) == {"changed": {"name": {"old": "ESCO keep", "new": "Kept"}}}


async def test_update_esco_without_changes_is_audited_empty(world: World) -> None:
    esco = await new_esco(world, "same")
    payload = await ok(
        world,
        "updateEsco",
        {"escoId": esco["uuid"], "name": "ESCO same", "regionCode": "south_west"},
        f"esco {{ {ESCO_FIELDS} }}",
    )
    assert payload["esco"] == esco
    audit = await one_audit(world.conn, "updateEsco", esco["uuid"])
    assert changes(audit) == {"changed": {}}


async def test_update_esco_reports_every_problem_at_once(world: World) -> None:
    esco = await new_esco(world, "strict")
    errors = await refused(
        world,
        "updateEsco",
        {
            "escoId": esco["id"],
            "name": None,
            "appUrl": "mailto:x@example.com",
            "tariffGeneration": None,
            "regionCode": "atlantis",
        },
        "esco { id }",
    )
    assert errors == {
        (("name",), "INVALID"),
        (("appUrl",), "INVALID"),
        (("tariffGeneration",), "INVALID"),
        (("regionCode",), "NOT_FOUND"),
    }
    row = await world.conn.fetchrow("SELECT * FROM escos WHERE id = $1", uuid.UUID(esco["uuid"]))
    assert row["name"] == "ESCO strict" and row["region_code"] == "south_west"


@pytest.mark.parametrize(
    "esco_id",
    [str(uuid.uuid4()), "garbage", to_global_id("Site", uuid.uuid4()), to_global_id("Esco", "x")],
)
async def test_update_esco_unknown_id(world: World, esco_id: str) -> None:
    errors = await refused(world, "updateEsco", {"escoId": esco_id, "name": "X"}, "esco { id }")
    assert errors == {(("escoId",), "NOT_FOUND")}


# --- createSite ---------------------------------------------------------------------


@pytest.mark.parametrize("by", ["global", "uuid"])
async def test_create_site(world: World, by: str) -> None:
    esco = await new_esco(world, f"site-{by}")
    esco_id = uuid.UUID(esco["uuid"])
    payload = await ok(
        world,
        "createSite",
        {"escoId": esco["id"] if by == "global" else esco["uuid"], "code": "S1", "name": "Hill"},
        "site { id uuid code name esco { code } }",
    )
    site = payload["site"]
    site_id = uuid.UUID(site["uuid"])
    assert site == {
        "id": to_global_id("Site", site_id),
        "uuid": str(site_id),
        "code": "S1",
        "name": "Hill",
        "esco": {"code": f"site-{by}"},
    }
    row = await world.conn.fetchrow("SELECT * FROM sites WHERE id = $1", site_id)
    assert (row["esco_id"], row["code"], row["name"]) == (esco_id, "S1", "Hill")
    audit = await one_audit(world.conn, "createSite", site_id)
    assert audit["esco_id"] == esco_id and audit["entity"] == "site"
    assert changes(audit) == {"created": {"esco_id": str(esco_id), "code": "S1", "name": "Hill"}}


async def test_create_site_duplicate_code_per_esco(world: World) -> None:
    one = await new_esco(world, "sites-one")
    two = await new_esco(world, "sites-two")
    await ok(world, "createSite", {"escoId": one["id"], "code": "A", "name": "A"}, "site { id }")
    errors = await refused(
        world, "createSite", {"escoId": one["id"], "code": "A", "name": "B"}, "site { id }"
    )
    assert errors == {(("code",), "DUPLICATE")}
    # Another ESCO may use the same code.
    await ok(world, "createSite", {"escoId": two["id"], "code": "A", "name": "A"}, "site { id }")


async def test_create_site_bad_input(world: World) -> None:
    errors = await refused(
        world,
        "createSite",
        {"escoId": str(uuid.uuid4()), "code": " ", "name": ""},
        "site { id }",
    )
    assert errors == {
        (("escoId",), "NOT_FOUND"),
        (("code",), "INVALID"),
        (("name",), "INVALID"),
    }


# --- createContractTerms ------------------------------------------------------------

TERMS_FIELDS = "id uuid type title version summary documentUrl"


async def test_create_contract_terms(world: World) -> None:
    payload = await ok(
        world,
        "createContractTerms",
        {
            "type": "SUPPLY",
            "title": "Heat and power supply",
            "version": 2,
            "summary": "What we supply.",
            "documentUrl": "https://docs.example/terms/supply-v2.pdf?download=1",
        },
        f"contractTerms {{ {TERMS_FIELDS} }}",
    )
    terms = payload["contractTerms"]
    terms_id = uuid.UUID(terms["uuid"])
    assert terms == {
        "id": to_global_id("ContractTerms", terms_id),
        "uuid": str(terms_id),
        "type": "SUPPLY",
        "title": "Heat and power supply",
        "version": 2,
        "summary": "What we supply.",
        "documentUrl": "https://docs.example/terms/supply-v2.pdf?download=1",
    }
    row = await world.conn.fetchrow("SELECT * FROM contract_terms WHERE id = $1", terms_id)
    assert (row["type"], row["title"], row["version"], row["summary"]) == (
        "supply",
        "Heat and power supply",
        2,
        "What we supply.",
    )
    assert row["document_url"] == "https://docs.example/terms/supply-v2.pdf?download=1"
    audit = await one_audit(world.conn, "createContractTerms", terms_id)
    assert audit["esco_id"] is None and audit["entity"] == "contract_terms"
    assert changes(audit) == {
        "created": {
            "type": "supply",
            "title": "Heat and power supply",
            "version": 2,
            "summary": "What we supply.",
            "document_url": "https://docs.example/terms/supply-v2.pdf?download=1",
        }
    }


async def test_create_contract_terms_duplicate(world: World) -> None:
    base = {"type": "SOLAR", "title": "Solar lease", "version": 1}
    await ok(world, "createContractTerms", base, "contractTerms { id }")
    errors = await refused(world, "createContractTerms", base, "contractTerms { id }")
    assert errors == {(("version",), "DUPLICATE")}
    # Another version, or the same title for another type, is new.
    await ok(world, "createContractTerms", {**base, "version": 2}, "contractTerms { id }")
    await ok(world, "createContractTerms", {**base, "type": "SUPPLY"}, "contractTerms { id }")


async def test_create_contract_terms_bad_input(world: World) -> None:
    errors = await refused(
        world,
        "createContractTerms",
        {"type": "SUPPLY", "title": " ", "version": 0, "documentUrl": "file:///etc/passwd"},
        "contractTerms { id }",
    )
    assert errors == {
        (("title",), "INVALID"),
        (("version",), "INVALID"),
        (("documentUrl",), "INVALID"),
    }


async def test_create_contract_terms_unknown_type_is_a_graphql_error(world: World) -> None:
    response = await world.client.post(
        "/graphql",
        json={
            "query": "mutation($i: CreateContractTermsInput!) { createContractTerms(input: $i) "
            "{ contractTerms { id } } }",
            "variables": {"i": {"type": "RENT", "title": "T", "version": 1}},
        },
    )
    body = response.json()
    assert response.status_code in (200, 400) and body["errors"] and body.get("data") is None


# --- allowContractTerms -------------------------------------------------------------


async def new_terms(world: World, title: str) -> dict[str, Any]:
    payload = await ok(
        world,
        "createContractTerms",
        {"type": "SUPPLY", "title": title, "version": 1},
        "contractTerms { id uuid title }",
    )
    terms: dict[str, Any] = payload["contractTerms"]
    return terms


@pytest.mark.parametrize("by", ["global", "uuid"])
async def test_allow_contract_terms_is_idempotent(world: World, by: str) -> None:
    esco = await new_esco(world, f"allow-{by}")
    terms = await new_terms(world, f"Allowed {by}")
    esco_id, terms_id = uuid.UUID(esco["uuid"]), uuid.UUID(terms["uuid"])
    key = "id" if by == "global" else "uuid"
    input = {"escoId": esco[key], "contractTermsId": terms[key]}
    fields = "esco { code contractTerms { title } } contractTerms { uuid title }"
    expected = {
        "esco": {"code": f"allow-{by}", "contractTerms": [{"title": f"Allowed {by}"}]},
        "contractTerms": {"uuid": str(terms_id), "title": f"Allowed {by}"},
        "userErrors": [],
    }
    assert await ok(world, "allowContractTerms", input, fields) == expected
    assert await ok(world, "allowContractTerms", input, fields) == expected
    links = await world.conn.fetch(
        "SELECT contract_terms_id FROM contract_terms_esco WHERE esco_id = $1", esco_id
    )
    assert [r["contract_terms_id"] for r in links] == [terms_id]
    audits = await audit_rows(world.conn, "allowContractTerms", f"{esco_id}|{terms_id}")
    assert [(a["actor"], a["esco_id"], a["entity"]) for a in audits] == [
        (ACTOR, esco_id, "contract_terms_esco")
    ] * 2
    assert [changes(a) for a in audits] == [
        {"created": {"esco_id": str(esco_id), "contract_terms_id": str(terms_id)}},
        {"changed": {}},
    ]


async def test_allow_contract_terms_unknown_ids(world: World) -> None:
    esco = await new_esco(world, "allow-unknown")
    terms = await new_terms(world, "Allow unknown")
    fields = "esco { id } contractTerms { id }"
    errors = await refused(
        world,
        "allowContractTerms",
        {"escoId": terms["id"], "contractTermsId": str(uuid.uuid4())},
        fields,
    )
    assert errors == {(("escoId",), "NOT_FOUND"), (("contractTermsId",), "NOT_FOUND")}
    errors = await refused(
        world, "allowContractTerms", {"escoId": esco["id"], "contractTermsId": "nope"}, fields
    )
    assert errors == {(("contractTermsId",), "NOT_FOUND")}
