"""What the read models take from the events beyond the folded state (projections.Details)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from backbone.contracts import Envelope, EventPayload, new_envelope
from backbone.contracts.events import BackorderEtaUpdated, PurchaseOrderIssued
from services.procurement.events import (
    BackorderLineReduced,
    BackorderQueueRecorded,
    PurchaseOrderConfirmed,
    QueueLineChanged,
    ReceiptRecorded,
    StockPositionRecorded,
    SupplierTermsSet,
)
from services.procurement.projections import Announcement, Details, sku_of, stream_id
from tests.unit.procurement.scenario import SKU, day, terms

T0 = datetime(2025, 3, 3, 9, tzinfo=UTC)


def at(minutes: int, payload: EventPayload) -> Envelope[Any]:
    return new_envelope(payload, occurred_at=T0 + timedelta(minutes=minutes))


def issued(revision: int, quantity: int) -> PurchaseOrderIssued:
    return PurchaseOrderIssued(
        po_id="PO-1",
        revision=revision,
        supplier_id="S1",
        sku=SKU,
        quantity=quantity,
        unit_cost=Decimal("5.00"),
        currency="EUR",
        expected_arrival=day(10),
    )


def eta(order_id: str, po_id: str | None, reason: str) -> BackorderEtaUpdated:
    return BackorderEtaUpdated(
        order_id=order_id,
        line_id="1",
        sku=SKU,
        eta=day(10) if po_id else None,
        previous_eta=None,
        po_id=po_id,
        reason=reason,
    )


def test_the_latest_fact_wins_except_when_a_po_was_issued() -> None:
    details = Details.of(
        [
            at(0, SupplierTermsSet(sku=SKU, suppliers=[terms()], actor="ann")),
            at(1, issued(1, 10)),
            at(2, eta("A", None, "first")),
            at(3, issued(2, 15)),
            at(4, eta("A", "PO-1", "second")),
            at(
                5, PurchaseOrderConfirmed(sku=SKU, po_id="PO-1", confirmed_quantity=15, confirmed_date=day(9))
            ),
            at(6, SupplierTermsSet(sku=SKU, suppliers=[], actor="bob")),
        ]
    )
    assert details.catalogue is not None and (details.catalogue.actor, details.catalogue.at) == (
        "bob",
        T0 + timedelta(minutes=6),
    )
    assert details.po_issued_at == {"PO-1": T0 + timedelta(minutes=1)}
    assert details.po_changed_at == {"PO-1": T0 + timedelta(minutes=5)}
    assert details.announcements == {("A", "1"): Announcement("PO-1", "second", T0 + timedelta(minutes=4))}
    assert (details.lines, details.whole_queue) == ({("A", "1")}, False)
    assert details.last_event_at == T0 + timedelta(minutes=6)


def test_only_queue_and_eta_events_touch_the_waiting_lines_and_only_theirs() -> None:
    position = StockPositionRecorded(
        sku=SKU,
        on_hand=0,
        reserved=0,
        available=0,
        backordered=0,
        reorder_point=1,
        safety_stock=0,
        as_of=day(0),
    )
    receipt = ReceiptRecorded(sku=SKU, receipt_id="R-1", po_id=None, quantity=3, received_on=day(1))
    quiet = Details.of([at(0, position), at(1, receipt)])
    assert (quiet.lines, quiet.whole_queue) == (set(), False)
    assert (quiet.po_changed_at, quiet.catalogue) == ({}, None)  # a receipt without a PO changes no PO
    fill = BackorderLineReduced(
        sku=SKU, order_id="B", line_id="2", quantity=1, remaining=0, cause="fulfilled"
    )
    queued = QueueLineChanged(
        sku=SKU,
        order_id="A",
        line_id="1",
        change="joined",
        priority_score=Decimal(0),
        placed_at=T0,
        sequence=1,
        remaining=2,
    )
    lines = Details.of([at(0, queued), at(1, fill)])
    assert (lines.lines, lines.whole_queue) == ({("A", "1"), ("B", "2")}, False)
    assert Details.of([at(0, BackorderQueueRecorded(sku=SKU, entries=[]))]).whole_queue


def test_stream_ids_name_the_sku() -> None:
    assert stream_id("SKU 1") == "sku:SKU 1"
    assert sku_of(stream_id("sku:odd")) == "sku:odd"
