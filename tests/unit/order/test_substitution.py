"""Switching a line's waiting units to a substitute: the command's rules, the line arithmetic while
inventory answers, refunds (none for switched units), idempotency and the history."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from backbone.contracts.events import (
    OrderLineSubstituted,
    RefundRequested,
    StockReleased,
    default_substitution_id,
)
from services.order.domain import (
    LineNotFound,
    NotASubstitute,
    NothingToCancel,
    OrderConflict,
    OrderNotFound,
    SubstituteBackorderedUnits,
    SubstitutionConflict,
    invariant_violations,
    order_status,
    rebuild,
    shippable_now,
)
from services.order.history import summarize
from tests.unit.order.builders import Order, fill, placed, released, reserved, short

AT = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
LISTED = ("SHOE-B", "SHOE-C")


def switch(
    sku: str = "SHOE-B",
    line_id: str = "1",
    substitution_id: str | None = None,
    substitutes: tuple[str, ...] = LISTED,
    unit_price: Decimal | None = None,
) -> SubstituteBackorderedUnits:
    return SubstituteBackorderedUnits(
        "o-1",
        line_id,
        sku,
        AT,
        substitutes=substitutes,
        substitution_id=substitution_id,
        unit_price=unit_price,
    )


def backordered_order() -> Order:
    """Line 1: 5 of SHOE-A at 20.00, 2 reserved and 3 waiting; line 2 reserved in full."""
    return Order().apply_all(
        [
            placed(("1", "SHOE-A", 5, "20.00"), ("2", "SOCK", 1, "3.00")),
            reserved("1", "SHOE-A", 2),
            short("1", "SHOE-A", demanded=5, available=2),
            reserved("2", "SOCK", 1),
        ]
    )


def substitution_release(line_id: str, sku: str, *, dropped: int = 0, reserved: int = 0) -> StockReleased:
    return StockReleased(
        order_id="o-1",
        line_id=line_id,
        sku=sku,
        released_reserved=reserved,
        dropped_backordered=dropped,
        substitution_id=default_substitution_id("1", "SHOE-B"),
    )


def test_a_switch_gives_up_the_waiting_units_and_adds_a_line_of_the_substitute() -> None:
    order = backordered_order()
    [event] = [e for e in order.apply(switch()) if isinstance(e, OrderLineSubstituted)]
    assert event.substitution_id == default_substitution_id("1", "SHOE-B")
    assert (event.replaced.line_id, event.replaced.sku, event.replaced.quantity) == ("1", "SHOE-A", 3)
    assert (event.line.line_id, event.line.sku, event.line.quantity) == ("1-s1", "SHOE-B", 3)
    assert event.line.unit_price == Decimal("20.00")  # the price the customer paid
    placement = order.state.placement
    assert placement is not None
    assert (event.tier, event.urgent, event.placed_at) == ("standard", False, placement.placed_at)
    old, new = order.state.lines["1"], order.state.lines["1-s1"]
    assert old.pending_cancel_waiting == 3 and old.waiting_not_pending == 0
    assert (new.ordered, new.substitute_for, new.waiting, new.decided) == (3, "1", 3, False)
    # Not "accepted" again: the new line's units still wait, they only changed SKU.
    assert order_status(order.state) == "partially_backordered"
    assert shippable_now(order.state) == {"1": 2, "2": 1}


def test_inventory_answers_complete_the_switch_without_a_refund() -> None:
    order = backordered_order()
    order.apply(switch())
    order.apply(substitution_release("1", "SHOE-A", dropped=3))
    order.apply(reserved("1-s1", "SHOE-B", 3))
    old, new = order.state.lines["1"], order.state.lines["1-s1"]
    assert (old.waiting, old.cancelled, old.substituted, old.cancellation_pending) == (0, 3, 3, 0)
    assert (new.decided, new.waiting, new.to_ship) == (True, 0, 3)
    assert order.of_type(RefundRequested) == []
    assert order_status(order.state) == "ready_to_ship"
    assert shippable_now(order.state) == {"1": 2, "1-s1": 3, "2": 1}
    assert invariant_violations(order.state) == []
    # The stream alone rebuilds it (the new line included).
    assert rebuild("o-1", order.stream) == order.state


def test_a_substitute_that_ran_out_backorders_and_is_still_cancellable_with_a_refund() -> None:
    order = backordered_order()
    order.apply(switch())
    order.apply(substitution_release("1", "SHOE-A", dropped=3))
    order.apply(short("1-s1", "SHOE-B", demanded=3, available=1))
    assert order.state.lines["1-s1"].waiting == 2
    assert order_status(order.state) == "partially_backordered"
    # A later, real cancellation of the substitute's waiting units is refunded at the new line's price.
    order.apply(released("1-s1", "SHOE-B", dropped=2))
    [refund] = order.of_type(RefundRequested)
    assert (refund.line_id, refund.quantity, refund.amount) == ("1-s1", 2, Decimal("40.00"))


def test_a_fill_that_won_the_race_ships_on_the_old_line_and_the_new_one_gives_the_rest_back() -> None:
    order = backordered_order()
    order.apply(switch())
    order.apply(fill("1", "SHOE-A", 1, remaining=2))  # before inventory saw the switch
    order.apply(substitution_release("1", "SHOE-A", dropped=2))
    order.apply(reserved("1-s1", "SHOE-B", 3))
    order.apply(substitution_release("1-s1", "SHOE-B", reserved=1))  # 3 switched, 2 given up: 1 back
    old, new = order.state.lines["1"], order.state.lines["1-s1"]
    assert (old.to_ship, old.waiting, old.cancellation_pending) == (3, 0, 0)
    assert (new.to_ship, new.substituted, new.closed) == (2, 1, False)
    assert order.of_type(RefundRequested) == []
    assert invariant_violations(order.state) == []


def test_the_same_switch_again_decides_nothing() -> None:
    order = backordered_order()
    first = order.apply(switch())
    assert order.apply(switch()) == []
    [event] = [e for e in first if isinstance(e, OrderLineSubstituted)]
    assert order.apply(switch(substitution_id=event.substitution_id)) == []  # the default, named
    assert list(order.state.substitutions) == [default_substitution_id("1", "SHOE-B")]
    assert len(order.state.lines) == 3


def test_a_repeated_id_is_recognised_and_an_id_of_another_switch_is_a_conflict() -> None:
    order = backordered_order()
    order.apply(switch(substitution_id="s-1"))
    assert order.apply(switch(substitution_id="s-1")) == []
    with pytest.raises(SubstitutionConflict, match="s-1"):
        order.apply(switch(sku="SHOE-C", substitution_id="s-1"))
    assert list(order.state.substitutions) == ["s-1"]


@pytest.mark.parametrize(
    ("command", "error", "message"),
    [
        (switch(sku="SHOE-A"), NotASubstitute, "is SHOE-A already"),
        (switch(sku="BOOT-Z"), NotASubstitute, "BOOT-Z is not a substitute of SHOE-A"),
        (switch(substitutes=()), NotASubstitute, "listed: none"),
        (switch(line_id="2", sku="SHOE-B", substitutes=("SHOE-B",)), NothingToCancel, "no units waiting"),
        (switch(line_id="9"), LineNotFound, "no line 9"),
    ],
)
def test_refusals(command: SubstituteBackorderedUnits, error: type[Exception], message: str) -> None:
    order = backordered_order()
    with pytest.raises(error, match=message):
        order.apply(command)
    assert order.state.substitutions == {}


def test_units_already_being_switched_or_cancelled_cannot_be_switched_again() -> None:
    order = backordered_order()
    order.apply(switch())
    with pytest.raises(NothingToCancel, match="already being cancelled or switched"):
        order.apply(switch(sku="SHOE-C"))


def test_an_unknown_order_is_not_found() -> None:
    with pytest.raises(OrderNotFound):
        Order().apply(switch())


def test_the_new_line_id_is_free_and_fits_an_identifier() -> None:
    long_id = "L" * 128
    order = Order().apply_all(
        [
            placed((long_id, "SHOE-A", 2, "5.00"), ("x-s1", "SOCK", 1, "1.00")),
            short(long_id, "SHOE-A", demanded=2, available=0),
        ]
    )
    [event] = order.apply(switch(line_id=long_id))
    assert isinstance(event, OrderLineSubstituted)
    assert len(event.line.line_id) == 128 and event.line.line_id.endswith("-s1")
    taken = Order().apply_all(
        [placed(("x", "SHOE-A", 2, "5.00"), ("x-s1", "SOCK", 1, "1.00")), short("x", "SHOE-A", 2, 0)]
    )
    [other] = taken.apply(switch(line_id="x"))
    assert isinstance(other, OrderLineSubstituted) and other.line.line_id == "x-s2"


def test_an_order_at_the_most_lines_takes_no_substitute_line() -> None:
    lines = [(str(n), f"SKU-{n}", 1, "1.00") for n in range(500)]
    order = Order().apply_all([placed(*lines), short("0", "SKU-0", demanded=1, available=0)])
    with pytest.raises(OrderConflict, match="500 lines"):
        order.apply(switch(line_id="0", substitutes=("SHOE-B",)))


def test_a_price_set_by_the_request_is_the_new_lines() -> None:
    order = backordered_order()
    [event] = order.apply(switch(unit_price=Decimal("18.50")))
    assert isinstance(event, OrderLineSubstituted) and event.line.unit_price == Decimal("18.50")


def test_the_history_says_what_was_switched() -> None:
    order = backordered_order()
    [event] = order.apply(switch())
    assert summarize(event).startswith("switched 3 units of SHOE-A to SHOE-B")
    [recorded] = order.apply(substitution_release("1", "SHOE-A", dropped=3))
    assert "switched: substitution" in summarize(recorded) and "not refunded" in summarize(recorded)
