"""Dead letters: a message that cannot be applied goes to `<topic>.dlq` with its bytes and the reason."""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from backbone.contracts import dead_letter_topic

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: ConsumerRecord[bytes, bytes]
    reason: str


async def send_dead_letters(producer: AIOKafkaProducer, service: str, letters: Sequence[DeadLetter]) -> None:
    """Publish every letter and wait for Kafka's acks; the caller commits offsets only afterwards."""
    failed_at = datetime.now(UTC).isoformat().encode()
    acks = []
    for letter in letters:
        r = letter.record
        headers = [
            *r.headers,
            ("dlq_reason", letter.reason.encode()),
            ("dlq_source_topic", r.topic.encode()),
            ("dlq_source_partition", str(r.partition).encode()),
            ("dlq_source_offset", str(r.offset).encode()),
            ("dlq_service", service.encode()),
            ("dlq_failed_at", failed_at),
        ]
        log.warning(
            "message dead-lettered",
            topic=r.topic,
            partition=r.partition,
            offset=r.offset,
            reason=letter.reason,
        )
        acks.append(
            await producer.send(dead_letter_topic(r.topic), value=r.value, key=r.key, headers=headers)
        )
    await asyncio.gather(*acks)
