"""UNKNOWN_SKU_POLICY: an order line for a SKU inventory never had stock, a policy or a supplier for."""

from collections.abc import Callable

import pytest

from backbone.contracts.events import StockReserved, StockShort
from services.inventory.domain import UNKNOWN_SKU_REASON, initial_state
from services.inventory.events import SourcingRecorded
from tests.unit.inventory.harness import SKU, SkuHarness, of_type


def test_under_reject_a_line_for_an_unknown_sku_is_rejected_whole_with_the_agreed_reason() -> None:
    sku = SkuHarness(unknown_sku="reject")

    events = sku.reserve("A", 3)

    assert of_type(events, StockShort) == [
        StockShort(
            order_id="A",
            line_id="1",
            sku=SKU,
            demanded=3,
            available=0,
            short_quantity=3,
            disposition="rejected",
            reason=UNKNOWN_SKU_REASON,
        )
    ]
    assert UNKNOWN_SKU_REASON == "unknown SKU: never stocked and no supplier is known"
    assert (sku.state.backordered, sku.state.known) == (0, False)


def test_under_backorder_a_line_for_an_unknown_sku_waits_as_usual() -> None:
    sku = SkuHarness(unknown_sku="backorder")

    [short] = of_type(sku.reserve("A", 3), StockShort)

    assert (short.disposition, short.reason) == ("backordered", None)
    assert sku.state.backordered == 3 and not sku.state.known


@pytest.mark.parametrize(
    "make_known",
    [
        lambda s: s.receive(1),
        lambda s: s.adjust(+1),
        lambda s: s.count(0),
        lambda s: s.set_policy("allow", reorder_point=1),
        lambda s: s.record_sourcing(True),
    ],
    ids=["receipt", "adjustment", "count", "policy", "supplier"],
)
def test_stock_a_policy_or_a_supplier_makes_a_sku_known(make_known: Callable[[SkuHarness], object]) -> None:
    sku = SkuHarness(unknown_sku="reject")
    make_known(sku)

    events = sku.reserve("A", 5)

    assert sku.state.known
    assert [s.disposition for s in of_type(events, StockShort)] == ["backordered"]


def test_a_known_sku_stays_known_when_its_stock_is_gone() -> None:
    sku = SkuHarness(unknown_sku="reject")
    sku.adjust(+2)
    sku.reserve("A", 2)
    sku.ship("A", 2)

    assert sku.state.on_hand == 0 and sku.state.known
    assert of_type(sku.reserve("B", 1), StockShort)[0].disposition == "backordered"


def test_sourcing_is_recorded_only_when_it_changes_and_a_lost_supplier_keeps_the_sku_known() -> None:
    sku = SkuHarness(unknown_sku="reject")

    assert sku.record_sourcing(False) == []  # not sourced already: nothing to record
    assert sku.record_sourcing(True) == [SourcingRecorded(sku=SKU, sourced=True)]
    assert sku.record_sourcing(True) == []
    assert sku.record_sourcing(False) == [SourcingRecorded(sku=SKU, sourced=False)]

    assert (sku.state.known, sku.state.sourced) == (True, False)
    assert sku.rebuilt() == sku.state
    assert of_type(sku.reserve("A", 1), StockReserved) == []
    assert sku.state.backordered == 1


def test_recording_sourcing_raises_no_reorder_alert_on_a_new_sku() -> None:
    sku = SkuHarness(unknown_sku="reject")

    assert sku.record_sourcing(True) == [SourcingRecorded(sku=SKU, sourced=True)]
    assert not sku.state.reorder_alerted


def test_a_new_sku_is_unknown_and_unsourced() -> None:
    assert (initial_state("NEW").known, initial_state("NEW").sourced) == (False, False)


def test_setting_the_default_policy_on_an_unknown_sku_is_recorded_and_makes_it_known() -> None:
    sku = SkuHarness(unknown_sku="reject")

    assert [type(e).__name__ for e in sku.set_policy("allow")] == ["SkuPolicyChanged", "ReorderPointReached"]
    assert sku.state.known
    assert sku.set_policy("allow") == []  # now a repeat
