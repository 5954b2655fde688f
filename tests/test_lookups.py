"""Look-ups by the keys partners hold: found, missing and malformed alike null,
batched (aliases cost one statement per kind), within the viewer's scope."""

from __future__ import annotations

from tests.support import factories as f
from tests.support.api import TENANT, bearer, gql

LOOKUPS = """
query($e: ID!, $e2: ID!) {
  m1: meter(serial: "LKA-M001") { serial } m2: meter(serial: "LKA-M003") { serial }
  m3: meter(serial: "nope") { serial }
  a1: account(accountNumber: $a1) { uuid } a2: account(accountNumber: "12x") { uuid }
  a3: account(accountNumber: "99999999999999999999999") { uuid }
  c1: customer(escoId: $e, email: " LKA.002@Example.COM ") { email }
  c2: customer(escoId: $e2, email: "lkb.000@example.com") { email }
  c3: customer(escoId: "garbage", email: "lka.000@example.com") { email }
  p1: payment(providerReference: "pi_2") { amountPence }
  p2: payment(providerReference: "pi_x") { amountPence }
}"""


async def test_partner_keys_find_their_objects(client, raw, settings):
    a = await f.build_esco(raw, "lka", customers=4, months=1)
    b = await f.build_esco(raw, "lkb", customers=1, months=1)
    for i in range(4):
        await raw.execute(
            "INSERT INTO payments (esco_id, customer_id, account_id, amount_pence,"
            " idempotency_key, provider_reference) VALUES ($1, $2, $3, $4, $5, $6)",
            a.id,
            a.customer_ids[i],
            a.account_ids[i],
            100 + i,
            f"k{i}",
            f"pi_{i}",
        )
    number = str(
        await raw.fetchval("SELECT account_number FROM accounts WHERE id = $1", a.account_ids[1])
    )
    text = LOOKUPS.replace("query($e: ID!, $e2: ID!)", "query($e: ID!, $e2: ID!, $a1: ID!)")
    variables = {"e": str(a.id), "e2": str(b.id), "a1": number}
    body = await gql(client, text, variables)
    assert "errors" not in body, body
    d = body["data"]
    assert (d["m1"], d["m2"], d["m3"]) == ({"serial": "LKA-M001"}, {"serial": "LKA-M003"}, None)
    assert d["a1"] == {"uuid": str(a.account_ids[1])} and d["a2"] is None and d["a3"] is None
    assert d["c1"] == {"email": "lka.002@example.com"}
    assert d["c2"] == {"email": "lkb.000@example.com"} and d["c3"] is None
    assert d["p1"] == {"amountPence": 102} and d["p2"] is None
    # One statement per kind of look-up (and selection), whatever the aliases.
    assert body["extensions"]["sqlStatements"] == TENANT + 4

    # An operator of A: B's customer is out of scope, exactly like a missing one.
    operator = bearer(settings, "operator", escos=[str(a.id)])
    body = await gql(client, text, variables, headers=operator)
    assert body["data"]["c2"] is None and body["data"]["m1"] == {"serial": "LKA-M001"}
    # A customer finds only their own.
    me = bearer(settings, "customer", customer_id=str(a.customer_ids[1]))
    body = await gql(client, text, variables, headers=me)
    assert "errors" not in body, body
    d = body["data"]
    assert d["a1"] == {"uuid": str(a.account_ids[1])}
    assert d["m1"] == {"serial": "LKA-M001"}  # their own meter
    assert (d["m2"], d["c1"], d["c2"], d["p1"]) == (None,) * 4


SYNC = """
query($since: DateTime, $after: String) {
  customers(updatedSince: $since, orderBy: UPDATED_AT, first: 2, after: $after) {
    pageInfo { hasNextPage endCursor } nodes { email updatedAt } } }"""


async def sync_all(client, since: str | None, after: str | None = None) -> tuple[list[str], str]:
    """Page through a sync; the emails in order and the last cursor."""
    emails: list[str] = []
    cursor = after
    while True:
        body = await gql(client, SYNC, {"since": since, "after": cursor})
        assert "errors" not in body, body
        page = body["data"]["customers"]
        emails += [n["email"] for n in page["nodes"]]
        cursor = page["pageInfo"]["endCursor"] or cursor
        if not page["pageInfo"]["hasNextPage"]:
            return emails, cursor


async def test_incremental_sync_by_updated_at(client, raw):
    esco = await f.build_esco(raw, "syn", customers=6, months=1)
    # Written in the past, a minute apart (triggers off: they would stamp now()).
    await raw.execute("SET session_replication_role = replica")
    for i, customer in enumerate(esco.customer_ids):
        await raw.execute(
            "UPDATE customers SET updated_at = timestamptz '2025-01-01 10:00Z' + $2 * interval"
            " '1 minute' WHERE id = $1",
            customer,
            i,
        )
    await raw.execute("SET session_replication_role = DEFAULT")
    emails, _ = await sync_all(client, "2025-01-01T10:03:00+00:00")
    assert emails == [f.email("syn", i) for i in (3, 4, 5)]

    # A first sync reads one page; customer 1 is changed meanwhile (through the API).
    body = await gql(client, SYNC, {"since": None, "after": None})
    first = body["data"]["customers"]
    assert [n["email"] for n in first["nodes"]] == [f.email("syn", i) for i in (0, 1)]
    change = await gql(
        client,
        """mutation($id: ID!) { updateCustomer(input: {customerId: $id, fullName: "New"}) {
             userErrors { code } } }""",
        {"id": str(esco.customer_ids[1])},
    )
    assert change["data"]["updateCustomer"]["userErrors"] == []
    # Paging on from the cursor loses nothing: the changed row moved to the end.
    rest, last = await sync_all(client, None, first["pageInfo"]["endCursor"])
    assert rest == [f.email("syn", i) for i in (2, 3, 4, 5, 1)]
    # Nothing changed since: the next sync from the last cursor is empty.
    again, _ = await sync_all(client, None, last)
    assert again == []
