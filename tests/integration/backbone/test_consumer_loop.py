from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from backbone.consumer import ConsumerLoop
from backbone.contracts import Envelope, new_envelope
from backbone.db import create_pool
from backbone.kafka import ensure_topics
from backbone.testing.background import running
from backbone.testing.fixtures import publish, read_topic
from backbone.testing.waiting import eventually
from tests.integration.backbone.events import receipt

pytestmark = pytest.mark.integration


class CountingProjection:
    """Units received per SKU; can be told to fail like a database that went away, or on one receipt."""

    def __init__(self) -> None:
        self.database_down = False
        self.poison_receipt: str | None = None
        self.failed_attempts = 0

    async def __call__(self, conn: asyncpg.Connection, events: Sequence[Envelope[Any]]) -> None:
        for e in events:
            await conn.execute(
                "INSERT INTO received (sku, units) VALUES ($1, $2) "
                "ON CONFLICT (sku) DO UPDATE SET units = received.units + excluded.units",
                e.payload.sku,
                e.payload.quantity,
            )
            if e.payload.receipt_id == self.poison_receipt:
                raise ValueError(f"cannot apply {e.payload.receipt_id}")
        if self.database_down:
            self.failed_attempts += 1
            raise ConnectionResetError("database connection lost")  # after the writes: they must roll back


def consumer_loop(
    kafka_bootstrap: str,
    group: str,
    topic: str,
    pool: asyncpg.Pool,
    handler: Any,
    producer: AIOKafkaProducer,
    **options: Any,
) -> ConsumerLoop:
    return ConsumerLoop(
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        topics=[topic],
        pool=pool,
        handler=handler,
        dead_letter_producer=producer,
        service="test",
        **options,
    )


@pytest.fixture
async def setup(database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer):  # type: ignore[no-untyped-def]
    topic = f"{topic_prefix}supplier"
    await ensure_topics(kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=2, replication_factor=1)
    pool = await create_pool(database_url)
    await pool.execute("CREATE TABLE received (sku text PRIMARY KEY, units int NOT NULL)")
    projection = CountingProjection()
    loop = consumer_loop(
        kafka_bootstrap, f"{topic_prefix}group", topic, pool, projection, producer, batch_size=50
    )
    yield topic, pool, projection, loop
    await pool.close()


async def units(pool: asyncpg.Pool) -> dict[str, int]:
    return {r["sku"]: r["units"] for r in await pool.fetch("SELECT sku, units FROM received")}


async def test_a_redelivered_event_has_no_second_effect(setup, producer: AIOKafkaProducer) -> None:  # type: ignore[no-untyped-def]
    topic, pool, _, loop = setup
    event = receipt("SKU-D", "r-1", quantity=7)
    await publish(producer, topic, [event, event, receipt("SKU-D", "r-2", quantity=1), event])
    async with running(loop.run()):
        await eventually(lambda: units(pool), what="the projection to fill")
        await eventually(lambda: _equals(units(pool), {"SKU-D": 8}), what="both receipts to apply")
    assert loop.applied == 2
    assert await pool.fetchval("SELECT count(*) FROM inbox") == 2


async def _equals(probe: Any, expected: Any) -> bool:
    return (await probe) == expected


async def test_events_the_service_does_not_handle_are_skipped_unparsed_by_their_header(  # type: ignore[no-untyped-def]
    setup, producer: AIOKafkaProducer, kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic, pool, projection, _ = setup
    group = f"{topic_prefix}skipping"
    loop = consumer_loop(kafka_bootstrap, group, topic, pool, projection, producer, handles=["GoodsReceived"])
    other = [("event_type", b"PurchaseOrderAcknowledged"), ("schema_version", b"1")]
    await producer.send_and_wait(topic, b"{not even json", key=b"SKU-S", headers=other)
    await publish(producer, topic, [receipt("SKU-S", "r-s", quantity=3)])
    async with running(loop.run()):
        await eventually(lambda: _equals(units(pool), {"SKU-S": 3}), what="the handled event to apply")
    assert (loop.skipped, loop.applied, loop.dead_lettered) == (1, 1, 0)


async def test_malformed_and_invalid_messages_go_to_the_dead_letter_topic_and_the_loop_goes_on(
    setup,
    producer: AIOKafkaProducer,
    kafka_bootstrap: str,  # type: ignore[no-untyped-def]
) -> None:
    topic, pool, _, loop = setup
    good = receipt("SKU-G", "r-ok", quantity=2)
    invalid = good.to_json().replace(b'"quantity":2', b'"quantity":-2')
    await producer.send_and_wait(topic, b"{not json", key=b"SKU-G")
    await producer.send_and_wait(topic, invalid, key=b"SKU-G")
    await publish(producer, topic, [good])
    async with running(loop.run()):
        await eventually(lambda: _equals(units(pool), {"SKU-G": 2}), what="the good message to apply")
        dead = await read_topic(kafka_bootstrap, f"{topic}.dlq", 2)
    reasons = {r.value: dict(r.headers) for r in dead}
    assert reasons[b"{not json"]["dlq_reason"].startswith(b"not an event envelope: (root): Invalid JSON")
    assert b"payload.quantity" in reasons[invalid]["dlq_reason"]
    for headers in reasons.values():
        assert headers["dlq_source_topic"] == topic.encode()
        assert headers["dlq_source_offset"] in (b"0", b"1")
        assert headers["dlq_service"] == b"test"


async def test_a_message_the_handler_cannot_apply_is_isolated_from_its_batch(
    setup,
    producer: AIOKafkaProducer,
    kafka_bootstrap: str,  # type: ignore[no-untyped-def]
) -> None:
    topic, pool, projection, loop = setup
    projection.poison_receipt = "r-bad"
    events = [receipt("SKU-P", f"r-{i}") for i in range(5)] + [receipt("SKU-P", "r-bad", 100)]
    await publish(producer, topic, events)
    async with running(loop.run()):
        [dead] = await read_topic(kafka_bootstrap, f"{topic}.dlq", 1)
        await eventually(lambda: _equals(units(pool), {"SKU-P": 5}), what="the five good receipts")
    assert dict(dead.headers)["dlq_reason"] == b"handler failed: ValueError: cannot apply r-bad"


async def committed(kafka_bootstrap: str, group: str, topic: str) -> dict[int, int | None]:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(2)}
    finally:
        await consumer.stop()


