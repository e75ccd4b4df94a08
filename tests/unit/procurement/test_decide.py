"""Procurement of one SKU driven through `decide`: purchases, ETAs, receipts, and rebuilding."""

import pickle
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from backbone.contracts.envelope import EventPayload, new_envelope
from backbone.contracts.events import (
    CONTRACT_EVENTS,
    BackorderEtaUpdated,
    BackorderFulfilled,
    BackorderQueueEntry,
    PurchaseOrderAcknowledged,
    PurchaseOrderIssued,
    ReorderPointReached,
    ShipmentNoticed,
    SkuSourcingChanged,
    StockReleased,
    StockShort,
)
from backbone.contracts.registry import EventRegistry
from services.procurement.domain import SetSupplierTerms, decide, evolve, initial_state, rebuild
from services.procurement.events import (
    PROCUREMENT_EVENTS,
    BackorderLineReduced,
    BackorderQueueRecorded,
    BackorderShortfallRecorded,
    SupplierTermsSet,
)
from services.procurement.handlers import concerns_procurement
from services.procurement.planning import PurchasePolicy
from tests.unit.procurement.scenario import (
    SKU,
    Scenario,
    catalogue,
    day,
    etas,
    joined,
    purchases,
    receipt,
    terms,
)


def ack(po_id: str, quantity: int, on: int) -> PurchaseOrderAcknowledged:
    return PurchaseOrderAcknowledged(
        po_id=po_id, sku=SKU, confirmed_quantity=quantity, confirmed_date=day(on)
    )


def asn(asn_id: str, po_id: str, quantity: int, on: int) -> ShipmentNoticed:
    return ShipmentNoticed(asn_id=asn_id, po_id=po_id, sku=SKU, quantity=quantity, expected_date=day(on))


def position(
    *, available: int, backordered: int, reorder_point: int, safety_stock: int
) -> ReorderPointReached:
    return ReorderPointReached(
        sku=SKU,
        on_hand=available,
        reserved=0,
        available=available,
        backordered=backordered,
        reorder_point=reorder_point,
        safety_stock=safety_stock,
    )


def two_purchase_orders() -> Scenario:
    """A and B (10 units) wait for PO-1, due day 10; C and D (10 units) for PO-2, due day 15."""
    sku = Scenario()
    sku.send(catalogue(terms(lead_time_days=10)))
    sku.queue(("A", 4), ("B", 6))
    sku.send(ack("PO-SKU-1-0001", 10, on=10))  # confirmed: a later need cannot enlarge it
    sku.queue(("A", 4), ("B", 6), ("C", 5), ("D", 5), on=day(5))
    return sku


# --- purchases --------------------------------------------------------------------------------------


def test_the_waiting_lines_and_the_target_level_are_bought_rounded_to_moq_and_packs() -> None:
    sku = Scenario()
    sku.queue(("A", 5), ("B", 4))  # no catalogue yet: nothing can be bought
    # Inventory's backordered figure is not taken: the queue's 9 units are.
    assert purchases(sku.send(position(available=1, backordered=0, reorder_point=5, safety_stock=2))) == []
    assert sku.state.backordered == 9
    events = sku.send(catalogue(terms(lead_time_days=7, moq=20, pack=6, unit_cost="2.50")))
    [po] = purchases(events)
    # need = 9 + max(5, 2) - (1 + 0) = 13 -> MOQ 20 -> 4 packs of 6 = 24
    assert (po.po_id, po.revision, po.quantity, po.supplier_id) == ("PO-SKU-1-0001", 1, 24, "S1")
    assert (po.unit_cost, po.currency, po.expected_arrival) == (
        terms(unit_cost="2.50").unit_cost,
        "EUR",
        day(7),
    )
    assert sku.state.on_order == 24


def test_a_reorder_point_buys_the_target_level() -> None:
    sku = Scenario()
    sku.send(catalogue(terms(pack=3)))
    [po] = purchases(sku.send(position(available=1, backordered=0, reorder_point=5, safety_stock=2)))
    assert po.quantity == 6  # need = 0 + max(5, 2) - 1 = 4 -> 2 packs of 3


