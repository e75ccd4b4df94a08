"""A sold-out SKU with 20,000 waiting lines: one more line joining, a receipt that fills the head, a
cancellation in the middle (which shrinks the unconfirmed PO) and inventory's stock level after it each
write the same rows and publish the same events in procurement as on a SKU with 10 (counted, not timed)."""

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import pytest

from backbone.contracts import Envelope, new_envelope
from backbone.contracts.events import (
    BackorderFulfilled,
    GoodsReceived,
    PurchaseOrderAcknowledged,
    StockLevelChanged,
    StockReleased,
)
from backbone.db import BACKBONE_MIGRATIONS, migrate, migration_files
from backbone.decider import Input
from backbone.eventstore import EventStore
from backbone.testing.databases import cost_of
from services.procurement.app import SERVICE
from services.procurement.domain import SetSupplierTerms
from services.procurement.handlers import apply, make_handler, new_repository
from services.procurement.planning import DEFAULT_POLICY
from services.procurement.projections import rebuild, stream_id
from tests.integration.procurement.harness import DAY0, FixedClock, day, read_models
from tests.unit.procurement.scenario import InventoryQueue, terms

pytestmark = pytest.mark.integration

HOT_QUEUE = 20_000
BATCH = 5_000


async def cost(conn: asyncpg.Connection, handle: Any, envelopes: Sequence[Envelope[Any]]) -> dict[str, Any]:
    return await cost_of(conn, lambda c: handle(c, envelopes))


def received(sku: str, po_id: str, quantity: int, on: date) -> Envelope[Any]:
    received_at = datetime(on.year, on.month, on.day, 9, tzinfo=UTC)
    return new_envelope(
        GoodsReceived(
            receipt_id=f"GRN-{sku}",
            po_id=po_id,
            supplier_id="S1",
            sku=sku,
            quantity=quantity,
            received_at=received_at,
        )
    )


def filled(queue: InventoryQueue, receipt_id: str) -> list[Envelope[Any]]:
    """Inventory fills the head line (one unit) and says it left the queue."""
    head = queue.lines[0]
    fill = BackorderFulfilled(
        order_id=head.order_id,
        line_id="1",
        sku=queue.sku,
        quantity=head.quantity,
        remaining_backordered=0,
        source=receipt_id,
        priority_reason="1st in the backorder queue",
    )
    return [new_envelope(fill), new_envelope(queue.reduce(head.order_id, 0))]


def stock_level(queue: InventoryQueue, cause: Envelope[Any]) -> Envelope[Any]:
    """Inventory's figures of a sold-out SKU, as the effect of `cause`."""
    level = StockLevelChanged(sku=queue.sku, on_hand=0, reserved=0, available=0, backordered=queue.units)
    return new_envelope(level, cause=cause)


def cancelled(queue: InventoryQueue, position: int) -> list[Envelope[Any]]:
    line = queue.lines[position - 1]
    release = StockReleased(
        order_id=line.order_id,
        line_id="1",
        sku=queue.sku,
        released_reserved=0,
        dropped_backordered=line.quantity,
    )
    return [new_envelope(release), new_envelope(queue.reduce(line.order_id, 0))]


async def set_suppliers(conn: asyncpg.Connection, store: EventStore, sku: str, moq: int) -> None:
    catalogue = SetSupplierTerms(sku=sku, suppliers=[terms("S1", lead_time_days=10, moq=moq)], actor="buyer")
    inputs: list[Input[Any]] = [Input(stream_id(sku), catalogue)]
    async with conn.transaction():
        await apply(conn, new_repository(store), inputs, today=DAY0, policy=DEFAULT_POLICY)


async def backordered_sku(
    conn: asyncpg.Connection, store: EventStore, handle: Any, clock: FixedClock, sku: str, lines: int
) -> InventoryQueue:
    """`lines` one-unit lines wait for PO 1 (confirmed for all but 2 units, due day 10) and PO 2 (the 2
    units it refused, due day 12, unconfirmed)."""
    clock.today = DAY0
    await set_suppliers(conn, store, sku, moq=lines)  # the first line buys for all (a quick setup)
    queue = InventoryQueue(sku=sku)
    for start in range(0, lines, BATCH):
        joins = [new_envelope(queue.join(f"{sku}-{n}", 1)) for n in range(start, min(start + BATCH, lines))]
        async with conn.transaction():
            await handle(conn, joins)
    await set_suppliers(conn, store, sku, moq=1)
    clock.today = day(2)
    ack = PurchaseOrderAcknowledged(
        po_id=f"PO-{sku}-0001", sku=sku, confirmed_quantity=lines - 2, confirmed_date=day(10)
    )
    async with conn.transaction():
        await handle(conn, [new_envelope(ack)])
    return queue


