"""Checks, before any load, that the three targets of a read scenario return the same
data: the same customers in the same order, accounts, meters, months and figures.
A comparison of throughput is only fair between answers that hold the same rows."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

Shape = list[Any]


def _d(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _usage(rows: list[dict[str, Any]], costs_of: Any) -> list[tuple[Any, ...]]:
    return [(u["month"], _d(u["powerKwh"]), _d(u["heatKwh"]), *costs_of(u)) for u in rows]


def dashboard_from_ours(data: dict[str, Any]) -> Shape:
    customers = data["esco"]["customers"]["nodes"]
    return [
        (
            c["email"],
            [
                (
                    a["role"].lower(),
                    a["account"]["accountNumber"],
                    a["account"]["property"]["plot"],
                    sorted(t["type"].lower() for t in meter["circuits"]),
                    _usage(
                        meter["monthlyUsage"],
                        lambda u: (
                            (_d(u["costs"]["total"]), _d(u["costs"]["savings"]))
                            if u["costs"]
                            else (None, None)
                        ),
                    ),
                )
                for a in c["accounts"]
                for meter in [a["account"]["property"]["supplyMeter"]]
            ],
        )
        for c in customers
    ]


def dashboard_from_floor(doc: dict[str, Any]) -> Shape:
    return [
        (
            c["email"],
            [
                (
                    a["role"],
                    a["account"]["accountNumber"],
                    a["account"]["property"]["plot"],
                    sorted(t["type"] for t in meter["circuits"]),
                    _usage(
                        meter["monthlyUsage"],
                        lambda u: (
                            (_d(u["costs"]["total"]), _d(u["costs"]["savings"]))
                            if u["costs"]
                            else (None, None)
                        ),
                    ),
                )
                for a in c["accounts"]
                for meter in [a["account"]["property"]["supplyMeter"]]
            ],
        )
        for c in doc["customers"]
    ]


def _pg_costs(u: dict[str, Any]) -> tuple[Decimal | None, Decimal | None]:
    costs = u["monthlyCostsByMonthlyUsageIdAndEscoIdList"]
    if not costs:
        return None, None
    total = Decimal(costs[0]["total"])
    return total, Decimal(costs[0]["benchmarkTotal"]) - total


def dashboard_from_postgraphile(data: dict[str, Any]) -> Shape:
    return [
        (
            c["email"],
            [
                (
                    a["role"].lower(),
                    a["accountEsco"]["accountNumber"],
                    a["accountEsco"]["propertyEsco"]["plot"],
                    sorted(
                        cm["circuitEsco"]["type"].lower()
                        for cm in meter["circuitMetersByMeterIdAndEscoIdList"]
                    ),
                    _usage(meter["monthlyUsagesByMeterIdAndEscoIdList"], _pg_costs),
                )
                for a in c["customerAccountsByCustomerIdAndEscoIdList"]
                for meter in [a["accountEsco"]["propertyEsco"]["supplyMeterEsco"]]
            ],
        )
        for c in data["escoByCode"]["customersList"]
    ]


def _app(
    email: str, tariff: dict[str, Any] | None, costs: list[dict[str, Any]], payments: list[Any]
) -> Shape:
    return [
        email,
        tariff and (tariff["periodStart"], _d(tariff["unitRate"]), _d(tariff["standingCharge"])),
        [(c["month"], _d(c["total"]), _d(c["savings"])) for c in costs],
        [(p["amountPence"], p["status"].lower(), p["description"]) for p in payments],
    ]


def app_from_ours(data: dict[str, Any]) -> Shape:
    c = data["node"]
    return _app(c["email"], c["currentTariff"], c["monthlyCosts"], c["payments"]["nodes"])


def app_from_floor(doc: dict[str, Any]) -> Shape:
    return _app(doc["email"], doc["currentTariff"], doc["monthlyCosts"], doc["payments"])


def app_from_postgraphile(data: dict[str, Any]) -> Shape:
    c = data["customer"]
    tariffs = c["customerTariffsByCustomerIdAndEscoIdList"]
    costs = [
        {**m, "savings": str(Decimal(m["benchmarkTotal"]) - Decimal(m["total"]))}
        for m in c["monthlyCostsByCustomerIdAndEscoIdList"]
    ]
    return _app(
        c["email"], tariffs[0] if tariffs else None, costs, c["paymentsByCustomerIdAndEscoIdList"]
    )


def rows_in(shape: Shape) -> int:
    """Usage months in a dashboard (to print what was compared)."""
    return sum(len(account[4]) for _, accounts in shape for account in accounts)
