from backbone.contracts.envelope import EventPayload
from backbone.contracts.events import ReorderPointReached
from tests.unit.inventory.harness import SKU, SkuHarness, of_type


def alerts(events: list[EventPayload]) -> list[ReorderPointReached]:
    return of_type(events, ReorderPointReached)


def test_the_reorder_point_is_reported_once_per_crossing_and_again_after_stock_rose_above_it() -> None:
    sku = SkuHarness()
    sku.adjust(+20)
    sku.set_policy("allow", reorder_point=5, safety_stock=2)

    assert alerts(sku.reserve("A", 10)) == []  # 10 available
    assert alerts(sku.reserve("B", 6)) == [
        ReorderPointReached(
            sku=SKU, on_hand=20, reserved=16, available=4, backordered=0, reorder_point=5, safety_stock=2
        )
    ]
    assert alerts(sku.reserve("C", 2)) == []  # still below: said already
    assert alerts(sku.receive(10)) == []  # 12 available: re-armed
    assert len(alerts(sku.reserve("D", 7))) == 1  # 5 available: at the point counts


def test_a_backorder_reports_the_reorder_point_once_while_lines_keep_waiting() -> None:
    sku = SkuHarness()

    [first] = alerts(sku.reserve("A", 5))
    assert (first.available, first.backordered, first.reorder_point) == (0, 5, 0)
    assert alerts(sku.reserve("B", 5)) == []
    assert alerts(sku.receive(7)) == []  # all of it went to waiting lines: no rise above the point
    assert alerts(sku.receive(10)) == []  # queue cleared, 7 available: re-armed
    assert len(alerts(sku.reserve("C", 9))) == 1


def test_raising_the_reorder_point_above_available_stock_reports_it_at_once() -> None:
    sku = SkuHarness()
    sku.adjust(+8)

    assert len(alerts(sku.set_policy("allow", reorder_point=10))) == 1
    assert alerts(sku.set_policy("allow", reorder_point=12)) == []  # still below, said already


def test_commands_that_change_nothing_report_nothing() -> None:
    sku = SkuHarness()

    assert sku.cancel("nobody", 1) == []
    assert sku.state.reorder_alerted is False
