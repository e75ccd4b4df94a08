"""The demand ledger (table procurement_demand_days, migration 007): what each SKU was asked for per UTC
day, counted from inventory's events in the consumer's transaction.

A line's demand is its reserved units (StockReserved) plus its shortfall (StockShort: backordered, or
rejected); StockReleased's dropped backordered units are the units lost to cancellations. A batch is
summed per (SKU, day) in memory and written in one statement, so the cost is O(messages) plus one row
per SKU and day the batch touched, whatever the history. No stream is loaded: most of these messages
are none of procurement's planning (the StockLevelChanged after each says its effect on stock).

A closed day is recorded in the SKU's stream by the review (review.py) and marked `recorded`; units
that arrive afterwards for it (a consumer that lagged past midnight) count on the SKU's next day that is
not recorded, so none is lost and a recorded day never changes under the estimate.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date
from typing import Any

import asyncpg

from backbone.contracts import Envelope
from backbone.contracts.events import StockReleased, StockReserved, StockShort
from backbone.db import columns
from services.procurement.replenishment import DemandDay

COUNTED_EVENTS = (StockReserved, StockShort, StockReleased)  # the consumer must hand them to the handler
RETENTION_DAYS = 400
_ATTEMPTS = 3  # a day can be recorded once between two attempts of the same write, no more often

# Units go to their day unless the review recorded it (or a later one) meanwhile: then to the day after
# the SKU's last recorded one. The sums are per target day (two days of a batch may share one). A group
# whose day the review recorded between this statement's snapshot and its write is skipped by the
# WHERE and returned, to be counted again (it then finds the day recorded).
_COUNT = """
WITH grouped AS (
    SELECT x.sku, greatest(x.day, coalesce(
               (SELECT max(r.day) + 1 FROM procurement_demand_days AS r WHERE r.sku = x.sku AND r.recorded),
               x.day)) AS day,
           sum(x.demanded)::bigint AS demanded, sum(x.backordered)::bigint AS backordered,
           sum(x.rejected)::bigint AS rejected, sum(x.cancelled)::bigint AS cancelled
    FROM unnest($1::text[], $2::date[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[])
         AS x(sku, day, demanded, backordered, rejected, cancelled)
    GROUP BY 1, 2
), written AS (
    INSERT INTO procurement_demand_days AS d (sku, day, demanded, backordered, rejected, cancelled)
    SELECT * FROM grouped
    ON CONFLICT (sku, day) DO UPDATE SET
        demanded = d.demanded + excluded.demanded,
        backordered = d.backordered + excluded.backordered,
        rejected = d.rejected + excluded.rejected,
        cancelled = d.cancelled + excluded.cancelled
    WHERE NOT d.recorded
    RETURNING d.sku, d.day
)
SELECT g.* FROM grouped AS g
WHERE NOT EXISTS (SELECT 1 FROM written AS w WHERE w.sku = g.sku AND w.day = g.day)
"""


@dataclass(slots=True)
class _Counts:
    demanded: int = 0
    backordered: int = 0
    rejected: int = 0
    cancelled: int = 0


def day_counts(envelopes: Sequence[Envelope[Any]]) -> dict[tuple[str, date], _Counts]:
    """The batch's demand per (SKU, UTC day of inventory's event)."""
    counts: dict[tuple[str, date], _Counts] = {}
    for envelope in envelopes:
        payload = envelope.payload
        if not isinstance(payload, COUNTED_EVENTS):
            continue
        key = (payload.sku, envelope.occurred_at.astimezone(UTC).date())
        match payload:
            case StockReserved():
                counts.setdefault(key, _Counts()).demanded += payload.quantity
            case StockShort():
                c = counts.setdefault(key, _Counts())
                c.demanded += payload.short_quantity  # the reserved part came as StockReserved
                if payload.disposition == "backordered":
                    c.backordered += payload.short_quantity
                else:
                    c.rejected += payload.short_quantity
            case StockReleased() if payload.dropped_backordered and payload.substitution_id is None:
                # Units switched to a substitute are not lost: the substitute's reservation counts them.
                counts.setdefault(key, _Counts()).cancelled += payload.dropped_backordered
    return counts


async def record(conn: asyncpg.Connection, envelopes: Sequence[Envelope[Any]]) -> None:
    """Add the batch's demand to the ledger (in the consumer's transaction)."""
    rows: list[tuple[Any, ...]] = sorted(
        (sku, day, c.demanded, c.backordered, c.rejected, c.cancelled)
        for (sku, day), c in day_counts(envelopes).items()
    )
    for _ in range(_ATTEMPTS):
        if not rows:
            return
        skipped = await conn.fetch(_COUNT, *columns(rows, 6))
        rows = [tuple(r) for r in skipped]
    if rows:
        raise RuntimeError(f"the demand of {sorted({r[0] for r in rows})} could not be counted; retrying")


@dataclass(frozen=True, slots=True)
class OpenDays:
    """A SKU's days not recorded yet, locked for the review's transaction."""

    closed: tuple[DemandDay, ...]  # before today, in day order: to record
    today_units: int  # the open day's demand so far


async def lock_open_days(conn: asyncpg.Connection, sku: str, today: date) -> OpenDays:
    rows = await conn.fetch(
        "SELECT day, demanded, backordered, rejected, cancelled FROM procurement_demand_days"
        " WHERE sku = $1 AND NOT recorded ORDER BY day FOR UPDATE",
        sku,
    )
    closed = tuple(
        DemandDay(r["day"], r["demanded"], r["backordered"], r["rejected"], r["cancelled"])
        for r in rows
        if r["day"] < today
    )
    today_units = sum(r["demanded"] for r in rows if r["day"] >= today)
    return OpenDays(closed, today_units)


async def mark_reviewed(conn: asyncpg.Connection, sku: str, today: date) -> None:
    """The closed days are in the stream now; the open day's units so far were looked at."""
    await conn.execute(
        "UPDATE procurement_demand_days SET recorded = (day < $2), reviewed_demanded = demanded"
        " WHERE sku = $1 AND NOT recorded",
        sku,
        today,
    )


async def open_day_units(conn: asyncpg.Connection | asyncpg.Pool, sku: str, today: date) -> int:
    value = await conn.fetchval(
        "SELECT coalesce(sum(demanded), 0)::bigint FROM procurement_demand_days"
        " WHERE sku = $1 AND NOT recorded AND day >= $2",
        sku,
        today,
    )
    return int(value)


async def forget_old(conn: asyncpg.Connection | asyncpg.Pool, today: date) -> None:
    """Drop recorded days past the retention: the ledger stays bounded."""
    await conn.execute(
        "DELETE FROM procurement_demand_days WHERE recorded AND day < $1::date - $2::int",
        today,
        RETENTION_DAYS,
    )
