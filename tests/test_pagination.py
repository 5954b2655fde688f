"""Relay connections with keyset cursors: paging both ways, page info, totalCount,
stability under inserts, orderBy, limits, nested (batched) connections.

The module builds its data once (tests/support/factories.py): ESCO "pages" with 25 customers
and ESCO "other" with 4. The one test that inserts rows deletes them again.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flows_graphql.config import Settings
from tests.support import factories as f
from tests.support.api import TENANT
from tests.support.factories import EscoData, World, module_world, query

N = 25
PAGE = 7


@dataclass
class Data:
    world: World
    pages: EscoData
    other: EscoData
    by_created: list[str]  # the "pages" emails in CREATED_AT order


@pytest.fixture(scope="module")
async def data(settings: Settings, database_url: str) -> AsyncIterator[Data]:
    async with module_world(settings, database_url) as world:
        pages = await f.build_esco(world.conn, "pages", customers=N, months=1)
        other = await f.build_esco(world.conn, "other", "london", customers=4, months=1)
        # CREATED_AT order runs against email order, with ties in pairs (broken by id).
        base = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
        created = [base + timedelta(minutes=(N - 1 - i) // 2) for i in range(N)]
        await world.conn.execute(
            "UPDATE customers SET created_at = t.at FROM unnest($1::uuid[], $2::timestamptz[]) "
            "AS t(id, at) WHERE customers.id = t.id",
            pages.customer_ids,
            created,
        )
        order = sorted(range(N), key=lambda i: (created[i], pages.customer_ids[i]))
        yield Data(world, pages, other, [pages.emails[i] for i in order])


async def run(data: Data, text: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    return await query(data.world.client, text, variables)


ROOT = """
query($escoId: ID, $first: Int, $after: String, $last: Int, $before: String,
      $orderBy: CustomerOrder) {
  list: customers(escoId: $escoId, orderBy: $orderBy, first: $first, after: $after,
                  last: $last, before: $before) {
    totalCount
    edges { cursor node { email } }
    nodes { email }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""

NESTED = """
query($code: String!, $first: Int, $after: String, $last: Int, $before: String) {
  esco(code: $code) {
    list: customers(first: $first, after: $after, last: $last, before: $before) {
      totalCount
      edges { cursor node { email } }
      nodes { email }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
}
"""


async def fetch(data: Data, text: str, **variables: Any) -> dict[str, Any]:
    if text is ROOT:
        variables.setdefault("escoId", str(data.pages.id))
    else:
        variables.setdefault("code", "pages")
    body = await run(data, text, variables)
    page: dict[str, Any] = body["data"]["list"] if text is ROOT else body["data"]["esco"]["list"]
    emails = [edge["node"]["email"] for edge in page["edges"]]
    assert [n["email"] for n in page["nodes"]] == emails
    info = page["pageInfo"]
    if page["edges"]:
        assert info["startCursor"] == page["edges"][0]["cursor"]
        assert info["endCursor"] == page["edges"][-1]["cursor"]
    else:
        assert info["startCursor"] is None and info["endCursor"] is None
    page["emails"] = emails
    page["statements"] = body["extensions"]["sqlStatements"]
    return page


async def page_forward(data: Data, text: str, size: int, **variables: Any) -> list[Any]:
    pages, after = [], None
    while True:
        page = await fetch(data, text, first=size, after=after, **variables)
        pages.append(page)
        if not page["pageInfo"]["hasNextPage"]:
            return pages
        after = page["pageInfo"]["endCursor"]
        assert len(pages) < 20, "paging does not end"


async def page_backward(data: Data, text: str, size: int, **variables: Any) -> list[Any]:
    pages, before = [], None
    while True:
        page = await fetch(data, text, last=size, before=before, **variables)
        pages.append(page)
        if not page["pageInfo"]["hasPreviousPage"]:
            return pages
        before = page["pageInfo"]["startCursor"]
        assert len(pages) < 20, "paging does not end"


def concat(pages: Any) -> list[str]:
    return [email for page in pages for email in page["emails"]]


def flags(page: dict[str, Any]) -> tuple[bool, bool]:
    return page["pageInfo"]["hasPreviousPage"], page["pageInfo"]["hasNextPage"]


@pytest.mark.parametrize("text", [ROOT, NESTED], ids=["root", "nested"])
async def test_forward_visits_every_customer_once_in_order(data: Data, text: str) -> None:
    pages = await page_forward(data, text, PAGE)
    assert [len(p["emails"]) for p in pages] == [7, 7, 7, 4]
    assert concat(pages) == data.pages.emails
    assert [flags(p) for p in pages] == [(False, True), (True, True), (True, True), (True, False)]
    assert {p["totalCount"] for p in pages} == {N}
    # Root: the page + COUNT. Nested: esco + the page + COUNT.
    assert {p["statements"] for p in pages} == {TENANT + (2 if text is ROOT else 3)}


@pytest.mark.parametrize("text", [ROOT, NESTED], ids=["root", "nested"])
async def test_backward_visits_every_customer_once_in_order(data: Data, text: str) -> None:
    pages = await page_backward(data, text, PAGE)
    assert [len(p["emails"]) for p in pages] == [7, 7, 7, 4]
    assert concat(reversed(pages)) == data.pages.emails
    assert pages[0]["emails"] == data.pages.emails[-7:]
    assert flags(pages[0]) == (True, False)  # the end of the list: nothing after it
    assert flags(pages[-1])[0] is False  # the start: nothing before it
    assert all(flags(p)[0] for p in pages[:-1])
    assert {p["totalCount"] for p in pages} == {N}


@pytest.mark.parametrize("text", [ROOT, NESTED], ids=["root", "nested"])
async def test_exact_multiple_and_past_the_end(data: Data, text: str) -> None:
    pages = await page_forward(data, text, 5)
    assert [len(p["emails"]) for p in pages] == [5] * 5
    assert flags(pages[-1]) == (True, False)
    beyond = await fetch(data, text, first=5, after=pages[-1]["pageInfo"]["endCursor"])
    assert beyond["emails"] == [] and beyond["pageInfo"]["hasNextPage"] is False
    # Paging back from a middle cursor gives what precedes it.
    middle = pages[2]["pageInfo"]["startCursor"]
    back = await fetch(data, text, last=3, before=middle)
    assert back["emails"] == data.pages.emails[7:10]
    assert flags(back) == (True, True)
    # Default page size is 20; first: 0 gives no rows but knows more follow.
    assert len((await fetch(data, text))["emails"]) == 20
    empty = await fetch(data, text, first=0)
    assert empty["emails"] == [] and empty["pageInfo"]["hasNextPage"] is True


async def test_cursor_stays_valid_when_rows_are_inserted(data: Data) -> None:
    conn, esco = data.world.conn, data.pages.id
    first = await fetch(data, ROOT, first=PAGE)
    assert first["emails"] == data.pages.emails[:PAGE]
    # Between two fetches: a row before the cursor, one inside the rest, one at the end.
    added = {"aaa.before@example.com", "pages.015b@example.com", "zzz.after@example.com"}
    await conn.executemany(
        "INSERT INTO customers (esco_id, email) VALUES ($1, $2)", [(esco, e) for e in added]
    )
    try:
        rest: list[str] = []
        after = first["pageInfo"]["endCursor"]
        while True:
            page = await fetch(data, ROOT, first=PAGE, after=after)
            rest += page["emails"]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        seen = first["emails"] + rest
        # Every original customer exactly once, in order; the row inserted before the
        # cursor is (rightly) not seen, the two after it are.
        assert [e for e in seen if e not in added] == data.pages.emails
        assert len(seen) == len(set(seen)) == N + 2
        assert "aaa.before@example.com" not in seen
        assert seen[-1] == "zzz.after@example.com"
        in_db_order = [
            r["email"]
            for r in await conn.fetch(
                "SELECT email FROM customers WHERE esco_id = $1 ORDER BY lower(email), id", esco
            )
        ]
        assert seen == [e for e in in_db_order if e != "aaa.before@example.com"]
        assert page["totalCount"] == N + 3
    finally:
        await conn.execute("DELETE FROM customers WHERE email = ANY($1::text[])", list(added))


async def test_order_by_created_at(data: Data) -> None:
    assert data.by_created != data.pages.emails  # the order really differs
    forward = await page_forward(data, ROOT, PAGE, orderBy="CREATED_AT")
    assert concat(forward) == data.by_created
    backward = await page_backward(data, ROOT, PAGE, orderBy="CREATED_AT")
    assert concat(reversed(backward)) == data.by_created
    # Explicit EMAIL is the default order.
    assert (await fetch(data, ROOT, first=N, orderBy="EMAIL"))["emails"] == data.pages.emails


async def post(data: Data, text: str, variables: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = await data.world.client.post(
        "/graphql", json={"query": text, "variables": variables}
    )
    body: dict[str, Any] = response.json()
    return response.status_code, body


async def errors(data: Data, **variables: Any) -> list[dict[str, Any]]:
    variables.setdefault("escoId", str(data.pages.id))
    status, body = await post(data, ROOT, variables)
    assert status == 200 and body["data"] is None, body
    found: list[dict[str, Any]] = body["errors"]
    return found


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body["errors"]]


@pytest.mark.parametrize(
    "variables",
    [{"first": -1}, {"last": -1}, {"first": 2, "last": 2}],
    ids=["first-1", "last-1", "both"],
)
async def test_bad_page_arguments_are_invalid(data: Data, variables: dict[str, Any]) -> None:
    assert codes({"errors": await errors(data, **variables)}) == ["INVALID"]
    # The nested connection checks the same (the nullable esco becomes null).
    status, body = await post(data, NESTED, {"code": "pages", **variables})
    assert status == 200 and body["data"] == {"esco": None}
    assert codes(body) == ["INVALID"]
    assert body["errors"][0]["path"] == ["esco", "list"]


@pytest.mark.parametrize("argument", ["first", "last"])
async def test_page_size_over_the_maximum_is_refused(data: Data, argument: str) -> None:
    # api.md "Limits": the page size is capped before execution (HTTP 400,
    # QUERY_TOO_COMPLEX), so 101 never reaches the resolver's own INVALID check.
    for text, variables in (
        (ROOT, {"escoId": str(data.pages.id), argument: 101}),
        (NESTED, {"code": "pages", argument: 101}),
    ):
        status, body = await post(data, text, variables)
        assert status == 400 and "data" not in body, body
        assert codes(body) == ["QUERY_TOO_COMPLEX"]
        assert "page size" in body["errors"][0]["message"]


async def test_maximum_page_size_is_allowed(data: Data) -> None:
    assert len((await fetch(data, ROOT, first=100))["emails"]) == N
    assert len((await fetch(data, NESTED, last=100))["emails"]) == N


async def test_bad_cursors_are_rejected(data: Data) -> None:
    by_email = await fetch(data, ROOT, first=3)
    by_created = await fetch(data, ROOT, first=3, orderBy="CREATED_AT")
    # A cursor of another order is refused, both ways round.
    for variables in (
        {"after": by_email["pageInfo"]["endCursor"], "orderBy": "CREATED_AT"},
        {"before": by_email["pageInfo"]["endCursor"], "orderBy": "CREATED_AT", "last": 2},
        {"after": by_created["pageInfo"]["endCursor"]},
        {"after": "garbage"},
        {"after": base64.urlsafe_b64encode(b'["EMAIL","x","not-a-uuid"]').decode()},
        {"after": base64.urlsafe_b64encode(b'["EMAIL","x"]').decode()},
        {
            "after": base64.urlsafe_b64encode(
                b'["CREATED_AT","yesterday",' + f'"{uuid.uuid4()}"]'.encode()
            ).decode(),
            "orderBy": "CREATED_AT",
        },
    ):
        errs = await errors(data, **variables)
        assert [e["extensions"]["code"] for e in errs] == ["INVALID"], variables
    # A cursor is tied to its order, not to the list: it works on the nested list too.
    nested = await fetch(data, NESTED, first=3, after=by_email["pageInfo"]["endCursor"])
    assert nested["emails"] == data.pages.emails[3:6]


async def test_two_escos_nested_pages_cost_the_same_as_one(data: Data) -> None:
    text = """query($n: Int!) { escos(first: $n) { nodes { code
      customers(first: 3) { totalCount nodes { email }
                            pageInfo { hasNextPage hasPreviousPage } } } } }"""
    one = await run(data, text, {"n": 1})
    two = await run(data, text, {"n": 2})
    # escos page, one windowed page query for every ESCO's customers, one GROUP BY count.
    assert one["extensions"]["sqlStatements"] == two["extensions"]["sqlStatements"] == TENANT + 3
    escos = two["data"]["escos"]["nodes"]
    assert escos == [
        {
            "code": "other",
            "customers": {
                "totalCount": 4,
                "nodes": [{"email": e} for e in data.other.emails[:3]],
                "pageInfo": {"hasNextPage": True, "hasPreviousPage": False},
            },
        },
        {
            "code": "pages",
            "customers": {
                "totalCount": N,
                "nodes": [{"email": e} for e in data.pages.emails[:3]],
                "pageInfo": {"hasNextPage": True, "hasPreviousPage": False},
            },
        },
    ]
    assert one["data"]["escos"]["nodes"] == escos[:1]
    # Backwards too, batched the same way.
    last = text.replace("first: 3", "last: 2")
    body = await run(data, last, {"n": 2})
    assert body["extensions"]["sqlStatements"] == TENANT + 3
    assert [
        [c["email"] for c in e["customers"]["nodes"]] for e in body["data"]["escos"]["nodes"]
    ] == [
        data.other.emails[2:],
        data.pages.emails[-2:],
    ]


async def test_billing_runs_page_newest_first_both_ways(data: Data) -> None:
    more = await data.world.conn.fetch(
        "INSERT INTO billing_runs (esco_id, month, status, actor) "
        "SELECT $1, m, 'completed', 'system' FROM generate_series("
        "'2023-01-01'::date, '2023-11-01'::date, '1 month') AS m RETURNING id",
        data.other.id,
    )
    try:
        text = """query($id: ID, $first: Int, $after: String, $last: Int, $before: String) {
          billingRuns(escoId: $id, first: $first, after: $after, last: $last, before: $before) {
            nodes { month } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }"""
        months = ["2024-01-01"] + [f"2023-{m:02d}-01" for m in range(11, 0, -1)]
        seen, after = [], None
        while True:
            body = await run(data, text, {"id": str(data.other.id), "first": 5, "after": after})
            page = body["data"]["billingRuns"]
            seen += [r["month"] for r in page["nodes"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert seen == months
        seen, before = [], None
        while True:
            body = await run(data, text, {"id": str(data.other.id), "last": 5, "before": before})
            page = body["data"]["billingRuns"]
            seen = [r["month"] for r in page["nodes"]] + seen
            if not page["pageInfo"]["hasPreviousPage"]:
                break
            before = page["pageInfo"]["startCursor"]
        assert seen == months
    finally:
        await data.world.conn.execute(
            "DELETE FROM billing_runs WHERE id = ANY($1::uuid[])", [r["id"] for r in more]
        )
