"""Every integration event of the public contract (schema version 1 unless said otherwise).

`business_key_fields` names the fact an event states (a receipt line, a shipment, an order): a consumer
applies it once, whatever its event id, and dead-letters a different content under a key it has seen.

Docstrings and field descriptions end up in the generated JSON Schemas and the AsyncAPI document.
"""

import hashlib
from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints, model_validator

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
CancelReason = Literal["customer_request", "max_wait_exceeded", "shop_request"]


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
    business_key_fields = ("order_id",)

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
    """Units of an order are cancelled: a whole order, or the backordered part of lines.

    Inventory decides which units actually leave its books and says so in StockReleased (what it
    released from stock and dropped from the queue); refunds follow that answer, not this request. A
    cancellation that arrives before inventory decided the line is kept and applied when it does.
    """

    event_type = "OrderCancelled"
    topic = Topic.ORDERS
    key_field = "order_id"
    business_key_fields = ("order_id", "cancellation_id")

    order_id: Identifier
    lines: list[LineQuantity] = Field(min_length=1, description="Units to cancel per line")
    reason: CancelReason
    cancelled_at: AwareDatetime
    only_waiting: bool = Field(
        default=False,
        description="True: cancel only units still waiting for stock; units a fill reached first are "
        "kept and ship (cancel-backordered, the maximum wait). False: waiting units first, then "
        "reserved ones, never shipped ones",
    )
    cancellation_id: Identifier | None = Field(
        default=None,
        description="Names the cancellation within the order: re-sent with the same id (and another "
        "event_id), it changes nothing. Set by the order service; recommended for checkout systems. "
        "Without it, the cancellation is named by its whole content (time, lines, reason)",
    )

    def business_key(self) -> str | None:
        if self.cancellation_id is not None:
            return super().business_key()
        # Unnamed: the same request re-sent is the same content (a second request differs in its time).
        content = hashlib.sha256(self.model_dump_json().encode()).hexdigest()
        return f"{self.event_type}:{self.order_id}\x1fcontent {content}"


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
    reason: CancelReason


MAX_SUBSTITUTES = 20


def substitutes_problem(sku: str, substitutes: Sequence[str]) -> str | None:
    """Why `substitutes` cannot be the SKU's list (each once, never the SKU itself), or None."""
    if len(set(substitutes)) != len(substitutes):
        return "substitutes must be unique"
    if sku in substitutes:
        return f"{sku} cannot be its own substitute"
    return None


def default_substitution_id(line_id: str, sku: str) -> str:
    """The substitution_id of switching a line's waiting units to `sku` when the request names none: the
    same (line, substitute) is the same switch, also when it is asked twice (a link clicked twice)."""
    digest = hashlib.sha256(f"{len(line_id)}:{line_id}\x1f{sku}".encode()).hexdigest()[:32]
    return f"sub-{digest}"


class OrderLineSubstituted(EventPayload):
    """The customer switched the waiting units of a line to a substitute SKU: one action that gives up
    those units of the replaced line and adds a new line for the substitute (published by the order
    service only).

    Inventory drops the replaced line's waiting units (never reserved ones: a fill that reached the line
    first is kept and ships) and answers StockReleased with this substitution_id; it reserves the new
    line like a line of an order placed at `placed_at`, by the same customer tier and urgency, and
    backorders its shortfall whatever the substitute's backorder policy (the units were backordered
    already). Should fewer units still wait than were switched, the new line gives the difference back
    at once (StockReleased with this substitution_id). Re-sent with the same substitution_id (and
    another event_id), it changes nothing.
    """

    event_type = "OrderLineSubstituted"
    topic = Topic.ORDERS
    key_field = "order_id"
    business_key_fields = ("order_id", "substitution_id")

    order_id: Identifier
    substitution_id: Identifier = Field(description="Names the switch within the order")
    replaced: LineQuantity = Field(description="The line switched away from, and the waiting units given up")
    line: OrderLine = Field(
        description="The new line: the substitute SKU, the same units, the replaced line's unit price "
        "unless the switch set another"
    )
    tier: CustomerTier = Field(description="The customer's tier, as in OrderPlaced (priority)")
    urgent: bool = Field(description="As in OrderPlaced (priority)")
    placed_at: AwareDatetime = Field(description="The order's placement: the new line ranks from then")
    substituted_at: AwareDatetime

    @model_validator(mode="after")
    def _a_real_switch(self) -> Self:
        if self.line.sku == self.replaced.sku:
            raise ValueError("the substitute must be another SKU than the replaced line's")
        if self.line.line_id == self.replaced.line_id:
            raise ValueError("the new line needs its own line_id")
        if self.line.quantity != self.replaced.quantity:
            raise ValueError("the new line has exactly the units given up")
        return self


