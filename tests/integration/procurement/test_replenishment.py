"""Demand-driven replenishment through the running service: inventory's reservations and shortfalls
fill the demand ledger, the review records closed days and lets auto mode raise the reorder point and buy
before the SKU runs out; the demand-signals report; the read models after `rebuild`.

The figures: a SKU that sells 50 units on its first day has d = 47.5 a day and sigma 50; with a quoted
lead time of 10 days at 95 %, safety stock 261 and reorder point 736 (tests/unit/procurement/
test_replenishment.py works them out).
"""

import json
from datetime import UTC, datetime, time
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from backbone.contracts import Envelope, new_envelope
from backbone.contracts.events import StockLevelChanged, StockReserved, StockShort
from backbone.testing.fixtures import publish, unique_name
from backbone.testing.service import run_rebuild
from backbone.testing.waiting import eventually
from tests.integration.procurement.harness import (
    FixedClock,
    cancelled,
    day,
    read_models,
    serving,
    set_catalogue,
    settings,
    sku_reaches,
    supplier,
    view_if,
)

pytestmark = pytest.mark.integration


def at(n: int, hour: int = 10) -> datetime:
    return datetime.combine(day(n), time(hour), tzinfo=UTC)


def reserved(sku: str, order_id: str, quantity: int, on: int) -> Envelope[Any]:
    return new_envelope(
        StockReserved(order_id=order_id, line_id="1", sku=sku, quantity=quantity), occurred_at=at(on)
    )


def short(sku: str, order_id: str, demanded: int, on: int, disposition: str = "backordered") -> Envelope[Any]:
    payload = StockShort(
        order_id=order_id,
        line_id="1",
        sku=sku,
        demanded=demanded,
        available=0,
        short_quantity=demanded,
        disposition=disposition,  # type: ignore[arg-type]
        reason=None if disposition == "backordered" else "backorders are not allowed",
    )
    return new_envelope(payload, occurred_at=at(on))


def level(sku: str, available: int) -> Envelope[Any]:
    return new_envelope(
        StockLevelChanged(sku=sku, on_hand=available, reserved=0, available=available, backordered=0)
    )


