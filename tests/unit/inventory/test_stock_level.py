"""StockLevelChanged: one per command that changed on hand, reserved or backordered, its last event; not
for an order line's reservation, which its own events describe."""

from backbone.contracts.events import ReorderPointReached, StockLevelChanged
from tests.unit.inventory.harness import SKU, SkuHarness, of_type


def test_a_command_that_moves_many_units_ends_with_a_single_stock_level() -> None:
    sku = SkuHarness()
    for n in range(5):
        sku.reserve(f"O{n}", 2, minute=n)  # 10 units wait on 5 lines

    events = sku.receive(7)  # fills 3 lines and part of a 4th

    assert of_type(events, StockLevelChanged) == [
        StockLevelChanged(sku=SKU, on_hand=7, reserved=7, available=0, backordered=3)
    ]
    assert events[-1] == of_type(events, StockLevelChanged)[0]


def test_the_stock_level_follows_the_reorder_alert_so_it_is_the_very_last_event() -> None:
    sku = SkuHarness()
    sku.adjust(+10)
    sku.set_policy("allow", reorder_point=5)
    sku.reserve("A", 4)

    events = sku.adjust(-2)  # 8 on hand, 4 reserved: 4 available, at the reorder point or below

    assert [type(e) for e in events][-2:] == [ReorderPointReached, StockLevelChanged]


def test_a_reservation_reports_its_figures_by_its_own_events_only() -> None:
    sku = SkuHarness()
    sku.adjust(+3)
    sku.set_policy("allow", reorder_point=1)

    events = sku.reserve("A", 5)  # 3 reserved, 2 wait: the join says nothing is available

    assert of_type(events, StockLevelChanged) == []
    [alert] = of_type(events, ReorderPointReached)
    assert (alert.on_hand, alert.reserved, alert.available, alert.backordered) == (3, 3, 0, 2)


def test_commands_that_change_no_figure_publish_no_stock_level() -> None:
    sku = SkuHarness()
    sku.adjust(+4)
    sku.reserve("A", 4)

    assert of_type(sku.set_policy("deny", reorder_point=2), StockLevelChanged) == []
    assert of_type(sku.reserve("B", 3), StockLevelChanged) == []  # rejected: nothing changed
    assert sku.cancel("nobody", 1) == []
    assert sku.count(4) and of_type(sku.log[-1:], StockLevelChanged) == []
    assert sku.record_sourcing(True) and of_type(sku.log[-1:], StockLevelChanged) == []


def test_every_command_of_a_lifecycle_that_changed_the_figures_reports_them_once() -> None:
    sku = SkuHarness()
    steps = [
        lambda: sku.adjust(+3),
        lambda: sku.reserve("A", 5),
        lambda: sku.receive(4),
        lambda: sku.ship("A", 5),
        lambda: sku.cancel("A", 1),  # nothing left of A: no-op
        lambda: sku.reserve("B", 4),
        lambda: sku.cancel("B", 4),
        lambda: sku.count(1),
    ]
    placements = {1, 5}  # reservations: described by their own events
    for n, step in enumerate(steps):
        before = (sku.state.on_hand, sku.state.reserved, sku.state.backordered)
        levels = of_type(step(), StockLevelChanged)
        after = (sku.state.on_hand, sku.state.reserved, sku.state.backordered)
        assert len(levels) == (1 if after != before and n not in placements else 0)
        if levels:
            level = levels[0]
            assert (level.on_hand, level.reserved, level.backordered) == after
            assert level.available == sku.state.available