def test_nothing_is_bought_while_supply_covers_the_need() -> None:
    sku = Scenario()
    sku.send(catalogue(terms()))
    sku.queue(("A", 5))
    assert purchases(sku.send(position(available=0, backordered=5, reorder_point=0, safety_stock=0))) == []


def test_more_demand_enlarges_the_unconfirmed_po_and_a_confirmed_one_gets_a_new_po() -> None:
    sku = Scenario()
    sku.send(catalogue(terms(moq=10, pack=5)))
    [first] = purchases(sku.queue(("A", 3)))
    assert (first.po_id, first.revision, first.quantity) == ("PO-SKU-1-0001", 1, 10)

    [enlarged] = purchases(sku.queue(("A", 3), ("B", 9)))
    assert (enlarged.po_id, enlarged.revision, enlarged.quantity) == ("PO-SKU-1-0001", 2, 15)

    sku.send(ack("PO-SKU-1-0001", 15, on=10))
    [second] = purchases(sku.queue(("A", 3), ("B", 9), ("C", 20)))
    assert (second.po_id, second.revision, second.quantity) == ("PO-SKU-1-0002", 1, 20)
    assert sku.state.on_order == 35


def test_a_po_is_not_enlarged_when_that_would_delay_lines_already_given_its_date() -> None:
    sku = Scenario()
    sku.send(catalogue(terms(lead_time_days=10)))
    sku.queue(("A", 3))
    [second] = purchases(sku.queue(("A", 3), ("B", 2), on=day(4)))
    assert (second.po_id, second.revision, second.expected_arrival) == ("PO-SKU-1-0002", 1, day(14))
    assert dict(sku.state.announced_etas) == {("A", "1"): day(10), ("B", "1"): day(14)}


def test_with_a_delay_tolerance_the_po_is_enlarged_and_no_sooner_than_a_fresh_one() -> None:
    sku = Scenario(policy=PurchasePolicy(enlarge_max_delay_days=7))
    sku.send(catalogue(terms(lead_time_days=10)))
    sku.queue(("A", 3))
    events = sku.queue(("A", 3), ("B", 2), on=day(4))
    [enlarged] = purchases(events)
    assert (enlarged.po_id, enlarged.revision, enlarged.quantity) == ("PO-SKU-1-0001", 2, 5)
    assert enlarged.expected_arrival == day(14)
    assert {o: (u.previous_eta, u.eta) for o, u in etas(events).items()} == {
        "A": (day(10), day(14)),
        "B": (None, day(14)),
    }


def test_a_sooner_alternate_within_the_premium_gets_the_po() -> None:
    sku = Scenario()
    primary = terms("P", lead_time_days=30, unit_cost="10.00")
    sooner = terms("ALT", lead_time_days=5, unit_cost="10.50", role="alternate")
    sku.send(catalogue(primary, sooner))
    [po] = purchases(sku.queue(("A", 2)))
    assert (po.supplier_id, po.expected_arrival) == ("ALT", day(5))


def test_the_primary_gets_the_po_when_no_alternate_is_worth_it() -> None:
    sku = Scenario()
    primary = terms("P", lead_time_days=10, unit_cost="10.00")
    dear = terms("ALT", lead_time_days=2, unit_cost="15.00", role="alternate")
    sku.send(catalogue(primary, dear))
    [po] = purchases(sku.queue(("A", 2)))
    assert po.supplier_id == "P"


def test_supplier_terms_are_recorded_and_a_catalogue_needs_one_primary() -> None:
    sku = Scenario()
    events = sku.send(catalogue(terms("P")))
    assert events == [
        SupplierTermsSet(sku=SKU, suppliers=[terms("P")], actor="admin"),
        SkuSourcingChanged(sku=SKU, supplier_ids=["P"]),
    ]
    with pytest.raises(ValidationError, match="exactly one primary"):
        SetSupplierTerms(sku=SKU, suppliers=[terms("A", role="alternate")], actor="admin")
    with pytest.raises(ValidationError, match="once per SKU"):
        SetSupplierTerms(sku=SKU, suppliers=[terms("P"), terms("P", role="alternate")], actor="admin")


