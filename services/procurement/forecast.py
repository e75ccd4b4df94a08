"""Demand and lead-time estimates per SKU, and the safety stock and reorder point they imply.

Pure arithmetic: the procurement state folds `DemandEstimate.observe` once per calendar day that had
demand and `LeadTimeEstimate.observe` once per receipt; every value is immutable and of constant size,
and every update is O(1) however long the history or the gap between demand days (the zero days in
between are accounted for in closed form, never day by day).

Also here: the measures of the service demand got (`backorder_quantity`, `backorder_rate`,
`fill_rate`), the numbers the issue's example states, as named functions.
"""

import math
from dataclasses import dataclass, replace
from datetime import date
from statistics import NormalDist

from services.procurement.arguments import check_date, check_int

MAX_UNITS = 1_000_000_000  # a safety stock or reorder point is capped here: beyond it a forecast is noise
MAX_DAILY_UNITS = 2**63 - 1  # quantities are bigint everywhere else


def _check_smoothing(name: str, value: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value <= 1:
        raise ValueError(f"{name} must be a number with 0 < {name} <= 1, got {value!r}")


def _bias_corrected(ewma: float, smoothing: float, days: int) -> float:
    """An EWMA started at 0 weights its `days` observations by 1 - (1 - smoothing)^days in all, not 1;
    dividing by that weight makes it the weighted mean of what was observed (no start-up bias)."""
    weight = 1.0 - (1.0 - smoothing) ** days
    return ewma / weight if weight > 0 else 0.0


@dataclass(frozen=True, slots=True)
class DemandEstimate:
    """Daily demand of one SKU, from the days it had demand; the days without any are zeros.

    Rate (Croston's method with the Syntetos-Boylan Approximation): on each demand day of `units`, q days
    after the previous demand day,
        size     z <- z + alpha * (units - z)
        interval p <- p + alpha * (q - p)
        rate per day = (1 - alpha / 2) * z / p
    initialised on the first demand day with z = units and p = the days from `started` to it, both
    counted (p >= 1). The SBA factor 1 - alpha/2 removes Croston's upward bias on z / p. Between demand
    days the rate does not change (Croston updates only when demand occurs), so a SKU whose demand stopped
    keeps its rate: the variability and the trend below show the stop.

    Variability: sigma per day = sqrt(mse), mse an EWMA (`error_alpha` = b) of the squared one-day-ahead
    error over every day since `started`, zero days included; the forecast is the rate before the day
    (0 before the first demand day). Over k zero days the forecast f is unchanged and each day's error is
    -f, so in closed form
        mse <- (1 - b)^k * mse + (1 - (1 - b)^k) * f^2
    then the demand day's error e = units - f gives mse <- mse + b * (e^2 - mse).

    Trend: two EWMAs of the daily demand over every day since `started` (`fast_alpha`, `slow_alpha`):
    r <- (1 - a)^k * r over k zero days, r <- r + a * (units - r) on a demand day. A fast rate well above
    the slow one says demand rose (`rising`).

    The three EWMAs start at 0 on `started` and are stored raw (exactly the recursions above); what the
    accessors report is divided by the weight the n days counted carry, 1 - (1 - a)^n, so young SKUs
    neither look steadier than they are nor show a rise that is only the EWMAs filling up.

    The accessors take the `day` to report for: the days after `last_day` up to and including it count
    as zero days (without changing the estimate), so a SKU whose demand stopped shows it.
    """

    started: date  # the first day whose demand counts: when the SKU began to be observed
    alpha: float = 0.1
    error_alpha: float = 0.1
    fast_alpha: float = 0.3
    slow_alpha: float = 0.05
    size: float | None = None  # z: smoothed units per demand day
    interval: float | None = None  # p: smoothed days between demand days
    squared_error: float = 0.0  # raw EWMA of the squared one-day-ahead error
    fast: float = 0.0  # raw fast EWMA of daily demand
    slow: float = 0.0  # raw slow EWMA of daily demand
    last_day: date | None = None
    days_with_demand: int = 0
    total_units: int = 0

    def __post_init__(self) -> None:
        check_date("started", self.started)
        for name in ("alpha", "error_alpha", "fast_alpha", "slow_alpha"):
            _check_smoothing(name, getattr(self, name))
        if self.fast_alpha <= self.slow_alpha:
            raise ValueError(f"fast_alpha ({self.fast_alpha}) must exceed slow_alpha ({self.slow_alpha})")
        check_int("days_with_demand", self.days_with_demand, minimum=0)
        check_int("total_units", self.total_units, minimum=0)
        observed = self.days_with_demand > 0
        if any((value is not None) != observed for value in (self.last_day, self.size, self.interval)):
            raise ValueError("last_day, size and interval are set exactly when a demand day was observed")
        if self.last_day is not None and check_date("last_day", self.last_day) < self.started:
            raise ValueError(f"last_day {self.last_day} is before started {self.started}")

    @property
    def rate_per_day(self) -> float:
        """Croston/SBA units per day; 0 before any demand."""
        if self.size is None or self.interval is None:
            return 0.0
        return (1 - self.alpha / 2) * self.size / self.interval

    def observe(self, day: date, units: int) -> "DemandEstimate":
        """The estimate after `day`'s demand of `units` (> 0); days strictly increase."""
        check_date("day", day)
        check_int("units", units, minimum=1)
        if units > MAX_DAILY_UNITS:
            raise ValueError(f"units {units} exceed the largest quantity ({MAX_DAILY_UNITS})")
        if day < self.started:
            raise ValueError(f"demand on {day} is before the SKU was observed from {self.started}")
        if self.last_day is not None and day <= self.last_day:
            raise ValueError(f"demand days must strictly increase: {day} is not after {self.last_day}")
        # The zero days since the last demand day (or since `started`), then the day itself.
        gap = (day - self.started).days if self.last_day is None else (day - self.last_day).days - 1
        forecast = self.rate_per_day
        squared_error, fast, slow = self._after_zero_days(gap)
        error = units - forecast
        squared_error += self.error_alpha * (error * error - squared_error)
        fast += self.fast_alpha * (units - fast)
        slow += self.slow_alpha * (units - slow)
        if self.size is None or self.interval is None or self.last_day is None:
            size, interval = float(units), float((day - self.started).days + 1)
        else:
            size = self.size + self.alpha * (units - self.size)
            interval = self.interval + self.alpha * ((day - self.last_day).days - self.interval)
        return replace(
            self,
            size=size,
            interval=interval,
            squared_error=squared_error,
            fast=fast,
            slow=slow,
            last_day=day,
            days_with_demand=self.days_with_demand + 1,
            total_units=self.total_units + units,
        )

    def sigma_per_day(self, day: date) -> float:
        """Standard deviation of daily demand around the rate, as of the end of `day`."""
        squared_error, _, _ = self._after_zero_days(self._zero_days_through(day))
        return math.sqrt(_bias_corrected(squared_error, self.error_alpha, self._days_counted(day)))

    def fast_rate(self, day: date) -> float:
        """Recent units per day (the fast EWMA), as of the end of `day`."""
        _, fast, _ = self._after_zero_days(self._zero_days_through(day))
        return _bias_corrected(fast, self.fast_alpha, self._days_counted(day))

    def slow_rate(self, day: date) -> float:
        """Long-run units per day (the slow EWMA), as of the end of `day`."""
        _, _, slow = self._after_zero_days(self._zero_days_through(day))
        return _bias_corrected(slow, self.slow_alpha, self._days_counted(day))

    def rising(self, day: date, ratio: float = 1.5, min_rate: float = 1.0) -> bool:
        """Whether demand rose: the fast rate is at least `ratio` times the slow one and at least
        `min_rate` units a day (below that, a single order swings the ratio of two small numbers).
        Note that on intermittent demand the fast rate jumps on every demand day; `min_rate` and the
        alphas decide what counts as a rise rather than one order."""
        if not isinstance(ratio, int | float) or isinstance(ratio, bool) or not ratio >= 1:
            raise ValueError(f"ratio must be a number >= 1, got {ratio!r}")
        if not isinstance(min_rate, int | float) or isinstance(min_rate, bool) or not min_rate >= 0:
            raise ValueError(f"min_rate must be a number >= 0, got {min_rate!r}")
        fast = self.fast_rate(day)
        return fast >= min_rate and fast > 0 and fast >= ratio * self.slow_rate(day)

    def _zero_days_through(self, day: date) -> int:
        """The days after the last one accounted for, up to and including `day`."""
        check_date("day", day)
        if self.last_day is None:
            return max(0, (day - self.started).days + 1)
        if day < self.last_day:
            raise ValueError(f"cannot report for {day}: demand was already observed on {self.last_day}")
        return (day - self.last_day).days

    def _days_counted(self, day: date) -> int:
        return max(0, (day - self.started).days + 1)

    def _after_zero_days(self, days: int) -> tuple[float, float, float]:
        """(squared error, fast, slow) after `days` zero days at the current forecast, in closed form."""
        forecast = self.rate_per_day
        kept = (1.0 - self.error_alpha) ** days
        squared_error = kept * self.squared_error + (1.0 - kept) * forecast * forecast
        return (
            squared_error,
            self.fast * (1.0 - self.fast_alpha) ** days,
            self.slow * (1.0 - self.slow_alpha) ** days,
        )


@dataclass(frozen=True, slots=True)
class LeadTimeEstimate:
    """Days from a purchase order's issue to its receipt, learnt from receipts.

    The supplier's quoted lead time is the start (`quoted`: count 0, variance 0); each receipt of x days
    updates it, with beta:
        diff = x - mean;  mean <- mean + beta * diff;  variance <- (1 - beta) * (variance + beta * diff^2)
    (the exponentially weighted mean and variance). The quote weighs (1 - beta)^n after n receipts, so
    one odd delivery (goods that happened to be in the supplier's van) moves the estimate by beta of
    its difference, not all the way, and a quote receipts contradict shows up as variance.
    """

    mean_days: float
    variance: float = 0.0
    count: int = 0  # receipts observed
    beta: float = 0.2

    def __post_init__(self) -> None:
        _check_smoothing("beta", self.beta)
        check_int("count", self.count, minimum=0)
        for name in ("mean_days", "variance"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < math.inf:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    @classmethod
    def quoted(cls, days: int, beta: float = 0.2) -> "LeadTimeEstimate":
        """The supplier's quoted lead time, before any receipt."""
        return cls(mean_days=float(check_int("quoted lead time days", days, minimum=0)), beta=beta)

    @property
    def sigma_days(self) -> float:
        return math.sqrt(self.variance)

    def observe(self, days: int) -> "LeadTimeEstimate":
        """The estimate after a receipt `days` (>= 0) after its purchase order was issued."""
        check_int("lead time days", days, minimum=0)
        diff = days - self.mean_days
        return replace(
            self,
            mean_days=self.mean_days + self.beta * diff,
            variance=(1 - self.beta) * (self.variance + self.beta * diff * diff),
            count=self.count + 1,
        )


def service_level_z(level: float) -> float:
    """The standard normal quantile of a cycle service level (0.5 <= level < 1): the safety factor z."""
    if not isinstance(level, int | float) or isinstance(level, bool) or not 0.5 <= level < 1:
        raise ValueError(f"service level must be a probability with 0.5 <= level < 1, got {level!r}")
    return NormalDist().inv_cdf(level)


def _whole_units(value: float) -> int:
    """Up to whole units, capped at MAX_UNITS; float noise (50.0000000001) does not add a unit."""
    if not value < MAX_UNITS:  # also inf and NaN
        return MAX_UNITS
    return max(0, math.ceil(round(value, 9)))


def safety_stock(
    z: float,
    demand_per_day: float,
    demand_sigma_per_day: float,
    lead_time_days: float,
    lead_time_sigma_days: float,
) -> int:
    """ceil(z * sigma_LT), sigma_LT = sqrt(L * sigma_d^2 + d^2 * sigma_L^2): the spread of demand over a
    lead time L (mean days, sigma_L) at d units a day (sigma_d), daily demand and lead time independent."""
    sigma_lead_time = math.sqrt(
        lead_time_days * demand_sigma_per_day**2 + demand_per_day**2 * lead_time_sigma_days**2
    )
    return _whole_units(z * sigma_lead_time)


def reorder_point(demand_per_day: float, lead_time_days: float, safety_stock_units: int) -> int:
    """ceil(d * L) + safety stock: the demand expected over a lead time, plus the buffer."""
    check_int("safety_stock_units", safety_stock_units, minimum=0)
    return min(MAX_UNITS, _whole_units(demand_per_day * lead_time_days) + safety_stock_units)


@dataclass(frozen=True, slots=True)
class Recommendation:
    demand_per_day: float
    demand_sigma_per_day: float
    lead_time_days: float
    lead_time_sigma_days: float
    z: float
    service_level: float
    lead_time_demand: float  # d * L
    safety_stock: int
    reorder_point: int
    basis: str  # the method, for whoever reads the number


def recommend(
    demand: DemandEstimate, lead_time: LeadTimeEstimate, service_level: float, today: date
) -> Recommendation:
    """Safety stock and reorder point for a SKU as of the end of `today`.

        sigma_LT      = sqrt(L * sigma_d^2 + d^2 * sigma_L^2)
        safety_stock  = ceil(z * sigma_LT)
        reorder_point = ceil(d * L) + safety_stock
    with d, sigma_d the Croston/SBA rate and its daily sigma as of `today`, L, sigma_L the lead time in
    days, z the service level's normal quantile; whole units, each capped at MAX_UNITS. A SKU without
    any demand observed gets zeros (nothing to cover).
    """
    z = service_level_z(service_level)
    lead_days, lead_sigma = lead_time.mean_days, lead_time.sigma_days
    if lead_time.count == 0:
        lead_basis = f"lead time quoted by the supplier ({lead_days:g} days, no receipt yet)"
    else:
        lead_basis = f"lead time EWMA beta={lead_time.beta:g} of {lead_time.count} receipts"
    if demand.days_with_demand == 0:
        check_date("today", today)
        return Recommendation(
            demand_per_day=0.0,
            demand_sigma_per_day=0.0,
            lead_time_days=lead_days,
            lead_time_sigma_days=lead_sigma,
            z=z,
            service_level=service_level,
            lead_time_demand=0.0,
            safety_stock=0,
            reorder_point=0,
            basis=f"no demand observed since {demand.started.isoformat()}: nothing to stock for",
        )
    rate, sigma = demand.rate_per_day, demand.sigma_per_day(today)
    buffer = safety_stock(z, rate, sigma, lead_days, lead_sigma)
    return Recommendation(
        demand_per_day=rate,
        demand_sigma_per_day=sigma,
        lead_time_days=lead_days,
        lead_time_sigma_days=lead_sigma,
        z=z,
        service_level=service_level,
        lead_time_demand=rate * lead_days,
        safety_stock=buffer,
        reorder_point=reorder_point(rate, lead_days, buffer),
        basis=(
            f"Croston/SBA alpha={demand.alpha:g} over {demand.days_with_demand} demand days"
            f" since {demand.started.isoformat()}; {lead_basis}"
        ),
    )


# --- the service demand got -------------------------------------------------------------------------


def backorder_quantity(demand: int, available: int) -> int:
    """Units of `demand` that available stock cannot serve (never negative; no stock below 0 serves)."""
    check_int("demand", demand, minimum=0)
    if not isinstance(available, int) or isinstance(available, bool):
        raise ValueError(f"available must be an integer, got {available!r}")
    return demand - min(demand, max(0, available))


def _percent(part: int, whole: int, part_name: str, empty: float) -> float:
    check_int(part_name, part, minimum=0)
    check_int("demanded_units", whole, minimum=0)
    if part > whole:
        raise ValueError(f"{part_name} ({part}) exceed demanded_units ({whole})")
    return part * 100 / whole if whole else empty  # int / int: correctly rounded


def backorder_rate(backordered_units: int, demanded_units: int) -> float:
    """Backordered / demanded units x 100 (unrounded); 0.0 when nothing was demanded."""
    return _percent(backordered_units, demanded_units, "backordered_units", empty=0.0)


def fill_rate(shipped_from_stock_units: int, demanded_units: int) -> float:
    """Units shipped from stock / demanded units x 100 (unrounded); 100.0 when nothing was demanded (no
    demand went unserved)."""
    return _percent(shipped_from_stock_units, demanded_units, "shipped_from_stock_units", empty=100.0)