class ShippableLine(BaseModel):
    model_config = STRICT
    line_id: Identifier
    sku: Sku
    quantity: NonNegativeQuantity = Field(
        description="Units that may leave the warehouse now (reserved, not yet shipped); 0 = none, "
        "e.g. after a cancellation withdrew them"
    )
    shipped: NonNegativeQuantity = Field(description="Units of the line shipped so far")


class FulfilmentRequested(EventPayload):
    """What of an order may ship now, honouring its shipping preference: the warehouse's pick list.

    Published by the order service whenever that changes (a reservation, a fill, a cancellation, a
    shipment). Each revision replaces the previous ones: a warehouse adapter keeps the highest revision
    per order and ships at most its quantities, then reports a ShipmentDispatched.
    """

    event_type = "FulfilmentRequested"
    topic = Topic.ORDERS
    key_field = "order_id"
    business_key_fields = ("order_id", "revision")

    order_id: Identifier
    revision: int = Field(ge=1, description="Increases by one per change of the order's pick list")
    customer_id: Identifier
    shipping_preference: ShippingPreference
    lines: list[ShippableLine] = Field(
        min_length=1, max_length=500, description="Every line with units to ship now or shipped"
    )
    complete: bool = Field(
        description="True when shipping these quantities leaves nothing of the order to ship or wait for"
    )


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
    reason: CancelReason | None = Field(default=None, description="The cancellation's reason")
    substitution_id: Identifier | None = Field(
        default=None,
        description="Set when the units left for a substitute (OrderLineSubstituted with this id): on "
        "the replaced line, the waiting units given up; on the new line, units it gave back because the "
        "replaced line had fewer waiting than switched. Such units move, they are not refunded",
    )


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


class StockCounted(EventPayload):
    """An audited count of a SKU (cycle count): stock on hand is set to what was counted; `difference`
    explains the change (counted - on hand before)."""

    event_type = "StockCounted"
    topic = Topic.INVENTORY
    key_field = "sku"
    business_key_fields = ("count_id",)

    sku: Sku
    count_id: Identifier
    counted: NonNegativeQuantity
    on_hand_before: NonNegativeQuantity
    difference: int = Field(description="counted - on_hand_before; 0 when the books were right")
    reason: Text
    actor: Identifier
    counted_at: AwareDatetime

    @model_validator(mode="after")
    def _arithmetic(self) -> Self:
        if self.difference != self.counted - self.on_hand_before:
            raise ValueError("difference must equal counted - on_hand_before")
        return self


class StockShipped(EventPayload):
    """Units of an order line left the warehouse in a shipment: out of reserved and out of on hand."""

    event_type = "StockShipped"
    topic = Topic.INVENTORY
    key_field = "sku"

    shipment_id: Identifier
    order_id: Identifier
    line_id: Identifier
    sku: Sku
    quantity: Quantity = Field(description="Taken from the line's reservation (never more than it holds)")
    on_hand_after: NonNegativeQuantity


class StockLevelChanged(EventPayload):
    """The SKU's figures after a change of stock on hand, reserved or waiting units: one per command that
    changed them (after its other events), except an order line's reservation, which StockReserved and
    StockShort describe (a shortfall is backordered only once nothing is available). What other services
    (procurement) plan from, instead of re-deriving inventory's books; they arrive in order (key = sku)."""

    event_type = "StockLevelChanged"
    topic = Topic.INVENTORY
    key_field = "sku"

    sku: Sku
    on_hand: NonNegativeQuantity
    reserved: NonNegativeQuantity
    available: NonNegativeQuantity = Field(description="on_hand - reserved")
    backordered: NonNegativeQuantity = Field(description="Units waiting in the SKU's backorder queue")

    @model_validator(mode="after")
    def _arithmetic(self) -> Self:
        if self.available != self.on_hand - self.reserved:
            raise ValueError("available must equal on_hand - reserved")
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


class SkuSubstitutesChanged(EventPayload):
    """An audited change of the SKUs a customer may switch the SKU's backordered units to, in order of
    preference; empty: none. The notifier offers those in stock in its backordered message."""

    event_type = "SkuSubstitutesChanged"
    topic = Topic.INVENTORY
    key_field = "sku"

    sku: Sku
    substitutes: list[Sku] = Field(
        max_length=MAX_SUBSTITUTES, description="Preference order, unique, never the SKU itself"
    )
    actor: Identifier

    @model_validator(mode="after")
    def _a_list_of_others(self) -> Self:
        problem = substitutes_problem(self.sku, self.substitutes)
        if problem is not None:
            raise ValueError(problem)
        return self


# --- procurement topic (procurement service); key = sku ------------------------------------------------


class PurchaseOrderIssued(EventPayload):
    """A purchase order was issued, or changed before the supplier confirmed it (revision > 1: enlarged
    or reduced, quantity is the new total)."""

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


