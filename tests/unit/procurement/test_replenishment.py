"""Demand-driven replenishment and supplier lateness in a SKU's decisions (pure: no I/O).

The figures are worked by hand from forecast.py's formulas: one closed day of 50 units starts the
estimate at z = 50, p = 1, so d = (1 - 0.1/2) * 50 / 1 = 47.5 a day; its squared error (50 - 0)^2 with
b = 0.1 over the one day counted gives sigma = 50. With the quoted lead time L = 10 (sigma_L 0) and
z(95 %) = 1.6449: safety stock = ceil(1.6449 * sqrt(10 * 50^2)) = ceil(260.07) = 261 and the reorder
point = ceil(47.5 * 10) + 261 = 736.
"""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from backbone.contracts.envelope import new_envelope
from backbone.contracts.events import (
    AUTO_REPLENISHMENT_ACTOR,
    CONTRACT_EVENTS,
    BackorderEtaUpdated,
    PurchaseOrderAcknowledged,
    PurchaseOrderCancelled,
    ReorderPolicyPlanned,
    SkuPolicyChanged,
    StockLevelChanged,
    StockReleased,
    StockReserved,
    StockShort,
)
from backbone.contracts.registry import EventRegistry
from services.procurement.demand import day_counts
from services.procurement.domain import (
    ReviewReplenishment,
    SetReplenishment,
    SupplierDelay,
    rebuild,
)
from services.procurement.events import (
    PROCUREMENT_EVENTS,
    DemandRecorded,
    ReorderLevelsRecorded,
    ReplenishmentSettingsChanged,
    SupplierDelayNoted,
)
from services.procurement.replenishment import DemandDay
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

ALTERNATE = terms("ALT", lead_time_days=8, unit_cost="5.25", role="alternate")  # 2 days sooner, +5 %


def settings(mode: str, level: str = "0.95") -> SetReplenishment:
    return SetReplenishment(sku=SKU, mode=mode, service_level=Decimal(level), actor="planner")  # type: ignore[arg-type]


def review(*days: tuple[date, int], today_units: int = 0, **delays: SupplierDelay) -> ReviewReplenishment:
    return ReviewReplenishment(
        sku=SKU,
        closed_days=tuple(DemandDay(d, units) for d, units in days),
        today_units=today_units,
        supplier_delays=tuple(delays.items()),
    )


def stock(available: int) -> StockLevelChanged:
    return StockLevelChanged(sku=SKU, on_hand=available, reserved=0, available=available, backordered=0)


def sourced(mode: str = "auto", available: int = 100) -> Scenario:
    sku = Scenario()
    sku.send(catalogue(terms(lead_time_days=10)))
    sku.send(stock(available))
    sku.send(settings(mode))
    return sku


def plans(events: list) -> list[ReorderPolicyPlanned]:
    return [e for e in events if isinstance(e, ReorderPolicyPlanned)]


def test_auto_mode_plans_the_reorder_point_from_a_closed_day_and_buys_up_to_it() -> None:
    sku = sourced("auto", available=100)

    events = sku.send(review((day(0), 50)), on=day(1))

    assert [type(e) for e in events][:2] == [DemandRecorded, ReorderPolicyPlanned]
    (plan,) = plans(events)
    assert (plan.reorder_point, plan.safety_stock) == (736, 261)
    assert plan.demand_per_day == Decimal("47.5") and plan.demand_sigma_per_day == Decimal("50")
    assert plan.lead_time_days == Decimal("10") and plan.service_level == Decimal("0.95")
    assert plan.planned_on == day(1)
    # Free stock 100 and nothing on order, against a target of 736: it buys the 636 before any shortfall.
    (po,) = purchases(events)
    assert (po.quantity, po.supplier_id, po.expected_arrival) == (636, "S1", day(11))
    assert (sku.state.stock.reorder_point, sku.state.stock.safety_stock) == (736, 261)


def test_a_retried_review_records_no_day_twice_and_plans_nothing_new() -> None:
    sku = sourced("auto")
    sku.send(review((day(0), 50)), on=day(1))

    assert sku.send(review((day(0), 50)), on=day(1)) == []
    assert sku.state.demand is not None and sku.state.demand.days_with_demand == 1


def test_within_the_day_a_spike_raises_the_levels_but_never_lowers_them() -> None:
    sku = sourced("auto", available=1000)

    (rise,) = plans(sku.send(review(today_units=50), on=day(0)))
    assert (rise.reorder_point, rise.safety_stock) == (736, 261)  # the open day looked at as a day of 50
    assert sku.state.demand is None  # ...but not recorded: it is not over

    assert plans(sku.send(review(today_units=50), on=day(0))) == []  # same figures: no news
    higher = plans(sku.send(review(today_units=80), on=day(0)))
    assert higher and higher[0].reorder_point > 736

    # The next morning the day closes at 80 units: the same figures as the intraday look, no new plan;
    # later quiet days may lower them, but only at a close.
    assert plans(sku.send(review((day(0), 80)), on=day(1))) == []


