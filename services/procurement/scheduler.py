"""The overdue re-plan: once a day (and at startup) every SKU with an open PO due before today is
re-planned, so that its waiting lines are told the revised date instead of a passed one.

Every `OVERDUE_CHECK_INTERVAL_SECONDS` the job asks the clock for the day; on a day it has not done yet
(the first one at startup) it asks the `purchase_orders` read model which SKUs have an open PO due
before that day, and runs `ReplanOverdue` on each SKU's stream in its own transaction (handlers.apply:
stream lock, load, decide, append). The read model only nominates candidates: the domain revises a PO
only while it is overdue on the stream's state, under its lock, and keeps the revised date (today +
OVERDUE_GRACE_DAYS), so the lines hear of a slip exactly once, also when the job runs twice a day, on
several instances, or after any other decision already revised the PO (every decision does).
Paging, retries and health are backbone.jobs': one SKU that fails is logged and skipped, the next round
tries it again; while the database is away the job reports itself degraded and tries again after the
interval.
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
from services.procurement import projections
from services.procurement.domain import Incoming, ProcurementState, ReplanOverdue
from services.procurement.handlers import apply
from services.procurement.planning import PurchasePolicy

_OVERDUE = """
SELECT DISTINCT sku FROM purchase_orders
WHERE status = 'open' AND due_date < $1::date AND sku > $2::text
ORDER BY sku
LIMIT $3::int
"""


async def replan_one(
    pool: asyncpg.Pool,
    repository: StreamRepository[ProcurementState],
    sku: str,
    *,
    today: date,
    policy: PurchasePolicy,
) -> bool:
    """Re-plan the SKU's overdue POs; True if that decided something."""
    command = ReplanOverdue(sku=sku)
    return await decide_one(
        pool, repository, command, correlation_id=f"overdue:{sku}:{today}", today=today, policy=policy
    )


async def decide_one(
    pool: asyncpg.Pool,
    repository: StreamRepository[ProcurementState],
    command: Incoming,
    *,
    correlation_id: str,
    today: date,
    policy: PurchasePolicy,
) -> bool:
    """A job's command on its SKU's stream, in a transaction of its own; True if it decided something."""
    inputs: list[Input[Incoming | Envelope[Any]]] = [
        Input(projections.stream_id(command.sku), command, correlation_id=correlation_id)
    ]

    async def decide(conn: asyncpg.Connection) -> bool:
        return bool(await apply(conn, repository, inputs, today=today, policy=policy))

    return await in_own_transaction(pool, decide)


async def replan_overdue(
    pool: asyncpg.Pool,
    repository: StreamRepository[ProcurementState],
    *,
    today: date,
    policy: PurchasePolicy,
    page_size: int = PAGE_SIZE,
) -> list[str]:
    """One round: every SKU with an open PO due before `today` is re-planned once. Returns those that
    got events (their POs were revised)."""

    async def page(after: str, limit: int) -> list[str]:
        return [r["sku"] for r in await pool.fetch(_OVERDUE, today, after, limit)]

    async def visit(sku: str) -> bool:
        return await replan_one(pool, repository, sku, today=today, policy=policy)

    done = await for_each_candidate(page, visit, what="overdue re-plan", page_size=page_size)
    return done.changed


async def run(
    pool: asyncpg.Pool,
    repository: StreamRepository[ProcurementState],
    *,
    clock: Callable[[], date],
    policy: PurchasePolicy,
    check_interval_seconds: float,
    health: HealthReport | None = None,
) -> None:
    """A round at startup and then one per day of `clock`, until cancelled."""
    done: list[date] = []  # the day of the last round that went through

    async def one_round() -> bool:
        today = clock()
        if not done or done[-1] != today:
            await replan_overdue(pool, repository, today=today, policy=policy)
            done[:] = [today]
        return False

    await run_rounds(
        one_round,
        interval_seconds=check_interval_seconds,
        health=health or component_health(),
        what="overdue re-plan",
    )
