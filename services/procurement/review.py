"""The replenishment review: records each SKU's closed demand days in its stream, tells it its suppliers'
lateness, and lets auto mode re-plan its reorder point, one SKU per transaction.

Every `OVERDUE_CHECK_INTERVAL_SECONDS` a round visits, a page at a time:
- the SKUs of the demand ledger with a closed day not recorded yet (the first round after midnight
  finds every SKU that sold the day before), and the SKUs in `auto` mode whose open day sold more since
  their last review (a promotion raises the reorder point within the interval, not the next morning);
- once per day, also every SKU with an open purchase order: its suppliers' lateness moves its ETAs even
  on a day it sells nothing.
Each visit locks the SKU's open ledger rows, reads its suppliers' lateness (supplier_lateness: P80 of
days late, after at least 3 receipts), runs `ReviewReplenishment` through the decision path (stream lock,
load, decide, append, read models) and marks the rows, all in one transaction; the domain records a day
only once, so a retried or doubled review changes nothing. Paging, retries and health are
backbone.jobs': a SKU that fails is logged and tried again next round.
"""

from collections.abc import Callable
from datetime import date
from typing import Any

import asyncpg

from backbone.aggregate import StreamRepository
from backbone.contracts import Envelope
from backbone.decider import Input
from backbone.health import HealthReport
from backbone.jobs import PAGE_SIZE, for_each_candidate, in_own_transaction, run_rounds
from backbone.runtime import component_health
from services.procurement import demand, projections
from services.procurement.domain import Incoming, ProcurementState, ReviewReplenishment, SupplierDelay
from services.procurement.handlers import apply
from services.procurement.planning import PurchasePolicy
from services.procurement.reliability import LatenessHistory, adjusted_delay

_DUE = """
SELECT DISTINCT d.sku FROM procurement_demand_days AS d
WHERE NOT d.recorded AND d.sku > $2::text
  AND (d.day < $1::date
       OR (d.demanded > d.reviewed_demanded
           AND EXISTS (SELECT 1 FROM procurement_replenishment AS r WHERE r.sku = d.sku AND r.mode = 'auto')))
ORDER BY d.sku
LIMIT $3::int
"""

_WITH_OPEN_POS = """
SELECT DISTINCT sku FROM purchase_orders WHERE status = 'open' AND sku > $1::text ORDER BY sku LIMIT $2::int
"""

_LATENESS = """
SELECT l.supplier_id, l.days_late, l.receipts FROM supplier_lateness AS l
WHERE l.supplier_id IN (SELECT supplier_id FROM supplier_terms WHERE sku = $1)
ORDER BY l.supplier_id, l.days_late
"""


async def supplier_delays(conn: asyncpg.Connection, sku: str) -> tuple[tuple[str, SupplierDelay], ...]:
    """The lateness of each of the SKU's suppliers that has receipts (at most 151 rows each)."""
    histograms: dict[str, list[tuple[int, int]]] = {}
    for r in await conn.fetch(_LATENESS, sku):
        histograms.setdefault(r["supplier_id"], []).append((r["days_late"], r["receipts"]))
    delays = []
    for supplier_id, counts in histograms.items():
        history = LatenessHistory(tuple(counts))
        delays.append((supplier_id, SupplierDelay(adjusted_delay(history), history.count)))
    return tuple(delays)


async def review_one(
    conn: asyncpg.Connection,
    repository: StreamRepository[ProcurementState],
    sku: str,
    *,
    today: date,
    policy: PurchasePolicy,
) -> bool:
    """Review the SKU in the caller's transaction; True if that decided something."""
    days = await demand.lock_open_days(conn, sku, today)
    command = ReviewReplenishment(
        sku=sku,
        closed_days=days.closed,
        today_units=days.today_units,
        supplier_delays=await supplier_delays(conn, sku),
    )
    inputs: list[Input[Incoming | Envelope[Any]]] = [
        Input(projections.stream_id(sku), command, correlation_id=f"review:{sku}:{today}")
    ]
    decided = await apply(conn, repository, inputs, today=today, policy=policy)
    await demand.mark_reviewed(conn, sku, today)
    return bool(decided)


async def review_round(
    pool: asyncpg.Pool,
    repository: StreamRepository[ProcurementState],
    *,
    today: date,
    policy: PurchasePolicy,
    daily: bool,
    page_size: int = PAGE_SIZE,
) -> list[str]:
    """One round (see the module docstring); `daily` adds the SKUs with open POs. Returns the SKUs that
    got events."""

    async def due(after: str, limit: int) -> list[str]:
        return [r["sku"] for r in await pool.fetch(_DUE, today, after, limit)]

    async def with_open_pos(after: str, limit: int) -> list[str]:
        return [r["sku"] for r in await pool.fetch(_WITH_OPEN_POS, after, limit)]

    async def visit(sku: str) -> bool:
        async def review(conn: asyncpg.Connection) -> bool:
            return await review_one(conn, repository, sku, today=today, policy=policy)

        return await in_own_transaction(pool, review)

    changed = (await for_each_candidate(due, visit, what="replenishment review", page_size=page_size)).changed
    if daily:
        done = await for_each_candidate(with_open_pos, visit, what="supplier lateness", page_size=page_size)
        changed.extend(sku for sku in done.changed if sku not in changed)
        await demand.forget_old(pool, today)
    return changed


async def run(
    pool: asyncpg.Pool,
    repository: StreamRepository[ProcurementState],
    *,
    clock: Callable[[], date],
    policy: PurchasePolicy,
    check_interval_seconds: float,
    health: HealthReport | None = None,
) -> None:
    """A round per interval until cancelled; the first of each day of `clock` is the daily one."""
    done: list[date] = []  # the day of the last daily round that went through

    async def one_round() -> bool:
        today = clock()
        daily = not done or done[-1] != today
        await review_round(pool, repository, today=today, policy=policy, daily=daily)
        if daily:
            done[:] = [today]
        return False

    await run_rounds(
        one_round,
        interval_seconds=check_interval_seconds,
        health=health or component_health(),
        what="replenishment review",
    )
