"""The whole lifecycle of an order, end to end: shipping in parts, replays under new event ids, a
cancellation that overtakes inventory's answer, the maximum wait racing a fill, an unknown SKU and an
overdue purchase order. Outsiders only: checkout, supplier and warehouse adapters on Kafka, staff and
customers on HTTP. A module of its own (its fleet), because it counts messages on the topics.
"""

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from backbone.contracts import Topic, dead_letter_topic
from backbone.contracts.events import GoodsReceived, LineQuantity, OrderCancelled
from backbone.testing.fixtures import read_topic, unique_name
from backbone.testing.fleet import Fleet
from backbone.testing.outsiders import Json, Outsiders, Warehouse
from backbone.testing.waiting import eventually

pytestmark = pytest.mark.e2e

NORDWEAR = {"supplier_id": "nordwear", "lead_time_days": 10, "unit_cost": "40.00", "role": "primary"}


@pytest.fixture
async def warehouse(fleet: Fleet, producer: AIOKafkaProducer) -> AsyncIterator[Warehouse]:
    async with Warehouse(fleet, producer, fleet.kafka_bootstrap) as adapter:
        yield adapter


def line(view: Json, line_id: str = "1") -> Json:
    return next(x for x in view["lines"] if x["line_id"] == line_id)


def subjects(messages: list[Any]) -> list[str]:
    return [str(m["Subject"]) for m in messages]


async def stock_is(shop: Outsiders, sku: str, **figures: int) -> Json | None:
    stock = await shop.stock(sku)
    return stock if stock is not None and all(stock[k] == v for k, v in figures.items()) else None


async def records_of(fleet: Fleet, topic: Topic, key: str, at_least: int) -> list[Json]:
    records = await read_topic(fleet.kafka_bootstrap, fleet.topic(topic), at_least)
    return [json.loads(r.value) for r in records if r.key == key.encode()]


async def test_an_order_ships_in_parts_as_stock_arrives_and_closes_with_its_stock_conserved(
    shop: Outsiders, warehouse: Warehouse, fleet: Fleet
) -> None:
    jacket, boots, order_id = unique_name("JACKET"), unique_name("BOOTS"), unique_name("ship")
    await shop.stock_up(jacket, 5)
    await shop.stock_up(boots, 2)
    await shop.set_suppliers(jacket, NORDWEAR)
    await shop.place_order(order_id, [(jacket, 8), (boots, 2)], customer=order_id, unit_price="50.00")
    await shop.order_status(order_id, "partially_backordered")

    # ship_available: the warehouse gets what is in stock now, and ships it in two parcels.
    first = await warehouse.pick_list(order_id, "5 jackets, 2 boots", lambda p: p.revision >= 1)
    assert {x.line_id: x.quantity for x in first.lines} == {"1": 5, "2": 2} and not first.complete
    parcel = await warehouse.ship(first, quantities={"1": 3}, tracking_number="JD0001")
    view = await shop.order_status(order_id, "partially_shipped")
    assert (line(view)["shipped"], line(view)["allocated"], line(view)["waiting"]) == (3, 5, 3)
    assert view["shipments"][0]["tracking_number"] == "JD0001" and not view["closed"]
    second = await warehouse.pick_list(order_id, "the rest in stock", lambda p: p.revision > first.revision)
    assert {x.line_id: x.quantity for x in second.lines} == {"1": 2, "2": 2}
    await warehouse.ship(second, tracking_number="JD0002")
    await eventually(lambda: stock_is(shop, jacket, on_hand=0, reserved=0, backordered=3), what="jackets")

    # The backordered jackets arrive; the last parcel closes the order.
    await shop.receive_goods(jacket, 3)
    last = await warehouse.pick_list(order_id, "the filled jackets", lambda p: p.complete)
    assert {x.line_id: x.quantity for x in last.lines if x.quantity} == {"1": 3}
    await warehouse.ship(last, tracking_number="JD0003")
    view = await shop.order_when(order_id, "closed", lambda v: v["closed"])
    assert view["status"] == "shipped" and (line(view)["shipped"], line(view, "2")["shipped"]) == (8, 2)

    # Stock is conserved: on hand = received + adjustments - shipped; nothing stays reserved.
    for sku, on_hand in ((jacket, 5 + 3 - 8), (boots, 2 - 2)):
        assert await stock_is(shop, sku, on_hand=on_hand, reserved=0, backordered=0)

    # The warehouse re-sends the first parcel under a new event id: nothing changes. With another content
    # under the same shipment id, it is dead-lettered, saying why.
    await shop.publish(Topic.FULFILMENT, parcel)
    changed = parcel.model_copy(update={"lines": [parcel.lines[0].model_copy(update={"quantity": 1})]})
    await shop.publish(Topic.FULFILMENT, changed)
    dead = await read_topic(fleet.kafka_bootstrap, dead_letter_topic(fleet.topic(Topic.FULFILMENT)), 3)
    reasons = {dict(r.headers)["dlq_service"]: dict(r.headers)["dlq_reason"].decode() for r in dead}
    assert set(reasons) == {b"order", b"inventory", b"notifier"}
    assert all(f"'{parcel.shipment_id}' was applied before with other content" in r for r in reasons.values())
    assert await stock_is(shop, jacket, on_hand=0, reserved=0)
    assert (await shop.call("order", "GET", f"/orders/{order_id}"))["shipped_units"] == 10

    # The customer heard of each parcel once, with its tracking number.
    mails = await shop.emails_to(order_id, 5)  # backordered, 3 x shipped, fulfilled
    tracked = sorted(
        number
        for m in mails
        if "shipped" in str(m["Subject"])
        for number in ("JD0001", "JD0002", "JD0003")
        if number in m.get_body().get_content()
    )
    assert tracked == ["JD0001", "JD0002", "JD0003"]


