import pytest

from backbone.contracts.events import StockLevelChanged, StockShipped
from services.inventory.domain import StockConflict
from tests.unit.inventory.harness import SKU, SkuHarness, of_type


def test_a_partial_shipment_takes_units_out_of_the_lines_reservation_and_stock_on_hand() -> None:
    sku = SkuHarness()
    sku.adjust(+10)
    sku.reserve("A", 6)

    events = sku.ship("A", 4, shipment_id="S-1")

    assert events == [
        StockShipped(shipment_id="S-1", order_id="A", line_id="1", sku=SKU, quantity=4, on_hand_after=6),
        StockLevelChanged(sku=SKU, on_hand=6, reserved=2, available=4, backordered=0),
    ]
    assert dict(sku.state.reservations) == {("A", "1"): 2}
    assert (sku.state.on_hand, sku.state.reserved, sku.state.available) == (6, 2, 4)


def test_a_line_shipped_in_full_leaves_the_reservations_so_the_state_shrinks() -> None:
    sku = SkuHarness()
    sku.adjust(+10)
    sku.reserve("A", 6)
    sku.reserve("B", 3)

    sku.ship("A", 2, shipment_id="S-1")
    sku.ship("A", 4, shipment_id="S-2")

    assert dict(sku.state.reservations) == {("B", "1"): 3}
    assert (sku.state.on_hand, sku.state.reserved) == (4, 3)
    assert sku.rebuilt() == sku.state


def test_a_filled_backorder_ships_from_the_reservation_the_fill_made() -> None:
    sku = SkuHarness()
    sku.reserve("A", 5)  # all of it waits
    sku.receive(5)

    sku.ship("A", 5)

    assert (sku.state.on_hand, sku.state.reserved, sku.state.backordered) == (0, 0, 0)
    assert not sku.state.reservations


@pytest.mark.parametrize("reserved", [0, 3])
def test_shipping_more_than_the_line_holds_reserved_is_refused_naming_shipment_line_and_units(
    reserved: int,
) -> None:
    sku = SkuHarness()
    sku.adjust(+3)
    sku.reserve("A", 3 + 4)  # 3 reserved, 4 waiting: waiting units cannot ship
    if not reserved:
        sku.ship("A", 3, shipment_id="S-0")
    before = sku.state

    with pytest.raises(StockConflict) as refused:
        sku.ship("A", 4, shipment_id="S-9")

    message = str(refused.value)
    assert "shipment S-9" in message and "line 1 of order A" in message
    assert f"only {reserved} units are reserved" in message
    assert sku.state == before


def test_shipping_a_line_that_is_not_on_the_books_is_refused() -> None:
    sku = SkuHarness()
    sku.adjust(+5)

    with pytest.raises(StockConflict, match="only 0 units are reserved"):
        sku.ship("nobody", 1)


def test_a_cancellation_after_a_partial_shipment_releases_only_what_is_still_reserved() -> None:
    sku = SkuHarness()
    sku.adjust(+5)
    sku.reserve("A", 5)
    sku.ship("A", 3)

    [released] = [e for e in sku.cancel("A", 5) if type(e).__name__ == "StockReleased"]

    assert (released.released_reserved, released.dropped_backordered) == (2, 0)
    assert (sku.state.on_hand, sku.state.reserved) == (2, 0)
    assert of_type(sku.log, StockShipped)[0].quantity == 3