def test_suggest_and_manual_modes_record_demand_but_apply_nothing() -> None:
    for mode in ("suggest", "manual"):
        sku = sourced(mode)
        events = sku.send(review((day(0), 50)), on=day(1))

        assert [type(e) for e in events] == [DemandRecorded]
        recommended = sku.state.recommendation(day(1))
        assert recommended is not None and recommended.reorder_point == 736
        assert sku.state.stock.reorder_point == 0


def test_switching_to_auto_applies_what_the_recorded_demand_recommends_at_once() -> None:
    sku = sourced("suggest", available=100)
    sku.send(review((day(0), 50)), on=day(1))

    events = sku.send(settings("auto"), on=day(1))

    assert isinstance(events[0], ReplenishmentSettingsChanged)
    assert [(p.reorder_point, p.safety_stock) for p in plans(events)] == [(736, 261)]
    assert purchases(events)[0].quantity == 636
    assert sku.send(settings("auto"), on=day(1)) == []  # the same settings again change nothing


def test_no_demand_seen_plans_nothing_so_a_typed_in_level_stays() -> None:
    sku = sourced("suggest")
    sku.send(
        SkuPolicyChanged(sku=SKU, backorder_policy="allow", reorder_point=40, safety_stock=10, actor="ann")
    )

    assert plans(sku.send(settings("auto"), on=day(1))) == []
    assert (sku.state.stock.reorder_point, sku.state.stock.safety_stock) == (40, 10)
    assert sku.state.recommendation(day(1)) is None


def test_levels_typed_in_inventory_are_recorded_but_auto_modes_own_come_back_as_nothing() -> None:
    sku = sourced("manual")

    (recorded,) = sku.send(
        SkuPolicyChanged(sku=SKU, backorder_policy="allow", reorder_point=40, safety_stock=10, actor="ann")
    )
    assert isinstance(recorded, ReorderLevelsRecorded) and recorded.actor == "ann"
    echo = SkuPolicyChanged(
        sku=SKU, backorder_policy="allow", reorder_point=736, safety_stock=261, actor=AUTO_REPLENISHMENT_ACTOR
    )
    assert sku.send(echo) == []


def test_a_late_suppliers_etas_move_by_its_p80_and_the_reason_keeps_its_own_date() -> None:
    sku = Scenario()
    sku.send(catalogue(terms(lead_time_days=10)))
    (eta,) = etas(sku.send(joined("A", 5), on=day(0))).values()
    assert eta.eta == day(10)

    events = sku.send(review(S1=SupplierDelay(delay_days=4, receipts=12)), on=day(1))

    assert isinstance(events[0], SupplierDelayNoted) and events[0].delay_days == 4
    (moved,) = [e for e in events if isinstance(e, BackorderEtaUpdated)]
    assert (moved.eta, moved.previous_eta) == (day(14), day(10))
    assert f"supplier's date {day(10).isoformat()} + 4 days" in moved.reason
    # Staff keep the supplier's own date on the PO; customers are told the adjusted one.
    po = sku.state.purchase_order(moved.po_id or "")
    assert po is not None and po.due_date == day(10)
    # The same lateness again is no news.
    assert sku.send(review(S1=SupplierDelay(delay_days=4, receipts=13)), on=day(1)) == []


def test_a_delay_of_a_supplier_not_in_the_catalogue_is_not_recorded() -> None:
    sku = Scenario()
    sku.send(catalogue(terms(lead_time_days=10)))
    assert sku.send(review(OTHER=SupplierDelay(delay_days=4, receipts=12)), on=day(1)) == []


def test_a_habitually_late_primary_loses_the_next_purchase_to_a_punctual_alternate() -> None:
    primary, alternate = terms(lead_time_days=10), ALTERNATE
    on_time = Scenario()
    on_time.send(catalogue(primary, alternate))
    assert (
        purchases(on_time.send(joined("A", 5), on=day(0)))[0].supplier_id == "S1"
    )  # 2 days sooner: not enough

    late = Scenario()
    late.send(catalogue(primary, alternate))
    late.send(review(S1=SupplierDelay(delay_days=4, receipts=9)), on=day(0))
    events = late.send(joined("A", 5), on=day(0))

    (po,) = purchases(events)
    assert (po.supplier_id, po.expected_arrival) == ("ALT", day(8))  # 14 days (10 + 4) against 8
    assert etas(events)["A"].eta == day(8)


def test_receipts_teach_the_lead_time_that_the_recommendation_then_uses() -> None:
    sku = sourced("suggest", available=0)
    (po,) = purchases(sku.send(joined("A", 5), on=day(0)))
    sku.send(receipt("R-1", po.po_id, 5, on=day(16)), on=day(16))

    # From the quote of 10 days, beta 0.2: mean 10 + .2 * 6 = 11.2, variance .8 * .2 * 36 = 5.76.
    learnt = sku.state.lead_times["S1"]
    assert (learnt.mean_days, learnt.variance, learnt.count) == (pytest.approx(11.2), pytest.approx(5.76), 1)
    sku.send(review((day(16), 50)), on=day(17))
    recommended = sku.state.recommendation(day(17))
    assert recommended is not None and recommended.lead_time_days == pytest.approx(11.2)
    assert recommended.lead_time_sigma_days == pytest.approx(2.4)
    # SS = ceil(1.6449 * sqrt(11.2 * 50^2 + 47.5^2 * 5.76)) = ceil(1.6449 * 202.47) = ceil(333.04) = 334;
    # ROP = ceil(47.5 * 11.2) + 334 = 532 + 334.
    assert (recommended.safety_stock, recommended.reorder_point) == (334, 866)


