"""Messages that break the contract, on every topic a service consumes, while good ones keep flowing:
too large (a gzip-compressed ~10 MB value the broker accepts), not JSON, invalid, an unknown or misplaced
event type in the headers, headers that disagree with the body."""

import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from backbone.consumer import ConsumerLoop
from backbone.contracts import Envelope, new_envelope
from backbone.contracts.events import (
    Customer,
    GoodsReceived,
    OrderLine,
    OrderPlaced,
    PurchaseOrderIssued,
    StockReserved,
)
from backbone.contracts.limits import MAX_EVENT_BYTES
from backbone.db import create_pool
from backbone.deadletter import PREVIEW_BYTES
from backbone.kafka import ensure_topics
from backbone.testing.background import running
from backbone.testing.fixtures import publish, read_topic
from backbone.testing.waiting import eventually

pytestmark = pytest.mark.integration

KAFKA_DEFAULT_MESSAGE_BYTES = 1_048_588
HANDLED = ["OrderPlaced", "OrderCancelled", "StockReserved", "PurchaseOrderIssued", "GoodsReceived"]


def order(order_id: str) -> Envelope[Any]:
    return new_envelope(
        OrderPlaced(
            order_id=order_id,
            customer=Customer(customer_id="c-1", email="ana@example.com"),
            lines=[OrderLine(line_id="1", sku="SKU-1", quantity=2, unit_price=Decimal("9.90"))],
            placed_at=datetime.now(UTC),
        )
    )


def good_event(topic: str, n: int) -> Envelope[Any]:
    """A handled event of the topic (the suffix of its name)."""
    if topic.endswith("orders"):
        return order(f"o-{n}")
    if topic.endswith("inventory"):
        return new_envelope(StockReserved(order_id=f"o-{n}", line_id="1", sku="SKU-1", quantity=1))
    if topic.endswith("procurement"):
        return new_envelope(
            PurchaseOrderIssued(
                po_id=f"PO-{n}",
                revision=1,
                supplier_id="acme",
                sku="SKU-1",
                quantity=10,
                unit_cost=Decimal("1.00"),
                currency="EUR",
                expected_arrival=date(2026, 12, 24),
            )
        )
    return new_envelope(
        GoodsReceived(receipt_id=f"GRN-{n}", sku="SKU-1", quantity=5, received_at=datetime.now(UTC))
    )


def oversized(event: Envelope[Any]) -> bytes:
    """The event's JSON with 10 MB more of order lines in its payload (highly compressible, as JSON is)."""
    data = json.loads(event.to_json())
    data["payload"]["lines"] = [
        {"line_id": str(i), "sku": f"SKU-{i % 97}", "quantity": 1, "unit_price": "9.90"}
        for i in range(160_000)
    ]
    value = json.dumps(data).encode()
    assert len(value) > 10 * MAX_EVENT_BYTES
    return value


def with_extra_field(event: Envelope[Any]) -> bytes:
    data = json.loads(event.to_json())
    data["payload"]["surprise"] = 1
    return json.dumps(data).encode()


@dataclass
class Setup:
    topics: list[str]
    pool: asyncpg.Pool
    loop: ConsumerLoop


class Applied:
    """Records the ids of the events it is given."""

    async def __call__(self, conn: asyncpg.Connection, events: Sequence[Envelope[Any]]) -> None:
        await conn.executemany("INSERT INTO applied (event_id) VALUES ($1)", [(e.event_id,) for e in events])


async def applied(pool: asyncpg.Pool) -> set[UUID]:
    return {r["event_id"] for r in await pool.fetch("SELECT event_id FROM applied")}


