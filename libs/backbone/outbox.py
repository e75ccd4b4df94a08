"""The outbox relay: publishes committed events to Kafka in position order, at least once.

Why it cannot skip an event: it never keeps a "last published position". It publishes whatever rows
the outbox holds and deletes them after Kafka acknowledged them, so an event whose position was
allocated early but committed late is simply found on a later round. Per stream, positions follow
commit order (a stream's next version can only commit after the previous one), and every stream's
events share one partition key, so each key's events reach Kafka in commit order.

A crash between commit and publish, or between publish and delete, leaves rows that the next relay
publishes (again): consumers deduplicate by event id. One relay per database is active at a time
(an advisory lock), so two instances of a service do not interleave each other's publishing.
"""

import asyncio
import contextlib

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer

from backbone.contracts.envelope import event_headers

log = structlog.get_logger(__name__)

CHANNEL = "backorder_outbox"
_RELAY_LOCK = 7_401_002

_PENDING = """
SELECT o.global_position, e.topic, e.partition_key, e.body::text AS body,
       e.event_type, e.schema_version, e.event_id, e.correlation_id
FROM outbox o JOIN event_store e USING (global_position)
ORDER BY o.global_position
LIMIT $1
"""


class OutboxRelay:
    def __init__(
        self,
        dsn: str,
        producer: AIOKafkaProducer,
        topic_prefix: str,
        *,
        batch_size: int = 1000,
        idle_poll_seconds: float = 1.0,
    ) -> None:
        self._dsn = dsn
        self._producer = producer
        self._prefix = topic_prefix
        self._batch_size = batch_size
        self._idle_poll = idle_poll_seconds  # a fallback only: NOTIFY wakes the relay on every commit
        self._wake = asyncio.Event()
        self.published = 0
        self.active = False  # holds the lock; a standby waits

    async def run(self) -> None:
        """Publish until cancelled. Waits (as a standby) while another relay holds the lock."""
        conn: asyncpg.Connection = await asyncpg.connect(self._dsn)
        try:
            await conn.add_listener(CHANNEL, lambda *_: self._wake.set())
            # polling the database's lock, not an in-process flag
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _RELAY_LOCK):  # noqa: ASYNC110
                await asyncio.sleep(self._idle_poll)
            self.active = True
            log.info("outbox relay active")
            while True:
                self._wake.clear()
                if await self.publish_pending(conn) < self._batch_size:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._idle_poll)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(conn.close(timeout=5))

    async def publish_pending(self, conn: asyncpg.Connection) -> int:
        """One round: publish up to a batch of pending events, wait for every ack, then delete them."""
        rows = await conn.fetch(_PENDING, self._batch_size)
        if not rows:
            return 0
        acks = []
        for r in rows:
            headers = event_headers(r["event_type"], r["schema_version"], r["event_id"], r["correlation_id"])
            acks.append(
                await self._producer.send(
                    f"{self._prefix}{r['topic']}",
                    value=r["body"].encode(),
                    key=r["partition_key"].encode(),
                    headers=headers,
                )
            )
        await asyncio.gather(*acks)
        await conn.execute(
            "DELETE FROM outbox WHERE global_position = ANY($1::bigint[])",
            [r["global_position"] for r in rows],
        )
        self.published += len(rows)
        return len(rows)
