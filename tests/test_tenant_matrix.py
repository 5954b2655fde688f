"""The cross-tenant matrix: principals of ESCO A probe ESCO B through every root field,
every Node type and every mutation, and must see nothing and change nothing.

Built from the schema itself: `test_every_root_field_has_probes` and
`test_every_mutation_has_probes` fail when a root field or a mutation appears that
`QUERY_PROBES` / `MUTATION_PROBES` do not cover, and `test_every_node_type_is_probed`
does the same for the types implementing `Node`.

The world (built once for the module, on tests/support/factories.py): two ESCOs, "alpha" (A,
south_west) and "bravo" (B, london), each with the same graph — three households
(customer occupying an account on a property with a supply meter, heat and power
circuits, usage, costs, tariffs), a site, allowed contract terms, solar installations
and credits, microgrid and solar credit tariffs, billing runs, payments, invites,
customer and account events, account audit logs, a spare meter, a property without an
account, an account to close, and a partner API key. Everything of B's that is text
carries "bravo", so one substring finds any of it in a response.

The principals of A: an operator (JWT escos=[A]), A's customer of household 0, and a
partner (A's API key with every scope). The whole matrix runs twice: with the
server's own JWTs, and with tokens of an identity provider served on loopback
(tests/support/oidc_provider.py), whose identities are A's operator by a staff grant and
household 0's customer by a linked identity. A probe runs against:
- B's objects (as global ids and as bare uuids) — the response must hold none of B's
  row ids (also inside global ids and cursors), none of its text and account numbers;
  queries answer null / empty, mutations a user error NOT_FOUND (FORBIDDEN where the
  role may not use the mutation at all), and every table's rows stay the same (row
  counts and md5 of every table's rows, and of B's rows apart);
- a "ghost": the same probe with ids that exist nowhere. Out of scope must look exactly
  like missing, so the two answers must be equal;
- for the customer, household 1 of the SAME ESCO A (another customer's rows);
- A's own objects (the positive control): the same probe returns A's objects, so the
  matrix cannot pass by seeing nothing at all.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import asyncpg
import httpx
import pytest
from graphql import (
    GraphQLInputObjectType,
    GraphQLNonNull,
    GraphQLObjectType,
    get_named_type,
    is_leaf_type,
)

from flows_graphql.app import create_app
from flows_graphql.auth.apikeys import create_key
from flows_graphql.config import OidcIssuer, Settings
from flows_graphql.db.engine import create_engine
from flows_graphql.db.models import metadata
from flows_graphql.schema import schema
from flows_graphql.types.node import to_global_id
from tests.support import factories as f
from tests.support.api import TODAY, asgi_client, bearer, opened_up
from tests.support.db import direct_dsn
from tests.support.factories import empty_tables
from tests.support.oidc_provider import AUDIENCE, Provider, make_key

GRAPHQL = schema._schema
QUERY_FIELDS = sorted(GRAPHQL.query_type.fields)
MUTATION_FIELDS = sorted(GRAPHQL.mutation_type.fields)  # type: ignore[union-attr]
NODE_TYPE_NAMES = sorted(
    t.name
    for t in GRAPHQL.type_map.values()
    if isinstance(t, GraphQLObjectType) and any(i.name == "Node" for i in t.interfaces)
)

PRINCIPALS = ("operator", "customer", "partner")
HOUSEHOLDS = 3  # 0: A's customer principal; 1: another customer of A; 2: mutation victims
MONTHS = 3  # 2024-01 .. 2024-03, billed (completed runs)
ALL_SCOPES = ["read", "usage:write", "payments:write", "webhooks:write"]

# Node types that are reference data shared by every tenant: no ESCO owns them.
GLOBAL_NODE_TYPES = {"Region", "BenchmarkTariff", "ContractTerms"}
# What a customer reads (api.md "Auth and tenancy"): their own customer, accounts (and
# their links and history), properties, meters, usage, costs, tariffs, payments,
# invites, credits — and their ESCO with its tariffs, and the circuits their meter
# measures (docs/privacy.md). Not: sites, billing runs, audit logs.
CUSTOMER_VISIBLE_TYPES = {
    "Circuit",
    "Esco",
    "Customer",
    "CustomerAccount",
    "Account",
    "CustomerInvite",
    "CustomerIdentity",
    "CustomerEvent",
    "AccountEvent",
    "Property",
    "Meter",
    "SolarInstallation",
    "MonthlyUsage",
    "MonthlyCosts",
    "MonthlySolarCredit",
    "CustomerTariff",
    "MicrogridTariff",
    "SolarCreditTariff",
    "Payment",
}
# Node types owned by one customer's household (the rest are the ESCO's).
HOUSEHOLD_NODE_TYPES = {
    "Customer",
    "CustomerAccount",
    "Account",
    "CustomerInvite",
    "CustomerIdentity",
    "CustomerEvent",
    "AccountEvent",
    "AuditLogEntry",
    "Property",
    "Meter",
    "Circuit",
    "SolarInstallation",
    "MonthlyUsage",
    "MonthlyCosts",
    "MonthlySolarCredit",
    "CustomerTariff",
    "Payment",
}

# Mutations each principal may use at all (the services' role checks); anything else
# is FORBIDDEN, for its own ESCO's objects as much as for B's.
ADMIN_ONLY = {
    "createEsco",
    "createContractTerms",
    "publishBenchmarkTariff",
    "grantOperatorAccess",
    "revokeOperatorAccess",
}
WEBHOOK_MUTATIONS = {
    "createWebhookEndpoint",
    "updateWebhookEndpoint",
    "deleteWebhookEndpoint",
    "rotateWebhookSecret",
    "redeliverWebhookEvent",
}
MAY_USE: dict[str, set[str]] = {
    "operator": set(MUTATION_FIELDS) - ADMIN_ONLY,
    "customer": {"createPayment", "acceptInvite", "unlinkIdentity"},
    # Partner keys by scope: `usage:write`, `payments:write`, `webhooks:write` (the key
    # has all three).
    "partner": {
        "recordMonthlyUsage",
        "importMonthlyUsage",
        "createPayment",
        "updatePaymentStatus",
        *WEBHOOK_MUTATIONS,
    },
}

# Open bugs: (principal, field) -> reason. Each such case is xfail(strict=True).
KNOWN_BUGS: dict[tuple[str, str], str] = {}

_counter = itertools.count(1)


def uniq(prefix: str) -> str:
    return f"{prefix}-{next(_counter):04d}"


# --- the world -----------------------------------------------------------------------


@dataclass
class Household:
    customer: uuid.UUID
    email: str
    account: uuid.UUID
    account_number: str
    property: uuid.UUID
    plot: str
    meter: uuid.UUID
    serial: str
    heat_circuit: uuid.UUID
    power_circuit: uuid.UUID
    usage: list[uuid.UUID]
    costs: list[uuid.UUID]
    invite: uuid.UUID
    # Linked identities (of the tenant's issuer): `identity` signs in as the customer, `spare`
    # is a second one (the target of unlinkIdentity's positive control).
    identity: uuid.UUID
    spare_identity: uuid.UUID
    subject: str
    payment: uuid.UUID | None = None
    customer_event: uuid.UUID | None = None
    account_event: uuid.UUID | None = None
    audit_log: uuid.UUID | None = None
    solar_credit: uuid.UUID | None = None
    mcs: str | None = None


@dataclass
class Tenant:
    id: uuid.UUID
    code: str
    region: str
    households: list[Household]
    site: uuid.UUID
    site_code: str
    runs: list[uuid.UUID]
    months: list[date]
    spare_meter: uuid.UUID
    spare_serial: str
    free_property: uuid.UUID
    free_plot: str
    closing_account: uuid.UUID
    closing_plot: str
    key: str = ""
    # A staff grant of the operator role in this ESCO to `operator_subject`.
    grant: uuid.UUID = field(default_factory=uuid.uuid4)
    operator_subject: str = ""
    issuer: str = ""
    # A cursor of each root list, taken from the admin's view of this tenant's rows.
    cursors: dict[str, str] = field(default_factory=dict)
    # A webhook endpoint with a delivery (and an attempt) of `webhook_event`, and one
    # endpoint per principal for deleteWebhookEndpoint's positive controls.
    webhook: uuid.UUID = field(default_factory=uuid.uuid4)
    webhook_event: int = 0
    deletable_webhooks: dict[str, uuid.UUID] = field(default_factory=dict)

    def texts_of(self, households: list[int]) -> set[str]:
        """Distinctive text of those households (emails, serials, plots, MCS numbers)."""
        out: set[str] = set()
        for i in households:
            hh = self.households[i]
            out |= {hh.email, hh.serial, hh.plot}
            if hh.mcs:
                out.add(hh.mcs)
        return out


def provider_reference(code: str, household: int) -> str:
    return f"pi_{code}_{household}"


TERMS_ID = uuid.uuid4()
# The issuer of the world's identities in the "jwt" run (in the "oidc" run, the
# loopback provider's).
JWT_RUN_ISSUER = "http://127.0.0.1/flows-matrix"
TERMS_TITLE = "Supply terms (matrix)"
START = date(2024, 1, 1)


async def seed_tenant(conn: asyncpg.Connection, code: str, region: str, issuer: str) -> Tenant:
    e = await f.build_esco(conn, code, region, customers=HOUSEHOLDS, months=MONTHS)
    up = code.upper()
    cap = code.capitalize()
    households: list[Household] = []
    numbers = dict(
        await conn.fetch("SELECT id, account_number FROM accounts WHERE esco_id = $1", e.id)
    )
    for i in range(HOUSEHOLDS):
        households.append(
            Household(
                customer=e.customer_ids[i],
                email=e.emails[i],
                account=e.account_ids[i],
                account_number=str(numbers[e.account_ids[i]]),
                property=e.property_ids[i],
                plot=f"{up}-P{i:03d}",
                meter=e.meter_ids[i],
                serial=f.serial(code, i),
                heat_circuit=e.heat_circuit_ids[i],
                power_circuit=e.power_circuit_ids[i],
                usage=e.usage_ids[i],
                costs=e.cost_ids[i],
                invite=uuid.uuid4(),
                identity=uuid.uuid4(),
                spare_identity=uuid.uuid4(),
                subject=f"{code}-customer-{i}",
            )
        )
    t = Tenant(
        id=e.id,
        code=code,
        region=region,
        households=households,
        site=uuid.uuid4(),
        site_code=f"{code}-north",
        runs=e.billing_run_ids,
        months=e.months,
        spare_meter=uuid.uuid4(),
        spare_serial=f"{up}-SPARE",
        free_property=uuid.uuid4(),
        free_plot=f"{up}-FREE",
        closing_account=uuid.uuid4(),
        closing_plot=f"{up}-CLOSING",
        operator_subject=f"{code}-operator",
        issuer=issuer,
    )
    closing_property = uuid.uuid4()
    s: list[tuple[str, tuple[Any, ...]]] = [
        # Every text of the tenant names it (plots and names are shared by the factory).
        (
            "UPDATE properties SET plot = $2 || '-P' || substr(plot, 2), "
            "address = $3 || ' ' || plot || ' Solar Street' WHERE esco_id = $1",
            (e.id, up, cap),
        ),
        ("UPDATE customers SET full_name = $2 || ' ' || full_name WHERE esco_id = $1", (e.id, cap)),
        ("UPDATE circuits SET name = $2 || ' ' || name WHERE esco_id = $1", (e.id, cap)),
        (
            "INSERT INTO sites (id, esco_id, code, name) VALUES ($1, $2, $3, $4)",
            (t.site, e.id, t.site_code, f"{cap} North"),
        ),
        ("UPDATE properties SET site_id = $1 WHERE id = $2", (t.site, households[0].property)),
        (
            "INSERT INTO contract_terms_esco (esco_id, contract_terms_id) VALUES ($1, $2)",
            (e.id, TERMS_ID),
        ),
        (
            "UPDATE accounts SET contract_terms_id = $1 WHERE id = $2",
            (TERMS_ID, households[0].account),
        ),
        (
            "INSERT INTO microgrid_tariffs (esco_id, period_start, discount_percent, unit_rate, "
            "standing_charge, emergency_credit, ecredit_button_threshold, debt_recovery_rate) "
            "VALUES ($1, $2, 10, 0.2205, 0.54, 10, 5, 1)",
            (e.id, START),
        ),
        (
            "INSERT INTO solar_credit_tariffs (esco_id, period_start, credit_pence_per_year, "
            "credit_pence_per_day) VALUES ($1, $2, 5000, 13.6612)",
            (e.id, START),
        ),
        (
            "INSERT INTO meters (id, esco_id, serial, name) VALUES ($1, $2, $3, $4)",
            (t.spare_meter, e.id, t.spare_serial, f"{cap} spare"),
        ),
        (
            "INSERT INTO properties (id, esco_id, plot, address) VALUES ($1, $2, $3, $4)",
            (t.free_property, e.id, t.free_plot, f"{cap} free plot"),
        ),
        (
            "INSERT INTO properties (id, esco_id, plot, address) VALUES ($1, $2, $3, $4)",
            (closing_property, e.id, t.closing_plot, f"{cap} closing plot"),
        ),
        (
            "INSERT INTO accounts (id, esco_id, property_id, opened_on) VALUES ($1, $2, $3, $4)",
            (t.closing_account, e.id, closing_property, START),
        ),
        # Household 2 also owns household 0's account (endCustomerAccount's target).
        (
            "INSERT INTO customer_accounts (customer_id, account_id, role, start_date, esco_id) "
            "VALUES ($1, $2, 'owner', $3, $4)",
            (households[2].customer, households[0].account, START, e.id),
        ),
    ]
    s.append(
        (
            "INSERT INTO staff_grants (id, esco_id, issuer, subject, granted_by) "
            "VALUES ($1, $2, $3, $4, 'system')",
            (t.grant, e.id, issuer, t.operator_subject),
        )
    )
    for i, hh in enumerate(households):
        s.append(
            (
                "INSERT INTO customer_invites (token, esco_id, customer_id, invite_url) "
                "VALUES ($1, $2, $3, $4)",
                (hh.invite, e.id, hh.customer, f"https://{code}.example.com/invite/{hh.invite}"),
            )
        )
        for identity, subject in (
            (hh.identity, hh.subject),
            (hh.spare_identity, f"{hh.subject}-b"),
        ):
            s.append(
                (
                    "INSERT INTO customer_identities (id, esco_id, customer_id, issuer, subject, "
                    "email) VALUES ($1, $2, $3, $4, $5, $6)",
                    (identity, e.id, hh.customer, issuer, subject, hh.email),
                )
            )
        if i == 2:
            continue
        hh.payment, hh.customer_event, hh.account_event = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        hh.audit_log, hh.solar_credit, hh.mcs = uuid.uuid4(), uuid.uuid4(), f"MCS-{up}-{i}"
        s += [
            (
                "INSERT INTO solar_installation (property_id, esco_id, mcs_certificate, "
                "declared_net_capacity_kw, commissioning_date) VALUES ($1, $2, $3, 3.25, $4)",
                (hh.property, e.id, hh.mcs, date(2023, 6, 1)),
            ),
            (
                "INSERT INTO monthly_solar_credits (id, esco_id, property_id, month, "
                "credit_pence, billing_run_id) VALUES ($1, $2, $3, $4, $5, $6)",
                (hh.solar_credit, e.id, hh.property, START, 1234 + i, e.billing_run_ids[0]),
            ),
            (
                "INSERT INTO customer_events (id, esco_id, customer_id, event_type, actor, data) "
                "VALUES ($1, $2, $3, 'updated', 'system', '{\"changed\": {}}')",
                (hh.customer_event, e.id, hh.customer),
            ),
            (
                "INSERT INTO account_events (id, esco_id, account_id, event_type, notes, actor) "
                "VALUES ($1, $2, $3, 'opened', $4, 'system')",
                (hh.account_event, e.id, hh.account, f"{cap} welcome"),
            ),
            (
                "INSERT INTO account_audit_logs (id, esco_id, account_id, action, actor, changes)"
                " VALUES ($1, $2, $3, 'openAccount', 'system', '{\"status\": {\"new\": 1}}')",
                (hh.audit_log, e.id, hh.account),
            ),
            (
                "INSERT INTO payments (id, esco_id, customer_id, account_id, amount_pence, "
                "description, idempotency_key, provider_reference)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                (
                    hh.payment,
                    e.id,
                    hh.customer,
                    hh.account,
                    2500 + i,
                    f"{cap} top-up",
                    f"k{i}",
                    provider_reference(code, i),
                ),
            ),
        ]
    async with conn.transaction():
        for sql, args in s:
            await conn.execute(sql, *args)
        await seed_webhooks(conn, t)
    return t


async def seed_webhooks(conn: asyncpg.Connection, t: Tenant) -> None:
    """Endpoints whose URL names the tenant, a delivery of one of its events (written
    by the payments' triggers above) and an attempt of it."""
    t.webhook_event = await conn.fetchval(
        "SELECT max(id) FROM events WHERE esco_id = $1 AND type = 'payment.created'", t.id
    )
    t.deletable_webhooks = {who: uuid.uuid4() for who in PRINCIPALS}
    for endpoint, label in [
        (t.webhook, "main"),
        *((e, f"spare-{who}") for who, e in t.deletable_webhooks.items()),
    ]:
        await conn.execute(
            "INSERT INTO webhook_endpoints (id, esco_id, url, event_types, secret, created_by) "
            "VALUES ($1, $2, $3, ARRAY['payment.created'], $4, 'system')",
            endpoint,
            t.id,
            f"https://93.184.216.34/hooks/{t.code}/{label}",
            f"whsec_{t.code}",
        )
    delivery = await conn.fetchval(
        "INSERT INTO webhook_deliveries (esco_id, endpoint_id, event_id, event_type, body, "
        "status, attempts) VALUES ($1, $2, $3, 'payment.created', $4::jsonb, 'succeeded', 1) "
        "RETURNING id",
        t.id,
        t.webhook,
        t.webhook_event,
        json.dumps({"type": "payment.created", "data": {"esco": t.code}}),
    )
    await conn.execute(
        "INSERT INTO webhook_attempts (esco_id, delivery_id, endpoint_id, event_id, event_type, "
        "attempt, outcome, status_code, duration_ms, response_prefix) "
        "VALUES ($1, $2, $3, $4, 'payment.created', 1, 'succeeded', 200, 12, $5)",
        t.id,
        delivery,
        t.webhook,
        t.webhook_event,
        f"ok from {t.code}",
    )


@dataclass
class Matrix:
    client: httpx.AsyncClient
    conn: asyncpg.Connection
    a: Tenant
    b: Tenant
    headers: dict[str, dict[str, str]]
    # Bumped whenever a positive control writes to A: what a customer may not see
    # (A's other rows) is then computed again.
    generation: int = 0
    # How the operator and the customer sign in: "jwt" (the server's own tokens) or
    # "oidc" (the loopback identity provider's).
    auth: str = "jwt"
    forbidden_cache: dict[tuple[str, int], Forbidden] = field(default_factory=dict)

    async def post(self, who: str, query: str, variables: dict[str, Any] | None = None) -> Any:
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=self.headers[who]
        )
        body = response.json()
        assert response.status_code == 200, (response.status_code, body)
        return body


