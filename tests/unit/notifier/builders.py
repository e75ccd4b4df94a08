"""Contract events as the notifier receives them (in envelopes), and a driver for its order streams."""

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from backbone.contracts import Envelope, EventPayload, new_envelope
from backbone.contracts.events import (
    BackorderEtaUpdated,
    BackorderFulfilled,
    Customer,
    LineQuantity,
    OrderCancelled,
    OrderLine,
    OrderPlaced,
    RefundRequested,
    ShipmentDispatched,
    ShippedLine,
    StockReleased,
    StockShipped,
    StockShort,
)
from services.notifier.domain import (
    AnnounceOverdueBackorders,
    OrderFacts,
    decide_order,
    evolve_order,
    initial_order_facts,
)
from services.notifier.events import Notification, NotificationRequested

PLACED_AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
_event_numbers = iter(range(1, 1_000_000))


def envelope(payload: EventPayload, at: datetime | None = None) -> Envelope[Any]:
    """A new message: every call has its own event id, as a producer would give it."""
    return new_envelope(
        payload,
        event_id=uuid.UUID(int=next(_event_numbers)),
        occurred_at=at or PLACED_AT + timedelta(seconds=1),
    )


def placed(max_wait_days: int | None = 30, with_second_line: bool = True) -> Envelope[Any]:
    """Order o-1 of Ada: l1 is 500 units of SKU-A and, unless told otherwise, l2 is 2 of SKU-B."""
    second = [OrderLine(line_id="l2", sku="SKU-B", quantity=2, unit_price=Decimal("5.00"))]
    return envelope(
        OrderPlaced(
            order_id="o-1",
            customer=Customer(customer_id="c-1", email="ada@example.com", name="Ada"),
            lines=[
                OrderLine(line_id="l1", sku="SKU-A", quantity=500, unit_price=Decimal("10.00")),
                *(second if with_second_line else []),
            ],
            placed_at=PLACED_AT,
            max_wait_days=max_wait_days,
        ),
        at=PLACED_AT,
    )


def short(available: int = 400, disposition: str = "backordered", reason: str | None = None) -> Envelope[Any]:
    return envelope(
        StockShort(
            order_id="o-1",
            line_id="l1",
            sku="SKU-A",
            demanded=500,
            available=available,
            short_quantity=500 - available,
            disposition=disposition,  # type: ignore[arg-type]
            reason=reason,
        )
    )


def eta(when: date | None, basis: str | None = None) -> Envelope[Any]:
    return envelope(
        BackorderEtaUpdated(
            order_id="o-1",
            line_id="l1",
            sku="SKU-A",
            eta=when,
            previous_eta=None,
            po_id="po-1" if when else None,
            reason="purchase order",
            basis=basis,  # type: ignore[arg-type]
        )
    )


def fill(quantity: int, remaining: int) -> Envelope[Any]:
    return envelope(
        BackorderFulfilled(
            order_id="o-1",
            line_id="l1",
            sku="SKU-A",
            quantity=quantity,
            remaining_backordered=remaining,
            source="receipt-1",
            priority_reason="first in queue",
        )
    )


def cancelled(
    quantity: int = 100, reason: str = "customer_request", only_waiting: bool = False
) -> Envelope[Any]:
    """The cancellation as requested (orders topic); inventory answers with `released`."""
    return envelope(
        OrderCancelled(
            order_id="o-1",
            lines=[LineQuantity(line_id="l1", sku="SKU-A", quantity=quantity)],
            reason=reason,  # type: ignore[arg-type]
            cancelled_at=PLACED_AT + timedelta(days=2),
            only_waiting=only_waiting,
        )
    )


def released(reserved: int = 0, dropped: int = 0, reason: str | None = "customer_request") -> Envelope[Any]:
    """What inventory actually cancelled of line l1 (inventory topic)."""
    return envelope(
        StockReleased(
            order_id="o-1",
            line_id="l1",
            sku="SKU-A",
            released_reserved=reserved,
            dropped_backordered=dropped,
            reason=reason,  # type: ignore[arg-type]
        )
    )


def shipment(shipment_id: str = "s-1", l1: int = 400, l2: int = 0, tracking: bool = True) -> Envelope[Any]:
    """The warehouse shipped `l1` units of line l1 and `l2` of l2 (fulfilment topic)."""
    lines = [ShippedLine(line_id="l1", sku="SKU-A", quantity=l1)] if l1 else []
    lines += [ShippedLine(line_id="l2", sku="SKU-B", quantity=l2)] if l2 else []
    return envelope(
        ShipmentDispatched(
            shipment_id=shipment_id,
            order_id="o-1",
            lines=lines,
            carrier="DHL" if tracking else None,
            tracking_number="JD0001" if tracking else None,
            tracking_url="https://track.example/JD0001" if tracking else None,
            shipped_at=PLACED_AT + timedelta(days=3),
        )
    )


def stock_shipped(shipment_id: str = "s-1", quantity: int = 400, line_id: str = "l1") -> Envelope[Any]:
    """Inventory took the shipment's units of the line out of its books (inventory topic, key sku)."""
    return envelope(
        StockShipped(
            shipment_id=shipment_id,
            order_id="o-1",
            line_id=line_id,
            sku={"l1": "SKU-A", "l2": "SKU-B"}[line_id],
            quantity=quantity,
            on_hand_after=0,
        )
    )


def refund(quantity: int = 100, reason: str = "customer_request") -> Envelope[Any]:
    return envelope(
        RefundRequested(
            order_id="o-1",
            line_id="l1",
            sku="SKU-A",
            quantity=quantity,
            amount=quantity * Decimal("10.00"),
            currency="EUR",
            reason=reason,  # type: ignore[arg-type]
        )
    )


def requested(events: list[EventPayload]) -> list[Notification]:
    return [e.notification for e in events if isinstance(e, NotificationRequested)]


class OrderStream:
    """Drives one notifier order stream as the handler would: decide, then evolve with what was decided."""

    def __init__(self, order_id: str = "o-1") -> None:
        self.state: OrderFacts = initial_order_facts(order_id)
        self.stream: list[EventPayload] = []

    def apply(self, incoming: Envelope[Any] | AnnounceOverdueBackorders) -> list[Notification]:
        """Applies `incoming`; returns the notifications it requested."""
        events = decide_order(self.state, incoming)
        for event in events:
            self.state = evolve_order(self.state, event)
        self.stream.extend(events)
        return requested(events)

    def apply_all(self, *incoming: Envelope[Any]) -> list[Notification]:
        return [n for each in incoming for n in self.apply(each)]
