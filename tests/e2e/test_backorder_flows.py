"""The backorder flow end to end, one customer story per test, as outsiders drive it.

The four services run as separate processes (tests/e2e/conftest.py); a test only publishes to Kafka as
checkout systems and supplier EDI adapters do, and calls the services' HTTP APIs as staff and customers do.
Each test uses SKUs and orders of its own, so they share one fleet.
"""

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from backbone.contracts import Topic
from backbone.testing.fixtures import read_topic, unique_name
from backbone.testing.fleet import Fleet
from backbone.testing.outsiders import Outsiders
from backbone.testing.waiting import eventually

pytestmark = pytest.mark.e2e

NORDWEAR = {"supplier_id": "nordwear", "lead_time_days": 10, "unit_cost": "40.00", "role": "primary"}


def line(view: dict, line_id: str = "1") -> dict:
    return next(x for x in view["lines"] if x["line_id"] == line_id)


def subjects(messages: list) -> list[str]:
    return [str(m["Subject"]) for m in messages]


async def test_a_promotion_sells_the_jacket_out_and_receipts_fill_the_queue_first_come_first_served(
    shop: Outsiders,
) -> None:
    jacket, run = unique_name("JACKET"), unique_name("promo")
    await shop.stock_up(jacket, 30)
    await shop.set_suppliers(jacket, NORDWEAR)
    start = datetime.now(UTC) - timedelta(minutes=10)
    orders = [f"{run}-{n}" for n in range(6)]
    placed_at = {order_id: start + timedelta(seconds=n) for n, order_id in enumerate(orders)}
    # The promotion: six customers, ten jackets each. The first three take the stock as they arrive.
    for order_id in orders[:3]:
        await shop.place_order(order_id, [(jacket, 10)], customer=order_id, placed_at=placed_at[order_id])
        await shop.order_status(order_id, "ready_to_ship")
    # The other three reach inventory in reverse (their checkout was slow to publish): the queue still
    # serves them by placement time.
    for order_id in reversed(orders[3:]):
        await shop.place_order(order_id, [(jacket, 10)], customer=order_id, placed_at=placed_at[order_id])
    for order_id in orders[3:]:
        view = await shop.order_when(
            order_id, "backordered with an ETA", lambda v: line(v)["eta"] is not None
        )
        assert view["status"] == "backordered" and line(view)["waiting"] == 10
    [po] = await shop.purchase_orders(jacket)
    assert po["quantity"] >= 30

    await shop.receive_goods(jacket, 15, po_id=po["po_id"])  # a partial delivery
    await shop.order_status(orders[3], "ready_to_ship")
    fifth = await shop.order_when(orders[4], "half filled", lambda v: line(v)["filled"] == 5)
    assert fifth["status"] == "partially_backordered" and line(fifth)["waiting"] == 5
    sixth = await shop.order_status(orders[5], "backordered")
    assert line(sixth)["filled"] == 0

    await shop.receive_goods(jacket, po["quantity"] - 15, po_id=po["po_id"])
    for order_id in orders[4:]:
        await shop.order_status(order_id, "ready_to_ship")
    audit = await shop.call("inventory", "GET", f"/skus/{jacket}/allocations")
    fills = [(a["order_id"], a["quantity"]) for a in audit if a["source"] != f"order {a['order_id']}"]
    assert fills == [(orders[3], 10), (orders[4], 5), (orders[4], 5), (orders[5], 10)]
    assert all(a["priority_reason"] for a in audit)

    # Each waiting customer heard: backordered (with the ETA), then fulfilled; the others nothing.
    for order_id in orders[3:]:
        told = subjects(await shop.emails_to(order_id, 2))
        assert any("backordered" in s for s in told), told
    assert shop.mail.to(f"{orders[0]}@example.com") == []


