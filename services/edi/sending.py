"""Procurement's purchase orders to the suppliers' outbox folders (the consumer's handler).

For each PurchaseOrderIssued / PurchaseOrderCancelled of a supplier that is an EDI partner, in topic
order: decide the document (outbound.py: an original, a replacement, a cancellation, or nothing if it was
sent already), take the supplier's next control number, render it (X12 850 / EDIFACT ORDERS), write it
to `<outbox>/<supplier_id>/` and record PurchaseOrderTransmitted, all in the consumer's transaction. A
rolled-back batch is re-applied with the same control numbers and dates (the event's), so the file it
may have written is rewritten identically; a PO of a supplier without EDI is none of the adapter's
business.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg

from backbone.consumer import Handler
from backbone.contracts import Envelope, new_envelope
from backbone.contracts.events import PurchaseOrderCancelled, PurchaseOrderIssued
from backbone.eventstore import EventStore
from services.edi import projections
from services.edi.codecs import codec, deliver
from services.edi.events import PurchaseOrderTransmitted
from services.edi.outbound import SentPurchaseOrder, document_for, file_name, sent_after
from services.edi.partners import Partners

CONSUMED_EVENTS = (PurchaseOrderIssued, PurchaseOrderCancelled)
PURCHASE_ORDER_KIND = {"x12": "850", "edifact": "ORDERS"}


def make_handler(store: EventStore, partners: Partners, outbox_dir: Path) -> Handler:
    async def handle(conn: asyncpg.Connection, envelopes: Sequence[Envelope[Any]]) -> None:
        wanted = [
            e
            for e in envelopes
            if isinstance(e.payload, CONSUMED_EVENTS)
            and partners.of_supplier(e.payload.supplier_id) is not None
        ]
        if not wanted:
            return
        sent: dict[str, SentPurchaseOrder] = await projections.sent_purchase_orders(
            conn, {e.payload.po_id for e in wanted}, by="po_id"
        )
        for envelope in wanted:
            event: PurchaseOrderIssued | PurchaseOrderCancelled = envelope.payload
            partner = partners.of_supplier(event.supplier_id)
            assert partner is not None
            document = document_for(
                event, sent.get(event.po_id), standard=partner.standard, issued_on=envelope.occurred_at.date()
            )
            if document is None:
                continue
            number = str(await projections.next_control_number(conn, partner.supplier_id))
            outgoing = codec(partner.standard).render_purchase_order(
                document, partner, control_number=number, now=envelope.occurred_at
            )
            name = file_name(
                PURCHASE_ORDER_KIND[partner.standard],
                f"{event.po_id}-r{document.revision}" + ("-cancel" if document.purpose == "cancel" else ""),
                outgoing.control_number,
            )
            await deliver(outbox_dir, partner, name, outgoing.text)
            transmitted = new_envelope(
                PurchaseOrderTransmitted(
                    po_id=event.po_id,
                    reference=document.po_id,
                    revision=document.revision,
                    purpose=document.purpose,
                    supplier_id=document.supplier_id,
                    sku=document.sku,
                    quantity=document.quantity,
                    unit_cost=document.unit_cost,
                    currency=document.currency,
                    expected_arrival=document.requested_date,
                    standard=partner.standard,
                    control_number=outgoing.control_number,
                    file_name=name,
                ),
                cause=envelope,
            )
            stream = f"transmission:{event.po_id}:{document.revision}:{document.purpose}"
            await store.append(conn, stream, 0, [transmitted])
            await projections.record(conn, transmitted)
            sent[event.po_id] = sent_after(event.po_id, document)

    return handle
