"""Service-internal events of the inventory: kept in its event log (and so in its state), never published.

They carry what rebuilding a SKU's state needs and the public contract does not: the priority
attributes of a queued backorder, the receipt of goods into stock, and whether procurement knows a
supplier for the SKU (which makes it a known SKU, see services.inventory.domain).
Register them next to the contract's events: `contract_registry(INVENTORY_EVENTS)`.
"""

from decimal import Decimal
from typing import Annotated

from pydantic import AwareDatetime, Field

from backbone.contracts.envelope import EventPayload
from backbone.contracts.events import CustomerTier, PriorityScore
from backbone.contracts.types import Identifier, NonNegativeQuantity, Quantity, Sku

# Only ranks backorders, so not the contract's Money: quantity x unit price may exceed its 14 digits.
LineValue = Annotated[Decimal, Field(ge=0)]


class BackorderQueued(EventPayload):
    """Units of an order line joined the SKU's backorder queue (follows its public StockShort)."""

    event_type = "BackorderQueued"
    topic = None
    key_field = "sku"

    order_id: Identifier
    line_id: Identifier
    sku: Sku
    quantity: Quantity
    placed_at: AwareDatetime
    tier: CustomerTier
    urgent: bool
    line_value: LineValue = Field(description="quantity x unit price of the whole order line")
    sequence: int = Field(ge=1, description="Arrival number within the SKU; the last tie-breaker")
    # Added later, compatibly: lines queued before it was recorded rank as under first come, first served.
    priority_score: PriorityScore = Field(
        default=Decimal(0), description="Under the shop's priority policy when the line joined"
    )


class StockReceived(EventPayload):
    """Goods of a receipt were added to stock on hand (before any allocation to backorders)."""

    event_type = "StockReceived"
    topic = None
    key_field = "sku"

    sku: Sku
    receipt_id: Identifier
    quantity: Quantity
    on_hand_after: NonNegativeQuantity


class SourcingRecorded(EventPayload):
    """Procurement's SkuSourcingChanged, as far as inventory cares: whether any supplier can deliver the
    SKU. Recorded only when that changes."""

    event_type = "SourcingRecorded"
    topic = None
    key_field = "sku"

    sku: Sku
    sourced: bool = Field(description="At least one supplier is known for the SKU")


INVENTORY_EVENTS: tuple[type[EventPayload], ...] = (BackorderQueued, StockReceived, SourcingRecorded)
