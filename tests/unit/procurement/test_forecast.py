"""Demand forecasting (Croston/SBA), lead-time learning, safety stock and reorder point, service measures."""

import math
from datetime import date, datetime, timedelta

import pytest

from services.procurement.forecast import (
    MAX_UNITS,
    DemandEstimate,
    LeadTimeEstimate,
    backorder_quantity,
    backorder_rate,
    fill_rate,
    recommend,
    reorder_point,
    safety_stock,
    service_level_z,
)

DAY0 = date(2025, 3, 1)


def day(n: int) -> date:
    """Day n of a test series; day 1 is DAY0."""
    return DAY0 + timedelta(days=n - 1)


def fold(estimate: DemandEstimate, demand: dict[int, int]) -> DemandEstimate:
    for n, units in sorted(demand.items()):
        estimate = estimate.observe(day(n), units)
    return estimate


# --- Croston / SBA ----------------------------------------------------------------------------------


def test_croston_sba_by_hand() -> None:
    """Observed from day 1, alpha 0.5 (SBA factor 1 - 0.5/2 = 0.75); demand 6, 3, 3, 9 on days 1, 4, 5, 10.

    day 1: z = 6, p = 1 (days 1..1)                        rate = 0.75 * 6 / 1       = 4.5
    day 4: q = 3, z = 6 + .5(3 - 6) = 4.5,   p = 1 + .5(3 - 1) = 2      rate = 0.75 * 4.5 / 2   = 1.6875
    day 5: q = 1, z = 4.5 + .5(3 - 4.5) = 3.75, p = 2 + .5(1 - 2) = 1.5 rate = 0.75 * 3.75 / 1.5 = 1.875
    day 10: q = 5, z = 3.75 + .5(9 - 3.75) = 6.375, p = 1.5 + .5(5 - 1.5) = 3.25
                                                            rate = 0.75 * 6.375 / 3.25 = 1.47115...
    """
    estimate = DemandEstimate(started=day(1), alpha=0.5)
    expected = [(1, 6, 6.0, 1.0, 4.5), (4, 3, 4.5, 2.0, 1.6875), (5, 3, 3.75, 1.5, 1.875)]
    expected.append((10, 9, 6.375, 3.25, 0.75 * 6.375 / 3.25))
    for n, units, size, interval, rate in expected:
        estimate = estimate.observe(day(n), units)
        assert (estimate.size, estimate.interval) == (size, interval)
        assert estimate.rate_per_day == pytest.approx(rate)
    assert estimate.rate_per_day == pytest.approx(1.4711538)
    assert (estimate.days_with_demand, estimate.total_units, estimate.last_day) == (4, 21, day(10))


def test_the_first_interval_counts_the_days_since_observation_began() -> None:
    """Observed from day 1, first demand on day 4: p = 4 (days 1..4), rate = (1 - 0.05) * 8 / 4 = 1.9."""
    estimate = DemandEstimate(started=day(1)).observe(day(4), 8)
    assert estimate.interval == 4
    assert estimate.rate_per_day == pytest.approx(1.9)


def test_variability_and_trend_by_hand() -> None:
    """alpha = b = 0.5, fast 0.5, slow 0.25; observed from day 1; demand 4 on day 1, then nothing.

    day 1: forecast before = 0, error 4: raw mse = 0 + .5(16 - 0) = 8; weight 1 - .5^1 = .5 -> mse 16,
           sigma 4. fast raw = .5 * 4 = 2 -> 2 / .5 = 4; slow raw = .25 * 4 = 1 -> 1 / .25 = 4: no rise.
           rate = .75 * 4 / 1 = 3.
    day 2 (zero, k = 1): raw mse = .5 * 8 + .5 * 3^2 = 8.5; weight 1 - .25 = .75 -> 11.333, sigma 3.3665.
           fast raw = 2 * .5 = 1 -> 1 / .75 = 1.333; slow raw = .75 -> .75 / (1 - .5625) = 1.714.
    """
    estimate = DemandEstimate(started=day(1), alpha=0.5, error_alpha=0.5, fast_alpha=0.5, slow_alpha=0.25)
    estimate = estimate.observe(day(1), 4)
    assert estimate.rate_per_day == 3
    assert estimate.sigma_per_day(day(1)) == pytest.approx(4)
    assert (estimate.fast_rate(day(1)), estimate.slow_rate(day(1))) == (pytest.approx(4), pytest.approx(4))
    assert not estimate.rising(day(1), min_rate=0)
    assert estimate.sigma_per_day(day(2)) == pytest.approx(math.sqrt(8.5 / 0.75))
    assert estimate.fast_rate(day(2)) == pytest.approx(1 / 0.75)
    assert estimate.slow_rate(day(2)) == pytest.approx(0.75 / 0.4375)
    assert estimate.squared_error == 8  # reporting for a later day changed nothing


