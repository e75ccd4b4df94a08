"""Service-internal events of procurement: kept in its event log, never published.

A SKU's procurement state must be rebuildable from its own stream alone, but most of what it reacts
to arrives as other services' events (inventory's queue and stock figures, suppliers' acks, ASNs and
receipts). Those cannot be appended to our stream as they are (their topic would make our outbox
republish them), so each is recorded here as the fact procurement learned from it.
Register them next to the contract's events: `contract_registry(PROCUREMENT_EVENTS)`.
"""

from collections.abc import Sequence
from datetime import date
from typing import Literal, Self

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from backbone.contracts.envelope import STRICT, EventPayload
from backbone.contracts.events import BackorderQueueEntry, PriorityScore, QueueChange, ServiceLevel
from backbone.contracts.types import (
    Currency,
    Identifier,
    Money,
    NonNegativeQuantity,
    Quantity,
    Sku,
)

SupplierRole = Literal["primary", "alternate"]
ReplenishmentMode = Literal["manual", "suggest", "auto"]


class SupplierTerms(BaseModel):
    """What one supplier offers for a SKU."""

    model_config = STRICT

    supplier_id: Identifier
    lead_time_days: int = Field(ge=0, le=365, description="Days from issuing a PO to its arrival")
    minimum_order_quantity: Quantity = 1
    pack_size: Quantity = Field(default=1, description="Orders are whole multiples of this")
    unit_cost: Money
    currency: Currency
    role: SupplierRole


def check_catalogue(suppliers: Sequence[SupplierTerms]) -> None:
    """A SKU's catalogue: each supplier once and, unless empty, exactly one primary (the default choice)."""
    ids = [s.supplier_id for s in suppliers]
    if len(set(ids)) != len(ids):
        raise ValueError("each supplier_id may appear once per SKU")
    if suppliers and sum(s.role == "primary" for s in suppliers) != 1:
        raise ValueError("a non-empty supplier catalogue needs exactly one primary supplier")


class SupplierTermsSet(EventPayload):
    """An admin replaced the SKU's supplier catalogue (audited; an empty list stops purchasing)."""

    event_type = "SupplierTermsSet"
    topic = None
    key_field = "sku"

    sku: Sku
    suppliers: list[SupplierTerms]
    actor: Identifier

    @model_validator(mode="after")
    def _valid_catalogue(self) -> Self:
        check_catalogue(self.suppliers)
        return self


class StockPositionRecorded(EventPayload):
    """Inventory reported the SKU's stock figures (from its ReorderPointReached)."""

    event_type = "StockPositionRecorded"
    topic = None
    key_field = "sku"

    sku: Sku
    on_hand: NonNegativeQuantity
    reserved: NonNegativeQuantity
    available: NonNegativeQuantity
    backordered: NonNegativeQuantity
    reorder_point: NonNegativeQuantity
    safety_stock: NonNegativeQuantity
    as_of: date = Field(description="Day procurement learned the figures")
    receipt_message: Identifier | None = Field(
        default=None, description="As in StockLevelRecorded: the counted receipt these figures hold"
    )


class StockLevelRecorded(EventPayload):
    """Inventory's figures of the SKU (its StockLevelChanged), recorded when they change procurement's view.

    Free stock becomes `available` plus the receipts procurement counted that inventory has not yet
    (the supplier topic and inventory's can arrive in either order). `receipt_message` is the receipt
    (by message id) this report is the effect of, if procurement had counted it already: it is in
    `available` now. `raised_by` is the message a report that raised on hand is the effect of, if
    procurement did not know it: a receipt still to arrive here that must then not be counted twice.
    """

    event_type = "StockLevelRecorded"
    topic = None
    key_field = "sku"

    sku: Sku
    on_hand: NonNegativeQuantity
    reserved: NonNegativeQuantity
    available: NonNegativeQuantity
    backordered: NonNegativeQuantity
    receipt_message: Identifier | None = None
    raised_by: Identifier | None = None


class PurchaseOrderOverdue(EventPayload):
    """A PO's expected date passed with units still to come: they are now expected on `revised_date`
    (today + the policy's grace days), until the supplier says otherwise (an ack or a shipment notice)."""

    event_type = "PurchaseOrderOverdue"
    topic = None
    key_field = "sku"

    sku: Sku
    po_id: Identifier
    was_due: date = Field(description="The earliest expected date of its outstanding units, now passed")
    revised_date: date


class QueueLineChanged(EventPayload):
    """One waiting line changed in inventory's queue (BackorderQueueChanged v2): it now waits for
    `remaining` units at its rank, or left it (0). Recorded only when it changes procurement's view."""

    event_type = "QueueLineChanged"
    topic = None
    key_field = "sku"

    sku: Sku
    order_id: Identifier
    line_id: Identifier
    change: QueueChange
    priority_score: PriorityScore
    placed_at: AwareDatetime
    sequence: Quantity
    remaining: NonNegativeQuantity = Field(description="Units of the line still waiting; 0 = it left")


class BackorderQueueRecorded(EventPayload):
    """Legacy, no longer recorded: inventory's whole waiting queue in allocation order (its contract 1.x
    BackorderQueueChanged). Old logs still hold it; folding it replaces the queue."""

    event_type = "BackorderQueueRecorded"
    topic = None
    key_field = "sku"

    sku: Sku
    entries: list[BackorderQueueEntry]


