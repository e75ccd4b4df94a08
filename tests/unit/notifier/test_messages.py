"""Rendering notifications from the templates."""

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import get_args

import pytest
from jinja2 import UndefinedError

from backbone.contracts.events import LineQuantity, NotificationKind
from services.notifier.events import (
    BackInStockContent,
    BackorderedContent,
    CancelledContent,
    EtaChangedContent,
    FulfilledContent,
    MessageContent,
    Notification,
    RefundedContent,
    RejectedContent,
    ShippedContent,
)
from services.notifier.messages import (
    TEMPLATES,
    email_for,
    long_date,
    message_context,
    render_email,
    webhook_body_for,
)

BACKORDERED = BackorderedContent(
    sku="SKU-A",
    ordered=500,
    available=400,
    backordered=100,
    eta=date(2026, 4, 1),
    cancel_by=date(2026, 4, 15),
    shipping_preference="ship_complete",
    options=["wait", "cancel_backordered", "ship_available_now"],
)

SHIPPED = ShippedContent(
    shipment_id="s-1",
    lines=[LineQuantity(line_id="l1", sku="SKU-A", quantity=400)],
    carrier="DHL",
    tracking_number="JD0001",
    tracking_url="https://track.example/JD0001",
    shipped_at=datetime(2026, 3, 4, 15, 0, tzinfo=UTC),
)

ONE_OF_EACH_KIND: list[MessageContent] = [
    BACKORDERED,
    EtaChangedContent(sku="SKU-A", waiting=100, previous_eta=date(2026, 4, 1), eta=None),
    FulfilledContent(sku="SKU-A", filled=30, still_waiting=70, order_ready=False),
    CancelledContent(
        reason="max_wait_exceeded", lines=[LineQuantity(line_id="l1", sku="SKU-A", quantity=70)]
    ),
    RefundedContent(
        sku="SKU-A", quantity=70, amount=Decimal("700.00"), currency="EUR", reason="max_wait_exceeded"
    ),
    RejectedContent(sku="SKU-C", ordered=5, available=2, rejected=3, reason="backorders denied"),
    SHIPPED,
    BackInStockContent(sku="SKU-C"),
]


def notification(content: MessageContent, name: str | None = "Ada") -> Notification:
    return Notification(
        notification_id="n-1",
        customer_id="c-1",
        email="ada@example.com",
        customer_name=name,
        shop_id="shop-1",
        order_id=None if content.kind == "back_in_stock" else "o-1",
        line_id="l1" if content.kind not in ("back_in_stock", "shipped") else None,
        content=content,
    )


def test_backordered_email_gives_the_eta_and_the_three_options() -> None:
    email = email_for(notification(BACKORDERED))

    assert email.subject == "100 of 500 units of SKU-A backordered, expected 1 April 2026"
    assert "Hello Ada," in email.body
    assert "We expect them on 1 April 2026." in email.body
    assert (
        "- Wait: we send them as soon as they arrive. If they have not arrived by 15 April 2026" in email.body
    )
    assert "- Cancel the backordered part: we cancel the 100 waiting units and refund them" in email.body
    assert "- Ship what is available now: we send the items in stock now" in email.body
    assert "Order: o-1" in email.body


def test_backordered_email_without_a_date_says_so() -> None:
    email = email_for(
        notification(BACKORDERED.model_copy(update={"eta": None, "cancel_by": None}), name=None)
    )
    assert "Hello there," in email.body
    assert "has not given us a delivery date yet" in email.body
    assert "expected" not in email.subject


def test_backordered_email_with_no_supplier_promises_no_date() -> None:
    content = BACKORDERED.model_copy(update={"eta": None, "basis": "no_supplier"})
    email = email_for(notification(content))
    assert email.subject == "100 of 500 units of SKU-A backordered, no delivery date can be promised"
    assert "We do not know of a supplier for this item" in email.body
    assert "cannot promise you a delivery date" in email.body
    assert "We expect" not in email.body and "has not given us" not in email.body


