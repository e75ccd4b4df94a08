"""Shipments recorded on the order, its shipped statuses, and the pick list published on every change."""

from datetime import UTC, datetime

import pytest

from backbone.contracts.events import FulfilmentRequested, ShippableLine
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
from services.order.events import ShipmentRecorded
from tests.unit.order.builders import Order, fill, placed, released, reserved, shipment, short

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


def test_a_partial_shipment_makes_the_order_partially_shipped() -> None:
    order = partly_backordered()

    [recorded, _] = order.apply(shipment("s-1", ("l1", "SKU-A", 6), tracking="JD0001"))

    assert isinstance(recorded, ShipmentRecorded)
    assert (recorded.shipment_id, recorded.tracking_number, recorded.carrier) == ("s-1", "JD0001", "DHL")
    line = order.state.lines["l1"]
    assert (line.shipped, line.allocated, line.to_ship, line.waiting) == (6, 6, 0, 4)
    assert order_status(order.state) == "partially_shipped"
    assert shippable_now(order.state) == {"l2": 2}
    assert not order.state.closed
    assert invariant_violations(order.state) == []


def test_the_last_shipment_makes_the_order_shipped_and_closed() -> None:
    order = partly_backordered()
    order.apply(shipment("s-1", ("l1", "SKU-A", 6), ("l2", "SKU-B", 2)))
    order.apply(fill("l1", "SKU-A", 4, remaining=0))
    assert order_status(order.state) == "partially_shipped"
    assert shippable_now(order.state) == {"l1": 4}

    order.apply(shipment("s-2", ("l1", "SKU-A", 4)))

    assert order_status(order.state) == "shipped"
    assert order.state.closed and all(line.closed for line in order.state.lines.values())
    assert shippable_now(order.state) == {}
    assert invariant_violations(order.state) == []


def test_shipped_after_cancelling_the_rest_is_shipped_and_closed() -> None:
    order = partly_backordered()
    order.apply(shipment("s-1", ("l1", "SKU-A", 6), ("l2", "SKU-B", 2)))
    order.apply(CancelBackorderedUnits(order_id="o-1", line_id="l1", requested_at=NOW))
    order.apply(released("l1", "SKU-A", dropped=4))
    assert (order_status(order.state), order.state.closed) == ("shipped", True)


def test_shipping_more_than_allocated_and_unshipped_is_refused() -> None:
    order = partly_backordered()
    order.apply(shipment("s-1", ("l1", "SKU-A", 5)))
    with pytest.raises(
        UnexpectedEvent, match="s-2 ships 2 units of line l1 of order o-1, which has 1 allocated"
    ):
        order.apply(shipment("s-2", ("l1", "SKU-A", 2)))
    with pytest.raises(UnexpectedEvent, match="no line l9"):
        order.apply(shipment("s-3", ("l9", "SKU-A", 1)))
    with pytest.raises(UnexpectedEvent, match="is SKU-B, not SKU-A"):
        order.apply(shipment("s-4", ("l2", "SKU-A", 1)))
    with pytest.raises(UnexpectedEvent, match="unknown order"):
        decide(initial_state("o-1"), shipment("s-5", ("l1", "SKU-A", 1)))
    assert order.state.lines["l1"].shipped == 5


def test_pick_list_revisions_follow_every_change_and_only_a_change() -> None:
    order = partly_backordered()
    assert pick_lists(order) == [(1, [("l1", 6, 0), ("l2", 2, 0)], False)]

    order.apply(reserved("l2", "SKU-B", 2))  # inventory stating it again: nothing changes
    order.apply(shipment("s-1", ("l2", "SKU-B", 2)))
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
