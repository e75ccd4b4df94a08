"""Orders placed and cancelled over HTTP: what the API answers and what the order service publishes.

Cancellations are requests: the units count as cancelled, and are refunded, when inventory confirms."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from backbone.contracts.events import LineQuantity, OrderCancelled
from backbone.testing.fixtures import publish, read_topic
from tests.integration.order.harness import (
    envelope,
    history_types,
    line,
    order,
    order_json,
    order_when,
    released,
    reserved,
    serving,
    settings,
    short,
    stored_events,
)

pytestmark = pytest.mark.integration


def payloads(records: list[Any], order_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(event type, payload) of the messages about one order, in topic order."""
    found = []
    for record in records:
        body = json.loads(record.value)
        if record.key == order_id.encode():
            found.append((body["event_type"], body["payload"]))
    return found


async def test_orders_placed_and_cancelled_over_http_are_published(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    orders, inventory = f"{topic_prefix}orders", f"{topic_prefix}inventory"
    placed = order("W1", ("1", "SKU-X", 5, "10.00"), ("2", "SKU-Y", 3, "0.00"))
    async with serving(settings(database_url, kafka_bootstrap, topic_prefix)) as http:
        created = await http.post("/orders", json=order_json(placed))
        assert created.status_code == 202, created.text
        assert created.headers["location"] == "/orders/W1"
        assert (created.json()["status"], created.json()["ordered_units"]) == ("accepted", 8)
        assert history_types(created.json()) == ["OrderPlaced"]

        # An identical retry is accepted again without a second event; other content is a conflict.
        retried = await http.post("/orders", json=order_json(placed))
        assert retried.status_code == 202
        assert retried.json()["version"] == 1
        conflicting = order_json(placed) | {"urgent": True}
        refused = await http.post("/orders", json=conflicting)
        assert refused.status_code == 409
        assert refused.json()["detail"] == "order W1 already exists"

        # Invalid bodies: the contract's own validation reasons, nothing stored.
        bad = order_json(order("W2", ("1", "SKU-X", 5, "10.00")))
        bad["lines"][0]["quantity"] = "5"
        invalid = await http.post("/orders", json=bad)
        assert invalid.status_code == 422
        assert invalid.json()["detail"][0]["loc"] == ["lines", 0, "quantity"]
        assert invalid.json()["detail"][0]["msg"] == "Input should be a valid integer"
        duplicate_lines = order_json(order("W2", ("1", "SKU-X", 5, "1.00"), ("2", "SKU-Y", 1, "1.00")))
        duplicate_lines["lines"][1]["line_id"] = "1"
        invalid = await http.post("/orders", json=duplicate_lines)
        assert invalid.status_code == 422
        assert "line_id values must be unique" in invalid.json()["detail"][0]["msg"]
        assert (await http.post("/orders", content=b"{not json")).status_code == 422
        naive = order_json(order("W2", ("1", "SKU-X", 5, "1.00"))) | {"placed_at": "2026-11-25T09:00:00"}
        assert (await http.post("/orders", json=naive)).status_code == 422
        assert (await http.get("/orders/W2")).status_code == 404

        # Inventory (played here) reserves 2 of line 1, backorders 3, and reserves line 2 whole.
        await publish(
            producer,
            inventory,
            [envelope(short("W1", "1", "SKU-X", 5, 2)), envelope(reserved("W1", "2", "SKU-Y", 3))],
        )
        await order_when(http, "W1", lambda v: v["status"] == "partially_backordered", "allocated")

        too_many = await http.post("/orders/W1/lines/1/cancel-backordered", json={"quantity": 4})
        assert too_many.status_code == 422
        assert too_many.json()["detail"] == "line 1 has 3 units waiting, cannot cancel 4"
        assert (
            await http.post("/orders/W1/lines/1/cancel-backordered", json={"quantity": 0})
        ).status_code == 422
        assert (await http.post("/orders/W1/lines/1/cancel-backordered", json={"qty": 1})).status_code == 422
        assert (await http.post("/orders/W1/lines/9/cancel-backordered")).status_code == 404
        assert (await http.post("/orders/W1/lines/2/cancel-backordered")).status_code == 409  # nothing waits
        assert (await http.post("/orders/nope/cancel")).status_code == 404

        # A cancellation is a request: the units are cancelled and refunded when inventory confirms.
        partial = await http.post("/orders/W1/lines/1/cancel-backordered", json={"quantity": 1})
        assert partial.status_code == 200, partial.text
        assert partial.json()["events"] == ["OrderCancelled"]
        line_1 = line(partial.json()["order"], "1")
        assert (line_1["waiting"], line_1["cancellation_pending"], line_1["cancelled"]) == (3, 1, 0)
        await publish(
            producer,
            inventory,
            [envelope(released("W1", "1", "SKU-X", dropped=1, reason="customer_request"))],
        )
        view = await order_when(http, "W1", lambda v: line(v, "1")["refunded"] == 1, "refunded")
        line_1 = line(view, "1")
        assert (line_1["waiting"], line_1["cancelled"], line_1["refunded_amount"]) == (2, 1, "10.00")

        whole = await http.post("/orders/W1/cancel", json={"reason": "shop_request"})
        assert whole.status_code == 200, whole.text
        assert whole.json()["events"] == ["OrderCancelled", "FulfilmentRequested"]  # nothing may ship now
        assert whole.json()["order"]["shippable_now_units"] == 0
        again = await http.post("/orders/W1/cancel")
        assert again.status_code == 409
        assert again.json()["detail"] == "order W1 has no units left to cancel"
        await publish(
            producer,
            inventory,
            [
                envelope(released("W1", "1", "SKU-X", reserved=2, dropped=2, reason="shop_request")),
                envelope(released("W1", "2", "SKU-Y", reserved=3, reason="shop_request")),
            ],
        )
        view = await order_when(http, "W1", lambda v: v["status"] == "cancelled", "cancelled")
        assert view["closed"] is True
        # The releases are keyed by SKU (two partitions, no order between them); the refund follows line 1's.
        last = history_types(view)[-3:]
        assert sorted(last) == ["RefundRequested", "order.LineReleased", "order.LineReleased"]
        assert last[0] == "order.LineReleased"

        # Cancelled before inventory decided: kept pending, applied to its answer, refunded once.
        early_order = order("W4", ("1", "SKU-X", 2, "7.00"))
        assert (await http.post("/orders", json=order_json(early_order))).status_code == 202
        early = await http.post("/orders/W4/cancel")
        assert early.status_code == 200, early.text
        assert early.json()["events"] == ["OrderCancelled"]
        assert line(early.json()["order"], "1")["cancellation_pending"] == 2
        await publish(
            producer,
            inventory,
            [
                envelope(reserved("W4", "1", "SKU-X", 2)),
                envelope(released("W4", "1", "SKU-X", reserved=2, reason="customer_request")),
            ],
        )
        view = await order_when(http, "W4", lambda v: v["status"] == "cancelled", "cancelled early")
        assert (line(view, "1")["refunded"], line(view, "1")["refunded_amount"]) == (2, "14.00")

        # A cancellation published by checkout for an order it placed: recorded, refunded on release.
        checkout_order = order("W3", ("1", "SKU-X", 4, "2.00"))
        await publish(producer, orders, [envelope(checkout_order)])
        await publish(producer, inventory, [envelope(short("W3", "1", "SKU-X", 4, 0))])
        await order_when(http, "W3", lambda v: v["status"] == "backordered", "backordered")
        from_checkout = OrderCancelled(
            order_id="W3",
            lines=[LineQuantity(line_id="1", sku="SKU-X", quantity=4)],
            reason="customer_request",
            cancelled_at=datetime.now(UTC),
        )
        await publish(producer, orders, [envelope(from_checkout)])
        await order_when(
            http, "W3", lambda v: line(v, "1")["cancellation_pending"] == 4, "cancellation recorded"
        )
        await publish(producer, inventory, [envelope(released("W3", "1", "SKU-X", dropped=4))])
        view = await order_when(http, "W3", lambda v: v["status"] == "cancelled", "cancelled by checkout")
        assert history_types(view)[-3:] == [
            "order.ExternalCancellationRecorded",
            "order.LineReleased",
            "RefundRequested",
        ]

        # On the orders topic: the placement, its pick list, both cancellations with their refunds and
        # the pick list withdrawn (besides what the test itself published). Echoes changed nothing.
        records = await read_topic(kafka_bootstrap, orders, 13)
        published = payloads(records, "W1")
        assert [event_type for event_type, _ in published] == [
            "OrderPlaced",
            "FulfilmentRequested",
            "OrderCancelled",
            "RefundRequested",
            "OrderCancelled",
            "FulfilmentRequested",
            "RefundRequested",
        ]
        assert published[0][1]["lines"][0]["unit_price"] == "10.00"
        cancellations = [p for t, p in published if t == "OrderCancelled"]
        assert [
            (p["reason"], p["lines"], p["only_waiting"], p["cancellation_id"]) for p in cancellations
        ] == [
            ("customer_request", [{"line_id": "1", "sku": "SKU-X", "quantity": 1}], True, "W1:cancel:1"),
            (
                "shop_request",
                [
                    {"line_id": "1", "sku": "SKU-X", "quantity": 4},
                    {"line_id": "2", "sku": "SKU-Y", "quantity": 3},
                ],
                False,
                "W1:cancel:2",
            ),
        ]
        assert [
            (p["quantity"], p["amount"], p["reason"]) for t, p in published if t == "RefundRequested"
        ] == [
            (1, "10.00", "customer_request"),
            (4, "40.00", "shop_request"),  # line 2 was free of charge
        ]
        assert [p["revision"] for t, p in published if t == "FulfilmentRequested"] == [1, 2]
        assert [t for t, _ in payloads(records, "W3")] == ["OrderPlaced", "OrderCancelled", "RefundRequested"]
        assert [t for t, _ in payloads(records, "W4")] == ["OrderPlaced", "OrderCancelled", "RefundRequested"]
        health = (await http.get("/health")).json()
        assert health["dead_lettered"] == 0
        assert await stored_events(database_url, "W1", "OrderPlaced") == 1
