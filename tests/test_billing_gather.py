"""The gathering statement of a billing run (services/billing.py BILLABLE_SQL) on the
cases where "who is billed, at which tariff" is decided, each checked against the
rules' answer computed here from the same rows: the occupier on day 1 of the month,
the tariff in force on it (`rules.tariffs.in_force`), the costs (`rules.billing.costs`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal as D
from typing import Any

from flows_graphql.rules import billing as rules
from flows_graphql.rules.tariffs import Rates, in_force
from tests.support.api import gql
from tests.support.billing import RUN, Community

MONTH = date(2025, 3, 1)
OPENED = date(2024, 6, 1)
USAGE = rules.Usage(D("200"), D("80"))  # Community.home's default power and heat


@dataclass(frozen=True)
class Tariff:
    period_start: date
    unit_rate: D
    standing_charge: D


@dataclass(frozen=True)
class Link:
    email: str
    start: date
    end: date | None


@dataclass
class Home:
    """One metered home of the scenario: its account's occupier links (None: no
    occupier ever) and each occupier's tariffs."""

    n: int
    links: list[Link] | None
    tariffs: dict[str, list[Tariff]] = field(default_factory=dict)
    # An earlier account of the property, closed during the month, whose occupier
    # (with a tariff of their own) must not be billed: the latest account open on day 1 is.
    replaced_account: bool = False

    def occupier_on(self, day: date) -> str | None:
        for link in self.links or []:
            if link.start <= day and (link.end is None or link.end >= day):
                return link.email
        return None


def _t(start: str, unit: str, standing: str) -> Tariff:
    return Tariff(date.fromisoformat(start), D(unit), D(standing))


def scenario() -> list[Home]:
    def one(n: int, *tariffs: Tariff, start: date = OPENED, end: date | None = None) -> Home:
        email = f"h{n}@example.org"
        return Home(n, [Link(email, start, end)], {email: list(tariffs)})

    moving_out = Home(  # the first occupier leaves on the 14th, the next comes on the 15th
        2,
        [
            Link("h2@example.org", OPENED, date(2025, 3, 14)),
            Link("h2b@example.org", date(2025, 3, 15), None),
        ],
        {
            "h2@example.org": [_t("2025-01-01", "0.21000", "0.50000")],
            "h2b@example.org": [_t("2025-01-01", "0.29000", "0.70000")],
        },
    )
    moved_in = Home(
        3,
        [
            Link("h3@example.org", OPENED, date(2025, 2, 28)),
            Link("h3b@example.org", MONTH, None),
        ],
        {
            "h3@example.org": [_t("2025-01-01", "0.21000", "0.50000")],
            "h3b@example.org": [_t("2024-12-01", "0.23000", "0.55000")],
        },
    )
    return [
        one(1, _t("2025-01-01", "0.21131", "0.51824")),
        moving_out,  # occupancy changes mid-month: the occupier of the 1st is billed
        moved_in,  # the new occupier's link starts on the 1st
        # two tariffs in the month: the one starting on the 1st is in force, not the 15th's
        one(
            4,
            _t("2024-10-01", "0.20000", "0.40000"),
            _t("2025-03-01", "0.22000", "0.45000"),
            _t("2025-03-15", "0.99000", "0.99000"),
        ),
        # a tariff starting after the month changes nothing
        one(5, _t("2025-01-01", "0.24000", "0.60000"), _t("2025-04-01", "0.90000", "0.90000")),
        one(6, _t("2025-04-01", "0.25000", "0.61000")),  # only after the month: NO_TARIFF
        Home(7, None),  # no occupier: NO_OCCUPIER
        one(8, _t("2025-02-01", "0.26000", "0.62000"), start=date(2025, 3, 2)),  # from the 2nd
        Home(
            9,
            [Link("h9@example.org", MONTH, None)],
            {"h9@example.org": [_t("2025-01-01", "0.27000", "0.63000")]},
            replaced_account=True,
        ),
    ]


