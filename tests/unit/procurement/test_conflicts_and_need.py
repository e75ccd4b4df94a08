"""A receipt that contradicts our PO is refused whole; the open need is what nothing covers."""

import pytest

from backbone.contracts.events import GoodsReceived
from services.procurement.domain import ProcurementConflict, decide, open_need
from tests.unit.procurement.scenario import Scenario, catalogue, day, receipt, terms


def from_supplier(supplier_id: str | None, po_id: str | None, receipt_id: str = "R-1") -> GoodsReceived:
    return receipt(receipt_id, po_id, 4, on=day(10)).model_copy(update={"supplier_id": supplier_id})


def ordered() -> Scenario:
    sku = Scenario()
    sku.send(catalogue(terms("S1", lead_time_days=10)))
    sku.queue(("A", 4))
    return sku


def test_a_receipt_for_our_po_from_another_supplier_is_refused_and_changes_nothing() -> None:
    sku = ordered()
    with pytest.raises(
        ProcurementConflict, match="PO-SKU-1-0001 of supplier 'S1' but comes from supplier 'S2'"
    ):
        decide(sku.state, from_supplier("S2", "PO-SKU-1-0001"), today=day(10))
    assert sku.state.on_order == 4 and sku.state.receipt_ids == frozenset()


@pytest.mark.parametrize(
    ("supplier_id", "po_id"),
    [("S1", "PO-SKU-1-0001"), (None, "PO-SKU-1-0001"), ("ANY", "THEIR-PO-7"), ("ANY", None)],
    ids=["the PO's supplier", "no supplier named", "a PO not ours", "no PO"],
)
def test_other_receipts_are_counted(supplier_id: str | None, po_id: str | None) -> None:
    sku = ordered()
    sku.send(from_supplier(supplier_id, po_id), on=day(10))
    assert sku.state.stock.free_stock == 4
    assert sku.state.on_order == (0 if po_id == "PO-SKU-1-0001" else 4)


def test_a_repeated_receipt_is_ignored_before_it_is_checked() -> None:
    sku = ordered()
    sku.send(from_supplier("S1", "PO-SKU-1-0001"), on=day(10))
    assert decide(sku.state, from_supplier("S2", "PO-SKU-1-0001"), today=day(10)) == []


def test_the_open_need_is_what_no_supply_covers_and_a_catalogue_buys_it() -> None:
    sku = Scenario()
    sku.queue(("A", 4), ("B", 3))
    assert open_need(sku.state) == 7
    sku.send(catalogue(terms(moq=10)))
    assert (open_need(sku.state), sku.state.on_order) == (0, 10)
