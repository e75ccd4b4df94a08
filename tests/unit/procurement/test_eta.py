"""The ETA walk: the queue in allocation order against supply in arrival order."""

from datetime import date

from backbone.contracts.events import BackorderQueueEntry
from services.procurement.eta import NO_COVER, ArrivalBatch, LineEta, assign_etas, eta_updates

D10, D15, D20 = date(2025, 3, 10), date(2025, 3, 15), date(2025, 3, 20)


def line(order_id: str, quantity: int) -> BackorderQueueEntry:
    return BackorderQueueEntry(order_id=order_id, line_id="1", quantity=quantity)


def test_lines_get_the_arrival_of_their_last_unit_across_two_purchase_orders() -> None:
    queue = [line("A", 4), line("B", 8), line("C", 9), line("D", 1)]
    arrivals = [ArrivalBatch(D20, "PO-2", 10), ArrivalBatch(D10, "PO-1", 10)]  # sorted by date inside
    etas = assign_etas(queue, arrivals, today=D10)
    assert etas[("A", "1")] == LineEta(
        D10, "PO-1", "expected with purchase order PO-1 on 2025-03-10", basis="purchase_order"
    )
    assert etas[("B", "1")].eta == D20  # 6 units from PO-1, its last 2 from PO-2
    assert etas[("B", "1")].po_id == "PO-2"
    assert etas[("C", "1")] == LineEta(None, None, "purchase orders cover only 8 of 9 units yet")
    assert etas[("D", "1")] == LineEta(None, None, NO_COVER)


def test_free_stock_serves_the_head_of_the_queue_first() -> None:
    arrivals = [ArrivalBatch(D15, "PO-1", 5)]
    etas = assign_etas([line("A", 3), line("B", 3)], arrivals, free_stock=3, today=D10)
    assert etas[("A", "1")] == LineEta(
        D10, None, "covered by stock on hand", from_stock=True, basis="stock_on_hand"
    )
    assert etas[("B", "1")].eta == D15


def test_free_stock_about_to_fill_an_announced_line_is_no_news_but_a_new_line_learns_today() -> None:
    queue = [line("A", 1), line("B", 1)]
    assigned = assign_etas(queue, [], free_stock=2, today=D10)
    updates = eta_updates("SKU-1", queue, assigned, {("A", "1"): D15}, "goods received")
    assert [(u.order_id, u.eta) for u in updates] == [("B", D10)]


def test_only_lines_whose_date_changed_or_that_are_new_are_updated() -> None:
    queue = [line("A", 1), line("B", 1), line("C", 1)]
    assigned = {
        ("A", "1"): LineEta(D10, "PO-1", "x"),
        ("B", "1"): LineEta(D10, "PO-2", "y"),  # another PO, same day: nothing new for the customer
        ("C", "1"): LineEta(D15, "PO-2", "z"),
    }
    announced = {("A", "1"): D20, ("B", "1"): D10}
    updates = eta_updates("SKU-1", queue, assigned, announced, "test")
    assert [(u.order_id, u.previous_eta, u.eta) for u in updates] == [("A", D20, D10), ("C", None, D15)]
    assert updates[0].reason == "x (test)"
