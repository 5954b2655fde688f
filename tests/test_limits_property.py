"""The cost estimate is an upper bound, whatever the document's form (issue 16).

Hypothesis writes queries over customers, their ESCO, payments, accounts and costs:
connections paged by literals, by variables sent, by variables' defaults, by variables
left unset or sent null, or not at all; selections spread through named fragments (once
or twice) and inline fragments. Each runs against a real PostgreSQL holding more rows
than a default page (24 customers with 25 payments each), and the estimate of
`limits.check` — the function the server runs — must be at least the number of values
in the answer. When the estimate is over the limit, the server must refuse it.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from flows_graphql.config import Settings
from flows_graphql.limits import Limits, TooComplex, check
from flows_graphql.schema import schema
from tests.support import factories as f
from tests.support.factories import module_world

CUSTOMERS, PAYMENTS = 24, 25  # both over the default page of 20


@dataclass
class Doc:
    """A query being written: its variable definitions, values and fragments."""

    definitions: list[str] = field(default_factory=list)
    variables: dict[str, Any] = field(default_factory=dict)
    fragments: list[str] = field(default_factory=list)
    names: itertools.count = field(default_factory=itertools.count)

    def text(self, body: str) -> str:
        head = f"query({', '.join(self.definitions)})" if self.definitions else "query"
        return " ".join([f"{head} {{ {body} }}", *self.fragments])


# A page form: how a connection's `first` is given.
PAGE_FORMS = st.one_of(
    st.just(("absent",)),
    st.tuples(st.just("literal"), st.integers(0, 30)),
    st.tuples(st.just("sent"), st.integers(0, 30)),
    st.tuples(st.just("default"), st.integers(0, 30)),  # a default, the variable unsent
    st.tuples(st.just("sent over default"), st.integers(0, 30), st.integers(0, 30)),
    st.just(("unset",)),  # a variable without default, unsent: the default page
    st.just(("null",)),  # sent as null: the default page too
)


def page(doc: Doc, form: tuple[Any, ...]) -> str:
    kind = form[0]
    if kind == "absent":
        return ""
    if kind == "literal":
        return f"(first: {form[1]})"
    name = f"p{next(doc.names)}"
    if kind == "sent":
        doc.definitions.append(f"${name}: Int")
        doc.variables[name] = form[1]
    elif kind == "default":
        doc.definitions.append(f"${name}: Int = {form[1]}")
    elif kind == "sent over default":
        doc.definitions.append(f"${name}: Int = {form[1]}")
        doc.variables[name] = form[2]
    elif kind == "unset":
        doc.definitions.append(f"${name}: Int")
    else:
        doc.definitions.append(f"${name}: Int = 5")
        doc.variables[name] = None
    return f"(first: ${name})"


@st.composite
def wrapped(draw: st.DrawFn, doc: Doc, type_name: str, fields: list[str]) -> str:
    """The fields as they are, in an inline fragment, or in a named one spread once or
    twice."""
    how = draw(st.sampled_from(["plain", "inline", "named", "named twice"]))
    body = " ".join(fields)
    if how == "plain":
        return body
    if how == "inline":
        return f"... on {type_name} {{ {body} }}"
    name = f"F{next(doc.names)}"
    doc.fragments.append(f"fragment {name} on {type_name} {{ {body} }}")
    return f"...{name}" + (f" ...{name}" if how == "named twice" else "")


@st.composite
def customer_selection(draw: st.DrawFn, doc: Doc, depth: int) -> str:
    choices = [
        "email",
        "status",
        "accounts { role account { accountNumber } }",
        "monthlyCosts { month total }",
        "PAYMENTS",
    ]
    if depth > 0:
        choices.append("ESCO")
    picked = draw(st.lists(st.sampled_from(choices), min_size=1, max_size=4, unique=True))
    fields = []
    for choice in picked:
        if choice == "PAYMENTS":
            args = page(doc, draw(PAGE_FORMS))
            inner = draw(
                st.sampled_from(["nodes { amountPence }", "edges { node { amountPence } }"])
            )
            fields.append(f"payments{args} {{ {inner} pageInfo {{ hasNextPage }} }}")
        elif choice == "ESCO":
            fields.append(f"esco {{ {draw(esco_selection(doc, depth - 1))} }}")
        else:
            fields.append(choice)
    return draw(wrapped(doc, "Customer", fields))


@st.composite
def esco_selection(draw: st.DrawFn, doc: Doc, depth: int) -> str:
    fields = ["code"]
    if depth > 0 and draw(st.booleans()):
        args = page(doc, draw(PAGE_FORMS))
        inner = draw(customer_selection(doc, depth - 1))
        fields.append(f"customers{args} {{ totalCount nodes {{ {inner} }} }}")
    return draw(wrapped(doc, "Esco", fields))


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    doc = Doc()
    args = page(doc, draw(PAGE_FORMS))
    inner = draw(customer_selection(doc, draw(st.integers(0, 4))))
    if draw(st.booleans()):
        inner = f"... on CustomerConnection {{ nodes {{ {inner} }} }}"
    else:
        inner = f"nodes {{ {inner} }}"
    return doc.text(f"customers{args} {{ {inner} }}"), doc.variables


def values_in(answer: Any) -> int:
    """Every field value of an answer, each list element's counted."""
    if isinstance(answer, dict):
        return sum(1 + values_in(value) for value in answer.values())
    if isinstance(answer, list):
        return sum(values_in(item) for item in answer)
    return 0


async def seed(conn: Any) -> None:
    esco = await f.build_esco(conn, "prop", customers=CUSTOMERS, months=12)
    await conn.execute(
        "INSERT INTO payments (id, esco_id, customer_id, account_id, amount_pence, status, "
        "idempotency_key) "
        "SELECT gen_random_uuid(), $1, c, a, 100 + n, 'succeeded', 'k' || n "
        "FROM unnest($2::uuid[], $3::uuid[]) AS t(c, a), generate_series(1, $4) AS n",
        esco.id,
        esco.customer_ids,
        esco.account_ids,
        PAYMENTS,
    )


def test_the_estimate_bounds_the_answer(settings: Settings, database_url: str) -> None:
    # Hypothesis drives a synchronous test: the app, its pool and the client live on
    # a loop of this test's own.
    loop = asyncio.new_event_loop()
    limits = Limits()
    world_cm = module_world(settings, database_url)
    world = loop.run_until_complete(world_cm.__aenter__())
    seen = {"answered": 0, "refused": 0}
    try:
        loop.run_until_complete(seed(world.conn))

        async def post(query: str, variables: dict[str, Any]) -> httpx.Response:
            return await world.client.post(
                "/graphql", json={"query": query, "variables": variables}
            )

        @examples(
            max_examples=80,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(documents())
        def bounded(case: tuple[str, dict[str, Any]]) -> None:
            query, variables = case
            response = loop.run_until_complete(post(query, variables))
            try:
                verdict = check(query, variables, None, limits, schema._schema)
            except TooComplex as exc:
                assert response.status_code == 400, (query, variables, response.text)
                assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
                assert response.json()["errors"][0]["message"] == exc.message
                seen["refused"] += 1
                return
            body = response.json()
            assert response.status_code == 200 and "errors" not in body, (query, body)
            assert verdict is not None
            actual = values_in(body["data"])
            assert actual <= verdict.cost, (query, variables, actual, verdict.cost)
            seen["answered"] += 1

        bounded()
    finally:
        loop.run_until_complete(world_cm.__aexit__(None, None, None))
        loop.close()
    # Both sides of the limit were exercised.
    assert seen["answered"] >= 10 and seen["refused"] >= 1, seen
