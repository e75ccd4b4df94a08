from datetime import UTC, datetime
from decimal import Decimal

import pytest

from backbone.contracts import CONTRACT_EVENTS, EventRegistry, new_envelope
from backbone.contracts.events import Customer, OrderLine, OrderPlaced
from services.inventory.domain import evolve, initial_state, rebuild
from services.inventory.events import INVENTORY_EVENTS
from services.inventory.priority import WEIGHTED
from tests.unit.inventory.harness import SKU, SkuHarness


def promotion() -> SkuHarness:
    sku = SkuHarness(priority=WEIGHTED)
    sku.adjust(+100, reason="opening balance")
    sku.set_policy("allow", reorder_point=10, safety_stock=4)
    sku.reserve("A", 70, minute=0)
    sku.reserve("B", 50, minute=1, tier="gold")
    sku.reserve("C", 30, minute=2, urgent=True)
    sku.receive(15)
    sku.cancel("A", 40)
    sku.set_policy("cap", cap=5, reorder_point=10)
    sku.reserve("D", 9, minute=3)
    sku.adjust(+30, reason="found in the back room", adjustment_id="adj-2")
    sku.ship("B", 20, shipment_id="S-1")
    sku.cancel("C", 30, only_waiting=True)
    sku.count(sku.state.on_hand - 3, count_id="count-1")
    sku.record_sourcing(True)
    return sku


def test_folding_evolve_over_the_emitted_events_rebuilds_the_live_state() -> None:
    sku = promotion()

    assert sku.rebuilt() == sku.state
    assert {type(e).__name__ for e in sku.log} >= {"StockShipped", "StockCounted", "SourcingRecorded"}


def test_the_state_rebuilt_from_the_stored_json_equals_the_live_state() -> None:
    sku = promotion()
    registry = EventRegistry((*CONTRACT_EVENTS, *INVENTORY_EVENTS))

    stored = [new_envelope(e, correlation_id="flow").to_json() for e in sku.log]
    decoded = [registry.decode(raw).payload for raw in stored]

    assert decoded == sku.log
    assert rebuild(SKU, decoded) == sku.state


def test_internal_events_are_kept_in_the_log_and_never_published() -> None:
    assert all(event.topic is None and event.key_field == "sku" for event in INVENTORY_EVENTS)
    assert not {e.event_type for e in INVENTORY_EVENTS} & {e.event_type for e in CONTRACT_EVENTS}


def test_an_event_of_another_stream_is_refused() -> None:
    order = OrderPlaced(
        order_id="A",
        customer=Customer(customer_id="c1", email="ann@example.com"),
        lines=[OrderLine(line_id="1", sku=SKU, quantity=1, unit_price=Decimal("1.00"))],
        placed_at=datetime(2026, 3, 1, tzinfo=UTC),
    )

    with pytest.raises(TypeError, match="OrderPlaced"):
        evolve(initial_state(SKU), order)