async def test_a_spike_in_auto_mode_raises_the_reorder_point_and_buys_before_the_shortfall(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    sku, quiet = unique_name("PROMO"), unique_name("QUIET")
    inventory = f"{topic_prefix}inventory"
    clock = FixedClock(day(0))
    config = settings(database_url, kafka_bootstrap, topic_prefix, overdue_check_interval_seconds=0.2)
    async with serving(config, clock) as http:
        for s in (sku, quiet):
            assert (await set_catalogue(http, s, supplier("ACME", lead_time_days=10))).status_code == 200
        await publish(producer, inventory, [level(sku, 950)])
        assert (await http.put(f"/skus/{sku}/replenishment", json={"mode": "auto"})).status_code == 200
        # A manual SKU's demand is counted too, but nothing is applied to it.
        assert (await http.put(f"/skus/{quiet}/replenishment", json={"mode": "manual"})).status_code == 200

        # The morning of the promotion: 50 units reserved, stock still 900 on hand.
        await publish(producer, inventory, [reserved(sku, f"o{i}", 5, on=0) for i in range(10)])
        await publish(producer, inventory, [level(sku, 900), reserved(quiet, "q1", 7, on=0)])

        # Within the review's interval the open day raises the levels (inventory is told): a target of
        # 736 against 900 free buys nothing yet.
        view = await eventually(
            lambda: _replenishment(http, sku, lambda v: v["reorder_point"] == 736),
            what="the auto reorder point",
        )
        assert view["safety_stock"] == 261 and view["open_day_units"] == 50
        assert view["recommendation"]["demand_per_day"] == 47.5
        assert not (await sku_reaches(http, sku, lambda v: True, "the SKU"))["open_purchase_orders"]

        # The afternoon sells 200 more. A day of 250 so far: d = 237.5, sigma 250, so safety stock
        # ceil(1.6449 * sqrt(10) * 250) = 1301 and reorder point 2375 + 1301 = 3676. Free stock 700 is
        # under it, so procurement buys the difference now, while inventory still has 700 units.
        await publish(producer, inventory, [reserved(sku, f"p{i}", 20, on=0) for i in range(10)])
        await publish(producer, inventory, [level(sku, 700)])
        await eventually(
            lambda: _replenishment(http, sku, lambda v: v["reorder_point"] == 3676), what="the spike's level"
        )
        bought = await sku_reaches(
            http, sku, lambda v: sum(p["quantity"] for p in v["open_purchase_orders"]) == 3676 - 700, "the PO"
        )
        assert bought["backordered"] == 0 and bought["reorder_point"] == 3676

        # Inventory hears each plan: ReorderPolicyPlanned on the procurement topic, with its inputs.
        plans = await _plans(kafka_bootstrap, f"{topic_prefix}procurement", last_reorder_point=3676)
        assert {p["sku"] for p in plans} == {sku}  # the manual SKU got none
        assert 736 in [p["reorder_point"] for p in plans]
        assert plans[-1]["safety_stock"] == 1301 and plans[-1]["lead_time_days"] == "10.0"

        # The next day the review records day 0 (250 units) in the stream; a late message for that day
        # counts on the next open day instead of changing a recorded one.
        clock.today = day(1)
        recorded = await eventually(
            lambda: _replenishment(http, sku, lambda v: v["demand_days"] == 1), what="day 0 recorded"
        )
        assert recorded["last_demand_day"] == day(0).isoformat()
        await publish(
            producer,
            inventory,
            [short(sku, "late", 4, on=0), cancelled(sku, "o1", reserved=0, backordered=3)],
        )
        await eventually(
            lambda: _replenishment(http, sku, lambda v: v["open_day_units"] == 4), what="late units"
        )

        # The quiet SKU: recorded, recommended, not applied.
        manual = await _replenishment(http, quiet, lambda v: v["demand_days"] == 1)
        assert manual is not None and not manual["applied"] and manual["reorder_point"] == 0
        assert manual["recommendation"]["reorder_point"] > 0

        async def signals_with_the_cancellation() -> dict[str, Any] | None:
            signals = (await http.get("/reports/demand-signals", params={"days": 7})).json()
            return signals if signals["cancelled_units"] == 3 else None

        signals = await eventually(signals_with_the_cancellation, what="the cancelled units")
        (top,) = [s for s in signals["most_backordered"] if s["sku"] == sku]
        assert (top["demanded"], top["backordered"], top["backorder_rate"]) == (254, 4, 4 * 100 / 254)
        assert [(s["sku"], s["cancelled"]) for s in signals["most_cancelled"]] == [(sku, 3)]

        before = await _read_model(http, database_url, sku)

    await run_rebuild("procurement", database_url)
    async with serving(config, clock) as http:
        assert await _read_model(http, database_url, sku) == before


async def test_bad_settings_get_a_422_and_unknown_skus_a_404(
    database_url: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    async with serving(settings(database_url, kafka_bootstrap, topic_prefix), FixedClock()) as http:
        for body in (
            {"mode": "sometimes"},
            {"mode": "auto", "service_level": 1},
            {"mode": "auto", "extra": 1},
        ):
            assert (await http.put("/skus/X/replenishment", json=body)).status_code == 422, body
        assert (await http.get(f"/skus/{unique_name('NONE')}/replenishment")).status_code == 404
        assert (await http.get("/reports/demand-signals", params={"days": 0})).status_code == 422


async def _replenishment(http: Any, sku: str, check: Any) -> dict[str, Any] | None:
    return await view_if(http, f"/skus/{sku}/replenishment", check)


async def _plans(bootstrap: str, topic: str, *, last_reorder_point: int) -> list[dict[str, Any]]:
    """The ReorderPolicyPlanned payloads on the topic, once the last one has the given reorder point."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    plans: list[dict[str, Any]] = []
    try:

        async def complete() -> bool:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for r in records:
                    message = json.loads(r.value)
                    if message["event_type"] == "ReorderPolicyPlanned":
                        plans.append(message["payload"])
            return bool(plans) and plans[-1]["reorder_point"] == last_reorder_point

        await eventually(complete, what=f"a ReorderPolicyPlanned to {last_reorder_point}")
        return plans
    finally:
        await consumer.stop()


async def _read_model(http: Any, database_url: str, sku: str) -> dict[str, Any]:
    """What a rebuild must give back: the views and the tables, less the review's own bookkeeping of
    which open-day units it looked at (a review may run in between)."""
    signals = (await http.get("/reports/demand-signals", params={"days": 7})).json()
    tables = await read_models(database_url)
    for row in tables["procurement_demand_days"]:
        del row["reviewed_demanded"]
    return {"view": await _replenishment(http, sku, lambda v: True), "signals": signals, **tables}
