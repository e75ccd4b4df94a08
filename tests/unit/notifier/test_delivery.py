"""Delivery outcomes: sent, retried with exponential backoff, or failed for good."""

from datetime import UTC, datetime, timedelta

import pytest

from backbone.contracts import EventPayload, new_envelope
from backbone.contracts.events import (
    NotificationFailed,
    NotificationFailedV1,
    NotificationSent,
    NotificationSentV1,
)
from services.notifier.domain import (
    DeliveryAttempt,
    DeliveryState,
    Destination,
    RetryPolicy,
    decide_delivery,
    delivered,
    delivery_failed,
    delivery_stream_id,
    destination_for,
    evolve_delivery,
    initial_delivery,
)
from services.notifier.events import (
    NOTIFIER_REGISTRY,
    BackInStockContent,
    DeliveryRetryScheduled,
    DeliveryRetryScheduledV1,
    Notification,
    NotificationRequested,
)

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(
    first_delay=timedelta(seconds=30), multiplier=2, max_delay=timedelta(minutes=10), max_attempts=5
)
MESSAGE = Notification(
    notification_id="n-1",
    customer_id="c-1",
    email="ada@example.com",
    customer_name="Ada",
    shop_id="shop-1",
    order_id=None,
    line_id=None,
    content=BackInStockContent(sku="SKU-C"),
)
EMAIL = Destination(channel="email", recipient="ada@example.com", ref="email:c-1")
HOOK_URL = "https://shop.example/hooks/3f9c2a?token=s3cr3t"
HOOK = Destination(channel="webhook", recipient=HOOK_URL, ref="webhook:shop-1")


def test_delays_double_and_stop_at_the_cap() -> None:
    delays = [POLICY.delay_after(attempt) for attempt in range(1, 8)]
    assert delays == [timedelta(seconds=s) for s in (30, 60, 120, 240, 480, 600, 600)]
    assert RetryPolicy().delay_after(10_000) == RetryPolicy().max_delay


def test_bad_policies_and_attempts_are_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        POLICY.delay_after(0)


def test_a_failed_attempt_is_retried_after_its_delay() -> None:
    outcome = delivery_failed(MESSAGE, EMAIL, attempts=3, error="451 try later", now=NOW, policy=POLICY)
    assert outcome == DeliveryRetryScheduled(
        notification_id="n-1",
        customer_id="c-1",
        channel="email",
        attempts=3,
        error="451 try later",
        retry_at=NOW + timedelta(seconds=120),
    )


def test_the_last_attempt_fails_for_good() -> None:
    outcome = delivery_failed(MESSAGE, EMAIL, attempts=5, error="451 try later", now=NOW, policy=POLICY)
    assert outcome == NotificationFailed(
        notification_id="n-1",
        customer_id="c-1",
        order_id=None,
        line_id=None,
        kind="back_in_stock",
        channel="email",
        recipient_ref="email:c-1",
        attempts=5,
        error="451 try later",
    )


def test_a_permanent_refusal_is_not_retried() -> None:
    outcome = delivery_failed(
        MESSAGE, EMAIL, attempts=1, error="550 no such user", now=NOW, policy=POLICY, permanent=True
    )
    assert isinstance(outcome, NotificationFailed)
    assert outcome.attempts == 1


def test_a_long_error_is_cut_to_fit_the_contract() -> None:
    outcome = delivery_failed(MESSAGE, EMAIL, attempts=1, error="x" * 5000, now=NOW, policy=POLICY)
    assert isinstance(outcome, DeliveryRetryScheduled)
    assert len(outcome.error) == 1000


def test_success_is_a_notification_sent() -> None:
    assert delivered(MESSAGE, EMAIL, attempts=2) == NotificationSent(
        notification_id="n-1",
        customer_id="c-1",
        order_id=None,
        line_id=None,
        kind="back_in_stock",
        channel="email",
        recipient_ref="email:c-1",
        attempts=2,
    )


def test_a_shop_with_a_webhook_gets_the_message() -> None:
    assert destination_for(MESSAGE, None) == EMAIL
    assert destination_for(MESSAGE, HOOK_URL) == HOOK


def test_published_outcomes_name_the_destination_by_reference_only() -> None:
    """Contract 3.0: neither the address nor the webhook URL reaches the notifier topic, nor its log."""
    sent = delivered(MESSAGE, HOOK, attempts=1)
    assert (sent.channel, sent.recipient_ref) == ("webhook", "webhook:shop-1")
    failed = delivery_failed(MESSAGE, EMAIL, attempts=5, error="451 busy", now=NOW, policy=POLICY)
    retry = delivery_failed(MESSAGE, HOOK, attempts=1, error="HTTP 503", now=NOW, policy=POLICY)
    for event in (sent, failed, retry):
        text = event.model_dump_json()
        assert "ada@example.com" not in text and "shop.example" not in text and "s3cr3t" not in text
    with pytest.raises(ValueError, match="does not name a email destination"):
        NotificationSent(**{**sent.model_dump(), "channel": "email"})


