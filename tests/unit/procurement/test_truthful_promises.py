"""Issue 8's rules of procurement: inventory's real stock figures, no ETA before today, overdue POs
re-planned once per slip, sourcing published and "no supplier" told, unconfirmed POs shrunk or cancelled
when backorders are cancelled."""

from datetime import date

from backbone.contracts.envelope import EventPayload
from backbone.contracts.events import (
    BackorderEtaUpdated,
    PurchaseOrderAcknowledged,
    PurchaseOrderCancelled,
    ReorderPointReached,
    ShipmentNoticed,
    SkuSourcingChanged,
    StockLevelChanged,
    StockReleased,
)
from services.procurement.domain import CONSUMED_EVENTS, Origin, PublishSourcing, ReplanOverdue, rebuild
from services.procurement.eta import ArrivalBatch, assign_etas
from services.procurement.events import (
    PurchaseOrderOverdue,
    ReceiptRecorded,
    StockLevelRecorded,
    SupplierTermsSet,
)
from services.procurement.planning import PurchasePolicy, reduced_quantity
from tests.unit.procurement.scenario import (
    SKU,
    Scenario,
    catalogue,
    day,
    etas,
    purchases,
    receipt,
    terms,
)

PO_1 = "PO-SKU-1-0001"


def level(*, on_hand: int, reserved: int = 0, backordered: int = 0) -> StockLevelChanged:
    return StockLevelChanged(
        sku=SKU, on_hand=on_hand, reserved=reserved, available=on_hand - reserved, backordered=backordered
    )


def ack(po_id: str, quantity: int, on: date) -> PurchaseOrderAcknowledged:
    return PurchaseOrderAcknowledged(po_id=po_id, sku=SKU, confirmed_quantity=quantity, confirmed_date=on)


def released(order_id: str, *, reserved: int = 0, backordered: int = 0) -> StockReleased:
    return StockReleased(
        order_id=order_id, line_id="1", sku=SKU, released_reserved=reserved, dropped_backordered=backordered
    )


def types(events: list[EventPayload]) -> list[str]:
    return [e.event_type for e in events]


# --- 1. inventory's stock figures ------------------------------------------------------------------------


def test_stock_levels_replace_the_stale_free_stock_and_change_the_plan() -> None:
    sku = Scenario()
    sku.send(catalogue(terms(lead_time_days=10)))
    # The last reorder alert said 4 were available; since then inventory reserved them for orders that
    # procurement never hears of, so its view is stale. Inventory's figures correct it.
    sku.send(
        ReorderPointReached(
            sku=SKU, on_hand=4, reserved=0, available=4, backordered=0, reorder_point=0, safety_stock=0
        )
    )
    assert sku.state.stock.free_stock == 4
    events = sku.send(level(on_hand=4, reserved=4))
    assert types(events) == ["StockLevelRecorded"]
    assert sku.state.stock.free_stock == 0
    # The same figures again (inventory reports after every command) are no news: nothing is recorded.
    assert sku.send(level(on_hand=4, reserved=4)) == []
    assert StockLevelChanged in CONSUMED_EVENTS


def test_a_line_that_joins_the_queue_is_never_promised_stock_inventory_no_longer_has() -> None:
    sku = Scenario()
    sku.send(catalogue(terms(lead_time_days=10)))
    sku.send(
        ReorderPointReached(
            sku=SKU, on_hand=4, reserved=0, available=4, backordered=0, reorder_point=0, safety_stock=0
        )
    )
    # The line's StockLevelChanged comes after its BackorderQueueChanged: the join alone says that
    # nothing was available (inventory queues a shortfall only then), so the 4 units are bought at once.
    events = sku.queue(("A", 4))
    assert purchases(events)[0].quantity == 4
    a = etas(events)["A"]
    assert (a.eta, a.basis) == (day(10), "purchase_order")
    assert sku.state.stock.free_stock == 0
    assert sku.send(level(on_hand=4, reserved=4, backordered=4)) == []


