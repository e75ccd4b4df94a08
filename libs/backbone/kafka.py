"""Kafka clients configured once: an ordered, acknowledged producer and topic creation."""

from collections.abc import Iterable

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

log = structlog.get_logger(__name__)


def reliable_producer(bootstrap_servers: str, **overrides: object) -> AIOKafkaProducer:
    """acks=all and idempotence: an acknowledged message is on every in-sync replica, and retries
    neither duplicate nor reorder messages of a partition."""
    options: dict[str, object] = {
        "bootstrap_servers": bootstrap_servers,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 2,
        "max_batch_size": 512 * 1024,
        "request_timeout_ms": 30_000,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


async def ensure_topics(
    bootstrap_servers: str, names: Iterable[str], partitions: int, replication_factor: int
) -> None:
    """Create missing topics; an existing topic is left as it is."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=partitions, replication_factor=replication_factor)
            for name in sorted(set(names) - existing)
        ]
        if missing:
            response = await admin.create_topics(missing)
            # Errors come back per topic rather than raised; "already exists" means another instance won.
            failed = [
                (t[0], t[1]) for t in response.topic_errors if t[1] not in (0, TopicAlreadyExistsError.errno)
            ]
            if failed:
                raise RuntimeError(f"could not create topics (name, Kafka error code): {failed}")
            log.info("topics created", topics=[t.name for t in missing])
    finally:
        await admin.close()
