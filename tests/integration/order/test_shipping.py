"""Shipments reported by a warehouse adapter (fulfilment topic) and the pick lists the order publishes."""

import json

import pytest
from aiokafka import AIOKafkaProducer

from backbone.contracts import dead_letter_topic
from backbone.testing.fixtures import publish, read_topic, unique_name
from tests.integration.order.harness import (
    dispatched,
    envelope,
    fill,
    line,
    order,
    order_json,
    order_when,
    reserved,
    serving,
    settings,
    short,
)

pytestmark = pytest.mark.integration


async def test_partial_and_final_shipments_close_the_order(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    orders, inventory, fulfilment = (f"{topic_prefix}{t}" for t in ("orders", "inventory", "fulfilment"))
    sku_a, sku_b = unique_name("BOOT"), unique_name("LACE")
    placed = order("S1", ("1", sku_a, 5, "3.00"), ("2", sku_b, 2, "1.00"))
    async with serving(settings(database_url, kafka_bootstrap, topic_prefix)) as http:
        assert (await http.post("/orders", json=order_json(placed))).status_code == 202
        await publish(
            producer,
            inventory,
            [envelope(short("S1", "1", sku_a, 5, 3)), envelope(reserved("S1", "2", sku_b, 2))],
        )
        view = await order_when(http, "S1", lambda v: v["status"] == "partially_backordered", "allocated")
        assert view["shippable_now_units"] == 5

        # The warehouse ships what may leave now, with tracking.
        first = dispatched("SH-1", "S1", ("1", sku_a, 3), ("2", sku_b, 2), tracking="JD0001")
        await publish(producer, fulfilment, [envelope(first)])
        view = await order_when(http, "S1", lambda v: v["shipped_units"] == 5, "first shipment")
        assert (view["status"], view["closed"], view["shippable_now_units"]) == (
            "partially_shipped",
            False,
            0,
        )
        line_1 = line(view, "1")
        assert (line_1["shipped"], line_1["allocated"], line_1["waiting"]) == (3, 3, 2)
        assert line_1["shipments"] == [
            {
                "shipment_id": "SH-1",
                "quantity": 3,
                "shipped_at": first.shipped_at.isoformat().replace("+00:00", "Z"),
                "carrier": "DHL",
                "tracking_number": "JD0001",
                "tracking_url": "https://track.example.com/JD0001",
            }
        ]
        assert [(s["shipment_id"], len(s["lines"])) for s in view["shipments"]] == [("SH-1", 2)]

        # Re-sent under the same shipment id: nothing changes. More than allocated: dead-lettered.
        await publish(
            producer, fulfilment, [envelope(first), envelope(dispatched("SH-2", "S1", ("1", sku_a, 1)))]
        )
        [dead] = await read_topic(kafka_bootstrap, dead_letter_topic(fulfilment), 1)
        reason = dict(dead.headers)["dlq_reason"].decode()
        assert "UnexpectedEvent" in reason
        assert (
            "shipment SH-2 ships 1 units of line 1 of order S1, which has 0 allocated and not yet shipped"
            in reason
        )
        assert (await http.get("/orders/S1")).json()["shipped_units"] == 5

        # The rest arrives and ships: the order is shipped and closed.
        await publish(producer, inventory, [envelope(fill("S1", "1", sku_a, 2, remaining=0))])
        await order_when(http, "S1", lambda v: v["shippable_now_units"] == 2, "filled")
        await publish(producer, fulfilment, [envelope(dispatched("SH-3", "S1", ("1", sku_a, 2)))])
        view = await order_when(http, "S1", lambda v: v["status"] == "shipped", "shipped")
        assert view["closed"] is True
        assert [s["shipment_id"] for s in line(view, "1")["shipments"]] == ["SH-1", "SH-3"]
        assert (await http.get("/health")).json()["dead_lettered"] == 1

        report = (await http.get("/reports")).json()
        assert {row["sku"]: row["shipped"] for row in report["demand_by_sku"]} == {sku_a: 5, sku_b: 2}
        assert report["orders_by_status"] == {"shipped": 1}

    # Each change of what may ship was published once, as the next revision of the pick list.
    records = await read_topic(kafka_bootstrap, orders, 5)
    pick_lists = [
        json.loads(r.value)["payload"]
        for r in records
        if r.key == b"S1" and dict(r.headers)["event_type"] == b"FulfilmentRequested"
    ]
    assert [
        (p["revision"], [(x["line_id"], x["quantity"], x["shipped"]) for x in p["lines"]], p["complete"])
        for p in pick_lists
    ] == [
        (1, [("1", 3, 0), ("2", 2, 0)], False),
        (2, [("1", 0, 3), ("2", 0, 2)], False),
        (3, [("1", 2, 3), ("2", 0, 2)], True),
        (4, [("1", 0, 5), ("2", 0, 2)], True),
    ]