def test_backordered_email_awaiting_a_purchase_order_says_one_is_being_placed() -> None:
    content = BACKORDERED.model_copy(update={"eta": None, "basis": "awaiting_purchase_order"})
    email = email_for(notification(content))
    assert "We are placing a purchase order with our supplier" in email.body
    assert "expected" not in email.subject


def test_eta_changed_to_no_supplier_says_no_date_is_promised() -> None:
    content = EtaChangedContent(sku="SKU-A", waiting=100, previous_eta=None, eta=None, basis="no_supplier")
    email = email_for(notification(content))
    assert email.subject == "New delivery date for SKU-A: none can be promised"
    assert "We do not know of a supplier for this item" in email.body


def test_unknown_sku_rejection_states_the_reason_plainly() -> None:
    reason = "unknown SKU: never stocked and no supplier is known"
    content = RejectedContent(
        sku="SKU-X", ordered=5, available=0, rejected=5, reason=reason, unknown_sku=True
    )
    email = email_for(notification(content))
    assert email.subject == "5 units of SKU-X could not be ordered"
    assert (
        f"We do not know the item SKU-X: we have never stocked it and know of no supplier for it ({reason})"
        in (" ".join(email.body.split()))
    )
    assert "backorders" not in email.body and "back-in-stock" not in email.body


def test_shipped_email_gives_the_lines_and_the_tracking() -> None:
    email = email_for(notification(SHIPPED))
    assert email.subject == "400 units of SKU-A shipped with DHL"
    assert "These items are on their way to you (shipped 4 March 2026):" in email.body
    assert "- 400 units of SKU-A" in email.body
    assert "Carrier: DHL, tracking number JD0001." in email.body
    assert "Track the parcel: https://track.example/JD0001" in email.body

    bare = SHIPPED.model_copy(
        update={
            "carrier": None,
            "tracking_number": None,
            "tracking_url": None,
            "lines": [*SHIPPED.lines, LineQuantity(line_id="l2", sku="SKU-B", quantity=2)],
        }
    )
    email = email_for(notification(bare))
    assert email.subject == "Items of your order shipped"
    assert "Carrier" not in email.body and "Track" not in email.body
    assert "- 2 units of SKU-B" in email.body
    body = json.loads(webhook_body_for(notification(SHIPPED)))
    assert body["data"]["tracking_url"] == "https://track.example/JD0001"
    assert body["line_id"] is None


@pytest.mark.parametrize("content", ONE_OF_EACH_KIND, ids=lambda c: c.kind)
def test_every_kind_renders_as_email_and_webhook(content: MessageContent) -> None:
    message = notification(content)
    email = email_for(message)
    assert email.subject and "\n" not in email.subject
    assert email.body.startswith("Hello Ada,") and email.body.endswith("Customer service\n")

    body = json.loads(webhook_body_for(message))
    assert (body["notification_id"], body["kind"], body["customer"]["email"]) == (
        "n-1",
        content.kind,
        "ada@example.com",
    )
    assert (body["subject"], body["text"]) == (email.subject, email.body)
    assert body["data"] == content.model_dump(mode="json", exclude={"kind"})


def test_every_kind_has_its_templates() -> None:
    kinds = set(get_args(NotificationKind))
    assert kinds == {content.kind for content in ONE_OF_EACH_KIND}
    for kind in kinds:
        assert (TEMPLATES / "email" / f"{kind}.subject.j2").is_file()
        assert (TEMPLATES / "email" / f"{kind}.txt.j2").is_file()


def test_a_missing_variable_is_an_error_not_a_hole() -> None:
    context = message_context(notification(BACKORDERED))
    del context["eta"]
    with pytest.raises(UndefinedError, match="eta"):
        render_email("backordered", context)


def test_dates_are_written_out() -> None:
    assert long_date(date(2026, 4, 1)) == long_date("2026-04-01") == "1 April 2026"
    assert long_date("2026-04-01T23:30:00+00:00") == long_date(datetime(2026, 4, 1, tzinfo=UTC))