def test_a_receipt_counts_once_whichever_of_it_and_inventorys_report_of_it_comes_first() -> None:
    def po_on_order() -> Scenario:
        sku = Scenario()
        sku.send(catalogue(terms(lead_time_days=10)))
        sku.send(ack(PO_1, 0, on=day(10)))  # refused: nothing on order, no line waits
        return sku

    goods = receipt("R-1", None, 5, on=day(1))
    counted = Origin("receipt-message", None)
    report = level(on_hand=5)
    by_receipt = Origin("level-message", causation_id="receipt-message")

    first_receipt = po_on_order()
    first_receipt.send(goods, origin=counted, on=day(1))
    assert first_receipt.state.stock.free_stock == 5  # counted before inventory says so
    [recorded] = first_receipt.send(report, origin=by_receipt)
    assert isinstance(recorded, StockLevelRecorded) and recorded.receipt_message == "receipt-message"
    # An unrelated report before inventory counted the receipt keeps it in flight.
    in_flight = po_on_order()
    in_flight.send(goods, origin=counted, on=day(1))
    in_flight.send(level(on_hand=0), origin=Origin("other", causation_id="an-order"))
    assert in_flight.state.stock.free_stock == 5

    first_report = po_on_order()
    [raised] = first_report.send(report, origin=by_receipt)
    assert isinstance(raised, StockLevelRecorded) and raised.raised_by == "receipt-message"
    first_report.send(goods, origin=counted, on=day(1))

    # A reorder alert of the same inventory command holds the receipt too.
    alerted = po_on_order()
    alerted.send(goods, origin=counted, on=day(1))
    alert = ReorderPointReached(
        sku=SKU, on_hand=5, reserved=0, available=5, backordered=0, reorder_point=6, safety_stock=0
    )
    alerted.send(alert, origin=by_receipt)
    alerted.send(report, origin=by_receipt)

    for sku in (first_receipt, first_report, alerted):
        state = sku.state
        assert (state.stock.free_stock, state.unreported_units, len(state.raised_by)) == (5, 0, 0)


def test_receipts_inventory_reported_long_before_they_arrive_here_are_never_counted_twice() -> None:
    # The inventory and supplier topics are consumed independently: after a backlog or a restart,
    # inventory's reports of many receipts can all come before the first of those receipts.
    sku = Scenario()
    sku.send(catalogue(terms(lead_time_days=10)))
    receipts = 40
    for n in range(1, receipts + 1):
        sku.send(level(on_hand=5 * n), origin=Origin(f"level-{n}", causation_id=f"receipt-{n}"))
    assert sku.state.stock.free_stock == 5 * receipts
    assert len(sku.state.raised_by) == receipts
    for n in range(1, receipts + 1):
        sku.send(receipt(f"R-{n}", None, 5, on=day(1)), origin=Origin(f"receipt-{n}"), on=day(1))
    state = sku.state
    # Free stock is inventory's available, and nothing is left remembered once every receipt came.
    assert (state.stock.free_stock, state.unreported_units, len(state.raised_by)) == (5 * receipts, 0, 0)
    # A further report of the same figures is no news: procurement's view matches inventory's.
    assert sku.send(level(on_hand=5 * receipts), origin=Origin("level-again")) == []
    # A stream of the release that forgot all but 16 raises recorded the other receipts as not yet in
    # inventory's figures: rebuilt now, it counts them once too.
    legacy = [
        e.model_copy(update={"in_stock_level": False})
        if isinstance(e, ReceiptRecorded) and e.receipt_id in {"R-1", "R-2"}
        else e
        for e in sku.stream
    ]
    assert [e.in_stock_level for e in legacy if isinstance(e, ReceiptRecorded)].count(False) == 2
    assert rebuild(SKU, legacy).stock.free_stock == 5 * receipts


# --- 2. no ETA before today; overdue POs re-planned once per slip ----------------------------------------


def test_an_arrival_whose_date_passed_is_expected_from_today_never_before() -> None:
    queue = [ArrivalBatch(day(3), "PO-1", 2)]
    assigned = assign_etas([_Line("A", 2)], queue, today=day(5))
    assert assigned[("A", "1")].eta == day(5)


def test_a_confirmation_for_a_passed_day_is_overdue_at_once() -> None:
    sku = Scenario()
    sku.send(catalogue(terms(lead_time_days=10)))
    sku.queue(("A", 2))
    events = sku.send(ack(PO_1, 2, on=day(3)), on=day(5))
    assert types(events) == ["PurchaseOrderConfirmed", "PurchaseOrderOverdue", "BackorderEtaUpdated"]
    assert etas(events)["A"].eta == day(8)  # day 5 + the default grace of 3 days


