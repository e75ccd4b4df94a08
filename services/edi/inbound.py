"""A parsed interchange as contract events: one event per PO and SKU of each document.

Pure. Every line must name (by its reference, see outbound.edi_reference) a purchase order this adapter
sent to the same supplier, for the SKU of
that order (procurement issues one SKU per PO); a line that does not is refused with the message and
the PO it named, and so is the whole interchange: never half-applied. Receipts may come without a
PO (goods nobody ordered still count as stock).

Lines of one document for the same PO and SKU are summed (a supplier may split a line by pack or
date); an acknowledgement keeps the latest confirmed date of them. A receiving advice that lists one
SKU under several POs gets one receipt per PO, `<receipt>/<po>`, because a GoodsReceived is known by
(receipt_id, sku).
"""

from collections.abc import Mapping, Sequence
from datetime import date

from pydantic import ValidationError

from backbone.contracts.envelope import EventPayload
from backbone.contracts.events import GoodsReceived, PurchaseOrderAcknowledged, ShipmentNoticed
from services.edi.documents import (
    EdiError,
    Interchange,
    Message,
    PoAcknowledgement,
    ReceivingAdvice,
    ShipNotice,
)
from services.edi.outbound import SentPurchaseOrder


def referenced_purchase_orders(interchange: Interchange) -> set[str]:
    """The PO references the interchange's lines name (our po_id, or its short EDI reference), to look up
    before `events_of`."""
    return {line.po_id for m in interchange.messages for line in m.document.lines if line.po_id is not None}


def events_of(
    interchange: Interchange, supplier_id: str, purchase_orders: Mapping[str, SentPurchaseOrder]
) -> list[EventPayload]:
    """The contract events the interchange says, in document order, or EdiError naming the first
    message (and PO) that cannot be applied. `purchase_orders`: the POs sent, by the reference the
    supplier knows them by."""
    events: list[EventPayload] = []
    for message in interchange.messages:
        check = _PoCheck(message, supplier_id, purchase_orders)
        try:
            events.extend(_message_events(interchange, message, supplier_id, check))
        except ValidationError as e:
            first = e.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            raise _refused(
                message, f"{where}: {first['msg']} in {message.kind} {message.control_number}"
            ) from None
    return events


def _message_events(
    interchange: Interchange, message: Message, supplier_id: str, check: "_PoCheck"
) -> Sequence[EventPayload]:
    document = message.document
    if isinstance(document, PoAcknowledgement):
        confirmed: dict[tuple[str, str], tuple[int, date]] = {}
        for line in document.lines:
            po_id = check(line.po_id, line.sku)
            quantity, day = confirmed.get((po_id, line.sku), (0, line.confirmed_date))
            confirmed[(po_id, line.sku)] = (
                quantity + line.confirmed_quantity,
                max(day, line.confirmed_date),
            )
        acknowledgement_id = f"{interchange.control_number}/{message.control_number}"
        return [
            PurchaseOrderAcknowledged(
                po_id=po_id,
                sku=sku,
                confirmed_quantity=quantity,
                confirmed_date=day,
                acknowledgement_id=acknowledgement_id,
            )
            for (po_id, sku), (quantity, day) in confirmed.items()
        ]
    if isinstance(document, ShipNotice):
        shipped: dict[tuple[str, str], int] = {}
        for line in document.lines:
            po_id = check(line.po_id, line.sku)
            shipped[(po_id, line.sku)] = shipped.get((po_id, line.sku), 0) + line.quantity
        return [
            ShipmentNoticed(
                asn_id=document.asn_id,
                po_id=po_id,
                sku=sku,
                quantity=quantity,
                expected_date=document.expected_date,
            )
            for (po_id, sku), quantity in shipped.items()
        ]
    if isinstance(document, ReceivingAdvice):
        received: dict[tuple[str | None, str], int] = {}
        for line in document.lines:
            received_po = None if line.po_id is None else check(line.po_id, line.sku)
            received[(received_po, line.sku)] = received.get((received_po, line.sku), 0) + line.quantity
        pos_per_sku: dict[str, int] = {}
        for _, sku in received:
            pos_per_sku[sku] = pos_per_sku.get(sku, 0) + 1
        return [
            GoodsReceived(
                receipt_id=(
                    f"{document.receipt_id}/{po_id or 'no-po'}"
                    if pos_per_sku[sku] > 1
                    else document.receipt_id
                ),
                po_id=po_id,
                supplier_id=supplier_id,
                sku=sku,
                quantity=quantity,
                received_at=document.received_at,
            )
            for (po_id, sku), quantity in received.items()
        ]
    raise _refused(message, f"{message.kind} documents are not handled")  # the codecs only yield the three


class _PoCheck:
    """Refuses a line whose PO this supplier never got from us, or whose SKU is not that PO's."""

    def __init__(self, message: Message, supplier_id: str, purchase_orders: Mapping[str, SentPurchaseOrder]):
        self._message, self._supplier_id, self._pos = message, supplier_id, purchase_orders

    def __call__(self, reference: str, sku: str) -> str:
        """Our po_id of the PO the supplier knows as `reference` (see outbound.edi_reference)."""
        po = self._pos.get(reference)
        po_id = reference if po is None else po.po_id
        if po is None:
            raise _refused(
                self._message, f"purchase order {po_id!r} was never sent to supplier {self._supplier_id!r}"
            )
        if po.supplier_id != self._supplier_id:
            raise _refused(
                self._message,
                f"purchase order {po_id!r} belongs to supplier {po.supplier_id!r}, not {self._supplier_id!r}",
            )
        if po.sku != sku:
            raise _refused(
                self._message, f"purchase order {po_id!r} is for SKU {po.sku!r}, the line names {sku!r}"
            )
        return po_id


def _refused(message: Message, reason: str) -> EdiError:
    segment = "UNH" if message.kind.isalpha() else "ST"
    return EdiError(
        f"{message.kind} {message.control_number}: {reason}",
        segment=segment,
        message_control_number=message.control_number,
        message_kind=message.kind,
    )
