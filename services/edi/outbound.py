"""Procurement's purchase orders as documents for the supplier: what to send for an issued, revised or
cancelled PO, and under which file name. Pure.

Procurement issues one SKU per PO and revises it (a larger or smaller quantity, a new date) under the
same po_id with a higher revision: revision 1 is sent as an original, later ones replace it, and a
cancellation repeats the last terms sent so that the supplier can match it. An event the adapter has
already acted on (a replay under a new event id, an older revision arriving late) sends nothing.
"""

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from backbone.contracts.events import PurchaseOrderCancelled, PurchaseOrderIssued
from services.edi.documents import PurchaseOrderDocument, Purpose, Standard

_UNSAFE_IN_FILE_NAMES = re.compile(r"[^A-Za-z0-9._-]")
# The longest PO number each standard carries (X12 BEG03/PRF01, element 324: 22; EDIFACT 1004/1154: 35).
PO_NUMBER_LIMITS: dict[Standard, int] = {"x12": 22, "edifact": 35}
_PLAIN = re.compile(r"^[A-Za-z0-9._/-]+$")  # what every syntax level and character set takes


def edi_reference(po_id: str, standard: Standard) -> str:
    """What the supplier knows the PO as: our po_id when the standard can carry it, else a stable short
    one derived from it ("PO" + 16 base32 characters of its SHA-256: 80 bits, so two POs never share one
    in practice). Procurement's ids hold the SKU, which may be far longer than an X12 PO number."""
    if len(po_id) <= PO_NUMBER_LIMITS[standard] and _PLAIN.match(po_id):
        return po_id
    digest = base64.b32encode(hashlib.sha256(po_id.encode()).digest()).decode()
    return f"PO{digest[:16]}"


@dataclass(frozen=True, slots=True)
class SentPurchaseOrder:
    """A PO as last transmitted to its supplier (edi_purchase_orders)."""

    po_id: str
    reference: str  # edi_reference(po_id): the PO number in the documents
    supplier_id: str
    sku: str
    revision: int
    purpose: Purpose
    quantity: int
    unit_cost: Decimal | None
    currency: str | None
    expected_arrival: date | None


def document_for(
    event: PurchaseOrderIssued | PurchaseOrderCancelled,
    sent: SentPurchaseOrder | None,
    *,
    standard: Standard,
    issued_on: date,
) -> PurchaseOrderDocument | None:
    """The document to send for `event`, given what was sent for its PO before; None: nothing to send.
    The document's po_id is the PO's reference (`edi_reference`)."""
    if isinstance(event, PurchaseOrderIssued):
        if sent is not None and (sent.purpose == "cancel" or sent.revision >= event.revision):
            return None  # already sent (or superseded, or withdrawn: a cancelled PO is not revived)
        return PurchaseOrderDocument(
            po_id=edi_reference(event.po_id, standard),
            revision=event.revision,
            purpose="original" if sent is None and event.revision == 1 else "replace",
            supplier_id=event.supplier_id,
            sku=event.sku,
            quantity=event.quantity,
            unit_cost=event.unit_cost,
            currency=event.currency,
            requested_date=event.expected_arrival,
            issued_on=issued_on,
        )
    if sent is None or sent.purpose == "cancel":
        return None  # never sent to this supplier by EDI, or withdrawn already
    return PurchaseOrderDocument(
        po_id=sent.reference,
        revision=sent.revision,
        purpose="cancel",
        supplier_id=sent.supplier_id,
        sku=sent.sku,
        quantity=sent.quantity,
        unit_cost=sent.unit_cost,
        currency=sent.currency,
        requested_date=sent.expected_arrival,
        issued_on=issued_on,
    )


def sent_after(po_id: str, document: PurchaseOrderDocument) -> SentPurchaseOrder:
    return SentPurchaseOrder(
        po_id=po_id,
        reference=document.po_id,
        supplier_id=document.supplier_id,
        sku=document.sku,
        revision=document.revision,
        purpose=document.purpose,
        quantity=document.quantity,
        unit_cost=document.unit_cost,
        currency=document.currency,
        expected_arrival=document.requested_date,
    )


def file_name(kind: str, subject: str, control_number: str) -> str:
    """`<kind>-<subject>-<control number>.edi`, e.g. 850-PO-17-r2-000000042.edi (a cancellation:
    850-PO-17-r2-cancel-000000043.edi): unique per interchange,
    sortable, and safe on any file system (other characters of an id become _)."""
    return f"{kind}-{_UNSAFE_IN_FILE_NAMES.sub('_', subject)}-{control_number}.edi"