@pytest.mark.parametrize(
    ("destination", "error", "recorded"),
    [
        (
            EMAIL,
            "recipient refused: 550 5.1.1 <ada@example.com>: Recipient address rejected: Ada unknown",
            "recipient refused: 550 5.1.1 <<redacted e-mail>>: Recipient address rejected: "
            "<redacted> unknown",
        ),
        (
            HOOK,
            f"webhook unreachable: ConnectError: cannot reach {HOOK_URL} (or ADA at other@example.org)",
            "webhook unreachable: ConnectError: cannot reach <webhook URL> "
            "(or <redacted> at <redacted e-mail>)",
        ),
        (EMAIL, "451 4.3.0 Adalbert's mailbox is busy", "451 4.3.0 Adalbert's mailbox is busy"),
    ],
)
def test_recorded_errors_lose_addresses_the_name_and_the_webhook_url(
    destination: Destination, error: str, recorded: str
) -> None:
    failed = delivery_failed(MESSAGE, destination, attempts=5, error=error, now=NOW, policy=POLICY)
    retry = delivery_failed(MESSAGE, destination, attempts=1, error=error, now=NOW, policy=POLICY)
    assert isinstance(failed, NotificationFailed) and isinstance(retry, DeliveryRetryScheduled)
    assert failed.error == retry.error == recorded


def attempt(number: int, error: str | None = None, permanent: bool = False) -> DeliveryAttempt:
    return DeliveryAttempt(
        notification=MESSAGE,
        destination=EMAIL,
        attempt=number,
        at=NOW,
        policy=POLICY,
        error=error,
        permanent=permanent,
    )


class DeliveryStream:
    def __init__(self) -> None:
        self.state: DeliveryState = initial_delivery("n-1")

    def record(self, outcome: DeliveryAttempt) -> list[EventPayload]:
        events = decide_delivery(self.state, outcome)
        for event in events:
            self.state = evolve_delivery(self.state, event)
        return events


def test_attempts_are_recorded_in_turn_until_the_channel_accepts() -> None:
    stream = DeliveryStream()
    (first,) = stream.record(attempt(1, error="451 busy"))
    (second,) = stream.record(attempt(2, error="451 busy"))
    assert isinstance(first, DeliveryRetryScheduled) and isinstance(second, DeliveryRetryScheduled)
    assert (first.retry_at, second.retry_at) == (NOW + timedelta(seconds=30), NOW + timedelta(seconds=60))
    (sent,) = stream.record(attempt(3))
    assert sent == delivered(MESSAGE, EMAIL, attempts=3)
    assert stream.state == DeliveryState(notification_id="n-1", attempts=3, outcome="sent")


def test_an_attempt_is_recorded_once_and_nothing_after_the_outcome() -> None:
    stream = DeliveryStream()
    assert stream.record(attempt(1, error="451 busy")) != []
    # A worker whose lease ran out reports attempt 1 again, or skips ahead: neither is recorded.
    assert stream.record(attempt(1)) == []
    assert stream.record(attempt(3)) == []
    (failed,) = stream.record(attempt(2, error="550 no such user", permanent=True))
    assert isinstance(failed, NotificationFailed)
    assert stream.state.outcome == "failed"
    assert stream.record(attempt(3)) == []


def test_the_last_allowed_attempt_ends_the_stream_as_failed() -> None:
    stream = DeliveryStream()
    outcomes = [stream.record(attempt(n, error="451 busy")) for n in range(1, POLICY.max_attempts + 1)]
    assert [type(e) for (e,) in outcomes] == [DeliveryRetryScheduled] * 4 + [NotificationFailed]
    assert stream.state == DeliveryState(notification_id="n-1", attempts=5, outcome="failed")


def test_a_delivery_stream_holds_only_delivery_events() -> None:
    with pytest.raises(TypeError):
        evolve_delivery(initial_delivery("n-1"), NotificationRequested(notification=MESSAGE))
    assert delivery_stream_id("n-1") == "delivery:n-1"


def test_outcomes_recorded_before_contract_3_still_end_their_stream() -> None:
    """The notifier's log keeps the retired v1 outcomes (they named the address): they decode as
    themselves and fold like v2, so a stream recorded before the upgrade stays finished."""
    sent_v1 = NotificationSentV1(
        notification_id="n-1",
        customer_id="c-1",
        order_id=None,
        line_id=None,
        kind="back_in_stock",
        channel="email",
        recipient="ada@example.com",
        attempts=2,
    )
    stored = NOTIFIER_REGISTRY.decode(new_envelope(sent_v1).to_json())
    assert stored.payload == sent_v1 and stored.schema_version == 1
    assert evolve_delivery(initial_delivery("n-1"), stored.payload) == DeliveryState("n-1", 2, "sent")
    failed_v1 = NotificationFailedV1(**{**sent_v1.model_dump(), "attempts": 3, "error": "550"})
    assert evolve_delivery(initial_delivery("n-1"), failed_v1) == DeliveryState("n-1", 3, "failed")


def test_a_retry_recorded_before_contract_3_is_read_without_its_destination() -> None:
    old = DeliveryRetryScheduledV1(
        notification_id="n-1",
        customer_id="c-1",
        channel="webhook",
        recipient=HOOK_URL,
        attempts=1,
        error="webhook answered HTTP 503",
        retry_at=NOW,
    )
    read = NOTIFIER_REGISTRY.decode(new_envelope(old).to_json())
    assert read.schema_version == 2
    assert read.payload == DeliveryRetryScheduled(
        notification_id="n-1",
        customer_id="c-1",
        channel="webhook",
        attempts=1,
        error="webhook answered HTTP 503",
        retry_at=NOW,
    )
