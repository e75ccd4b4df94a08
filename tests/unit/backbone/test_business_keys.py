"""Business keys name the fact an event states: the same fact re-sent has the same key, another fact
(another order's cancellation, another trading partner's message) never shares it."""

from datetime import UTC, date, datetime

from backbone.contracts.events import (
    GoodsReceived,
    LineQuantity,
    OrderCancelled,
    PurchaseOrderAcknowledged,
    StockReserved,
)

AT = datetime(2026, 12, 2, 9, tzinfo=UTC)


def cancellation(order_id: str, cancellation_id: str | None, quantity: int = 1) -> OrderCancelled:
    return OrderCancelled(
        order_id=order_id,
        lines=[LineQuantity(line_id="1", sku="SKU", quantity=quantity)],
        reason="customer_request",
        cancelled_at=AT,
        cancellation_id=cancellation_id,
    )


def test_a_receipt_line_is_named_by_its_receipt_and_sku() -> None:
    first = GoodsReceived(receipt_id="GRN-1", sku="A", quantity=2, received_at=AT)
    assert first.business_key() == "GoodsReceived:GRN-1\x1fA"
    assert first.model_copy(update={"sku": "B"}).business_key() != first.business_key()


def test_cancellations_are_named_within_their_order_or_by_their_content() -> None:
    assert cancellation("o-1", "1").business_key() != cancellation("o-2", "1").business_key()
    assert cancellation("o-1", "1").business_key() == cancellation("o-1", "1", quantity=2).business_key()
    unnamed = cancellation("o-1", None)
    assert unnamed.business_key() == cancellation("o-1", None).business_key()  # the same request re-sent
    assert unnamed.business_key() != cancellation("o-1", None, quantity=2).business_key()


def test_acknowledgements_are_named_per_purchase_order_and_events_without_a_key_have_none() -> None:
    ack = PurchaseOrderAcknowledged(
        po_id="PO-1",
        sku="A",
        confirmed_quantity=3,
        confirmed_date=date(2026, 12, 9),
        acknowledgement_id="855-1",
    )
    assert ack.business_key() != ack.model_copy(update={"po_id": "PO-2"}).business_key()
    assert ack.model_copy(update={"acknowledgement_id": None}).business_key() is None
    assert StockReserved(order_id="o", line_id="1", sku="A", quantity=1).business_key() is None
