"""One coherent story per order line, whatever order the topics' events arrive in.

Kafka keeps the order of one topic's events for one key, not across topics: the orders topic (placed,
cancellation requested, refund), the inventory topic (shortfall, fills, units released, units shipped),
procurement's ETAs and the warehouse's shipments interleave arbitrarily. Each scenario below is run in
every such interleaving, and a model of what the customer believes checks that no message contradicts an
earlier one and that, at the end, the customer believes the line's final state.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest

from backbone.contracts import Envelope
from backbone.contracts.events import BackorderEtaUpdated, LineQuantity, OrderCancelled
from services.notifier.events import (
    BackorderedContent,
    CancelledContent,
    EtaChangedContent,
    FulfilledContent,
    Notification,
    RefundedContent,
    RejectedContent,
    ShippedContent,
)
from tests.unit.notifier.builders import (
    OrderStream,
    cancelled,
    eta,
    fill,
    placed,
    refund,
    released,
    requested,
    shipment,
    short,
    stock_shipped,
)

APRIL_1, APRIL_15 = date(2026, 4, 1), date(2026, 4, 15)
ORDERED = 500  # line l1: 400 reserved at placement, 100 short


def interleavings(*topics: Sequence[Envelope[Any]]) -> Iterator[list[Envelope[Any]]]:
    """Every arrival order Kafka allows: each topic's events keep their order, topics interleave."""
    if not any(topics):
        yield []
        return
    for i, topic in enumerate(topics):
        if topic:
            rest = (*topics[:i], topic[1:], *topics[i + 1 :])
            for tail in interleavings(*rest):
                yield [topic[0], *tail]


def _promise(eta: date | None) -> str:
    return eta.isoformat() if eta else "none"


@dataclass
class Belief:
    """What the customer believes about line l1 after the messages so far; `told` raises on a message
    an earlier one contradicts."""

    waiting: int | None = None  # None: never told of a backorder
    promise: str | None = None
    cancelled: int = 0
    refunded: int = 0
    shipped: int = 0
    # A cancellation of every waiting unit was asked for (by the customer, the shop or the maximum
    # wait) and the notifier has seen the request: "still waiting" news would be untrue, and with a
    # whole-line cancellation so would "arrived and reserved for you".
    cancel_requested: bool = False
    whole_line_cancel_requested: bool = False
    kinds: list[str] = field(default_factory=list)

    def arrived(self, incoming: Envelope[Any]) -> None:
        if isinstance(incoming.payload, OrderCancelled):
            self.cancel_requested = True
            self.whole_line_cancel_requested |= not incoming.payload.only_waiting

    def told(self, message: Notification) -> None:
        content = message.content
        about_l1 = message.line_id == "l1" or (
            isinstance(content, ShippedContent) and any(line.line_id == "l1" for line in content.lines)
        )
        if not about_l1:
            return
        self.kinds.append(content.kind)
        match content:
            case BackorderedContent():
                assert self.waiting is None, "backordered twice"
                assert not self.cancel_requested, "backordered after the cancellation was asked for"
                assert self.cancelled == 0, "backordered after the line was cancelled"
                assert content.backordered + self.shipped <= ORDERED
                self.waiting, self.promise = content.backordered, _promise(content.eta)
            case EtaChangedContent():
                assert self.waiting, "an ETA for units the customer knows no longer wait"
                assert not self.cancel_requested, "a new ETA after the cancellation was asked for"
                assert content.waiting == self.waiting
                assert _promise(content.eta) != self.promise
                self.promise = _promise(content.eta)
            case FulfilledContent():
                assert self.waiting, "a fill of units the customer knows no longer wait"
                assert not self.whole_line_cancel_requested, "arrived for you, after asking to cancel"
                assert content.still_waiting <= self.waiting - content.filled
                self.waiting = content.still_waiting
            case CancelledContent():
                (line,) = content.lines
                self.cancelled += line.quantity
                assert self.cancelled + self.shipped <= ORDERED, "cancelled units that shipped"
                self.waiting = None if self.waiting is None else max(self.waiting - line.quantity, 0)
            case RefundedContent():
                self.refunded += content.quantity
                assert self.refunded <= self.cancelled, "a refund of units not cancelled"
            case ShippedContent():
                (line,) = [line for line in content.lines if line.line_id == "l1"]
                self.shipped += line.quantity
                assert self.cancelled + self.shipped <= ORDERED, "shipped units that were cancelled"
                if self.waiting is not None:  # shipped beyond what was in stock: the rest arrived
                    self.waiting = min(self.waiting, ORDERED - self.cancelled - self.shipped)
            case RejectedContent():
                raise AssertionError("no line of these scenarios is rejected")


