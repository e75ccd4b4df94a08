"""Orders and inventory answers for the order domain's tests, and a driver that decides then evolves."""

from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TypeVar

from backbone.contracts import EventPayload
from backbone.contracts.events import (
    BackorderEtaUpdated,
    BackorderFulfilled,
    Customer,
    FulfilmentRequested,
    OrderLine,
    OrderPlaced,
    ShipmentDispatched,
    ShippedLine,
    ShippingPreference,
    StockReleased,
    StockReserved,
    StockShipped,
    StockShort,
)
from services.order.domain import Command, OrderState, decide, evolve, initial_state

PLACED_AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
E = TypeVar("E", bound=EventPayload)


def placed(
    *lines: tuple[str, str, int, str],
    order_id: str = "o-1",
    preference: ShippingPreference = "ship_available",
    max_wait_days: int | None = None,
) -> OrderPlaced:
    """An order of (line_id, sku, quantity, unit price) lines."""
    return OrderPlaced(
        order_id=order_id,
        customer=Customer(customer_id="c-1", email="ada@example.com", name="Ada"),
        lines=[
            OrderLine(line_id=line_id, sku=sku, quantity=quantity, unit_price=Decimal(price))
            for line_id, sku, quantity, price in lines
        ],
        placed_at=PLACED_AT,
        shipping_preference=preference,
        max_wait_days=max_wait_days,
    )


def reserved(line_id: str, sku: str, quantity: int, order_id: str = "o-1") -> StockReserved:
    return StockReserved(order_id=order_id, line_id=line_id, sku=sku, quantity=quantity)


def short(
    line_id: str,
    sku: str,
    demanded: int,
    available: int,
    disposition: str = "backordered",
    reason: str | None = None,
    order_id: str = "o-1",
) -> StockShort:
    return StockShort(
        order_id=order_id,
        line_id=line_id,
        sku=sku,
        demanded=demanded,
        available=available,
        short_quantity=demanded - available,
        disposition=disposition,  # type: ignore[arg-type]
        reason=reason,
    )


def fill(line_id: str, sku: str, quantity: int, remaining: int, order_id: str = "o-1") -> BackorderFulfilled:
    return BackorderFulfilled(
        order_id=order_id,
        line_id=line_id,
        sku=sku,
        quantity=quantity,
        remaining_backordered=remaining,
        source="receipt-1",
        priority_reason="first in queue",
    )


def eta(line_id: str, sku: str, when: date | None, order_id: str = "o-1") -> BackorderEtaUpdated:
    return BackorderEtaUpdated(
        order_id=order_id,
        line_id=line_id,
        sku=sku,
        eta=when,
        previous_eta=None,
        po_id="po-1" if when else None,
        reason="purchase order" if when else "no purchase order covers it",
    )


def released(
    line_id: str,
    sku: str,
    *,
    reserved: int = 0,
    dropped: int = 0,
    reason: str | None = "customer_request",
    order_id: str = "o-1",
) -> StockReleased:
    return StockReleased(
        order_id=order_id,
        line_id=line_id,
        sku=sku,
        released_reserved=reserved,
        dropped_backordered=dropped,
        reason=reason,  # type: ignore[arg-type]
    )


def shipment(
    shipment_id: str, *lines: tuple[str, str, int], order_id: str = "o-1", tracking: str | None = None
) -> ShipmentDispatched:
    """A shipment of (line_id, sku, quantity) lines."""
    return ShipmentDispatched(
        shipment_id=shipment_id,
        order_id=order_id,
        lines=[ShippedLine(line_id=line_id, sku=sku, quantity=quantity) for line_id, sku, quantity in lines],
        carrier="DHL" if tracking else None,
        tracking_number=tracking,
        shipped_at=PLACED_AT,
    )


def stock_shipped(
    shipment_id: str, line_id: str, sku: str, quantity: int, order_id: str = "o-1"
) -> StockShipped:
    """Inventory's part of a shipment: the units of one line that left its stock."""
    return StockShipped(
        shipment_id=shipment_id,
        order_id=order_id,
        line_id=line_id,
        sku=sku,
        quantity=quantity,
        on_hand_after=0,
    )


def shipped_both(
    shipment_id: str, *lines: tuple[str, str, int], tracking: str | None = None
) -> list[EventPayload]:
    """A shipment as the order service hears it: the warehouse's announcement, then inventory's units."""
    return [
        shipment(shipment_id, *lines, tracking=tracking),
        *(stock_shipped(shipment_id, *line) for line in lines),
    ]


def without_pick_lists(events: Iterable[EventPayload]) -> list[EventPayload]:
    """The events but the FulfilmentRequested that follow every change of what may ship."""
    return [event for event in events if not isinstance(event, FulfilmentRequested)]


class Order:
    """Drives one order stream as the handler would: decide, then evolve with what was decided."""

    def __init__(self, order_id: str = "o-1") -> None:
        self.state: OrderState = initial_state(order_id)
        self.stream: list[EventPayload] = []

    def apply(self, incoming: Command | EventPayload) -> list[EventPayload]:
        events = decide(self.state, incoming)
        for event in events:
            self.state = evolve(self.state, event)
        self.stream.extend(events)
        return events

    def apply_all(self, incoming: Iterable[Command | EventPayload]) -> "Order":
        for each in incoming:
            self.apply(each)
        return self

    def of_type(self, kind: type[E]) -> list[E]:
        return [event for event in self.stream if isinstance(event, kind)]
