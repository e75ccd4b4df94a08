import pytest

from backbone.contracts.events import BackorderFulfilled, SkuPolicyChanged, StockAdjusted
from services.inventory.domain import (
    InvalidCommand,
    ReceiveGoods,
    SkuSettings,
    StockConflict,
    decide,
    initial_state,
)
from tests.unit.inventory.harness import SKU, SkuHarness, of_type


def test_an_adjustment_changes_stock_on_hand_and_is_audited() -> None:
    sku = SkuHarness()
    sku.adjust(+10, reason="opening balance")

    events = sku.adjust(-3, reason="damaged in storage")

    assert of_type(events, StockAdjusted) == [
        StockAdjusted(sku=SKU, delta=-3, on_hand_after=7, reason="damaged in storage", actor="clerk")
    ]
    assert sku.state.on_hand == 7


def test_an_adjustment_may_not_take_stock_on_hand_below_what_is_reserved() -> None:
    sku = SkuHarness()
    sku.adjust(+10)
    sku.reserve("A", 8)
    before = sku.state

    with pytest.raises(
        StockConflict, match="cannot remove 3 units of JACKET-M: 10 on hand, 8 of them reserved"
    ):
        sku.adjust(-3)

    assert sku.state == before
    sku.adjust(-2)  # down to exactly what is reserved is fine
    assert (sku.state.on_hand, sku.state.available) == (8, 0)


def test_an_adjustment_of_zero_is_refused() -> None:
    with pytest.raises(InvalidCommand):
        SkuHarness().adjust(0)


def test_stock_added_by_an_adjustment_goes_to_waiting_lines_first() -> None:
    sku = SkuHarness()
    sku.reserve("A", 4)

    events = sku.adjust(+10, reason="found in the back room", adjustment_id="adj-42")

    [fill] = of_type(events, BackorderFulfilled)
    assert (fill.order_id, fill.quantity, fill.source) == ("A", 4, "adj-42")
    assert sku.state.available == 6


def test_a_policy_change_is_audited_and_a_repeat_changes_nothing() -> None:
    sku = SkuHarness()
    sku.adjust(+50)

    events = sku.set_policy("cap", cap=20, reorder_point=10, safety_stock=5)

    assert events == [
        SkuPolicyChanged(
            sku=SKU, backorder_policy="cap", backorder_cap=20, reorder_point=10, safety_stock=5, actor="buyer"
        )
    ]
    assert sku.state.settings == SkuSettings("cap", 20, 10, 5)
    assert sku.set_policy("cap", cap=20, reorder_point=10, safety_stock=5) == []


@pytest.mark.parametrize(("policy", "cap"), [("cap", None), ("allow", 5), ("deny", 0)])
def test_a_cap_goes_with_the_cap_policy_and_only_with_it(policy: str, cap: int | None) -> None:
    with pytest.raises(InvalidCommand, match="backorder_cap"):
        SkuHarness().set_policy(policy, cap=cap)  # type: ignore[arg-type]


def test_a_new_sku_allows_backorders_and_has_nothing_on_hand() -> None:
    state = initial_state("NEW")

    assert (state.on_hand, state.reserved, state.backordered) == (0, 0, 0)
    assert state.settings == SkuSettings(backorder_policy="allow", backorder_cap=None, reorder_point=0)


def test_a_command_for_another_sku_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="SCARF"):
        decide(initial_state(SKU), ReceiveGoods(sku="SCARF", receipt_id="R-1", quantity=1))


def test_stock_on_hand_has_the_contracts_upper_limit() -> None:
    sku = SkuHarness()
    sku.receive(1_000_000_000)

    with pytest.raises(StockConflict, match="more than"):
        sku.receive(1)
