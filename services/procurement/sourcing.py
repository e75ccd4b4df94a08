"""The startup catch-up of sourcing: SKUs whose supplier catalogue was set before SkuSourcingChanged
existed were never published, so inventory (UNKNOWN_SKU_POLICY=reject) refuses orders for them while
it never stocked them. At startup every SKU with suppliers whose stream has no SkuSourcingChanged is
sent `PublishSourcing` through the usual decision path (stream lock, load, decide, append: the event
is in the event store and the outbox).

The candidates are one query: the SKUs of the supplier_terms read model (its key) that the partial
index `event_store_sourcing` (migration 004) finds no SkuSourcingChanged for, a page at a time; then
only the candidates are loaded. The domain decides under the stream's lock whether inventory was told
(the query only nominates), so a second run, a second instance or a catalogue set meanwhile publishes
nothing twice; once a round is through, the next finds no candidate.

A SKU that fails is logged and skipped; the round is then tried again after `retry_seconds`, as it is
while the database is away (the job reports itself degraded meanwhile). Once a round found nothing to
fail, the job is done and waits for the service to stop (a background job that ends is restarted).
"""

from collections.abc import Callable
from datetime import date

import asyncpg

from backbone.aggregate import StreamRepository
from backbone.health import HealthReport
from backbone.jobs import PAGE_SIZE, Round, for_each_candidate, run_rounds
from backbone.runtime import component_health
from services.procurement.domain import ProcurementState, PublishSourcing
from services.procurement.planning import PurchasePolicy
from services.procurement.projections import STREAM_PREFIX
from services.procurement.scheduler import decide_one

RETRY_SECONDS = 30.0

_UNPUBLISHED = """
SELECT DISTINCT t.sku FROM supplier_terms AS t
WHERE t.sku > $1::text
  AND NOT EXISTS (SELECT 1 FROM event_store AS e
                  WHERE e.stream_id = $2::text || t.sku AND e.event_type = 'SkuSourcingChanged')
ORDER BY t.sku
LIMIT $3::int
"""


async def unpublished(pool: asyncpg.Pool, *, after: str = "", limit: int = PAGE_SIZE) -> list[str]:
    """SKUs after `after` with suppliers whose stream never published its sourcing, in order."""
    return [r["sku"] for r in await pool.fetch(_UNPUBLISHED, after, STREAM_PREFIX, limit)]


async def publish_unpublished(
    pool: asyncpg.Pool,
    repository: StreamRepository[ProcurementState],
    *,
    today: date,
    policy: PurchasePolicy,
    page_size: int = PAGE_SIZE,
) -> Round:
    """One round: the SKUs whose sourcing got published, and those that failed."""

    async def page(after: str, limit: int) -> list[str]:
        return await unpublished(pool, after=after, limit=limit)

    async def visit(sku: str) -> bool:
        command = PublishSourcing(sku=sku)
        return await decide_one(
            pool, repository, command, correlation_id=f"sourcing:{sku}", today=today, policy=policy
        )

    return await for_each_candidate(page, visit, what="sourcing catch-up", page_size=page_size)


async def run(
    pool: asyncpg.Pool,
    repository: StreamRepository[ProcurementState],
    *,
    clock: Callable[[], date],
    policy: PurchasePolicy,
    retry_seconds: float = RETRY_SECONDS,
    health: HealthReport | None = None,
) -> None:
    """Rounds until one goes through without a failure, then idle until cancelled."""

    async def one_round() -> bool:
        done = await publish_unpublished(pool, repository, today=clock(), policy=policy)
        if done.failed:
            raise RuntimeError(f"{len(done.failed)} SKU(s) failed, e.g. {done.failed[0]!r}")
        return True

    await run_rounds(
        one_round,
        interval_seconds=retry_seconds,
        health=health or component_health(),
        what="sourcing catch-up",
    )
