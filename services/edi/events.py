"""Internal events of the EDI adapter: its own log of what it sent and received, never published.

The read models (projections.py) are derived from these, so `python -m services.edi rebuild` restores
them, and a re-sent interchange is known by its stream (`interchange:<standard>:<sender>:<control>`),
which holds the InterchangeAccepted and the contract events it caused (those are published).
"""

from datetime import date

from pydantic import Field

from backbone.contracts.envelope import EventPayload
from backbone.contracts.types import Currency, Identifier, Money, NonNegativeQuantity, Quantity, Sku, Text
from services.edi.documents import Purpose, Standard

_LONG_TEXT = 2_000_000  # an acknowledgement of a large interchange: one AK2/AK5 pair per set


class PurchaseOrderTransmitted(EventPayload):
    """A purchase order (or its revision or cancellation) was written to the supplier's outbox folder."""

    event_type = "PurchaseOrderTransmitted"
    topic = None
    key_field = "po_id"

    po_id: Identifier
    reference: Identifier = Field(description="The PO number in the documents (outbound.edi_reference)")
    revision: int = Field(ge=1)
    purpose: Purpose
    supplier_id: Identifier
    sku: Sku
    quantity: Quantity
    unit_cost: Money | None
    currency: Currency | None
    expected_arrival: date | None
    standard: Standard
    control_number: Identifier
    file_name: Identifier


class InterchangeAccepted(EventPayload):
    """An inbound interchange was applied: its contract events follow it in the same stream."""

    event_type = "InterchangeAccepted"
    topic = None
    key_field = "sender_id"

    standard: Standard
    sender_id: Identifier
    control_number: Identifier
    supplier_id: Identifier
    source: Text = Field(description="The inbox file's name, or http")
    digest: Identifier = Field(description="sha256 of the interchange's bytes: a re-send is compared by it")
    messages: NonNegativeQuantity
    events: NonNegativeQuantity
    acknowledgement: str = Field(max_length=_LONG_TEXT, description="The 997/999/CONTRL we sent back")
    acknowledgement_control_number: Identifier


class InterchangeRejected(EventPayload):
    """An inbound interchange was refused as a whole: nothing of it was applied."""

    event_type = "InterchangeRejected"
    topic = None
    key_field = "sender_id"

    standard: Standard | None
    sender_id: Identifier | None
    control_number: Identifier | None
    supplier_id: Identifier | None
    source: Text
    digest: Identifier
    reason: Text
    segment: str = Field(max_length=16)
    position: NonNegativeQuantity
    element: NonNegativeQuantity
    acknowledgement: str | None = Field(default=None, max_length=_LONG_TEXT)
    acknowledgement_control_number: Identifier | None = None


EDI_EVENTS: tuple[type[EventPayload], ...] = (
    PurchaseOrderTransmitted,
    InterchangeAccepted,
    InterchangeRejected,
)
