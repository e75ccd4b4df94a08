"""The auto-cancel scheduler: cancels backordered units whose order's maximum wait is over.

Every `AUTO_CANCEL_INTERVAL_SECONDS` it asks the `orders` read model which orders still wait past their
deadline (placed_at + the order's max_wait_days, or DEFAULT_MAX_WAIT_DAYS), and runs the domain's check
on each order's stream in its own transaction (handlers.apply: stream lock, load, decide, append). The
read model only nominates candidates; the decision is taken on the stream's state under its lock, and
the domain cancels only units still waiting and not already pending cancellation, so the OrderCancelled
(reason max_wait_exceeded, only_waiting) is emitted once, also with several instances, restarts or a
lagging read model; the refund follows inventory's StockReleased. Until that answer the order still
counts as waiting, and the check decides nothing for it.
One order that fails is logged and skipped; the next round tries it again. While the database is away
a round ends at the first failure, the job reports itself degraded (GET /health) and the next round,
after the interval, tries again.
"""

import asyncio
from datetime import UTC, datetime

import asyncpg
import structlog

from backbone.aggregate import StreamRepository
from backbone.db import DATABASE_UNAVAILABLE
from backbone.decider import Input
from backbone.eventstore import ConcurrencyError, EventStore
from backbone.health import HealthReport
from backbone.runtime import component_health
from services.order.domain import OrderState, order_stream_id
from services.order.handlers import AutoCancelCheck, Incoming, apply

log = structlog.get_logger(__name__)

ATTEMPTS = 5  # per order and round, on ConcurrencyError
PAGE_SIZE = 100

_OVERDUE = """
SELECT order_id FROM orders
WHERE waiting > 0
  AND placed_at + make_interval(days => coalesce(max_wait_days, $1::int)) <= $2::timestamptz
  AND order_id > $3::text
ORDER BY order_id
LIMIT $4::int
"""


async def cancel_one(
    pool: asyncpg.Pool,
    store: EventStore,
    repository: StreamRepository[OrderState],
    check: AutoCancelCheck,
) -> bool:
    """Run the check on the order's stream; True if it cancelled something."""
    inputs: list[Input[Incoming]] = [
        Input(order_stream_id(check.order_id), check, correlation_id=check.order_id)
    ]
    for attempt in range(1, ATTEMPTS + 1):
        try:
            async with pool.acquire() as conn, conn.transaction():
                return bool(await apply(conn, store, repository, inputs))
        except ConcurrencyError:
            if attempt == ATTEMPTS:
                raise
            await asyncio.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


async def cancel_overdue(
    pool: asyncpg.Pool,
    store: EventStore,
    repository: StreamRepository[OrderState],
    *,
    now: datetime,
    default_max_wait_days: int,
    page_size: int = PAGE_SIZE,
) -> list[str]:
    """One round: every order overdue at `now` is checked once. Returns the orders that got cancelled."""
    cancelled: list[str] = []
    after = ""
    while True:
        rows = await pool.fetch(_OVERDUE, default_max_wait_days, now, after, page_size)
        for row in rows:
            order_id = row["order_id"]
            try:
                if await cancel_one(
                    pool, store, repository, AutoCancelCheck(order_id, now, default_max_wait_days)
                ):
                    cancelled.append(order_id)
                    log.info("overdue backorders cancelled", order_id=order_id)
            except DATABASE_UNAVAILABLE:
                raise  # the others would fail alike: the round ends, the next one goes on
            except Exception:
                log.exception("auto-cancel failed; retrying next round", order_id=order_id)
        if len(rows) < page_size:
            return cancelled
        after = rows[-1]["order_id"]


async def run(
    pool: asyncpg.Pool,
    store: EventStore,
    repository: StreamRepository[OrderState],
    *,
    interval_seconds: float,
    default_max_wait_days: int,
    health: HealthReport | None = None,
) -> None:
    """Run rounds until cancelled; a failed round (e.g. the database is away) is logged, reported in
    `health` and retried after the interval."""
    health = health or component_health()
    while True:
        try:
            await cancel_overdue(
                pool, store, repository, now=datetime.now(UTC), default_max_wait_days=default_max_wait_days
            )
            health.ok()
        except DATABASE_UNAVAILABLE as e:
            if health.current.status == "ok":
                log.warning("auto-cancel waits for the database", error=repr(e))
            health.degraded(f"database unreachable: {type(e).__name__}: {e}")
        except Exception as e:
            health.degraded(f"auto-cancel round failed: {type(e).__name__}: {e}")
            log.exception("auto-cancel round failed")
        await asyncio.sleep(interval_seconds)