@dataclass(frozen=True)
class Final:
    waiting: int = 0
    cancelled: int = 0
    refunded: int = 0
    shipped: int = 0
    promise: str | None = None  # when units still wait


def _scenarios() -> dict[str, tuple[list[list[Envelope[Any]]], Final]]:
    """Per scenario: the events of each topic in their order (orders, inventory, procurement,
    fulfilment), and the line's final state."""
    etas = [eta(APRIL_1), eta(APRIL_15)]
    max_wait = {"reason": "max_wait_exceeded"}
    return {
        # The maximum wait and a fill race; inventory took the fill first: it is kept and ships.
        "max wait loses to the fill": (
            [
                [placed(), cancelled(100, only_waiting=True, **max_wait)],
                [short(), fill(100, remaining=0), stock_shipped("s-1", 500)],
                etas,
                [shipment("s-1", l1=500)],
            ],
            Final(shipped=500),
        ),
        # ... inventory took the cancellation first: the waiting units are cancelled and refunded.
        "max wait wins over the fill": (
            [
                [placed(), cancelled(100, only_waiting=True, **max_wait), refund(100, **max_wait)],
                [short(), released(dropped=100, **max_wait), stock_shipped("s-1", 400)],
                etas,
                [shipment("s-1", l1=400)],
            ],
            Final(cancelled=100, refunded=100, shipped=400),
        ),
        # Part of the backorder arrived, the rest ran out of time.
        "partial fill, then the max wait": (
            [
                [placed(), cancelled(100, only_waiting=True, **max_wait), refund(70, **max_wait)],
                [
                    short(),
                    fill(30, remaining=70),
                    released(dropped=70, **max_wait),
                    stock_shipped("s-1", 430),
                ],
                [eta(APRIL_1)],
                [shipment("s-1", l1=430)],
            ],
            Final(cancelled=70, refunded=70, shipped=430),
        ),
        # The whole order is cancelled; inventory releases the reservation and drops the backorder.
        "whole order cancelled": (
            [
                [placed(), cancelled(500), refund(500)],
                [short(), released(reserved=400, dropped=100)],
                etas,
                [],
            ],
            Final(cancelled=500, refunded=500),
        ),
        # ... after the backorder was filled: the filled units are released too.
        "whole order cancelled after a fill": (
            [
                [placed(), cancelled(500), refund(500)],
                [short(), fill(100, remaining=0), released(reserved=500)],
                etas,
                [],
            ],
            Final(cancelled=500, refunded=500),
        ),
        # Still waiting: what is in stock ships, part of the backorder arrives, the ETA moves.
        "partial shipment while the rest waits": (
            [
                [placed()],
                [short(), fill(30, remaining=70), stock_shipped("s-1", 400)],
                etas,
                [shipment("s-1", l1=400)],
            ],
            Final(waiting=70, shipped=400, promise=_promise(APRIL_15)),
        ),
        # Two shipments: what was in stock, then the backorder once it arrived.
        "shipped in two parts": (
            [
                [placed()],
                [short(), stock_shipped("s-1", 400), fill(100, remaining=0), stock_shipped("s-2", 100)],
                etas,
                [shipment("s-1", l1=400), shipment("s-2", l1=100)],
            ],
            Final(shipped=500),
        ),
        # The warehouse ships what is reserved while the customer cancels the whole order; the topics
        # are not ordered with each other. Inventory shipped first: the shipped units stay shipped, the
        # cancellation takes only the waiting ones.
        "ship vs cancel: inventory ships first": (
            [
                [placed(), cancelled(500), refund(100)],
                [short(), stock_shipped("s-1", 400), released(dropped=100)],
                etas,
                [shipment("s-1", l1=400)],
            ],
            Final(cancelled=100, refunded=100, shipped=400),
        ),
        # ... inventory released the units first and refused the shipment (dead letter, no StockShipped):
        # the customer never hears "shipped", only the cancellation and the refund of every unit.
        "ship vs cancel: inventory releases first": (
            [
                [placed(), cancelled(500), refund(500)],
                [short(), released(reserved=400, dropped=100)],
                etas,
                [shipment("s-1", l1=400)],
            ],
            Final(cancelled=500, refunded=500),
        ),
    }