async def test_a_cancelled_order_frees_its_stock_for_the_next_in_the_queue(
    shop: Outsiders, fleet: Fleet
) -> None:
    boot, run = unique_name("BOOT"), unique_name("cancel")
    first, second, third = f"{run}-a", f"{run}-b", f"{run}-c"
    await shop.stock_up(boot, 10)
    await shop.place_order(first, [(boot, 10)], customer=first)
    await shop.order_status(first, "ready_to_ship")
    await shop.place_order(second, [(boot, 4)], customer=second)
    await shop.place_order(third, [(boot, 3)], customer=third)
    await shop.order_status(second, "backordered")
    await shop.order_status(third, "backordered")

    # The third customer gives up the backordered units; the first cancels the whole order.
    await shop.call("order", "POST", f"/orders/{third}/lines/1/cancel-backordered", json={})
    gave_up = await shop.order_status(third, "cancelled")
    assert line(gave_up)["cancelled"] == 3 and line(gave_up)["refunded"] == 3
    await shop.call("order", "POST", f"/orders/{first}/cancel")
    await shop.order_status(first, "cancelled")

    served = await shop.order_status(second, "ready_to_ship")
    assert line(served)["filled"] == 4
    stock = await shop.stock(boot)
    assert stock is not None
    assert (stock["on_hand"], stock["reserved"], stock["backordered"], stock["queue"]) == (10, 4, 0, [])
    refunds = [
        e
        for e in await _orders_topic(fleet, 9)
        if e["event_type"] == "RefundRequested" and e["key"] in (first, third)
    ]
    assert sorted((r["key"], r["payload"]["quantity"]) for r in refunds) == [(first, 10), (third, 3)]
    assert any("Cancellation" in s for s in subjects(await shop.emails_to(first, 2)))


async def test_a_later_ship_date_tells_exactly_the_affected_customers_the_new_eta(shop: Outsiders) -> None:
    tent, stove, run = unique_name("TENT"), unique_name("STOVE"), unique_name("asn")
    waiting_for_tents = [f"{run}-t1", f"{run}-t2"]
    waiting_for_stove = f"{run}-s1"
    for sku in (tent, stove):
        await shop.set_suppliers(sku, NORDWEAR)
    for order_id in waiting_for_tents:
        await shop.place_order(order_id, [(tent, 2)], customer=order_id)
    await shop.place_order(waiting_for_stove, [(stove, 1)], customer=waiting_for_stove)
    for order_id in [*waiting_for_tents, waiting_for_stove]:
        await shop.order_when(order_id, "an ETA", lambda v: line(v)["eta"] is not None)
        await shop.emails_to(order_id, 1)  # backordered, with the ETA
    [po] = await shop.purchase_orders(tent)
    promised = date.fromisoformat(po["expected_arrival"])

    later = promised + timedelta(days=9)
    await shop.notice_shipment(po["po_id"], tent, po["quantity"], later)
    for order_id in waiting_for_tents:
        view = await shop.order_when(order_id, "the later ETA", lambda v: line(v)["eta"] == later.isoformat())
        assert line(view)["previous_eta"] == promised.isoformat()
        [_, moved] = await shop.emails_to(order_id, 2)
        assert "New delivery date" in str(moved["Subject"])
    stove_view = await shop.order_when(waiting_for_stove, "unchanged", lambda v: line(v)["eta"] is not None)
    assert line(stove_view)["previous_eta"] is None
    # The stove customer's e-mails settle at one: nothing about a tent shipment reaches them.
    assert len(shop.mail.to(f"{waiting_for_stove}@example.com")) == 1


async def test_a_sku_that_denies_backorders_rejects_the_shortfall_and_tells_subscribers_on_restock(
    shop: Outsiders,
) -> None:
    lamp, run = unique_name("LAMP"), unique_name("deny")
    buyer, watcher = f"{run}-buyer", f"{run}-watcher"
    await shop.set_policy(lamp, "deny")
    await shop.stock_up(lamp, 2)
    await shop.place_order(buyer, [(lamp, 5)], customer=buyer)
    view = await shop.order_when(buyer, "decided", lambda v: line(v)["decided"])
    assert (line(view)["reserved_at_placement"], line(view)["rejected"], line(view)["backordered"]) == (
        2,
        3,
        0,
    )
    assert view["status"] == "ready_to_ship" and line(view)["rejection_reason"]
    [rejected] = await shop.emails_to(buyer, 1)
    assert "3 units" in str(rejected["Subject"]) and "could not be ordered" in str(rejected["Subject"])

    body = {"customer_id": watcher, "email": f"{watcher}@example.com"}
    await shop.call("notifier", "POST", f"/skus/{lamp}/subscriptions", expect=201, json=body)
    await shop.receive_goods(lamp, 10)
    [back] = await shop.emails_to(watcher, 1)
    assert "back in stock" in str(back["Subject"])
    await shop.receive_goods(lamp, 5)  # still in stock: no second message
    stock = await eventually(lambda: _stock_at(shop, lamp, 17), what=f"{lamp} on hand 17")
    assert stock and len(shop.mail.to(f"{watcher}@example.com")) == 1


