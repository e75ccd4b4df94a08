"""The overdue re-plan: once a day (and at startup) every SKU with an open PO due before today is
re-planned, so that its waiting lines are told the revised date instead of a passed one.

Every `OVERDUE_CHECK_INTERVAL_SECONDS` the job asks the clock for the day; on a day it has not done yet
(the first one at startup) it asks the `purchase_orders` read model which SKUs have an open PO due
before that day, and runs `ReplanOverdue` on each SKU's stream in its own transaction (handlers.apply:
stream lock, load, decide, append). The read model only nominates candidates: the domain revises a PO
only while it is overdue on the stream's state, under its lock, and keeps the revised date (today +
OVERDUE_GRACE_DAYS), so the lines hear of a slip exactly once, also when the job runs twice a day, on
several instances, or after any other decision already revised the PO (every decision does).
One SKU that fails is logged and skipped; the next round tries it again. While the database is away a
round ends at the first failure, the job reports itself degraded (GET /health) and tries again after
the interval.
"""

import asyncio
from collections.abc import Callable
from datetime import date
from typing import Any

import asyncpg
import structlog

from backbone.aggregate import StreamRepository
from backbone.contracts import Envelope
from backbone.db import DATABASE_UNAVAILABLE
from backbone.decider import Input
from backbone.eventstore import ConcurrencyError, EventStore
from backbone.health import HealthReport
from backbone.runtime import component_health
from services.procurement import projections
from services.procurement.domain import Incoming, ProcurementState, ReplanOverdue
from services.procurement.handlers import apply
from services.procurement.planning import PurchasePolicy

log = structlog.get_logger(__name__)

ATTEMPTS = 5  # per SKU and round, on ConcurrencyError
PAGE_SIZE = 100

_OVERDUE = """
SELECT DISTINCT sku FROM purchase_orders
WHERE status = 'open' AND due_date < $1::date AND sku > $2::text
ORDER BY sku
LIMIT $3::int
"""


async def replan_one(
    pool: asyncpg.Pool,
    store: EventStore,
    repository: StreamRepository[ProcurementState],
    sku: str,
    *,
    today: date,
    policy: PurchasePolicy,
) -> bool:
    """Re-plan the SKU's overdue POs; True if that decided something."""
    command = ReplanOverdue(sku=sku)
    return await decide_one(
        pool, store, repository, command, correlation_id=f"overdue:{sku}:{today}", today=today, policy=policy
    )


async def decide_one(
    pool: asyncpg.Pool,
    store: EventStore,
    repository: StreamRepository[ProcurementState],
    command: Incoming,
    *,
    correlation_id: str,
    today: date,
    policy: PurchasePolicy,
) -> bool:
    """A job's command on its SKU's stream, in a transaction of its own (retried on a concurrent
    append); True if it decided something."""
    inputs: list[Input[Incoming | Envelope[Any]]] = [
        Input(projections.stream_id(command.sku), command, correlation_id=correlation_id)
    ]
    for attempt in range(1, ATTEMPTS + 1):
        try:
            async with pool.acquire() as conn, conn.transaction():
                return bool(await apply(conn, store, repository, inputs, today=today, policy=policy))
        except ConcurrencyError:
            if attempt == ATTEMPTS:
                raise
            await asyncio.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


async def replan_overdue(
    pool: asyncpg.Pool,
    store: EventStore,
    repository: StreamRepository[ProcurementState],
    *,
    today: date,
    policy: PurchasePolicy,
    page_size: int = PAGE_SIZE,
) -> list[str]:
    """One round: every SKU with an open PO due before `today` is re-planned once. Returns those that
    got events (their POs were revised)."""
    replanned: list[str] = []
    after = ""
    while True:
        rows = await pool.fetch(_OVERDUE, today, after, page_size)
        for row in rows:
            sku = row["sku"]
            try:
                if await replan_one(pool, store, repository, sku, today=today, policy=policy):
                    replanned.append(sku)
                    log.info("overdue purchase orders re-planned", sku=sku, today=today.isoformat())
            except DATABASE_UNAVAILABLE:
                raise  # the others would fail alike: the round ends, the next one goes on
            except Exception:
                log.exception("overdue re-plan failed; retrying next round", sku=sku)
        if len(rows) < page_size:
            return replanned
        after = rows[-1]["sku"]


async def run(
    pool: asyncpg.Pool,
    store: EventStore,
    repository: StreamRepository[ProcurementState],
    *,
    clock: Callable[[], date],
    policy: PurchasePolicy,
    check_interval_seconds: float,
    health: HealthReport | None = None,
) -> None:
    """A round at startup and then one per day of `clock`, until cancelled; a failed round is logged,
    reported in `health` and retried after the interval."""
    health = health or component_health()
    done: date | None = None
    while True:
        today = clock()
        if today != done:
            try:
                await replan_overdue(pool, store, repository, today=today, policy=policy)
                done = today
                health.ok()
            except DATABASE_UNAVAILABLE as e:
                if health.current.status == "ok":
                    log.warning("overdue re-plan waits for the database", error=repr(e))
                health.degraded(f"database unreachable: {type(e).__name__}: {e}")
            except Exception as e:
                health.degraded(f"overdue re-plan round failed: {type(e).__name__}: {e}")
                log.exception("overdue re-plan round failed")
        await asyncio.sleep(check_interval_seconds)
