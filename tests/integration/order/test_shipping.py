"""Shipments through Kafka: the warehouse's announcement (fulfilment topic) and inventory's units (inventory
topic, StockShipped), joined by shipment id in either order, and the pick lists the order publishes."""

import json
from typing import Any

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
    stock_shipped,
)

pytestmark = pytest.mark.integration


def shipment(view: dict[str, Any], shipment_id: str) -> dict[str, Any] | None:
    return next((s for s in view["shipments"] if s["shipment_id"] == shipment_id), None)


async def test_shipments_join_announcement_and_inventory_units_in_either_order(
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

        # The warehouse announces what it shipped, with tracking: shown, but no unit counts as shipped
        # until inventory shipped it.
        first = dispatched("SH-1", "S1", ("1", sku_a, 3), ("2", sku_b, 2), tracking="JD0001")
        await publish(producer, fulfilment, [envelope(first)])
        view = await order_when(http, "S1", lambda v: shipment(v, "SH-1") is not None, "announced")
        assert (view["shipped_units"], view["status"]) == (0, "partially_backordered")
        shipped_at = first.shipped_at.isoformat().replace("+00:00", "Z")
        assert shipment(view, "SH-1") == {
            "shipment_id": "SH-1",
            "announced": True,
            "confirmed": False,
            "shipped_at": shipped_at,
            "carrier": "DHL",
            "tracking_number": "JD0001",
            "tracking_url": "https://track.example.com/JD0001",
            "lines": [
                {"line_id": "1", "sku": sku_a, "announced": 3, "shipped": 0},
                {"line_id": "2", "sku": sku_b, "announced": 2, "shipped": 0},
            ],
        }

        # Inventory ships it from the reservations.
        await publish(
            producer,
            inventory,
            [
                envelope(stock_shipped("SH-1", "S1", "1", sku_a, 3)),
                envelope(stock_shipped("SH-1", "S1", "2", sku_b, 2)),
            ],
        )
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
                "announced": 3,
                "shipped": 3,
                "confirmed": True,
                "shipped_at": shipped_at,
                "carrier": "DHL",
                "tracking_number": "JD0001",
                "tracking_url": "https://track.example.com/JD0001",
            }
        ]

        # Re-sent under the same shipment id: nothing changes. More than the line has to ship: shown,
        # unconfirmed (inventory refuses it). A line the order does not have: dead-lettered.
        await publish(
            producer,
            fulfilment,
            [
                envelope(first),
                envelope(dispatched("SH-2", "S1", ("1", sku_a, 1))),
                envelope(dispatched("SH-9", "S1", ("9", sku_a, 1))),
            ],
        )
        [dead] = await read_topic(kafka_bootstrap, dead_letter_topic(fulfilment), 1)
        reason = dict(dead.headers)["dlq_reason"].decode()
        assert "UnexpectedEvent" in reason and "shipment SH-9: order S1 has no line 9" in reason
        view = await order_when(http, "S1", lambda v: shipment(v, "SH-2") is not None, "SH-2 announced")
        assert (shipment(view, "SH-2") or {})["confirmed"] is False
        assert view["shipped_units"] == 5
        assert [s["shipment_id"] for s in view["shipments"]] == ["SH-1", "SH-2"]

        # The rest arrives; this time inventory's units come before the warehouse's announcement.
        await publish(producer, inventory, [envelope(fill("S1", "1", sku_a, 2, remaining=0))])
        await order_when(http, "S1", lambda v: v["shippable_now_units"] == 2, "filled")
        await publish(producer, inventory, [envelope(stock_shipped("SH-3", "S1", "1", sku_a, 2))])
        view = await order_when(http, "S1", lambda v: v["status"] == "shipped", "shipped")
        assert view["closed"] is True
        assert {k: v for k, v in (shipment(view, "SH-3") or {}).items() if k != "lines"} == {
            "shipment_id": "SH-3",
            "announced": False,
            "confirmed": True,
            "shipped_at": None,
            "carrier": None,
            "tracking_number": None,
            "tracking_url": None,
        }
        await publish(
            producer, fulfilment, [envelope(dispatched("SH-3", "S1", ("1", sku_a, 2), tracking="T3"))]
        )
        view = await order_when(
            http, "S1", lambda v: (shipment(v, "SH-3") or {}).get("announced") is True, "SH-3 announced"
        )
        assert (shipment(view, "SH-3") or {})["tracking_number"] == "T3"
        assert [(s["shipment_id"], s["shipped"]) for s in line(view, "1")["shipments"]] == [
            ("SH-1", 3),
            ("SH-2", 0),
            ("SH-3", 2),
        ]
        assert (view["status"], view["shipped_units"]) == ("shipped", 7)
        assert (await http.get("/health")).json()["dead_lettered"] == 1

        report = (await http.get("/reports")).json()
        assert {row["sku"]: row["shipped"] for row in report["demand_by_sku"]} == {sku_a: 5, sku_b: 2}
        assert report["orders_by_status"] == {"shipped": 1}

    # Each change of what shipped or may ship was published once, as the next revision of the pick
    # list; the announcements changed nothing of it.
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
