"""Trusted documents (docs/trusted-documents.md): operations registered by sha256 in a
manifest and sent by hash, as `documentId` or as APQ's `persistedQuery`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from flows_graphql import trusted as trusted_module
from flows_graphql.app import create_app
from flows_graphql.config import ConfigError, Settings
from flows_graphql.trusted import ManifestError, load_manifest
from tests.support.api import TODAY, bearer

VIEWER = "query Me { viewer { role subject } }"
ESCOS = "query Escos($first: Int) { escos(first: $first) { nodes { code } } }"
UNREGISTERED = "query Other { viewer { role } }"
GR = "application/graphql-response+json"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def persisted(text: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha(text)}}


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    # GraphQL Codegen's client preset writes this shape: hash -> document.
    path = tmp_path / "persisted-documents.json"
    path.write_text(json.dumps({sha(VIEWER): VIEWER, sha(ESCOS): ESCOS}))
    return path


Client = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def app_client(
    settings: Settings, database_url: str, engine: Any, manifest: Path
) -> AsyncIterator[Client]:
    apps: list[Any] = []
    clients: list[httpx.AsyncClient] = []

    async def make(**changes: Any) -> httpx.AsyncClient:
        configured = dataclasses.replace(settings, trusted_documents=manifest, **changes)
        app = create_app(configured, database_url, today=lambda: TODAY)
        apps.append(app)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://test",
            headers=bearer(settings, "admin"),
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
    for app in apps:
        await app.state.engine.dispose()


async def customer(settings: Settings, raw: Any) -> dict[str, str]:
    """A customer's token (an app user): a real customer of a real ESCO."""
    esco = uuid.uuid4()
    await raw.execute(
        "INSERT INTO escos (id, code, name, region_code) VALUES ($1, 'app', 'App', 'london')",
        esco,
    )
    me = await raw.fetchval(
        "INSERT INTO customers (esco_id, email) VALUES ($1, 'me@app.example') RETURNING id", esco
    )
    return bearer(settings, "customer", sub="app-user", customer_id=str(me))


async def test_a_document_id_runs_the_registered_document(app_client):
    client = await app_client()
    by_text = await client.post("/graphql", json={"query": VIEWER})
    by_id = await client.post("/graphql", json={"documentId": f"sha256:{sha(VIEWER)}"})
    assert by_id.status_code == 200
    assert by_id.json()["data"] == {"viewer": {"role": "ADMIN", "subject": "development"}}
    assert by_id.json()["data"] == by_text.json()["data"]
    # The same statements either way (extensions.sqlStatements with FLOWS_DEBUG_SQL).
    assert (
        by_id.json()["extensions"]["sqlStatements"]
        == (by_text.json()["extensions"]["sqlStatements"])
    )
    # Bare hex (no `sha256:` prefix) names it too.
    bare = await client.post("/graphql", json={"documentId": sha(VIEWER)})
    assert bare.json()["data"] == by_id.json()["data"]


async def test_apollo_persisted_query_hash_without_the_query(app_client):
    client = await app_client()
    response = await client.post(
        "/graphql", json={"extensions": persisted(ESCOS), "variables": {"first": 1}}
    )
    assert response.status_code == 200
    assert response.json()["data"] == {"escos": {"nodes": []}}


async def test_an_unknown_id_is_persisted_query_not_found_in_json(app_client):
    client = await app_client()
    for body in (
        {"documentId": f"sha256:{sha(UNREGISTERED)}"},
        {"extensions": persisted(UNREGISTERED)},
    ):
        response = await client.post("/graphql", json=body)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/json")
        assert response.json() == {
            "errors": [
                {
                    "message": "PersistedQueryNotFound",
                    "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
                }
            ]
        }


async def test_a_query_sent_with_another_documents_hash_is_refused(app_client):
    client = await app_client()
    for body in (
        {"query": UNREGISTERED, "extensions": persisted(VIEWER)},
        {"query": UNREGISTERED, "documentId": f"sha256:{sha(VIEWER)}"},
    ):
        response = await client.post("/graphql", json=body)
        assert response.status_code == 400
        error = response.json()["errors"][0]
        assert error == {
            "message": "provided sha does not match query",
            "extensions": {"code": "BAD_REQUEST"},
        }


async def test_a_query_with_its_own_unregistered_hash_runs_as_free_text(app_client):
    # APQ clients send the text after a miss; nothing gets registered by it.
    client = await app_client()
    body = {"query": UNREGISTERED, "extensions": persisted(UNREGISTERED)}
    response = await client.post("/graphql", json=body)
    assert response.json()["data"] == {"viewer": {"role": "ADMIN"}}
    again = await client.post("/graphql", json={"extensions": persisted(UNREGISTERED)})
    assert again.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"documentId": "sha256:abc"},
        {"documentId": 12},
        {"documentId": "sha1:" + "a" * 40},
        {"documentId": "sha256:" + "g" * 64},
        {"extensions": {"persistedQuery": {"version": 2, "sha256Hash": "a" * 64}}},
        {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": ["a"]}}},
        {"extensions": {"persistedQuery": "a" * 64}},
        {
            "documentId": "a" * 64,
            "extensions": {"persistedQuery": {"version": 1, "sha256Hash": "b" * 64}},
        },
    ],
)
async def test_malformed_document_ids_are_a_json_400(app_client, body):
    client = await app_client()
    for accept in ("application/json", GR):
        response = await client.post("/graphql", json=body, headers={"accept": accept})
        assert response.status_code == 400, body
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_get_with_a_document_id_runs_it(app_client):
    client = await app_client()
    params = {"documentId": f"sha256:{sha(ESCOS)}", "variables": json.dumps({"first": 2})}
    # Even with a browser's Accept header: a named document is run, not GraphiQL's page.
    for accept in ("application/json", "*/*"):
        response = await client.get("/graphql", params=params, headers={"accept": accept})
        assert response.status_code == 200
        assert response.json()["data"] == {"escos": {"nodes": []}}
    apq = await client.get("/graphql", params={"extensions": json.dumps(persisted(VIEWER))})
    assert apq.json()["data"]["viewer"]["role"] == "ADMIN"
    missing = await client.get("/graphql", params={"documentId": sha(UNREGISTERED)})
    assert missing.status_code == 404


