"""Purchase planning: the buy formula, rounding to what a supplier sells, and the supplier choice."""

from datetime import date
from decimal import Decimal

import pytest

from services.procurement.planning import (
    PurchasePolicy,
    choose_supplier,
    order_quantity,
    purchase_order_id,
    replenishment_need,
    revised_arrival,
)
from tests.unit.procurement.scenario import terms


def test_need_is_backorders_plus_target_level_minus_free_stock_and_on_order() -> None:
    # 12 waiting + max(5, 3) target - (2 free + 4 on order)
    need = replenishment_need(backordered=12, reorder_point=5, safety_stock=3, free_stock=2, on_order=4)
    assert need == 11


def test_safety_stock_is_the_target_when_above_the_reorder_point() -> None:
    need = replenishment_need(backordered=0, reorder_point=2, safety_stock=6, free_stock=1, on_order=0)
    assert need == 5


def test_nothing_is_needed_when_supply_covers_demand_and_target() -> None:
    need = replenishment_need(backordered=5, reorder_point=5, safety_stock=0, free_stock=0, on_order=10)
    assert need == 0


def test_negative_free_stock_counts_against_supply() -> None:
    # A fill seen before its receipt: 4 units are gone from stock and the PO still shows them on order.
    need = replenishment_need(backordered=0, reorder_point=0, safety_stock=0, free_stock=-4, on_order=4)
    assert need == 0


@pytest.mark.parametrize(
    ("units", "moq", "pack", "expected"),
    [
        (7, 10, 1, 10),  # up to the minimum order quantity
        (7, 10, 4, 12),  # the minimum is not a whole number of packs: up to 3 packs
        (13, 10, 6, 18),  # above the minimum: up to whole packs
        (12, 10, 6, 12),  # already whole packs
        (1, 1, 1, 1),
        (0, 10, 6, 0),  # nothing needed, nothing ordered
    ],
)
def test_order_quantity_rounds_up_to_moq_then_to_packs(
    units: int, moq: int, pack: int, expected: int
) -> None:
    assert order_quantity(units, terms(moq=moq, pack=pack)) == expected


POLICY = PurchasePolicy(alternate_min_days_sooner=3, alternate_max_cost_premium=Decimal("0.10"))
PRIMARY = terms("P", lead_time_days=20, unit_cost="10.00")


def test_the_primary_is_the_default() -> None:
    later = terms("A", lead_time_days=25, unit_cost="8.00", role="alternate")
    assert choose_supplier([later, PRIMARY], POLICY) == PRIMARY


def test_an_alternate_sooner_by_more_than_the_margin_and_within_the_premium_wins() -> None:
    sooner = terms("A", lead_time_days=10, unit_cost="11.00", role="alternate")  # 10 days sooner, +10 %
    assert choose_supplier([PRIMARY, sooner], POLICY) == sooner


def test_an_alternate_only_as_sooner_as_the_margin_does_not_win() -> None:
    barely = terms("A", lead_time_days=17, unit_cost="9.00", role="alternate")  # 3 days: not more than 3
    assert choose_supplier([PRIMARY, barely], POLICY) == PRIMARY


def test_an_alternate_too_dear_does_not_win() -> None:
    dear = terms("A", lead_time_days=5, unit_cost="11.01", role="alternate")
    assert choose_supplier([PRIMARY, dear], POLICY) == PRIMARY


def test_an_alternate_in_another_currency_does_not_win() -> None:
    foreign = terms("A", lead_time_days=5, unit_cost="1.00", currency="USD", role="alternate")
    assert choose_supplier([PRIMARY, foreign], POLICY) == PRIMARY


def test_the_soonest_qualifying_alternate_wins() -> None:
    soon = terms("A", lead_time_days=12, unit_cost="9.00", role="alternate")
    sooner = terms("B", lead_time_days=8, unit_cost="10.50", role="alternate")
    assert choose_supplier([PRIMARY, soon, sooner], POLICY) == sooner


def test_the_policy_numbers_decide() -> None:
    sooner = terms("A", lead_time_days=10, unit_cost="11.00", role="alternate")
    strict = PurchasePolicy(alternate_min_days_sooner=14, alternate_max_cost_premium=Decimal("0.10"))
    stingy = PurchasePolicy(alternate_min_days_sooner=3, alternate_max_cost_premium=Decimal("0.05"))
    assert choose_supplier([PRIMARY, sooner], strict) == PRIMARY
    assert choose_supplier([PRIMARY, sooner], stingy) == PRIMARY


def test_no_catalogue_no_supplier() -> None:
    assert choose_supplier([], POLICY) is None


def test_a_revision_keeps_the_po_date_while_the_lead_time_fits() -> None:
    due = date(2025, 3, 13)
    assert revised_arrival(due, date(2025, 3, 12)) == due
    assert revised_arrival(due, date(2025, 3, 13)) == due
    assert revised_arrival(due, date(2025, 3, 14)) is None  # default: never delay a promised date
    assert revised_arrival(due, date(2025, 3, 16), PurchasePolicy(enlarge_max_delay_days=3)) == date(
        2025, 3, 16
    )
    assert revised_arrival(due, date(2025, 3, 17), PurchasePolicy(enlarge_max_delay_days=3)) is None


def test_purchase_order_ids_are_readable_and_fit_an_identifier() -> None:
    assert purchase_order_id("SKU-1", 3) == "PO-SKU-1-0003"
    long_id = purchase_order_id("X" * 128, 1)
    assert len(long_id) <= 128
    assert long_id != purchase_order_id("Y" * 128, 1)
