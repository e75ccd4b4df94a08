from datetime import date
from decimal import Decimal

from backbone.contracts.envelope import EventPayload
from backbone.contracts.events import ReorderPointReached, ReorderPolicyPlanned, SkuPolicyChanged
from services.inventory.domain import apply_reorder_levels_command
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


def test_procurements_auto_levels_keep_the_backorder_policy_and_are_audited_as_procurement() -> None:
    sku = SkuHarness()
    sku.adjust(+100)
    sku.set_policy("cap", cap=30, reorder_point=5)
    plan = ReorderPolicyPlanned(
        sku=SKU,
        reorder_point=736,
        safety_stock=261,
        service_level=Decimal("0.95"),
        demand_per_day=Decimal("47.5"),
        demand_sigma_per_day=Decimal("50"),
        lead_time_days=Decimal("10"),
        lead_time_sigma_days=Decimal("0"),
        planned_on=date(2030, 1, 8),
    )

    events = sku.run(apply_reorder_levels_command(plan))

    (changed,) = of_type(events, SkuPolicyChanged)
    assert (changed.backorder_policy, changed.backorder_cap) == ("cap", 30)
    assert (changed.reorder_point, changed.safety_stock, changed.actor) == (736, 261, "procurement:auto")
    assert len(alerts(events)) == 1  # 100 available is under the new point: procurement hears it at once
    assert sku.run(apply_reorder_levels_command(plan)) == []  # the same plan again changes nothing
