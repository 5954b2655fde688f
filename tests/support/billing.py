"""A community to bill: an ESCO with metered, occupied homes (raw SQL), the tariffs of
rules.md's worked example (through the API) and the run of a month."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal as D
from typing import Any

import httpx

from tests.support.api import gql

PUBLISH = """
mutation P($input: PublishBenchmarkTariffInput!) {
  publishBenchmarkTariff(input: $input) {
    benchmarkTariff { periodStart unitRate standingCharge region { code } }
    generation { microgridTariffsCreated microgridTariffsRecomputed
                 customerTariffsCreated customerTariffsRecomputed }
    userErrors { field code message }
  }
}"""
SET_MICROGRID = """
mutation M($input: SetMicrogridTariffInput!) {
  setMicrogridTariff(input: $input) {
    microgridTariff { discountPercent unitRate standingCharge emergencyCredit }
    userErrors { field code }
  }
}"""
SET_DISCOUNT = """
mutation C($input: SetCustomerDiscountInput!) {
  setCustomerDiscount(input: $input) {
    customerTariff { discountPercent unitRate standingCharge }
    userErrors { field code }
  }
}"""
SET_SOLAR = """
mutation S($input: SetSolarCreditTariffInput!) {
  setSolarCreditTariff(input: $input) {
    solarCreditTariff { creditPencePerYear creditPencePerDay }
    userErrors { field code }
  }
}"""
RUN = """
mutation R($input: RunBillingInput!) {
  runBilling(input: $input) {
    billingRun {
      id uuid month status customersBilled total
      skipped { reason meter { serial } }
      costs(first: 100) { totalCount nodes {
        power heat standingCharge total savings
        microgrid { power heat standingCharge total }
        benchmark { power heat standingCharge total }
        customer { email } usage { solarKwh }
      } }
      solarCredits(first: 100) { nodes { creditPence property { plot } } }
    }
    userErrors { field code message }
  }
}"""


class Community:
    """An ESCO in south_east with metered, occupied properties (raw SQL set-up)."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.esco_id = uuid.uuid4()
        self.customers: list[uuid.UUID] = []
        self.meters: list[uuid.UUID] = []
        self.properties: list[uuid.UUID] = []

    async def create(self, code: str = "sunny") -> Community:
        await self.raw.execute(
            "INSERT INTO escos (id, code, name, region_code) VALUES ($1, $2, $3, 'south_east')",
            self.esco_id,
            code,
            code.title(),
        )
        return self

    async def home(
        self,
        n: int,
        *,
        occupied: bool = True,
        usage: tuple[str, str, str] = ("200", "80", "35"),
        solar_kw: str | None = None,
        month: date = date(2025, 3, 1),
    ) -> tuple[uuid.UUID, uuid.UUID | None]:
        meter, prop, account = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        await self.raw.execute(
            "INSERT INTO meters (id, esco_id, serial) VALUES ($1, $2, $3)",
            meter,
            self.esco_id,
            f"M-{self.esco_id.hex[:6]}-{n:03d}",
        )
        await self.raw.execute(
            "INSERT INTO properties (id, esco_id, plot, supply_meter_id) VALUES ($1,$2,$3,$4)",
            prop,
            self.esco_id,
            f"Plot {n:03d}",
            meter,
        )
        await self.raw.execute(
            "INSERT INTO accounts (id, esco_id, property_id, opened_on) VALUES ($1,$2,$3,$4)",
            account,
            self.esco_id,
            prop,
            date(2024, 6, 1),
        )
        customer = None
        if occupied:
            customer = uuid.uuid4()
            await self.raw.execute(
                "INSERT INTO customers (id, esco_id, email) VALUES ($1, $2, $3)",
                customer,
                self.esco_id,
                f"home{n:03d}@example.org",
            )
            await self.raw.execute(
                "INSERT INTO customer_accounts (customer_id, account_id, role, start_date, esco_id)"
                " VALUES ($1, $2, 'occupier', $3, $4)",
                customer,
                account,
                date(2024, 6, 1),
                self.esco_id,
            )
            self.customers.append(customer)
        power, heat, solar = usage
        await self.raw.execute(
            "INSERT INTO monthly_usage (esco_id, meter_id, month, power_kwh, heat_kwh, solar_kwh)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            self.esco_id,
            meter,
            month,
            D(power),
            D(heat),
            D(solar),
        )
        if solar_kw is not None:
            await self.raw.execute(
                "INSERT INTO solar_installation (property_id, esco_id, mcs_certificate,"
                " declared_net_capacity_kw) VALUES ($1, $2, $3, $4)",
                prop,
                self.esco_id,
                f"MCS-{prop.hex[:10]}",
                D(solar_kw),
            )
        self.meters.append(meter)
        self.properties.append(prop)
        return meter, customer