async def test_required_trusted_documents_bind_the_app_users_only(app_client, settings, raw):
    client = await app_client(require_trusted_documents=True)
    app_user = await customer(settings, raw)
    refused = await client.post("/graphql", json={"query": UNREGISTERED}, headers=app_user)
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_ID_REQUIRED"
    by_id = await client.post(
        "/graphql", json={"documentId": f"sha256:{sha(VIEWER)}"}, headers=app_user
    )
    assert by_id.json()["data"] == {"viewer": {"role": "CUSTOMER", "subject": "app-user"}}
    # The registered text itself is the registered document.
    as_text = await client.post("/graphql", json={"query": VIEWER}, headers=app_user)
    assert as_text.json()["data"] == by_id.json()["data"]
    # Operators (and admins, partners) may still send free text.
    operator = bearer(settings, "operator", escos=[str(uuid.uuid4())])
    free = await client.post("/graphql", json={"query": UNREGISTERED}, headers=operator)
    assert free.json()["data"] == {"viewer": {"role": "OPERATOR"}}


async def test_the_limits_are_worked_out_once_per_document_and_page_size(app_client, monkeypatch):
    client = await app_client()
    walks: list[str] = []
    real_check = trusted_module.check

    def counting(query: str, *args: Any, **kwargs: Any) -> Any:
        walks.append(query)
        return real_check(query, *args, **kwargs)

    monkeypatch.setattr(trusted_module, "check", counting)
    document_id = f"sha256:{sha(ESCOS)}"
    costs = []
    for first in (5, 5, 5, 50, 50, 5):
        response = await client.post(
            "/graphql",
            json={"documentId": document_id, "variables": {"first": first}},
            headers={"X-Flows-Cost-Only": "1"},
        )
        costs.append(response.json()["extensions"]["cost"]["requested"])
    # Walked once per page size; each page size keeps its own cost.
    assert len(walks) == 2
    assert costs[0] == costs[1] == costs[2] == costs[5] < costs[3] == costs[4]
    # Over the limit: refused, and the refusal is remembered too.
    for _ in range(2):
        over = await client.post(
            "/graphql", json={"documentId": document_id, "variables": {"first": 101}}
        )
        assert over.status_code == 400
        assert over.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert len(walks) == 3


def test_manifests_of_codegen_and_apollo_load_and_bad_ones_are_refused(tmp_path):
    codegen = tmp_path / "codegen.json"
    codegen.write_text(json.dumps({sha(VIEWER): VIEWER}))
    assert load_manifest(codegen) == {sha(VIEWER): VIEWER}
    apollo = tmp_path / "apollo.json"
    apollo.write_text(
        json.dumps(
            {
                "format": "apollo-persisted-query-manifest",
                "version": 1,
                "operations": [{"id": sha(ESCOS), "name": "Escos", "type": "query", "body": ESCOS}],
            }
        )
    )
    assert load_manifest(apollo) == {sha(ESCOS): ESCOS}
    bad = tmp_path / "bad.json"
    for content, words in [
        (json.dumps({sha(VIEWER): ESCOS}), "not the sha256"),
        (json.dumps({hashlib.sha1(VIEWER.encode()).hexdigest(): VIEWER}), "64 hex digits"),
        (json.dumps([VIEWER]), "JSON object"),
        ("{", "readable JSON"),
        (json.dumps({sha(VIEWER): 1}), "strings"),
        (json.dumps({"format": "apollo-persisted-query-manifest", "version": 2}), "version 1"),
    ]:
        bad.write_text(content)
        with pytest.raises(ManifestError, match=words):
            load_manifest(bad)
    with pytest.raises(ManifestError):
        load_manifest(tmp_path / "absent.json")


def test_requiring_trusted_documents_needs_a_manifest(monkeypatch):
    monkeypatch.setenv("FLOWS_REQUIRE_TRUSTED_DOCUMENTS", "1")
    monkeypatch.delenv("FLOWS_TRUSTED_DOCUMENTS", raising=False)
    with pytest.raises(ConfigError, match="FLOWS_TRUSTED_DOCUMENTS"):
        Settings.from_env()
    monkeypatch.setenv("FLOWS_TRUSTED_DOCUMENTS", "/srv/app/persisted-documents.json")
    settings = Settings.from_env()
    assert settings.require_trusted_documents
    assert settings.trusted_documents == Path("/srv/app/persisted-documents.json")