async def test_offsets_are_not_committed_for_a_batch_whose_transaction_rolled_back(
    setup,
    producer: AIOKafkaProducer,
    kafka_bootstrap: str,
    topic_prefix: str,  # type: ignore[no-untyped-def]
) -> None:
    topic, pool, projection, loop = setup
    projection.database_down = True
    await publish(producer, topic, [receipt(f"SKU-{i}", f"r-{i}") for i in range(6)])
    async with running(loop.run()):
        await eventually(lambda: _at_least(projection, 2), what="the loop to try, fail and retry")
        assert await units(pool) == {}
        assert await committed(kafka_bootstrap, f"{topic_prefix}group", topic) == {0: None, 1: None}
        projection.database_down = False  # the database is back: the retried batch applies
        await eventually(lambda: _equals(_total(pool), 6), what="the retried batch to apply")
        offsets = await eventually(
            lambda: _all_committed(kafka_bootstrap, f"{topic_prefix}group", topic), what="offsets committed"
        )
    assert sum(offsets.values()) == 6


async def _at_least(projection: CountingProjection, attempts: int) -> bool:
    return projection.failed_attempts >= attempts


async def _total(pool: asyncpg.Pool) -> int:
    return sum((await units(pool)).values())


async def _all_committed(kafka_bootstrap: str, group: str, topic: str) -> dict[int, int] | None:
    offsets = await committed(kafka_bootstrap, group, topic)
    return offsets if sum(o or 0 for o in offsets.values()) == 6 else None  # type: ignore[return-value]


async def test_a_rebalance_and_a_consumer_killed_mid_stream_lose_and_double_nothing(
    setup,  # type: ignore[no-untyped-def]
    producer: AIOKafkaProducer,
    kafka_bootstrap: str,
    topic_prefix: str,
) -> None:
    topic, pool, projection, first = setup
    events = [receipt(f"SKU-{i % 5}", f"r-{i}", quantity=1 + i % 3) for i in range(300)]
    expected = sum(e.payload.quantity for e in events)
    second = consumer_loop(
        kafka_bootstrap, f"{topic_prefix}group", topic, pool, projection, producer, batch_size=20
    )
    await publish(producer, topic, events[:150])
    async with running(second.run()):
        async with running(first.run()):
            await eventually(lambda: _at_least_applied(first, second, 40), what="some of the events to apply")
            await publish(producer, topic, events[150:])  # the first consumer is killed mid-stream
        await eventually(lambda: _equals(_total(pool), expected), what="the survivor to apply the rest")
    assert await pool.fetchval("SELECT count(*) FROM inbox") == 300
    # The inbox and the total say every event was applied exactly once. The loops' own counters may miss
    # the batch whose COMMIT the kill interrupted: it committed, but the killed loop never counted it.
    assert 280 <= first.applied + second.applied <= 300


async def _at_least_applied(a: ConsumerLoop, b: ConsumerLoop, count: int) -> bool:
    return a.applied + b.applied >= count


def resent(envelope: Envelope[Any], **changes: Any) -> Envelope[Any]:
    """The same business fact (or, with changes, another content under its key) in a new envelope."""
    return new_envelope(envelope.payload.model_copy(update=changes))


async def test_a_fact_resent_under_a_new_event_id_applies_once_other_content_under_its_key_dead_letters(  # type: ignore[no-untyped-def]
    setup, producer: AIOKafkaProducer, kafka_bootstrap: str
) -> None:
    topic, pool, _, loop = setup
    first = receipt("SKU-K", "r-k", quantity=4)
    other_sku = receipt("SKU-L", "r-k", quantity=1)  # another line of the same receipt: its own fact
    changed = resent(first, quantity=40)
    # The repeat inside one batch, and the repeat and the conflict in later batches, after a commit.
    await publish(producer, topic, [first, resent(first), other_sku])
    async with running(loop.run()):
        await eventually(lambda: _equals(units(pool), {"SKU-K": 4, "SKU-L": 1}), what="the first batch")
        await publish(producer, topic, [resent(first), changed, receipt("SKU-K", "r-k2", quantity=2)])
        [dead] = await read_topic(kafka_bootstrap, f"{topic}.dlq", 1)
        await eventually(lambda: _equals(units(pool), {"SKU-K": 6, "SKU-L": 1}), what="the new receipt")
    assert dead.value == changed.to_json()
    reason = dict(dead.headers)["dlq_reason"].decode()
    assert reason.startswith("GoodsReceived 'r-k / SKU-K' was applied before with other content")
    assert (loop.applied, loop.replayed, loop.dead_lettered) == (3, 2, 1)
    assert await pool.fetchval("SELECT count(*) FROM business_keys") == 3