def reference_loop(estimate: DemandEstimate, demand: dict[int, int], through: int) -> tuple[float, ...]:
    """The recursions of the docstring applied one day at a time, days 1..through, zeros included:
    (rate, raw mse, raw fast, raw slow, sigma, fast rate, slow rate) at the end of `through`."""
    a, b, af, aslow = estimate.alpha, estimate.error_alpha, estimate.fast_alpha, estimate.slow_alpha
    size = interval = None
    mse = fast = slow = 0.0
    since_last = 0
    for n in range(1, through + 1):
        units = demand.get(n, 0)
        since_last += 1
        forecast = 0.0 if size is None else (1 - a / 2) * size / interval
        mse += b * ((units - forecast) ** 2 - mse)
        fast += af * (units - fast)
        slow += aslow * (units - slow)
        if units:
            if size is None:
                size, interval = float(units), float(since_last)
            else:
                size += a * (units - size)
                interval += a * (since_last - interval)
            since_last = 0
    rate = 0.0 if size is None else (1 - a / 2) * size / interval
    weights = [1 - (1 - alpha) ** through for alpha in (b, af, aslow)]
    return (
        rate,
        mse,
        fast,
        slow,
        math.sqrt(mse / weights[0]),
        fast / weights[1],
        slow / weights[2],
    )


@pytest.mark.parametrize(
    ("alphas", "demand"),
    [
        ((0.1, 0.1, 0.3, 0.05), {3: 5, 4: 1, 11: 7, 41: 2, 42: 9, 406: 4}),  # gaps 2, 0, 6, 29, 0, 363
        ((0.5, 0.2, 0.4, 0.1), {1: 12, 2: 12, 3: 1, 20: 30}),
        ((1.0, 1.0, 1.0, 0.5), {5: 3, 9: 3, 10: 8}),  # alpha 1: each step forgets the past
    ],
)
def test_closed_form_over_gaps_equals_the_day_by_day_loop(
    alphas: tuple[float, float, float, float], demand: dict[int, int]
) -> None:
    a, b, af, aslow = alphas
    start = DemandEstimate(started=day(1), alpha=a, error_alpha=b, fast_alpha=af, slow_alpha=aslow)
    estimate = start
    for n, units in sorted(demand.items()):
        estimate = estimate.observe(day(n), units)
        rate, mse, fast, slow, *_ = reference_loop(start, demand, n)
        assert estimate.rate_per_day == pytest.approx(rate)
        assert (estimate.squared_error, estimate.fast, estimate.slow) == pytest.approx((mse, fast, slow))
    last = max(demand)
    for later in (last, last + 1, last + 17, last + 400):  # demand stopped: the accessors count the zeros
        _, _, _, _, sigma, fast_rate, slow_rate = reference_loop(start, demand, later)
        assert estimate.sigma_per_day(day(later)) == pytest.approx(sigma)
        assert estimate.fast_rate(day(later)) == pytest.approx(fast_rate)
        assert estimate.slow_rate(day(later)) == pytest.approx(slow_rate)


def test_demand_that_stopped_shows_a_falling_trend_and_variance_moving_to_the_rate_squared() -> None:
    estimate = fold(DemandEstimate(started=day(1)), {n: 10 + (n % 3) * 5 for n in range(1, 61)})
    today = day(60)
    rates = [estimate.fast_rate(today + timedelta(days=k)) for k in (0, 10, 30)]
    assert rates[0] > rates[1] > rates[2]
    assert estimate.fast_rate(today + timedelta(days=30)) < estimate.slow_rate(today + timedelta(days=30))
    # A long silence: every day's error is the whole (unchanged) forecast, so sigma tends to the rate.
    assert estimate.sigma_per_day(today + timedelta(days=1000)) == pytest.approx(estimate.rate_per_day)


def test_rising_when_the_recent_rate_is_well_above_the_long_run_one() -> None:
    steady = fold(DemandEstimate(started=day(1)), {n: 2 for n in range(1, 91)})
    assert not steady.rising(day(90))
    surged = fold(steady, {n: 10 for n in range(91, 101)})
    assert surged.fast_rate(day(100)) > 1.5 * surged.slow_rate(day(100))
    assert surged.rising(day(100))
    assert not surged.rising(day(100), ratio=10)
    assert not surged.rising(day(100), min_rate=50)


def test_no_demand_yet_is_all_zeros() -> None:
    estimate = DemandEstimate(started=day(1))
    assert estimate.rate_per_day == 0
    assert (estimate.sigma_per_day(day(30)), estimate.fast_rate(day(30)), estimate.slow_rate(day(30))) == (
        0,
        0,
        0,
    )
    assert not estimate.rising(day(30), min_rate=0)


