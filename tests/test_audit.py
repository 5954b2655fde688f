"""Payment.statusHistory and the auditLog connection, from the audit records the
mutations write: values, who sees which actor, statement counts, and staff only."""

from __future__ import annotations

from typing import Any

from flows_graphql.types.node import to_global_id
from tests.support import factories as f
from tests.support.api import TENANT, bearer, gql
from tests.support.documents import CREATE_PAYMENT, UPDATE_PAYMENT_STATUS

HISTORY = """
{ esco(code: "aud") { customers(first: 50) { nodes { email payments(first: 10) { nodes {
    amountPence statusHistory { status previousStatus actor changedAt } } } } } } }"""


async def pay(client: Any, esco: f.EscoData, i: int, headers: dict[str, str]) -> str:
    body = await gql(
        client,
        CREATE_PAYMENT,
        {
            "input": {
                "customerId": str(esco.customer_ids[i]),
                "accountId": str(esco.account_ids[i]),
                "amountPence": 1000 + i,
                "idempotencyKey": f"key-{i}",
            }
        },
        headers=headers,
    )
    assert body["data"]["createPayment"]["userErrors"] == [], body
    payment: str = body["data"]["createPayment"]["payment"]["uuid"]
    return payment


async def move(client: Any, payment: str, *statuses: str) -> None:
    for status in statuses:
        body = await gql(
            client, UPDATE_PAYMENT_STATUS, {"input": {"paymentId": payment, "status": status}}
        )
        assert body["data"]["updatePaymentStatus"]["userErrors"] == [], body


async def test_status_history_in_order_with_actors(client, raw, settings):
    esco = await f.build_esco(raw, "aud", customers=3, months=1)
    me = bearer(settings, "customer", customer_id=str(esco.customer_ids[0]))
    payments = [await pay(client, esco, i, me if i == 0 else client.headers) for i in range(3)]
    await move(client, payments[0], "PENDING", "PROCESSING", "SUCCEEDED")
    await move(client, payments[1], "CANCELLED")

    body = await gql(client, HISTORY)
    assert "errors" not in body, body
    nodes = {c["email"]: c["payments"]["nodes"] for c in body["data"]["esco"]["customers"]["nodes"]}
    [first] = nodes[f.email("aud", 0)]
    steps = [(h["previousStatus"], h["status"], h["actor"]) for h in first["statusHistory"]]
    customer_actor = f"customer:{esco.customer_ids[0]}"
    assert steps == [
        (None, "CREATED", customer_actor),
        ("CREATED", "PENDING", "user:development"),
        ("PENDING", "PROCESSING", "user:development"),
        ("PROCESSING", "SUCCEEDED", "user:development"),
    ]
    times = [h["changedAt"] for h in first["statusHistory"]]
    assert times == sorted(times)
    [second] = nodes[f.email("aud", 1)]
    assert [h["status"] for h in second["statusHistory"]] == ["CREATED", "CANCELLED"]
    # Every payment's history of the page in one statement: esco, customers, payments,
    # histories.
    assert body["extensions"]["sqlStatements"] == TENANT + 4

    # The customer sees their own history, with roles for actors, never a person.
    body = await gql(
        client,
        """{ viewer { customer { payments(first: 5) { nodes {
             statusHistory { status actor } } } } } }""",
        headers=me,
    )
    [mine] = body["data"]["viewer"]["customer"]["payments"]["nodes"]
    assert [(h["status"], h["actor"]) for h in mine["statusHistory"]] == [
        ("CREATED", "you"),
        ("PENDING", "operator"),
        ("PROCESSING", "operator"),
        ("SUCCEEDED", "operator"),
    ]


AUDIT = """
query($e: ID, $entity: String, $from: Date, $to: Date) {
  auditLog(escoId: $e, entity: $entity, from: $from, to: $to, first: 50) {
    totalCount nodes { action actor entity entityId changes createdAt } } }"""


async def test_audit_log_for_staff_only(client, raw, settings):
    esco = await f.build_esco(raw, "aud", customers=2, months=1)
    other = await f.build_esco(raw, "oth", customers=1, months=1)
    payment = await pay(client, esco, 0, client.headers)
    await move(client, payment, "PENDING")
    await pay(client, other, 0, client.headers)
    body = await gql(client, AUDIT, {"e": to_global_id("Esco", esco.id), "entity": "payment"})
    assert "errors" not in body, body
    log = body["data"]["auditLog"]
    assert log["totalCount"] == 2
    assert [(n["action"], n["entityId"]) for n in log["nodes"]] == [
        ("updatePaymentStatus", payment),
        ("createPayment", payment),
    ]
    assert log["nodes"][0]["changes"] == {
        "changed": {"status": {"old": "created", "new": "pending"}}
    }
    # Days of the billing clock: nothing was written in 2020.
    body = await gql(client, AUDIT, {"e": str(esco.id), "from": "2020-01-01", "to": "2020-12-31"})
    assert body["data"]["auditLog"]["totalCount"] == 0
    # An operator of the other ESCO sees its record only; customers nothing.
    operator = bearer(settings, "operator", escos=[str(other.id)])
    body = await gql(client, AUDIT, {"entity": "payment"}, headers=operator)
    assert body["data"]["auditLog"]["totalCount"] == 1
    body = await gql(client, AUDIT, {"e": str(esco.id)}, headers=operator)
    assert body["data"]["auditLog"]["totalCount"] == 0
    me = bearer(settings, "customer", customer_id=str(esco.customer_ids[0]))
    body = await gql(client, AUDIT, {}, headers=me)
    assert body["data"]["auditLog"] == {"totalCount": 0, "nodes": []}
