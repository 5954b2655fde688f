"""The rules of docs/rules.md, unit by unit, on their worked examples and edges."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal as D

import pytest

from flows_graphql.db.models.enums import PaymentStatus as S
from flows_graphql.rules import billing, generation, payments, solar
from flows_graphql.rules.tariffs import Rates, customer_rates, in_force, microgrid_rates, trunc5

SOUTH_EAST_2025 = Rates(D("0.2486"), D("0.6097"))


def test_microgrid_tariff_is_exact():
    assert microgrid_rates(SOUTH_EAST_2025, 20) == Rates(D("0.19888"), D("0.48776"))


@pytest.mark.parametrize(
    ("discount", "unit", "standing"),
    [
        (15, "0.21131", "0.51824"),  # 0.518245 truncated; rounding would give 0.51825
        (0, "0.24860", "0.60970"),
        (100, "0.00000", "0.00000"),
    ],
)
def test_customer_tariff_truncates_to_five_places(discount, unit, standing):
    rates = customer_rates(SOUTH_EAST_2025, discount)
    assert (str(rates.unit_rate), str(rates.standing_charge)) == (unit, standing)


def test_trunc5_goes_toward_zero_not_to_nearest():
    assert trunc5(D("0.518245")) == D("0.51824")
    assert trunc5(D("0.999999")) == D("0.99999")
    assert trunc5(D("-0.000019")) == D("-0.00001")


def test_discount_outside_0_to_100_is_refused():
    with pytest.raises(ValueError):
        customer_rates(SOUTH_EAST_2025, 101)


def test_in_force_is_greatest_period_start_not_after_the_day():
    class T:
        def __init__(self, start: date) -> None:
            self.period_start = start

    rows = [T(date(2025, 1, 1)), T(date(2024, 10, 1)), T(date(2025, 4, 1))]
    assert in_force(rows, date(2025, 3, 31)).period_start == date(2025, 1, 1)
    assert in_force(rows, date(2025, 4, 1)).period_start == date(2025, 4, 1)
    assert in_force(rows, date(2024, 9, 30)) is None


# --- quarterly generation -------------------------------------------------------

P = date(2025, 4, 1)


def test_carry_forward_window_is_three_months_before_p():
    assert generation.carry_forward_window(P) == (date(2025, 1, 1), date(2025, 4, 1))
    assert generation.months_before(date(2025, 5, 31), 3) == date(2025, 2, 28)


def test_microgrid_settings_carry_forward_inside_the_window_else_defaults():
    mine = generation.MicrogridSettings(20, D("20.00"), D("5.00"), D("0.50"))
    inside = generation.PastMicrogridTariff(date(2025, 1, 1), mine)
    outside = generation.PastMicrogridTariff(date(2024, 12, 31), mine)
    assert generation.new_microgrid_settings(P, [inside]) == mine
    assert generation.new_microgrid_settings(P, [outside]) == generation.DEFAULT_SETTINGS
    assert (
        generation.MicrogridSettings(25, D("15.00"), D("10.00"), D("0.25"))
        == generation.DEFAULT_SETTINGS
    )


def test_customer_discounts_carry_forward_example_of_rules_md():
    x, y, z = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    past = [
        generation.PastCustomerTariff(x, date(2025, 1, 1), 15),
        generation.PastCustomerTariff(y, date(2024, 7, 1), 40),  # outside the window
    ]
    discounts = generation.new_customer_discounts(
        P, eligible=[x, y, z], have_tariff_from_p={z}, past=past, microgrid_discount=20
    )
    # X keeps 15; Y gets the microgrid discount; Z already has a tariff from P.
    assert discounts == {x: 15, y: 20}


def test_latest_tariff_in_window_wins():
    x = uuid.uuid4()
    past = [
        generation.PastCustomerTariff(x, date(2025, 1, 1), 15),
        generation.PastCustomerTariff(x, date(2025, 2, 1), 30),
    ]
    assert generation.new_customer_discounts(P, [x], set(), past, 20) == {x: 30}


# --- monthly billing ------------------------------------------------------------

MARCH = date(2025, 3, 1)
USAGE = billing.Usage(D("200"), D("80"))


def test_costs_example_of_rules_md():
    days = billing.billable_days(MARCH, today=date(2025, 4, 15))
    assert days == 31
    own = billing.costs(Rates(D("0.21131"), D("0.51824")), USAGE, days)
    assert own == billing.Costs(D("42.26200"), D("16.90480"), D("16.06544"), D("75.23224"))
    mg = billing.costs(Rates(D("0.19888"), D("0.48776")), USAGE, days)
    assert (mg.power, mg.heat, mg.standing_charge, mg.total) == (
        D("39.776"),
        D("15.9104"),
        D("15.12056"),
        D("70.80696"),
    )
    bm = billing.costs(Rates(D("0.2486"), D("0.6097")), USAGE, days)
    assert bm.total == D("88.5087")


def test_current_month_bills_month_to_date_including_today():
    assert billing.billable_days(MARCH, today=date(2025, 3, 10)) == 10
    assert billing.billable_days(date(2024, 2, 1), today=date(2025, 3, 10)) == 29


def test_future_month_cannot_be_billed():
    assert billing.is_future_month(date(2025, 4, 1), today=date(2025, 3, 31))
    with pytest.raises(ValueError):
        billing.billable_days(date(2025, 4, 1), today=date(2025, 3, 31))


def test_missing_comparison_tariff_counts_zero():
    assert billing.costs(None, USAGE, 31) == billing.Costs(D(0), D(0), D(0), D(0))


def test_skip_reasons():
    assert billing.skip_reason(False, False) is billing.SkipReason.NO_OCCUPIER
    assert billing.skip_reason(True, False) is billing.SkipReason.NO_TARIFF
    assert billing.skip_reason(True, True) is None


# --- solar credits --------------------------------------------------------------


def test_solar_rate_per_day_uses_leap_years():
    assert solar.credit_pence_per_day(D("5475"), date(2025, 1, 1)) == D("15")
    assert solar.credit_pence_per_day(D("5490"), date(2024, 1, 1)) == D("15")


@pytest.mark.parametrize(
    ("capacity", "month", "per_year", "start", "pence"),
    [
        ("4.2", date(2025, 3, 1), "5475", date(2025, 1, 1), 1953),
        ("4.2", date(2024, 2, 1), "5490", date(2024, 1, 1), 1827),
        ("2.37", date(2025, 3, 1), "5475", date(2025, 1, 1), 1102),  # trunc(1102.05)
        ("0", date(2025, 3, 1), "5475", date(2025, 1, 1), 0),
    ],
)
def test_monthly_solar_credit_examples(capacity, month, per_year, start, pence):
    assert solar.monthly_credit_pence(D(capacity), month, D(per_year), start) == pence


def test_no_solar_tariff_gives_zero():
    assert solar.monthly_credit_pence(D("4.2"), MARCH, None, None) == 0


def test_solar_credit_is_exact_where_the_daily_rate_is_not():
    # 5110 / 366 per day has no finite decimal; 3 kW x 31 days x 5110/366 = 1298.44…
    assert solar.monthly_credit_pence(D("3"), MARCH, D("5110"), date(2024, 1, 1)) == 1298


# --- payments -------------------------------------------------------------------


def test_payment_bounds():
    assert not payments.amount_in_bounds(0)
    assert payments.amount_in_bounds(1)
    assert payments.amount_in_bounds(50_000)
    assert not payments.amount_in_bounds(50_001)


def test_payment_status_moves_only_forward():
    allowed = {(a, b) for a, targets in payments.TRANSITIONS.items() for b in targets}
    assert allowed == {
        (S.CREATED, S.PENDING),
        (S.CREATED, S.CANCELLED),
        (S.PENDING, S.PROCESSING),
        (S.PENDING, S.FAILED),
        (S.PENDING, S.CANCELLED),
        (S.PROCESSING, S.SUCCEEDED),
        (S.PROCESSING, S.FAILED),
    }
    assert all(payments.is_final(s) for s in (S.SUCCEEDED, S.FAILED, S.CANCELLED))
    assert not payments.can_move(S.SUCCEEDED, S.PENDING)