async def test_a_receipt_resent_under_a_new_event_id_adds_its_goods_once(
    shop: Outsiders, fleet: Fleet
) -> None:
    tent, order_id = unique_name("TENT"), unique_name("replay")
    await shop.stock_up(tent, 1)
    await shop.set_suppliers(tent, NORDWEAR)
    await shop.place_order(order_id, [(tent, 4)], customer=order_id)
    await shop.order_status(order_id, "partially_backordered")
    receipt = GoodsReceived(
        receipt_id=unique_name("GRN"), sku=tent, quantity=2, received_at=datetime.now(UTC)
    )
    for _ in range(3):  # the supplier adapter retries with a fresh envelope each time
        await shop.publish(Topic.SUPPLIER, receipt)
    view = await shop.order_when(order_id, "filled", lambda v: line(v)["filled"] == 2)
    assert line(view)["waiting"] == 1
    # A later receipt proves the replays were consumed (one partition per SKU: in order) and not counted.
    await shop.receive_goods(tent, 5)
    stock = await eventually(lambda: stock_is(shop, tent, on_hand=1 + 2 + 5), what="stock after receipts")
    assert (stock["reserved"], stock["available"], stock["backordered"]) == (4, 4, 0)
    await shop.order_when(order_id, "ready", lambda v: line(v)["filled"] == 3)


async def test_an_order_resent_after_a_rejected_line_changes_nothing_and_can_still_be_cancelled(
    shop: Outsiders,
) -> None:
    lamp, order_id = unique_name("LAMP"), unique_name("resent")
    await shop.set_policy(lamp, "deny")
    await shop.stock_up(lamp, 1)
    order = await shop.place_order(order_id, [(lamp, 3)], customer=order_id, unit_price="30.00")
    view = await shop.order_when(order_id, "decided", lambda v: line(v)["decided"])
    assert (line(view)["reserved_at_placement"], line(view)["rejected"]) == (1, 2)
    await shop.publish(Topic.ORDERS, order)  # the checkout re-sends it under a new event id
    await shop.stock_up(lamp, 5)  # later stock must not reach the rejected units
    await eventually(lambda: stock_is(shop, lamp, on_hand=6, reserved=1), what=f"{lamp} restocked")
    await shop.call("order", "POST", f"/orders/{order_id}/cancel")
    view = await shop.order_when(order_id, "cancelled and refunded", lambda v: line(v)["refunded"] == 1)
    assert view["status"] == "cancelled" and view["closed"]
    assert await eventually(lambda: stock_is(shop, lamp, on_hand=6, reserved=0), what="released")


async def test_a_cancellation_published_before_inventorys_answer_releases_and_refunds_the_units(
    shop: Outsiders,
) -> None:
    stove, order_id = unique_name("STOVE"), unique_name("early")
    await shop.stock_up(stove, 5)
    await shop.set_suppliers(stove, NORDWEAR)
    await shop.place_order(order_id, [(stove, 7)], customer=order_id, unit_price="10.00")
    # The checkout cancels at once: the order service sees this before inventory's StockReserved.
    cancellation = OrderCancelled(
        order_id=order_id,
        lines=[LineQuantity(line_id="1", sku=stove, quantity=7)],
        reason="customer_request",
        cancelled_at=datetime.now(UTC),
        cancellation_id=f"{order_id}-checkout-cancel",
    )
    await shop.publish(Topic.ORDERS, cancellation)
    view = await shop.order_when(order_id, "refunded", lambda v: line(v)["refunded"] == 7)
    assert (view["status"], line(view)["cancelled"], line(view)["waiting"], line(view)["allocated"]) == (
        "cancelled",
        7,
        0,
        0,
    )
    assert line(view)["refunded_amount"] == "70.00"
    assert await eventually(lambda: stock_is(shop, stove, on_hand=5, reserved=0, backordered=0), what="free")
    # The last message about the line is the refund; none after the cancellation says it still waits.
    told = await eventually(lambda: refund_told(shop, order_id), what="the refund e-mail")
    assert "Refund" in told[-1]
    cancelled_at = next(n for n, s in enumerate(told) if "Cancellation" in s)
    assert not any("backordered" in s for s in told[cancelled_at:]), told