async def build(raw: Any, community: Community, homes: list[Home]) -> dict[str, uuid.UUID]:
    """The scenario's rows; returns each occupier's id by email."""
    ids: dict[str, uuid.UUID] = {}
    for home in homes:
        await community.home(home.n, occupied=False)
        prop = community.properties[-1]
        account = await raw.fetchval("SELECT id FROM accounts WHERE property_id = $1", prop)
        if home.replaced_account:
            # The account open so far closes on the 10th; the new one opened on the 1st.
            await raw.execute(
                "UPDATE accounts SET status = 'closed', closed_on = '2025-03-10' WHERE id = $1",
                account,
            )
            former = await _customer(raw, community, f"former{home.n}@example.org")
            await _link(raw, community, former, account, OPENED, None)
            await _tariff(raw, community, former, _t("2025-01-01", "0.11000", "0.11000"))
            account = await raw.fetchval(
                "INSERT INTO accounts (esco_id, property_id, opened_on) VALUES ($1, $2, $3)"
                " RETURNING id",
                community.esco_id,
                prop,
                MONTH,
            )
        for link in home.links or []:
            customer = ids.get(link.email) or await _customer(raw, community, link.email)
            ids[link.email] = customer
            await _link(raw, community, customer, account, link.start, link.end)
        for email, tariffs in home.tariffs.items():
            for tariff in tariffs:
                await _tariff(raw, community, ids[email], tariff)
    return ids


async def _customer(raw: Any, community: Community, email: str) -> uuid.UUID:
    return await raw.fetchval(
        "INSERT INTO customers (esco_id, email) VALUES ($1, $2) RETURNING id",
        community.esco_id,
        email,
    )


async def _link(
    raw: Any,
    community: Community,
    customer: uuid.UUID,
    account: uuid.UUID,
    start: date,
    end: date | None,
) -> None:
    await raw.execute(
        "INSERT INTO customer_accounts (customer_id, account_id, role, start_date, end_date,"
        " esco_id) VALUES ($1, $2, 'occupier', $3, $4, $5)",
        customer,
        account,
        start,
        end,
        community.esco_id,
    )


async def _tariff(raw: Any, community: Community, customer: uuid.UUID, tariff: Tariff) -> None:
    await raw.execute(
        "INSERT INTO customer_tariffs (customer_id, period_start, esco_id, discount_percent,"
        " unit_rate, standing_charge) VALUES ($1, $2, $3, 10, $4, $5)",
        customer,
        tariff.period_start,
        community.esco_id,
        tariff.unit_rate,
        tariff.standing_charge,
    )


def expected(community: Community, homes: list[Home]) -> tuple[dict[str, Any], list[Any]]:
    """The rules' answer: each billed occupier's costs, and the skipped meters."""
    days = rules.days_in_month(MONTH)
    billed: dict[str, Any] = {}
    skipped = []
    for home in homes:
        serial = f"M-{community.esco_id.hex[:6]}-{home.n:03d}"
        email = home.occupier_on(MONTH)
        tariff = in_force(home.tariffs.get(email, []), MONTH) if email else None
        reason = rules.skip_reason(email is not None, tariff is not None)
        if reason is not None:
            skipped.append((reason.value, serial))
            continue
        assert email is not None and tariff is not None
        billed[email] = rules.costs(Rates(tariff.unit_rate, tariff.standing_charge), USAGE, days)
    return billed, sorted(skipped)


async def test_the_month_is_gathered_as_the_rules_say(april, raw):
    community = await Community(raw).create("gather")
    homes = scenario()
    await build(raw, community, homes)
    # Another ESCO with homes, occupiers and tariffs of the same month: none of its
    # rows may be billed (or skipped) by the first ESCO's run.
    other = await Community(raw).create("other")
    for n in range(1, 4):
        _, customer = await other.home(n)
        await _tariff(raw, other, customer, _t("2025-01-01", "0.30000", "0.70000"))
    want, want_skipped = expected(community, homes)

    body = await gql(
        april, RUN, {"input": {"escoId": str(community.esco_id), "month": MONTH.isoformat()}}
    )
    run = body["data"]["runBilling"]["billingRun"]
    assert body["data"]["runBilling"]["userErrors"] == []
    got = {
        cost["customer"]["email"]: rules.Costs(
            D(cost["power"]), D(cost["heat"]), D(cost["standingCharge"]), D(cost["total"])
        )
        for cost in run["costs"]["nodes"]
    }
    assert got == want
    assert sorted((s["reason"], s["meter"]["serial"]) for s in run["skipped"]) == want_skipped
    # Pinned, so that a wrong reference cannot agree with a wrong statement.
    assert sorted(want) == [
        "h1@example.org",
        "h2@example.org",
        "h3b@example.org",
        "h4@example.org",
        "h5@example.org",
        "h9@example.org",
    ]
    assert [reason for reason, _ in want_skipped] == ["NO_OCCUPIER", "NO_OCCUPIER", "NO_TARIFF"]
    assert want["h4@example.org"].power == D("0.22000") * 200
    assert run["customersBilled"] == 6
    assert D(run["total"]) == sum((c.total for c in want.values()), D(0))
    assert (
        await raw.fetchval("SELECT count(*) FROM monthly_costs WHERE esco_id = $1", other.esco_id)
        == 0
    )
