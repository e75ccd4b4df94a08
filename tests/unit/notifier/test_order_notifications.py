"""Which message each change of an order deserves, and that it is requested once."""

from datetime import date, timedelta

from backbone.contracts import new_envelope
from backbone.contracts.events import LineQuantity
from services.notifier.domain import (
    AnnounceOverdueBackorders,
    backorder_announcement_due_at,
    decide_order,
    due_backorder_announcements,
    rebuild_order,
)
from services.notifier.events import (
    NOTIFIER_REGISTRY,
    BackorderedContent,
    CancelledContent,
    EtaChangedContent,
    FulfilledContent,
    RefundedContent,
    RejectedContent,
)
from tests.unit.notifier.builders import (
    PLACED_AT,
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


def test_backordered_waits_for_the_first_eta_and_tells_everything_at_once() -> None:
    order = OrderStream()
    assert order.apply_all(placed(), short(available=400)) == []

    (message,) = order.apply(eta(APRIL_1))

    assert (message.kind, message.order_id, message.line_id) == ("backordered", "o-1", "l1")
    assert (message.customer_id, message.email, message.customer_name) == ("c-1", "ada@example.com", "Ada")
    assert message.content == BackorderedContent(
        sku="SKU-A",
        ordered=500,
        available=400,
        backordered=100,
        eta=APRIL_1,
        cancel_by=date(2026, 4, 1),  # placed 2 March + 30 days
        shipping_preference="ship_available",
        options=["wait", "cancel_backordered", "ship_available_now"],
    )


def test_eta_before_the_shortfall_still_gives_one_backordered_message() -> None:
    order = OrderStream()
    messages = order.apply_all(placed(), eta(APRIL_1), short())
    assert [(m.kind, m.content.eta) for m in messages] == [("backordered", APRIL_1)]  # type: ignore[union-attr]


def test_same_input_twice_gives_the_same_id_and_no_second_request() -> None:
    order = OrderStream()
    order.apply_all(placed(), short())
    first_eta = eta(APRIL_1)

    once = requested(decide_order(order.state, first_eta))
    twice = requested(decide_order(order.state, first_eta))
    assert [m.notification_id for m in once] == [m.notification_id for m in twice]

    order.apply(first_eta)
    assert decide_order(order.state, first_eta) == []  # redelivered
    assert order.apply(eta(APRIL_1)) == []  # the same ETA again, in a new message: nothing changed


def test_a_different_eta_gives_a_different_id() -> None:
    order = OrderStream()
    order.apply_all(placed(), short(), eta(APRIL_1))

    to_15 = requested(decide_order(order.state, eta(APRIL_15)))
    to_20 = requested(decide_order(order.state, eta(date(2026, 4, 20))))

    assert [m.kind for m in to_15 + to_20] == ["eta_changed", "eta_changed"]
    assert to_15[0].notification_id != to_20[0].notification_id
    assert to_15[0].content == EtaChangedContent(sku="SKU-A", waiting=100, previous_eta=APRIL_1, eta=APRIL_15)


def test_an_eta_that_comes_back_is_a_new_change() -> None:
    order = OrderStream()
    order.apply_all(placed(), short(), eta(APRIL_1))
    changes = order.apply_all(eta(APRIL_15), eta(APRIL_1))
    assert [m.content.eta for m in changes] == [APRIL_15, APRIL_1]  # type: ignore[union-attr]
    assert len({m.notification_id for m in changes}) == 2


def test_backordered_goes_out_without_a_date_after_the_grace_period() -> None:
    grace = timedelta(minutes=15)
    order = OrderStream()
    order.apply_all(placed(), short())
    short_at = PLACED_AT + timedelta(seconds=1)

    assert backorder_announcement_due_at(order.state, grace) == short_at + grace
    assert due_backorder_announcements(order.state, short_at + grace - timedelta(seconds=1), grace) is None
    command = due_backorder_announcements(order.state, short_at + grace, grace)
    assert command == AnnounceOverdueBackorders(order_id="o-1", now=short_at + grace, grace=grace)

    (message,) = order.apply(command)
    assert (message.kind, message.content.eta) == ("backordered", None)  # type: ignore[union-attr]
    assert order.apply(command) == []
    assert due_backorder_announcements(order.state, short_at + 2 * grace, grace) is None

    (later,) = order.apply(eta(APRIL_1))
    assert later.content == EtaChangedContent(sku="SKU-A", waiting=100, previous_eta=None, eta=APRIL_1)


def test_no_purchase_order_is_an_answer_and_sends_the_backordered_message() -> None:
    order = OrderStream()
    (message,) = order.apply_all(placed(), short(), eta(None))
    assert (message.kind, message.content.eta) == ("backordered", None)  # type: ignore[union-attr]


def test_messages_wait_for_the_order_when_inventory_overtakes_it() -> None:
    order = OrderStream()
    assert order.apply(short(available=0, disposition="rejected", reason="backorders denied")) == []

    (message,) = order.apply(placed())

    assert message.content == RejectedContent(
        sku="SKU-A", ordered=500, available=0, rejected=500, reason="backorders denied"
    )


def test_ship_available_now_is_offered_only_when_something_is_in_stock() -> None:
    nothing_in_stock = OrderStream()
    (message,) = nothing_in_stock.apply_all(placed(with_second_line=False), short(available=0), eta(APRIL_1))
    assert message.content.options == ["wait", "cancel_backordered"]  # type: ignore[union-attr]

    other_line_in_stock = OrderStream()  # l2 had no shortfall: it is reserved in full
    (message,) = other_line_in_stock.apply_all(placed(), short(available=0), eta(APRIL_1))
    assert message.content.options == ["wait", "cancel_backordered", "ship_available_now"]  # type: ignore[union-attr]


def test_fills_after_the_announcement_are_told_and_the_last_one_says_ready() -> None:
    order = OrderStream()
    order.apply_all(placed(), short(), eta(APRIL_1))

    (partial,) = order.apply(fill(30, remaining=70))
    (last,) = order.apply(fill(70, remaining=0))

    assert partial.content == FulfilledContent(sku="SKU-A", filled=30, still_waiting=70, order_ready=False)
    assert last.content == FulfilledContent(sku="SKU-A", filled=70, still_waiting=0, order_ready=True)
    assert partial.notification_id != last.notification_id
    assert order.apply(eta(APRIL_15)) == []  # nothing waits any more


def test_a_fill_before_the_customer_heard_of_the_backorder_is_silent() -> None:
    order = OrderStream()
    assert order.apply_all(placed(), short(), fill(100, remaining=0), eta(APRIL_1)) == []


def test_cancellation_is_told_from_inventorys_answer_and_the_refund_after_it() -> None:
    order = OrderStream()
    order.apply_all(placed(), short(), eta(APRIL_1))
    cancellation, answer, refund_request = cancelled(100), released(dropped=100), refund(100)

    assert order.apply(cancellation) == []  # a request: inventory says what it cancelled
    assert order.apply(refund_request) == []  # overtook StockReleased: it follows the cancellation
    told_cancelled, told_refunded = order.apply(answer)

    assert told_cancelled.content == CancelledContent(
        reason="customer_request", lines=[LineQuantity(line_id="l1", sku="SKU-A", quantity=100)]
    )
    assert told_cancelled.line_id == told_refunded.line_id == "l1"
    assert isinstance(told_refunded.content, RefundedContent)
    assert str(told_refunded.content.amount) == "1000.00"
    for again in (cancellation, answer, refund_request):
        assert order.apply(again) == []
    assert order.apply(eta(APRIL_15)) == []  # the backorder is gone


def test_a_restarted_notifier_requests_nothing_twice() -> None:
    """A crash after the effects committed but before the offset did: the message comes again to a
    notifier that rebuilt its state from its stream."""
    order = OrderStream()
    for each in [
        placed(),
        short(),
        eta(APRIL_1),
        fill(30, 70),
        eta(APRIL_15),
        cancelled(70),
        released(dropped=70),
        refund(70),
        stock_shipped(quantity=430),
        shipment(l1=430, l2=2),
        stock_shipped(quantity=2, line_id="l2"),
    ]:
        order.apply(each)
        stored = [NOTIFIER_REGISTRY.decode(new_envelope(e).to_json()).payload for e in order.stream]
        rebuilt = rebuild_order("o-1", stored)
        assert rebuilt == order.state
        assert decide_order(rebuilt, each) == []


def test_a_notifier_that_lost_its_state_decides_the_same_ids() -> None:
    history = [
        placed(),
        short(),
        eta(APRIL_1),
        fill(30, 70),
        eta(APRIL_15),
        cancelled(70),
        released(dropped=70),
        refund(70),
        stock_shipped(quantity=430),
        shipment(l1=430, l2=2),
        stock_shipped(quantity=2, line_id="l2"),
    ]
    first, second = OrderStream(), OrderStream()
    told = first.apply_all(*history)
    assert "shipped" in [m.kind for m in told]
    assert [m.notification_id for m in told] == [m.notification_id for m in second.apply_all(*history)]
