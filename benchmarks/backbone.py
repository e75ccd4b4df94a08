"""`make bench-backbone`: throughput of the event backbone against the real local Kafka and PostgreSQL.

Prints four figures from one run: raw aiokafka produce and consume (the physical reference), the outbox
relay (committed rows -> acknowledged by Kafka -> deleted from the outbox) and the consumer loop
(Kafka -> decode -> inbox + projection upsert in one transaction per batch -> offsets committed).
"""

import argparse
import asyncio
import os
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer

from backbone.consumer import ConsumerLoop
from backbone.contracts import Envelope, new_envelope
from backbone.contracts.events import GoodsReceived
from backbone.db import create_pool
from backbone.eventstore import EventStore, StreamAppend
from backbone.kafka import ensure_topics, reliable_producer
from backbone.log import configure_logging
from backbone.outbox import OutboxRelay
from backbone.testing.databases import fresh_database
from backbone.testing.servers import real_servers
from backbone.testing.waiting import eventually
from benchmarks import cpu

SKUS = 200


def events(count: int) -> list[Envelope[Any]]:
    now = datetime.now(UTC)
    return [
        new_envelope(
            GoodsReceived(receipt_id=f"r-{i}", sku=f"SKU-{i % SKUS}", quantity=1 + i % 7, received_at=now)
        )
        for i in range(count)
    ]


async def _reached(value: int, target: int) -> bool:
    return value >= target


def cpu_mark() -> cpu.Sample:
    return cpu.sample({os.getpid(): "bench"})


def report(name: str, count: int, seconds: float, detail: str, since: cpu.Sample) -> None:
    """Events/s, and the CPU each event took in this process, Kafka and PostgreSQL together: what one
    event costs the machine, the figure to hold against a service's per-message cost (make bench)."""
    used = cpu.used_between(since, cpu_mark())
    spent = sum(seconds for group, seconds in used.items() if group != "other")
    print(
        f"{name:<34} {count / seconds:>10,.0f} events/s  {spent * 1e6 / count:>6.0f} us CPU/event"
        f"   ({count:,} in {seconds:.2f}s; {detail})"
    )


async def bench_raw(bootstrap: str, topic: str, payloads: Sequence[Envelope[Any]]) -> None:
    producer = reliable_producer(bootstrap)
    await producer.start()
    try:
        started, since = time.perf_counter(), cpu_mark()
        acks = [
            await producer.send(topic, e.to_json(), key=e.key.encode(), headers=e.headers()) for e in payloads
        ]
        await asyncio.gather(*acks)
        report(
            "aiokafka produce (reference)",
            len(payloads),
            time.perf_counter() - started,
            "acks=all, idempotent",
            since,
        )
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        started, since, seen = time.perf_counter(), cpu_mark(), 0
        while seen < len(payloads):
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            seen += sum(len(records) for records in batches.values())
        report("aiokafka consume (reference)", seen, time.perf_counter() - started, "no decoding", since)
    finally:
        await consumer.stop()


async def bench_relay(
    dsn: str, bootstrap: str, prefix: str, payloads: Sequence[Envelope[Any]], batch: int
) -> None:
    store = EventStore()
    conn = await asyncpg.connect(dsn)
    try:
        for i in range(0, len(payloads), 1000):  # committed before the relay starts: measure the relay alone
            chunk = payloads[i : i + 1000]
            async with conn.transaction():
                await store.append_many(
                    conn, [StreamAppend(f"bench-{i + j}", 0, [e]) for j, e in enumerate(chunk)]
                )
        producer = reliable_producer(bootstrap)
        await producer.start()
        relay = OutboxRelay(dsn, producer, prefix, batch_size=batch)
        started, since = time.perf_counter(), cpu_mark()
        task = asyncio.create_task(relay.run())
        await eventually(lambda: _reached(relay.published, len(payloads)), timeout=600, interval=0.01)
        report(
            "outbox relay", relay.published, time.perf_counter() - started, f"batch {batch}, acks=all", since
        )
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()
    finally:
        await conn.close()


async def upsert_received(conn: asyncpg.Connection, batch: Sequence[Envelope[Any]]) -> None:
    totals = Counter[str]()
    for e in batch:
        totals[e.payload.sku] += e.payload.quantity
    await conn.execute(
        "INSERT INTO bench_received (sku, units) SELECT * FROM unnest($1::text[], $2::int[]) "
        "ON CONFLICT (sku) DO UPDATE SET units = bench_received.units + excluded.units",
        list(totals),
        list(totals.values()),
    )


async def bench_consumer(dsn: str, bootstrap: str, topic: str, count: int, batch: int) -> None:
    pool = await create_pool(dsn, max_size=4)
    await pool.execute("CREATE TABLE bench_received (sku text PRIMARY KEY, units bigint NOT NULL)")
    dlq = reliable_producer(bootstrap)
    await dlq.start()
    loop = ConsumerLoop(
        bootstrap_servers=bootstrap,
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        topics=[topic],
        pool=pool,
        handler=upsert_received,
        dead_letter_producer=dlq,
        service="bench",
        batch_size=batch,
    )
    started, since = time.perf_counter(), cpu_mark()
    task = asyncio.create_task(loop.run())
    await eventually(lambda: _reached(loop.applied, count), timeout=600, interval=0.01)
    report(
        "consumer loop (inbox + projection)",
        loop.applied,
        time.perf_counter() - started,
        f"batch {batch}",
        since,
    )
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await dlq.stop()
    await pool.close()


async def main(count: int, relay_batch: int, consumer_batch: int) -> None:
    configure_logging("bench", "WARNING")
    with real_servers() as servers:
        run = uuid.uuid4().hex[:8]
        prefix, name = f"bench-{run}.", f"bench_{run}"
        bootstrap = servers.kafka_bootstrap_servers
        await ensure_topics(
            bootstrap, [f"{prefix}raw", f"{prefix}supplier"], partitions=4, replication_factor=1
        )
        async with fresh_database(servers.pg_admin_url, name) as dsn:
            payloads = events(count)
            print(f"backbone benchmark: {count:,} events, Kafka {bootstrap}, PostgreSQL via {servers.source}")
            await bench_raw(bootstrap, f"{prefix}raw", payloads)
            await bench_relay(dsn, bootstrap, prefix, payloads, relay_batch)  # fills {prefix}supplier
            await bench_consumer(dsn, bootstrap, f"{prefix}supplier", count, consumer_batch)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--relay-batch", type=int, default=2000)
    parser.add_argument("--consumer-batch", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.relay_batch, args.consumer_batch))
