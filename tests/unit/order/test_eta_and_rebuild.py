"""ETA changes in the order's stream, and the state rebuilt from that stream alone (also an old one)."""

import json
from datetime import UTC, date, datetime
from decimal import Decimal

from backbone.contracts import EventPayload, new_envelope
from backbone.contracts.events import LineQuantity, OrderCancelled, RefundRequested, StockReleased
from services.order.domain import CancelBackorderedUnits, decide, invariant_violations, order_status, rebuild
from services.order.events import (
    ORDER_REGISTRY,
    LineBackordered,
    LineEtaChanged,
    LineFilled,
    LineReleased,
    OrderRecorded,
)
from tests.unit.order.builders import Order, eta, fill, placed, released, reserved, short, without_pick_lists


def test_eta_change_is_recorded_with_the_previous_one() -> None:
    order = Order().apply_all([placed(("l1", "SKU-A", 500, "10.00")), short("l1", "SKU-A", 500, 400)])

    first = order.apply(eta("l1", "SKU-A", date(2026, 4, 1)))
    second = order.apply(eta("l1", "SKU-A", date(2026, 4, 15)))

    assert [(e.eta, e.previous_eta) for e in first + second] == [  # type: ignore[attr-defined]
        (date(2026, 4, 1), None),
        (date(2026, 4, 15), date(2026, 4, 1)),
    ]
    line = order.state.lines["l1"]
    assert (line.eta, line.previous_eta, line.eta_known) == (date(2026, 4, 15), date(2026, 4, 1), True)
    assert order.apply(eta("l1", "SKU-A", date(2026, 4, 15))) == []


def test_no_purchase_order_is_an_answer_too() -> None:
    order = Order().apply_all([placed(("l1", "SKU-A", 5, "1.00")), short("l1", "SKU-A", 5, 0)])
    assert isinstance(order.apply(eta("l1", "SKU-A", None))[0], LineEtaChanged)
    line = order.state.lines["l1"]
    assert (line.eta, line.eta_known) == (None, True)
    assert order.apply(eta("l1", "SKU-A", None)) == []


def test_rebuilt_state_equals_the_live_one() -> None:
    order = Order().apply_all(
        [
            eta("l1", "SKU-A", date(2026, 4, 1)),  # the procurement topic overtook the others
            placed(("l1", "SKU-A", 500, "10.00"), ("l2", "SKU-B", 3, "2.50"), ("l3", "SKU-C", 2, "1.00")),
            short("l1", "SKU-A", 500, 400),
            reserved("l2", "SKU-B", 3),
            short("l3", "SKU-C", 2, 0, "rejected", "backorders denied"),
            eta("l1", "SKU-A", date(2026, 4, 9)),
            fill("l1", "SKU-A", 30, remaining=70),
            CancelBackorderedUnits(
                order_id="o-1", line_id="l1", requested_at=datetime(2026, 3, 4, tzinfo=UTC), quantity=20
            ),
            StockReleased(
                order_id="o-1", line_id="l1", sku="SKU-A", released_reserved=0, dropped_backordered=20
            ),
        ]
    )

    # Through the event store's encoding, as a restarted service would read its stream.
    stored = [ORDER_REGISTRY.decode(new_envelope(e).to_json()).payload for e in order.stream]

    assert rebuild("o-1", stored) == order.state
    assert rebuild("o-1", order.stream) == order.state


def _old_encoding(event: EventPayload, *absent: str) -> EventPayload:
    """The event as a stream written before issue 8 stored it: without the fields added since."""
    document = json.loads(new_envelope(event).to_json())
    for name in absent:
        del document["payload"][name]
    return ORDER_REGISTRY.decode(json.dumps(document).encode()).payload


def _old_stream_until_refund() -> list[EventPayload]:
    """Before issue 8: the cancellation was refunded when decided, without waiting for inventory."""
    cancelled = OrderCancelled(
        order_id="o-1",
        lines=[LineQuantity(line_id="l1", sku="SKU-A", quantity=100)],
        reason="customer_request",
        cancelled_at=datetime(2026, 3, 4, tzinfo=UTC),
    )
    return [
        OrderRecorded(order=placed(("l1", "SKU-A", 500, "10.00"))),
        LineBackordered(order_id="o-1", line_id="l1", sku="SKU-A", reserved=400, backordered=100),
        _old_encoding(cancelled, "only_waiting", "cancellation_id"),
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


def test_an_old_stream_with_a_raced_fill_rebuilds_refunded_exactly_once() -> None:
    old_release = LineReleased(
        order_id="o-1", line_id="l1", sku="SKU-A", released_reserved=30, dropped_backordered=70
    )
    stream = [
        *_old_stream_until_refund(),
        # the fill raced the cancellation (old filled_after_cancel); inventory released those units
        LineFilled(
            order_id="o-1", line_id="l1", sku="SKU-A", quantity=30, remaining_backordered=0, source="r-1"
        ),
        _old_encoding(old_release, "reason"),
    ]

    state = rebuild("o-1", stream)

    line = state.lines["l1"]
    assert (line.cancelled, line.refunded, line.cancellation_pending) == (100, 100, 0)
    assert (line.allocated, line.waiting) == (400, 0)
    assert order_status(state) == "ready_to_ship"
    assert invariant_violations(state) == []
    # Whatever comes next decides no second refund for those units.
    assert not [e for e in decide(state, eta("l1", "SKU-A", None)) if isinstance(e, RefundRequested)]


def test_an_old_stream_refunded_before_the_release_is_not_refunded_again_when_it_arrives() -> None:
    order = Order()
    order.state = rebuild("o-1", _old_stream_until_refund())
    assert order.state.lines["l1"].cancellation_pending == 100
    assert invariant_violations(order.state) == []

    events = order.apply(released("l1", "SKU-A", dropped=100))

    assert [type(e) for e in without_pick_lists(events)] == [LineReleased]
    line = order.state.lines["l1"]
    assert (line.cancelled, line.refunded, line.waiting) == (100, 100, 0)
    assert invariant_violations(order.state) == []
