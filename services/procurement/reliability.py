"""Supplier reliability: how late a supplier's receipts come against the dates it confirmed, the date we
can promise from its confirmation, and how well our own promised dates held.

Pure values of constant size, folded once per receipt (or kept promise) in O(1).
"""

import math
from dataclasses import dataclass, replace
from datetime import date, timedelta
from fractions import Fraction

from services.procurement.arguments import check_date, check_int

# Days late are clamped to this range so the history stays bounded whatever its length: a receipt a
# month early is as early as any for planning, and one 4 months late is "very late" for any percentile.
MIN_DAYS_LATE = -30
MAX_DAYS_LATE = 120


def _check_percentile(p: float) -> float:
    if not isinstance(p, int | float) or isinstance(p, bool) or not 0 < p <= 100:
        raise ValueError(f"percentile must be a number with 0 < p <= 100, got {p!r}")
    return p


@dataclass(frozen=True, slots=True)
class LatenessHistory:
    """A histogram of days late (receipt day - confirmed day; negative = early), clamped to
    [MIN_DAYS_LATE, MAX_DAYS_LATE]: at most 151 (days late, receipts) pairs, sorted, counts > 0."""

    counts: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        previous = MIN_DAYS_LATE - 1
        for pair in self.counts:
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise ValueError(f"counts must hold (days late, receipts) pairs, got {pair!r}")
            days_late, receipts = pair
            check_int("days late", days_late)
            check_int("receipts", receipts, minimum=1)
            if not previous < days_late <= MAX_DAYS_LATE:
                raise ValueError(
                    f"days late must be sorted, distinct and within [{MIN_DAYS_LATE}, {MAX_DAYS_LATE}]:"
                    f" {days_late} after {previous}"
                )
            previous = days_late

    @property
    def count(self) -> int:
        return sum(receipts for _, receipts in self.counts)

    @property
    def on_time(self) -> int:
        """Receipts on or before their confirmed day (days late <= 0)."""
        return sum(receipts for days_late, receipts in self.counts if days_late <= 0)

    @property
    def on_time_rate(self) -> float | None:
        """On-time receipts / receipts, a fraction in [0, 1]; None before any receipt."""
        count = self.count
        return self.on_time / count if count else None

    def observe(self, days_late: int) -> "LatenessHistory":
        """The history after one more receipt `days_late` days after its confirmed date."""
        check_int("days_late", days_late)
        clamped = min(MAX_DAYS_LATE, max(MIN_DAYS_LATE, days_late))
        counts = list(self.counts)
        for index, (known, receipts) in enumerate(counts):
            if known == clamped:
                counts[index] = (known, receipts + 1)
                break
            if known > clamped:
                counts.insert(index, (clamped, 1))
                break
        else:
            counts.append((clamped, 1))
        return replace(self, counts=tuple(counts))

    def percentile(self, p: float) -> int:
        """The nearest-rank P-th percentile of days late: the smallest value with at least
        ceil(p / 100 * count) receipts at or below it (p in (0, 100]); 0 before any receipt. A result of
        MAX_DAYS_LATE means "that late or later"."""
        _check_percentile(p)
        count = self.count
        if not count:
            return 0
        rank = max(1, math.ceil(Fraction(p) * count / 100))  # exact: 80% of 5 is rank 4, not 4.0000001
        seen = 0
        for days_late, receipts in self.counts:
            seen += receipts
            if seen >= rank:
                return days_late
        raise AssertionError("unreachable: rank <= count")  # pragma: no cover


ETA_PERCENTILE = 80  # the percentile of a supplier's lateness that an ETA adds to its dates
MIN_RECEIPTS = 3  # fewer receipts say nothing about a supplier


def adjusted_delay(
    history: LatenessHistory, percentile: float = ETA_PERCENTILE, min_observations: int = MIN_RECEIPTS
) -> int:
    """Days to add to the supplier's dates: the P-th percentile of how late its receipts came, once at
    least `min_observations` receipts are known (fewer say nothing about the supplier: 0).

    Never negative: a supplier that is usually early has still only committed to its own date, and a
    promise to a customer earlier than that is not one we can stand behind.
    """
    _check_percentile(percentile)
    check_int("min_observations", min_observations, minimum=0)
    if history.count < min_observations or history.count == 0:
        return 0
    return max(0, history.percentile(percentile))


def adjusted_date(
    confirmed: date,
    history: LatenessHistory,
    percentile: float = ETA_PERCENTILE,
    min_observations: int = MIN_RECEIPTS,
) -> date:
    """The date to promise for a supplier's `confirmed` date: later by `adjusted_delay`."""
    check_date("confirmed", confirmed)
    try:
        return confirmed + timedelta(days=adjusted_delay(history, percentile, min_observations))
    except OverflowError:
        raise ValueError(f"{confirmed} adjusted by the supplier's lateness is past the last date") from None


@dataclass(frozen=True, slots=True)
class EtaAccuracy:
    """How well promised dates held: kept = arrived on or before the promise; the absolute error in
    days is kept as a sum so the mean is exact and the state constant in size."""

    count: int = 0
    kept: int = 0
    abs_error_days_total: int = 0

    def __post_init__(self) -> None:
        check_int("count", self.count, minimum=0)
        check_int("kept", self.kept, minimum=0)
        check_int("abs_error_days_total", self.abs_error_days_total, minimum=0)
        if self.kept > self.count:
            raise ValueError(f"kept ({self.kept}) exceeds count ({self.count})")

    def observe(self, promised: date, actual: date) -> "EtaAccuracy":
        error = (check_date("actual", actual) - check_date("promised", promised)).days
        return EtaAccuracy(
            count=self.count + 1,
            kept=self.kept + (error <= 0),
            abs_error_days_total=self.abs_error_days_total + abs(error),
        )

    @property
    def kept_rate(self) -> float | None:
        """Kept promises / promises, a fraction in [0, 1]; None before any."""
        return self.kept / self.count if self.count else None

    @property
    def mean_abs_error_days(self) -> float | None:
        return self.abs_error_days_total / self.count if self.count else None
