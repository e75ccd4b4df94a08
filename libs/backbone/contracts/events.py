"""Every integration event of the public contract (version 1 unless said otherwise).

Docstrings and field descriptions end up in the generated JSON Schemas and the AsyncAPI document.
"""

from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from backbone.contracts.envelope import STRICT, EventPayload
from backbone.contracts.registry import EventRegistry
from backbone.contracts.topics import Topic
from backbone.contracts.types import (
    Currency,
    Email,
    Identifier,
    Money,
    NonNegativeQuantity,
    Quantity,
    Sku,
    Text,
)

CustomerTier = Literal["standard", "silver", "gold", "platinum"]
ShippingPreference = Literal["ship_available", "ship_complete"]


class Customer(BaseModel):
    model_config = STRICT
    customer_id: Identifier
    email: Email
    name: Text | None = None
    tier: CustomerTier = "standard"


class OrderLine(BaseModel):
    model_config = STRICT
    line_id: Identifier = Field(description="Unique within the order")
    sku: Sku
    quantity: Quantity
    unit_price: Money


class LineQuantity(BaseModel):
    model_config = STRICT
    line_id: Identifier
    sku: Sku
    quantity: Quantity


# --- orders topic (checkout systems, order service); key = order_id ---------------------------------


class OrderPlaced(EventPayload):
    """A customer placed an order. Published by checkout systems (or `POST /orders` of the order service)."""

    event_type = "OrderPlaced"
    topic = Topic.ORDERS
    key_field = "order_id"

    order_id: Identifier
    shop_id: Identifier = "default"
    customer: Customer
    lines: list[OrderLine] = Field(min_length=1, max_length=500)
    currency: Currency = "EUR"
    placed_at: AwareDatetime
    urgent: bool = False
    shipping_preference: ShippingPreference = Field(
        default="ship_available",
        description="ship_available: ship what is in stock now; ship_complete: wait for every line",
    )
    max_wait_days: int | None = Field(
        default=None, gt=0, le=365, description="Cancel and refund backordered units not filled by then"
    )

    @model_validator(mode="after")
    def _unique_lines(self) -> Self:
        ids = [line.line_id for line in self.lines]
        if len(set(ids)) != len(ids):
            raise ValueError("line_id values must be unique within an order")
        return self


class OrderCancelled(EventPayload):
    """Units of an order are cancelled: a whole order, or the backordered part of lines."""

    event_type = "OrderCancelled"
    topic = Topic.ORDERS
    key_field = "order_id"

    order_id: Identifier
    lines: list[LineQuantity] = Field(min_length=1, description="Units to cancel per line")
    reason: Literal["customer_request", "max_wait_exceeded", "shop_request"]
    cancelled_at: AwareDatetime


class RefundRequested(EventPayload):
    """The order service asks payments to refund cancelled units that were paid for."""

    event_type = "RefundRequested"
    topic = Topic.ORDERS
    key_field = "order_id"

    order_id: Identifier
    line_id: Identifier
    sku: Sku
    quantity: Quantity
    amount: Money
    currency: Currency
    reason: Literal["customer_request", "max_wait_exceeded", "shop_request"]


# --- inventory topic (inventory service); key = sku ---------------------------------------------------


class StockReserved(EventPayload):
    """Units of an order line were reserved from stock on hand at placement."""

    event_type = "StockReserved"
    topic = Topic.INVENTORY
    key_field = "sku"

    order_id: Identifier
    line_id: Identifier
    sku: Sku
    quantity: Quantity


class StockShort(EventPayload):
    """An order line asked for more than was available: the shortfall is backordered or rejected."""

    event_type = "StockShort"
    topic = Topic.INVENTORY
    key_field = "sku"

    order_id: Identifier
    line_id: Identifier
    sku: Sku
    demanded: Quantity
    available: NonNegativeQuantity = Field(
        description="Units that were available (and reserved) at placement"
    )
    short_quantity: Quantity = Field(description="demanded - available")
    disposition: Literal["backordered", "rejected"]
    reason: Text | None = Field(default=None, description="Why a shortfall was rejected")

    @model_validator(mode="after")
    def _arithmetic(self) -> Self:
        if self.short_quantity != self.demanded - self.available:
            raise ValueError("short_quantity must equal demanded - available")
        return self


class BackorderFulfilled(EventPayload):
    """Received stock was allocated to a waiting backordered line (possibly partly)."""

    event_type = "BackorderFulfilled"
    topic = Topic.INVENTORY
    key_field = "sku"

    order_id: Identifier
    line_id: Identifier
    sku: Sku
    quantity: Quantity
    remaining_backordered: NonNegativeQuantity
    source: Identifier = Field(description="receipt_id of the goods, or the event that released stock")
    priority_reason: Text = Field(description="Why this line was served at this point of the queue")