async def test_a_backorder_past_its_maximum_wait_is_cancelled_and_refunded_once(
    shop: Outsiders, fleet: Fleet
) -> None:
    kettle, order_id = unique_name("KETTLE"), unique_name("maxwait")
    await shop.set_suppliers(kettle, NORDWEAR)
    await shop.place_order(
        order_id,
        [(kettle, 2)],
        customer=order_id,
        placed_at=datetime.now(UTC) - timedelta(days=3),  # an order imported late: its wait is over
        max_wait_days=2,
    )
    view = await shop.order_status(order_id, "cancelled")
    assert (line(view)["cancelled"], line(view)["refunded"], line(view)["waiting"]) == (2, 2, 0)

    await fleet.restart("order")  # the scheduler starts over: the cancellation must not repeat
    await shop.order_status(order_id, "cancelled")
    events = [e for e in await _orders_topic(fleet, 1) if e["key"] == order_id]
    history = (await shop.call("order", "GET", f"/orders/{order_id}"))["history"]
    assert [h["event_type"] for h in history].count("OrderCancelled") == 1
    cancellations = [e for e in events if e["event_type"] == "OrderCancelled"]
    assert len(cancellations) == 1 and cancellations[0]["payload"]["reason"] == "max_wait_exceeded"
    kinds = subjects(await shop.emails_to(order_id, 3))  # backordered, cancelled, refunded
    assert any("maximum wait" in s for s in kinds) and any("Refund" in s for s in kinds)


async def _stock_at(shop: Outsiders, sku: str, on_hand: int) -> bool:
    stock = await shop.stock(sku)
    return stock is not None and stock["on_hand"] == on_hand


async def _orders_topic(fleet: Fleet, at_least: int) -> list[dict]:
    records = await read_topic(fleet.kafka_bootstrap, fleet.topic(Topic.ORDERS), at_least)
    return [json.loads(r.value) for r in records]


async def test_a_sku_in_auto_mode_raises_its_reorder_point_on_a_spike_and_buys_before_it_runs_short(
    shop: Outsiders,
) -> None:
    # 1,000 in stock, bought in 5 days. A promotion sells 200 in the morning: d = 0.95 * 200 = 190 a day,
    # sigma 200, so at 95 % safety stock = ceil(1.6449 * sqrt(5 * 200^2)) = 736 and the reorder point
    # ceil(190 * 5) + 736 = 1,686 (services/procurement/forecast.py; the unit tests work it out).
    sku = unique_name("PROMO")
    await shop.stock_up(sku, 1000)
    await shop.set_suppliers(sku, {**NORDWEAR, "lead_time_days": 5})
    settings = await shop.call("procurement", "PUT", f"/skus/{sku}/replenishment", json={"mode": "auto"})
    assert settings["mode"] == "auto" and settings["recommendation"] is None  # nothing sold yet

    for n in range(20):
        await shop.place_order(f"promo-{sku}-{n}", [(sku, 10)], customer=f"fan-{n}")

    async def raised() -> dict | None:
        stock = await shop.stock(sku)
        return stock if stock is not None and stock["reorder_point"] == 1686 else None

    stock = await eventually(raised, timeout=45, what="inventory's reorder point raised by auto mode")
    assert (stock["safety_stock"], stock["available"], stock["backordered"]) == (736, 800, 0)
    assert stock["backorder_policy"] == "allow"  # the staff's policy stays

    async def bought() -> list | None:
        orders = await shop.purchase_orders(sku)
        return orders if sum(po["quantity"] for po in orders) == 1686 - 800 else None

    orders = await eventually(bought, timeout=45, what="the purchase up to the new reorder point")
    assert {po["supplier_id"] for po in orders} == {"nordwear"}
    assert (await shop.stock(sku) or {})["backordered"] == 0  # bought before any line had to wait

    view = await shop.call("procurement", "GET", f"/skus/{sku}/replenishment")
    assert view["open_day_units"] == 200 and view["recommendation"]["reorder_point"] == 1686
