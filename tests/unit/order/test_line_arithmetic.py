"""Line arithmetic and order status as inventory answers an order."""

from datetime import timedelta

import pytest

from services.order.domain import UnexpectedEvent, invariant_violations, order_status, shippable_now
from services.order.events import LineBackordered, LineReserved, OrderRecorded
from tests.unit.order.builders import Order, fill, placed, reserved, short, without_pick_lists


def test_400_reserved_and_100_backordered() -> None:
    order = Order().apply_all([placed(("l1", "SKU-A", 500, "10.00")), short("l1", "SKU-A", 500, 400)])

    line = order.state.lines["l1"]
    assert (line.ordered, line.reserved_at_placement, line.backordered, line.rejected) == (500, 400, 100, 0)
    assert (line.waiting, line.allocated, line.filled, line.cancelled) == (100, 400, 0, 0)
    assert order_status(order.state) == "partially_backordered"
    assert invariant_violations(order.state) == []


def test_inventory_stating_the_reserved_part_twice_counts_it_once() -> None:
    order = Order().apply_all([placed(("l1", "SKU-A", 500, "10.00")), reserved("l1", "SKU-A", 400)])
    assert without_pick_lists(order.apply(short("l1", "SKU-A", 500, 400))) == [
        LineBackordered(order_id="o-1", line_id="l1", sku="SKU-A", reserved=400, backordered=100)
    ]
    assert order.apply(reserved("l1", "SKU-A", 400)) == []
    assert order.state.lines["l1"].reserved_at_placement == 400
    assert invariant_violations(order.state) == []


def test_shipping_preference_decides_what_leaves_now() -> None:
    answers = [short("l1", "SKU-A", 500, 400), reserved("l2", "SKU-B", 2)]
    lines = (("l1", "SKU-A", 500, "10.00"), ("l2", "SKU-B", 2, "5.00"))
    available = Order().apply_all([placed(*lines, preference="ship_available"), *answers])
    complete = Order().apply_all([placed(*lines, preference="ship_complete"), *answers])

    assert order_status(available.state) == order_status(complete.state) == "partially_backordered"
    assert shippable_now(available.state) == {"l1": 400, "l2": 2}
    assert shippable_now(complete.state) == {}


def test_order_is_accepted_until_every_line_is_decided() -> None:
    order = Order().apply_all([placed(("l1", "SKU-A", 5, "1.00"), ("l2", "SKU-B", 3, "1.00"))])
    assert order_status(order.state) == "accepted"
    order.apply(reserved("l1", "SKU-A", 5))
    assert order_status(order.state) == "accepted"
    order.apply(reserved("l2", "SKU-B", 3))
    assert order_status(order.state) == "ready_to_ship"


def test_nothing_in_stock_is_backordered() -> None:
    order = Order().apply_all([placed(("l1", "SKU-A", 10, "1.00")), short("l1", "SKU-A", 10, 0)])
    assert order_status(order.state) == "backordered"
    assert shippable_now(order.state) == {}


def test_rejected_units_keep_their_reason() -> None:
    order = Order().apply_all(
        [placed(("l1", "SKU-A", 10, "1.00")), short("l1", "SKU-A", 10, 0, "rejected", "backorders denied")]
    )
    line = order.state.lines["l1"]
    assert (line.rejected, line.rejection_reason, line.waiting) == (10, "backorders denied", 0)
    assert order_status(order.state) == "rejected"
    assert invariant_violations(order.state) == []


def test_partial_fills_move_waiting_units_to_stock() -> None:
    order = Order().apply_all([placed(("l1", "SKU-A", 500, "10.00")), short("l1", "SKU-A", 500, 400)])

    order.apply(fill("l1", "SKU-A", 30, remaining=70))
    line = order.state.lines["l1"]
    assert (line.filled, line.waiting, line.allocated) == (30, 70, 430)
    assert order_status(order.state) == "partially_backordered"

    order.apply(fill("l1", "SKU-A", 70, remaining=0))
    line = order.state.lines["l1"]
    assert (line.filled, line.waiting, line.allocated) == (100, 0, 500)
    assert order_status(order.state) == "ready_to_ship"
    assert invariant_violations(order.state) == []


def test_inventory_answers_before_the_order_arrives_give_the_same_state() -> None:
    order_first = Order().apply_all(
        [placed(("l1", "SKU-A", 500, "10.00")), short("l1", "SKU-A", 500, 400), fill("l1", "SKU-A", 30, 70)]
    )
    answers_first = Order().apply_all(
        [short("l1", "SKU-A", 500, 400), fill("l1", "SKU-A", 30, 70), placed(("l1", "SKU-A", 500, "10.00"))]
    )
    assert isinstance(without_pick_lists(answers_first.stream)[-1], OrderRecorded)
    assert answers_first.state.lines == order_first.state.lines
    assert order_status(answers_first.state) == "partially_backordered"


def test_answers_that_contradict_the_order_are_refused() -> None:
    order = Order().apply_all([placed(("l1", "SKU-A", 5, "1.00"))])
    with pytest.raises(UnexpectedEvent):
        order.apply(reserved("l9", "SKU-A", 5))
    with pytest.raises(UnexpectedEvent):
        order.apply(reserved("l1", "SKU-Z", 5))
    with pytest.raises(UnexpectedEvent):
        order.apply(fill("l1", "SKU-A", 1, remaining=0))  # the line was never backordered


def test_a_second_identical_order_is_an_echo_and_a_different_one_is_refused() -> None:
    original = placed(("l1", "SKU-A", 5, "1.00"))
    order = Order().apply_all([original])
    assert order.apply(original) == []
    changed = original.model_copy(update={"placed_at": original.placed_at + timedelta(hours=1)})
    with pytest.raises(UnexpectedEvent):
        order.apply(changed)


def test_reservation_is_recorded_in_the_orders_terms() -> None:
    order = Order().apply_all([placed(("l1", "SKU-A", 5, "1.00"))])
    assert without_pick_lists(order.apply(reserved("l1", "SKU-A", 5))) == [
        LineReserved(order_id="o-1", line_id="l1", sku="SKU-A", quantity=5)
    ]