def test_an_overdue_po_is_re_planned_once_per_slip_whatever_runs_the_job() -> None:
    sku = Scenario()
    sku.send(catalogue(terms(lead_time_days=10)))
    sku.queue(("A", 2), ("B", 3))
    sku.send(ack(PO_1, 5, on=day(10)))
    assert sku.send(ReplanOverdue(sku=SKU), on=day(10)) == []  # due today: not late yet

    events = sku.send(ReplanOverdue(sku=SKU), on=day(11))
    assert events[0] == PurchaseOrderOverdue(sku=SKU, po_id=PO_1, was_due=day(10), revised_date=day(14))
    assert {o: (u.previous_eta, u.eta, u.basis) for o, u in etas(events).items()} == {
        "A": (day(10), day(14), "purchase_order"),
        "B": (day(10), day(14), "purchase_order"),
    }
    assert "overdue purchase order re-planned: PO-SKU-1-0001 (due 2025-03-13)" in etas(events)["A"].reason
    # The job again the same day (a second instance, a restart) and on the days up to the revised
    # date finds nothing to do.
    for n in (11, 12, 13, 14):
        assert sku.send(ReplanOverdue(sku=SKU), on=day(n)) == []
    # The revised date passes too: one more slip, told once.
    slipped = sku.send(ReplanOverdue(sku=SKU), on=day(15))
    assert {o: u.eta for o, u in etas(slipped).items()} == {"A": day(18), "B": day(18)}
    # The supplier's word replaces the revision.
    noticed = sku.send(
        ShipmentNoticed(asn_id="ASN-1", po_id=PO_1, sku=SKU, quantity=5, expected_date=day(20)), on=day(16)
    )
    assert types(noticed) == ["ShipmentExpected", "BackorderEtaUpdated", "BackorderEtaUpdated"]
    assert {o: u.eta for o, u in etas(noticed).items()} == {"A": day(20), "B": day(20)}


def test_the_grace_days_are_a_policy() -> None:
    sku = Scenario(policy=PurchasePolicy(overdue_grace_days=7))
    sku.send(catalogue(terms(lead_time_days=10)))
    sku.queue(("A", 2))
    assert etas(sku.send(ReplanOverdue(sku=SKU), on=day(12)))["A"].eta == day(19)


# --- 3. sourcing ---------------------------------------------------------------------------------------


def test_a_change_of_suppliers_is_published_and_a_price_change_is_not() -> None:
    sku = Scenario()
    primary, alternate = terms("P"), terms("A", role="alternate", lead_time_days=2)
    events = sku.send(catalogue(alternate, primary))
    assert events[1] == SkuSourcingChanged(sku=SKU, supplier_ids=["P", "A"])  # primary first
    assert SkuSourcingChanged not in map(type, sku.send(catalogue(terms("P", unit_cost="6.00"), alternate)))
    assert sku.send(catalogue())[1] == SkuSourcingChanged(sku=SKU, supplier_ids=[])


def test_a_catalogue_set_before_sourcing_was_published_is_published_once() -> None:
    # A stream of an earlier release: its catalogue was recorded, inventory was never told.
    legacy = [SupplierTermsSet(sku=SKU, suppliers=[terms("A", role="alternate"), terms("P")], actor="a")]
    sku = Scenario(state=rebuild(SKU, legacy))
    assert sku.send(PublishSourcing(sku=SKU)) == [SkuSourcingChanged(sku=SKU, supplier_ids=["P", "A"])]
    assert sku.send(PublishSourcing(sku=SKU)) == []  # told: the catch-up finds nothing to do
    # Setting the same catalogue again on such a stream tells inventory as well.
    resent = Scenario(state=rebuild(SKU, legacy))
    assert resent.send(catalogue(terms("P"), terms("A", role="alternate")))[1:] == [
        SkuSourcingChanged(sku=SKU, supplier_ids=["P", "A"])
    ]
    # Without a supplier there is nothing to tell: inventory takes an unheard-of SKU as unsourced.
    unsourced = Scenario(state=rebuild(SKU, [SupplierTermsSet(sku=SKU, suppliers=[], actor="a")]))
    assert unsourced.send(PublishSourcing(sku=SKU)) == []
    assert unsourced.send(catalogue()) == [SupplierTermsSet(sku=SKU, suppliers=[], actor="admin")]


