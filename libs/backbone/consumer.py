"""The consumer loop: Kafka batches applied in one database transaction each, offsets committed after.

Guarantees, given at-least-once delivery:
- the inbox row of every event commits with the event's effects, so a redelivery has no second effect;
- offsets are committed only after the transaction (and any dead letters) are durable, so a crash,
  rollback, rebalance or failed commit leads to redelivery, never loss;
- one failing message does not hold back the others: a batch that fails is re-applied one message per
  transaction, and the message that still fails goes to the dead-letter topic with the reason;
- transient failures (database unreachable, serialization conflicts, stale stream versions) are
  retried with backoff instead of dead-lettering good messages.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from backbone import inbox
from backbone.contracts import REGISTRY, DecodeError, Envelope, EventRegistry
from backbone.deadletter import DeadLetter, send_dead_letters
from backbone.eventstore import ConcurrencyError

log = structlog.get_logger(__name__)

Handler = Callable[[asyncpg.Connection, Sequence[Envelope[Any]]], Awaitable[None]]
Record = ConsumerRecord[bytes, bytes]

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConcurrencyError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    OSError,
    TimeoutError,
)
_MAX_CONFLICT_RETRIES = 10  # a stream that conflicts this often is a bug, not a race


def _header(record: Record, name: str) -> bytes | None:
    return next((value for key, value in record.headers if key == name), None)


def decode(record: Record, registry: EventRegistry = REGISTRY) -> Envelope[Any]:
    if record.value is None:
        raise DecodeError("message has no value")
    event_type, version = _header(record, "event_type"), _header(record, "schema_version")
    if event_type is not None and version is not None and version.isdigit():
        return registry.decode(record.value, event_type.decode(errors="replace"), int(version))
    return registry.decode(record.value)


class ConsumerLoop:
    def __init__(
        self,
        *,
        bootstrap_servers: str,
        group_id: str,
        topics: Sequence[str],
        pool: asyncpg.Pool,
        handler: Handler,
        dead_letter_producer: AIOKafkaProducer,
        service: str,
        registry: EventRegistry = REGISTRY,
        batch_size: int = 500,
        handles: Collection[str] | None = None,
        **consumer_options: Any,
    ) -> None:
        """`handles`: the event types the handler acts on. A message whose event_type header names another
        type is acknowledged without being parsed (the topics carry many events a service ignores, and
        parsing is most of a consumer's cost); one without the header is parsed and handled as usual."""
        self._consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=batch_size,
            **consumer_options,
        )
        self._pool = pool
        self._handler = handler
        self._dlq = dead_letter_producer
        self._service = service
        self._registry = registry
        self._batch_size = batch_size
        self._handles = None if handles is None else frozenset(t.encode() for t in handles)
        self.skipped = 0  # not for this service, by their header
        self.applied = 0  # events applied for the first time (for benchmarks and health)
        self.dead_lettered = 0

    async def run(self) -> None:
        """Consume until cancelled."""
        try:
            await self._consumer.start()  # joins the group: a stop during the join must still leave it
            while True:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=self._batch_size)
                if batches:
                    await self.process([r for records in batches.values() for r in records])
                    await self._commit({tp: records[-1].offset + 1 for tp, records in batches.items()})
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._consumer.stop())

    def _not_handled(self, record: Record) -> bool:
        kind = _header(record, "event_type")
        return self._handles is not None and kind is not None and kind not in self._handles

    async def process(self, records: Sequence[Record]) -> None:
        decoded: list[tuple[Record, Envelope[Any]]] = []
        dead: list[DeadLetter] = []
        for record in records:
            if self._not_handled(record):
                self.skipped += 1
                continue
            try:
                decoded.append((record, decode(record, self._registry)))
            except DecodeError as e:
                dead.append(DeadLetter(record, e.reason))
        dead.extend(await self._apply(decoded))
        if dead:
            await send_dead_letters(self._dlq, self._service, dead)
            self.dead_lettered += len(dead)

    async def _apply(self, decoded: Sequence[tuple[Record, Envelope[Any]]]) -> list[DeadLetter]:
        if not decoded:
            return []
        try:
            await self._with_retries([e for _, e in decoded])
            return []
        except Exception as e:
            log.warning("batch failed; applying its messages one by one", error=repr(e), size=len(decoded))
        dead = []
        for record, envelope in decoded:
            try:
                await self._with_retries([envelope])
            except Exception as e:
                log.exception(
                    "message failed",
                    event_type=envelope.event_type,
                    event_id=str(envelope.event_id),
                    correlation_id=envelope.correlation_id,
                )
                dead.append(DeadLetter(record, f"handler failed: {type(e).__name__}: {e}"))
        return dead

    async def _with_retries(self, envelopes: Sequence[Envelope[Any]]) -> None:
        attempt = 0
        while True:
            try:
                await self._transaction(envelopes)
                return
            except TRANSIENT_ERRORS as e:
                attempt += 1
                if isinstance(e, ConcurrencyError) and attempt > _MAX_CONFLICT_RETRIES:
                    raise
                delay = min(0.05 * 2**attempt, 5.0)
                log.warning("transient failure; retrying", error=repr(e), attempt=attempt, delay=delay)
                await asyncio.sleep(delay)

    async def _transaction(self, envelopes: Sequence[Envelope[Any]]) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            first_seen = await inbox.claim(conn, [e.event_id for e in envelopes])
            fresh = []
            for e in envelopes:  # keeps order, and drops a repeat inside the batch too
                if e.event_id in first_seen:
                    first_seen.discard(e.event_id)
                    fresh.append(e)
            if fresh:
                await self._handler(conn, fresh)
        self.applied += len(fresh)

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self._consumer.commit(offsets)
        except KafkaError as e:
            # Typically a rebalance: the partitions' new owner re-reads these messages, the inbox drops them.
            log.warning("offset commit failed; the batch will be redelivered", error=repr(e))
