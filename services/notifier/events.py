"""The notifier's internal events and the `Notification` value they carry.

The notifier keeps one stream per order (what it learned about the order, and which messages it
requested) and one per SKU (back-in-stock subscriptions). What it learns from other services is recorded
in its own terms, so its state rebuilds from its streams alone. None of these events has a topic: only
the contract's NotificationSent and NotificationFailed are published.
"""

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, Field

from backbone.contracts import EventPayload
from backbone.contracts.envelope import STRICT
from backbone.contracts.events import (
    Channel,
    Customer,
    EtaBasis,
    LineQuantity,
    NotificationKind,
    ShippingPreference,
    contract_registry,
)
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

CancelReason = Literal["customer_request", "max_wait_exceeded", "shop_request"]
BackorderOption = Literal["wait", "cancel_backordered", "ship_available_now", "switch_to_substitute"]
MAX_SUBSTITUTE_OFFERS = 3  # in one backordered message


class SubstituteOffer(BaseModel):
    """A substitute in stock for the backordered units, and how to switch them to it (the order service's
    POST .../substitution with this body): recorded in the message, so a replay tells the same."""

    model_config = STRICT
    sku: Sku
    available: NonNegativeQuantity = Field(description="Units available when the message was decided")
    endpoint: Text = Field(
        description="POST here: <ORDER_API_URL>/orders/{order_id}/lines/{line_id}/substitution"
    )
    substitution_id: Identifier = Field(description="The body is {sku, substitution_id}")


# --- what a message says, one model per kind; templates render these fields ------------------------------


class BackorderedContent(BaseModel):
    model_config = STRICT
    kind: Literal["backordered"] = "backordered"
    sku: Sku
    ordered: Quantity
    available: NonNegativeQuantity = Field(description="Units of the line reserved for the customer")
    backordered: Quantity = Field(description="Units still waiting")
    eta: date | None = Field(description="None: no purchase order covers them yet")
    cancel_by: date | None = Field(description="When waiting units are cancelled and refunded, if known")
    shipping_preference: ShippingPreference
    options: list[BackorderOption] = Field(min_length=1)
    basis: EtaBasis | None = Field(
        default=None, description="What the ETA rests on; no_supplier: no date can be promised"
    )
    substitutes: list[SubstituteOffer] = Field(
        default_factory=list,
        max_length=MAX_SUBSTITUTE_OFFERS,
        description="Listed substitutes with enough units available, preferred first; [] = none offered",
    )


class EtaChangedContent(BaseModel):
    model_config = STRICT
    kind: Literal["eta_changed"] = "eta_changed"
    sku: Sku
    waiting: Quantity
    previous_eta: date | None
    eta: date | None
    basis: EtaBasis | None = Field(
        default=None, description="What the ETA rests on; no_supplier: no date can be promised"
    )


class FulfilledContent(BaseModel):
    model_config = STRICT
    kind: Literal["fulfilled"] = "fulfilled"
    sku: Sku
    filled: Quantity = Field(description="Units that arrived for the line this time")
    still_waiting: NonNegativeQuantity
    order_ready: bool = Field(description="No line of the order waits any more")


class CancelledContent(BaseModel):
    """Units of a line that left inventory's books (StockReleased): one line per message."""

    model_config = STRICT
    kind: Literal["cancelled"] = "cancelled"
    reason: CancelReason
    lines: list[LineQuantity] = Field(min_length=1)


class RefundedContent(BaseModel):
    model_config = STRICT
    kind: Literal["refunded"] = "refunded"
    sku: Sku
    quantity: Quantity
    amount: Money
    currency: Currency
    reason: CancelReason


class RejectedContent(BaseModel):
    model_config = STRICT
    kind: Literal["rejected"] = "rejected"
    sku: Sku
    ordered: Quantity
    available: NonNegativeQuantity
    rejected: Quantity
    reason: Text | None
    unknown_sku: bool = Field(default=False, description="The shop does not know the SKU at all")


