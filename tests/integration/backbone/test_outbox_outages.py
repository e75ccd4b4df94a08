"""The outbox relay through outages, against a Kafka broker and PostgreSQL server of this module's own
(backbone.testing.private_servers): they are killed and restarted here, which the shared ones must never be.

What must hold whatever happens: the relay never ends; every committed event reaches Kafka; repeats are
only the at-least-once kind (events of the round that was cut short, same event id), and each key's
events first arrive in commit order; an event Kafka can never take is parked and holds back only the
later events of its own key.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from backbone.contracts import REGISTRY, Envelope
from backbone.eventstore import EventStore
from backbone.kafka import ensure_topics, reliable_producer
from backbone.outbox import APPLICATION_NAME, OutboxRelay, discard_parked, parked_events, retry_parked
from backbone.testing.background import running
from backbone.testing.databases import fresh_database
from backbone.testing.fixtures import unique_name
from backbone.testing.private_servers import PrivateServers, private_servers
from backbone.testing.waiting import eventually
from tests.integration.backbone.events import adjustment

pytestmark = pytest.mark.integration
store = EventStore()
Record = ConsumerRecord[bytes, bytes]


@pytest.fixture(scope="module")
async def private() -> AsyncIterator[PrivateServers]:
    async with private_servers() as pair:
        yield pair


@pytest.fixture
async def db(private: PrivateServers) -> AsyncIterator[str]:
    async with fresh_database(private.servers.pg_admin_url, unique_name("outage")) as url:
        yield url


@pytest.fixture
async def topic(private: PrivateServers) -> str:
    """One partition: the order of everything published is the order on the topic."""
    prefix = f"{unique_name('outage')}."
    await ensure_topics(private.servers.kafka_bootstrap_servers, [f"{prefix}inventory"], 1, 1)
    return prefix


@pytest.fixture
async def kafka_producer(private: PrivateServers) -> AsyncIterator[AIOKafkaProducer]:
    # A shorter request timeout than the services' 30 s, so that an outage fails a round sooner.
    p = reliable_producer(private.servers.kafka_bootstrap_servers, request_timeout_ms=10_000)
    await p.start()
    yield p
    await p.stop()


class Gate:
    def __init__(self) -> None:
        self.reached, self.opened = asyncio.Event(), asyncio.Event()


class GatedProducer:
    """Sends for real, but stops before sending a gated event (the first time) until the test opens its
    gate: a relay caught in the middle of a round."""

    def __init__(self, real: AIOKafkaProducer, *gated: uuid.UUID) -> None:
        self._real = real
        self.gates = {str(event_id).encode(): Gate() for event_id in gated}

    @property
    def client(self) -> Any:
        return self._real.client

    async def send(self, *args: Any, **kwargs: Any) -> "asyncio.Future[Any]":
        for event_id, gate in self.gates.items():
            if event_id in kwargs["value"] and not gate.opened.is_set():
                gate.reached.set()
                await gate.opened.wait()
        return await self._real.send(*args, **kwargs)


async def commit(url: str, events: Sequence[Envelope[Any]]) -> None:
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            for e in events:
                await store.append(conn, f"stream-{e.event_id}", 0, [e])
    finally:
        await conn.close()


async def scalar(url: str, sql: str, *args: Any) -> Any:
    """A query on a new connection each time: the server may have restarted since the last one."""
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


def outbox_holds(url: str, count: int) -> Any:
    async def probe() -> bool:
        try:
            return await scalar(url, "SELECT count(*) FROM outbox") == count
        except (OSError, asyncpg.PostgresError):
            return False  # still restarting

    return probe


async def read_all(bootstrap: str, topic: str) -> list[Record]:
    """Everything on the (one-partition) topic up to its current end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, 0)
        records: list[Record] = []

        async def all_read() -> bool:
            batch = await consumer.getmany(tp, timeout_ms=500)
            records.extend(batch.get(tp, []))
            return await consumer.position(tp) >= end  # offsets, not counts: a retry may leave gaps

        await eventually(all_read, timeout=60, what=f"{topic} up to offset {end}")
        return records
    finally:
        await consumer.stop()


