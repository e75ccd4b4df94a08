"""The contract's size limit: where it lies, and that no valid order can exceed it."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from backbone.contracts import DecodeError, new_envelope
from backbone.contracts.events import Customer, OrderLine, OrderPlaced
from backbone.contracts.limits import MAX_EVENT_BYTES, check_event_size
from backbone.deadletter import MAX_COPY_BYTES

KAFKA_DEFAULT_MESSAGE_BYTES = 1_048_588  # the broker's max.message.bytes default
# A character JSON writes as six bytes (\u0001): the widest a text field can get per character.
WIDE = "\x01"


def test_the_limit_is_inclusive_and_the_refusal_says_why() -> None:
    check_event_size(MAX_EVENT_BYTES)
    with pytest.raises(DecodeError) as refused:
        check_event_size(MAX_EVENT_BYTES + 1)
    assert refused.value.reason == (
        f"message too large: {MAX_EVENT_BYTES + 1} bytes, the contract's limit is {MAX_EVENT_BYTES} bytes "
        "(the JSON value after decompression)"
    )


def test_a_whole_dead_letter_copy_stays_under_kafkas_default_message_size() -> None:
    assert MAX_EVENT_BYTES < MAX_COPY_BYTES < KAFKA_DEFAULT_MESSAGE_BYTES - 8 * 1024  # batch overhead


def _max_lines() -> int:
    limits = OrderPlaced.model_fields["lines"].metadata
    return int(next(m.max_length for m in limits if hasattr(m, "max_length")))


def test_the_largest_valid_order_placed_fits_in_the_limit() -> None:
    """500 lines (the model's maximum) with every field at its widest: producers cannot exceed the limit
    from valid input, and neither can the order service from a valid POST /orders body."""
    wide_id = WIDE * 128
    lines = [
        OrderLine(
            line_id=f"{i:03d}{WIDE * 125}",
            sku=wide_id,
            quantity=1_000_000_000,
            unit_price=Decimal("999999999999.99"),
        )
        for i in range(_max_lines())
    ]
    order = OrderPlaced(
        order_id=wide_id,
        shop_id=wide_id,
        customer=Customer(
            customer_id=wide_id, email=f"{WIDE * 120}@{WIDE * 120}.{WIDE * 12}", name=WIDE * 1000, tier="gold"
        ),
        lines=lines,
        placed_at=datetime(2026, 11, 25, 9, 0, 0, 123456, tzinfo=UTC),
        urgent=True,
        shipping_preference="ship_available",
        max_wait_days=365,
    )
    envelope = new_envelope(order, correlation_id=wide_id)
    size = len(envelope.to_json())
    assert size > 800_000  # the worst case really is this wide (so the test would notice a larger model)
    assert size + 768 <= MAX_EVENT_BYTES  # + a causation_id of 128 wide characters