SCENARIOS = _scenarios()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_arrival_order_tells_one_coherent_story(name: str) -> None:
    topics, final = SCENARIOS[name]
    count = 0
    for arrival in interleavings(*topics):
        count += 1
        order, belief = OrderStream(), Belief()
        for incoming in arrival:
            belief.arrived(incoming)
            for message in order.apply(incoming):
                try:
                    belief.told(message)
                except AssertionError as e:
                    kinds = [e.event_type for e in arrival]
                    raise AssertionError(f"{e} (arrival {kinds}, told {belief.kinds})") from None
        arrived = [e.event_type for e in arrival]
        # The customer ends up believing the line's final state.
        assert (belief.cancelled, belief.refunded, belief.shipped) == (
            final.cancelled,
            final.refunded,
            final.shipped,
        ), (arrived, belief.kinds)
        assert (belief.waiting or 0) == final.waiting, (arrived, belief.kinds)
        if final.waiting:
            assert belief.promise == final.promise, (arrived, belief.kinds)
        # Every fact again (a redelivery the inbox did not catch, a producer's retry) changes nothing.
        # ETAs are the exception: an older one again is a change back, so only the latest is repeated.
        etas = [e for e in arrival if isinstance(e.payload, BackorderEtaUpdated)]
        repeated = [e for e in arrival if not isinstance(e.payload, BackorderEtaUpdated)] + etas[-1:]
        assert order.apply_all(*repeated) == [], arrived
    assert count > 1


def test_the_interleavings_keep_each_topics_order() -> None:
    merged = list(interleavings([1, 2], [3], []))  # type: ignore[list-item]
    assert merged == [[1, 2, 3], [1, 3, 2], [3, 1, 2]]


# --- single rules -------------------------------------------------------------------------------------------


def test_a_cancellation_before_the_shortfall_means_no_backordered_message() -> None:
    order = OrderStream()
    # The orders topic ran ahead: the notifier sees the cancellation before inventory's shortfall.
    assert order.apply_all(placed(), cancelled(500), short(), eta(APRIL_1)) == []
    (told,) = order.apply(released(reserved=400, dropped=100))
    assert told.content == CancelledContent(
        reason="customer_request", lines=[LineQuantity(line_id="l1", sku="SKU-A", quantity=500)]
    )
    assert order.apply(eta(APRIL_15)) == []


def test_an_eta_change_after_the_line_stopped_waiting_is_not_told() -> None:
    order = OrderStream()
    order.apply_all(placed(), short(), eta(APRIL_1))
    (told,) = order.apply(fill(100, remaining=0))
    assert told.kind == "fulfilled"
    assert order.apply(eta(APRIL_15)) == []


def test_a_fill_kept_against_the_maximum_wait_is_told_and_nothing_is_cancelled() -> None:
    order = OrderStream()
    order.apply_all(placed(), short(), eta(APRIL_1))
    assert order.apply(cancelled(100, reason="max_wait_exceeded", only_waiting=True)) == []
    (told,) = order.apply(fill(100, remaining=0))  # inventory filled the line before the cancellation
    assert told.content == FulfilledContent(sku="SKU-A", filled=100, still_waiting=0, order_ready=True)


