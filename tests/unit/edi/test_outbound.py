"""Which document a purchase order event sends: original, replacement, cancellation, or nothing."""

from datetime import date
from decimal import Decimal

from backbone.contracts.events import PurchaseOrderCancelled, PurchaseOrderIssued
from services.edi.outbound import SentPurchaseOrder, document_for, edi_reference, file_name, sent_after

TODAY = date(2030, 1, 7)


def issued(revision: int, quantity: int = 40) -> PurchaseOrderIssued:
    return PurchaseOrderIssued(
        po_id="PO-1", revision=revision, supplier_id="acme", sku="JACKET", quantity=quantity,
        unit_cost=Decimal("9.50"), currency="EUR", expected_arrival=date(2030, 1, 17),
    )  # fmt: skip


CANCELLED = PurchaseOrderCancelled(
    po_id="PO-1", supplier_id="acme", sku="JACKET", reason="backorders cancelled"
)


def test_the_first_revision_is_an_original_and_later_ones_replace_it() -> None:
    first = document_for(issued(1), None, standard="x12", issued_on=TODAY)
    assert first is not None and first.purpose == "original" and first.quantity == 40
    second = document_for(issued(2, 60), sent_after("PO-1", first), standard="x12", issued_on=TODAY)
    assert second is not None and (second.purpose, second.revision, second.quantity) == ("replace", 2, 60)


def test_a_replayed_or_late_revision_sends_nothing() -> None:
    first = document_for(issued(2), None, standard="x12", issued_on=TODAY)
    assert first is not None and first.purpose == "replace"  # revision 1 never reached the adapter
    assert document_for(issued(2), sent_after("PO-1", first), standard="x12", issued_on=TODAY) is None
    assert document_for(issued(1), sent_after("PO-1", first), standard="x12", issued_on=TODAY) is None


def test_a_cancellation_repeats_the_last_terms_once() -> None:
    first = document_for(issued(1), None, standard="x12", issued_on=TODAY)
    assert first is not None
    cancel = document_for(CANCELLED, sent_after("PO-1", first), standard="x12", issued_on=TODAY)
    assert cancel is not None and (cancel.purpose, cancel.quantity, cancel.revision) == ("cancel", 40, 1)
    withdrawn: SentPurchaseOrder = sent_after("PO-1", cancel)
    assert document_for(CANCELLED, withdrawn, standard="x12", issued_on=TODAY) is None
    assert (
        document_for(issued(2), withdrawn, standard="x12", issued_on=TODAY) is None
    )  # a cancelled PO is not revived
    assert (
        document_for(CANCELLED, None, standard="x12", issued_on=TODAY) is None
    )  # never sent: nothing to withdraw


def test_file_names_are_safe_whatever_the_po_id() -> None:
    assert file_name("850", "PO/17 r2", "000000042") == "850-PO_17_r2-000000042.edi"


def test_a_po_id_too_long_for_the_standard_travels_as_a_stable_short_reference() -> None:
    long_id = "PO-WINTER-JACKET-NAVY-XL-0001"  # 29 characters: EDIFACT takes it, X12 (22) does not
    assert edi_reference(long_id, "edifact") == long_id
    short = edi_reference(long_id, "x12")
    assert short == edi_reference(long_id, "x12") and len(short) == 18 and short.startswith("PO")
    assert short != edi_reference(long_id + "2", "x12")
    assert edi_reference("PO 1", "edifact") != "PO 1"  # a space is no PO number in every syntax
    event = PurchaseOrderIssued(**{**issued(1).model_dump(), "po_id": long_id})
    document = document_for(event, None, standard="x12", issued_on=TODAY)
    assert document is not None and document.po_id == short
    assert sent_after(long_id, document).reference == short
