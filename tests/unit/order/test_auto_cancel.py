"""The maximum wait: overdue backordered units are cancelled once (only_waiting) and refunded once
inventory confirms them; a fill that wins the race is kept."""

from datetime import timedelta
from decimal import Decimal

from backbone.contracts.events import OrderCancelled, RefundRequested
from services.order.domain import (
    CancelOverdueBackorders,
    auto_cancel_deadline,
    decide,
    due_for_auto_cancel,
    invariant_violations,
    order_status,
    shippable_now,
)
from tests.unit.order.builders import PLACED_AT, Order, fill, placed, released, short

DEFAULT_DAYS = 14


def test_overdue_waiting_units_are_cancelled_exactly_once() -> None:
    order = Order().apply_all([placed(("l1", "SKU-A", 500, "10.00")), short("l1", "SKU-A", 500, 400)])
    order.apply(fill("l1", "SKU-A", 30, remaining=70))
    deadline = PLACED_AT + timedelta(days=DEFAULT_DAYS)

    assert due_for_auto_cancel(order.state, deadline - timedelta(seconds=1), DEFAULT_DAYS) is None
    command = due_for_auto_cancel(order.state, deadline, DEFAULT_DAYS)
    assert command == CancelOverdueBackorders(order_id="o-1", deadline=deadline, now=deadline)

    [cancelled] = order.apply(command)

    assert isinstance(cancelled, OrderCancelled)
    assert (cancelled.reason, cancelled.lines[0].quantity, cancelled.only_waiting) == (
        "max_wait_exceeded",
        70,
        True,
    )
    assert decide(order.state, command) == []  # pending: the next scheduler round decides nothing

    [_, refund] = order.apply(released("l1", "SKU-A", dropped=70, reason="max_wait_exceeded"))

    assert isinstance(refund, RefundRequested)
    assert (refund.quantity, refund.amount, refund.reason) == (70, Decimal("700.00"), "max_wait_exceeded")
    assert order_status(order.state) == "ready_to_ship"
    assert decide(order.state, command) == []
    assert due_for_auto_cancel(order.state, deadline + timedelta(days=1), DEFAULT_DAYS) is None


def test_a_fill_winning_the_race_with_the_maximum_wait_is_kept_and_not_refunded() -> None:
    order = Order().apply_all([placed(("l1", "SKU-A", 10, "2.00")), short("l1", "SKU-A", 10, 0)])
    deadline = PLACED_AT + timedelta(days=DEFAULT_DAYS)
    command = due_for_auto_cancel(order.state, deadline, DEFAULT_DAYS)
    assert command is not None
    order.apply(command)  # asks for the 10 waiting units

    order.apply(fill("l1", "SKU-A", 6, remaining=4))  # inventory filled 6 before it saw the request
    order.apply(released("l1", "SKU-A", dropped=4, reason="max_wait_exceeded"))

    [refund] = order.of_type(RefundRequested)
    assert (refund.quantity, refund.amount) == (4, Decimal("8.00"))
    line = order.state.lines["l1"]
    assert (line.allocated, line.waiting, line.cancelled, line.cancellation_pending) == (6, 0, 4, 0)
    assert order_status(order.state) == "ready_to_ship"
    assert shippable_now(order.state) == {"l1": 6}
    assert decide(order.state, command) == []
    assert invariant_violations(order.state) == []


def test_the_orders_own_maximum_wait_overrides_the_shop_default() -> None:
    order = Order().apply_all(
        [placed(("l1", "SKU-A", 5, "1.00"), max_wait_days=3), short("l1", "SKU-A", 5, 0)]
    )
    assert auto_cancel_deadline(order.state, DEFAULT_DAYS) == PLACED_AT + timedelta(days=3)


def test_nothing_waiting_has_no_deadline() -> None:
    order = Order().apply_all([placed(("l1", "SKU-A", 5, "1.00")), short("l1", "SKU-A", 5, 0)])
    order.apply(fill("l1", "SKU-A", 5, remaining=0))
    assert auto_cancel_deadline(order.state, DEFAULT_DAYS) is None
    assert due_for_auto_cancel(order.state, PLACED_AT + timedelta(days=365), DEFAULT_DAYS) is None


def test_a_command_decided_before_its_deadline_does_nothing() -> None:
    order = Order().apply_all([placed(("l1", "SKU-A", 5, "1.00")), short("l1", "SKU-A", 5, 0)])
    early = CancelOverdueBackorders(order_id="o-1", deadline=PLACED_AT + timedelta(days=1), now=PLACED_AT)
    assert decide(order.state, early) == []
