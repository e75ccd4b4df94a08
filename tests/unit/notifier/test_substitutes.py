"""The backordered message offers substitutes in stock (decided with the caller's catalogue, recorded in
the message), and a switch's units are never told as cancelled."""

from datetime import date, timedelta
from typing import Any

from backbone.contracts import Envelope
from backbone.contracts.events import StockReleased, default_substitution_id
from services.notifier.domain import (
    NO_SUBSTITUTES,
    AnnounceOverdueBackorders,
    OrderFacts,
    SubstituteCatalogue,
    execute_order,
    initial_order_facts,
    rebuild_order,
    skus_awaiting_announcement,
)
from services.notifier.events import BackorderedContent, CancelledContent, Notification
from services.notifier.handlers import skus_named
from services.notifier.messages import email_for, webhook_body_for
from tests.unit.notifier.builders import PLACED_AT, envelope, eta, placed, requested, short

API = "https://orders.example/api/"
# SKU-A's substitutes, preferred first, with the units each has available.
CATALOGUE = SubstituteCatalogue(
    order_api_url=API,
    substitutes={
        "SKU-A": [("SKU-A2", 50), ("SKU-A3", 100), ("SKU-A4", 500), ("SKU-A5", 100), ("SKU-A6", 1000)]
    },
)


class Stream:
    def __init__(self, catalogue: SubstituteCatalogue = NO_SUBSTITUTES) -> None:
        self.state: OrderFacts = initial_order_facts("o-1")
        self.log: list[Any] = []
        self.catalogue = catalogue

    def apply(self, incoming: Envelope[Any] | AnnounceOverdueBackorders) -> list[Notification]:
        self.state, events = execute_order(self.state, incoming, self.catalogue)
        self.log += events
        return requested(events)


def backordered(stream: Stream) -> BackorderedContent:
    # 100 of l1's 500 units wait (400 available at placement); procurement promises a date.
    [message] = [n for e in (placed(), short(400), eta(date(2026, 4, 1))) for n in stream.apply(e)]
    assert isinstance(message.content, BackorderedContent)
    return message.content


def test_the_first_three_substitutes_with_enough_units_are_offered_in_preference_order() -> None:
    content = backordered(Stream(CATALOGUE))
    # SKU-A2 has 50 available, fewer than the 100 waiting: not offered.
    assert [o.sku for o in content.substitutes] == ["SKU-A3", "SKU-A4", "SKU-A5"]
    assert content.options[-1] == "switch_to_substitute"
    offer = content.substitutes[0]
    assert offer.endpoint == "https://orders.example/api/orders/o-1/lines/l1/substitution"
    assert offer.substitution_id == default_substitution_id("l1", "SKU-A3")
    assert offer.available == 100


def test_none_in_stock_says_nothing_of_substitutes() -> None:
    scarce = SubstituteCatalogue(order_api_url=API, substitutes={"SKU-A": [("SKU-A2", 99)]})
    for catalogue in (scarce, NO_SUBSTITUTES):
        content = backordered(Stream(catalogue))
        assert content.substitutes == []
        assert "switch_to_substitute" not in content.options
        body = email_for(_notification(content)).body
        assert "alternative" not in body and "substitution" not in body


def test_the_offer_is_recorded_so_a_replay_tells_the_same() -> None:
    stream = Stream(CATALOGUE)
    content = backordered(stream)
    rebuilt = rebuild_order("o-1", stream.log)
    assert rebuilt == stream.state
    # Deciding again later, with other stock, requests nothing new: the message was decided once.
    _, again = execute_order(rebuilt, eta(date(2026, 4, 1)), SubstituteCatalogue(order_api_url=API))
    assert requested(again) == []
    assert content.substitutes  # what the customer got stays in the log


def test_the_email_and_the_webhook_give_the_endpoint_and_the_body() -> None:
    content = backordered(Stream(CATALOGUE))
    notification = _notification(content)
    body = email_for(notification).body
    assert "Switch to an alternative in stock now" in body
    expected = '"sku": "SKU-A3", "substitution_id": "' + default_substitution_id("l1", "SKU-A3") + '"'
    assert f"SKU-A3: POST {API}orders/o-1/lines/l1/substitution with {{{expected}}}" in body
    assert '"endpoint":"https://orders.example/api/orders/o-1/lines/l1/substitution"' in webhook_body_for(
        notification
    )


def test_the_grace_period_announcement_offers_substitutes_too() -> None:
    stream = Stream(CATALOGUE)
    assert [*stream.apply(placed()), *stream.apply(short(400))] == []  # waits for an ETA
    assert skus_awaiting_announcement(stream.state) == ["SKU-A"]
    [message] = stream.apply(
        AnnounceOverdueBackorders(order_id="o-1", now=PLACED_AT.replace(year=2027), grace=timedelta(0))
    )
    assert isinstance(message.content, BackorderedContent)
    assert [o.sku for o in message.content.substitutes] == ["SKU-A3", "SKU-A4", "SKU-A5"]
    assert skus_awaiting_announcement(stream.state) == []


def test_units_switched_to_a_substitute_are_not_told_as_cancelled() -> None:
    stream = Stream(CATALOGUE)
    backordered(stream)
    switched = StockReleased(
        order_id="o-1",
        line_id="l1",
        sku="SKU-A",
        released_reserved=0,
        dropped_backordered=100,
        substitution_id="sub-1",
    )
    assert stream.apply(envelope(switched)) == []
    line = stream.state.lines["l1"]
    assert (line.waiting, line.cancelled, line.switched) == (0, 0, 100)
    # A real cancellation afterwards is still told, for its own units only.
    cancelled = StockReleased(
        order_id="o-1", line_id="l1", sku="SKU-A", released_reserved=30, dropped_backordered=0
    )
    [message] = stream.apply(envelope(cancelled))
    assert isinstance(message.content, CancelledContent)
    assert message.content.lines[0].quantity == 30
    assert rebuild_order("o-1", stream.log) == stream.state


def test_the_handler_reads_the_skus_an_order_event_names() -> None:
    assert skus_named(placed().payload) == ["SKU-A", "SKU-B"]
    assert skus_named(short().payload) == ["SKU-A"]


def _notification(content: BackorderedContent) -> Notification:
    return Notification(
        notification_id="n-1",
        customer_id="c-1",
        email="ada@example.com",
        customer_name="Ada",
        shop_id="default",
        order_id="o-1",
        line_id="l1",
        content=content,
    )
