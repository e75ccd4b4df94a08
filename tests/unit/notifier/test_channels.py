"""The channels' pure parts: the email a notification becomes, and what each refusal means."""

from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser

import aiosmtplib
import pytest

from services.notifier.channels import (
    DeliveryFailure,
    build_email,
    message_id,
    smtp_failure,
    webhook_failure,
    wire_bytes,
)
from services.notifier.events import BackInStockContent, Notification

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SENDER, SENDER_ADDRESS = "Shop <orders@shop.example>", "orders@shop.example"


def notification(email: str = "ada@example.com", name: str | None = "Ada Lovelace") -> Notification:
    return Notification(
        notification_id="5a0c2f4e-1b7d-5e0a-9f43-2d1c0b9a8e77",
        customer_id="c-1",
        email=email,
        customer_name=name,
        shop_id="default",
        order_id=None,
        line_id=None,
        content=BackInStockContent(sku="SKU-C"),
    )


def test_the_message_id_names_the_notification_in_the_senders_domain() -> None:
    assert message_id("n-1", SENDER_ADDRESS) == "<n-1@shop.example>"
    assert message_id("n-1", SENDER_ADDRESS) == message_id("n-1", SENDER_ADDRESS)


def test_an_email_carries_its_rendered_text_and_the_headers_receivers_need() -> None:
    email = build_email(notification(), SENDER, SENDER_ADDRESS, NOW)
    assert str(email["To"]) == "Ada Lovelace <ada@example.com>"
    assert str(email["From"]) == SENDER
    assert email["Subject"] == "SKU-C is back in stock"
    assert email["Message-ID"] == "<5a0c2f4e-1b7d-5e0a-9f43-2d1c0b9a8e77@shop.example>"
    assert email["Auto-Submitted"] == "auto-generated"
    assert email["X-Notification-Kind"] == "back_in_stock"
    body = email.get_body(("plain",))
    assert body is not None
    assert "Hello Ada Lovelace," in str(body.get_content())
    assert "SKU-C, which you asked us to watch, is back in stock" in str(body.get_content())


def test_a_long_subject_arrives_as_it_was_written() -> None:
    long_sku = "WINTER-JACKET-" + "X" * 60
    email = build_email(notification(), SENDER, SENDER_ADDRESS, NOW)
    email.replace_header("Subject", f"{long_sku} is back in stock")
    received = BytesParser(policy=policy.default).parsebytes(wire_bytes(email))
    assert received["Subject"] == f"{long_sku} is back in stock"


def test_an_internationalised_address_is_kept_as_it_is() -> None:
    email = build_email(notification(email="zoë@exämple.com", name=None), SENDER, SENDER_ADDRESS, NOW)
    assert str(email["To"]) == "zoë@exämple.com"
    assert email.policy.utf8  # sent with SMTPUTF8


def refused(*replies: tuple[int, str]) -> aiosmtplib.SMTPRecipientsRefused:
    return aiosmtplib.SMTPRecipientsRefused(
        [aiosmtplib.SMTPRecipientRefused(code, text, "ada@example.com") for code, text in replies]
    )


@pytest.mark.parametrize(
    ("error", "permanent", "reason"),
    [
        (refused((451, "4.3.0 busy")), False, "recipient refused: 451 4.3.0 busy"),
        (refused((550, "5.1.1 no such\n user")), True, "recipient refused: 550 5.1.1 no such user"),
        (aiosmtplib.SMTPDataError(554, "5.7.1 spam"), True, "refused: 554 5.7.1 spam"),
        (aiosmtplib.SMTPDataError(452, "4.3.1 full"), False, "refused: 452 4.3.1 full"),
        # The relay's or our configuration: retried while an operator fixes it.
        (
            aiosmtplib.SMTPSenderRefused(553, "not allowed", "x@y.z"),
            False,
            "SMTPSenderRefused: 553 not allowed",
        ),
        (aiosmtplib.SMTPAuthenticationError(535, "bad credentials"), False, "SMTPAuthenticationError: 535"),
        (aiosmtplib.SMTPServerDisconnected("gone"), False, "SMTPServerDisconnected: gone"),
        (aiosmtplib.SMTPConnectTimeoutError("slow"), False, "SMTPConnectTimeoutError: slow"),
    ],
)
def test_smtp_refusals_are_permanent_only_when_the_message_or_mailbox_is_refused_for_good(
    error: aiosmtplib.SMTPException, permanent: bool, reason: str
) -> None:
    failure = smtp_failure(error)
    assert failure.permanent is permanent
    assert failure.reason.startswith(reason)


def test_webhook_statuses() -> None:
    assert webhook_failure(200, "") is None
    assert webhook_failure(204, "") is None
    gone = webhook_failure(410, "no such shop")
    assert isinstance(gone, DeliveryFailure) and gone.permanent
    assert gone.reason == "webhook answered HTTP 410: no such shop"
    for status in (401, 404, 408, 429, 500, 503):
        failure = webhook_failure(status, "x" * 2000)
        assert failure is not None and not failure.permanent
        assert len(failure.reason) < 400  # the body is cut short
