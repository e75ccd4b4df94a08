from backbone.contracts.events import BackorderFulfilled, BackorderQueueChanged, StockReleased
from tests.unit.inventory.harness import SKU, SkuHarness, of_type, published_queue


def test_a_cancellation_takes_the_backordered_units_first_then_the_reserved_ones() -> None:
    sku = SkuHarness()
    sku.adjust(+400)
    sku.reserve("A", 500)  # 400 reserved, 100 wait

    events = sku.cancel("A", 150)

    assert of_type(events, StockReleased) == [
        StockReleased(
            order_id="A",
            line_id="1",
            sku=SKU,
            released_reserved=50,
            dropped_backordered=100,
            reason="customer_request",  # the cancellation's
        )
    ]
    assert [(e.change, e.order_id, e.position) for e in of_type(events, BackorderQueueChanged)] == [
        ("left", "A", 1)
    ]
    assert published_queue(sku.log) == []
    state = sku.state
    assert (state.reserved, state.available, state.backordered) == (350, 50, 0)


def test_cancelling_part_of_the_backorder_keeps_the_reservation() -> None:
    sku = SkuHarness()
    sku.adjust(+4)
    sku.reserve("A", 10)

    sku.cancel("A", 5)

    assert dict(sku.state.reservations) == {("A", "1"): 4}
    assert sku.state.backordered == 1


def test_stock_freed_by_a_cancellation_goes_to_the_next_in_the_queue() -> None:
    sku = SkuHarness()
    sku.adjust(+10)
    sku.reserve("A", 10, minute=0)
    sku.reserve("B", 4, minute=1)
    sku.reserve("C", 4, minute=2)

    events = sku.cancel("A", 6, cancellation_id="evt-cancel-A")

    assert [
        (e.order_id, e.quantity, e.remaining_backordered) for e in of_type(events, BackorderFulfilled)
    ] == [
        ("B", 4, 0),
        ("C", 2, 2),
    ]
    assert {e.source for e in of_type(events, BackorderFulfilled)} == {"evt-cancel-A"}
    assert published_queue(sku.log) == [("C", 2)]


def test_cancelling_a_waiting_line_lets_the_next_one_move_up() -> None:
    sku = SkuHarness()
    sku.reserve("A", 5, minute=0)
    sku.reserve("B", 5, minute=1)
    sku.cancel("A", 5)

    events = sku.receive(3)

    assert [(e.order_id, e.quantity) for e in of_type(events, BackorderFulfilled)] == [("B", 3)]
    assert of_type(events, BackorderFulfilled)[0].priority_reason.startswith("1st in the backorder queue")


def test_cancelling_more_than_is_on_the_books_releases_only_what_is_there() -> None:
    sku = SkuHarness()
    sku.adjust(+2)
    sku.reserve("A", 3)

    [released] = of_type(sku.cancel("A", 10), StockReleased)

    assert (released.released_reserved, released.dropped_backordered) == (2, 1)
    assert not sku.state.reservations and not sku.state.queue


def test_cancelling_a_line_that_is_not_on_the_books_changes_nothing() -> None:
    sku = SkuHarness()
    sku.adjust(+2)
    sku.reserve("A", 2)
    sku.cancel("A", 2)
    before = sku.state

    assert sku.cancel("A", 2) == []
    assert sku.cancel("unknown", 1) == []
    assert sku.state == before


def test_backordered_units_are_filled_later_cancelled_or_still_waiting() -> None:
    sku = SkuHarness()
    sku.reserve("A", 10)
    sku.receive(3)
    sku.cancel("A", 4)

    filled = sum(e.quantity for e in of_type(sku.log, BackorderFulfilled))
    cancelled = sum(e.dropped_backordered for e in of_type(sku.log, StockReleased))
    assert (filled, cancelled, sku.state.backordered) == (3, 4, 3)


def test_cancelling_only_waiting_units_releases_no_reservation() -> None:
    sku = SkuHarness()
    sku.adjust(+4)
    sku.reserve("A", 10)  # 4 reserved, 6 wait

    [released] = of_type(sku.cancel("A", 10, only_waiting=True), StockReleased)

    assert (released.released_reserved, released.dropped_backordered) == (0, 6)
    assert dict(sku.state.reservations) == {("A", "1"): 4}
    assert (sku.state.reserved, sku.state.backordered) == (4, 0)


def test_a_fill_that_races_an_only_waiting_cancellation_is_kept() -> None:
    sku = SkuHarness()
    sku.reserve("A", 5)  # all of it waits; the max wait is about to expire
    sku.receive(3)  # the fill reaches inventory first

    [released] = of_type(sku.cancel("A", 5, only_waiting=True), StockReleased)

    assert (released.released_reserved, released.dropped_backordered) == (0, 2)
    assert dict(sku.state.reservations) == {("A", "1"): 3}  # ships
    assert sku.state.backordered == 0


def test_an_only_waiting_cancellation_of_a_line_filled_in_full_changes_nothing() -> None:
    sku = SkuHarness()
    sku.reserve("A", 5)
    sku.receive(5)
    before = sku.state

    assert sku.cancel("A", 5, only_waiting=True) == []
    assert sku.state == before