def test_a_shortfall_is_bought_for_when_its_line_joins_the_queue() -> None:
    sku = Scenario()
    sku.send(catalogue(terms()))
    short = StockShort(
        order_id="A",
        line_id="1",
        sku=SKU,
        demanded=5,
        available=2,
        short_quantity=3,
        disposition="backordered",
    )
    assert not concerns_procurement(short)  # the "joined" that follows says it all
    events = sku.queue(("A", 3))
    assert purchases(events)[0].quantity == 3
    assert etas(events)["A"].eta == day(10)
    assert etas(events)["A"].reason.endswith("(new backorder)")
    # A redelivered join counts nothing twice.
    assert sku.send(joined("A", 3)) == []


def test_the_queue_tolerates_changes_of_lines_it_never_saw_and_corrections() -> None:
    sku = Scenario()
    sku.send(catalogue(terms(moq=10)))
    sku.queue(("A", 3), ("B", 2))
    # A line whose join was lost (retention): its reduction places it, and it learns its ETA.
    lost = sku.inventory.join("C", 4)
    events = sku.send(sku.inventory.reduce("C", 1))
    assert (sku.state.queue.units_of(("C", "1")), etas(events)["C"].eta) == (1, day(10))
    # A line that left unseen, and one leaving twice, change nothing.
    sku.inventory.join("D", 1)
    assert sku.send(sku.inventory.reduce("D", 0)) == []
    left = sku.inventory.reduce("A", 0)
    assert len(sku.send(left)) == 1 and sku.send(left) == []
    # A join repeated with another rank (a correction) moves the line and re-plans the queue.
    moved = lost.model_copy(update={"sequence": 99, "remaining": 1})
    assert [type(e).__name__ for e in sku.send(moved)] == ["QueueLineChanged"]
    assert list(sku.state.queue) == [("B", "1"), ("C", "1")]
    assert sku.state.backordered == 3


def test_a_rejected_shortfall_is_not_procurements_business() -> None:
    rejected = StockShort(
        order_id="A", line_id="1", sku=SKU, demanded=5, available=2, short_quantity=3, disposition="rejected"
    )
    assert not concerns_procurement(rejected)


def test_an_input_for_another_sku_is_refused() -> None:
    with pytest.raises(ValueError, match="stream of 'OTHER'"):
        decide(initial_state("OTHER"), joined("A", 1), today=day(0))


# --- ETAs ---------------------------------------------------------------------------------------------


def test_etas_are_assigned_across_two_purchase_orders() -> None:
    sku = two_purchase_orders()
    announced = etas(sku.stream)
    assert {o: (u.eta, u.po_id) for o, u in announced.items()} == {
        "A": (day(10), "PO-SKU-1-0001"),
        "B": (day(10), "PO-SKU-1-0001"),
        "C": (day(15), "PO-SKU-1-0002"),
        "D": (day(15), "PO-SKU-1-0002"),
    }
    assert announced["C"].reason.startswith("expected with purchase order PO-SKU-1-0002 on 2025-03-18")


def test_a_later_shipment_notice_re_plans_exactly_the_lines_it_delays() -> None:
    sku = two_purchase_orders()
    events = sku.send(asn("ASN-1", "PO-SKU-1-0001", 10, on=12), on=day(6))
    updated = etas(events)
    assert set(updated) == {"A", "B"}  # C and D wait for PO-2, whose date did not move
    assert [(u.previous_eta, u.eta) for u in updated.values()] == [(day(10), day(12))] * 2
    assert "shipment notice ASN-1" in updated["A"].reason
    assert purchases(events) == []


