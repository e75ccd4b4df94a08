"""Parsed interchanges as contract events: lines summed per PO and SKU, every PO checked against what
was sent to the supplier, a faulty line refusing the whole interchange."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from backbone.contracts.events import GoodsReceived, PurchaseOrderAcknowledged, ShipmentNoticed
from services.edi.documents import (
    ConfirmedLine,
    EdiError,
    Interchange,
    Message,
    PoAcknowledgement,
    ReceivedLine,
    ReceivingAdvice,
    ShipNotice,
    ShippedLine,
)
from services.edi.inbound import events_of, referenced_purchase_orders
from services.edi.outbound import SentPurchaseOrder, edi_reference

PREPARED = datetime(2030, 1, 7, 9, 30, tzinfo=UTC)


def sent(po_id: str, sku: str, supplier_id: str = "acme") -> SentPurchaseOrder:
    reference = edi_reference(po_id, "x12")
    return SentPurchaseOrder(
        po_id, reference, supplier_id, sku, 1, "original", 40, Decimal("9.50"), "EUR", date(2030, 1, 17)
    )


SENT = {p.reference: p for p in (sent("PO-1", "JACKET"), sent("PO-2", "BOOT"), sent("PO-9", "HAT", "globex"))}


def interchange(*messages: Message, standard: str = "x12") -> Interchange:
    return Interchange(standard, "ACMESUPPLY", "BACKORDER", "000000101", PREPARED, messages)  # type: ignore[arg-type]


def test_an_acknowledgement_sums_split_lines_and_keeps_the_latest_date() -> None:
    ack = PoAcknowledgement(
        "ACK-77",
        (
            ConfirmedLine("PO-1", "JACKET", 25, date(2030, 1, 15)),
            ConfirmedLine("PO-1", "JACKET", 15, date(2030, 1, 19)),  # the rest a few days later
            ConfirmedLine("PO-2", "BOOT", 0, date(2030, 1, 15)),  # rejected
        ),
    )
    events = events_of(interchange(Message("0001", "855", ack)), "acme", SENT)
    assert events == [
        PurchaseOrderAcknowledged(
            po_id="PO-1", sku="JACKET", confirmed_quantity=40, confirmed_date=date(2030, 1, 19),
            acknowledgement_id="000000101/0001",
        ),
        PurchaseOrderAcknowledged(
            po_id="PO-2", sku="BOOT", confirmed_quantity=0, confirmed_date=date(2030, 1, 15),
            acknowledgement_id="000000101/0001",
        ),
    ]  # fmt: skip


def test_a_ship_notice_gives_one_event_per_po_and_sku() -> None:
    notice = ShipNotice(
        "ASN-5",
        date(2030, 1, 12),
        (ShippedLine("PO-1", "JACKET", 10), ShippedLine("PO-1", "JACKET", 5), ShippedLine("PO-2", "BOOT", 8)),
    )
    events = events_of(interchange(Message("0002", "856", notice)), "acme", SENT)
    assert events == [
        ShipmentNoticed(
            asn_id="ASN-5", po_id="PO-1", sku="JACKET", quantity=15, expected_date=date(2030, 1, 12)
        ),
        ShipmentNoticed(
            asn_id="ASN-5", po_id="PO-2", sku="BOOT", quantity=8, expected_date=date(2030, 1, 12)
        ),
    ]


def test_a_receipt_of_one_sku_under_two_pos_gets_a_receipt_id_per_po() -> None:
    received_at = datetime(2030, 1, 12, 14, 5, tzinfo=UTC)
    pos = {**SENT, "PO-3": sent("PO-3", "JACKET")}
    advice = ReceivingAdvice(
        "RCV-1",
        received_at,
        (
            ReceivedLine("PO-1", "JACKET", 10),
            ReceivedLine("PO-3", "JACKET", 4),
            ReceivedLine(None, "SCARF", 2),
        ),
    )
    events = events_of(interchange(Message("0003", "861", advice)), "acme", pos)
    assert events == [
        GoodsReceived(receipt_id="RCV-1/PO-1", po_id="PO-1", supplier_id="acme", sku="JACKET", quantity=10,
                      received_at=received_at),
        GoodsReceived(receipt_id="RCV-1/PO-3", po_id="PO-3", supplier_id="acme", sku="JACKET", quantity=4,
                      received_at=received_at),
        GoodsReceived(receipt_id="RCV-1", po_id=None, supplier_id="acme", sku="SCARF", quantity=2,
                      received_at=received_at),
    ]  # fmt: skip
    assert referenced_purchase_orders(interchange(Message("0003", "861", advice))) == {"PO-1", "PO-3"}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (ShippedLine("PO-404", "JACKET", 1), "purchase order 'PO-404' was never sent to supplier 'acme'"),
        (ShippedLine("PO-9", "HAT", 1), "purchase order 'PO-9' belongs to supplier 'globex', not 'acme'"),
        (ShippedLine("PO-1", "BOOT", 1), "purchase order 'PO-1' is for SKU 'JACKET', the line names 'BOOT'"),
    ],
)
def test_a_line_for_a_po_the_supplier_did_not_get_refuses_the_interchange(
    line: ShippedLine, reason: str
) -> None:
    good = Message("0001", "856", ShipNotice("ASN-1", date(2030, 1, 12), (ShippedLine("PO-2", "BOOT", 1),)))
    bad = Message("0002", "856", ShipNotice("ASN-2", date(2030, 1, 12), (line,)))
    with pytest.raises(EdiError) as refused:
        events_of(interchange(good, bad), "acme", SENT)
    assert refused.value.reason == f"856 0002: {reason}"
    assert (refused.value.segment, refused.value.message_control_number) == ("ST", "0002")


def test_an_id_the_contract_refuses_is_named() -> None:
    advice = ReceivingAdvice("RCV 1 ", datetime(2030, 1, 12, tzinfo=UTC), (ReceivedLine(None, "SCARF", 2),))
    with pytest.raises(EdiError) as refused:
        events_of(interchange(Message("77", "RECADV", advice), standard="edifact"), "globex", SENT)
    assert refused.value.segment == "UNH"
    assert refused.value.reason.startswith("RECADV 77: receipt_id: String should match pattern")


def test_lines_naming_a_short_reference_become_events_of_our_po_id() -> None:
    long_id = "PO-WINTER-JACKET-NAVY-XL-0001"
    po = sent(long_id, "WINTER-JACKET-NAVY-XL")
    notice = ShipNotice("ASN-8", date(2030, 1, 12), (ShippedLine(po.reference, "WINTER-JACKET-NAVY-XL", 3),))
    [event] = events_of(interchange(Message("0004", "856", notice)), "acme", {po.reference: po})
    assert isinstance(event, ShipmentNoticed) and event.po_id == long_id
