"""Back-in-stock subscriptions: one message per subscriber when stock arrives, then consumed."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backbone.contracts import Envelope, EventPayload
from backbone.contracts.events import GoodsReceived, SkuPolicyChanged, StockAdjusted
from services.notifier.domain import (
    BackordersAllowed,
    InvalidSubscription,
    SkuWatch,
    Subscribe,
    Unsubscribe,
    decide_sku,
    evolve_sku,
    initial_sku_watch,
    rebuild_sku,
    sku_of,
)
from services.notifier.events import BackInStockSubscriptionEnded, Notification
from tests.unit.notifier.builders import envelope, requested

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


class SkuStream:
    def __init__(self) -> None:
        self.state: SkuWatch = initial_sku_watch("SKU-C")
        self.stream: list[EventPayload] = []

    def apply(self, incoming: Subscribe | Unsubscribe | Envelope[Any]) -> list[EventPayload]:
        events = decide_sku(self.state, incoming)
        for event in events:
            self.state = evolve_sku(self.state, event)
        self.stream.extend(events)
        return events


def subscribe(customer_id: str, minutes: int = 0) -> Subscribe:
    return Subscribe(
        sku="SKU-C",
        customer_id=customer_id,
        email=f"{customer_id}@example.com",
        subscribed_at=NOW + timedelta(minutes=minutes),
    )


def received(quantity: int = 10) -> Envelope[Any]:
    return envelope(GoodsReceived(receipt_id="r-1", sku="SKU-C", quantity=quantity, received_at=NOW))


def adjusted(delta: int) -> Envelope[Any]:
    return envelope(
        StockAdjusted(sku="SKU-C", delta=delta, on_hand_after=max(delta, 0), reason="count", actor="clerk")
    )


def denies_backorders() -> Envelope[Any]:
    return envelope(
        SkuPolicyChanged(sku="SKU-C", backorder_policy="deny", reorder_point=0, safety_stock=0, actor="buyer")
    )


def test_each_subscriber_gets_one_message_and_the_subscription_is_consumed() -> None:
    watch = SkuStream()
    watch.apply(denies_backorders())
    watch.apply(subscribe("c-1"))
    watch.apply(subscribe("c-2", minutes=5))

    arrival = received()
    events = watch.apply(arrival)

    messages = requested(events)
    assert [(m.customer_id, m.kind, m.email) for m in messages] == [
        ("c-1", "back_in_stock", "c-1@example.com"),
        ("c-2", "back_in_stock", "c-2@example.com"),
    ]
    assert len({m.notification_id for m in messages}) == 2
    assert [e.customer_id for e in events if isinstance(e, BackInStockSubscriptionEnded)] == ["c-1", "c-2"]
    assert watch.state.subscribers == {}
    assert watch.apply(arrival) == []  # redelivered
    assert watch.apply(adjusted(+5)) == []  # more stock, nobody left to tell
    assert rebuild_sku("SKU-C", watch.stream) == watch.state


def test_a_positive_adjustment_is_stock_arriving_and_a_negative_one_is_not() -> None:
    watch = SkuStream()
    watch.apply(subscribe("c-1"))
    assert watch.apply(adjusted(-2)) == []
    assert [m.customer_id for m in requested(watch.apply(adjusted(+2)))] == ["c-1"]
    assert sku_of(adjusted(-2).payload) is None
    assert sku_of(adjusted(+2).payload) == "SKU-C"


def test_a_new_subscription_after_the_message_gets_the_next_arrival() -> None:
    watch = SkuStream()
    watch.apply(subscribe("c-1"))
    first: list[Notification] = requested(watch.apply(received()))
    watch.apply(subscribe("c-1", minutes=60))
    second = requested(watch.apply(received()))
    assert first[0].notification_id != second[0].notification_id


def test_subscribing_twice_is_one_subscription() -> None:
    watch = SkuStream()
    watch.apply(subscribe("c-1"))
    assert watch.apply(subscribe("c-1", minutes=1)) == []
    assert len(requested(watch.apply(received()))) == 1


def test_unsubscribed_customers_get_nothing() -> None:
    watch = SkuStream()
    watch.apply(subscribe("c-1"))
    watch.apply(Unsubscribe(sku="SKU-C", customer_id="c-1"))
    assert watch.apply(Unsubscribe(sku="SKU-C", customer_id="c-1")) == []
    assert watch.apply(received()) == []


def test_a_sku_that_can_be_backordered_needs_no_subscription() -> None:
    watch = SkuStream()
    watch.apply(
        envelope(
            SkuPolicyChanged(
                sku="SKU-C", backorder_policy="allow", reorder_point=0, safety_stock=0, actor="buyer"
            )
        )
    )
    with pytest.raises(BackordersAllowed):
        watch.apply(subscribe("c-1"))


def test_a_bad_email_is_refused() -> None:
    with pytest.raises(InvalidSubscription):
        decide_sku(
            initial_sku_watch("SKU-C"),
            Subscribe(sku="SKU-C", customer_id="c-1", email="not-an-email", subscribed_at=NOW),
        )
