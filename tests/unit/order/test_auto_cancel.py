"""The maximum wait: overdue backordered units are cancelled and refunded exactly once."""

from datetime import timedelta
from decimal import Decimal

from backbone.contracts.events import OrderCancelled, RefundRequested
from services.order.domain import (
    CancelOverdueBackorders,
    auto_cancel_deadline,
    decide,
    due_for_auto_cancel,
    order_status,
)
from tests.unit.order.builders import PLACED_AT, Order, fill, placed, short

DEFAULT_DAYS = 14


def test_overdue_waiting_units_are_cancelled_exactly_once() -> None:
    order = Order().apply_all([placed(("l1", "SKU-A", 500, "10.00")), short("l1", "SKU-A", 500, 400)])
    order.apply(fill("l1", "SKU-A", 30, remaining=70))
    deadline = PLACED_AT + timedelta(days=DEFAULT_DAYS)

    assert due_for_auto_cancel(order.state, deadline - timedelta(seconds=1), DEFAULT_DAYS) is None
    command = due_for_auto_cancel(order.state, deadline, DEFAULT_DAYS)
    assert command == CancelOverdueBackorders(order_id="o-1", deadline=deadline, now=deadline)

    cancelled, refund = order.apply(command)

    assert isinstance(cancelled, OrderCancelled) and isinstance(refund, RefundRequested)
    assert (cancelled.reason, cancelled.lines[0].quantity) == ("max_wait_exceeded", 70)
    assert (refund.quantity, refund.amount, refund.reason) == (70, Decimal("700.00"), "max_wait_exceeded")
    assert order_status(order.state) == "ready_to_ship"

    assert decide(order.state, command) == []
    assert due_for_auto_cancel(order.state, deadline + timedelta(days=1), DEFAULT_DAYS) is None


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
