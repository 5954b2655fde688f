"""The within-ESCO privacy world (tests/test_privacy_matrix.py, whose docstring tells
the scenario): one ESCO over time, who lived where and when, which meter supplied which
home, built through the API, with the oracle that decides, in Python and independently
of the server's rules, what each person may see. Shared by the privacy matrix and the
compiled query's differential tests (tests/test_compiled.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
from graphql import (
    get_named_type,
)

from flows_graphql.app import create_app
from flows_graphql.config import OidcIssuer, Settings
from flows_graphql.schema import schema
from flows_graphql.types.node import from_global_id
from tests.support.api import bearer
from tests.support.db import direct_dsn
from tests.support.factories import empty_tables, month_at
from tests.support.oidc_provider import AUDIENCE, Provider, make_key

GRAPHQL = schema._schema
TODAY = date(2025, 7, 10)
SWAP_DAY = date(2025, 4, 15)
# O schedules a payment while she lives in H5 for a day after she left (N's month).
O_PAYS_ON = date(2024, 9, 10)
O_PAYMENT_AT = "2024-10-05T09:00:00+01:00"
FIRST = date(2024, 1, 1)
MONTHS = [month_at(FIRST, i) for i in range(18)]  # 2024-01 .. 2025-06
LONDON = ZoneInfo("Europe/London")
ROLE_WORDS = {"you", "operator", "system", "partner", "customer"}


def d(text: str) -> date:
    return date.fromisoformat(text)


# --- the scenario: who lived where, when; which meter supplied which home ------------

# Homes: plot -> meters as (meter, first month, last month) — None: open.
SUPPLY: dict[str, list[tuple[str, date | None, date | None]]] = {
    "H1": [("M1", None, d("2025-04-01")), ("M1B", d("2025-05-01"), None)],
    "H2": [("M2", None, None)],
    "H3": [("M3", None, None)],
    "H4": [("M4", None, None)],
    "H5": [("M5", None, None)],
    "H6": [("M6", None, d("2025-04-01")), ("M1", d("2025-05-01"), None)],
}
METERS = ["M1", "M1B", "M2", "M3", "M4", "M5", "M6"]
# Accounts: name -> (home, opened, closed).
ACCOUNTS: dict[str, tuple[str, date, date | None]] = {
    "AC1": ("H1", FIRST, None),
    "AC2": ("H2", FIRST, d("2024-06-30")),
    "AC2B": ("H2", d("2024-07-01"), None),
    "AC3": ("H3", FIRST, None),
    "AC4": ("H4", FIRST, None),
    "AC5": ("H5", FIRST, None),
    "AC6": ("H6", FIRST, None),
}
# Links: (customer, account, role, start, end).
LINKS: list[tuple[str, str, str, date, date | None]] = [
    ("L", "AC1", "OWNER", FIRST, None),
    ("A", "AC1", "OCCUPIER", FIRST, d("2024-01-31")),
    ("B", "AC1", "OCCUPIER", d("2024-02-01"), d("2024-02-29")),
    ("C", "AC1", "OCCUPIER", d("2024-03-01"), None),
    ("D", "AC2", "OCCUPIER", FIRST, d("2024-04-30")),
    ("E", "AC2", "OCCUPIER", d("2024-05-01"), None),  # ended by the account's closing
    ("F", "AC2B", "OCCUPIER", d("2024-07-01"), None),
    ("G", "AC3", "OCCUPIER", FIRST, d("2024-06-30")),
    ("K", "AC3", "OCCUPIER", d("2024-07-01"), None),
    ("M", "AC4", "OCCUPIER", FIRST, d("2024-06-30")),
    ("G", "AC4", "OCCUPIER", d("2024-07-01"), None),
    ("O", "AC5", "OCCUPIER", FIRST, d("2024-09-14")),
    ("N", "AC5", "OCCUPIER", d("2024-09-15"), d("2025-02-28")),
    ("Q", "AC5", "OCCUPIER", d("2025-03-01"), None),
    ("P", "AC6", "OCCUPIER", FIRST, None),
]
PEOPLE = sorted({link[0] for link in LINKS})
SOLAR_HOMES = ["H1", "H2"]
SHARED_CIRCUIT_METERS = ["M1", "M2", "M3"]


def link_end(link: tuple[str, str, str, date, date | None]) -> date | None:
    closed = ACCOUNTS[link[1]][2]
    if link[4] is None:
        return closed
    return link[4]


def occupier_on(home: str, day: date) -> str | None:
    """Who is billed for `home` on `day` (the oracle: straight from the timelines)."""
    for person, account, role, start, _ in LINKS:
        end = link_end((person, account, role, start, _))
        if ACCOUNTS[account][0] != home or role != "OCCUPIER":
            continue
        if start <= day and (end is None or end >= day):
            return person
    return None


def meter_of(home: str, month: date) -> str | None:
    for meter, first, last in SUPPLY[home]:
        if (first is None or first <= month) and (last is None or last >= month):
            return meter
    return None


def usage_months(person: str) -> set[tuple[str, date]]:
    """(meter, month) the person may see: billed for the home the meter supplied."""
    out = set()
    for home in SUPPLY:
        for month in MONTHS:
            meter = meter_of(home, month)
            if meter is not None and occupier_on(home, month) == person:
                out.add((meter, month))
    return out


def credit_months(person: str) -> set[tuple[str, date]]:
    return {
        (home, month)
        for home in SOLAR_HOMES
        for month in MONTHS
        if occupier_on(home, month) == person
    }


def homes_of(person: str) -> set[str]:
    return {ACCOUNTS[a][0] for p, a, *_ in LINKS if p == person}


# --- building it through the API ----------------------------------------------------


@dataclass
class World:
    esco: uuid.UUID
    people: dict[str, uuid.UUID]
    emails: dict[str, str]
    names: dict[str, str]
    homes: dict[str, uuid.UUID]
    meters: dict[str, uuid.UUID]
    accounts: dict[str, uuid.UUID]
    headers: dict[str, dict[str, str]]
    client: httpx.AsyncClient
    conn: asyncpg.Connection
    # Filled per person by the crawl of tests/test_privacy_matrix.py (its tests share it).
    crawls: dict[str, Any] = field(default_factory=dict)  # its Crawl objects
    # The same world, its people signed in at the identity provider.
    oidc: World | None = None


def signed_in(w: World, auth: str) -> World:
    """The world as `auth` ("jwt": the server's own tokens, "oidc": the provider's)."""
    if auth == "jwt":
        return w
    assert w.oidc is not None
    return w.oidc


async def call(client: httpx.AsyncClient, headers: dict[str, str], field: str, input: Any,
               sel: str) -> Any:  # fmt: skip
    arg = GRAPHQL.mutation_type.fields[field].args["input"].type  # type: ignore[union-attr]
    type_name = get_named_type(arg).name
    body = (
        await client.post(
            "/graphql",
            json={
                "query": f"mutation($i: {type_name}!) {{ {field}(input: $i) {{ {sel} "
                "userErrors { field code message } } }",
                "variables": {"i": input},
            },
            headers=headers,
        )
    ).json()
    assert "errors" not in body, body
    payload = body["data"][field]
    assert payload["userErrors"] == [], (field, input, payload)
    return payload


def uuid_of(gid: str) -> uuid.UUID:
    decoded = from_global_id(gid)
    assert decoded is not None
    return uuid.UUID(decoded[1])


async def build_world(settings: Settings, database_url: str) -> AsyncIterator[World]:
    await empty_tables(settings, database_url)
    idp = Provider(keys=[make_key("RS256"), make_key("ES256")]).start()
    settings = replace(settings, oidc_issuers=(OidcIssuer(idp.issuer, AUDIENCE, idp.jwks_uri),))
    conn = await asyncpg.connect(direct_dsn(database_url))
    app = create_app(settings, database_url, today=lambda: TODAY)
    past = create_app(settings, database_url, today=lambda: SWAP_DAY)
    before_o_left = create_app(settings, database_url, today=lambda: O_PAYS_ON)
    admin = bearer(settings, "admin", sub="matrix-admin")
    try:
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=past), base_url="http://t") as pc,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=before_o_left), base_url="http://t"
            ) as oc,
        ):

            async def m(field: str, input: Any, sel: str) -> Any:
                return await call(c, admin, field, input, sel)

            esco_gid = (
                await m(
                    "createEsco",
                    {"code": "privy", "name": "Privy", "regionCode": "london",
                     "appUrl": "https://privy.example.com"},
                    "esco { id }",
                )
            )["esco"]["id"]  # fmt: skip
            await m(
                "publishBenchmarkTariff",
                {"regionCode": "london", "periodStart": "2023-10-01", "unitRate": "0.25",
                 "standingCharge": "0.5"},
                "benchmarkTariff { id }",
            )  # fmt: skip
            await m(
                "setSolarCreditTariff",
                {"escoId": esco_gid, "periodStart": "2023-10-01", "creditPencePerYear": "3650"},
                "solarCreditTariff { id }",
            )
            meters = {}
            for name in METERS:
                meters[name] = (
                    await m(
                        "createMeter", {"escoId": esco_gid, "serial": f"PRIVY-{name}"},
                        "meter { id }",
                    )
                )["meter"]["id"]  # fmt: skip
            homes = {}
            for home, periods in SUPPLY.items():
                homes[home] = (
                    await m(
                        "createProperty",
                        {"escoId": esco_gid, "plot": f"PRIVY-{home}",
                         "address": f"{home} Privy Lane", "supplyMeterId": meters[periods[0][0]]},
                        "property { id }",
                    )
                )["property"]["id"]  # fmt: skip
            accounts: dict[str, str] = {}
            people: dict[str, str] = {}
            for person in PEOPLE:
                people[person] = (
                    await m(
                        "createCustomer",
                        {"escoId": esco_gid, "email": f"person.{person.lower()}@privy.example",
                         "fullName": f"Privy Person{person}"},
                        "customer { id }",
                    )
                )["customer"]["id"]  # fmt: skip
                await m(
                    "setCustomerDiscount",
                    {"customerId": people[person], "periodStart": "2023-10-01",
                     "discountPercent": 10},
                    "customerTariff { id }",
                )  # fmt: skip
                await m("inviteCustomer", {"customerId": people[person]}, "customerInvite { id }")

            async def open_accounts(names: Collection[str]) -> None:
                for name in names:
                    home, opened, _ = ACCOUNTS[name]
                    accounts[name] = (
                        await m(
                            "openAccount",
                            {"propertyId": homes[home], "openedOn": opened.isoformat()},
                            "account { id }",
                        )
                    )["account"]["id"]
                for person, account, role, start, end in LINKS:
                    if account in names:
                        await _link(m, people[person], accounts[account], role, start, end)

            # Accounts and links in time order: closing AC2 precedes opening AC2B.
            await open_accounts(("AC1", "AC2", "AC3", "AC4", "AC5", "AC6"))
            await m(
                "closeAccount",
                {"accountId": accounts["AC2"], "closedOn": "2024-06-30"},
                "account { id }",
            )
            await open_accounts(("AC2B",))
            # The swap, on 2025-04-15 by the billing clock: M1B into H1, M1 into H6.
            for home, meter in (("H1", "M1B"), ("H6", "M1")):
                await call(
                    pc,
                    admin,
                    "updateProperty",
                    {"propertyId": homes[home], "supplyMeterId": meters[meter]},
                    "property { id }",
                )
            for home in SOLAR_HOMES:
                await m(
                    "setSolarInstallation",
                    {"propertyId": homes[home], "mcsCertificate": f"MCS-PRIVY-{home}",
                     "declaredNetCapacityKw": "3.5"},
                    "solarInstallation { id }",
                )  # fmt: skip
            heat = (
                await m(
                    "createCircuit",
                    {"escoId": esco_gid, "type": "HEAT", "name": "Privy shared heat"},
                    "circuit { id }",
                )
            )["circuit"]["id"]
            for meter in SHARED_CIRCUIT_METERS:
                await m("connectCircuit", {"circuitId": heat, "meterId": meters[meter]},
                        "circuit { id }")  # fmt: skip
            rows = []
            for i, meter in enumerate(METERS):
                for j, month in enumerate(MONTHS):
                    if meter == "M1B" and month < d("2025-05-01"):
                        continue
                    rows.append(
                        {"meterId": meters[meter], "month": month.isoformat(),
                         "powerKwh": f"{(i + 1) * 100 + j}", "heatKwh": "7", "solarKwh": "1"}
                    )  # fmt: skip
            await m("importMonthlyUsage", {"rows": rows}, "importedCount")
            for month in MONTHS:
                await m(
                    "runBilling",
                    {"escoId": esco_gid, "month": month.isoformat()},
                    "billingRun { id }",
                )
            # Current occupiers each pay once (succeeded; unscheduled: in the month of the
            # wall clock's now).
            paid = []
            for person, account, role, _start, end in LINKS:
                if role == "OCCUPIER" and end is None and ACCOUNTS[account][2] is None:
                    key = f"pay-{person}-{account}"
                    pay = {"customerId": people[person], "accountId": accounts[account],
                           "amountPence": 1000, "idempotencyKey": key}  # fmt: skip
                    paid.append(await m("createPayment", pay, "payment { id }"))
            # O, before she leaves H5, schedules a payment for a day of N's first month.
            pay = {"customerId": people["O"], "accountId": accounts["AC5"],
                   "amountPence": 2500, "scheduledAt": O_PAYMENT_AT,
                   "idempotencyKey": "pay-O-after-leaving"}  # fmt: skip
            paid.append(await call(oc, admin, "createPayment", pay, "payment { id }"))
            for payload in paid:
                for status in ("PENDING", "PROCESSING", "SUCCEEDED"):
                    await m(
                        "updatePaymentStatus",
                        {"paymentId": payload["payment"]["id"], "status": status},
                        "payment { id }",
                    )
            rows_ = await conn.fetch("SELECT id, email, full_name FROM customers")
            by_id = {r["id"]: r for r in rows_}
            person_ids = {p: uuid_of(g) for p, g in people.items()}
            headers = {
                p: bearer(settings, "customer", sub=f"privy-{p}", customer_id=str(i))
                for p, i in person_ids.items()
            }
            # Each person's identity at the provider, linked as accepting an invite
            # would; and an operator's grant (a row no customer may reach).
            idp_headers = {}
            for n, (p, i) in enumerate(person_ids.items()):
                await conn.execute(
                    "INSERT INTO customer_identities (esco_id, customer_id, issuer, subject, "
                    "email) VALUES ($1, $2, $3, $4, $5)",
                    uuid_of(esco_gid), i, idp.issuer, f"idp-{p}", by_id[i]["email"],
                )  # fmt: skip
                token = idp.token(
                    f"idp-{p}", key=idp.keys[n % 2], lifetime=3600, email=by_id[i]["email"]
                )
                idp_headers[p] = {"Authorization": f"Bearer {token}"}
            await conn.execute(
                "INSERT INTO staff_grants (esco_id, issuer, subject, email, granted_by) "
                "VALUES ($1, $2, 'privy-operator', 'ops@privy.example', 'system')",
                uuid_of(esco_gid), idp.issuer,
            )  # fmt: skip
            w = World(
                esco=uuid_of(esco_gid),
                people=person_ids,
                emails={p: by_id[i]["email"] for p, i in person_ids.items()},
                names={p: by_id[i]["full_name"] for p, i in person_ids.items()},
                homes={h: uuid_of(g) for h, g in homes.items()},
                meters={k: uuid_of(g) for k, g in meters.items()},
                accounts={k: uuid_of(g) for k, g in accounts.items()},
                headers=headers,
                client=c,
                conn=conn,
            )
            w.oidc = replace(w, headers=idp_headers, crawls={})
            yield w
    finally:
        await conn.close()
        for a in (app, past, before_o_left):
            await a.state.authenticator.oidc.close()
            await a.state.engine.dispose()
        idp.stop()


async def _link(m: Any, customer: str, account: str, role: str, start: date,
                end: date | None) -> None:  # fmt: skip
    link = {"customerId": customer, "accountId": account, "role": role}
    await m("addCustomerToAccount", {**link, "startDate": start.isoformat()},
            "customerAccount { id }")  # fmt: skip
    if end is not None:
        await m("endCustomerAccount", {**link, "endDate": end.isoformat()},
                "customerAccount { id }")  # fmt: skip
