"""The auto-cancel scheduler: cancels backordered units whose order's maximum wait is over.

Every `AUTO_CANCEL_INTERVAL_SECONDS` it asks the `orders` read model which orders still wait past their
deadline (placed_at + the order's max_wait_days, or DEFAULT_MAX_WAIT_DAYS), and runs the domain's check
on each order's stream in its own transaction (handlers.apply: stream lock, load, decide, append). The
read model only nominates candidates; the decision is taken on the stream's state under its lock, and
the domain cancels only units still waiting and not already pending cancellation, so the OrderCancelled
(reason max_wait_exceeded, only_waiting) is emitted once, also with several instances, restarts or a
lagging read model; the refund follows inventory's StockReleased. Until that answer the order still
counts as waiting, and the check decides nothing for it.
Paging, retries and health are backbone.jobs': one order that fails is logged and skipped, the next
round tries it again; while the database is away the job reports itself degraded.
"""

from datetime import UTC, datetime

import asyncpg

from backbone.aggregate import StreamRepository
from backbone.decider import Input
from backbone.health import HealthReport
from backbone.jobs import PAGE_SIZE, for_each_candidate, in_own_transaction, run_rounds
from backbone.runtime import component_health
from services.order.domain import OrderState, order_stream_id
from services.order.handlers import AutoCancelCheck, Incoming, apply

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
    repository: StreamRepository[OrderState],
    check: AutoCancelCheck,
) -> bool:
    """Run the check on the order's stream; True if it cancelled something."""
    inputs: list[Input[Incoming]] = [
        Input(order_stream_id(check.order_id), check, correlation_id=check.order_id)
    ]

    async def decide(conn: asyncpg.Connection) -> bool:
        return bool(await apply(conn, repository, inputs))

    return await in_own_transaction(pool, decide)


async def cancel_overdue(
    pool: asyncpg.Pool,
    repository: StreamRepository[OrderState],
    *,
    now: datetime,
    default_max_wait_days: int,
    page_size: int = PAGE_SIZE,
) -> list[str]:
    """One round: every order overdue at `now` is checked once. Returns the orders that got cancelled."""

    async def page(after: str, limit: int) -> list[str]:
        return [r["order_id"] for r in await pool.fetch(_OVERDUE, default_max_wait_days, now, after, limit)]

    async def visit(order_id: str) -> bool:
        return await cancel_one(pool, repository, AutoCancelCheck(order_id, now, default_max_wait_days))

    done = await for_each_candidate(
        page, visit, what="auto-cancel of overdue backorders", page_size=page_size
    )
    return done.changed


async def run(
    pool: asyncpg.Pool,
    repository: StreamRepository[OrderState],
    *,
    interval_seconds: float,
    default_max_wait_days: int,
    health: HealthReport | None = None,
) -> None:
    """Run rounds until cancelled, `interval_seconds` apart."""

    async def one_round() -> bool:
        now = datetime.now(UTC)
        await cancel_overdue(pool, repository, now=now, default_max_wait_days=default_max_wait_days)
        return False

    await run_rounds(
        one_round, interval_seconds=interval_seconds, health=health or component_health(), what="auto-cancel"
    )