def test_a_partial_shipment_notice_delays_only_the_lines_served_by_its_units() -> None:
    sku = two_purchase_orders()
    # 6 of PO-1's 10 units are noticed for day 12; the other 4 keep the confirmed day 10 and serve A.
    updated = etas(sku.send(asn("ASN-1", "PO-SKU-1-0001", 6, on=12), on=day(6)))
    assert {o: u.eta for o, u in updated.items()} == {"B": day(12)}


def test_a_later_confirmed_date_re_plans_exactly_the_lines_of_that_po() -> None:
    sku = two_purchase_orders()
    updated = etas(sku.send(ack("PO-SKU-1-0002", 10, on=20), on=day(6)))
    assert {o: (u.previous_eta, u.eta) for o, u in updated.items()} == {
        "C": (day(15), day(20)),
        "D": (day(15), day(20)),
    }


def test_a_repeated_notice_changes_nothing() -> None:
    sku = two_purchase_orders()
    sku.send(asn("ASN-1", "PO-SKU-1-0001", 10, on=12))
    assert etas(sku.send(asn("ASN-1", "PO-SKU-1-0001", 10, on=12))) == {}


def test_lines_no_po_covers_get_no_eta_once() -> None:
    sku = Scenario()  # no supplier catalogue: nothing can be bought
    announced = etas(sku.queue(("A", 2)))
    only = announced["A"]
    assert (len(announced), only.eta, only.previous_eta, only.po_id) == (1, None, None, None)
    assert (only.basis, only.reason) == ("no_supplier", "no supplier is known for this SKU")
    assert set(etas(sku.queue(("A", 2), ("B", 1)))) == {"B"}
    assert etas(sku.queue(("A", 2), ("B", 1))) == {}
    # Once a PO covers them, both learn their date.
    updated = etas(sku.send(catalogue(terms(lead_time_days=3))))
    assert {o: (u.previous_eta, u.eta) for o, u in updated.items()} == {
        "A": (None, day(3)),
        "B": (None, day(3)),
    }


def test_a_line_that_leaves_the_queue_is_forgotten() -> None:
    sku = two_purchase_orders()
    cancelled = StockReleased(order_id="B", line_id="1", sku=SKU, released_reserved=0, dropped_backordered=6)
    assert sku.send(cancelled) == []  # the queue's "left" that follows says it
    events = sku.queue(("A", 4), ("C", 5), ("D", 5))
    # B's 6 units of PO-1 now serve C (5) and one unit of D; D's last unit still comes with PO-2.
    assert {o: u.eta for o, u in etas(events).items()} == {"C": day(10)}
    assert ("B", "1") not in sku.state.announced_etas
    assert sku.state.backordered == 14
    # Should B return, it is a new line and is announced again.
    assert "B" in etas(sku.queue(("A", 4), ("C", 5), ("D", 5), ("B", 6)))


# --- receipts -----------------------------------------------------------------------------------------


def test_a_partial_receipt_keeps_the_po_open_and_on_order_falls() -> None:
    sku = two_purchase_orders()
    events = sku.send(receipt("R-1", "PO-SKU-1-0001", 4, on=day(10)), on=day(10))
    po_1 = sku.state.purchase_order("PO-SKU-1-0001")
    assert po_1 is not None
    assert (po_1.is_open, po_1.received, po_1.outstanding) == (True, 4, 6)
    assert sku.state.on_order == 16
    assert sku.state.stock.free_stock == 4
    assert purchases(events) == []  # 4 units moved from on order to free stock: the need is unchanged
    assert etas(events) == {}  # arrived on the day it was due

    sku.send(receipt("R-2", "PO-SKU-1-0001", 6, on=day(11)), on=day(11))
    po_1 = sku.state.purchase_order("PO-SKU-1-0001")
    assert po_1 is not None
    assert not po_1.is_open
    assert sku.state.on_order == 10