def test_a_fill_that_a_whole_line_cancellation_released_is_not_told() -> None:
    order = OrderStream()
    order.apply_all(placed(), short(), eta(APRIL_1), cancelled(500))
    assert order.apply(fill(100, remaining=0)) == []  # the cancellation may release these units
    (told,) = order.apply(released(reserved=500))
    assert told.kind == "cancelled"
    assert order.apply(refund(500)) and order.apply(eta(APRIL_15)) == []


def test_a_cancellation_that_found_nothing_to_cancel_tells_nothing() -> None:
    order = OrderStream()
    order.apply_all(placed(), short(), eta(APRIL_1))
    assert order.apply(released()) == []  # 0 released, 0 dropped


def test_a_shipment_is_told_once_with_its_tracking_even_before_the_order() -> None:
    order = OrderStream()
    dispatched = shipment("s-1", l1=400, l2=2)
    shipped = [stock_shipped("s-1", 400), stock_shipped("s-1", 2, line_id="l2")]
    assert order.apply_all(dispatched, *shipped) == []  # nobody to write to yet
    (told,) = order.apply(placed())
    assert (told.kind, told.line_id) == ("shipped", None)
    assert told.content == ShippedContent(
        shipment_id="s-1",
        lines=[
            LineQuantity(line_id="l1", sku="SKU-A", quantity=400),
            LineQuantity(line_id="l2", sku="SKU-B", quantity=2),
        ],
        carrier="DHL",
        tracking_number="JD0001",
        tracking_url="https://track.example/JD0001",
        shipped_at=dispatched.payload.shipped_at,
    )
    assert order.state.shipments_pending == {}
    # Redelivered, or re-sent by the warehouse under the same shipment id: nothing new.
    assert order.apply_all(dispatched, *shipped) == []
    assert order.apply(shipment("s-1", l1=400, l2=2)) == []
    assert order.state.lines["l1"].shipped == 400
    assert order.apply(shipment("s-2", l1=100, tracking=False)) == []
    (second,) = order.apply(stock_shipped("s-2", 100))
    assert second.notification_id != told.notification_id
    assert second.content.carrier is None  # type: ignore[union-attr]


ARRIVALS = {
    "warehouse first": ["dispatched", "l1", "l2"],
    "inventory first": ["l1", "l2", "dispatched"],
    "in between": ["l1", "dispatched", "l2"],
}


@pytest.mark.parametrize("arrival", list(ARRIVALS))
def test_a_shipment_is_mailed_once_inventory_shipped_every_line_in_either_order(arrival: str) -> None:
    order = OrderStream()
    order.apply(placed())
    events = {
        "dispatched": shipment("s-1", l1=400, l2=2),
        "l1": stock_shipped("s-1", 400),
        "l2": stock_shipped("s-1", 2, line_id="l2"),
    }
    *first, last = ARRIVALS[arrival]
    assert order.apply_all(*(events[name] for name in first)) == []
    (told,) = order.apply(events[last])
    assert told.kind == "shipped"
    assert told.content.lines == [  # type: ignore[union-attr]
        LineQuantity(line_id="l1", sku="SKU-A", quantity=400),
        LineQuantity(line_id="l2", sku="SKU-B", quantity=2),
    ]
    assert told.content.tracking_number == "JD0001"  # type: ignore[union-attr]
    assert order.apply_all(*events.values()) == []
    assert (order.state.lines["l1"].shipped, order.state.lines["l2"].shipped) == (400, 2)
    # The id is the shipment's, whatever the arrival order.
    other = OrderStream()
    assert other.apply_all(placed(), *events.values())[0].notification_id == told.notification_id