class PurchaseOrderCancelled(EventPayload):
    """An unconfirmed purchase order is no longer needed (the backorders it was for were cancelled)."""

    event_type = "PurchaseOrderCancelled"
    topic = Topic.PROCUREMENT
    key_field = "sku"

    po_id: Identifier
    supplier_id: Identifier
    sku: Sku
    reason: Text


EtaBasis = Literal["purchase_order", "stock_on_hand", "awaiting_purchase_order", "no_supplier"]


class BackorderEtaUpdated(EventPayload):
    """A backordered line's ETA was set or changed; eta null means no purchase order covers it yet.

    An ETA is never before the day it is announced: an overdue purchase order is re-planned.
    """

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
    basis: EtaBasis | None = Field(
        default=None,
        description="What the ETA rests on: a purchase order, stock on hand, none yet (a purchase order "
        "is being placed), or none because no supplier is known for the SKU (no date can be promised)",
    )


class SkuSourcingChanged(EventPayload):
    """The suppliers procurement can buy a SKU from changed; none = the SKU cannot be procured."""

    event_type = "SkuSourcingChanged"
    topic = Topic.PROCUREMENT
    key_field = "sku"

    sku: Sku
    supplier_ids: list[Identifier] = Field(max_length=100, description="Empty: no supplier is known")


ServiceLevel = Annotated[Decimal, Field(ge=Decimal("0.5"), lt=1, max_digits=5, decimal_places=4)]


AUTO_REPLENISHMENT_ACTOR = "procurement:auto"  # the actor of the SkuPolicyChanged a plan becomes


class ReorderPolicyPlanned(EventPayload):
    """Procurement planned a SKU's reorder point and safety stock from its learnt demand and lead time
    (the SKU's replenishment mode is `auto`). Inventory applies them as an audited SkuPolicyChanged by
    actor `procurement:auto`, keeping the SKU's backorder policy; the inputs are for the audit trail."""

    event_type = "ReorderPolicyPlanned"
    topic = Topic.PROCUREMENT
    key_field = "sku"

    sku: Sku
    reorder_point: NonNegativeQuantity
    safety_stock: NonNegativeQuantity
    service_level: ServiceLevel
    demand_per_day: Decimal = Field(ge=0, max_digits=28, decimal_places=4)
    demand_sigma_per_day: Decimal = Field(ge=0, max_digits=28, decimal_places=4)
    lead_time_days: Decimal = Field(ge=0, max_digits=8, decimal_places=2)
    lead_time_sigma_days: Decimal = Field(ge=0, max_digits=8, decimal_places=2)
    planned_on: date


# --- supplier topic (supplier EDI adapters); key = sku --------------------------------------------------


class GoodsReceived(EventPayload):
    """Goods arrived at the warehouse. A partial receipt keeps its purchase order open."""

    event_type = "GoodsReceived"
    topic = Topic.SUPPLIER
    key_field = "sku"
    business_key_fields = ("receipt_id", "sku")  # a receipt may hold several SKUs, one event each

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
    business_key_fields = ("po_id", "acknowledgement_id")  # control numbers are per trading partner

    po_id: Identifier
    sku: Sku
    confirmed_quantity: NonNegativeQuantity
    confirmed_date: date
    acknowledgement_id: Identifier | None = Field(
        default=None, description="The supplier's message id (e.g. the EDI 855 control number)"
    )


class ShipmentNoticed(EventPayload):
    """Advance shipping notice (ASN): goods of a purchase order are on their way, expected on a date."""

    event_type = "ShipmentNoticed"
    topic = Topic.SUPPLIER
    key_field = "sku"
    # No business key: a notice re-sent under its asn_id replaces the earlier one (a revised date), and
    # the same notice again replaces it with itself.

    asn_id: Identifier
    po_id: Identifier
    sku: Sku
    quantity: Quantity
    expected_date: date


# --- fulfilment topic (warehouse adapters); key = order_id ------------------------------------------------


class ShippedLine(BaseModel):
    model_config = STRICT
    line_id: Identifier
    sku: Sku
    quantity: Quantity


class ShipmentDispatched(EventPayload):
    """The warehouse shipped units of an order (possibly part of it). Re-sent with the same shipment_id,
    it changes nothing; with the same id and other content, it is dead-lettered."""

    event_type = "ShipmentDispatched"
    topic = Topic.FULFILMENT
    key_field = "order_id"
    business_key_fields = ("shipment_id",)

    shipment_id: Identifier
    order_id: Identifier
    lines: list[ShippedLine] = Field(min_length=1, max_length=500)
    carrier: Text | None = None
    tracking_number: Text | None = None
    tracking_url: Text | None = None
    shipped_at: AwareDatetime

    @model_validator(mode="after")
    def _unique_lines(self) -> Self:
        ids = [line.line_id for line in self.lines]
        if len(set(ids)) != len(ids):
            raise ValueError("line_id values must be unique within a shipment")
        return self