def test_the_stream_rebuilds_the_replenishment_state_also_through_json() -> None:
    sku = sourced("auto", available=100)
    sku.send(review((day(0), 50), S1=SupplierDelay(delay_days=2, receipts=5)), on=day(1))
    sku.send(review((day(1), 20), (day(2), 70), today_units=30), on=day(3))

    assert rebuild(SKU, sku.stream) == sku.state
    registry = EventRegistry((*CONTRACT_EVENTS, *PROCUREMENT_EVENTS))
    stored = [new_envelope(e, occurred_at=datetime(2025, 3, 3, tzinfo=UTC)).to_json() for e in sku.stream]
    assert rebuild(SKU, (registry.decode(raw).payload for raw in stored)) == sku.state


def test_switching_to_auto_within_the_day_takes_the_open_days_units_too() -> None:
    sku = sourced("manual", available=1000)
    switch = SetReplenishment(
        sku=SKU, mode="auto", service_level=Decimal("0.95"), actor="planner", today_units=50
    )

    (plan,) = plans(sku.send(switch, on=day(0)))

    assert (plan.reorder_point, plan.safety_stock) == (736, 261)
    assert sku.state.demand is None  # the open day is looked at, recorded only once it is over


def test_the_ledger_counts_demand_per_day_and_not_units_switched_to_a_substitute() -> None:
    at = datetime(2030, 1, 7, 23, 59, tzinfo=UTC)
    batch = [
        new_envelope(StockReserved(order_id="o1", line_id="1", sku=SKU, quantity=3), occurred_at=at),
        new_envelope(
            StockShort(
                order_id="o1",
                line_id="1",
                sku=SKU,
                demanded=5,
                available=3,
                short_quantity=2,
                disposition="backordered",
            ),
            occurred_at=at,
        ),
        new_envelope(
            StockShort(
                order_id="o2",
                line_id="1",
                sku=SKU,
                demanded=4,
                available=0,
                short_quantity=4,
                disposition="rejected",
                reason="no backorders",
            ),
            occurred_at=at + timedelta(minutes=2),  # the next day
        ),
        new_envelope(
            StockReleased(order_id="o1", line_id="1", sku=SKU, released_reserved=0, dropped_backordered=2),
            occurred_at=at,
        ),
        new_envelope(
            StockReleased(
                order_id="o3",
                line_id="1",
                sku=SKU,
                released_reserved=0,
                dropped_backordered=6,
                substitution_id="s",
            ),
            occurred_at=at,
        ),
    ]

    counts = {
        day: (c.demanded, c.backordered, c.rejected, c.cancelled) for (_, day), c in day_counts(batch).items()
    }

    assert counts == {date(2030, 1, 7): (5, 2, 0, 2), date(2030, 1, 8): (4, 0, 4, 0)}


def test_an_unconfirmed_po_of_a_supplier_found_late_is_re_sourced_and_its_lines_get_the_better_date() -> None:
    sku = Scenario()
    sku.send(catalogue(terms(lead_time_days=10), ALTERNATE))
    (po,) = purchases(sku.send(joined("A", 5), on=day(0)))
    assert (po.supplier_id, po.expected_arrival) == ("S1", day(10))

    # On day 1 S1 turns out to deliver 6 days late: its PO would come on day 16, ALT's on day 9.
    events = sku.send(review(S1=SupplierDelay(delay_days=6, receipts=10)), on=day(1))

    (dropped,) = [e for e in events if isinstance(e, PurchaseOrderCancelled)]
    assert dropped.po_id == po.po_id and "re-sourced to ALT" in dropped.reason
    (bought,) = purchases(events)
    assert (bought.supplier_id, bought.quantity, bought.expected_arrival) == ("ALT", 5, day(9))
    assert etas(events)["A"].eta == day(9)


def test_a_confirmed_po_of_a_late_supplier_stays_and_its_lines_hear_the_later_date() -> None:
    sku = Scenario()
    sku.send(catalogue(terms(lead_time_days=10), ALTERNATE))
    (po,) = purchases(sku.send(joined("A", 5), on=day(0)))
    sku.send(PurchaseOrderAcknowledged(po_id=po.po_id, sku=SKU, confirmed_quantity=5, confirmed_date=day(10)))

    events = sku.send(review(S1=SupplierDelay(delay_days=6, receipts=10)), on=day(1))

    assert purchases(events) == [] and not [e for e in events if isinstance(e, PurchaseOrderCancelled)]
    assert etas(events)["A"].eta == day(16)