async def publish(
    client: httpx.AsyncClient,
    unit: str = "0.2486",
    standing: str = "0.6097",
    start: str = "2025-01-01",
) -> Any:
    body = await gql(
        client,
        PUBLISH,
        {
            "input": {
                "regionCode": "south_east",
                "periodStart": start,
                "unitRate": unit,
                "standingCharge": standing,
            }
        },
    )
    return body["data"]["publishBenchmarkTariff"]


async def priced_example(client: httpx.AsyncClient, raw: Any) -> Community:
    """rules.md's example: benchmark 0.2486/0.6097, microgrid 20 %, customer 15 %."""
    community = await Community(raw).create()
    await community.home(1, solar_kw="4.2")
    await publish(client)
    esco = str(community.esco_id)
    body = await gql(
        client,
        SET_MICROGRID,
        {"input": {"escoId": esco, "periodStart": "2025-01-01", "discountPercent": 20}},
    )
    tariff = body["data"]["setMicrogridTariff"]["microgridTariff"]
    assert tariff["discountPercent"] == 20
    # Exact products (no truncation): 0.8 x 0.24860 = 0.198880.
    assert (D(tariff["unitRate"]), D(tariff["standingCharge"])) == (D("0.19888"), D("0.48776"))
    assert tariff["emergencyCredit"] == "15.00"
    body = await gql(
        client,
        SET_DISCOUNT,
        {
            "input": {
                "customerId": str(community.customers[0]),
                "periodStart": "2025-01-01",
                "discountPercent": 15,
            }
        },
    )
    assert body["data"]["setCustomerDiscount"]["customerTariff"] == {
        "discountPercent": 15,
        "unitRate": "0.21131",
        "standingCharge": "0.51824",
    }
    return community


async def run_billing(
    client: httpx.AsyncClient, community: Community, month: str = "2025-03-01"
) -> Any:
    body = await gql(client, RUN, {"input": {"escoId": str(community.esco_id), "month": month}})
    return body["data"]["runBilling"]


async def homes(client: httpx.AsyncClient, raw: Any, n: int) -> Community:
    """rules.md's priced example and n-1 more homes with the same customer tariff."""
    community = await priced_example(client, raw)
    for i in range(2, n + 1):
        _, customer = await community.home(i)
        await raw.execute(
            "INSERT INTO customer_tariffs (customer_id, period_start, esco_id, discount_percent,"
            " unit_rate, standing_charge) VALUES ($1, '2025-01-01', $2, 15, 0.21131, 0.51824)",
            customer,
            community.esco_id,
        )
    return community


async def set_solar_credit(
    client: httpx.AsyncClient, community: Community, pence_per_year: str
) -> Any:
    """The community's solar credit rate from 2025-01-01; returns the payload."""
    body = await gql(
        client,
        SET_SOLAR,
        {
            "input": {
                "escoId": str(community.esco_id),
                "periodStart": "2025-01-01",
                "creditPencePerYear": pence_per_year,
            }
        },
    )
    return body["data"]["setSolarCreditTariff"]