def event_ids(records: Sequence[Record]) -> list[uuid.UUID]:
    return [REGISTRY.decode(r.value).event_id for r in records]


def first_seen_by_key(records: Sequence[Record]) -> dict[bytes, list[uuid.UUID]]:
    order: dict[bytes, list[uuid.UUID]] = {}
    seen: set[uuid.UUID] = set()
    for r in records:
        event_id = REGISTRY.decode(r.value).event_id
        if event_id not in seen:
            seen.add(event_id)
            order.setdefault(r.key or b"", []).append(event_id)
    return order


def by_key(events: Sequence[Envelope[Any]]) -> dict[bytes, list[uuid.UUID]]:
    order: dict[bytes, list[uuid.UUID]] = {}
    for e in events:
        order.setdefault(e.key.encode(), []).append(e.event_id)
    return order


async def test_the_relay_reconnects_after_its_connection_is_killed_and_after_a_postgres_crash(
    private: PrivateServers, db: str, topic: str, kafka_producer: AIOKafkaProducer
) -> None:
    events = [adjustment(f"SKU-{i % 5}", i + 1) for i in range(200)]
    await commit(db, events)
    # Rounds of 50: the connection is cut in the second round, PostgreSQL crashes in the fourth.
    producer = GatedProducer(kafka_producer, events[69].event_id, events[159].event_id)
    cut, crash = producer.gates.values()
    relay = OutboxRelay(db, producer, topic, batch_size=50, max_backoff_seconds=1.0)  # type: ignore[arg-type]
    async with running(relay.run()) as task:
        await asyncio.wait_for(cut.reached.wait(), 60)
        killed = await scalar(
            private.servers.pg_admin_url,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = $1 AND datname = $2",
            APPLICATION_NAME,
            db.rpartition("/")[2],
        )
        assert killed == 1
        cut.opened.set()

        await asyncio.wait_for(crash.reached.wait(), 60)
        await private.kill_postgres()
        crash.opened.set()

        async def degraded() -> bool:
            return relay.health.current.status == "degraded" and not relay.active

        await eventually(degraded, timeout=60, what="the relay to notice the database is gone")
        await private.start_postgres()
        await eventually(outbox_holds(db, 0), timeout=90, interval=0.5, what="the outbox to drain")
        assert not task.done()  # it never ended

        async def healthy_again() -> bool:
            return relay.health.current.status == "ok" and relay.active

        await eventually(healthy_again, timeout=30, what="the relay to report itself ok")
    records = await read_all(private.servers.kafka_bootstrap_servers, f"{topic}inventory")
    published = event_ids(records)
    assert set(published) == {e.event_id for e in events}  # nothing lost
    cut_short = {e.event_id for e in [*events[50:100], *events[150:200]]}
    repeated = {i for i in published if published.count(i) > 1}
    assert repeated <= cut_short  # repeats only of the two rounds that were cut short
    assert first_seen_by_key(records) == by_key(events)  # each key in commit order


async def test_the_relay_waits_for_a_stopped_broker_and_publishes_everything_once_it_is_back(
    private: PrivateServers, db: str, topic: str, kafka_producer: AIOKafkaProducer
) -> None:
    before, during = (
        [adjustment("JACKET", i) for i in range(1, 21)],
        [adjustment("JACKET", i) for i in range(21, 41)],
    )
    relay = OutboxRelay(db, kafka_producer, topic, batch_size=10, max_backoff_seconds=1.0)
    async with running(relay.run()) as task:
        await commit(db, before)
        await eventually(outbox_holds(db, 0), timeout=60, what="the first events to go out")
        await private.stop_kafka()
        try:
            await commit(db, during)

            async def degraded() -> bool:
                return relay.health.current.status == "degraded"

            await eventually(degraded, timeout=60, what="the relay to report Kafka unavailable")
            assert await scalar(db, "SELECT count(*) FROM outbox") > 0
            assert relay.active and not task.done()
        finally:
            await private.start_kafka()
        await eventually(outbox_holds(db, 0), timeout=90, interval=0.5, what="the outbox to drain")
        assert not task.done()
    records = await read_all(private.servers.kafka_bootstrap_servers, f"{topic}inventory")
    assert set(event_ids(records)) == {e.event_id for e in [*before, *during]}
    assert first_seen_by_key(records) == by_key([*before, *during])


