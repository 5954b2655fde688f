"""GraphQL over HTTP: media types and status codes (docs/http.md).

The negotiation rule by itself; each status rule of both media types, over real HTTP
to a live `serve --demo`; and the spec's own audit suite (graphql-http's `auditServer`,
tests/node) against that server, which must pass every audit: MUST, SHOULD and MAY.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from flows_graphql.negotiation import GRAPHQL_RESPONSE, JSON, response_media_type
from tests.support import live

GR = "application/graphql-response+json; charset=utf-8"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        # No preference: the legacy type.
        (None, JSON),
        ("", JSON),
        ("   ", JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        # What browsers send for a link: JSON through the wildcard.
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", JSON),
        # Named types.
        ("application/json", JSON),
        ("application/graphql-response+json", GRAPHQL_RESPONSE),
        ("Application/GraphQL-Response+JSON", GRAPHQL_RESPONSE),
        ("application/json; charset=utf-8", JSON),
        ("application/graphql-response+json; charset=utf-8", GRAPHQL_RESPONSE),
        # The spec's recommended client header, and both named equally.
        ("application/graphql-response+json, application/json;q=0.9", GRAPHQL_RESPONSE),
        ("application/json, application/graphql-response+json", GRAPHQL_RESPONSE),
        # Weights decide.
        ("application/graphql-response+json;q=0.5, application/json", JSON),
        ("application/json;q=0.2, application/graphql-response+json;q=0.3", GRAPHQL_RESPONSE),
        # A named type beats a wildcard of the same weight.
        ("application/graphql-response+json, */*", GRAPHQL_RESPONSE),
        ("application/json, */*", JSON),
        ("*/*, application/graphql-response+json", GRAPHQL_RESPONSE),
        # q=0 refuses a type, even when a wildcard would take it.
        ("application/json;q=0, */*", GRAPHQL_RESPONSE),
        ("application/graphql-response+json;q=0, */*", JSON),
        ("application/json;q=0", None),
        # Neither acceptable.
        ("text/html", None),
        ("text/plain, image/*", None),
        ("application/xml", None),
        # Hostile or broken headers never raise.
        ("application/json;q=abc", JSON),
        ("application/json;q=nan", None),
        ("application/json;q=1e400", JSON),
        (";;;,,,", None),
        ("application", None),
        ("/", None),
        ("application/json;" + "x" * 10_000, JSON),
        ("text/plain," * 2_000 + "application/json", None),
    ],
)
def test_negotiation(accept, expected):
    assert response_media_type(accept) == expected


# --- the status rules, over HTTP -----------------------------------------------------


@pytest.fixture
def http(live_server) -> Iterator[httpx.Client]:
    """A client of the live server, signed in as its admin."""
    with httpx.Client(
        base_url=live_server.base_url,
        headers={"Authorization": f"Bearer {live_server.admin_token}"},
        timeout=30,
    ) as http:
        yield http


# Each refused before execution: no `data` with the new type (and a 400); the legacy
# type keeps Strawberry's 200 with `"data": null`.
REQUEST_ERRORS = {
    "parse": {"query": "{"},
    "validation": {"query": "{ noSuchField }"},
    "variable coercion": {"query": "query($n: Int) { __typename }", "variables": {"n": "x"}},
    "missing variable": {"query": "query($n: Int!) { __typename }"},
}


@pytest.mark.parametrize("payload", REQUEST_ERRORS.values(), ids=REQUEST_ERRORS.keys())
def test_request_errors_are_400_without_data_for_graphql_response_json(http, payload):
    response = http.post("/graphql", json=payload, headers={"accept": GRAPHQL_RESPONSE})
    assert response.status_code == 400
    assert response.headers["content-type"] == GR
    body = response.json()
    assert "data" not in body
    assert body["errors"] and all(
        e["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED" for e in body["errors"]
    )


@pytest.mark.parametrize("accept", [None, JSON, "*/*"])
@pytest.mark.parametrize("payload", REQUEST_ERRORS.values(), ids=REQUEST_ERRORS.keys())
def test_request_errors_stay_200_with_null_data_for_application_json(http, payload, accept):
    headers = {} if accept is None else {"accept": accept}
    if accept is None:
        # httpx sends `Accept: */*` unless told otherwise; this is the header missing.
        http.headers.pop("accept", None)
    response = http.post("/graphql", json=payload, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == JSON
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


def test_a_success_in_either_type(http):
    query = {"query": "{ regions { code } }"}
    new = http.post("/graphql", json=query, headers={"accept": GRAPHQL_RESPONSE})
    old = http.post("/graphql", json=query, headers={"accept": JSON})
    assert (new.status_code, new.headers["content-type"]) == (200, GR)
    assert (old.status_code, old.headers["content-type"]) == (200, JSON)
    assert new.json()["data"] == old.json()["data"]
    assert len(new.json()["data"]["regions"]) == 14
    # The same body in both types, but for the budget the first request spent.
    first, second = new.json(), old.json()
    spent = first["extensions"]["cost"]["requested"]
    assert (
        second["extensions"]["cost"]["remaining"]
        == first["extensions"]["cost"]["remaining"] - spent
    )
    second["extensions"]["cost"]["remaining"] += spent
    assert json.dumps(first) == json.dumps(second)


def test_a_field_error_keeps_data_and_200(http):
    """An error during execution is not a request error: `data` is there, so 2xx."""
    query = {"query": '{ escos(after: "not a cursor") { totalCount } }'}
    response = http.post("/graphql", json=query, headers={"accept": GRAPHQL_RESPONSE})
    assert response.status_code == 200
    assert response.headers["content-type"] == GR
    body = response.json()
    assert "data" in body
    assert body["errors"][0]["extensions"]["code"] == "INVALID"


def test_get_queries_negotiate_too(http):
    response = http.get(
        "/graphql", params={"query": "{ regions { code } }"}, headers={"accept": GRAPHQL_RESPONSE}
    )
    assert (response.status_code, response.headers["content-type"]) == (200, GR)
    assert response.json()["data"]["regions"][0] == {"code": "east_midlands"}


def test_a_mutation_over_get_is_405(http):
    response = http.get(
        "/graphql",
        params={"query": 'mutation { createEsco(input: {code: "x"}) { esco { id } } }'},
        headers={"accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.headers["content-type"] == GR
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


@pytest.mark.parametrize(
    "payload",
    [
        {"notquery": "{ __typename }"},
        {"query": None},
        {"query": ""},
        {"query": "query A { __typename }", "operationName": "B"},
    ],
    ids=["no query", "null query", "empty query", "unknown operation"],
)
@pytest.mark.parametrize("accept", [JSON, GRAPHQL_RESPONSE])
def test_no_operation_to_run_is_a_json_400(http, payload, accept):
    """Strawberry answers these in plain text; ours are JSON errors in either type."""
    response = http.post("/graphql", json=payload, headers={"accept": accept})
    assert response.status_code == 400
    assert response.headers["content-type"] == (GR if accept == GRAPHQL_RESPONSE else JSON)
    assert "data" not in response.json()
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_refusals_take_the_negotiated_type(http):
    too_deep = "{ " + "escos { nodes { " * 20 + "id" + " } }" * 20 + " }"
    for accept, content_type in [(GRAPHQL_RESPONSE, GR), (JSON, JSON)]:
        refused = http.post("/graphql", json={"query": too_deep}, headers={"accept": accept})
        assert (refused.status_code, refused.headers["content-type"]) == (400, content_type)
        assert refused.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
        unauthenticated = http.post(
            "/graphql",
            json={"query": "{ regions { code } }"},
            headers={"accept": accept, "authorization": ""},
        )
        assert unauthenticated.status_code == 401
        assert unauthenticated.headers["content-type"] == content_type
        assert "data" not in refused.json() and "data" not in unauthenticated.json()


@pytest.mark.parametrize("accept", ["text/plain", "application/xml", "application/json;q=0"])
def test_an_unacceptable_accept_is_406(http, accept):
    response = http.post(
        "/graphql", json={"query": "{ regions { code } }"}, headers={"accept": accept}
    )
    assert response.status_code == 406
    assert response.headers["content-type"] == JSON
    assert GRAPHQL_RESPONSE in response.headers["accept"] and JSON in response.headers["accept"]
    assert response.json()["errors"][0]["extensions"]["code"] == "NOT_ACCEPTABLE"


def test_the_graphiql_page_is_not_refused_as_unacceptable(http):
    del http.headers["authorization"]
    page = http.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


# --- the spec's audit suite -----------------------------------------------------------


def test_graphql_over_http_audit(live_server):
    """graphql-http's `auditServer` (the spec's own audits, version pinned in
    tests/node/package-lock.json) against `serve --demo`, signed in as its admin:
    every audit passes, the SHOULDs and MAYs included."""
    results = live.run_node("audit.mjs", live_server.graphql_url, live_server.admin_token)
    failed = [r for r in results if r["status"] != "ok"]
    assert not failed, "\n".join(
        f"{r['status']} {r['id']} {r['name']}: {r['reason']} — HTTP {r['responseStatus']} "
        f"{r['contentType']} {r['body']}"
        for r in failed
    )
    # The pinned version's whole list ran (an audit that ran nothing would pass too).
    levels = [r["name"].split()[0] for r in results]
    assert {level: levels.count(level) for level in set(levels)} == {
        "MUST": 13,
        "SHOULD": 23,
        "MAY": 25,
    }