class ShippedContent(BaseModel):
    """One shipment of an order (it may span several lines)."""

    model_config = STRICT
    kind: Literal["shipped"] = "shipped"
    shipment_id: Identifier
    lines: list[LineQuantity] = Field(min_length=1)
    carrier: Text | None
    tracking_number: Text | None
    tracking_url: Text | None
    shipped_at: AwareDatetime


class BackInStockContent(BaseModel):
    model_config = STRICT
    kind: Literal["back_in_stock"] = "back_in_stock"
    sku: Sku


MessageContent = Annotated[
    BackorderedContent
    | EtaChangedContent
    | FulfilledContent
    | CancelledContent
    | RefundedContent
    | RejectedContent
    | ShippedContent
    | BackInStockContent,
    Field(discriminator="kind"),
]


class Notification(BaseModel):
    """One message to one customer about one change. Its id is stable: the same change, decided again
    after a redelivery or a restart, has the same id, and the delivery queue keeps one row per id."""

    model_config = STRICT

    notification_id: Identifier
    customer_id: Identifier
    email: Email
    customer_name: Text | None
    shop_id: Identifier
    order_id: Identifier | None
    line_id: Identifier | None
    content: MessageContent

    @property
    def kind(self) -> NotificationKind:
        return self.content.kind


# --- per order: what the notifier learned, and what it asked to send -------------------------------------


class OrderContactRecorded(EventPayload):
    """Who to tell about an order, and the order's lines, as placed."""

    event_type = "notifier.OrderContactRecorded"
    topic = None
    key_field = "order_id"

    order_id: Identifier
    shop_id: Identifier
    customer: Customer
    lines: list[LineQuantity] = Field(min_length=1)
    shipping_preference: ShippingPreference
    placed_at: AwareDatetime
    max_wait_days: int | None


class NotifierLineEvent(EventPayload):
    topic = None
    key_field = "order_id"

    order_id: Identifier
    line_id: Identifier
    sku: Sku


class LineShortObserved(NotifierLineEvent):
    """Inventory could not reserve all of a line; the shortfall waits (backordered) or was refused."""

    event_type = "notifier.LineShortObserved"

    ordered: Quantity
    available: NonNegativeQuantity
    short_quantity: Quantity
    disposition: Literal["backordered", "rejected"]
    reason: Text | None
    observed_at: AwareDatetime = Field(description="When inventory decided; starts the ETA grace period")


class LineEtaObserved(NotifierLineEvent):
    event_type = "notifier.LineEtaObserved"

    eta: date | None
    basis: EtaBasis | None = None


class LineFillObserved(NotifierLineEvent):
    event_type = "notifier.LineFillObserved"

    quantity: Quantity
    remaining_backordered: NonNegativeQuantity


class LineReleaseObserved(NotifierLineEvent):
    """Inventory's answer to a cancellation (StockReleased): the units that actually left its books."""

    event_type = "notifier.LineReleaseObserved"

    released_reserved: NonNegativeQuantity
    dropped_backordered: NonNegativeQuantity
    reason: CancelReason | None
    source_event_id: Identifier
    # The units left for a substitute (StockReleased.substitution_id): a switch, not a cancellation.
    substitution_id: Identifier | None = None


class RefundObserved(NotifierLineEvent):
    """A refund the order service requested; told once the cancellation it refunds has been told."""

    event_type = "notifier.RefundObserved"

    notification_id: Identifier
    quantity: Quantity
    amount: Money
    currency: Currency
    reason: CancelReason
    source_event_id: Identifier


class CancellationObserved(EventPayload):
    """A cancellation was requested; only inventory's StockReleased says what it cancelled. Until that
    answer, messages the request may make untrue wait (see the domain's story rules)."""

    event_type = "notifier.CancellationObserved"
    topic = None
    key_field = "order_id"

    order_id: Identifier
    lines: list[LineQuantity] = Field(min_length=1)
    reason: CancelReason | None = None  # None in streams written before issue 8
    only_waiting: bool = False
    source_event_id: Identifier | None = None


