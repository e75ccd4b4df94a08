"""Shipments: the warehouse's announcement and inventory's units, joined by shipment id in either order;
the shipped statuses, and the pick list published on every change."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from backbone.contracts import EventPayload
from backbone.contracts.events import FulfilmentRequested, RefundRequested, ShippableLine
from services.order.domain import (
    CancelBackorderedUnits,
    CancelOrder,
    UnexpectedEvent,
    decide,
    initial_state,
    invariant_violations,
    order_status,
    shippable_now,
)
from services.order.events import LineShipped, ShipmentAnnounced
from tests.unit.order.builders import (
    Order,
    fill,
    placed,
    released,
    reserved,
    shipment,
    shipped_both,
    short,
    stock_shipped,
)

NOW = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)
LINES = (("l1", "SKU-A", 10, "1.00"), ("l2", "SKU-B", 2, "5.00"))


def partly_backordered(preference: str = "ship_available") -> Order:
    """l1: 6 of 10 reserved, 4 waiting; l2: 2 reserved."""
    return Order().apply_all(
        [placed(*LINES, preference=preference), short("l1", "SKU-A", 10, 6), reserved("l2", "SKU-B", 2)]  # type: ignore[arg-type]
    )


def pick_lists(order: Order) -> list[tuple[int, list[tuple[str, int, int]], bool]]:
    return [
        (f.revision, [(p.line_id, p.quantity, p.shipped) for p in f.lines], f.complete)
        for f in order.of_type(FulfilmentRequested)
    ]


def test_an_announced_shipment_ships_nothing_until_inventory_ships_it() -> None:
    order = partly_backordered()

    [announced] = order.apply(shipment("s-1", ("l1", "SKU-A", 6), tracking="JD0001"))

    assert isinstance(announced, ShipmentAnnounced)  # and no new pick list: no unit moved
    assert (announced.shipment_id, announced.tracking_number, announced.carrier) == ("s-1", "JD0001", "DHL")
    known = order.state.shipments["s-1"]
    assert (known.confirmed, dict(known.shipped)) == (False, {})
    assert (order.state.lines["l1"].shipped, order_status(order.state)) == (0, "partially_backordered")

    [units, _] = order.apply(stock_shipped("s-1", "l1", "SKU-A", 6))

    assert isinstance(units, LineShipped)
    assert order.state.shipments["s-1"].confirmed
    line = order.state.lines["l1"]
    assert (line.shipped, line.allocated, line.to_ship, line.waiting) == (6, 6, 0, 4)
    assert order_status(order.state) == "partially_shipped"
    assert shippable_now(order.state) == {"l2": 2}
    assert not order.state.closed
    assert invariant_violations(order.state) == []


def test_inventory_units_first_then_the_announcement_ends_the_same() -> None:
    announced_first = partly_backordered().apply_all(shipped_both("s-1", ("l1", "SKU-A", 6), tracking="T1"))
    units_first = partly_backordered()

    units_first.apply(stock_shipped("s-1", "l1", "SKU-A", 6))
    known = units_first.state.shipments["s-1"]
    assert (known.announcement, known.confirmed) == (None, True)  # shown, without tracking yet
    assert (units_first.state.lines["l1"].shipped, order_status(units_first.state)) == (
        6,
        "partially_shipped",
    )
    assert units_first.apply(shipment("s-1", ("l1", "SKU-A", 6), tracking="T1"))  # metadata only

    assert units_first.state.lines == announced_first.state.lines
    assert units_first.state.shipments == announced_first.state.shipments
    assert pick_lists(units_first) == pick_lists(announced_first)
    assert invariant_violations(units_first.state) == []


def test_the_last_shipment_makes_the_order_shipped_and_closed() -> None:
    order = partly_backordered()
    order.apply_all(shipped_both("s-1", ("l1", "SKU-A", 6), ("l2", "SKU-B", 2)))
    order.apply(fill("l1", "SKU-A", 4, remaining=0))
    assert order_status(order.state) == "partially_shipped"
    assert shippable_now(order.state) == {"l1": 4}

    order.apply_all(shipped_both("s-2", ("l1", "SKU-A", 4)))

    assert order_status(order.state) == "shipped"
    assert order.state.closed and all(line.closed for line in order.state.lines.values())
    assert shippable_now(order.state) == {}
    assert [s.confirmed for s in order.state.shipments.values()] == [True, True]
    assert invariant_violations(order.state) == []


def test_shipped_after_cancelling_the_rest_is_shipped_and_closed() -> None:
    order = partly_backordered()
    order.apply_all(shipped_both("s-1", ("l1", "SKU-A", 6), ("l2", "SKU-B", 2)))
    order.apply(CancelBackorderedUnits(order_id="o-1", line_id="l1", requested_at=NOW))
    order.apply(released("l1", "SKU-A", dropped=4))
    assert (order_status(order.state), order.state.closed) == ("shipped", True)


def test_an_announcement_is_not_bounded_but_must_name_the_order_s_lines() -> None:
    order = partly_backordered()
    # More than l1 has to ship: inventory will refuse it; the order shows it announced, unconfirmed.
    assert order.apply(shipment("s-1", ("l1", "SKU-A", 9)))
    assert (order.state.shipments["s-1"].confirmed, order.state.lines["l1"].shipped) == (False, 0)
    with pytest.raises(UnexpectedEvent, match="no line l9"):
        order.apply(shipment("s-3", ("l9", "SKU-A", 1)))
    with pytest.raises(UnexpectedEvent, match="is SKU-B, not SKU-A"):
        order.apply(shipment("s-4", ("l2", "SKU-A", 1)))
    with pytest.raises(UnexpectedEvent, match="unknown order"):
        decide(initial_state("o-1"), shipment("s-5", ("l1", "SKU-A", 1)))
    assert order.apply(shipment("s-1", ("l1", "SKU-A", 9))) == []  # the same announcement again
    with pytest.raises(UnexpectedEvent, match="s-1 was announced before with other content"):
        order.apply(shipment("s-1", ("l1", "SKU-A", 8)))
    assert invariant_violations(order.state) == []


def test_inventory_shipping_more_than_the_line_has_to_ship_is_recorded_and_reported() -> None:
    order = partly_backordered()
    order.apply(shipment("s-1", ("l1", "SKU-A", 6)))

    assert order.apply(stock_shipped("s-1", "l1", "SKU-A", 8))  # inventory's truth: not refused

    line = order.state.lines["l1"]
    assert (line.shipped, line.to_ship, line.unshipped) == (8, -2, 4)
    assert order_status(order.state) == "partially_shipped"  # l1 still waits for 4, l2 is to ship
    assert invariant_violations(order.state) == [
        "l1: more units shipped than allocated",
        "shipment s-1: inventory shipped 8 units of line l1, the warehouse announced 6",
    ]


def test_inventory_s_units_are_counted_once_per_shipment_and_line() -> None:
    order = partly_backordered()
    order.apply(stock_shipped("s-1", "l1", "SKU-A", 2))
    assert order.apply(stock_shipped("s-1", "l1", "SKU-A", 2)) == []
    with pytest.raises(UnexpectedEvent, match="s-1 shipped 2 units of line l1 before, now 3"):
        order.apply(stock_shipped("s-1", "l1", "SKU-A", 3))
    with pytest.raises(UnexpectedEvent, match="no line l9"):
        order.apply(stock_shipped("s-2", "l9", "SKU-A", 1))
    order.apply(stock_shipped("s-2", "l1", "SKU-A", 1))  # another shipment of the same line
    assert order.state.lines["l1"].shipped == 3


def test_inventory_s_units_may_come_before_a_checkout_order_itself() -> None:
    order = Order().apply_all(
        [
            reserved("l1", "SKU-A", 3),
            stock_shipped("s-1", "l1", "SKU-A", 3),
            placed(("l1", "SKU-A", 3, "1.00")),
        ]
    )
    assert (order.state.lines["l1"].shipped, order_status(order.state), order.state.closed) == (
        3,
        "shipped",
        True,
    )
    assert pick_lists(order) == [(1, [("l1", 0, 3)], True)]


def refunded(order: Order) -> int:
    return sum(r.quantity for r in order.of_type(RefundRequested))


def race(inventory_answers: list[EventPayload], announcement_first: bool) -> Order:
    """3 units reserved; the customer cancels the order while the warehouse ships them."""
    order = Order().apply_all([placed(("l1", "SKU-A", 3, "2.00")), reserved("l1", "SKU-A", 3)])
    order.apply(CancelOrder(order_id="o-1", requested_at=NOW))
    announcement = shipment("s-1", ("l1", "SKU-A", 3), tracking="JD0009")
    return order.apply_all(
        [announcement, *inventory_answers] if announcement_first else [*inventory_answers, announcement]
    )


@pytest.mark.parametrize("announcement_first", [True, False])
def test_cancel_racing_a_shipment_inventory_released_first(announcement_first: bool) -> None:
    # Inventory released the 3 units and dead-lettered the shipment: no StockShipped ever comes.
    order = race([released("l1", "SKU-A", reserved=3)], announcement_first)

    line = order.state.lines["l1"]
    assert (refunded(order), line.shipped, line.cancelled, line.to_ship) == (3, 0, 3, 0)
    assert sum(r.amount for r in order.of_type(RefundRequested)) == Decimal("6.00")
    assert (order_status(order.state), order.state.closed) == ("cancelled", True)
    known = order.state.shipments["s-1"]
    assert (known.announcement is not None, known.confirmed) == (True, False)
    assert invariant_violations(order.state) == []


@pytest.mark.parametrize("announcement_first", [True, False])
def test_cancel_racing_a_shipment_inventory_shipped_first(announcement_first: bool) -> None:
    # Inventory shipped the 3 units; the cancellation then found nothing to release.
    answers = [stock_shipped("s-1", "l1", "SKU-A", 3), released("l1", "SKU-A")]
    order = race(answers, announcement_first)

    line = order.state.lines["l1"]
    assert (refunded(order), line.shipped, line.cancelled, line.cancellation_pending) == (0, 3, 0, 0)
    assert (order_status(order.state), order.state.closed) == ("shipped", True)
    assert order.state.shipments["s-1"].confirmed
    assert invariant_violations(order.state) == []


def test_pick_list_revisions_follow_inventory_s_units_not_the_announcement() -> None:
    order = partly_backordered()
    assert pick_lists(order) == [(1, [("l1", 6, 0), ("l2", 2, 0)], False)]

    order.apply(reserved("l2", "SKU-B", 2))  # inventory stating it again: nothing changes
    order.apply(shipment("s-1", ("l2", "SKU-B", 2)))
    assert len(pick_lists(order)) == 1
    order.apply(stock_shipped("s-1", "l2", "SKU-B", 2))
    order.apply(fill("l1", "SKU-A", 4, remaining=0))

    assert pick_lists(order) == [
        (1, [("l1", 6, 0), ("l2", 2, 0)], False),
        (2, [("l1", 6, 0), ("l2", 0, 2)], False),
        (3, [("l1", 10, 0), ("l2", 0, 2)], True),
    ]
    assert order.state.fulfilment_revision == 3


def test_ship_complete_publishes_nothing_until_nothing_waits() -> None:
    order = partly_backordered("ship_complete")
    assert pick_lists(order) == []
    assert shippable_now(order.state) == {}

    order.apply(fill("l1", "SKU-A", 4, remaining=0))

    assert pick_lists(order) == [(1, [("l1", 10, 0), ("l2", 2, 0)], True)]


def test_ship_complete_ships_once_the_waiting_rest_is_being_cancelled() -> None:
    order = partly_backordered("ship_complete")
    order.apply(CancelBackorderedUnits(order_id="o-1", line_id="l1", requested_at=NOW))
    assert pick_lists(order) == [(1, [("l1", 6, 0), ("l2", 2, 0)], True)]


def test_a_withdrawn_line_is_listed_once_with_zero_units() -> None:
    order = Order().apply_all([placed(("l1", "SKU-A", 3, "1.00")), reserved("l1", "SKU-A", 3)])
    order.apply(CancelOrder(order_id="o-1", requested_at=NOW))
    [first, withdrawn] = order.of_type(FulfilmentRequested)
    assert first.lines == [ShippableLine(line_id="l1", sku="SKU-A", quantity=3, shipped=0)]
    assert withdrawn.lines == [ShippableLine(line_id="l1", sku="SKU-A", quantity=0, shipped=0)]
    assert withdrawn.complete  # nothing is left to ship or wait for: the warehouse may close it
    order.apply(released("l1", "SKU-A", reserved=3))  # the pick list stays empty: nothing new
    assert len(order.of_type(FulfilmentRequested)) == 2


def test_the_pick_list_echoed_by_the_orders_topic_is_ignored() -> None:
    order = partly_backordered()
    [published] = order.of_type(FulfilmentRequested)
    before = order.state
    assert order.apply(published) == []
    assert order.state == before


def test_an_announced_shipment_of_several_lines_gets_one_pick_list_revision() -> None:
    order = partly_backordered()
    order.apply(shipment("s-1", ("l1", "SKU-A", 6), ("l2", "SKU-B", 2)))

    [units] = order.apply(stock_shipped("s-1", "l1", "SKU-A", 6))  # l2's StockShipped is on its way
    assert isinstance(units, LineShipped)
    order.apply(stock_shipped("s-1", "l2", "SKU-B", 2))

    assert pick_lists(order) == [
        (1, [("l1", 6, 0), ("l2", 2, 0)], False),
        (2, [("l1", 0, 6), ("l2", 0, 2)], False),
    ]