class BackorderShortfallRecorded(EventPayload):
    """Legacy, no longer recorded: a line was backordered (StockShort) before the whole-queue snapshot
    that placed it arrived. The waiting demand is now the queue's, so folding it changes nothing."""

    event_type = "BackorderShortfallRecorded"
    topic = None
    key_field = "sku"

    sku: Sku
    order_id: Identifier
    line_id: Identifier
    quantity: Quantity


class BackorderLineReduced(EventPayload):
    """Units of a queued line were filled (BackorderFulfilled): free stock and the line shrink together.
    Logs before contract 2.0 also hold it for cancelled units (StockReleased), cause "released"."""

    event_type = "BackorderLineReduced"
    topic = None
    key_field = "sku"

    sku: Sku
    order_id: Identifier
    line_id: Identifier
    quantity: Quantity = Field(description="Units that left the queue")
    remaining: NonNegativeQuantity = Field(description="Units of the line still waiting; 0 = it left")
    cause: Literal["fulfilled", "released"]


class ReservedStockReleased(EventPayload):
    """Cancelled units that were reserved went back to free stock (StockReleased), for the queue to use."""

    event_type = "ReservedStockReleased"
    topic = None
    key_field = "sku"

    sku: Sku
    order_id: Identifier
    line_id: Identifier
    quantity: Quantity


class PurchaseOrderConfirmed(EventPayload):
    """The supplier acknowledged a PO: the quantity and date it commits to (0 units = refused)."""

    event_type = "PurchaseOrderConfirmed"
    topic = None
    key_field = "sku"

    sku: Sku
    po_id: Identifier
    confirmed_quantity: NonNegativeQuantity
    confirmed_date: date


class ShipmentExpected(EventPayload):
    """An advance shipping notice: units of a PO are on their way, due on a date (a repeat replaces it)."""

    event_type = "ShipmentExpected"
    topic = None
    key_field = "sku"

    sku: Sku
    po_id: Identifier
    asn_id: Identifier
    quantity: Quantity
    expected_date: date


class ReceiptRecorded(EventPayload):
    """Goods arrived: free stock rises; with the id of a PO of ours, what is on order falls too."""

    event_type = "ReceiptRecorded"
    topic = None
    key_field = "sku"

    sku: Sku
    receipt_id: Identifier
    po_id: Identifier | None
    quantity: Quantity
    received_on: date
    message_id: Identifier | None = Field(
        default=None, description="The GoodsReceived message's id: inventory's report of it names it"
    )
    in_stock_level: bool = Field(
        default=False, description="Inventory's figures already hold it: free stock does not rise again"
    )


class ReplenishmentSettingsChanged(EventPayload):
    """Staff set how the SKU's reorder point and safety stock are kept (audited): `manual` (typed in
    inventory), `suggest` (procurement recommends, staff decide) or `auto` (procurement applies its plan)."""

    event_type = "ReplenishmentSettingsChanged"
    topic = None
    key_field = "sku"

    sku: Sku
    mode: ReplenishmentMode
    service_level: ServiceLevel
    actor: Identifier


class DemandRecorded(EventPayload):
    """A closed day's demand of the SKU, from inventory's reservations and shortfalls that day (UTC):
    `demanded` units ordered, of which `backordered` waited and `rejected` were refused; `cancelled`
    waiting units were given up that day. Recorded once per day, in day order."""

    event_type = "DemandRecorded"
    topic = None
    key_field = "sku"

    sku: Sku
    day: date
    demanded: NonNegativeQuantity
    backordered: NonNegativeQuantity = 0
    rejected: NonNegativeQuantity = 0
    cancelled: NonNegativeQuantity = 0


class SupplierDelayNoted(EventPayload):
    """How many days the supplier's receipts come after its dates (its P80 lateness over all SKUs, at
    least 3 receipts; 0 when on time or too few): the SKU's ETAs from it are that much later."""

    event_type = "SupplierDelayNoted"
    topic = None
    key_field = "sku"

    sku: Sku
    supplier_id: Identifier
    delay_days: int = Field(ge=0, le=120)
    receipts: NonNegativeQuantity = Field(description="Receipts the percentile was taken over")


class ReorderLevelsRecorded(EventPayload):
    """Inventory's reorder point and safety stock changed by someone else than procurement's auto mode
    (its SkuPolicyChanged): procurement buys towards them."""

    event_type = "ReorderLevelsRecorded"
    topic = None
    key_field = "sku"

    sku: Sku
    reorder_point: NonNegativeQuantity
    safety_stock: NonNegativeQuantity
    actor: Identifier


PROCUREMENT_EVENTS: tuple[type[EventPayload], ...] = (
    SupplierTermsSet,
    StockPositionRecorded,
    StockLevelRecorded,
    PurchaseOrderOverdue,
    QueueLineChanged,
    BackorderQueueRecorded,
    BackorderShortfallRecorded,
    BackorderLineReduced,
    ReservedStockReleased,
    PurchaseOrderConfirmed,
    ShipmentExpected,
    ReceiptRecorded,
    ReplenishmentSettingsChanged,
    DemandRecorded,
    SupplierDelayNoted,
    ReorderLevelsRecorded,
)
