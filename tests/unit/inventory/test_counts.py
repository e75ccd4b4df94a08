from datetime import UTC, datetime

import pytest

from backbone.contracts.events import BackorderFulfilled, StockCounted, StockLevelChanged, StockShort
from services.inventory.domain import CountStock, StockConflict
from tests.unit.inventory.harness import SKU, SkuHarness, at, of_type


def test_a_count_below_the_books_sets_stock_on_hand_and_explains_the_difference() -> None:
    sku = SkuHarness()
    sku.adjust(+10)
    sku.reserve("A", 4)

    events = sku.count(7, count_id="cc-1", reason="shelf count")

    assert events == [
        StockCounted(
            sku=SKU,
            count_id="cc-1",
            counted=7,
            on_hand_before=10,
            difference=-3,
            reason="shelf count",
            actor="clerk",
            counted_at=at(0),
        ),
        StockLevelChanged(sku=SKU, on_hand=7, reserved=4, available=3, backordered=0),
    ]
    assert (sku.state.on_hand, sku.state.available) == (7, 3)


def test_a_count_above_the_books_allocates_the_extra_units_to_waiting_lines_like_a_receipt() -> None:
    sku = SkuHarness()
    sku.adjust(+2)
    sku.reserve("A", 5, minute=0)  # 2 reserved, 3 wait
    sku.reserve("B", 4, minute=1)  # all 4 wait

    events = sku.count(7, count_id="cc-2")

    assert of_type(events, StockCounted)[0].difference == 5
    assert [(f.order_id, f.quantity, f.source) for f in of_type(events, BackorderFulfilled)] == [
        ("A", 3, "cc-2"),
        ("B", 2, "cc-2"),
    ]
    assert (sku.state.on_hand, sku.state.reserved, sku.state.backordered) == (7, 7, 2)
    assert type(events[-1]) is StockLevelChanged


def test_a_count_that_confirms_the_books_is_still_recorded_but_changes_no_level() -> None:
    sku = SkuHarness()
    sku.adjust(+6)

    events = sku.count(6)

    assert [(type(e), getattr(e, "difference", None)) for e in events] == [(StockCounted, 0)]
    assert sku.state.on_hand == 6


def test_a_count_below_what_is_reserved_is_refused_until_those_units_ship_or_are_released() -> None:
    sku = SkuHarness()
    sku.adjust(+10)
    sku.reserve("A", 8)
    before = sku.state

    with pytest.raises(StockConflict, match=r"found 5 units, but 8 are reserved.*ship or release"):
        sku.count(5, count_id="cc-3")
    assert sku.state == before

    sku.ship("A", 3)
    sku.count(5, count_id="cc-3")  # 5 on the shelf, all of them reserved
    assert (sku.state.on_hand, sku.state.reserved, sku.state.available) == (5, 5, 0)


def test_a_count_makes_a_new_sku_known() -> None:
    sku = SkuHarness(unknown_sku="reject")

    sku.count(0)

    assert sku.state.known
    assert [s.disposition for s in of_type(sku.reserve("A", 2), StockShort)] == ["backordered"]


def test_a_count_at_the_contracts_limit_is_refused_above_it() -> None:
    with pytest.raises(ValueError):
        CountStock(
            sku=SKU,
            count_id="c",
            counted=1_000_000_001,
            reason="r",
            actor="a",
            counted_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