@pytest.mark.parametrize(
    ("n", "units", "message"),
    [
        (5, 1, "strictly increase"),  # the day already observed
        (4, 1, "strictly increase"),
        (6, 0, "units must be an integer >= 1"),
        (6, -3, "units must be an integer >= 1"),
        (6, 2.5, "units must be an integer >= 1"),
        (6, True, "units must be an integer >= 1"),
        (6, 2**63, "exceed the largest quantity"),
    ],
)
def test_bad_observations_are_refused(n: int, units: int, message: str) -> None:
    estimate = DemandEstimate(started=day(1)).observe(day(5), 3)
    with pytest.raises(ValueError, match=message):
        estimate.observe(day(n), units)


def test_bad_days_and_parameters_are_refused() -> None:
    estimate = DemandEstimate(started=day(10))
    with pytest.raises(ValueError, match="before the SKU was observed"):
        estimate.observe(day(9), 1)
    with pytest.raises(ValueError, match="not a datetime"):
        estimate.observe(datetime(2025, 3, 12, 8), 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="already observed"):
        estimate.observe(day(12), 1).sigma_per_day(day(11))
    for bad in (0, 1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match="alpha must be a number"):
            DemandEstimate(started=day(1), alpha=bad)
    with pytest.raises(ValueError, match="must exceed slow_alpha"):
        DemandEstimate(started=day(1), fast_alpha=0.05, slow_alpha=0.3)
    with pytest.raises(ValueError, match="ratio must be"):
        estimate.rising(day(12), ratio=0.5)
    with pytest.raises(ValueError, match="set exactly when"):
        DemandEstimate(started=day(1), size=3.0)


# --- lead time --------------------------------------------------------------------------------------


def test_lead_time_ewma_by_hand() -> None:
    """beta 0.2, starting from the quote of 7; receipts after 10, 15, 5 days.

    10: diff 3,     mean 7 + .6 = 7.6,        variance .8 * (0 + .2 * 9) = 1.44
    15: diff 7.4,   mean 7.6 + 1.48 = 9.08,   variance .8 * (1.44 + .2 * 54.76) = 9.9136
     5: diff -4.08, mean 9.08 - .816 = 8.264, variance .8 * (9.9136 + .2 * 16.6464) = 10.594304
    """
    quoted = LeadTimeEstimate.quoted(7)
    assert (quoted.mean_days, quoted.sigma_days, quoted.count) == (7, 0, 0)
    first = quoted.observe(10)
    assert (first.mean_days, first.variance, first.count) == (pytest.approx(7.6), pytest.approx(1.44), 1)
    second = first.observe(15)
    assert (second.mean_days, second.variance) == (pytest.approx(9.08), pytest.approx(9.9136))
    third = second.observe(5)
    assert (third.mean_days, third.variance, third.count) == (
        pytest.approx(8.264),
        pytest.approx(10.594304),
        3,
    )
    assert third.sigma_days == pytest.approx(math.sqrt(10.594304))  # 3.25489


def test_bad_lead_times_are_refused() -> None:
    with pytest.raises(ValueError, match="lead time days must be an integer >= 0"):
        LeadTimeEstimate.quoted(7).observe(-1)
    with pytest.raises(ValueError, match="quoted lead time days must be an integer >= 0"):
        LeadTimeEstimate.quoted(2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="beta must be"):
        LeadTimeEstimate.quoted(7, beta=0)


# --- service level, safety stock, reorder point -----------------------------------------------------


def test_service_level_z() -> None:
    assert service_level_z(0.5) == 0
    assert service_level_z(0.95) == pytest.approx(1.6448536)
    assert service_level_z(0.99) == pytest.approx(2.3263479)
    for bad in (0.4, 1, 1.2, float("nan"), "0.95"):
        with pytest.raises(ValueError, match=r"service level must be a probability with 0.5 <= level < 1"):
            service_level_z(bad)  # type: ignore[arg-type]


def test_safety_stock_and_reorder_point_by_hand() -> None:
    """d = 10/day, sigma_d = 3, L = 5 days, sigma_L = 1, 95 % (z = 1.6449):
    sigma_LT = sqrt(5 * 9 + 100 * 1) = sqrt(145) = 12.042; SS = ceil(1.6449 * 12.042) = ceil(19.81) = 20;
    ROP = ceil(10 * 5) + 20 = 70."""
    z = service_level_z(0.95)
    assert safety_stock(z, 10, 3, 5, 1) == 20
    assert reorder_point(10, 5, 20) == 70
    # Whole units up, never fractional: 0.3/day over 5 days is 1.5 units -> 2; no spread -> no buffer.
    assert safety_stock(z, 0.3, 0, 5, 0) == 0
    assert reorder_point(0.3, 5, 0) == 2
    # Float noise is not a unit: 0.1 * 30 = 3.0000000000000004 -> 3.
    assert reorder_point(0.1, 30, 0) == 3