class StockReleased(EventPayload):
    """Cancelled units left inventory's books: reservations released and/or dropped from the queue."""

    event_type = "StockReleased"
    topic = Topic.INVENTORY
    key_field = "sku"

    order_id: Identifier
    line_id: Identifier
    sku: Sku
    released_reserved: NonNegativeQuantity
    dropped_backordered: NonNegativeQuantity


class BackorderQueueEntry(BaseModel):
    model_config = STRICT
    order_id: Identifier
    line_id: Identifier
    quantity: Quantity


class BackorderQueueSnapshotV1(EventPayload):
    """Retired (contract 1.x): the SKU's whole waiting queue after any change. Still decoded, so that logs
    and topics written before 2.0 replay, but no longer published; consumers skip it."""

    event_type = "BackorderQueueChanged"
    schema_version = 1
    topic = Topic.INVENTORY
    key_field = "sku"

    sku: Sku
    entries: list[BackorderQueueEntry]


QueueChange = Literal["joined", "reduced", "left"]
PriorityScore = Annotated[Decimal, Field(ge=0, decimal_places=2)]


class BackorderQueueChanged(EventPayload):
    """One waiting line of the SKU's backorder queue changed: it joined, fewer of its units wait, or it left.

    Consumers keep their own ordered view of the queue from these events alone (they arrive in order,
    key = sku). The allocation order is by `priority_score` (highest first), then `placed_at`, then
    `sequence`; a line's rank is fixed when it joins. Version 2: version 1 carried the whole queue.
    """

    event_type = "BackorderQueueChanged"
    schema_version = 2
    topic = Topic.INVENTORY
    key_field = "sku"

    sku: Sku
    order_id: Identifier
    line_id: Identifier
    change: QueueChange
    position: Quantity = Field(
        description="The line's place in allocation order (1 = served first): where it joined, or where "
        "it stood when it was reduced or left"
    )
    remaining: NonNegativeQuantity = Field(description="Units of the line still waiting; 0 when it left")
    priority_score: PriorityScore = Field(description="0 under first come, first served")
    placed_at: AwareDatetime
    sequence: Quantity = Field(description="Arrival number of the line within the SKU; the last tie-breaker")
    waiting_lines: NonNegativeQuantity = Field(description="Lines waiting on the SKU after the change")
    waiting_units: NonNegativeQuantity = Field(description="Units waiting on the SKU after the change")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.change == "left") != (self.remaining == 0):
            raise ValueError("remaining is 0 exactly when the line left the queue")
        if self.remaining > self.waiting_units:
            raise ValueError("remaining cannot exceed waiting_units")
        return self


class ReorderPointReached(EventPayload):
    """Available stock fell to or below the SKU's reorder point."""

    event_type = "ReorderPointReached"
    topic = Topic.INVENTORY
    key_field = "sku"

    sku: Sku
    on_hand: NonNegativeQuantity
    reserved: NonNegativeQuantity
    available: NonNegativeQuantity
    backordered: NonNegativeQuantity
    reorder_point: NonNegativeQuantity
    safety_stock: NonNegativeQuantity


class StockAdjusted(EventPayload):
    """An audited manual change of stock on hand (count, damage, opening balance)."""

    event_type = "StockAdjusted"
    topic = Topic.INVENTORY
    key_field = "sku"

    sku: Sku
    delta: int = Field(description="Units added (positive) or removed (negative)")
    on_hand_after: NonNegativeQuantity
    reason: Text
    actor: Identifier

    @model_validator(mode="after")
    def _non_zero(self) -> Self:
        if self.delta == 0:
            raise ValueError("delta must not be 0")
        return self


class SkuPolicyChanged(EventPayload):
    """An audited change of a SKU's backorder policy, reorder point or safety stock."""

    event_type = "SkuPolicyChanged"
    topic = Topic.INVENTORY
    key_field = "sku"

    sku: Sku
    backorder_policy: Literal["deny", "allow", "cap"]
    backorder_cap: NonNegativeQuantity | None = Field(default=None, description="Required with policy cap")
    reorder_point: NonNegativeQuantity
    safety_stock: NonNegativeQuantity
    actor: Identifier

    @model_validator(mode="after")
    def _cap(self) -> Self:
        if (self.backorder_policy == "cap") != (self.backorder_cap is not None):
            raise ValueError("backorder_cap is required with policy cap and only then")
        return self


