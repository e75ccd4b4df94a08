import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from backbone.contracts import REGISTRY
from backbone.eventstore import EventStore
from backbone.kafka import ensure_topics, reliable_producer
from backbone.outbox import OutboxRelay
from backbone.testing.background import running
from backbone.testing.fixtures import read_topic
from backbone.testing.waiting import eventually
from tests.integration.backbone.events import adjustment

pytestmark = pytest.mark.integration
store = EventStore()


async def pending(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT count(*) FROM outbox")


def drained(conn: asyncpg.Connection) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return await pending(conn) == 0

    return probe


@pytest.fixture(autouse=True)
async def inventory_topic(kafka_bootstrap: str, topic_prefix: str) -> None:
    await ensure_topics(kafka_bootstrap, [f"{topic_prefix}inventory"], partitions=1, replication_factor=1)


async def test_committed_event_reaches_kafka_with_key_and_headers(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        event = adjustment("JACKET-M", 3)
        async with conn.transaction():
            await store.append(conn, "sku-JACKET-M", 0, [event])
        async with running(OutboxRelay(database_url, producer, topic_prefix).run()):
            [record] = await read_topic(kafka_bootstrap, f"{topic_prefix}inventory", 1)
            await eventually(drained(conn), what="the outbox row to be deleted")
    finally:
        await conn.close()
    assert record.key == b"JACKET-M"
    assert dict(record.headers)["event_type"] == b"StockAdjusted"
    assert REGISTRY.decode(record.value) == event


async def test_rolled_back_events_are_never_published(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        tx = conn.transaction()
        await tx.start()
        await store.append(conn, "doomed", 0, [adjustment("D")])
        await tx.rollback()
        kept = adjustment("K")
        await store.append(conn, "kept", 0, [kept])
        async with running(OutboxRelay(database_url, producer, topic_prefix).run()):
            records = await read_topic(kafka_bootstrap, f"{topic_prefix}inventory", 1)
    finally:
        await conn.close()
    assert [REGISTRY.decode(r.value).event_id for r in records] == [kept.event_id]


class _ProducerThatDies:
    """Sends for real, but hangs forever waiting for acks after `after` messages: a relay killed
    between sending and recording that Kafka has the events."""

    def __init__(self, real: AIOKafkaProducer, after: int) -> None:
        self._real, self._left = real, after

    async def send(self, *args: Any, **kwargs: Any) -> "asyncio.Future[Any]":
        if self._left == 0:
            return asyncio.get_running_loop().create_future()  # never acknowledged
        self._left -= 1
        return await self._real.send(*args, **kwargs)


async def test_relay_killed_between_commit_and_publish_loses_nothing(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        events = [adjustment(f"SKU-{i % 3}", i + 1) for i in range(30)]
        for i, e in enumerate(events):
            await store.append(conn, f"s{i}", 0, [e])  # committed while no relay runs
        dying = OutboxRelay(database_url, _ProducerThatDies(producer, after=10), topic_prefix, batch_size=20)
        async with running(dying.run()):
            await read_topic(kafka_bootstrap, f"{topic_prefix}inventory", 10)
        assert await pending(conn) == 30  # killed before it could record anything as published

        second = reliable_producer(kafka_bootstrap)
        await second.start()
        try:
            async with running(OutboxRelay(database_url, second, topic_prefix, batch_size=20).run()):
                await eventually(drained(conn), what="the outbox to drain")
        finally:
            await second.stop()
        records = await read_topic(kafka_bootstrap, f"{topic_prefix}inventory", 40)
    finally:
        await conn.close()
    seen = {REGISTRY.decode(r.value).event_id for r in records}
    assert seen == {e.event_id for e in events}  # every event, the first ten twice (at least once)


async def test_event_committed_after_a_later_position_is_not_skipped(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    early, late = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        slow = early.transaction()
        await slow.start()
        first = adjustment("A")
        await store.append(early, "a", 0, [first])  # takes the lower position, commits last
        second = adjustment("B")
        await store.append(late, "b", 0, [second])
        async with running(OutboxRelay(database_url, producer, topic_prefix).run()):
            [r] = await read_topic(kafka_bootstrap, f"{topic_prefix}inventory", 1)
            assert REGISTRY.decode(r.value).event_id == second.event_id
            await slow.commit()
            records = await read_topic(kafka_bootstrap, f"{topic_prefix}inventory", 2)
    finally:
        await early.close()
        await late.close()
    assert [REGISTRY.decode(r.value).event_id for r in records] == [second.event_id, first.event_id]


async def test_a_standby_relay_takes_over_when_the_active_one_stops(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    conn = await asyncpg.connect(database_url)
    first, second = (
        OutboxRelay(database_url, producer, topic_prefix),
        OutboxRelay(database_url, producer, topic_prefix),
    )

    async def is_active(relay: OutboxRelay) -> bool:
        return relay.active

    try:
        async with running(first.run()) as first_task:
            await eventually(lambda: is_active(first), what="the first relay to take the lock")
            async with running(second.run()):
                await store.append(conn, "one", 0, [adjustment("1")])
                await eventually(drained(conn), what="the first event to publish")
                assert not second.active
                first_task.cancel()
                await store.append(conn, "two", 0, [adjustment("2")])
                await eventually(drained(conn), what="the standby to take over and publish")
                assert second.active
    finally:
        await conn.close()
    assert (first.published, second.published) == (1, 1)
