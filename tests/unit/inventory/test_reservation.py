from decimal import Decimal

from backbone.contracts.events import (
    BackorderQueueChanged,
    Customer,
    OrderLine,
    OrderPlaced,
    StockReserved,
    StockShort,
)
from services.inventory.domain import LineRef, reserve_line_commands
from services.inventory.events import BackorderQueued
from tests.unit.inventory.harness import OPENING, SKU, SkuHarness, of_type, published_queue


def test_400_in_stock_and_500_demanded_reserves_400_and_backorders_100() -> None:
    sku = SkuHarness()
    sku.adjust(+400, reason="opening balance")

    events = sku.reserve("A", 500)

    assert of_type(events, StockReserved) == [StockReserved(order_id="A", line_id="1", sku=SKU, quantity=400)]
    [short] = of_type(events, StockShort)
    assert (short.demanded, short.available, short.short_quantity) == (500, 400, 100)
    assert short.disposition == "backordered"
    [joined] = of_type(events, BackorderQueueChanged)
    assert (joined.change, joined.order_id, joined.position, joined.remaining) == ("joined", "A", 1, 100)
    assert published_queue(sku.log) == [("A", 100)]
    state = sku.state
    assert (state.on_hand, state.reserved, state.available, state.backordered) == (400, 400, 0, 100)


def test_a_line_that_stock_covers_is_reserved_without_a_shortfall() -> None:
    sku = SkuHarness()
    sku.adjust(+10)

    events = sku.reserve("A", 4)

    assert [type(e) for e in events] == [StockReserved]  # no StockLevelChanged: it says it all
    assert dict(sku.state.reservations) == {LineRef("A", "1"): 4}
    assert sku.state.available == 6


def test_with_nothing_in_stock_the_whole_line_waits() -> None:
    sku = SkuHarness()

    events = sku.reserve("A", 3)

    assert of_type(events, StockReserved) == []
    [short] = of_type(events, StockShort)
    assert (short.available, short.short_quantity, short.disposition) == (0, 3, "backordered")
    [queued] = of_type(events, BackorderQueued)
    assert (queued.quantity, queued.placed_at, queued.sequence) == (3, OPENING, 1)


def test_deny_policy_rejects_the_shortfall_and_keeps_what_was_reserved() -> None:
    sku = SkuHarness()
    sku.set_policy("deny")
    sku.adjust(+5)

    events = sku.reserve("A", 8)

    [short] = of_type(events, StockShort)
    assert (short.disposition, short.short_quantity) == ("rejected", 3)
    assert short.reason == "backorders are not allowed for this SKU"
    assert of_type(events, BackorderQueued) == [] and of_type(events, BackorderQueueChanged) == []
    assert (sku.state.reserved, sku.state.backordered) == (5, 0)


def test_cap_policy_backorders_a_shortfall_only_if_all_of_it_fits_under_the_cap() -> None:
    sku = SkuHarness()
    sku.set_policy("cap", cap=10)

    assert of_type(sku.reserve("A", 6), StockShort)[0].disposition == "backordered"
    assert of_type(sku.reserve("B", 4), StockShort)[0].disposition == "backordered"  # exactly at the cap
    [rejected] = of_type(sku.reserve("C", 1), StockShort)

    assert rejected.disposition == "rejected"
    assert rejected.reason == "backorder cap of 10 units exceeded: 10 already waiting, 1 more short"
    assert sku.state.backordered == 10


def test_cap_policy_rejects_a_whole_shortfall_that_would_overflow_the_cap() -> None:
    sku = SkuHarness()
    sku.set_policy("cap", cap=10)
    sku.reserve("A", 7)

    [short] = of_type(sku.reserve("B", 5), StockShort)

    assert (short.disposition, short.short_quantity) == ("rejected", 5)
    assert sku.state.backordered == 7


def test_a_repeated_order_line_changes_nothing() -> None:
    sku = SkuHarness()
    sku.adjust(+5)
    sku.reserve("A", 8)
    before = sku.state

    assert sku.reserve("A", 8) == []
    assert sku.state == before


def test_ordered_equals_reserved_at_placement_plus_backordered_plus_rejected() -> None:
    sku = SkuHarness()
    sku.adjust(+7)
    sku.set_policy("cap", cap=5)
    demands = {"A": 4, "B": 6, "C": 3, "D": 9}
    for order_id, quantity in demands.items():
        sku.reserve(order_id, quantity)

    for order_id, ordered in demands.items():
        reserved = sum(e.quantity for e in of_type(sku.log, StockReserved) if e.order_id == order_id)
        shorts = [e for e in of_type(sku.log, StockShort) if e.order_id == order_id]
        backordered = sum(e.short_quantity for e in shorts if e.disposition == "backordered")
        rejected = sum(e.short_quantity for e in shorts if e.disposition == "rejected")
        assert ordered == reserved + backordered + rejected
    assert (sku.state.reserved, sku.state.backordered) == (7, 3)  # B waits for 3; C and D would overflow


def test_an_order_placed_becomes_one_reserve_command_per_line_with_its_priority_attributes() -> None:
    order = OrderPlaced(
        order_id="A",
        customer=Customer(customer_id="c1", email="ann@example.com", tier="gold"),
        lines=[
            OrderLine(line_id="1", sku=SKU, quantity=2, unit_price=Decimal("49.90")),
            OrderLine(line_id="2", sku="SCARF", quantity=1, unit_price=Decimal("15.00")),
        ],
        placed_at=OPENING,
        urgent=True,
    )

    first, second = reserve_line_commands(order)

    assert (first.sku, first.line_id, first.quantity, first.line_value) == (SKU, "1", 2, Decimal("99.80"))
    assert (first.tier, first.urgent, first.placed_at) == ("gold", True, OPENING)
    assert (second.sku, second.line_id) == ("SCARF", "2")


def test_tightening_the_policy_keeps_the_lines_already_waiting() -> None:
    sku = SkuHarness()
    sku.reserve("A", 8)

    sku.set_policy("cap", cap=5)

    assert sku.state.backordered == 8
    assert of_type(sku.reserve("B", 1), StockShort)[0].disposition == "rejected"
