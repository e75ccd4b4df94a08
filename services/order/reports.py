"""Backorder reports, computed from the read models (`orders`, `order_lines`) in one consistent snapshot.

Only lines of placed orders count. Formulas (percentages rounded to two decimals, null when the
denominator is 0):
- backorder rate = backordered units / demanded units x 100, where demanded units are the ordered units
  of the lines inventory has decided (reserved, backordered or rejected every unit);
- fill rate = units reserved at placement / ordered units x 100, over the same decided lines;
- open backorders by age: lines with units still waiting, by days since the order was placed;
- time to fill: hours from placement to the fill that left nothing waiting on a line (lines whose wait
  ended by a cancellation do not count);
- demand per SKU: units ordered, reserved at placement, backordered, rejected, filled, cancelled
  (confirmed by inventory), shipped and still waiting, over all lines, and the SKU's backorder rate
  over its decided lines;
- ETA accuracy: lines filled completely that had been promised an ETA; the first ETA promised is
  compared with the (UTC) date of the completing fill: on time if not later.
Both rates describe inventory's answer at placement, so cancellations and shipments later do not
change them. Quantities are bigint; their sums are cast back to bigint (Postgres sums bigint as numeric).
"""

from datetime import datetime

import asyncpg
from pydantic import BaseModel, Field

AGE_BUCKETS: tuple[tuple[str, float], ...] = (  # label, lower bound in days (upper: the next one's)
    ("<1d", 0),
    ("1-3d", 1),
    ("3-7d", 3),
    ("7-14d", 7),
    (">=14d", 14),
)


class BackorderRate(BaseModel):
    percent: float | None = Field(description="backordered_units / demanded_units x 100")
    backordered_units: int
    demanded_units: int = Field(description="Ordered units of the lines inventory has decided")


class FillRate(BaseModel):
    percent: float | None = Field(description="reserved_at_placement_units / ordered_units x 100")
    reserved_at_placement_units: int
    ordered_units: int = Field(description="Ordered units of the lines inventory has decided")


class AgeBucket(BaseModel):
    bucket: str
    lines: int
    waiting_units: int


class TimeToFill(BaseModel):
    lines: int = Field(description="Lines whose last waiting unit was filled")
    mean_hours: float | None
    p50_hours: float | None
    max_hours: float | None


class SkuDemand(BaseModel):
    sku: str
    ordered: int
    reserved_at_placement: int
    backordered: int
    rejected: int
    filled: int
    cancelled: int
    shipped: int
    waiting: int
    backorder_rate_percent: float | None = Field(description="Over the SKU's decided lines")


class EtaAccuracy(BaseModel):
    lines: int = Field(description="Filled lines that had been promised an ETA")
    on_time: int = Field(description="Filled on or before the first promised ETA")
    late: int
    on_time_percent: float | None
    mean_days_late: float | None = Field(description="Over the late lines: fill date - first promised ETA")


class Report(BaseModel):
    generated_at: datetime
    orders_by_status: dict[str, int]
    backorder_rate: BackorderRate
    fill_rate: FillRate
    open_backorders_by_age: list[AgeBucket]
    time_to_fill: TimeToFill
    demand_by_sku: list[SkuDemand]
    eta_accuracy: EtaAccuracy


def percent(part: int, whole: int) -> float | None:
    return round(part * 100 / whole, 2) if whole else None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 2)


_PLACED_LINES = "order_lines l JOIN orders o ON o.order_id = l.order_id"

_RATES = f"""
SELECT coalesce(sum(l.ordered), 0)::bigint AS ordered,
       coalesce(sum(l.reserved_at_placement), 0)::bigint AS reserved,
       coalesce(sum(l.backordered), 0)::bigint AS backordered
FROM {_PLACED_LINES} WHERE l.decided
"""

_AGES = f"""
SELECT width_bucket(extract(epoch FROM $1::timestamptz - o.placed_at)::float8 / 86400, $2::float8[])
           AS bucket,
       count(*) AS lines, sum(l.waiting)::bigint AS waiting
FROM {_PLACED_LINES} WHERE l.waiting > 0
GROUP BY 1
"""

