"""Supplier reliability: the lateness histogram, the adjusted promise date, and ETA accuracy."""

from datetime import date, datetime

import pytest

from services.procurement.reliability import (
    MAX_DAYS_LATE,
    MIN_DAYS_LATE,
    EtaAccuracy,
    LatenessHistory,
    adjusted_date,
)

CONFIRMED = date(2025, 6, 10)


def history(*days_late: int) -> LatenessHistory:
    result = LatenessHistory()
    for days in days_late:
        result = result.observe(days)
    return result


def test_nearest_rank_percentiles_of_a_small_distribution() -> None:
    """Late by [0, 0, 1, 2, 5] (n = 5); nearest rank = ceil(p / 100 * n), the value at that rank sorted:
    P80: ceil(4.0) = 4 -> 2;  P50: ceil(2.5) = 3 -> 1;  P20: ceil(1.0) = 1 -> 0;  P81: ceil(4.05) = 5 -> 5;
    P100: 5 -> 5;  P0.1: ceil(0.005) = 1 -> 0."""
    late = history(5, 0, 2, 0, 1)  # order of receipt does not matter
    assert late.counts == ((0, 2), (1, 1), (2, 1), (5, 1))
    assert [late.percentile(p) for p in (80, 50, 20, 81, 100, 0.1)] == [2, 1, 0, 5, 5, 0]
    assert (late.count, late.on_time, late.on_time_rate) == (5, 2, 0.4)


def test_percentile_is_refused_outside_0_to_100_and_0_when_empty() -> None:
    assert LatenessHistory().percentile(80) == 0
    assert LatenessHistory().on_time_rate is None
    for bad in (0, -5, 100.5, float("nan")):
        with pytest.raises(ValueError, match=r"percentile must be a number with 0 < p <= 100"):
            history(1).percentile(bad)


def test_days_late_are_clamped_so_the_history_stays_bounded() -> None:
    """-45 counts as -30 (early: on time), 400 and 121 as 120; the histogram has at most 151 entries."""
    late = history(-45, 400, 121, 120)
    assert late.counts == ((MIN_DAYS_LATE, 1), (MAX_DAYS_LATE, 3))
    assert (late.count, late.on_time, late.percentile(50)) == (4, 1, 120)
    everything = history(*range(-100, 300))
    assert len(everything.counts) == MAX_DAYS_LATE - MIN_DAYS_LATE + 1
    assert everything.count == 400


def test_a_malformed_histogram_or_observation_is_refused() -> None:
    with pytest.raises(ValueError, match="sorted, distinct"):
        LatenessHistory(counts=((3, 1), (1, 1)))
    with pytest.raises(ValueError, match="receipts must be an integer >= 1"):
        LatenessHistory(counts=((3, 0),))
    with pytest.raises(ValueError, match="days_late must be an integer"):
        history(1.5)  # type: ignore[arg-type]


def test_adjusted_date_moves_by_the_percentile_once_enough_receipts_are_known() -> None:
    """[0, 0, 1, 2, 5]: P80 = 2 -> 2 days after the confirmed date; P50 = 1 -> 1 day."""
    late = history(0, 0, 1, 2, 5)
    assert adjusted_date(CONFIRMED, late) == date(2025, 6, 12)
    assert adjusted_date(CONFIRMED, late, percentile=50) == date(2025, 6, 11)


def test_too_few_receipts_leave_the_confirmed_date() -> None:
    """Two receipts 10 days late, three required: no adjustment yet; the third moves it 10 days (P80 of
    [10, 10, 10])."""
    assert adjusted_date(CONFIRMED, history(10, 10)) == CONFIRMED
    assert adjusted_date(CONFIRMED, history(10, 10, 10)) == date(2025, 6, 20)
    assert adjusted_date(CONFIRMED, history(10), min_observations=1) == date(2025, 6, 20)
    assert adjusted_date(CONFIRMED, LatenessHistory(), min_observations=0) == CONFIRMED


def test_an_early_supplier_never_moves_a_date_earlier() -> None:
    """Early by 3, 5, 4 days: P80 = -3, but the promise stays the supplier's own date."""
    early = history(-3, -5, -4)
    assert early.percentile(80) == -3
    assert adjusted_date(CONFIRMED, early) == CONFIRMED


def test_adjusted_date_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="percentile must be"):
        adjusted_date(CONFIRMED, history(1, 1, 1), percentile=0)
    with pytest.raises(ValueError, match="min_observations must be an integer >= 0"):
        adjusted_date(CONFIRMED, history(1), min_observations=-1)
    with pytest.raises(ValueError, match="not a datetime"):
        adjusted_date(datetime(2025, 6, 10, 9), history(1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="past the last date"):
        adjusted_date(date.max, history(5, 5, 5))


def test_eta_accuracy_keeps_counts_and_sums() -> None:
    """Promised 10th: arrived 8th (kept, error 2), 10th (kept, 0), 13th (late, 3), 11th (late, 1).
    kept 2 of 4 = 0.5; mean absolute error (2 + 0 + 3 + 1) / 4 = 1.5 days."""
    accuracy = EtaAccuracy()
    assert (accuracy.kept_rate, accuracy.mean_abs_error_days) == (None, None)
    for arrived in (8, 10, 13, 11):
        accuracy = accuracy.observe(CONFIRMED, date(2025, 6, arrived))
    assert accuracy == EtaAccuracy(count=4, kept=2, abs_error_days_total=6)
    assert (accuracy.kept_rate, accuracy.mean_abs_error_days) == (0.5, 1.5)
    with pytest.raises(ValueError, match="actual must be a date"):
        accuracy.observe(CONFIRMED, "2025-06-11")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kept"):
        EtaAccuracy(count=1, kept=2)
