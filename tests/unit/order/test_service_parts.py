"""The pure parts of the order service around the domain: inputs, the auto-cancel check, summaries."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from backbone.contracts import new_envelope
from backbone.contracts.events import BackorderQueueSnapshotV1, OrderPlaced, RefundRequested
from services.order.api import _inline_schema
from services.order.domain import CancelBackorderedUnits
from services.order.handlers import AutoCancelCheck, decide_incoming, inputs_of
from services.order.history import summarize
from services.order.reports import percent
from tests.unit.order.builders import PLACED_AT, Order, eta, placed, released, shipment, short, stock_shipped


def test_consumed_events_go_to_their_order_stream_and_others_are_ignored() -> None:
    shortfall = new_envelope(short("l1", "SKU-A", 5, 2, order_id="o-7"))
    queue = new_envelope(BackorderQueueSnapshotV1(sku="SKU-A", entries=[]))
    refund = new_envelope(
        RefundRequested(
            order_id="o-7",
            line_id="l1",
            sku="SKU-A",
            quantity=1,
            amount=Decimal("1.00"),
            currency="EUR",
            reason="customer_request",
        )
    )

    [only] = inputs_of([queue, shortfall, refund])  # our own refund, echoed: nothing to decide

    assert (only.stream_id, only.message, only.cause) == ("order:o-7", shortfall.payload, shortfall)


def test_the_auto_cancel_check_decides_only_after_the_deadline() -> None:
    order = Order().apply_all(
        [placed(("l1", "SKU-A", 5, "2.00"), max_wait_days=3), short("l1", "SKU-A", 5, 1)]
    )
    deadline = PLACED_AT + timedelta(days=3)

    assert decide_incoming(order.state, AutoCancelCheck("o-1", deadline - timedelta(seconds=1), 30)) == []
    [cancelled] = decide_incoming(order.state, AutoCancelCheck("o-1", deadline, 30))

    assert (cancelled.reason, cancelled.lines[0].quantity) == ("max_wait_exceeded", 4)  # type: ignore[attr-defined]
    order.apply(cancelled)
    assert decide_incoming(order.state, AutoCancelCheck("o-1", deadline + timedelta(days=9), 30)) == []


def test_the_eta_names_its_purchase_order() -> None:
    order = Order().apply_all([placed(("l1", "SKU-A", 5, "1.00")), short("l1", "SKU-A", 5, 0)])
    order.apply(eta("l1", "SKU-A", date(2026, 4, 1)))
    assert order.state.lines["l1"].po_id == "po-1"
    order.apply(eta("l1", "SKU-A", None))
    assert (order.state.lines["l1"].po_id, order.state.lines["l1"].eta) == (None, None)


def test_every_event_of_an_order_stream_has_a_summary() -> None:
    order = Order().apply_all(
        [
            placed(("l1", "SKU-A", 5, "2.00"), ("l2", "SKU-B", 1, "1.00")),
            short("l1", "SKU-A", 5, 1),
            short("l2", "SKU-B", 1, 0, "rejected", "backorders denied"),
            eta("l1", "SKU-A", date(2026, 4, 1)),
            eta("l1", "SKU-A", date(2026, 4, 9)),
            CancelBackorderedUnits("o-1", "l1", datetime(2026, 3, 3, tzinfo=UTC), quantity=1),
            released("l1", "SKU-A", dropped=1),
            shipment("s-1", ("l1", "SKU-A", 1), tracking="JD0001"),
            stock_shipped("s-1", "l1", "SKU-A", 1),
        ]
    )

    assert [summarize(e) for e in order.stream] == [
        "order received from checkout: 2 lines, 6 units",
        "line l1: 1 unit reserved, 4 units backordered",
        "line l2: 0 units reserved, 1 unit rejected (backorders denied)",
        "pick list revision 1: line l1 1 (shipped 0)",
        "line l1: ETA 2026-04-01, po-1: purchase order",
        "line l1: ETA 2026-04-09 (was 2026-04-01), po-1: purchase order",
        "cancellation of waiting units requested (customer_request): line l1 1 unit",
        "line l1: inventory released 0 units and dropped 1 unit from the queue (customer_request)",
        "refund requested for line l1: 1 unit, 2.00 EUR (customer_request)",
        "shipment s-1 announced by the warehouse (DHL JD0001): line l1 1 unit",
        "line l1: inventory shipped 1 unit in s-1",
        "pick list revision 2: line l1 0 (shipped 1)",
    ]


def test_percentages_are_rounded_and_undefined_without_a_denominator() -> None:
    assert percent(100, 800) == 12.5
    assert percent(1, 3) == 33.33
    assert percent(0, 0) is None


def test_the_place_order_schema_stands_alone() -> None:
    schema = _inline_schema(OrderPlaced)
    assert "$defs" not in schema and "$ref" not in str(schema)
    assert schema["properties"]["lines"]["items"]["properties"]["quantity"]["type"] == "integer"
    assert set(schema["required"]) >= {"order_id", "customer", "lines", "placed_at"}