# --- procurement topic (procurement service); key = sku ------------------------------------------------


class PurchaseOrderIssued(EventPayload):
    """A purchase order was issued, or enlarged (revision > 1, quantity is the new total)."""

    event_type = "PurchaseOrderIssued"
    topic = Topic.PROCUREMENT
    key_field = "sku"

    po_id: Identifier
    revision: int = Field(ge=1)
    supplier_id: Identifier
    sku: Sku
    quantity: Quantity
    unit_cost: Money
    currency: Currency
    expected_arrival: date


class BackorderEtaUpdated(EventPayload):
    """A backordered line's ETA was set or changed; eta null means no purchase order covers it yet."""

    event_type = "BackorderEtaUpdated"
    topic = Topic.PROCUREMENT
    key_field = "sku"

    order_id: Identifier
    line_id: Identifier
    sku: Sku
    eta: date | None
    previous_eta: date | None
    po_id: Identifier | None
    reason: Text


# --- supplier topic (supplier EDI adapters); key = sku --------------------------------------------------


class GoodsReceived(EventPayload):
    """Goods arrived at the warehouse. A partial receipt keeps its purchase order open."""

    event_type = "GoodsReceived"
    topic = Topic.SUPPLIER
    key_field = "sku"

    receipt_id: Identifier
    po_id: Identifier | None = Field(default=None, description="Null for stock that arrived without a PO")
    supplier_id: Identifier | None = None
    sku: Sku
    quantity: Quantity
    received_at: AwareDatetime


class PurchaseOrderAcknowledged(EventPayload):
    """The supplier confirmed a purchase order (quantity and delivery date)."""

    event_type = "PurchaseOrderAcknowledged"
    topic = Topic.SUPPLIER
    key_field = "sku"

    po_id: Identifier
    sku: Sku
    confirmed_quantity: NonNegativeQuantity
    confirmed_date: date


class ShipmentNoticed(EventPayload):
    """Advance shipping notice (ASN): goods of a purchase order are on their way, expected on a date."""

    event_type = "ShipmentNoticed"
    topic = Topic.SUPPLIER
    key_field = "sku"

    asn_id: Identifier
    po_id: Identifier
    sku: Sku
    quantity: Quantity
    expected_date: date


# --- notifier topic (notifier service); key = customer_id -----------------------------------------------

NotificationKind = Literal[
    "backordered", "eta_changed", "fulfilled", "cancelled", "refunded", "rejected", "back_in_stock"
]
Channel = Literal["email", "webhook"]


class NotificationSent(EventPayload):
    """A channel accepted a message for a customer."""

    event_type = "NotificationSent"
    topic = Topic.NOTIFIER
    key_field = "customer_id"

    notification_id: Identifier = Field(description="Stable id of (order line or subscription, change)")
    customer_id: Identifier
    order_id: Identifier | None
    line_id: Identifier | None
    kind: NotificationKind
    channel: Channel
    recipient: Text
    attempts: Quantity


class NotificationFailed(EventPayload):
    """A channel kept refusing a message; retries are exhausted."""

    event_type = "NotificationFailed"
    topic = Topic.NOTIFIER
    key_field = "customer_id"

    notification_id: Identifier
    customer_id: Identifier
    order_id: Identifier | None
    line_id: Identifier | None
    kind: NotificationKind
    channel: Channel
    recipient: Text
    attempts: Quantity
    error: Text


CONTRACT_EVENTS: tuple[type[EventPayload], ...] = (
    OrderPlaced,
    OrderCancelled,
    RefundRequested,
    StockReserved,
    StockShort,
    BackorderFulfilled,
    StockReleased,
    BackorderQueueChanged,
    ReorderPointReached,
    StockAdjusted,
    SkuPolicyChanged,
    PurchaseOrderIssued,
    BackorderEtaUpdated,
    GoodsReceived,
    PurchaseOrderAcknowledged,
    ShipmentNoticed,
    NotificationSent,
    NotificationFailed,
)

# Old versions that are read but not upcast (see EventRegistry.register_retired).
RETIRED_EVENTS: tuple[type[EventPayload], ...] = (BackorderQueueSnapshotV1,)


def contract_registry(internal: Iterable[type[EventPayload]] = ()) -> EventRegistry:
    """The contract's events (and retired versions) plus a service's internal events."""
    registry = EventRegistry((*CONTRACT_EVENTS, *internal))
    for model in RETIRED_EVENTS:
        registry.register_retired(model)
    return registry


REGISTRY = contract_registry()