# --- notifier topic (notifier service); key = customer_id -----------------------------------------------

NotificationKind = Literal[
    "backordered",
    "eta_changed",
    "fulfilled",
    "cancelled",
    "refunded",
    "rejected",
    "back_in_stock",
    "shipped",
]
Channel = Literal["email", "webhook"]


# Where a message went, by reference (contract 3.0), never the address or URL itself:
# "email:<customer_id>" is the customer's address as the shop knows it; "webhook:<shop_id>" the shop's
# configured endpoint. Only the notifier (GET /notifications, to roles that may see customer data) and
# the shop resolve it.
RecipientRef = Annotated[
    str,
    StringConstraints(min_length=7, max_length=137, pattern=r"^(?:email|webhook):\S(?:.*\S)?$"),
    Field(
        description="The destination by reference, never the address or URL: email:<customer_id> (the "
        "customer's address) or webhook:<shop_id> (the shop's endpoint)",
        examples=["email:c-7", "webhook:shop-1"],
    ),
]


def recipient_ref(channel: Channel, customer_id: str, shop_id: str) -> str:
    """The reference of a message's destination: the customer for email, the shop for its webhook."""
    return f"webhook:{shop_id}" if channel == "webhook" else f"email:{customer_id}"


def _ref_matches_channel(channel: Channel, ref: str) -> None:
    if not ref.startswith(f"{channel}:"):
        raise ValueError(f"recipient_ref {ref!r} does not name a {channel} destination")


class NotificationSent(EventPayload):
    """A channel accepted a message for a customer. Names its destination by reference only."""

    event_type = "NotificationSent"
    schema_version = 2
    topic = Topic.NOTIFIER
    key_field = "customer_id"

    notification_id: Identifier = Field(description="Stable id of (order line or subscription, change)")
    customer_id: Identifier
    order_id: Identifier | None
    line_id: Identifier | None
    kind: NotificationKind
    channel: Channel
    recipient_ref: RecipientRef
    attempts: Quantity

    @model_validator(mode="after")
    def _ref_of_the_channel(self) -> Self:
        _ref_matches_channel(self.channel, self.recipient_ref)
        return self


class NotificationFailed(EventPayload):
    """A channel kept refusing a message; retries are exhausted. Names its destination by reference only."""

    event_type = "NotificationFailed"
    schema_version = 2
    topic = Topic.NOTIFIER
    key_field = "customer_id"

    notification_id: Identifier
    customer_id: Identifier
    order_id: Identifier | None
    line_id: Identifier | None
    kind: NotificationKind
    channel: Channel
    recipient_ref: RecipientRef
    attempts: Quantity
    error: Text = Field(
        description="The channel's last answer, without e-mail addresses, names or the webhook URL"
    )

    @model_validator(mode="after")
    def _ref_of_the_channel(self) -> Self:
        _ref_matches_channel(self.channel, self.recipient_ref)
        return self


class NotificationSentV1(EventPayload):
    """Retired (contract 2.x): named the destination itself, the customer's e-mail address or the shop's
    webhook URL. Still decoded, so that the notifier's log and old topics replay, but no longer
    published; consumers skip it."""

    event_type = "NotificationSent"
    schema_version = 1
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


class NotificationFailedV1(EventPayload):
    """Retired (contract 2.x), as NotificationSentV1."""

    event_type = "NotificationFailed"
    schema_version = 1
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
    OrderLineSubstituted,
    FulfilmentRequested,
    StockReserved,
    StockShort,
    BackorderFulfilled,
    StockReleased,
    BackorderQueueChanged,
    ReorderPointReached,
    StockAdjusted,
    StockCounted,
    StockShipped,
    StockLevelChanged,
    SkuPolicyChanged,
    SkuSubstitutesChanged,
    PurchaseOrderIssued,
    PurchaseOrderCancelled,
    BackorderEtaUpdated,
    SkuSourcingChanged,
    ReorderPolicyPlanned,
    GoodsReceived,
    PurchaseOrderAcknowledged,
    ShipmentNoticed,
    ShipmentDispatched,
    NotificationSent,
    NotificationFailed,
)

# Old versions that are read but not upcast (see EventRegistry.register_retired).
RETIRED_EVENTS: tuple[type[EventPayload], ...] = (
    BackorderQueueSnapshotV1,
    NotificationSentV1,
    NotificationFailedV1,
)


def contract_registry(internal: Iterable[type[EventPayload]] = ()) -> EventRegistry:
    """The contract's events (and retired versions) plus a service's internal events."""
    registry = EventRegistry((*CONTRACT_EVENTS, *internal))
    for model in RETIRED_EVENTS:
        registry.register_retired(model)
    return registry


REGISTRY = contract_registry()
