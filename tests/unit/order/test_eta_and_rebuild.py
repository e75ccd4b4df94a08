"""ETA changes in the order's stream, and the state rebuilt from that stream alone."""

from datetime import UTC, date, datetime

from backbone.contracts import new_envelope
from backbone.contracts.events import StockReleased
from services.order.domain import CancelBackorderedUnits, rebuild
from services.order.events import ORDER_REGISTRY, LineEtaChanged
from tests.unit.order.builders import Order, eta, fill, placed, reserved, short


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