def test_receipts_match_the_earliest_noticed_shipment_first() -> None:
    sku = two_purchase_orders()
    sku.send(asn("ASN-1", "PO-SKU-1-0001", 4, on=8))
    sku.send(asn("ASN-2", "PO-SKU-1-0001", 6, on=12))
    sku.send(receipt("R-1", "PO-SKU-1-0001", 4, on=day(8)), on=day(8))
    po_1 = sku.state.purchase_order("PO-SKU-1-0001")
    assert po_1 is not None
    assert [(b.expected_date, b.quantity) for b in po_1.arrivals()] == [(day(12), 6)]


def test_a_fill_seen_before_its_receipt_does_not_buy_the_units_again() -> None:
    sku = two_purchase_orders()
    fill = BackorderFulfilled(
        order_id="A",
        line_id="1",
        sku=SKU,
        quantity=4,
        remaining_backordered=0,
        source="R-1",
        priority_reason="first in line",
    )
    assert purchases(sku.send(fill, on=day(10))) == []
    assert sku.state.stock.free_stock == -4
    assert purchases(sku.send(receipt("R-1", "PO-SKU-1-0001", 4, on=day(10)))) == []
    assert sku.state.stock.free_stock == 0


def test_a_receipt_counts_once_even_if_the_adapter_sends_it_again() -> None:
    sku = two_purchase_orders()
    sku.send(receipt("R-1", "PO-SKU-1-0001", 4, on=day(10)))
    assert sku.send(receipt("R-1", "PO-SKU-1-0001", 4, on=day(10))) == []
    assert sku.state.on_order == 16


def test_a_late_receipt_does_not_re_announce_the_lines_it_is_about_to_fill() -> None:
    sku = two_purchase_orders()
    events = sku.send(receipt("R-1", "PO-SKU-1-0001", 10, on=day(13)), on=day(13))
    assert etas(events) == {}  # A and B hear of their fill, not of a "today" just before it
    assert sku.state.stock.free_stock == 10


def test_released_reservations_are_free_stock_that_fills_the_queue_without_a_purchase() -> None:
    sku = two_purchase_orders()
    released = StockReleased(order_id="X", line_id="1", sku=SKU, released_reserved=4, dropped_backordered=0)
    events = sku.send(released)
    # The 4 units serve A, so the unconfirmed PO-2 needs 4 fewer; no line's date moves.
    [reduced] = purchases(events)
    assert (reduced.po_id, reduced.revision, reduced.quantity) == ("PO-SKU-1-0002", 3, 6)
    assert etas(events) == {}
    assert sku.state.stock.free_stock == 4
    fill = BackorderFulfilled(
        order_id="A",
        line_id="1",
        sku=SKU,
        quantity=4,
        remaining_backordered=0,
        source="X",
        priority_reason="first in line",
    )
    events = sku.send(fill)
    assert purchases(events) == [] and etas(events) == {}
    assert (sku.state.stock.free_stock, sku.state.backordered) == (0, 16)
    # The snapshot inventory sends after the fill confirms it: nothing new to record.
    assert sku.queue(("B", 6), ("C", 5), ("D", 5)) == []


def test_a_refused_po_leaves_its_lines_uncovered_and_buys_again() -> None:
    sku = Scenario()
    sku.send(catalogue(terms(lead_time_days=10)))
    sku.queue(("A", 4))
    events = sku.send(ack("PO-SKU-1-0001", 0, on=10), on=day(1))
    [again] = purchases(events)
    assert (again.po_id, again.expected_arrival) == ("PO-SKU-1-0002", day(11))
    assert {o: (u.previous_eta, u.eta) for o, u in etas(events).items()} == {"A": (day(10), day(11))}


# --- rebuilding -------------------------------------------------------------------------------------


