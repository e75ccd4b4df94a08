"""A dead letter that Kafka refuses for its size is written as a reference instead, and the loop goes on:
whether the broker refuses it (the dead-letter topic's max.message.bytes) or the producer does (its
max_request_size)."""

import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from backbone.consumer import ConsumerLoop
from backbone.contracts import Envelope
from backbone.db import create_pool
from backbone.deadletter import PREVIEW_BYTES
from backbone.kafka import ensure_topics, reliable_producer
from backbone.testing.background import running
from backbone.testing.fixtures import publish, read_topic
from backbone.testing.waiting import eventually
from tests.integration.backbone.events import receipt

pytestmark = pytest.mark.integration

SMALL_LIMIT = 20_000  # bytes per message, far below Kafka's default 1 MiB


async def create_topic(bootstrap: str, name: str, configs: dict[str, str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1, topic_configs=configs)])
    finally:
        await admin.close()


class Receipts:
    async def __call__(self, conn: asyncpg.Connection, events: Sequence[Envelope[Any]]) -> None:
        await conn.executemany(
            "INSERT INTO applied (receipt_id) VALUES ($1)", [(e.payload.receipt_id,) for e in events]
        )


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url)
    await pool.execute("CREATE TABLE applied (receipt_id text PRIMARY KEY)")
    yield pool
    await pool.close()


@pytest.mark.parametrize("refused_by", ["broker", "producer"])
async def test_a_dead_letter_refused_for_its_size_is_sent_as_a_reference(
    refused_by: str, pool: asyncpg.Pool, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    topic = f"{topic_prefix}supplier"
    await ensure_topics(kafka_bootstrap, [topic], 1, 1)
    dead_letters: AIOKafkaProducer | None = None
    if refused_by == "broker":
        await create_topic(kafka_bootstrap, f"{topic}.dlq", {"max.message.bytes": str(SMALL_LIMIT)})
    else:
        await ensure_topics(kafka_bootstrap, [f"{topic}.dlq"], 1, 1)
        dead_letters = reliable_producer(
            kafka_bootstrap, enable_idempotence=False, max_request_size=SMALL_LIMIT
        )
        await dead_letters.start()
    loop = ConsumerLoop(
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{topic_prefix}group",
        topics=[topic],
        pool=pool,
        handler=Receipts(),
        dead_letter_producer=dead_letters,  # None: the loop's own
        service="test",
    )
    # Within the contract's size limit, but too large for this dead-letter topic or producer.
    padded = json.loads(receipt("SKU-1", "r-padded").to_json())
    padded["payload"]["padding"] = "x" * 100_000
    large = json.dumps(padded).encode()
    await producer.send_and_wait(topic, large, key=b"SKU-1")
    await producer.send_and_wait(topic, b"{not json", key=b"SKU-1")  # small: copied whole, same batch
    await publish(producer, topic, [receipt("SKU-1", "r-good")])
    try:
        async with running(loop.run()):
            await eventually(lambda: _applied(pool), what="the good receipt to apply")
            dead = await read_topic(kafka_bootstrap, f"{topic}.dlq", 2)
            await producer.send_and_wait(topic, b"[]", key=b"SKU-1")  # the loop and its producer go on
            dead = await read_topic(kafka_bootstrap, f"{topic}.dlq", 3)
    finally:
        if dead_letters is not None:
            await dead_letters.stop()
    by_offset = {int(dict(r.headers)["dlq_source_offset"]): r for r in dead}
    assert sorted(by_offset) == [0, 1, 3]
    reference = by_offset[0]
    headers = dict(reference.headers)
    assert (
        headers["dlq_reason"] == b"invalid GoodsReceived v1: payload.padding: Extra inputs are not permitted"
    )
    assert headers["dlq_truncated"] == b"true"
    assert headers["dlq_value_bytes"] == str(len(large)).encode()
    assert headers["dlq_value_sha256"] == hashlib.sha256(large).hexdigest().encode()
    assert reference.value == large[:PREVIEW_BYTES]
    for whole in (by_offset[1], by_offset[3]):
        assert "dlq_truncated" not in dict(whole.headers)
    assert (by_offset[1].value, by_offset[3].value) == (b"{not json", b"[]")
    assert loop.dead_lettered == 3
    assert loop.health.current.status == "ok"


async def _applied(pool: asyncpg.Pool) -> bool:
    return bool(await pool.fetchval("SELECT count(*) FROM applied WHERE receipt_id = 'r-good'"))