@pytest.fixture
async def setup(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> AsyncIterator[Setup]:
    topics = [f"{topic_prefix}{name}" for name in ("orders", "inventory", "procurement", "supplier")]
    await ensure_topics(kafka_bootstrap, [*topics, *(f"{t}.dlq" for t in topics)], 1, 1)
    pool = await create_pool(database_url)
    await pool.execute("CREATE TABLE applied (event_id uuid PRIMARY KEY)")
    loop = ConsumerLoop(
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{topic_prefix}group",
        topics=topics,
        pool=pool,
        handler=Applied(),
        dead_letter_producer=producer,  # the service's own producer, as runtime passes it
        service="test",
        handles=HANDLED,
    )
    yield Setup(topics, pool, loop)
    await pool.close()


def headers_of(record: ConsumerRecord[bytes, bytes]) -> dict[str, bytes]:
    return dict(record.headers)


async def test_oversized_and_poison_messages_on_every_topic_are_dead_lettered_and_good_ones_apply(
    setup: Setup, producer: AIOKafkaProducer, gzip_producer: AIOKafkaProducer, kafka_bootstrap: str
) -> None:
    goods: list[Envelope[Any]] = []
    huge: dict[str, bytes] = {}
    for n, topic in enumerate(setup.topics):
        before, after, big = (
            good_event(topic, 10 * n),
            good_event(topic, 10 * n + 1),
            good_event(topic, 10 * n + 2),
        )
        goods += [before, after]
        huge[topic] = oversized(big)
        await publish(producer, topic, [before])
        await gzip_producer.send_and_wait(topic, huge[topic], key=big.key.encode(), headers=big.headers())
        poison = good_event(topic, 10 * n + 3)
        await producer.send_and_wait(topic, b"{not json", key=b"k", headers=poison.headers())
        await producer.send_and_wait(topic, with_extra_field(poison), key=b"k", headers=poison.headers())
        await publish(producer, topic, [after])

    async with running(setup.loop.run()):
        await eventually(
            lambda: _has(applied(setup.pool), {e.event_id for e in goods}), what="every good event applied"
        )
        letters = {topic: await read_topic(kafka_bootstrap, f"{topic}.dlq", 3) for topic in setup.topics}
    assert await applied(setup.pool) == {e.event_id for e in goods}

    for topic, dead in letters.items():
        assert len(dead) == 3
        reference, not_json, invalid = sorted(dead, key=lambda r: int(headers_of(r)["dlq_source_offset"]))
        h = headers_of(reference)
        assert h["dlq_reason"].startswith(f"message too large: {len(huge[topic])} bytes".encode())
        assert h["dlq_truncated"] == b"true"
        assert h["dlq_value_bytes"] == str(len(huge[topic])).encode()
        assert h["dlq_value_sha256"] == hashlib.sha256(huge[topic]).hexdigest().encode()
        assert (h["dlq_source_topic"], h["dlq_source_offset"], h["dlq_service"]) == (
            topic.encode(),
            b"1",
            b"test",
        )
        assert h["event_type"] == headers_of(not_json)["event_type"]  # the original headers are kept
        assert reference.value == huge[topic][:PREVIEW_BYTES]
        size = (
            len(reference.value or b"")
            + len(reference.key or b"")
            + sum(len(k) + len(v) for k, v in reference.headers)
        )
        assert size < KAFKA_DEFAULT_MESSAGE_BYTES // 100
        assert not_json.value == b"{not json" and "dlq_truncated" not in headers_of(not_json)
        assert b"Invalid JSON" in headers_of(not_json)["dlq_reason"]
        assert b"payload.surprise: Extra inputs are not permitted" in headers_of(invalid)["dlq_reason"]
    assert (setup.loop.applied, setup.loop.dead_lettered, setup.loop.skipped) == (8, 12, 0)
    assert setup.loop.health.current.status == "ok"


async def test_unknown_misplaced_and_disagreeing_headers_are_dead_lettered_with_the_reason(
    setup: Setup, producer: AIOKafkaProducer, kafka_bootstrap: str
) -> None:
    orders = setup.topics[0]

    async def send(
        event: Envelope[Any], headers: list[tuple[str, bytes]], value: bytes | None = None
    ) -> None:
        await producer.send_and_wait(
            orders, value or event.to_json(), key=event.key.encode(), headers=headers
        )

    unknown, misplaced, other_type, other_id = (order(f"h-{i}") for i in range(4))
    await send(unknown, [("event_type", b"OrderShipped"), ("schema_version", b"1")])
    await send(misplaced, [("event_type", b"StockReserved"), ("schema_version", b"1")])
    await send(other_type, [("event_type", b"OrderCancelled"), ("schema_version", b"1")])
    await send(other_id, [*other_id.headers()[:2], ("event_id", str(uuid4()).encode())])
    # Known on this topic, not handled: skipped without its body being looked at.
    refund = [("event_type", b"RefundRequested"), ("schema_version", b"1")]
    await send(unknown, refund, value=b"{not even json")
    good = order("h-good")
    await publish(producer, orders, [good])

    async with running(setup.loop.run()):
        await eventually(lambda: _has(applied(setup.pool), {good.event_id}), what="the good order applied")
        dead = await read_topic(kafka_bootstrap, f"{orders}.dlq", 4)
    assert await applied(setup.pool) == {good.event_id}
    by_offset = {int(headers_of(r)["dlq_source_offset"]): headers_of(r)["dlq_reason"].decode() for r in dead}
    assert by_offset[0] == "unknown event type 'OrderShipped' version 1"
    assert by_offset[1] == "StockReserved does not belong on the orders topic (it is on inventory)"
    assert (
        by_offset[2]
        == "invalid OrderCancelled v1: the headers say OrderCancelled v1 but the body is OrderPlaced v1"
    )
    assert by_offset[3].startswith("event_id header") and str(other_id.event_id) in by_offset[3]
    assert (setup.loop.applied, setup.loop.dead_lettered, setup.loop.skipped) == (1, 4, 1)


async def _has(probe: Any, expected: set[UUID]) -> bool:
    return expected <= await probe
