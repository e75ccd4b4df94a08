"""pytest fixtures over the real servers (enable with `pytest_plugins = ["backbone.testing.fixtures"]`)."""

import itertools
import os
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from backbone.contracts import Envelope
from backbone.kafka import reliable_producer
from backbone.testing.databases import fresh_database
from backbone.testing.servers import Servers, real_servers
from backbone.testing.waiting import eventually

RUN_ID = uuid.uuid4().hex[:8]  # unique topics, groups and databases for every test run
_counter = itertools.count(1)


def unique_name(kind: str) -> str:
    return f"t{RUN_ID}_{kind}_{next(_counter)}"


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    with real_servers() as found:
        os.environ.setdefault("KAFKA_BOOTSTRAP_SERVERS", found.kafka_bootstrap_servers)
        yield found


@pytest.fixture
def kafka_bootstrap(servers: Servers) -> str:
    return servers.kafka_bootstrap_servers


@pytest.fixture
async def topic_prefix(kafka_bootstrap: str) -> AsyncIterator[str]:
    """Topics of the test's own; deleted after it, since every partition holds open files in the broker
    and a long-lived local broker would otherwise reach its limit of open files."""
    prefix = f"{unique_name('topics')}."
    yield prefix
    await delete_topics(kafka_bootstrap, prefix)


async def delete_topics(bootstrap: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    except KafkaError:
        pass  # best effort: the broker's data folder is the test run's anyway
    finally:
        await admin.close()


@pytest.fixture
async def database_url(servers: Servers) -> AsyncIterator[str]:
    """A fresh database with the backbone's tables, dropped after the test."""
    async with fresh_database(servers.pg_admin_url, unique_name("db")) as url:
        yield url


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    p = reliable_producer(kafka_bootstrap)
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def gzip_producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """A producer as a careless checkout system might run it: a 10 MB value compresses below the broker's
    1 MiB limit, so the broker accepts it (and the consumers must refuse it)."""
    p = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        compression_type="gzip",
        max_request_size=32 * 1024 * 1024,
        acks="all",
    )
    await p.start()
    yield p
    await p.stop()


async def publish(producer: AIOKafkaProducer, topic: str, envelopes: Sequence[Envelope[Any]]) -> None:
    """Publish as the services do: JSON body, partition key, routing headers; one ack at a time."""
    for e in envelopes:
        await producer.send_and_wait(topic, e.to_json(), key=e.key.encode(), headers=e.headers())


async def read_topic(
    bootstrap: str, topic: str, count: int, *, timeout: float = 30.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read the topic from the beginning until `count` messages have arrived (or fail at the deadline)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: list[Any] = []
    try:

        async def enough() -> bool:
            batches = await consumer.getmany(timeout_ms=200)
            seen.extend(r for records in batches.values() for r in records)
            return len(seen) >= count

        await eventually(enough, timeout=timeout, what=f"{count} messages on {topic}")
        return seen
    finally:
        await consumer.stop()