async def test_changes_cost_the_same_at_20000_waiting_lines_as_at_10(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, migration_files(BACKBONE_MIGRATIONS, SERVICE.migrations))
        store, clock = EventStore(SERVICE.registry), FixedClock()
        handle = make_handler(store, DEFAULT_POLICY, clock)
        costs: dict[str, list[dict[str, Any]]] = {}
        for sku, waiting in (("SMALL", 10), ("HOT", HOT_QUEUE)):
            queue = await backordered_sku(conn, store, handle, clock, sku, waiting)
            assert await conn.fetchval("SELECT count(*) FROM line_etas WHERE sku = $1", sku) == waiting
            late = [new_envelope(queue.join(f"{sku}-late", 1))]
            receipt = [received(sku, f"PO-{sku}-0001", 3, day(2))]
            fills = [e for _ in range(3) for e in filled(queue, f"GRN-{sku}")]
            costs[sku] = [
                await cost(conn, handle, late),
                await cost(conn, handle, [*receipt, *fills]),
                await cost(conn, handle, cancelled(queue, len(queue.lines) // 2)),
                await cost(conn, handle, [stock_level(queue, cause=receipt[0])]),
            ]
            # The level names the receipt as its cause: the receipt is counted once, not in flight.
            assert await conn.fetchval("SELECT free_stock FROM procurement_skus WHERE sku = $1", sku) == 0
            etas = await conn.fetch(
                "SELECT eta, count(*) FROM line_etas WHERE sku = $1 GROUP BY eta ORDER BY eta", sku
            )
            # PO 1's outstanding units (all but the 2 refused and the 3 received) serve the lines ahead,
            # one of which the cancellation moved up from PO 2; PO 2 serves the last 2.
            assert [(r["eta"], r["count"]) for r in etas] == [(day(10), waiting - 5), (day(12), 2)]
        assert costs["HOT"] == costs["SMALL"]
        joined, received_and_filled, cancellation, level = costs["HOT"]
        # The line joins (internal), PO 2 grows by its unit, and it hears its ETA: three rows of the log, two
        # published; one row of the line, of the PO and of the SKU.
        assert joined["appended"] == ["QueueLineChanged", "PurchaseOrderIssued", "BackorderEtaUpdated"]
        assert joined["published"] == ["PurchaseOrderIssued", "BackorderEtaUpdated"]
        assert joined["rows"] == {
            "event_store": 3,
            "outbox": 2,
            "line_etas": 1,
            "purchase_orders": 1,
            "procurement_skus": 1,
        }
        # The receipt, then three fills; the "left" after each fill confirms it and writes nothing. The
        # three lines about to be filled are not told "today". The receipt counts for its supplier's
        # reliability: one row of its lateness and one of its planned dates.
        assert received_and_filled["appended"] == ["ReceiptRecorded", *["BackorderLineReduced"] * 3]
        assert received_and_filled["published"] == []
        assert received_and_filled["rows"] == {
            "event_store": 4,
            "line_etas": 3,
            "purchase_orders": 1,
            "procurement_skus": 1,
            "supplier_lateness": 1,
            "supplier_eta_accuracy": 1,
        }
        # The cancelled line leaves; the unconfirmed PO 2 shrinks by its unit (revision 3 of 2 units), and
        # the first line PO 2 served moves up into PO 1: one ETA update. The demand ledger counts the
        # cancelled unit on its day: one row.
        assert cancellation["appended"] == ["QueueLineChanged", "PurchaseOrderIssued", "BackorderEtaUpdated"]
        assert cancellation["published"] == ["PurchaseOrderIssued", "BackorderEtaUpdated"]
        assert cancellation["rows"] == {
            "event_store": 3,
            "outbox": 2,
            "line_etas": 2,
            "purchase_orders": 1,
            "procurement_skus": 1,
            "procurement_demand_days": 1,
        }
        # Inventory's figures after the receipt it counted: the receipt is no longer in flight (one
        # internal fact), free stock stays 0, and nothing is re-planned.
        assert level["appended"] == ["StockLevelRecorded"]
        assert level["published"] == []
        assert level["rows"] == {"event_store": 1, "procurement_skus": 1}
    finally:
        await conn.close()

    # The rows written line by line are exactly those a rebuild derives from the log.
    live = await read_models(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            assert await rebuild(conn, store) == 2
    finally:
        await conn.close()
    assert await read_models(database_url) == live