_TIME_TO_FILL = f"""
SELECT count(*) AS lines, avg(hours) AS mean, percentile_cont(0.5) WITHIN GROUP (ORDER BY hours) AS p50,
       max(hours) AS max
FROM (SELECT extract(epoch FROM l.filled_at - o.placed_at)::float8 / 3600 AS hours
      FROM {_PLACED_LINES} WHERE l.filled_at IS NOT NULL) AS filled
"""

_DEMAND = f"""
SELECT l.sku, sum(l.ordered)::bigint AS ordered,
       sum(l.reserved_at_placement)::bigint AS reserved_at_placement,
       sum(l.backordered)::bigint AS backordered, sum(l.rejected)::bigint AS rejected,
       sum(l.filled)::bigint AS filled,
       sum(l.cancelled_waiting + l.cancelled_allocated)::bigint AS cancelled,
       sum(l.shipped)::bigint AS shipped, sum(l.waiting)::bigint AS waiting,
       coalesce(sum(l.backordered) FILTER (WHERE l.decided), 0)::bigint AS decided_backordered,
       coalesce(sum(l.ordered) FILTER (WHERE l.decided), 0)::bigint AS decided_ordered
FROM {_PLACED_LINES}
GROUP BY l.sku ORDER BY l.sku
"""

_ETA_ACCURACY = f"""
SELECT count(*) AS lines,
       count(*) FILTER (WHERE filled_on <= first_eta) AS on_time,
       count(*) FILTER (WHERE filled_on > first_eta) AS late,
       avg(filled_on - first_eta) FILTER (WHERE filled_on > first_eta)::float8 AS mean_days_late
FROM (SELECT (l.filled_at AT TIME ZONE 'UTC')::date AS filled_on, l.first_eta
      FROM {_PLACED_LINES} WHERE l.filled_at IS NOT NULL AND l.first_eta IS NOT NULL) AS promised
"""


async def report(conn: asyncpg.Connection, now: datetime) -> Report:
    async with conn.transaction(isolation="repeatable_read", readonly=True):  # one snapshot for all
        statuses = await conn.fetch(
            "SELECT status, count(*) AS n FROM orders GROUP BY status ORDER BY status"
        )
        rates = await conn.fetchrow(_RATES)
        ages = {r["bucket"]: r for r in await conn.fetch(_AGES, now, [lower for _, lower in AGE_BUCKETS[1:]])}
        fills = await conn.fetchrow(_TIME_TO_FILL)
        demand = await conn.fetch(_DEMAND)
        eta = await conn.fetchrow(_ETA_ACCURACY)
    assert rates is not None and fills is not None and eta is not None
    return Report(
        generated_at=now,
        orders_by_status={r["status"]: r["n"] for r in statuses},
        backorder_rate=BackorderRate(
            percent=percent(rates["backordered"], rates["ordered"]),
            backordered_units=rates["backordered"],
            demanded_units=rates["ordered"],
        ),
        fill_rate=FillRate(
            percent=percent(rates["reserved"], rates["ordered"]),
            reserved_at_placement_units=rates["reserved"],
            ordered_units=rates["ordered"],
        ),
        # width_bucket numbers the buckets from 0 (below the first bound, also a placement "in the future").
        open_backorders_by_age=[
            AgeBucket(
                bucket=label,
                lines=ages[i]["lines"] if i in ages else 0,
                waiting_units=ages[i]["waiting"] if i in ages else 0,
            )
            for i, (label, _) in enumerate(AGE_BUCKETS)
        ],
        time_to_fill=TimeToFill(
            lines=fills["lines"],
            mean_hours=_rounded(fills["mean"]),
            p50_hours=_rounded(fills["p50"]),
            max_hours=_rounded(fills["max"]),
        ),
        demand_by_sku=[
            SkuDemand(
                sku=r["sku"],
                ordered=r["ordered"],
                reserved_at_placement=r["reserved_at_placement"],
                backordered=r["backordered"],
                rejected=r["rejected"],
                filled=r["filled"],
                cancelled=r["cancelled"],
                shipped=r["shipped"],
                waiting=r["waiting"],
                backorder_rate_percent=percent(r["decided_backordered"], r["decided_ordered"]),
            )
            for r in demand
        ],
        eta_accuracy=EtaAccuracy(
            lines=eta["lines"],
            on_time=eta["on_time"],
            late=eta["late"],
            on_time_percent=percent(eta["on_time"], eta["lines"]),
            mean_days_late=_rounded(eta["mean_days_late"]),
        ),
    )