async def test_an_event_kafka_cannot_take_is_parked_and_holds_back_only_its_own_key(
    private: PrivateServers, db: str, topic: str, kafka_producer: AIOKafkaProducer
) -> None:
    a1, b1, b2, a2, c1, c2 = (adjustment(sku) for sku in ["A", "B", "B", "A", "C", "C"])
    await commit(db, [a1, b1, b2, a2, c1, c2])
    # b1 grows beyond the producer's max_request_size (1 MiB); C's events name a topic Kafka cannot have.
    conn = await asyncpg.connect(db)
    try:
        # Forged in place, which the append-only trigger (backbone migration 006) refuses unless disabled.
        await conn.execute("ALTER TABLE event_store DISABLE TRIGGER event_store_append_only")
        await conn.execute(
            "UPDATE event_store SET body = jsonb_set(body, '{payload,reason}',"
            " to_jsonb(repeat('x', 1100000))) WHERE event_id = $1",
            b1.event_id,
        )
        await conn.execute(
            "UPDATE event_store SET topic = 'no such topic!' WHERE event_id = ANY($1::uuid[])",
            [c1.event_id, c2.event_id],
        )
        position = {
            r["event_id"]: r["global_position"]
            for r in await conn.fetch("SELECT event_id, global_position FROM event_store")
        }
        relay = OutboxRelay(db, kafka_producer, topic, max_backoff_seconds=1.0)
        async with running(relay.run()) as task:

            async def parked_two() -> list[Any]:
                parked = await parked_events(conn)
                return parked if len(parked) == 2 else []

            parked = await eventually(parked_two, what="two events to be parked")
            assert [(p.position, p.partition_key, p.waiting_behind) for p in parked] == [
                (position[b1.event_id], "B", 1),
                (position[c1.event_id], "C", 1),
            ]
            assert "too large" in parked[0].reason and "invalid topic" in parked[1].reason
            # What waits is exactly the later event of each parked key; the other key went out in order.
            waiting = {r["global_position"] for r in await conn.fetch("SELECT global_position FROM outbox")}
            assert waiting == {position[b2.event_id], position[c2.event_id]}
            assert event_ids(
                await read_all(private.servers.kafka_bootstrap_servers, f"{topic}inventory")
            ) == [
                a1.event_id,
                a2.event_id,
            ]

            async def settled(parked: set[uuid.UUID], waiting: set[uuid.UUID]) -> bool:
                in_outbox = await conn.fetch("SELECT global_position FROM outbox")
                return {p.event_id for p in await parked_events(conn)} == {str(i) for i in parked} and {
                    r["global_position"] for r in in_outbox
                } == {position[i] for i in waiting}

            # A retry that changes nothing parks the event again; b2 still waits.
            assert await retry_parked(conn, position[b1.event_id])
            assert not await retry_parked(conn, position[b1.event_id])  # no longer parked, for now
            await eventually(
                lambda: settled({b1.event_id, c1.event_id}, {b2.event_id, c2.event_id}),
                what="b1 to be parked again",
            )
            assert relay.parked == 3
            # The cause fixed (here: b1 made small again), the retry publishes b1, then b2.
            await conn.execute(
                "UPDATE event_store SET body = jsonb_set(body, '{payload,reason}', '\"count\"')"
                " WHERE event_id = $1",
                b1.event_id,
            )
            assert await retry_parked(conn, position[b1.event_id])
            # The operator gives up on c1: c2 is next, and is parked in turn (its topic is invalid too).
            assert await discard_parked(conn, position[c1.event_id])
            await eventually(lambda: settled({c2.event_id}, set()), what="b1, b2 out and c2 parked")
            assert not task.done()
    finally:
        await conn.close()
    records = await read_all(private.servers.kafka_bootstrap_servers, f"{topic}inventory")
    assert event_ids(records) == [a1.event_id, a2.event_id, b1.event_id, b2.event_id]
