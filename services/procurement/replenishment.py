"""Demand-driven replenishment of one SKU: its settings, the recommendation its learnt demand and lead
time imply (forecast.py's arithmetic), and when `auto` mode applies it.

Pure: the caller passes the day and the units the open day has seen so far. A closed day enters the
SKU's DemandEstimate through its DemandRecorded event; the open day is only looked at (a copy observes
it), so a promotion that sells in the morning raises the reorder point before the afternoon sells out,
while the estimate keeps one observation per day.
"""

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from services.procurement.events import ReplenishmentMode
from services.procurement.forecast import DemandEstimate, LeadTimeEstimate, Recommendation, recommend

DEFAULT_SERVICE_LEVEL = Decimal("0.95")


@dataclass(frozen=True, slots=True)
class ReplenishmentSettings:
    mode: ReplenishmentMode = "manual"
    service_level: Decimal = DEFAULT_SERVICE_LEVEL


@dataclass(frozen=True, slots=True)
class DemandDay:
    """One day's demand of a SKU as the ledger counted it (see projections.record_demand)."""

    day: date
    demanded: int
    backordered: int = 0
    rejected: int = 0
    cancelled: int = 0


def recommendation(
    demand: DemandEstimate | None,
    lead_time: LeadTimeEstimate,
    settings: ReplenishmentSettings,
    *,
    today: date,
    today_units: int = 0,
) -> Recommendation | None:
    """The reorder point and safety stock for the SKU as of now: the closed days' estimate, with the
    open day's `today_units` so far observed on a copy. None while no demand was seen: a SKU never
    ordered has nothing to base a number on (and auto mode must not zero a level staff typed in)."""
    if today_units > 0:
        estimate = demand if demand is not None else DemandEstimate(started=today)
        level = float(settings.service_level)
        return recommend(estimate.observe(today, today_units), lead_time, level, today)
    if demand is None:
        return None
    as_of = max(today - timedelta(days=1), demand.last_day or demand.started)
    return recommend(demand, lead_time, float(settings.service_level), as_of)


def levels_to_apply(
    recommended: Recommendation | None,
    current: tuple[int, int],
    *,
    settings: ReplenishmentSettings,
    intraday: bool,
) -> tuple[int, int] | None:
    """The (reorder point, safety stock) auto mode applies now, or None. Within the day only a rise is
    applied (a spike must be bought for now; a fall waits for the day's close, so the levels do not
    swing with every order); at a day's close any change is."""
    if settings.mode != "auto" or recommended is None:
        return None
    planned = (recommended.reorder_point, recommended.safety_stock)
    if planned == current or (intraday and planned[0] <= current[0]):
        return None
    return planned