async def refund_told(shop: Outsiders, order_id: str) -> list[str]:
    told = subjects(shop.mail.to(f"{order_id}@example.com"))
    return told if any("Refund" in s for s in told) else []


async def test_the_maximum_wait_racing_a_fill_keeps_the_fill_and_refunds_only_what_still_waited(
    shop: Outsiders, fleet: Fleet
) -> None:
    kettle, order_id = unique_name("KETTLE"), unique_name("race")
    await shop.set_suppliers(kettle, NORDWEAR)
    await shop.place_order(
        order_id,
        [(kettle, 4)],
        customer=order_id,
        unit_price="20.00",
        placed_at=datetime.now(UTC) - timedelta(days=3),
        max_wait_days=2,  # over already: the auto-cancel runs as soon as the line is backordered
    )
    # Backordered first (goods that reached inventory before the order would be reserved at placement,
    # and nothing would race); then the receipt races the auto-cancel on its way to inventory.
    await shop.order_when(order_id, "decided", lambda v: line(v)["decided"])
    await shop.receive_goods(kettle, 2)
    view = await shop.order_when(
        order_id,
        "refunded",
        lambda v: line(v)["waiting"] == 0 and line(v)["refunded"] == line(v)["cancelled"] > 0,
    )
    filled, cancelled = line(view)["filled"], line(view)["cancelled"]
    assert filled + cancelled == 4 and filled in (0, 2)  # whichever won: a fill that won is kept
    assert line(view)["refunded_amount"] == f"{cancelled * 20}.00"
    books = await eventually(lambda: stock_is(shop, kettle, on_hand=2, backordered=0), what="the books")
    assert books["reserved"] == filled
    refunds = [
        e for e in await records_of(fleet, Topic.ORDERS, order_id, 1) if e["event_type"] == "RefundRequested"
    ]
    assert [r["payload"]["quantity"] for r in refunds] == [cancelled]
    # The last message about the line is the refund of what was cancelled, never a refund of filled units.
    told = await eventually(lambda: refund_told(shop, order_id), what="the refund e-mail")
    assert f"for {cancelled} units" in told[-1], told


async def test_an_unknown_sku_is_rejected_with_the_reason_and_the_customer_is_told(shop: Outsiders) -> None:
    ghost, order_id = unique_name("GHOST"), unique_name("unknown")
    await shop.place_order(order_id, [(ghost, 2)], customer=order_id)
    view = await shop.order_when(order_id, "decided", lambda v: line(v)["decided"])
    assert (view["status"], line(view)["rejected"], line(view)["backordered"]) == ("rejected", 2, 0)
    assert line(view)["rejection_reason"] == "unknown SKU: never stocked and no supplier is known"
    [mail] = await shop.emails_to(order_id, 1)
    assert "could not be ordered" in str(mail["Subject"])
    assert "never stocked it and know of no supplier" in mail.get_body().get_content()


async def test_a_purchase_order_overdue_by_a_day_is_re_planned_and_its_customers_told_once(
    shop: Outsiders,
) -> None:
    boot, order_id = unique_name("BOOT"), unique_name("overdue")
    await shop.set_suppliers(boot, NORDWEAR)
    await shop.place_order(order_id, [(boot, 3)], customer=order_id)
    view = await shop.order_when(order_id, "an ETA", lambda v: line(v)["eta"] is not None)
    [po] = await shop.purchase_orders(boot)
    today = datetime.now(UTC).date()
    # The supplier confirms a date that passed yesterday: the goods are overdue before they are due.
    await shop.acknowledge(po["po_id"], boot, po["quantity"], today - timedelta(days=1))
    revised = await shop.order_when(order_id, "a new ETA", lambda v: line(v)["eta"] != line(view)["eta"])
    eta = date.fromisoformat(line(revised)["eta"])
    assert eta >= today and line(revised)["previous_eta"] == line(view)["eta"]
    told = subjects(await shop.emails_to(order_id, 2))
    assert "backordered" in told[0] and "New delivery date" in told[1]
    po = (await shop.purchase_orders(boot))[0]
    assert date.fromisoformat(po["due_date"]) == eta
