"""The order service's internal events: what it learned from other services, kept in the order's own stream.

The order stream must rebuild the order's state on its own, so every fact the order service reacts to
(a reservation, a shortfall, a fill, a release, an ETA, a shipment announced, units shipped) is recorded
here in the order's terms. These events have no topic: they stay in the service's log and are never
published. Contract events the order service itself decides (OrderPlaced, OrderCancelled,
OrderLineSubstituted, RefundRequested, FulfilmentRequested) go into the same stream and are published
by the relay.
"""

from datetime import date

from pydantic import AwareDatetime, Field

from backbone.contracts import EventPayload
from backbone.contracts.events import (
    CancelReason,
    OrderCancelled,
    OrderPlaced,
    ShippedLine,
    contract_registry,
)
from backbone.contracts.types import Identifier, NonNegativeQuantity, Quantity, Sku, Text


class OrderLineEvent(EventPayload):
    """Base of the internal events about one line of one order."""

    topic = None
    key_field = "order_id"

    order_id: Identifier
    line_id: Identifier
    sku: Sku


class OrderRecorded(EventPayload):
    """An order placed through a checkout system became known to the order service.

    Distinct from OrderPlaced so that recording someone else's order never re-publishes it.
    """

    event_type = "order.OrderRecorded"
    topic = None
    key_field = "order_id"

    order: OrderPlaced

    @property
    def order_id(self) -> str:
        return self.order.order_id


class ExternalCancellationRecorded(EventPayload):
    """A cancellation published by a checkout system (not decided here) was applied to the order."""

    event_type = "order.ExternalCancellationRecorded"
    topic = None
    key_field = "order_id"

    cancellation: OrderCancelled

    @property
    def order_id(self) -> str:
        return self.cancellation.order_id


class LineReserved(OrderLineEvent):
    """Inventory reserved units of the line from stock on hand at placement."""

    event_type = "order.LineReserved"

    quantity: Quantity


class LineBackordered(OrderLineEvent):
    """At placement, `reserved` units were in stock and `backordered` units joined the SKU's queue."""

    event_type = "order.LineBackordered"

    reserved: NonNegativeQuantity
    backordered: Quantity


class LineRejected(OrderLineEvent):
    """At placement, `reserved` units were in stock and `rejected` units were refused (no backorder)."""

    event_type = "order.LineRejected"

    reserved: NonNegativeQuantity
    rejected: Quantity
    reason: Text | None


class LineFilled(OrderLineEvent):
    """Received stock was allocated to units of the line that were waiting."""

    event_type = "order.LineFilled"

    quantity: Quantity
    remaining_backordered: NonNegativeQuantity = Field(description="Inventory's count, for reconciliation")
    source: Identifier


class LineReleased(OrderLineEvent):
    """Inventory confirmed that cancelled units left its books (StockReleased): they are now cancelled."""

    event_type = "order.LineReleased"

    released_reserved: NonNegativeQuantity
    dropped_backordered: NonNegativeQuantity
    # The cancellation's reason (StockReleased.reason, else the pending request's); None in streams
    # written before refunds followed inventory's answer, and for a substitution.
    reason: CancelReason | None = None
    # Set when the units left for a substitute (StockReleased.substitution_id): they are not refunded.
    substitution_id: Identifier | None = None


class ShipmentAnnounced(EventPayload):
    """The warehouse reported a shipment (ShipmentDispatched): its metadata and its lines as announced.

    Moves no units: inventory's StockShipped (LineShipped) is the truth of what left, because inventory
    may refuse a shipment it cannot honour (units released by a cancellation meanwhile)."""

    event_type = "order.ShipmentAnnounced"
    topic = None
    key_field = "order_id"

    order_id: Identifier
    shipment_id: Identifier
    lines: list[ShippedLine] = Field(min_length=1, max_length=500)
    carrier: Text | None = None
    tracking_number: Text | None = None
    tracking_url: Text | None = None
    shipped_at: AwareDatetime


class LineShipped(OrderLineEvent):
    """Inventory shipped units of the line from its reservation in a shipment (StockShipped)."""

    event_type = "order.LineShipped"

    shipment_id: Identifier
    quantity: Quantity


class LineEtaChanged(OrderLineEvent):
    """The ETA of the line's waiting units was set or changed; eta null means no purchase order covers it."""

    event_type = "order.LineEtaChanged"

    eta: date | None
    previous_eta: date | None = Field(description="The ETA this order knew before, not procurement's")
    po_id: Identifier | None
    reason: Text


INTERNAL_EVENTS: tuple[type[EventPayload], ...] = (
    OrderRecorded,
    ExternalCancellationRecorded,
    LineReserved,
    LineBackordered,
    LineRejected,
    LineFilled,
    LineReleased,
    LineEtaChanged,
    ShipmentAnnounced,
    LineShipped,
)

ORDER_REGISTRY = contract_registry(INTERNAL_EVENTS)
"""Decodes everything the order service's event store holds: contract events and its internal ones."""
