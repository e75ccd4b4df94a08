"""A sold-out SKU with 20,000 waiting lines: one more order, a receipt and a cancellation each write the
same rows and publish the same events as on a SKU with 10 (counted, not timed)."""

from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest

from backbone.contracts import Envelope
from backbone.db import BACKBONE_MIGRATIONS, migrate, migration_files
from backbone.eventstore import EventStore
from backbone.testing.databases import cost_of
from services.inventory.app import SERVICE
from services.inventory.handlers import make_handler
from services.inventory.priority import FIRST_COME_FIRST_SERVED
from tests.integration.inventory.harness import cancellation, order, receipt

pytestmark = pytest.mark.integration

HOT_QUEUE = 20_000


async def cost(conn: asyncpg.Connection, handle: Any, envelopes: Sequence[Envelope[Any]]) -> dict[str, Any]:
    return await cost_of(conn, lambda c: handle(c, envelopes))


async def queue_up(conn: asyncpg.Connection, handle: Any, sku: str, lines: int) -> None:
    async with conn.transaction():
        await handle(conn, [receipt(sku, 1)])
    for start in range(0, lines + 1, 2_000):
        async with conn.transaction():
            await handle(
                conn, [order(f"{sku}-{n}", sku, 1) for n in range(start, min(start + 2_000, lines + 1))]
            )


async def test_changes_cost_the_same_at_20000_waiting_lines_as_at_10(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, migration_files(BACKBONE_MIGRATIONS, SERVICE.migrations))
        handle = make_handler(EventStore(SERVICE.registry), FIRST_COME_FIRST_SERVED)
        costs: dict[str, list[dict[str, Any]]] = {}
        for sku, waiting in (("SMALL", 10), ("HOT", HOT_QUEUE)):
            await queue_up(conn, handle, sku, waiting)  # 1 in stock, waiting + 1 ordered
            assert await conn.fetchval("SELECT waiting_lines FROM stock WHERE sku = $1", sku) == waiting
            middle = f"{sku}-{waiting // 2}"
            costs[sku] = [
                await cost(conn, handle, [order(f"{sku}-late", sku, 1)]),
                await cost(conn, handle, [receipt(sku, 3)]),
                await cost(conn, handle, [cancellation(middle, sku, 1)]),
            ]
        assert costs["HOT"] == costs["SMALL"]
        joined, received, cancelled = costs["HOT"]
        # A command ends with one StockLevelChanged (the SKU's figures), however many lines it touched; a
        # reservation's own events say what it did.
        assert joined["published"] == ["StockShort", "BackorderQueueChanged"]
        assert received["published"] == [
            *["BackorderFulfilled", "BackorderQueueChanged"] * 3,
            "StockLevelChanged",
        ]
        assert cancelled["published"] == ["StockReleased", "BackorderQueueChanged", "StockLevelChanged"]
        # StockShort, BackorderQueued (internal) and BackorderQueueChanged; one queue row; one stock row.
        assert joined["rows"] == {"event_store": 3, "outbox": 2, "backorder_queue": 1, "stock": 1}
    finally:
        await conn.close()
