"""Delivery outcomes: sent, retried with exponential backoff, or failed for good."""

from datetime import UTC, datetime, timedelta

import pytest

from backbone.contracts.events import NotificationFailed, NotificationSent
from services.notifier.domain import (
    Destination,
    RetryPolicy,
    delivered,
    delivery_failed,
    destination_for,
)
from services.notifier.events import BackInStockContent, DeliveryRetryScheduled, Notification

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
EMAIL = Destination(channel="email", recipient="ada@example.com")


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
        recipient="ada@example.com",
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
        recipient="ada@example.com",
        attempts=2,
    )


def test_a_shop_with_a_webhook_gets_the_message() -> None:
    assert destination_for(MESSAGE, None) == EMAIL
    assert destination_for(MESSAGE, "https://shop.example/hooks") == Destination(
        channel="webhook", recipient="https://shop.example/hooks"
    )
