"""Customer cancellations, their refunds, and the orders topic echoing them back."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from backbone.contracts.events import LineQuantity, OrderCancelled, RefundRequested, StockReleased
from services.order.domain import (
    CancelBackorderedUnits,
    CancelOrder,
    InvalidCommand,
    LineNotFound,
    NothingToCancel,
    OrderNotFound,
    OrderNotYetAllocated,
    decide,
    initial_state,
    invariant_violations,
    order_status,
)
from services.order.events import ExternalCancellationRecorded
from tests.unit.order.builders import Order, fill, placed, reserved, short

NOW = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)


def backordered_order() -> Order:
    """Line l1: 400 of 500 reserved, 100 waiting, 10.00 each. Line l2: 2 reserved, 5.00 each."""
    return Order().apply_all(
        [
            placed(("l1", "SKU-A", 500, "10.00"), ("l2", "SKU-B", 2, "5.00")),
            short("l1", "SKU-A", 500, 400),
            reserved("l2", "SKU-B", 2),
        ]
    )


def test_cancel_the_backordered_part_of_a_line() -> None:
    order = backordered_order()

    events = order.apply(CancelBackorderedUnits(order_id="o-1", line_id="l1", requested_at=NOW))

    assert events == [
        OrderCancelled(
            order_id="o-1",
            lines=[LineQuantity(line_id="l1", sku="SKU-A", quantity=100)],
            reason="customer_request",
            cancelled_at=NOW,
        ),
        RefundRequested(
            order_id="o-1",
            line_id="l1",
            sku="SKU-A",
            quantity=100,
            amount=Decimal("1000.00"),
            currency="EUR",
            reason="customer_request",
        ),
    ]
    line = order.state.lines["l1"]
    assert (line.cancelled_waiting, line.waiting, line.allocated, line.refunded) == (100, 0, 400, 100)
    assert order_status(order.state) == "ready_to_ship"
    assert invariant_violations(order.state) == []


def test_cancel_part_of_the_waiting_units() -> None:
    order = backordered_order()
    order.apply(CancelBackorderedUnits(order_id="o-1", line_id="l1", requested_at=NOW, quantity=40))
    assert order.state.lines["l1"].waiting == 60
    assert order_status(order.state) == "partially_backordered"


def test_cancel_the_whole_order() -> None:
    order = backordered_order()
    order.apply(fill("l1", "SKU-A", 30, remaining=70))

    cancelled, *refunds = order.apply(CancelOrder(order_id="o-1", requested_at=NOW))

    assert isinstance(cancelled, OrderCancelled)
    assert cancelled.lines == [
        LineQuantity(line_id="l1", sku="SKU-A", quantity=500),
        LineQuantity(line_id="l2", sku="SKU-B", quantity=2),
    ]
    assert [(r.line_id, r.quantity, r.amount) for r in refunds] == [  # type: ignore[attr-defined]
        ("l1", 500, Decimal("5000.00")),
        ("l2", 2, Decimal("10.00")),
    ]
    line = order.state.lines["l1"]
    assert (line.cancelled_waiting, line.cancelled_allocated, line.unshipped) == (70, 430, 0)
    assert order_status(order.state) == "cancelled"
    assert invariant_violations(order.state) == []
    with pytest.raises(NothingToCancel):
        order.apply(CancelOrder(order_id="o-1", requested_at=NOW))


def test_cancel_is_refused_when_nothing_waits() -> None:
    order = Order().apply_all([placed(("l1", "SKU-A", 5, "1.00")), reserved("l1", "SKU-A", 5)])
    stream_before = list(order.stream)
    with pytest.raises(NothingToCancel, match="no units waiting"):
        order.apply(CancelBackorderedUnits(order_id="o-1", line_id="l1", requested_at=NOW))
    assert order.stream == stream_before


def test_cancelling_twice_is_refused_the_second_time() -> None:
    order = backordered_order()
    order.apply(CancelBackorderedUnits(order_id="o-1", line_id="l1", requested_at=NOW))
    with pytest.raises(NothingToCancel):
        order.apply(CancelBackorderedUnits(order_id="o-1", line_id="l1", requested_at=NOW))
    assert sum(isinstance(e, RefundRequested) for e in order.stream) == 1


def test_bad_cancellations_raise_domain_errors() -> None:
    order = backordered_order()
    with pytest.raises(InvalidCommand):
        order.apply(CancelBackorderedUnits(order_id="o-1", line_id="l1", requested_at=NOW, quantity=101))
    with pytest.raises(LineNotFound):
        order.apply(CancelBackorderedUnits(order_id="o-1", line_id="l9", requested_at=NOW))
    with pytest.raises(OrderNotFound):
        decide(initial_state("o-404"), CancelOrder(order_id="o-404", requested_at=NOW))
    with pytest.raises(InvalidCommand):
        CancelOrder(order_id="o-1", requested_at=datetime(2026, 3, 5, 12, 0))


def test_whole_order_cancel_waits_for_inventory_to_decide() -> None:
    order = Order().apply_all([placed(("l1", "SKU-A", 5, "1.00"))])
    with pytest.raises(OrderNotYetAllocated):
        order.apply(CancelOrder(order_id="o-1", requested_at=NOW))


def test_free_units_are_cancelled_without_a_refund() -> None:
    order = Order().apply_all([placed(("l1", "SKU-A", 5, "0.00")), short("l1", "SKU-A", 5, 0)])
    events = order.apply(CancelBackorderedUnits(order_id="o-1", line_id="l1", requested_at=NOW))
    assert [type(e) for e in events] == [OrderCancelled]


def test_the_orders_topic_echoing_our_events_changes_nothing() -> None:
    order = backordered_order()
    own = order.apply(CancelBackorderedUnits(order_id="o-1", line_id="l1", requested_at=NOW))
    before = order.state
    for echoed in own:
        assert order.apply(echoed) == []
    assert order.state == before


def test_a_cancellation_from_checkout_is_recorded_and_refunded() -> None:
    order = backordered_order()
    from_checkout = OrderCancelled(
        order_id="o-1",
        lines=[LineQuantity(line_id="l1", sku="SKU-A", quantity=150)],
        reason="shop_request",
        cancelled_at=NOW,
    )

    recorded, refund = order.apply(from_checkout)

    assert recorded == ExternalCancellationRecorded(cancellation=from_checkout)
    assert isinstance(refund, RefundRequested)
    assert (refund.quantity, refund.amount, refund.reason) == (150, Decimal("1500.00"), "shop_request")
    line = order.state.lines["l1"]
    assert (line.cancelled_waiting, line.cancelled_allocated, line.allocated) == (100, 50, 350)
    assert order.apply(from_checkout) == []


def test_a_fill_racing_a_cancellation_keeps_the_books_balanced() -> None:
    order = backordered_order()
    order.apply(CancelBackorderedUnits(order_id="o-1", line_id="l1", requested_at=NOW))
    order.apply(fill("l1", "SKU-A", 30, remaining=0))  # inventory allocated before it saw the cancel
    order.apply(
        StockReleased(order_id="o-1", line_id="l1", sku="SKU-A", released_reserved=30, dropped_backordered=70)
    )
    line = order.state.lines["l1"]
    assert (line.filled, line.filled_after_cancel, line.allocated) == (0, 30, 400)
    assert (line.released_reserved, line.dropped_backordered) == (30, 70)
    assert invariant_violations(order.state) == []