def test_folding_the_stream_rebuilds_the_live_state_also_after_a_round_trip_through_json() -> None:
    sku = two_purchase_orders()
    sku.send(position(available=0, backordered=20, reorder_point=5, safety_stock=2), on=day(6))
    sku.send(asn("ASN-1", "PO-SKU-1-0001", 10, on=12))
    sku.send(receipt("R-1", "PO-SKU-1-0001", 10, on=day(12)), on=day(12))
    sku.send(
        BackorderFulfilled(
            order_id="A",
            line_id="1",
            sku=SKU,
            quantity=4,
            remaining_backordered=0,
            source="R-1",
            priority_reason="first in line",
        )
    )
    sku.send(StockReleased(order_id="C", line_id="1", sku=SKU, released_reserved=1, dropped_backordered=2))
    sku.queue(("B", 6), ("C", 3), ("D", 5))
    sku.send(catalogue(terms(lead_time_days=10), terms("ALT", lead_time_days=1, role="alternate")))

    assert rebuild(SKU, sku.stream) == sku.state

    registry = EventRegistry((*CONTRACT_EVENTS, *PROCUREMENT_EVENTS))
    stored = [new_envelope(e, occurred_at=datetime(2025, 3, 3, tzinfo=UTC)).to_json() for e in sku.stream]
    assert rebuild(SKU, (registry.decode(raw).payload for raw in stored)) == sku.state


def test_evolve_refuses_events_of_other_streams() -> None:
    with pytest.raises(ValueError, match="not an event of a procurement stream"):
        evolve(initial_state(SKU), joined("A", 1))


def test_a_log_of_contract_1_still_folds_and_new_lines_queue_behind_its_lines() -> None:
    def eta(order_id: str) -> BackorderEtaUpdated:
        reason = "expected with purchase order PO-SKU-1-0001 on 2025-03-13 (backorder queue changed)"
        return BackorderEtaUpdated(
            order_id=order_id,
            line_id="1",
            sku=SKU,
            eta=day(10),
            previous_eta=None,
            po_id="PO-SKU-1-0001",
            reason=reason,
        )

    def line(order_id: str, quantity: int) -> BackorderQueueEntry:
        return BackorderQueueEntry(order_id=order_id, line_id="1", quantity=quantity)

    legacy: list[EventPayload] = [
        SupplierTermsSet(sku=SKU, suppliers=[terms()], actor="admin"),
        BackorderShortfallRecorded(sku=SKU, order_id="A", line_id="1", quantity=4),
        PurchaseOrderIssued(
            po_id="PO-SKU-1-0001",
            revision=1,
            supplier_id="S1",
            sku=SKU,
            quantity=10,
            unit_cost=terms().unit_cost,
            currency="EUR",
            expected_arrival=day(10),
        ),
        BackorderQueueRecorded(sku=SKU, entries=[line("A", 4), line("B", 6)]),
        eta("A"),
        eta("B"),
        BackorderLineReduced(sku=SKU, order_id="B", line_id="1", quantity=2, remaining=4, cause="released"),
        BackorderQueueRecorded(sku=SKU, entries=[line("X", 1), line("A", 4), line("B", 4)]),
        BackorderQueueRecorded(sku=SKU, entries=[line("A", 4), line("B", 4)]),  # X left again
    ]
    state = rebuild(SKU, legacy)
    assert [(key, units) for key, _, units in state.queue.items()] == [(("A", "1"), 4), (("B", "1"), 4)]
    assert (state.backordered, dict(state.announced_etas)) == (8, {("A", "1"): day(10), ("B", "1"): day(10)})
    sku = Scenario(state=state, stream=list(legacy))
    events = sku.send(joined("C", 3))  # 11 units wait now: the unconfirmed PO grows by one
    assert [(p.revision, p.quantity) for p in purchases(events)] == [(2, 11)]
    assert {o: u.eta for o, u in etas(events).items()} == {"C": day(10)}
    assert list(sku.state.queue) == [("A", "1"), ("B", "1"), ("C", "1")]


def test_a_state_survives_a_snapshot() -> None:
    sku = two_purchase_orders()
    sku.send(receipt("R-1", "PO-SKU-1-0001", 4, on=day(10)), on=day(10))
    assert pickle.loads(pickle.dumps(sku.state)) == sku.state