def test_levels_are_capped() -> None:
    assert safety_stock(2.0, 1e12, 1e12, 30, 10) == MAX_UNITS
    assert reorder_point(1e12, 30, 0) == MAX_UNITS
    assert reorder_point(MAX_UNITS - 1.0, 1, MAX_UNITS) == MAX_UNITS


def test_recommend_end_to_end_by_hand() -> None:
    """alpha = b = 1 (each step keeps only the latest): demand 46 on day 1 (z 46, p 1, rate .5 * 46 = 23),
    20 on day 2 (z 20, p 1, rate 10; error 20 - 23 = -3, mse 9, sigma 3).
    Lead time beta .5, quoted 4: receipts after 4 and 6 days: mean 4 + .5 * 2 = 5, variance .5 * .5 * 4 = 1.
    At 95 %: the hand case above, SS 20, ROP 70."""
    demand = DemandEstimate(started=day(1), alpha=1, error_alpha=1, fast_alpha=1, slow_alpha=0.5)
    demand = fold(demand, {1: 46, 2: 20})
    lead_time = LeadTimeEstimate.quoted(4, beta=0.5).observe(4).observe(6)
    result = recommend(demand, lead_time, 0.95, today=day(2))
    assert (result.demand_per_day, result.demand_sigma_per_day) == (10, pytest.approx(3))
    assert (result.lead_time_days, result.lead_time_sigma_days) == (5, 1)
    assert result.z == pytest.approx(1.6448536)
    assert (result.service_level, result.lead_time_demand) == (0.95, 50)
    assert (result.safety_stock, result.reorder_point) == (20, 70)
    assert result.basis == (
        "Croston/SBA alpha=1 over 2 demand days since 2025-03-01; lead time EWMA beta=0.5 of 2 receipts"
    )
    # A day later without demand: error -10, mse 100 (b = 1), sigma 10 -> sqrt(5 * 100 + 100) = 24.49,
    # SS = ceil(1.6449 * 24.495) = ceil(40.29) = 41, ROP 91.
    later = recommend(demand, lead_time, 0.95, today=day(3))
    assert (later.demand_sigma_per_day, later.safety_stock, later.reorder_point) == (
        pytest.approx(10),
        41,
        91,
    )


def test_recommend_without_demand_or_receipts() -> None:
    result = recommend(DemandEstimate(started=day(1)), LeadTimeEstimate.quoted(12), 0.9, today=day(40))
    assert (result.demand_per_day, result.lead_time_demand, result.safety_stock, result.reorder_point) == (
        0,
        0,
        0,
        0,
    )
    assert result.lead_time_days == 12
    assert result.basis == "no demand observed since 2025-03-01: nothing to stock for"
    quoted = recommend(fold(DemandEstimate(started=day(1)), {1: 4}), LeadTimeEstimate.quoted(12), 0.9, day(1))
    assert quoted.basis.endswith("lead time quoted by the supplier (12 days, no receipt yet)")
    with pytest.raises(ValueError, match="service level"):
        recommend(DemandEstimate(started=day(1)), LeadTimeEstimate.quoted(12), 1.0, today=day(40))


# --- the service demand got -------------------------------------------------------------------------


def test_backorder_quantity() -> None:
    assert backorder_quantity(500, 400) == 100  # 500 demanded, 400 available
    assert backorder_quantity(300, 400) == 0  # never negative
    assert backorder_quantity(50, -20) == 50  # stock below zero serves nothing, and no more than demanded
    with pytest.raises(ValueError, match="demand must be an integer >= 0"):
        backorder_quantity(-1, 10)


def test_backorder_and_fill_rates() -> None:
    assert backorder_rate(100, 800) == 12.5  # 100 / 800 x 100
    assert backorder_rate(0, 0) == 0.0  # nothing demanded, nothing backordered
    assert fill_rate(700, 800) == 87.5  # 700 / 800 x 100
    assert fill_rate(1, 3) == pytest.approx(33.333333)
    assert fill_rate(0, 0) == 100.0  # nothing demanded: no demand went unserved
    with pytest.raises(ValueError, match=r"backordered_units \(9\) exceed demanded_units \(8\)"):
        backorder_rate(9, 8)
    with pytest.raises(ValueError, match="demanded_units must be an integer >= 0"):
        fill_rate(0, -1)
