"""Cancellations: requests stay pending until inventory's StockReleased confirms them; refunds follow it."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from backbone.contracts.events import FulfilmentRequested, LineQuantity, OrderCancelled, RefundRequested
from services.order.domain import (
    CancelBackorderedUnits,
    CancelOrder,
    InvalidCommand,
    LineNotFound,
    NothingToCancel,
    OrderNotFound,
    decide,
    initial_state,
    invariant_violations,
    order_status,
    shippable_now,
)
from services.order.events import ExternalCancellationRecorded, LineReleased
from tests.unit.order.builders import Order, fill, placed, released, reserved, shipped_both, short

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


def refunds(order: Order) -> list[tuple[str, int, Decimal, str]]:
    return [(r.line_id, r.quantity, r.amount, r.reason) for r in order.of_type(RefundRequested)]


def test_cancel_the_backordered_part_of_a_line_is_refunded_when_inventory_confirms() -> None:
    order = backordered_order()

    events = order.apply(CancelBackorderedUnits(order_id="o-1", line_id="l1", requested_at=NOW))

    assert events == [
        OrderCancelled(
            order_id="o-1",
            lines=[LineQuantity(line_id="l1", sku="SKU-A", quantity=100)],
            reason="customer_request",
            cancelled_at=NOW,
            only_waiting=True,
            cancellation_id="o-1:cancel:1",
        )
    ]
    line = order.state.lines["l1"]
    assert (line.pending_cancel_waiting, line.cancelled, line.waiting, line.refunded) == (100, 0, 100, 0)
    assert order_status(order.state) == "partially_backordered"  # until inventory answers

    answer = order.apply(released("l1", "SKU-A", dropped=100))

    assert [type(e) for e in answer] == [LineReleased, RefundRequested]
    assert refunds(order) == [("l1", 100, Decimal("1000.00"), "customer_request")]
    line = order.state.lines["l1"]
    assert (line.cancelled, line.cancellation_pending, line.waiting, line.allocated) == (100, 0, 0, 400)
    assert order_status(order.state) == "ready_to_ship"
    assert invariant_violations(order.state) == []


def test_cancel_part_of_the_waiting_units() -> None:
    order = backordered_order()
    order.apply(CancelBackorderedUnits(order_id="o-1", line_id="l1", requested_at=NOW, quantity=40))
    assert order.state.lines["l1"].waiting_not_pending == 60
    order.apply(released("l1", "SKU-A", dropped=40))
    assert order.state.lines["l1"].waiting == 60
    assert order_status(order.state) == "partially_backordered"
    assert refunds(order) == [("l1", 40, Decimal("400.00"), "customer_request")]


def test_cancel_the_whole_order() -> None:
    order = backordered_order()
    order.apply(fill("l1", "SKU-A", 30, remaining=70))

    [cancelled, withdrawn] = order.apply(CancelOrder(order_id="o-1", requested_at=NOW))

    assert isinstance(cancelled, OrderCancelled) and not cancelled.only_waiting
    assert isinstance(withdrawn, FulfilmentRequested)
    assert [(p.line_id, p.quantity) for p in withdrawn.lines] == [("l1", 0), ("l2", 0)]
    assert cancelled.lines == [
        LineQuantity(line_id="l1", sku="SKU-A", quantity=500),
        LineQuantity(line_id="l2", sku="SKU-B", quantity=2),
    ]
    assert not order.of_type(RefundRequested)
    assert shippable_now(order.state) == {}  # the units about to be released are withdrawn
    with pytest.raises(NothingToCancel):  # everything is already being cancelled
        order.apply(CancelOrder(order_id="o-1", requested_at=NOW))

    order.apply(released("l1", "SKU-A", reserved=430, dropped=70))
    order.apply(released("l2", "SKU-B", reserved=2))

    assert refunds(order) == [
        ("l1", 500, Decimal("5000.00"), "customer_request"),
        ("l2", 2, Decimal("10.00"), "customer_request"),
    ]
    line = order.state.lines["l1"]
    assert (line.dropped_backordered, line.released_reserved, line.unshipped) == (70, 430, 0)
    assert order_status(order.state) == "cancelled"
    assert order.state.closed
    assert invariant_violations(order.state) == []
    with pytest.raises(NothingToCancel):
        order.apply(CancelOrder(order_id="o-1", requested_at=NOW))


def test_cancel_is_refused_when_nothing_waits() -> None:
    order = Order().apply_all([placed(("l1", "SKU-A", 5, "1.00")), reserved("l1", "SKU-A", 5)])
    stream_before = list(order.stream)
    with pytest.raises(NothingToCancel, match="no units waiting"):
        order.apply(CancelBackorderedUnits(order_id="o-1", line_id="l1", requested_at=NOW))
    assert order.stream == stream_before


def test_cancelling_twice_is_refused_the_second_time_also_before_inventory_answers() -> None:
    order = backordered_order()
    order.apply(CancelBackorderedUnits(order_id="o-1", line_id="l1", requested_at=NOW))
    with pytest.raises(NothingToCancel, match="100 already being cancelled"):
        order.apply(CancelBackorderedUnits(order_id="o-1", line_id="l1", requested_at=NOW))
    order.apply(released("l1", "SKU-A", dropped=100))
    with pytest.raises(NothingToCancel):
        order.apply(CancelBackorderedUnits(order_id="o-1", line_id="l1", requested_at=NOW))
    assert len(order.of_type(RefundRequested)) == 1


def test_each_cancellation_decided_here_is_named() -> None:
    order = backordered_order()
    order.apply(CancelBackorderedUnits(order_id="o-1", line_id="l1", requested_at=NOW, quantity=10))
    order.apply(CancelBackorderedUnits(order_id="o-1", line_id="l1", requested_at=NOW, quantity=10))
    order.apply(CancelOrder(order_id="o-1", requested_at=NOW))
    assert [c.cancellation_id for c in order.of_type(OrderCancelled)] == [
        "o-1:cancel:1",
        "o-1:cancel:2",
        "o-1:cancel:3",
    ]
    # the whole-order request asks for what the earlier ones do not cover yet
    assert [q.quantity for q in order.of_type(OrderCancelled)[2].lines] == [480, 2]


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


def test_a_cancellation_before_the_decision_is_kept_then_released_and_refunded_once() -> None:
    order = Order().apply_all([placed(("l1", "SKU-A", 5, "2.00"), ("l2", "SKU-B", 4, "1.00"))])

    [cancelled] = order.apply(CancelOrder(order_id="o-1", requested_at=NOW))  # nothing decided yet
    assert [(q.line_id, q.quantity) for q in cancelled.lines] == [("l1", 5), ("l2", 4)]  # type: ignore[attr-defined]

    order.apply(reserved("l1", "SKU-A", 5))  # inventory decides first, then answers the cancellation
    order.apply(short("l2", "SKU-B", 4, 1))
    assert order.state.lines["l1"].cancellation_pending == 5
    assert shippable_now(order.state) == {}  # nothing of it goes to the warehouse meanwhile

    order.apply(released("l1", "SKU-A", reserved=5))
    order.apply(released("l2", "SKU-B", reserved=1, dropped=3))
    order.apply(released("l1", "SKU-A", reserved=0))  # an empty answer changes nothing

    assert refunds(order) == [
        ("l1", 5, Decimal("10.00"), "customer_request"),
        ("l2", 4, Decimal("4.00"), "customer_request"),
    ]
    assert order_status(order.state) == "cancelled"
    assert invariant_violations(order.state) == []


def test_free_units_are_cancelled_without_a_refund() -> None:
    order = Order().apply_all([placed(("l1", "SKU-A", 5, "0.00")), short("l1", "SKU-A", 5, 0)])
    order.apply(CancelBackorderedUnits(order_id="o-1", line_id="l1", requested_at=NOW))
    events = order.apply(released("l1", "SKU-A", dropped=5))
    assert [type(e) for e in events] == [LineReleased]
    assert order_status(order.state) == "cancelled"


def test_the_orders_topic_echoing_our_events_changes_nothing() -> None:
    order = backordered_order()
    order.apply(CancelBackorderedUnits(order_id="o-1", line_id="l1", requested_at=NOW))
    order.apply(released("l1", "SKU-A", dropped=100))
    published = [e for e in order.stream if e.topic is not None]
    assert {type(e) for e in published} == {OrderCancelled, RefundRequested, FulfilmentRequested}
    before = order.state
    for echoed in published:
        assert order.apply(echoed) == []
    assert order.state == before


def test_a_cancellation_from_checkout_waits_for_inventory_and_takes_its_reason() -> None:
    order = backordered_order()
    from_checkout = OrderCancelled(
        order_id="o-1",
        lines=[LineQuantity(line_id="l1", sku="SKU-A", quantity=150)],
        reason="shop_request",
        cancelled_at=NOW,
    )

    recorded, pick_list = order.apply(from_checkout)
    assert recorded == ExternalCancellationRecorded(cancellation=from_checkout)
    assert isinstance(pick_list, FulfilmentRequested)  # 50 units of l1 are withdrawn from the warehouse
    assert order.apply(from_checkout) == []
    line = order.state.lines["l1"]
    assert (line.pending_cancel, line.pending_from_stock, line.pickable) == (150, 50, 350)

    # An inventory that does not copy the reason: the pending request's reason is used.
    order.apply(released("l1", "SKU-A", reserved=50, dropped=100, reason=None))

    assert refunds(order) == [("l1", 150, Decimal("1500.00"), "shop_request")]
    line = order.state.lines["l1"]
    assert (line.cancelled, line.allocated, line.cancellation_pending) == (150, 350, 0)
    assert invariant_violations(order.state) == []


def test_a_cancellation_from_checkout_before_the_decision_is_applied_when_it_arrives() -> None:
    order = Order().apply_all([placed(("l1", "SKU-A", 10, "3.00"))])
    order.apply(
        OrderCancelled(
            order_id="o-1",
            lines=[LineQuantity(line_id="l1", sku="SKU-A", quantity=10)],
            reason="shop_request",
            cancelled_at=NOW,
        )
    )
    order.apply(short("l1", "SKU-A", 10, 6))
    order.apply(released("l1", "SKU-A", reserved=6, dropped=4, reason="shop_request"))
    assert refunds(order) == [("l1", 10, Decimal("30.00"), "shop_request")]
    assert order_status(order.state) == "cancelled"


def test_cancel_backordered_racing_a_fill_keeps_the_fill() -> None:
    order = backordered_order()
    order.apply(CancelBackorderedUnits(order_id="o-1", line_id="l1", requested_at=NOW))
    order.apply(fill("l1", "SKU-A", 30, remaining=70))  # inventory filled before it saw the cancel
    line = order.state.lines["l1"]
    assert (line.filled, line.allocated, line.pending_cancel_waiting) == (30, 430, 70)

    order.apply(released("l1", "SKU-A", dropped=70))

    assert refunds(order) == [("l1", 70, Decimal("700.00"), "customer_request")]
    line = order.state.lines["l1"]
    assert (line.waiting, line.allocated, line.cancellation_pending) == (0, 430, 0)
    assert shippable_now(order.state) == {"l1": 430, "l2": 2}
    assert invariant_violations(order.state) == []


def test_a_whole_order_cancel_racing_a_shipment_releases_only_what_did_not_ship() -> None:
    order = Order().apply_all([placed(("l1", "SKU-A", 5, "1.00")), reserved("l1", "SKU-A", 5)])
    order.apply(CancelOrder(order_id="o-1", requested_at=NOW))
    order.apply_all(shipped_both("s-1", ("l1", "SKU-A", 2)))  # the warehouse had already picked two
    assert order.state.lines["l1"].cancellation_pending == 3
    order.apply(released("l1", "SKU-A", reserved=3))
    assert refunds(order) == [("l1", 3, Decimal("3.00"), "customer_request")]
    assert order_status(order.state) == "shipped"
    assert invariant_violations(order.state) == []
