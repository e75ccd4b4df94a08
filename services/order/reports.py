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

from datetime import UTC, datetime, timedelta
from typing import Literal

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


# --- for the operations board: the rates over time and the ageing of the waiting lines -------------------
# Both read only what their window holds: the rates the orders placed in it (index orders_placed_at), the
# ageing the lines still waiting (partial index order_lines_open); neither reads the whole history.

RateBucket = Literal["hour", "day"]
BUCKET_WIDTH: dict[str, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
MAX_RATE_BUCKETS = 366

WAITING_AGE_BUCKETS: tuple[tuple[str, float], ...] = (  # label, lower bound in hours (upper: the next one's)
    ("<1h", 0),
    ("1-6h", 1),
    ("6-24h", 6),
    ("1-3d", 24),
    ("3-7d", 72),
    ("7-14d", 168),
    ("14-30d", 336),
    (">=30d", 720),
)


class RatePoint(BaseModel):
    start: datetime = Field(description="Start of the bucket (UTC), inclusive")
    end: datetime = Field(description="End of the bucket, exclusive")
    lines: int = Field(description="Decided lines of the orders placed in the bucket")
    ordered_units: int
    reserved_at_placement_units: int
    backordered_units: int
    backorder_rate_percent: float | None = Field(description="backordered / ordered x 100; null: no line")
    fill_rate_percent: float | None = Field(description="reserved at placement / ordered x 100")


class RatesOverTime(BaseModel):
    generated_at: datetime
    bucket: RateBucket
    sku: str | None = Field(description="Only this SKU's lines; null: every SKU")
    points: list[RatePoint] = Field(description="Oldest first; the last bucket holds now")


class WaitingAgeBucket(BaseModel):
    bucket: str
    lower_hours: float = Field(description="Waited at least this long (since the order was placed)")
    upper_hours: float | None = Field(description="and less than this; null: no upper bound")
    lines: int
    waiting_units: int


class WaitingAgeing(BaseModel):
    generated_at: datetime
    sku: str | None = Field(description="Only this SKU's lines; null: every SKU")
    lines: int = Field(description="Lines with units still waiting")
    waiting_units: int
    oldest_placed_at: datetime | None = Field(description="Placement of the longest-waiting line")
    buckets: list[WaitingAgeBucket]


def bucket_starts(now: datetime, bucket: RateBucket, count: int) -> list[datetime]:
    """The starts of the `count` buckets that end with the one holding `now`, aligned to whole UTC hours
    or days."""
    width = BUCKET_WIDTH[bucket]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    current = now - (now - epoch) % width
    return [current - width * (count - 1 - n) for n in range(count)]


_RATES_OVER_TIME = f"""
SELECT floor(extract(epoch FROM o.placed_at - $1::timestamptz) / $2::float8)::int AS n,
       count(*) AS lines, sum(l.ordered)::bigint AS ordered,
       sum(l.reserved_at_placement)::bigint AS reserved, sum(l.backordered)::bigint AS backordered
FROM {_PLACED_LINES}
WHERE l.decided AND o.placed_at >= $1 AND o.placed_at < $3 AND ($4::text IS NULL OR l.sku = $4)
GROUP BY 1
"""


async def rates_over_time(
    conn: asyncpg.Connection, now: datetime, bucket: RateBucket, count: int, sku: str | None = None
) -> RatesOverTime:
    """Backorder and fill rate of the orders placed in each of the last `count` buckets."""
    width = BUCKET_WIDTH[bucket]
    starts = bucket_starts(now, bucket, count)
    rows = await conn.fetch(_RATES_OVER_TIME, starts[0], width.total_seconds(), starts[-1] + width, sku)
    found = {r["n"]: r for r in rows}
    points = []
    for n, start in enumerate(starts):
        r = found.get(n)
        ordered, reserved, backordered = (r["ordered"], r["reserved"], r["backordered"]) if r else (0, 0, 0)
        points.append(
            RatePoint(
                start=start,
                end=start + width,
                lines=r["lines"] if r else 0,
                ordered_units=ordered,
                reserved_at_placement_units=reserved,
                backordered_units=backordered,
                backorder_rate_percent=percent(backordered, ordered),
                fill_rate_percent=percent(reserved, ordered),
            )
        )
    return RatesOverTime(generated_at=now, bucket=bucket, sku=sku, points=points)


_WAITING_AGES = f"""
SELECT width_bucket(extract(epoch FROM $1::timestamptz - o.placed_at)::float8 / 3600, $2::float8[])
           AS bucket,
       count(*) AS lines, sum(l.waiting)::bigint AS waiting, min(o.placed_at) AS oldest
FROM {_PLACED_LINES} WHERE l.waiting > 0 AND ($3::text IS NULL OR l.sku = $3)
GROUP BY 1
"""


async def waiting_ageing(conn: asyncpg.Connection, now: datetime, sku: str | None = None) -> WaitingAgeing:
    """The lines still waiting by how long their customers have waited."""
    bounds = [lower for _, lower in WAITING_AGE_BUCKETS]
    rows = {r["bucket"]: r for r in await conn.fetch(_WAITING_AGES, now, bounds[1:], sku)}
    # width_bucket numbers the buckets from 0 (below the first bound, also a placement "in the future").
    buckets = [
        WaitingAgeBucket(
            bucket=label,
            lower_hours=lower,
            upper_hours=bounds[i + 1] if i + 1 < len(bounds) else None,
            lines=rows[i]["lines"] if i in rows else 0,
            waiting_units=rows[i]["waiting"] if i in rows else 0,
        )
        for i, (label, lower) in enumerate(WAITING_AGE_BUCKETS)
    ]
    oldest = [r["oldest"] for r in rows.values()]
    return WaitingAgeing(
        generated_at=now,
        sku=sku,
        lines=sum(b.lines for b in buckets),
        waiting_units=sum(b.waiting_units for b in buckets),
        oldest_placed_at=min(oldest) if oldest else None,
        buckets=buckets,
    )
