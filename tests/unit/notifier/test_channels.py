"""The channels' pure parts: the email a notification becomes, what each refusal means, and the webhook
signature (made by the channel, checked as a receiver would)."""

import hashlib
import hmac
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser

import aiosmtplib
import httpx
import pytest

from services.notifier.channels import (
    SIGNATURE_HEADER,
    DeliveryFailure,
    SignatureError,
    WebhookChannel,
    build_email,
    message_id,
    sign_webhook,
    smtp_failure,
    verify_signature,
    webhook_failure,
    wire_bytes,
)
from services.notifier.events import BackInStockContent, Notification
from services.notifier.settings import NotifierSettings

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


# --- webhook signatures: what a receiver checks -------------------------------------------------------------

HOOK_SECRET = "whsec-" + "k" * 40
BODY = b'{"notification_id":"n-1","kind":"back_in_stock"}'
SIGNED_AT = 1_780_000_000


def test_a_signature_holds_for_the_body_secret_and_time_it_was_made_with() -> None:
    header = sign_webhook(HOOK_SECRET, BODY, SIGNED_AT)
    timestamp, _, signature = header.partition(",")
    assert timestamp == f"t={SIGNED_AT}"
    # HMAC-SHA256 over "<t>.<body>", hex: what the README's receiver snippet computes.
    expected = hmac.new(HOOK_SECRET.encode(), f"{SIGNED_AT}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert signature == f"v1={expected}"
    assert verify_signature(header, BODY, HOOK_SECRET, now=SIGNED_AT + 299) == SIGNED_AT
    assert verify_signature(header, BODY, HOOK_SECRET, now=SIGNED_AT - 30) == SIGNED_AT  # a clock ahead
    # While the shop rotates its secret it accepts the old one and the new one.
    assert verify_signature(header, BODY, ["new-" + "n" * 40, HOOK_SECRET], now=SIGNED_AT) == SIGNED_AT
    # A header that grows later schemes still verifies.
    assert verify_signature(f"{header},v2=abc", BODY, HOOK_SECRET, now=SIGNED_AT) == SIGNED_AT


@pytest.mark.parametrize(
    ("header", "body", "secret", "now", "complaint"),
    [
        (None, BODY, HOOK_SECRET, SIGNED_AT, "no Backorder-Signature header"),
        ("v1=00", BODY, HOOK_SECRET, SIGNED_AT, "exactly one t="),
        (f"t={SIGNED_AT},t={SIGNED_AT},v1=00", BODY, HOOK_SECRET, SIGNED_AT, "exactly one t="),
        ("t=soon,v1=00", BODY, HOOK_SECRET, SIGNED_AT, "exactly one t="),
        (f"t={SIGNED_AT}", BODY, HOOK_SECRET, SIGNED_AT, "no v1 signature"),
        ("signed", BODY.replace(b"back_in_stock", b"refunded"), HOOK_SECRET, SIGNED_AT, "mismatch"),
        ("signed", BODY + b" ", HOOK_SECRET, SIGNED_AT, "mismatch"),
        ("signed", BODY, "another-" + "x" * 40, SIGNED_AT, "mismatch"),
        ("signed", BODY, HOOK_SECRET, SIGNED_AT + 301, "outside the tolerance of 300 s"),
        ("signed", BODY, HOOK_SECRET, SIGNED_AT - 301, "outside the tolerance"),
        ("re-timed", BODY, HOOK_SECRET, SIGNED_AT + 1000, "mismatch"),
    ],
)
def test_a_tampered_replayed_or_foreign_call_is_refused(
    header: str | None, body: bytes, secret: str, now: float, complaint: str
) -> None:
    good = sign_webhook(HOOK_SECRET, BODY, SIGNED_AT)
    if header == "signed":
        header = good
    elif header == "re-timed":  # a replay with a fresh timestamp: the signature does not cover it
        header = good.replace(f"t={SIGNED_AT}", f"t={SIGNED_AT + 1000}")
    with pytest.raises(SignatureError, match=complaint):
        verify_signature(header, body, secret, now=now)


async def test_every_webhook_call_is_signed_with_its_shops_secret() -> None:
    settings = NotifierSettings(
        database_url="postgresql://notifier@127.0.0.1/notifier",
        auth_token_secret="t" * 40,
        shop_webhooks={"webshop": {"url": "https://webshop.example/hooks", "secret": HOOK_SECRET}},
    )
    requests: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(204)

    message = notification().model_copy(update={"shop_id": "webshop"})
    async with httpx.AsyncClient(transport=httpx.MockTransport(receive)) as client:
        channel = WebhookChannel(client, settings, clock=lambda: SIGNED_AT + 0.7)
        await channel.send(message, "https://webshop.example/hooks")
        await channel.send(message, "https://webshop.example/hooks")
    first, second = requests
    assert first.headers["Idempotency-Key"] == message.notification_id
    assert verify_signature(first.headers[SIGNATURE_HEADER], first.content, HOOK_SECRET, now=SIGNED_AT) == (
        SIGNED_AT
    )
    assert first.headers[SIGNATURE_HEADER] == second.headers[SIGNATURE_HEADER]  # same body, same second
    with pytest.raises(SignatureError, match="mismatch"):
        verify_signature(
            first.headers[SIGNATURE_HEADER], first.content[:-1] + b" }", HOOK_SECRET, now=SIGNED_AT
        )

    # A shop taken out of SHOP_WEBHOOKS while its message was claimed: retried, never sent unsigned.
    with pytest.raises(DeliveryFailure, match="no webhook is configured for shop 'default'") as failed:
        async with httpx.AsyncClient(transport=httpx.MockTransport(receive)) as client:
            await WebhookChannel(client, settings).send(notification(), "https://webshop.example/hooks")
    assert not failed.value.permanent and len(requests) == 2
