"""The contract's size limit at the order service's edges: POST /orders refuses a larger body with 413,
and a compressed event too large to apply, on any topic the service consumes, is dead-lettered as a
reference while the service goes on."""

import hashlib
import json
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from backbone.contracts import Envelope
from backbone.contracts.limits import MAX_EVENT_BYTES
from backbone.testing.fixtures import publish, read_topic
from services.order.api import MAX_BODY_BYTES
from tests.integration.order.harness import (
    envelope,
    eta,
    order,
    order_json,
    order_when,
    reserved,
    serving,
    settings,
    short,
)

pytestmark = pytest.mark.integration


def padded(event: Envelope[Any], size: int) -> bytes:
    """The event's JSON with order lines added to its payload until it is `size` bytes or more."""
    data = json.loads(event.to_json())
    line = {"line_id": "0", "sku": "SKU-PAD", "quantity": 1, "unit_price": "9.90"}
    count = size // len(json.dumps(line)) + 1
    data["payload"]["lines"] = [{**line, "line_id": str(i)} for i in range(count)]
    return json.dumps(data).encode()


async def test_post_orders_refuses_a_body_over_the_limit_with_413(
    database_url: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    assert MAX_BODY_BYTES == MAX_EVENT_BYTES
    big = order_json(order("B1", ("1", "SKU-X", 1, "1.00")))
    big["lines"] = [
        {"line_id": str(i), "sku": "SKU-X", "quantity": 1, "unit_price": "1.00"} for i in range(20_000)
    ]
    body = json.dumps(big).encode()
    assert len(body) > MAX_BODY_BYTES
    many_lines = order(
        "B2",
        *((f"line-{i:03d}-{'x' * 100}", f"SKU-{i:03d}-{'y' * 100}", 1_000, "12345.67") for i in range(500)),
    )
    async with serving(settings(database_url, kafka_bootstrap, topic_prefix)) as http:
        refused = await http.post("/orders", content=body, headers={"content-type": "application/json"})
        assert refused.status_code == 413
        assert refused.json() == {"detail": f"the body exceeds the limit of {MAX_BODY_BYTES} bytes"}

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: refused while it streams
            for start in range(0, len(body), 64 * 1024):
                yield body[start : start + 64 * 1024]

        streamed = await http.post("/orders", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        assert (await http.get("/orders/B1")).status_code == 404

        # A large valid order (the most lines an order may have) is well within the limit.
        accepted = await http.post("/orders", json=order_json(many_lines))
        assert accepted.status_code == 202, accepted.text[:500]
        assert accepted.json()["ordered_units"] == 500_000


async def test_oversized_events_on_every_consumed_topic_are_dead_lettered_and_the_service_goes_on(
    database_url: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    producer: AIOKafkaProducer,
    gzip_producer: AIOKafkaProducer,
) -> None:
    orders, inventory, procurement = (f"{topic_prefix}{t}" for t in ("orders", "inventory", "procurement"))
    big_order = envelope(order("X1", ("1", "SKU-X", 1, "1.00")))
    big_short = envelope(short("X1", "1", "SKU-X", 1, 0))
    big_eta = envelope(eta("X1", "1", "SKU-X", date(2026, 12, 24)))
    huge = {
        orders: (big_order, padded(big_order, 10_000_000)),
        inventory: (big_short, padded(big_short, 10_000_000)),
        procurement: (big_eta, padded(big_eta, 10_000_000)),
    }
    async with serving(settings(database_url, kafka_bootstrap, topic_prefix)) as http:
        for topic, (event, value) in huge.items():
            await gzip_producer.send_and_wait(topic, value, key=event.key.encode(), headers=event.headers())
            await producer.send_and_wait(topic, b"{not json", key=event.key.encode(), headers=event.headers())
        placed = order("G1", ("1", "SKU-G", 2, "5.00"))
        await publish(producer, orders, [envelope(placed)])
        await publish(producer, inventory, [envelope(reserved("G1", "1", "SKU-G", 2))])
        await order_when(http, "G1", lambda v: v["status"] == "ready_to_ship", "reserved and ready")
        assert (await http.get("/orders/X1")).status_code == 404
        for topic, (_, value) in huge.items():
            dead = await read_topic(kafka_bootstrap, f"{topic}.dlq", 2)
            [reference] = [r for r in dead if dict(r.headers).get("dlq_truncated") == b"true"]
            headers = dict(reference.headers)
            assert headers["dlq_reason"].startswith(f"message too large: {len(value)} bytes".encode())
            assert headers["dlq_value_sha256"] == hashlib.sha256(value).hexdigest().encode()
            assert headers["dlq_service"] == b"order"
            assert reference.value == value[:4096]
        health = (await http.get("/health")).json()
        assert health["dead_lettered"] == 6