class ShipmentObserved(EventPayload):
    """The warehouse announced a shipment of the order (ShipmentDispatched): its tracking and the lines it
    announced. Not proof that anything shipped: inventory may refuse it (`ShipmentLineConfirmed`)."""

    event_type = "notifier.ShipmentObserved"
    topic = None
    key_field = "order_id"

    order_id: Identifier
    shipment_id: Identifier
    lines: list[LineQuantity] = Field(min_length=1)
    carrier: Text | None
    tracking_number: Text | None
    tracking_url: Text | None
    shipped_at: AwareDatetime


class ShipmentLineConfirmed(NotifierLineEvent):
    """Inventory took a shipment's units of a line out of its books (StockShipped): they did ship. Inventory
    applies a shipment all or nothing, so a refused one never has any."""

    event_type = "notifier.ShipmentLineConfirmed"

    shipment_id: Identifier
    quantity: Quantity


class NotificationRequested(EventPayload):
    """The notifier decided to send this message; delivery follows (NotificationSent/Failed)."""

    event_type = "notifier.NotificationRequested"
    topic = None
    key_field = "customer_id"

    notification: Notification

    @property
    def customer_id(self) -> str:
        return self.notification.customer_id


# --- per SKU: back-in-stock subscriptions ---------------------------------------------------------------


class SkuPolicyObserved(EventPayload):
    event_type = "notifier.SkuPolicyObserved"
    topic = None
    key_field = "sku"

    sku: Sku
    backorder_policy: Literal["deny", "allow", "cap"]


class BackInStockSubscribed(EventPayload):
    event_type = "notifier.BackInStockSubscribed"
    topic = None
    key_field = "sku"

    sku: Sku
    customer_id: Identifier
    email: Email
    customer_name: Text | None
    shop_id: Identifier
    subscribed_at: AwareDatetime


class BackInStockSubscriptionEnded(EventPayload):
    """A subscription is consumed by its one message, or withdrawn by the customer."""

    event_type = "notifier.BackInStockSubscriptionEnded"
    topic = None
    key_field = "sku"

    sku: Sku
    customer_id: Identifier
    reason: Literal["notified", "unsubscribed"]


# --- per message: delivery ------------------------------------------------------------------------------


class DeliveryRetryScheduled(EventPayload):
    """A channel refused a message; it is tried again at `retry_at`. v2 (contract 3.0) no longer records
    the address or webhook URL: the notification has the address, the settings the URL, and a URL that
    carries a token has no place in an append-only log."""

    event_type = "notifier.DeliveryRetryScheduled"
    schema_version = 2
    topic = None
    key_field = "customer_id"

    notification_id: Identifier
    customer_id: Identifier
    channel: Channel
    attempts: Quantity
    error: Text = Field(description="The channel's answer, without e-mail addresses, names or the URL")
    retry_at: AwareDatetime


class DeliveryRetryScheduledV1(EventPayload):
    """As logs before contract 3.0 hold it; read as v2 without `recipient` (`upcast_retry_v1`)."""

    event_type = "notifier.DeliveryRetryScheduled"
    schema_version = 1
    topic = None
    key_field = "customer_id"

    notification_id: Identifier
    customer_id: Identifier
    channel: Channel
    recipient: Text = Field(description="The email address or webhook URL that refused it")
    attempts: Quantity
    error: Text
    retry_at: AwareDatetime


def upcast_retry_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 -> v2: the destination itself is dropped (v1's error texts stay as they were recorded)."""
    return {key: value for key, value in payload.items() if key != "recipient"}


INTERNAL_EVENTS: tuple[type[EventPayload], ...] = (
    OrderContactRecorded,
    LineShortObserved,
    LineEtaObserved,
    LineFillObserved,
    LineReleaseObserved,
    RefundObserved,
    CancellationObserved,
    ShipmentObserved,
    ShipmentLineConfirmed,
    NotificationRequested,
    SkuPolicyObserved,
    BackInStockSubscribed,
    BackInStockSubscriptionEnded,
    DeliveryRetryScheduled,
    DeliveryRetryScheduledV1,
)

NOTIFIER_REGISTRY = contract_registry(INTERNAL_EVENTS)
"""Decodes everything the notifier's event store holds: contract events and its internal ones."""
NOTIFIER_REGISTRY.register_upcaster(DeliveryRetryScheduled.event_type, 1, upcast_retry_v1)