def test_a_line_without_a_supplier_is_promised_no_date_until_one_is_set() -> None:
    sku = Scenario()
    a = etas(sku.queue(("A", 2)))["A"]
    assert (a.eta, a.basis, a.reason) == (None, "no_supplier", "no supplier is known for this SKU")
    assert not sku.state.sourced
    events = sku.send(catalogue(terms(lead_time_days=4)))
    assert (etas(events)["A"].eta, etas(events)["A"].basis) == (day(4), "purchase_order")
    assert all(e.basis is not None for e in sku.stream if isinstance(e, BackorderEtaUpdated))


# --- 4. unconfirmed POs shrink or are cancelled when backorders are cancelled ---------------------------


def test_a_cancelled_backorder_shrinks_the_unconfirmed_po_to_what_is_still_needed() -> None:
    sku = Scenario()
    sku.send(catalogue(terms(lead_time_days=10, moq=3, pack=2)))
    sku.queue(("A", 4), ("B", 6))
    [po] = [p for p in sku.state.open_purchase_orders]
    assert (po.quantity, po.revision) == (10, 2)
    assert sku.send(released("B", backordered=6)) == []  # the queue's "left" that follows says it
    events = sku.queue(("A", 4))
    [reduced] = purchases(events)
    assert (reduced.po_id, reduced.revision, reduced.quantity) == (PO_1, 3, 4)
    assert reduced.expected_arrival == day(10)  # the same PO, the same date
    assert etas(events) == {}  # A keeps its date
    # The last line leaves: nothing needs the PO.
    events = sku.queue()
    assert types(events) == ["QueueLineChanged", "PurchaseOrderCancelled"]
    cancelled = events[1]
    assert isinstance(cancelled, PurchaseOrderCancelled)
    assert (cancelled.po_id, cancelled.supplier_id) == (PO_1, "S1")
    assert sku.state.open_purchase_orders == () and sku.state.on_order == 0
    po_after = sku.state.purchase_order(PO_1)
    assert po_after is not None and po_after.cancelled and po_after.outstanding == 0


def test_the_reorder_point_and_the_minimum_order_are_kept_when_shrinking() -> None:
    sku = Scenario()
    sku.send(catalogue(terms(lead_time_days=10, moq=5)))
    sku.send(
        ReorderPointReached(
            sku=SKU, on_hand=0, reserved=0, available=0, backordered=0, reorder_point=2, safety_stock=1
        )
    )
    sku.queue(("A", 3), ("B", 4))
    assert sku.state.on_order == 9  # 7 waiting + the reorder point
    sku.queue(("A", 3))
    assert sku.state.on_order == 5  # 3 + 2 = 5, also the supplier's minimum
    sku.queue()
    assert sku.state.on_order == 5  # the reorder point alone is below the minimum: the PO stays at it
    assert reduced_quantity(5, 3, terms(moq=5)) == 5


def test_released_reservations_shrink_the_po_too_but_a_confirmed_po_stays() -> None:
    sku = Scenario()
    sku.send(catalogue(terms(lead_time_days=10)))
    sku.queue(("A", 4))
    sku.send(ack(PO_1, 4, on=day(10)))
    events = sku.send(released("X", reserved=4))  # another order's 4 reserved units come free
    assert purchases(events) == [] and not any(isinstance(e, PurchaseOrderCancelled) for e in events)
    po = sku.state.purchase_order(PO_1)
    assert po is not None and (po.quantity, po.is_open) == (4, True)  # surplus is future stock
    events = sku.queue()
    assert purchases(events) == [] and sku.state.on_order == 4


class _Line:
    def __init__(self, order_id: str, quantity: int) -> None:
        self.order_id, self.line_id, self.quantity = order_id, "1", quantity


# --- 5. the contract's maximums ------------------------------------------------------------------------


def test_a_need_beyond_what_one_po_may_hold_is_bought_in_several() -> None:
    most = 1_000_000_000  # the contract's largest quantity
    sku = Scenario()
    sku.send(catalogue(terms(lead_time_days=10, pack=3)))
    sku.send(
        ReorderPointReached(
            sku=SKU, on_hand=0, reserved=0, available=0, backordered=0, reorder_point=most, safety_stock=0
        )
    )
    assert [p.quantity for p in sku.state.open_purchase_orders] == [999_999_999, 3]
    events = sku.queue(("A", most))
    # PO 2 cannot grow past the maximum: a third PO; every PO in whole packs within the maximum.
    assert [(p.po_id, p.quantity) for p in purchases(events)] == [("PO-SKU-1-0003", 999_999_999)]
    assert sku.state.on_order == 2_000_000_001 and sku.state.backordered == most
    assert etas(events)["A"].eta == day(10)
