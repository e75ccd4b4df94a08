from decimal import Decimal

from backbone.contracts.envelope import EventPayload
from backbone.contracts.events import BackorderFulfilled, BackorderQueueChanged, StockLevelChanged
from services.inventory.events import StockReceived
from services.inventory.priority import WEIGHTED
from tests.unit.inventory.harness import SKU, SkuHarness, of_type, published_queue


def fills(events: list[EventPayload]) -> list[tuple[str, int, int]]:
    return [(e.order_id, e.quantity, e.remaining_backordered) for e in of_type(events, BackorderFulfilled)]


def test_a_promotion_sells_the_jacket_out_and_receipts_fill_the_queue_first_come_first_served() -> None:
    sku = SkuHarness()
    sku.adjust(+100, reason="opening balance")
    sku.reserve("A", 60, minute=0)
    sku.reserve("B", 50, minute=1)  # 40 reserved, 10 wait
    sku.reserve("C", 30, minute=2)
    sku.reserve("D", 20, minute=3)
    assert (sku.state.available, sku.state.backordered) == (0, 60)

    first = sku.receive(25, receipt_id="R-1")

    assert fills(first) == [("B", 10, 0), ("C", 15, 15)]
    assert {e.source for e in of_type(first, BackorderFulfilled)} == {"R-1"}
    assert [e.priority_reason for e in of_type(first, BackorderFulfilled)] == [
        "1st in the backorder queue, first come first served: placed 2026-03-01T09:01:00+00:00",
        "2nd in the backorder queue, first come first served: placed 2026-03-01T09:02:00+00:00",
    ]
    assert published_queue(sku.log) == [("C", 15), ("D", 20)]

    second = sku.receive(40, receipt_id="R-2")

    assert fills(second) == [("C", 15, 0), ("D", 20, 0)]
    assert published_queue(sku.log) == []
    state = sku.state
    assert (state.on_hand, state.reserved, state.available, state.backordered) == (165, 160, 5, 0)


def test_received_stock_goes_to_the_queue_in_weighted_order() -> None:
    sku = SkuHarness(priority=WEIGHTED)
    price = Decimal("5.00")  # 1 point per 100.00 of line value
    sku.reserve("E", 10, minute=0, unit_price=price)  # score 0.50
    sku.reserve("B", 10, minute=1, unit_price=price)  # score 0.50, placed later than E
    sku.reserve("C", 30, minute=2, tier="platinum", unit_price=price)  # 3 + 1.50
    sku.reserve("D", 20, minute=3, tier="gold", urgent=True, unit_price=price)  # 2 + 2 + 1

    first = sku.receive(45)

    assert fills(first) == [("D", 20, 0), ("C", 25, 5)]
    assert of_type(first, BackorderFulfilled)[0].priority_reason == (
        "1st in the backorder queue by weighted priority: score 5.00 "
        "(gold tier +2.00, urgent +2.00, line value 100.00 +1.00), placed 2026-03-01T09:03:00+00:00"
    )
    assert published_queue(sku.log) == [("C", 5), ("E", 10), ("B", 10)]

    second = sku.receive(20)

    assert fills(second) == [("C", 5, 0), ("E", 10, 0), ("B", 5, 5)]
    assert of_type(second, BackorderFulfilled)[2].priority_reason.startswith(
        "3rd in the backorder queue by weighted priority: score 0.50 (line value 50.00 +0.50)"
    )


def test_a_higher_priority_line_jumps_ahead_in_the_published_queue() -> None:
    sku = SkuHarness(priority=WEIGHTED)
    sku.reserve("B", 10, minute=1)

    events = sku.reserve("F", 10, minute=2, tier="platinum")

    [joined] = of_type(events, BackorderQueueChanged)
    assert (joined.change, joined.order_id, joined.position, joined.priority_score) == (
        "joined",
        "F",
        1,
        Decimal("5.00"),
    )
    assert published_queue(sku.log) == [("F", 10), ("B", 10)]


def test_a_receipt_with_no_one_waiting_only_adds_to_available_stock() -> None:
    sku = SkuHarness()

    events = sku.receive(12, receipt_id="R-9")

    assert events == [
        StockReceived(sku=SKU, receipt_id="R-9", quantity=12, on_hand_after=12),
        StockLevelChanged(sku=SKU, on_hand=12, reserved=0, available=12, backordered=0),
    ]
    assert (sku.state.on_hand, sku.state.available) == (12, 12)


def test_allocated_units_become_reserved_for_the_line_that_waited() -> None:
    sku = SkuHarness()
    sku.adjust(+3)
    sku.reserve("A", 5)

    sku.receive(10)

    assert dict(sku.state.reservations) == {("A", "1"): 5}
    assert (sku.state.reserved, sku.state.available) == (5, 8)
