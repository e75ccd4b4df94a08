"""How many messages each dead-letter topic holds: end offset minus beginning offset, summed over its
partitions (what retention or a purge removed no longer counts).

The topics' partitions come from a metadata request that must not create them: the local broker
auto-creates topics, and a board asking about a dead-letter topic nobody made yet should not make it.
The offsets come from a consumer without a group, so nothing is committed and no group is joined.
Clients are kept between rounds and rebuilt after a failure.
"""

import asyncio
import contextlib
from typing import Any

from aiokafka import AIOKafkaClient, AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest

from backbone.contracts import Topic, dead_letter_topic
from services.console.board import DeadLetters

_UNKNOWN_TOPIC = 3  # Kafka's UNKNOWN_TOPIC_OR_PARTITION


class DeadLetterCounter:
    def __init__(self, bootstrap_servers: str, topic_prefix: str, options: dict[str, Any]) -> None:
        self._bootstrap = bootstrap_servers
        self._options = options
        self._topics = {
            t.qualified(topic_prefix): dead_letter_topic(t.qualified(topic_prefix)) for t in Topic
        }
        self._client: AIOKafkaClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def counts(self, timeout: float) -> list[DeadLetters]:
        """One count per topic of the contract; raises KafkaError or TimeoutError when Kafka does not
        answer in time."""
        async with self._lock:  # one round at a time shares the clients
            try:
                async with asyncio.timeout(timeout):
                    return await self._count()
            except (KafkaError, OSError, TimeoutError):
                await self.close()  # a new connection next time
                raise

    async def _count(self) -> list[DeadLetters]:
        client, consumer = await self._started()
        partitions = await self._partitions(client, list(self._topics.values()))
        wanted = [TopicPartition(name, p) for name, ids in partitions.items() for p in ids]
        first = await consumer.beginning_offsets(wanted) if wanted else {}
        ends = await consumer.end_offsets(wanted) if wanted else {}
        return [
            DeadLetters(
                topic=topic,
                dead_letter_topic=dlq,
                exists=dlq in partitions,
                partitions=len(partitions.get(dlq, ())),
                messages=sum(ends[tp] - first[tp] for tp in wanted if tp.topic == dlq),
            )
            for topic, dlq in self._topics.items()
        ]

    async def _started(self) -> tuple[AIOKafkaClient, AIOKafkaConsumer]:
        if self._client is None or self._consumer is None:
            client = AIOKafkaClient(bootstrap_servers=self._bootstrap, **self._options)
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap, group_id=None, enable_auto_commit=False, **self._options
            )
            try:
                await client.bootstrap()
                await consumer.start()
            except BaseException:
                await _quietly_close(client, consumer)
                raise
            self._client, self._consumer = client, consumer
        return self._client, self._consumer

    @staticmethod
    async def _partitions(client: AIOKafkaClient, topics: list[str]) -> dict[str, list[int]]:
        """The partitions of those of `topics` that exist (without creating the others)."""
        node = client.get_random_node()
        if node is None:
            raise KafkaError("no broker known")
        response = await client.send(node, MetadataRequest(topics, allow_auto_topic_creation=False))
        found: dict[str, list[int]] = {}
        for entry in response.to_object()["topics"]:
            if entry["error_code"] == _UNKNOWN_TOPIC:
                continue
            if entry["error_code"]:
                raise KafkaError(f"metadata of {entry['topic']}: Kafka error code {entry['error_code']}")
            found[entry["topic"]] = sorted(p["partition"] for p in entry["partitions"])
        return found

    async def close(self) -> None:
        client, consumer, self._client, self._consumer = self._client, self._consumer, None, None
        await _quietly_close(client, consumer)


async def _quietly_close(client: AIOKafkaClient | None, consumer: AIOKafkaConsumer | None) -> None:
    if consumer is not None:
        with contextlib.suppress(Exception):
            await consumer.stop()
    if client is not None:
        with contextlib.suppress(Exception):
            await client.close()