def test_the_mail_gives_the_units_inventory_shipped() -> None:
    order = OrderStream()
    order.apply_all(placed(), shipment("s-1", l1=400))
    (told,) = order.apply(stock_shipped("s-1", 399))
    assert told.content.lines == [LineQuantity(line_id="l1", sku="SKU-A", quantity=399)]  # type: ignore[union-attr]


def test_a_shipment_inventory_refused_is_never_mailed_and_the_cancellation_is_told() -> None:
    order = OrderStream()
    (backordered,) = order.apply_all(placed(), short(), eta(APRIL_1))
    assert backordered.kind == "backordered"
    # The warehouse announces a parcel, but inventory released the units first and refused it.
    assert order.apply_all(shipment("s-1", l1=400), cancelled(500)) == []
    (told,) = order.apply(released(reserved=400, dropped=100))
    assert told.content == CancelledContent(
        reason="customer_request", lines=[LineQuantity(line_id="l1", sku="SKU-A", quantity=500)]
    )
    (money_back,) = order.apply(refund(500))
    assert (money_back.kind, money_back.content.quantity) == ("refunded", 500)  # type: ignore[union-attr]
    assert order.apply_all(eta(APRIL_15), shipment("s-1", l1=400)) == []
    assert order.state.lines["l1"].shipped == 0
    assert [m.kind for m in requested(order.stream)] == ["backordered", "cancelled", "refunded"]


def test_shipped_units_whose_fill_is_not_seen_yet_end_the_waiting() -> None:
    """A safeguard: inventory's topic orders a line's fill before its StockShipped."""
    order = OrderStream()
    order.apply_all(placed(), short(), eta(APRIL_1), shipment("s-1", l1=500))
    (told,) = order.apply(stock_shipped("s-1", 500))
    assert told.kind == "shipped"
    assert order.apply_all(eta(APRIL_15), fill(100, remaining=0)) == []


def test_a_shipment_announced_before_its_fill_is_mailed_after_the_fill() -> None:
    order = OrderStream()
    order.apply_all(placed(), short(), eta(APRIL_1))
    assert order.apply(shipment("s-1", l1=500)) == []  # the warehouse was faster than the inventory topic
    (filled,) = order.apply(fill(100, remaining=0))
    assert filled.content == FulfilledContent(sku="SKU-A", filled=100, still_waiting=0, order_ready=True)
    (told,) = order.apply(stock_shipped("s-1", 500))
    assert told.kind == "shipped"
    assert order.apply(eta(APRIL_15)) == []


def test_no_supplier_promises_no_date() -> None:
    order = OrderStream()
    (told,) = order.apply_all(placed(), short(), eta(None, basis="no_supplier"))
    assert isinstance(told.content, BackorderedContent)
    assert (told.content.eta, told.content.basis) == (None, "no_supplier")
    (dated,) = order.apply(eta(APRIL_1, basis="purchase_order"))
    assert dated.content == EtaChangedContent(
        sku="SKU-A", waiting=100, previous_eta=None, eta=APRIL_1, basis="purchase_order"
    )


def test_a_purchase_order_being_placed_then_no_supplier_is_a_change() -> None:
    order = OrderStream()
    (first,) = order.apply_all(placed(), short(), eta(None, basis="awaiting_purchase_order"))
    assert first.content.basis == "awaiting_purchase_order"  # type: ignore[union-attr]
    (changed,) = order.apply(eta(None, basis="no_supplier"))
    assert (changed.kind, changed.content.basis) == ("eta_changed", "no_supplier")  # type: ignore[union-attr]
    assert order.apply(eta(None, basis="no_supplier")) == []


def test_an_unknown_sku_rejection_says_so() -> None:
    reason = "unknown SKU: never stocked and no supplier is known"
    order = OrderStream()
    (told,) = order.apply_all(placed(), short(available=0, disposition="rejected", reason=reason))
    assert told.content == RejectedContent(
        sku="SKU-A", ordered=500, available=0, rejected=500, reason=reason, unknown_sku=True
    )
