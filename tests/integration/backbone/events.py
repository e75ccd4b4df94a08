"""Sample events for the backbone's integration tests."""

from datetime import UTC, datetime
from typing import Any

from backbone.contracts import Envelope, new_envelope
from backbone.contracts.events import GoodsReceived, StockAdjusted


def adjustment(sku: str, delta: int = 1) -> Envelope[Any]:
    return new_envelope(
        StockAdjusted(sku=sku, delta=delta, on_hand_after=max(delta, 0), reason="count", actor="t")
    )


def receipt(sku: str, receipt_id: str, quantity: int = 1) -> Envelope[Any]:
    payload = GoodsReceived(receipt_id=receipt_id, sku=sku, quantity=quantity, received_at=datetime.now(UTC))
    return new_envelope(payload)