@pytest.fixture(scope="module", params=["jwt", "oidc"])
async def matrix(
    settings: Settings, database_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[Matrix]:
    """The world, and its principals signed in with the server's JWTs ("jwt") or with
    tokens of an identity provider ("oidc": who they are comes from the database)."""
    await empty_tables(settings, database_url)
    idp = None
    if request.param == "oidc":
        idp = Provider(keys=[make_key("RS256"), make_key("ES256")]).start()
        settings = replace(settings, oidc_issuers=(OidcIssuer(idp.issuer, AUDIENCE, idp.jwks_uri),))
    conn = await asyncpg.connect(direct_dsn(database_url))
    app = create_app(settings, database_url, today=lambda: TODAY)
    try:
        await conn.execute(
            "INSERT INTO contract_terms (id, type, version, title) VALUES ($1, 'supply', 1, $2)",
            TERMS_ID,
            TERMS_TITLE,
        )
        await conn.execute(
            "INSERT INTO benchmark_tariffs (region_code, period_start, unit_rate, standing_charge)"
            " VALUES ('south_west', $1, 0.245, 0.6), ('london', $1, 0.255, 0.62)",
            START,
        )
        issuer = JWT_RUN_ISSUER if idp is None else idp.issuer
        a = await seed_tenant(conn, "alpha", "south_west", issuer)
        b = await seed_tenant(conn, "bravo", "london", issuer)
        owner = create_engine(settings, database_url)
        try:
            async with owner.begin() as c:
                a.key = (await create_key(c, a.id, ALL_SCOPES, "alpha partner")).key
                b.key = (await create_key(c, b.id, ALL_SCOPES, "bravo partner")).key
        finally:
            await owner.dispose()
        headers = {
            "admin": bearer(settings, "admin"),
            "operator": bearer(settings, "operator", sub="op-alpha", escos=[str(a.id)]),
            "customer": bearer(
                settings, "customer", sub="cust-alpha", customer_id=str(a.households[0].customer)
            ),
            "partner": {"X-API-Key": a.key},
        }
        if idp is not None:
            me = a.households[0]
            # Two signing algorithms, and the claims a provider might add: ignored.
            operator = idp.token(a.operator_subject, lifetime=3600, role="admin")
            customer = idp.token(
                me.subject, key=idp.keys[1], lifetime=3600, email=me.email, escos=[str(b.id)]
            )
            headers["operator"] = {"Authorization": f"Bearer {operator}"}
            headers["customer"] = {"Authorization": f"Bearer {customer}"}
        async with asgi_client(app) as client:
            m = Matrix(client, conn, a, b, headers, auth=request.param)
            for tenant in (a, b):
                tenant.cursors = await harvest_cursors(m, tenant)
            yield m
    finally:
        await conn.close()
        await app.state.authenticator.oidc.close()
        await app.state.engine.dispose()
        if idp is not None:
            idp.stop()


CURSORS = """
query($esco: ID!) {
  customers(escoId: $esco, first: 1) { edges { cursor } }
  properties(escoId: $esco, first: 1) { edges { cursor } }
  meters(escoId: $esco, first: 1) { edges { cursor } }
  billingRuns(escoId: $esco, first: 1) { edges { cursor } }
  escos(first: 100) { edges { cursor node { uuid } } }
}
"""


async def harvest_cursors(m: Matrix, t: Tenant) -> dict[str, str]:
    body = await m.post("admin", CURSORS, {"esco": str(t.id)})
    data = body["data"]
    out = {k: data[k]["edges"][0]["cursor"] for k in ("customers", "properties", "meters")}
    out["billingRuns"] = data["billingRuns"]["edges"][0]["cursor"]
    out["escos"] = next(
        e["cursor"] for e in data["escos"]["edges"] if e["node"]["uuid"] == str(t.id)
    )
    return out


# --- how probes name objects -----------------------------------------------------------


class View:
    """One household of a tenant as a probe names it: global ids or bare uuids."""

    def __init__(
        self, tenant: Tenant, hh: int = 0, style: str = "gid", household_only: bool = False
    ) -> None:
        self.tenant, self.index, self.hh, self.style = tenant, hh, tenant.households[hh], style
        self.victim = tenant.households[2]
        # Probing another household of one's own ESCO: the ESCO's own objects are not
        # targets (a customer may read their ESCO).
        self.household_only = household_only

    def node_ids(self) -> list[str]:
        types = sorted(HOUSEHOLD_NODE_TYPES) if self.household_only else sorted(NODE_KEYS)
        return [node_gid(n, self.tenant, self.index) for n in types]

    def ref(self, type_name: str, key: uuid.UUID) -> str:
        return to_global_id(type_name, key) if self.style == "gid" else str(key)

    esco = property(lambda self: self.ref("Esco", self.tenant.id))
    site = property(lambda self: self.ref("Site", self.tenant.site))
    customer = property(lambda self: self.ref("Customer", self.hh.customer))
    account = property(lambda self: self.ref("Account", self.hh.account))
    property_ = property(lambda self: self.ref("Property", self.hh.property))
    meter = property(lambda self: self.ref("Meter", self.hh.meter))
    heat_circuit = property(lambda self: self.ref("Circuit", self.hh.heat_circuit))
    power_circuit = property(lambda self: self.ref("Circuit", self.hh.power_circuit))
    payment = property(lambda self: self.ref("Payment", self.hh.payment))
    spare_meter = property(lambda self: self.ref("Meter", self.tenant.spare_meter))
    free_property = property(lambda self: self.ref("Property", self.tenant.free_property))
    closing_account = property(lambda self: self.ref("Account", self.tenant.closing_account))
    victim_customer = property(lambda self: self.ref("Customer", self.victim.customer))
    victim_meter = property(lambda self: self.ref("Meter", self.victim.meter))
    victim_power_circuit = property(lambda self: self.ref("Circuit", self.victim.power_circuit))
    first_run = property(lambda self: self.ref("BillingRun", self.tenant.runs[0]))
    terms = property(lambda self: self.ref("ContractTerms", TERMS_ID))
    code = property(lambda self: self.tenant.code)
    region = property(lambda self: self.tenant.region)
    email = property(lambda self: self.hh.email)
    serial = property(lambda self: self.hh.serial)
    plot = property(lambda self: self.hh.plot)
    account_number = property(lambda self: self.hh.account_number)
    provider_reference = property(lambda self: provider_reference(self.tenant.code, self.index))
    operator_subject = property(lambda self: self.tenant.operator_subject)
    issuer = property(lambda self: self.tenant.issuer)
    webhook = property(lambda self: self.ref("WebhookEndpoint", self.tenant.webhook))
    webhook_event = property(lambda self: str(self.tenant.webhook_event))

    def deletable_webhook(self, who: str) -> str:
        return self.ref("WebhookEndpoint", self.tenant.deletable_webhooks[who])

    def invite(self, who: str) -> str:
        """The pending invite a principal would accept: its own household's for a
        customer, household 2's for the others (so positive controls do not collide)."""
        return str((self.hh if who == "customer" else self.victim).invite)

    def identity(self, who: str) -> str:
        """The identity a principal would unlink: a customer its own spare one (not the
        one it signs in with), the others household 2's."""
        if who == "customer":
            return self.ref("CustomerIdentity", self.hh.spare_identity)
        return self.ref("CustomerIdentity", self.victim.identity)

    def cursor(self, field_name: str) -> str:
        return self.tenant.cursors[field_name]


class Ghost(View):
    """The same names for objects that exist nowhere: out of scope must look exactly
    like this."""

    def __init__(self, style: str) -> None:
        self.style = style

    def node_ids(self) -> list[str]:
        return [to_global_id(n, uuid.uuid4()) for n in sorted(NODE_KEYS)]

    def ref(self, type_name: str, key: uuid.UUID) -> str:
        return super().ref(type_name, uuid.uuid4())

    esco = property(lambda self: self.ref("Esco", uuid.uuid4()))
    site = property(lambda self: self.ref("Site", uuid.uuid4()))
    customer = property(lambda self: self.ref("Customer", uuid.uuid4()))
    account = property(lambda self: self.ref("Account", uuid.uuid4()))
    property_ = property(lambda self: self.ref("Property", uuid.uuid4()))
    meter = property(lambda self: self.ref("Meter", uuid.uuid4()))
    heat_circuit = property(lambda self: self.ref("Circuit", uuid.uuid4()))
    power_circuit = property(lambda self: self.ref("Circuit", uuid.uuid4()))
    payment = property(lambda self: self.ref("Payment", uuid.uuid4()))
    spare_meter = property(lambda self: self.ref("Meter", uuid.uuid4()))
    free_property = property(lambda self: self.ref("Property", uuid.uuid4()))
    closing_account = property(lambda self: self.ref("Account", uuid.uuid4()))
    victim_customer = property(lambda self: self.ref("Customer", uuid.uuid4()))
    victim_meter = property(lambda self: self.ref("Meter", uuid.uuid4()))
    victim_power_circuit = property(lambda self: self.ref("Circuit", uuid.uuid4()))
    first_run = property(lambda self: self.ref("BillingRun", uuid.uuid4()))
    code = property(lambda self: "ghost-esco")
    region = property(lambda self: "london")
    email = property(lambda self: "ghost.000@example.com")
    serial = property(lambda self: "GHOST-M000")
    plot = property(lambda self: "GHOST-P000")
    account_number = property(lambda self: "99999999")
    provider_reference = property(lambda self: "pi_ghost_0")
    operator_subject = property(lambda self: "ghost-operator")
    issuer = property(lambda self: "https://ghost.example")
    webhook = property(lambda self: self.ref("WebhookEndpoint", uuid.uuid4()))
    webhook_event = property(lambda self: "999999999")

    def deletable_webhook(self, who: str) -> str:
        return self.ref("WebhookEndpoint", uuid.uuid4())

    def invite(self, who: str) -> str:
        return str(uuid.uuid4())

    def identity(self, who: str) -> str:
        return self.ref("CustomerIdentity", uuid.uuid4())


# --- what a principal must not see -------------------------------------------------------


def _pk_sql() -> str:
    """Every row id (uuid primary key) of one ESCO, over all tenant tables."""
    parts = ["SELECT id FROM escos WHERE id = $1"]
    for table in metadata.sorted_tables:
        if "esco_id" not in table.c or len(table.primary_key.columns) != 1:
            continue
        (pk,) = table.primary_key.columns
        if "UUID" in str(pk.type):
            parts.append(f"SELECT {pk.name} FROM {table.name} WHERE esco_id = $1")
    return " UNION ".join(parts)


PK_SQL = _pk_sql()

# A customer's own rows, as api.md lists them (independent of visibility.py), and the
# circuits of their own meter (the dashboard shows them).
OWN_SQL = """
WITH acc AS (SELECT account_id AS id FROM customer_accounts WHERE customer_id = $1),
     prop AS (SELECT property_id AS id FROM accounts WHERE id IN (SELECT id FROM acc)),
     met AS (SELECT supply_meter_id AS id FROM properties
             WHERE id IN (SELECT id FROM prop) AND supply_meter_id IS NOT NULL)
SELECT $1::uuid UNION SELECT id FROM acc UNION SELECT id FROM prop UNION SELECT id FROM met
UNION SELECT id FROM monthly_usage WHERE meter_id IN (SELECT id FROM met)
UNION SELECT id FROM monthly_costs WHERE customer_id = $1
UNION SELECT id FROM payments WHERE customer_id = $1
UNION SELECT token FROM customer_invites WHERE customer_id = $1
UNION SELECT id FROM customer_events WHERE customer_id = $1
UNION SELECT id FROM customer_identities WHERE customer_id = $1
UNION SELECT id FROM account_events WHERE account_id IN (SELECT id FROM acc)
UNION SELECT id FROM monthly_solar_credits WHERE property_id IN (SELECT id FROM prop)
UNION SELECT circuit_id FROM circuit_meter WHERE meter_id IN (SELECT id FROM met)
"""


@dataclass
class Forbidden:
    uuids: set[str]
    texts: set[str]
    account_numbers: set[str]


async def forbidden(m: Matrix, who: str) -> Forbidden:
    """What `who` must never see: B's row ids, text and account numbers; for the
    customer also every row of A that is not their own."""
    key = (who, m.generation)
    if key not in m.forbidden_cache:
        m.forbidden_cache[key] = await _forbidden(m, who)
    return m.forbidden_cache[key]


async def _forbidden(m: Matrix, who: str) -> Forbidden:
    b_ids = {str(r[0]) for r in await m.conn.fetch(PK_SQL, m.b.id)}
    b_numbers = {
        str(r[0])
        for r in await m.conn.fetch(
            "SELECT account_number FROM accounts WHERE esco_id = $1", m.b.id
        )
    }
    out = Forbidden(b_ids, {"bravo"}, b_numbers)
    if who == "customer":
        me = m.a.households[0].customer
        own = {str(r[0]) for r in await m.conn.fetch(OWN_SQL, me)}
        a_ids = {str(r[0]) for r in await m.conn.fetch(PK_SQL, m.a.id)}
        out.uuids |= a_ids - own - {str(m.a.id)}
        out.texts |= m.a.texts_of([1, 2]) | {
            m.a.site_code,
            m.a.spare_serial,
            m.a.free_plot,
            m.a.closing_plot,
        }
        out.account_numbers |= {
            str(r[0])
            for r in await m.conn.fetch(
                "SELECT account_number FROM accounts WHERE esco_id = $1 "
                "AND NOT id = ANY($2::uuid[])",
                m.a.id,
                [uuid.UUID(u) for u in own],
            )
        }
    return out


def _strings(value: Any, key: str | None = None) -> Iterator[tuple[str | None, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v, key)
    elif isinstance(value, str):
        yield key, value


def leaks(body: Any, bad: Forbidden) -> list[str]:
    """Every forbidden id, text or account number found in a response (ids also inside
    global ids and cursors)."""
    payload = {k: v for k, v in body.items() if k != "extensions"}
    pieces = [json.dumps(payload)]
    numbers: set[str] = set()
    for key, text in _strings(payload):
        opened = opened_up(text)
        if opened is not None:
            pieces.append(opened)
        if key == "accountNumber":
            numbers.add(text)
    blob = "\n".join(pieces).lower()
    found = [u for u in bad.uuids if u in blob]
    found += [t for t in bad.texts if t.lower() in blob]
    found += sorted(numbers & bad.account_numbers)
    return found


async def assert_clean(m: Matrix, who: str, body: Any, what: str) -> None:
    found = leaks(body, await forbidden(m, who))
    assert not found, f"{who} saw out-of-scope data through {what}: {found}\n{body}"


# --- snapshots -------------------------------------------------------------------------


def _snapshot_sql() -> str:
    parts = []
    for table in metadata.sorted_tables:
        name = table.name
        owner = "id" if name == "escos" else "esco_id" if "esco_id" in table.c else None
        of_b = (
            f"md5(coalesce(string_agg(t::text, ',' ORDER BY t::text) "
            f"FILTER (WHERE t.{owner} = $1), ''))"
            if owner
            else "''"
        )
        parts.append(
            f"SELECT '{name}' AS name, count(*) AS n, "
            f"md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) AS all_rows, "
            f"{of_b} AS b_rows FROM {name} t"
        )
    return " UNION ALL ".join(parts)


SNAPSHOT_SQL = _snapshot_sql()


async def snapshot(m: Matrix) -> dict[str, tuple[int, str, str]]:
    """Row count, md5 of all rows and md5 of B's rows, for every table."""
    return {
        r["name"]: (r["n"], r["all_rows"], r["b_rows"])
        for r in await m.conn.fetch(SNAPSHOT_SQL, m.b.id)
    }


def _diff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [name for name in before if before[name] != after[name]]


# --- completeness ----------------------------------------------------------------------


def test_every_root_field_has_probes() -> None:
    missing = sorted(set(QUERY_FIELDS) - {p.field for p in QUERY_PROBES})
    assert not missing, f"root fields without a probe in the tenant matrix: {missing}"
    stale = sorted({p.field for p in QUERY_PROBES} - set(QUERY_FIELDS))
    assert not stale, f"probes of root fields that no longer exist: {stale}"


def test_every_mutation_has_probes() -> None:
    missing = sorted(set(MUTATION_FIELDS) - {p.field for p in MUTATION_PROBES})
    assert not missing, f"mutations without a probe in the tenant matrix: {missing}"
    stale = sorted({p.field for p in MUTATION_PROBES} - set(MUTATION_FIELDS))
    assert not stale, f"probes of mutations that no longer exist: {stale}"
    unplanned = sorted(set(MUTATION_FIELDS) - set(POSITIVE))
    assert not unplanned, f"mutations without a positive control: {unplanned}"


def test_every_node_type_is_probed() -> None:
    probed = set(NODE_KEYS) | set(GLOBAL_KEYS)
    assert set(NODE_TYPE_NAMES) == probed, (
        f"Node types without a probe: {sorted(set(NODE_TYPE_NAMES) - probed)}; "
        f"probes of types that no longer exist: {sorted(probed - set(NODE_TYPE_NAMES))}"
    )
    assert set(HOUSEHOLD_NODE_TYPES) <= set(NODE_KEYS)
    assert set(CUSTOMER_VISIBLE_TYPES) <= set(NODE_KEYS)


# --- Node types ----------------------------------------------------------------------

# How each Node type's global id is keyed, for one household of a tenant (types/*.py).
NODE_KEYS: dict[str, Callable[[Tenant, Household], object]] = {
    "Esco": lambda t, h: t.id,
    "Site": lambda t, h: t.site,
    "BillingRun": lambda t, h: t.runs[0],
    "MicrogridTariff": lambda t, h: f"{t.id}|{START}",
    "SolarCreditTariff": lambda t, h: f"{t.id}|{START}",
    "Customer": lambda t, h: h.customer,
    "CustomerAccount": lambda t, h: f"{h.customer}|{h.account}|occupier|{START}",
    "Account": lambda t, h: h.account,
    "CustomerInvite": lambda t, h: h.invite,
    "CustomerIdentity": lambda t, h: h.identity,
    "StaffGrant": lambda t, h: t.grant,
    "CustomerEvent": lambda t, h: h.customer_event,
    "AccountEvent": lambda t, h: h.account_event,
    "AuditLogEntry": lambda t, h: h.audit_log,
    "Property": lambda t, h: h.property,
    "Meter": lambda t, h: h.meter,
    "Circuit": lambda t, h: h.heat_circuit,
    "SolarInstallation": lambda t, h: h.property,
    "MonthlyUsage": lambda t, h: h.usage[0],
    "MonthlyCosts": lambda t, h: h.costs[0],
    "MonthlySolarCredit": lambda t, h: h.solar_credit,
    "CustomerTariff": lambda t, h: f"{h.customer}|{START}",
    "Payment": lambda t, h: h.payment,
}
GLOBAL_KEYS: dict[str, object] = {
    "Region": "london",
    "BenchmarkTariff": f"london|{START}",
    "ContractTerms": TERMS_ID,
}


def node_gid(type_name: str, t: Tenant, hh: int = 0) -> str:
    return to_global_id(type_name, NODE_KEYS[type_name](t, t.households[hh]))


def node_targets(m: Matrix, who: str, type_name: str) -> list[tuple[str, str]]:
    """(what, id) pairs `who` must not resolve: B's object as a global id and as a bare
    uuid, and for the customer household 1's object of their own ESCO."""
    b = node_gid(type_name, m.b)
    key = NODE_KEYS[type_name](m.b, m.b.households[0])
    out = [("B's global id", b), ("B's bare key", str(key))]
    if who == "customer" and type_name in HOUSEHOLD_NODE_TYPES:
        out.append(("another customer's global id", node_gid(type_name, m.a, 1)))
    return out


def visible_to(who: str, type_name: str) -> bool:
    return who != "customer" or type_name in CUSTOMER_VISIBLE_TYPES


NODE_QUERY = """
query($id: ID!, $ids: [ID!]!) {
  node(id: $id) { __typename id }
  nodes(ids: $ids) { __typename id }
}
"""


@pytest.mark.parametrize("who", ["operator", "customer"])
async def test_principals_sign_in_as_the_run_says(matrix: Matrix, who: str) -> None:
    body = await matrix.post(who, "{ viewer { role issuer subject } }")
    viewer = body["data"]["viewer"]
    assert viewer["role"] == who.upper()
    if matrix.auth == "oidc":
        assert viewer["issuer"] == matrix.a.issuer
        own = matrix.a.operator_subject if who == "operator" else matrix.a.households[0].subject
        assert viewer["subject"] == own
    else:
        assert viewer["issuer"] is None


async def test_admin_resolves_every_probed_id(matrix: Matrix) -> None:
    """The ids the matrix probes with are real: an admin resolves each of them."""
    ids = [
        (n, node_gid(n, t, hh)) for t in (matrix.a, matrix.b) for n in NODE_KEYS for hh in (0, 1)
    ]
    ids += [(n, to_global_id(n, k)) for n, k in GLOBAL_KEYS.items()]
    body = await matrix.post(
        "admin",
        "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }",
        {"ids": [i for _, i in ids]},
    )
    assert "errors" not in body, body
    assert body["data"]["nodes"] == [{"__typename": n, "id": i} for n, i in ids]


def _xfail(request: pytest.FixtureRequest, key: tuple[str, str]) -> None:
    if key in KNOWN_BUGS:
        request.applymarker(pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[key]))


@pytest.mark.parametrize("type_name", sorted(NODE_KEYS))
@pytest.mark.parametrize("who", PRINCIPALS)
async def test_node_of_another_tenant_is_null(
    matrix: Matrix, who: str, type_name: str, request: pytest.FixtureRequest
) -> None:
    _xfail(request, (who, f"node:{type_name}"))
    for what, target in node_targets(matrix, who, type_name):
        body = await matrix.post(who, NODE_QUERY, {"id": target, "ids": [target]})
        assert "errors" not in body, body
        assert body["data"] == {"node": None, "nodes": [None]}, (what, body)
        await assert_clean(matrix, who, body, f"node({what} of a {type_name})")
    # Positive control: the same probe resolves A's own object (where `who` may read it).
    own = node_gid(type_name, matrix.a)
    body = await matrix.post(who, NODE_QUERY, {"id": own, "ids": [own]})
    assert "errors" not in body, body
    expected = {"__typename": type_name, "id": own} if visible_to(who, type_name) else None
    assert body["data"] == {"node": expected, "nodes": [expected]}
    await assert_clean(matrix, who, body, f"node(own {type_name})")


@pytest.mark.parametrize("who", PRINCIPALS)
async def test_global_node_types_are_shared(matrix: Matrix, who: str) -> None:
    """Reference data belongs to no ESCO: every principal resolves it."""
    for type_name, key in GLOBAL_KEYS.items():
        gid = to_global_id(type_name, key)
        body = await matrix.post(who, NODE_QUERY, {"id": gid, "ids": [gid]})
        assert body["data"]["node"] == {"__typename": type_name, "id": gid}, body
        await assert_clean(matrix, who, body, f"node({type_name})")


# --- root queries --------------------------------------------------------------------

CUSTOMER_SEL = """
  uuid email fullName status esco { uuid code }
  accounts { id role account { uuid accountNumber property { uuid plot } } }
  tariffs { id unitRate } currentTariff(on: "2024-02-01") { id }
  monthlyCosts { uuid total }
  balance(on: "2024-03-31") monthlySummaries { month total outstanding }
  payments(first: 10) { totalCount nodes { uuid amountPence account { uuid }
                        statusHistory { status previousStatus actor } } }
  invites { id token inviteUrl }
  identities { id issuer subject email }
  events(first: 10) { totalCount nodes { id eventType data } }
"""
PROPERTY_SEL = """
  uuid plot address esco { uuid } site { uuid code }
  account { uuid accountNumber events(first: 10) { nodes { id notes } }
            auditLogs(first: 10) { nodes { id changes } }
            payments(first: 10) { nodes { uuid } }
            balance statements { month openingBalance closingBalance solarCredit payments
                                 charges { total } }
            customers { id customer { uuid email } } }
  supplyMeter { uuid serial }
  solarInstallation { id mcsCertificate }
  solarCredits { uuid creditPence }
"""
METER_SEL = """
  uuid serial name esco { uuid } property { uuid plot }
  circuits { uuid name meters { uuid serial } }
  monthlyUsage { uuid powerKwh costs { uuid total customer { uuid } } }
"""
RUN_SEL = """
  uuid month esco { uuid code }
  costs(first: 10) { totalCount nodes { uuid customer { uuid email } } }
  solarCredits(first: 10) { totalCount nodes { uuid property { uuid } } }
"""


@dataclass
class Expect:
    """What `who` sees of A, from the database (api.md's rules, not the server's)."""

    who: str
    customers: set[str]
    properties: set[str]
    meters: set[str]
    runs: set[str]
    sites: set[str]
    own_customer: str
    own_property: str
    own_meter: str


async def expect(m: Matrix, who: str) -> Expect:
    async def ids(sql: str) -> set[str]:
        return {str(r[0]) for r in await m.conn.fetch(sql, m.a.id)}

    hh = m.a.households[0]
    if who == "customer":
        own = {uuid.UUID(str(r[0])) for r in await m.conn.fetch(OWN_SQL, hh.customer)}

        async def mine(table: str) -> set[str]:
            rows = await m.conn.fetch(
                f"SELECT id FROM {table} WHERE esco_id = $1 AND id = ANY($2::uuid[])",
                m.a.id,
                list(own),
            )
            return {str(r[0]) for r in rows}

        customers, properties, meters = (
            await mine("customers"),
            await mine("properties"),
            await mine("meters"),
        )
        runs: set[str] = set()
        sites: set[str] = set()
    else:
        customers = await ids("SELECT id FROM customers WHERE esco_id = $1")
        properties = await ids("SELECT id FROM properties WHERE esco_id = $1")
        meters = await ids("SELECT id FROM meters WHERE esco_id = $1")
        runs = await ids("SELECT id FROM billing_runs WHERE esco_id = $1")
        sites = await ids("SELECT id FROM sites WHERE esco_id = $1")
    return Expect(
        who,
        customers,
        properties,
        meters,
        runs,
        sites,
        str(hh.customer),
        str(hh.property),
        str(hh.meter),
    )


def _uuids(nodes: list[dict[str, Any]]) -> set[str]:
    return {n["uuid"] for n in nodes}


def _empty_connection(conn: Any) -> None:
    assert conn["totalCount"] == 0 and conn["nodes"] == [], conn


@dataclass(frozen=True)
class QueryProbe:
    field: str
    label: str
    query: str
    variables: Callable[[View], dict[str, Any]]
    # Asserted on `data` when the probe targets B (or another customer); None: only the
    # scan for out-of-scope data applies (lists that always hold the viewer's own rows).
    negative: Callable[[Any], None] | None
    # Asserted on `data` when the probe targets A's own objects.
    positive: Callable[[Any, Expect], None] | None
    # Targets one household: also probed with household 1 of A for the customer.
    household: bool = False
    # Global ids only (a bare uuid is no global id: node(id:) is null for anything).
    gid_only: bool = False


def _check_viewer(data: Any, x: Expect) -> None:
    v = data["viewer"]
    assert v["role"] == x.who.upper()
    assert [e["code"] for e in v["escos"]] == ["alpha"]
    assert _uuids(v["escos"][0]["customers"]["nodes"]) == x.customers
    if x.who == "customer":
        assert v["customer"]["uuid"] == x.own_customer
        assert [a["account"]["uuid"] for a in v["customer"]["accounts"]]
    else:
        assert v["customer"] is None


def _check_node(data: Any, x: Expect) -> None:
    node = data["node"]
    assert node["__typename"] == "Customer" and node["uuid"] == x.own_customer
    assert len(node["payments"]["nodes"]) == 1


def _check_nodes(data: Any, x: Expect) -> None:
    got = [n["__typename"] if n else None for n in data["nodes"]]
    assert got == [n if visible_to(x.who, n) else None for n in sorted(NODE_KEYS)]


def _check_esco(data: Any, x: Expect) -> None:
    esco = data["esco"]
    assert esco["code"] == "alpha" and esco["region"] == {"code": "south_west"}
    assert _uuids(esco["customers"]["nodes"]) == x.customers
    assert esco["customers"]["totalCount"] == len(x.customers)
    assert _uuids(esco["properties"]["nodes"]) == x.properties
    assert _uuids(esco["meters"]["nodes"]) == x.meters
    assert _uuids(esco["billingRuns"]["nodes"]) == x.runs
    assert _uuids(esco["sites"]) == x.sites
    assert [t["discountPercent"] for t in esco["microgridTariffs"]] == [10]
    assert [t["title"] for t in esco["contractTerms"]] == [TERMS_TITLE]
    # An ESCO's figures sum everyone's bills: staff and partners read them, customers not.
    billed = {s["month"] for s in esco["monthlySummaries"] if s["customersBilled"]}
    want = set() if x.who == "customer" else {f"2024-0{m}-01" for m in range(1, MONTHS + 1)}
    assert billed == want, esco["monthlySummaries"]
    # Staff grants: the ESCO's staff and systems see them, customers never.
    grants = [g["subject"] for g in esco["staffGrants"]]
    assert grants == ([] if x.who == "customer" else ["alpha-operator"])


def _positive_list(key: str, attr: str) -> Callable[[Any, Expect], None]:
    def check(data: Any, x: Expect) -> None:
        conn = data[key]
        want = getattr(x, attr)
        assert _uuids(conn["nodes"]) == want, (conn, want)
        assert conn["totalCount"] == len(want)

    return check


def _positive_one(key: str, attr: str) -> Callable[[Any, Expect], None]:
    def check(data: Any, x: Expect) -> None:
        assert _uuids(data[key]["nodes"]) == {getattr(x, attr)}, data

    return check


def _negative_list(key: str) -> Callable[[Any], None]:
    return lambda data: _empty_connection(data[key])


def _scan_only_subset(key: str, attr: str) -> Callable[[Any, Expect], None]:
    def check(data: Any, x: Expect) -> None:
        assert _uuids(data[key]["nodes"]) <= getattr(x, attr)

    return check


def _check_site_filter(data: Any, x: Expect) -> None:
    got = _uuids(data["properties"]["nodes"])
    if x.who == "customer":
        assert got <= {x.own_property}  # sites are not the customer's to read
    else:
        assert got == {x.own_property}


def _check_runs_of_month(data: Any, x: Expect) -> None:
    got = _uuids(data["billingRuns"]["nodes"])
    assert len(got) == (0 if x.who == "customer" else 1) and got <= x.runs, data


WEBHOOK_SEL = "id uuid url eventTypes status escoId failingSince disabledReason createdAt"
ATTEMPT_SEL = "id attempt eventId eventType webhookId outcome statusCode error responsePrefix"


def _check_webhooks(conn: Any, x: Expect) -> None:
    """Customers see no endpoint and no delivery log; staff and the partner (with
    `webhooks:write`) see A's, whose texts name alpha."""
    if x.who == "customer":
        _empty_connection(conn)
        return
    assert conn["totalCount"] >= 1 and conn["nodes"], conn
    assert "alpha" in json.dumps(conn) or "/new" in json.dumps(conn), conn


def _check_rate_limit(data: Any) -> None:
    limit = data["rateLimit"]
    assert limit["limit"] > 0 and limit["cost"] >= 1, data
    assert limit["remaining"] == limit["limit"] - limit["used"], data


def _list_query(name: str, args: str, params: str, selection: str) -> str:
    return f"query({params}) {{ {name}({args}) {{ totalCount nodes {{ {selection} }} }} }}"


QUERY_PROBES: list[QueryProbe] = [
    QueryProbe(
        "viewer",
        "viewer",
        """{ viewer { role subject
              escos { uuid code name customers(first: 50) { nodes { uuid email } } }
              customer { uuid email accounts { account { uuid accountNumber } } } } }""",
        lambda t: {},
        None,
        _check_viewer,
    ),
    QueryProbe(
        "node",
        "node(customer)",
        f"""query($id: ID!) {{ node(id: $id) {{ __typename id
              ... on Customer {{ {CUSTOMER_SEL} }} }} }}""",
        lambda t: {"id": t.customer},
        lambda data: None if data["node"] is None else pytest.fail(f"resolved: {data}"),
        _check_node,
        household=True,
        gid_only=True,
    ),
    QueryProbe(
        "nodes",
        "nodes(every type)",
        "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }",
        lambda t: {"ids": t.node_ids()},
        lambda data: None if not any(data["nodes"]) else pytest.fail(f"resolved: {data}"),
        _check_nodes,
        household=True,
        gid_only=True,
    ),
    QueryProbe(
        "auditLog",
        "auditLog(escoId)",
        """query($e: ID) { auditLog(escoId: $e, first: 50) { totalCount
              nodes { action actor entity entityId changes } } }""",
        lambda t: {"e": t.esco},
        _negative_list("auditLog"),
        # Staff only: a customer or a partner key reads nothing of the trail.
        lambda data, x: (
            None
            if x.who == "operator" or data["auditLog"] == {"totalCount": 0, "nodes": []}
            else pytest.fail(f"auditLog: {data}")
        ),
    ),
    QueryProbe(
        "meter",
        "meter(serial)",
        f"query($s: String!) {{ meter(serial: $s) {{ {METER_SEL} }} }}",
        lambda t: {"s": t.serial},
        lambda data: None if data["meter"] is None else pytest.fail(f"resolved: {data}"),
        lambda data, x: (
            None if data["meter"]["uuid"] == x.own_meter else pytest.fail(f"meter: {data}")
        ),
        household=True,
    ),
    QueryProbe(
        "account",
        "account(accountNumber)",
        """query($n: ID!) { account(accountNumber: $n) { uuid accountNumber
              property { uuid plot } customers { id customer { uuid email } }
              payments(first: 10) { nodes { uuid } }
              balance statements { month closingBalance charges { total } } } }""",
        lambda t: {"n": t.account_number},
        lambda data: None if data["account"] is None else pytest.fail(f"resolved: {data}"),
        lambda data, x: (
            None
            if data["account"]["property"]["uuid"] == x.own_property
            else pytest.fail(f"account: {data}")
        ),
        household=True,
    ),
    QueryProbe(
        "customer",
        "customer(escoId, email)",
        f"""query($e: ID!, $m: String!) {{ customer(escoId: $e, email: $m) {{
              {CUSTOMER_SEL} }} }}""",
        lambda t: {"e": t.esco, "m": t.email.upper()},
        lambda data: None if data["customer"] is None else pytest.fail(f"resolved: {data}"),
        lambda data, x: (
            None if data["customer"]["uuid"] == x.own_customer else pytest.fail(f"customer: {data}")
        ),
        household=True,
    ),
    QueryProbe(
        "payment",
        "payment(providerReference)",
        """query($r: String!) { payment(providerReference: $r) { uuid amountPence
              providerReference customer { uuid email } account { uuid } } }""",
        lambda t: {"r": t.provider_reference},
        lambda data: None if data["payment"] is None else pytest.fail(f"resolved: {data}"),
        lambda data, x: (
            None
            if data["payment"]["customer"]["uuid"] == x.own_customer
            else pytest.fail(f"payment: {data}")
        ),
        household=True,
    ),
    QueryProbe(
        "regions",
        "regions",
        "{ regions { id code name } }",
        lambda t: {},
        None,
        lambda data, x: (
            None
            if {"south_west", "london"} <= {r["code"] for r in data["regions"]}
            and len(data["regions"]) == 14
            else pytest.fail(f"regions: {data}")
        ),
    ),
    QueryProbe(
        "escos",
        "escos",
        """{ escos(first: 50) { totalCount nodes { uuid code name appUrl
              sites { uuid code } contractTerms { uuid title } } } }""",
        lambda t: {},
        None,
        lambda data, x: (
            None
            if [e["code"] for e in data["escos"]["nodes"]] == ["alpha"]
            and data["escos"]["totalCount"] == 1
            and _uuids(data["escos"]["nodes"][0]["sites"]) == x.sites
            else pytest.fail(f"escos: {data}")
        ),
    ),
    QueryProbe(
        "escos",
        "escos(after: cursor)",
        "query($c: String) { escos(first: 50, after: $c) { totalCount nodes { uuid code } } }",
        lambda t: {"c": t.cursor("escos")},
        None,
        None,
    ),
    QueryProbe(
        "esco",
        "esco(code)",
        f"""query($code: String!) {{ esco(code: $code) {{ uuid code name appUrl region {{ code }}
              sites {{ uuid code properties(first: 10) {{ nodes {{ uuid plot }} }}
                      monthlySummaries {{ month total }} }}
              contractTerms {{ uuid title }}
              microgridTariffs {{ id discountPercent }} solarCreditTariffs {{ id }}
              monthlySummaries {{ month customersBilled total paymentsReceived outstanding }}
              staffGrants {{ id issuer subject esco {{ uuid }} }}
              customers(first: 10) {{ totalCount nodes {{ {CUSTOMER_SEL} }} }}
              properties(first: 10) {{ totalCount nodes {{ {PROPERTY_SEL} }} }}
              meters(first: 10) {{ totalCount nodes {{ {METER_SEL} }} }}
              billingRuns(first: 10) {{ totalCount nodes {{ {RUN_SEL} }} }} }} }}""",
        lambda t: {"code": t.code},
        lambda data: None if data["esco"] is None else pytest.fail(f"resolved: {data}"),
        _check_esco,
    ),
    QueryProbe(
        "contractTerms",
        "contractTerms",
        "{ contractTerms { id uuid title version } }",
        lambda t: {},
        None,
        lambda data, x: (
            None
            if [c["title"] for c in data["contractTerms"]] == [TERMS_TITLE]
            else pytest.fail(f"contractTerms: {data}")
        ),
    ),
    QueryProbe(
        "customers",
        "customers(escoId)",
        _list_query("customers", "escoId: $e, first: 50", "$e: ID", CUSTOMER_SEL),
        lambda t: {"e": t.esco},
        _negative_list("customers"),
        _positive_list("customers", "customers"),
    ),
    QueryProbe(
        "customers",
        "customers(emailPrefix)",
        _list_query(
            "customers", "filter: {emailPrefix: $p}, first: 50", "$p: String", CUSTOMER_SEL
        ),
        lambda t: {"p": t.email},
        _negative_list("customers"),
        _positive_one("customers", "own_customer"),
        household=True,
    ),
    QueryProbe(
        "customers",
        "customers(after: cursor)",
        _list_query("customers", "after: $c, first: 50", "$c: String", "uuid email"),
        lambda t: {"c": t.cursor("customers")},
        None,
        _scan_only_subset("customers", "customers"),
    ),
    QueryProbe(
        "properties",
        "properties(escoId)",
        _list_query("properties", "escoId: $e, first: 50", "$e: ID", PROPERTY_SEL),
        lambda t: {"e": t.esco},
        _negative_list("properties"),
        _positive_list("properties", "properties"),
    ),
    QueryProbe(
        "properties",
        "properties(siteId)",
        _list_query("properties", "filter: {siteId: $s}, first: 50", "$s: ID", PROPERTY_SEL),
        lambda t: {"s": t.site},
        _negative_list("properties"),
        lambda data, x: _check_site_filter(data, x),
    ),
    QueryProbe(
        "properties",
        "properties(plotPrefix)",
        _list_query(
            "properties", "filter: {plotPrefix: $p}, first: 50", "$p: String", PROPERTY_SEL
        ),
        lambda t: {"p": t.plot},
        _negative_list("properties"),
        _positive_one("properties", "own_property"),
        household=True,
    ),
    QueryProbe(
        "properties",
        "properties(after: cursor)",
        _list_query("properties", "after: $c, first: 50", "$c: String", "uuid plot"),
        lambda t: {"c": t.cursor("properties")},
        None,
        _scan_only_subset("properties", "properties"),
    ),
    QueryProbe(
        "meters",
        "meters(escoId)",
        _list_query("meters", "escoId: $e, first: 50", "$e: ID", METER_SEL),
        lambda t: {"e": t.esco},
        _negative_list("meters"),
        _positive_list("meters", "meters"),
    ),
    QueryProbe(
        "meters",
        "meters(serialPrefix)",
        _list_query("meters", "filter: {serialPrefix: $p}, first: 50", "$p: String", METER_SEL),
        lambda t: {"p": t.serial},
        _negative_list("meters"),
        _positive_one("meters", "own_meter"),
        household=True,
    ),
    QueryProbe(
        "meters",
        "meters(after: cursor)",
        _list_query("meters", "after: $c, first: 50", "$c: String", "uuid serial"),
        lambda t: {"c": t.cursor("meters")},
        None,
        _scan_only_subset("meters", "meters"),
    ),
    QueryProbe(
        "benchmarkTariffs",
        "benchmarkTariffs(regionCode)",
        """query($r: String) { benchmarkTariffs(regionCode: $r) {
              id periodStart unitRate region { code } } }""",
        lambda t: {"r": t.region},
        None,
        lambda data, x: (
            None
            if [(b["unitRate"], b["region"]["code"]) for b in data["benchmarkTariffs"]]
            == [("0.24500", "south_west")]
            else pytest.fail(f"benchmarkTariffs: {data}")
        ),
    ),
    QueryProbe(
        "billingRuns",
        "billingRuns(escoId)",
        _list_query("billingRuns", "escoId: $e, first: 50", "$e: ID", RUN_SEL),
        lambda t: {"e": t.esco},
        _negative_list("billingRuns"),
        _positive_list("billingRuns", "runs"),
    ),
    QueryProbe(
        "billingRuns",
        "billingRuns(month)",
        f"""{{ billingRuns(filter: {{month: "2024-01-01"}}, first: 50) {{
              totalCount nodes {{ {RUN_SEL} }} }} }}""",
        lambda t: {},
        None,
        lambda data, x: _check_runs_of_month(data, x),
    ),
    QueryProbe(
        "billingRuns",
        "billingRuns(after: cursor)",
        _list_query("billingRuns", "after: $c, first: 50", "$c: String", "uuid month"),
        lambda t: {"c": t.cursor("billingRuns")},
        None,
        _scan_only_subset("billingRuns", "runs"),
    ),
    QueryProbe(
        "webhookEndpoints",
        "webhookEndpoints(escoId)",
        _list_query("webhookEndpoints", "escoId: $e, first: 50", "$e: ID", WEBHOOK_SEL),
        lambda t: {"e": t.esco},
        _negative_list("webhookEndpoints"),
        lambda data, x: _check_webhooks(data["webhookEndpoints"], x),
    ),
    QueryProbe(
        "webhookEndpoints",
        "webhookEndpoints",
        "{ webhookEndpoints(first: 50) { totalCount nodes { " + WEBHOOK_SEL + " } } }",
        lambda t: {},
        None,
        lambda data, x: _check_webhooks(data["webhookEndpoints"], x),
    ),
    QueryProbe(
        "webhookDeliveries",
        "webhookDeliveries(endpointId)",
        _list_query("webhookDeliveries", "endpointId: $w, first: 50", "$w: ID!", ATTEMPT_SEL),
        lambda t: {"w": t.webhook},
        _negative_list("webhookDeliveries"),
        lambda data, x: _check_webhooks(data["webhookDeliveries"], x),
    ),
    # The viewer's own budget: no tenant data, only its own counters.
    QueryProbe(
        "rateLimit",
        "rateLimit",
        "{ rateLimit { limit cost used remaining resetAt windowSeconds } }",
        lambda t: {},
        None,
        lambda data, x: _check_rate_limit(data),
    ),
]


def _query_cases() -> list[Any]:
    return [
        pytest.param(who, probe, id=f"{who}-{probe.label}")
        for probe in QUERY_PROBES
        for who in PRINCIPALS
    ]


def query_targets(m: Matrix, who: str, probe: QueryProbe) -> list[tuple[str, View]]:
    styles = ("gid",) if probe.gid_only else ("gid", "uuid")
    out = [(f"B ({style})", View(m.b, 0, style)) for style in styles]
    if who == "customer" and probe.household:
        out += [(f"household 1 of A ({style})", View(m.a, 1, style, True)) for style in styles]
    return out


@pytest.mark.parametrize(("who", "probe"), _query_cases())
async def test_root_field_shows_nothing_of_another_tenant(
    matrix: Matrix, who: str, probe: QueryProbe, request: pytest.FixtureRequest
) -> None:
    _xfail(request, (who, probe.label))
    seen: list[dict[str, Any]] = []
    for what, target in query_targets(matrix, who, probe):
        variables = probe.variables(target)
        if variables in seen:
            continue
        seen.append(variables)
        body = await matrix.post(who, probe.query, variables)
        assert "errors" not in body, (what, body)
        if probe.negative is not None:
            probe.negative(body["data"])
        await assert_clean(matrix, who, body, f"{probe.label} with {what}")
    # Positive control: the same probe on A's own objects shows them.
    body = await matrix.post(who, probe.query, probe.variables(View(matrix.a, 0, "gid")))
    assert "errors" not in body, body
    if probe.positive is not None:
        probe.positive(body["data"], await expect(matrix, who))
    await assert_clean(matrix, who, body, f"{probe.label} on A's own objects")


# --- mutations -----------------------------------------------------------------------


def _payload_selection(field_name: str) -> tuple[str, str]:
    """(input type, selection) of a mutation, from the schema: every scalar of the
    payload, `__typename id` of every object (more for objects that are no Node)."""
    mutation = GRAPHQL.mutation_type.fields[field_name]  # type: ignore[union-attr]
    arg = mutation.args["input"].type
    assert isinstance(arg, GraphQLNonNull) and isinstance(arg.of_type, GraphQLInputObjectType)
    payload = get_named_type(mutation.type)
    assert isinstance(payload, GraphQLObjectType)
    parts = []
    for name, fld in payload.fields.items():
        kind = get_named_type(fld.type)
        if name == "userErrors":
            parts.append("userErrors { field message code }")
        elif is_leaf_type(kind):
            parts.append(name)
        elif isinstance(kind, GraphQLObjectType) and any(i.name == "Node" for i in kind.interfaces):
            parts.append(f"{name} {{ __typename id }}")
        else:
            assert isinstance(kind, GraphQLObjectType)
            leaves = [n for n, x in kind.fields.items() if is_leaf_type(get_named_type(x.type))]
            parts.append(f"{name} {{ {' '.join(leaves)} }}")
    return arg.of_type.name, " ".join(parts)


def mutation_text(field_name: str) -> str:
    input_type, selection = _payload_selection(field_name)
    return (
        f"mutation Probe($input: {input_type}!) {{ {field_name}(input: $input) {{ {selection} }} }}"
    )


Input = Callable[[View, View, str], dict[str, Any]]


@dataclass(frozen=True)
class MutationProbe:
    field: str
    label: str
    # (target, own, principal) -> the mutation's input. `own` is A's household 0.
    input: Input
    # Mixes A's own objects with the target's: no positive control of its own (the
    # plain probe of the mutation is it).
    mixed: bool = False


def usage_row(**meter: str) -> dict[str, Any]:
    return {"month": "2025-02-01", "powerKwh": "1.5", "heatKwh": "2", "solarKwh": "0", **meter}


P = MutationProbe
MUTATION_PROBES: list[MutationProbe] = [
    P(
        "createEsco",
        "B's code",
        lambda t, o, w: {"code": t.code, "name": "New", "regionCode": "london"},
    ),
    P("updateEsco", "B", lambda t, o, w: {"escoId": t.esco, "name": "Renamed ESCO"}),
    P("createSite", "B", lambda t, o, w: {"escoId": t.esco, "code": uniq("s"), "name": "Site"}),
    P(
        "createContractTerms",
        "terms",
        lambda t, o, w: {"type": "SUPPLY", "title": uniq("Terms"), "version": 1},
    ),
    P(
        "allowContractTerms",
        "B",
        lambda t, o, w: {"escoId": t.esco, "contractTermsId": o.terms},
    ),
    P("createMeter", "B", lambda t, o, w: {"escoId": t.esco, "serial": uniq("NEW-SERIAL")}),
    P("updateMeter", "B", lambda t, o, w: {"meterId": t.meter, "name": "Renamed meter"}),
    P(
        "createProperty",
        "B",
        lambda t, o, w: {"escoId": t.esco, "plot": uniq("NEW-PLOT"), "siteId": t.site},
    ),
    P(
        "createProperty",
        "A's ESCO, B's site",
        lambda t, o, w: {"escoId": o.esco, "plot": uniq("NEW-PLOT"), "siteId": t.site},
        mixed=True,
    ),
    P(
        "createProperty",
        "A's ESCO, B's meter",
        lambda t, o, w: {
            "escoId": o.esco,
            "plot": uniq("NEW-PLOT"),
            "supplyMeterId": t.spare_meter,
        },
        mixed=True,
    ),
    P("updateProperty", "B", lambda t, o, w: {"propertyId": t.property_, "address": "New"}),
    P(
        "updateProperty",
        "A's property, B's site",
        lambda t, o, w: {"propertyId": o.property_, "siteId": t.site},
        mixed=True,
    ),
    P(
        "updateProperty",
        "A's property, B's meter",
        lambda t, o, w: {"propertyId": o.free_property, "supplyMeterId": t.spare_meter},
        mixed=True,
    ),
    P(
        "createCircuit",
        "B",
        lambda t, o, w: {"escoId": t.esco, "type": "SOLAR", "name": "New circuit"},
    ),
    P(
        "connectCircuit",
        "B",
        lambda t, o, w: {"circuitId": t.heat_circuit, "meterId": t.spare_meter},
    ),
    P(
        "connectCircuit",
        "A's circuit, B's meter",
        lambda t, o, w: {"circuitId": o.heat_circuit, "meterId": t.spare_meter},
        mixed=True,
    ),
    P(
        "connectCircuit",
        "B's circuit, A's meter",
        lambda t, o, w: {"circuitId": t.heat_circuit, "meterId": o.spare_meter},
        mixed=True,
    ),
    P(
        "disconnectCircuit",
        "B",
        lambda t, o, w: {"circuitId": t.victim_power_circuit, "meterId": t.victim_meter},
    ),
    P(
        "disconnectCircuit",
        "A's circuit, B's meter",
        lambda t, o, w: {"circuitId": o.power_circuit, "meterId": t.meter},
        mixed=True,
    ),
    P(
        "disconnectCircuit",
        "B's circuit, A's meter",
        lambda t, o, w: {"circuitId": t.power_circuit, "meterId": o.meter},
        mixed=True,
    ),
    P(
        "setSolarInstallation",
        "B",
        lambda t, o, w: {
            "propertyId": t.property_,
            "mcsCertificate": uniq("MCS-NEW"),
            "declaredNetCapacityKw": "4.5",
        },
    ),
    P(
        "createCustomer",
        "B",
        lambda t, o, w: {"escoId": t.esco, "email": f"{uniq('new')}@example.com"},
    ),
    P("updateCustomer", "B", lambda t, o, w: {"customerId": t.customer, "fullName": "Renamed"}),
    P(
        "setCustomerStatus",
        "B",
        lambda t, o, w: {"customerId": t.victim_customer, "status": "SUSPENDED"},
    ),
    P(
        "openAccount",
        "B",
        lambda t, o, w: {"propertyId": t.free_property, "openedOn": "2025-01-01"},
    ),
    P(
        "openAccount",
        "B's property, A's terms",
        lambda t, o, w: {
            "propertyId": t.free_property,
            "openedOn": "2025-01-01",
            "contractTermsId": o.terms,
        },
        mixed=True,
    ),
    P(
        "closeAccount",
        "B",
        lambda t, o, w: {"accountId": t.closing_account, "closedOn": "2025-03-01"},
    ),
    P(
        "updateAccount",
        "B",
        lambda t, o, w: {"accountId": t.closing_account, "openedOn": "2023-12-01"},
    ),
    P(
        "addCustomerToAccount",
        "B",
        lambda t, o, w: {
            "customerId": t.customer,
            "accountId": t.account,
            "role": "OWNER",
            "startDate": "2025-01-01",
        },
    ),
    P(
        "addCustomerToAccount",
        "A's customer, B's account",
        lambda t, o, w: {
            "customerId": o.customer,
            "accountId": t.account,
            "role": "OWNER",
            "startDate": "2025-01-01",
        },
        mixed=True,
    ),
    P(
        "addCustomerToAccount",
        "B's customer, A's account",
        lambda t, o, w: {
            "customerId": t.customer,
            "accountId": o.account,
            "role": "OWNER",
            "startDate": "2025-01-01",
        },
        mixed=True,
    ),
    P(
        "endCustomerAccount",
        "B",
        lambda t, o, w: {
            "customerId": t.victim_customer,
            "accountId": t.account,
            "role": "OWNER",
            "endDate": "2025-02-28",
        },
    ),
    P(
        "endCustomerAccount",
        "A's customer, B's account",
        lambda t, o, w: {
            "customerId": o.victim_customer,
            "accountId": t.account,
            "role": "OWNER",
            "endDate": "2025-02-28",
        },
        mixed=True,
    ),
    P(
        "endCustomerAccount",
        "B's customer, A's account",
        lambda t, o, w: {
            "customerId": t.victim_customer,
            "accountId": o.account,
            "role": "OWNER",
            "endDate": "2025-02-28",
        },
        mixed=True,
    ),
    P("inviteCustomer", "B", lambda t, o, w: {"customerId": t.customer}),
    P("acceptInvite", "B", lambda t, o, w: {"token": t.invite(w)}),
    P("unlinkIdentity", "B", lambda t, o, w: {"identityId": t.identity(w)}),
    P(
        "grantOperatorAccess",
        "B",
        lambda t, o, w: {"issuer": t.issuer, "subject": uniq("op"), "escoIds": [t.esco]},
    ),
    P(
        "revokeOperatorAccess",
        "B",
        lambda t, o, w: {"issuer": t.issuer, "subject": t.operator_subject, "escoIds": [t.esco]},
    ),
    P(
        "publishBenchmarkTariff",
        "B's region",
        lambda t, o, w: {
            "regionCode": t.region,
            "periodStart": "2025-04-01",
            "unitRate": "0.3",
            "standingCharge": "0.6",
        },
    ),
    P(
        "setMicrogridTariff",
        "B",
        lambda t, o, w: {"escoId": t.esco, "periodStart": "2025-04-01", "discountPercent": 12},
    ),
    P(
        "setCustomerDiscount",
        "B",
        lambda t, o, w: {
            "customerId": t.customer,
            "periodStart": "2025-04-01",
            "discountPercent": 7,
        },
    ),
    P(
        "setSolarCreditTariff",
        "B",
        lambda t, o, w: {
            "escoId": t.esco,
            "periodStart": "2025-04-01",
            "creditPencePerYear": "6000",
        },
    ),
    P("recordMonthlyUsage", "B", lambda t, o, w: usage_row(meterId=t.meter)),
    P("importMonthlyUsage", "B's meter id", lambda t, o, w: {"rows": [usage_row(meterId=t.meter)]}),
    P(
        "importMonthlyUsage",
        "B's meter serial",
        lambda t, o, w: {"rows": [usage_row(meterSerial=t.serial)]},
    ),
    P(
        "importMonthlyUsage",
        "B's ESCO",
        lambda t, o, w: {"escoId": t.esco, "rows": [usage_row(meterId=o.meter)]},
        mixed=True,
    ),
    P(
        "importMonthlyUsage",
        "A's ESCO, B's serial",
        lambda t, o, w: {"escoId": o.esco, "rows": [usage_row(meterSerial=t.serial)]},
        mixed=True,
    ),
    P(
        "importMonthlyUsage",
        "A's row and B's row",
        lambda t, o, w: {"rows": [usage_row(meterId=o.meter), usage_row(meterId=t.meter)]},
        mixed=True,
    ),
    P("runBilling", "B", lambda t, o, w: {"escoId": t.esco, "month": "2025-02-01"}),
    P(
        "runBilling",
        "B, in the background",
        lambda t, o, w: {"escoId": t.esco, "month": "2025-02-01", "background": True},
    ),
    P("finalizeBillingRun", "B", lambda t, o, w: {"billingRunId": t.first_run}),
    P(
        "createPayment",
        "B",
        lambda t, o, w: {
            "customerId": t.customer,
            "accountId": t.account,
            "amountPence": 1500,
            "idempotencyKey": uniq("key"),
        },
    ),
    P(
        "createPayment",
        "A's customer, B's account",
        lambda t, o, w: {
            "customerId": o.customer,
            "accountId": t.account,
            "amountPence": 1500,
            "idempotencyKey": uniq("key"),
        },
        mixed=True,
    ),
    P(
        "createPayment",
        "B's customer, A's account",
        lambda t, o, w: {
            "customerId": t.customer,
            "accountId": o.account,
            "amountPence": 1500,
            "idempotencyKey": uniq("key"),
        },
        mixed=True,
    ),
    # CREATED -> PENDING by the operator, then PENDING -> CANCELLED by the partner (both
    # moves are also valid from CREATED, when a case runs alone).
    P(
        "updatePaymentStatus",
        "B",
        lambda t, o, w: {
            "paymentId": t.payment,
            "status": "PENDING" if w == "operator" else "CANCELLED",
        },
    ),
    P(
        "createWebhookEndpoint",
        "B",
        lambda t, o, w: {
            "escoId": t.esco,
            "url": "https://93.184.216.34/hooks/new",
            "eventTypes": ["payment.created"],
        },
    ),
    P(
        "updateWebhookEndpoint",
        "B",
        lambda t, o, w: {
            "endpointId": t.webhook,
            "eventTypes": ["payment.created", "payment.status_changed"],
        },
    ),
    P("deleteWebhookEndpoint", "B", lambda t, o, w: {"endpointId": t.deletable_webhook(w)}),
    P("rotateWebhookSecret", "B", lambda t, o, w: {"endpointId": t.webhook}),
    P(
        "redeliverWebhookEvent",
        "B",
        lambda t, o, w: {"endpointId": t.webhook, "eventId": t.webhook_event},
    ),
    P(
        "redeliverWebhookEvent",
        "A's endpoint, B's event",
        lambda t, o, w: {"endpointId": o.webhook, "eventId": t.webhook_event},
        mixed=True,
    ),
]
# The first plain probe of each mutation, run on A's own objects, is its positive control.
POSITIVE: dict[str, MutationProbe] = {}
for _probe in MUTATION_PROBES:
    if not _probe.mixed:
        POSITIVE.setdefault(_probe.field, _probe)


def expected_code(who: str, field_name: str) -> str:
    return "NOT_FOUND" if field_name in MAY_USE[who] else "FORBIDDEN"


def mutation_targets(m: Matrix, who: str, style: str) -> list[tuple[str, View]]:
    out = [(f"B ({style})", View(m.b, 0, style))]
    if who == "customer":
        out.append((f"household 1 of A ({style})", View(m.a, 1, style, True)))
    return out


def _refused(payload: dict[str, Any]) -> None:
    """Nothing in the payload but the user errors (counts are 0)."""
    for name, value in payload.items():
        if name != "userErrors":
            assert value in (None, 0), (name, payload)


def _without_extensions(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "extensions"}


def _owner_key(gid: str) -> str:
    opened = opened_up(gid)
    assert opened is not None, gid
    return opened.partition(":")[2].split("|")[0]


@pytest.mark.parametrize("who", PRINCIPALS)
@pytest.mark.parametrize("field_name", MUTATION_FIELDS)
async def test_mutation_cannot_touch_another_tenant(
    matrix: Matrix, who: str, field_name: str, request: pytest.FixtureRequest
) -> None:
    _xfail(request, (who, field_name))
    m = matrix
    text = mutation_text(field_name)
    code = expected_code(who, field_name)
    own = View(m.a, 0, "gid")
    before = await snapshot(m)
    for probe in (p for p in MUTATION_PROBES if p.field == field_name):
        for style in ("gid", "uuid"):
            own_styled = View(m.a, 0, style)
            for what, target in mutation_targets(m, who, style):
                where = f"{field_name} [{probe.label}] with {what}"
                body = await m.post(who, text, {"input": probe.input(target, own_styled, who)})
                assert "errors" not in body, (where, body)
                payload = body["data"][field_name]
                codes = {e["code"] for e in payload["userErrors"]}
                assert codes == {code}, (where, payload)
                _refused(payload)
                await assert_clean(m, who, body, where)
                # Out of scope looks exactly like missing.
                ghost = await m.post(
                    who, text, {"input": probe.input(Ghost(style), own_styled, who)}
                )
                assert _without_extensions(ghost) == _without_extensions(body), (where, ghost, body)
                changed = _diff(before, await snapshot(m))
                assert not changed, f"{where} (or its ghost) changed {changed}"

    # Positive control: the same probe on A's own objects.
    probe = POSITIVE[field_name]
    body = await m.post(who, text, {"input": probe.input(own, own, who)})
    m.generation += 1
    assert "errors" not in body, body
    payload = body["data"][field_name]
    await assert_clean(m, who, body, f"{field_name} on A's own objects")
    after = await snapshot(m)
    assert [before[t][2] for t in before] == [after[t][2] for t in after], "B's rows changed"
    if field_name not in MAY_USE[who]:
        assert {e["code"] for e in payload["userErrors"]} == {"FORBIDDEN"}, payload
        _refused(payload)
        assert not _diff(before, after)
        return
    assert payload["userErrors"] == [], payload
    a_ids = {str(r[0]) for r in await m.conn.fetch(PK_SQL, m.a.id)} | {str(TERMS_ID)}
    returned = [v for k, v in payload.items() if isinstance(v, dict) and "id" in v]
    counts = [v for k, v in payload.items() if k.endswith("Count")]
    assert returned or counts, payload
    for obj in returned:
        assert _owner_key(obj["id"]) in a_ids, (obj, "is not one of A's")
    if counts:
        assert payload["importedCount"] == 1, payload
