"""The consumer loop: Kafka batches applied in one database transaction each, offsets committed after.

Guarantees, given at-least-once delivery:
- the inbox row of every event commits with the event's effects, so a redelivery has no second effect;
- offsets are committed only after the transaction (and any dead letters) are durable, so a crash,
  rollback, rebalance or failed commit leads to redelivery, never loss;
- one failing message does not hold back the others: a batch that fails is re-applied one message per
  transaction, and the message that still fails goes to the dead-letter topic with the reason;
- a business fact re-sent under a new event id (backbone.business_keys) is dropped the same way, and
  one that reuses a business key with other content is dead-lettered, saying so;
- a message that breaks the contract (too large, unknown or misplaced event type, headers that disagree
  with the body, invalid) is dead-lettered before any handler sees it;
- an unreachable database is waited for, however long, and never dead-letters a good message; stale
  stream versions and serialization conflicts are retried with backoff. `health` says what it waits for.
"""

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any
from uuid import UUID

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from backbone import business_keys, inbox, tracing
from backbone.backoff import Backoff
from backbone.contracts import REGISTRY, DecodeError, Envelope, EventRegistry, Topic
from backbone.contracts.limits import check_event_size
from backbone.db import is_database_unavailable
from backbone.deadletter import DeadLetter, send_dead_letters
from backbone.eventstore import ConcurrencyError
from backbone.health import HealthReport
from backbone.kafka import reliable_producer
from backbone.metrics import ServiceMetrics

log = structlog.get_logger(__name__)

Handler = Callable[[asyncpg.Connection, Sequence[Envelope[Any]]], Awaitable[None]]
Record = ConsumerRecord[bytes, bytes]

CONFLICT_ERRORS: tuple[type[BaseException], ...] = (
    ConcurrencyError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
)
_MAX_CONFLICT_RETRIES = 10  # a stream that conflicts this often is a bug, not a race
_MAX_DELAY = 5.0
_VERDICT_CACHE = 1024  # (topic, event_type, schema_version) headers seen; bounded against odd spellings


def first_headers(record: Record) -> dict[str, bytes]:
    """The message's headers by name, the first of each (a repeated header does not override it)."""
    return dict(reversed(record.headers))


def routing_headers(headers: Mapping[str, bytes]) -> tuple[str | None, int | None]:
    """The message's `event_type` and `schema_version` headers, or DecodeError if they are malformed."""
    kind, version = headers.get("event_type"), headers.get("schema_version")
    try:
        event_type = None if kind is None else kind.decode()
    except UnicodeDecodeError:
        raise DecodeError(f"event_type header is not UTF-8: {kind!r}") from None
    if version is None:
        return event_type, None
    if not (version.isdigit() and len(version) <= 9):  # isdigit: ASCII digits, no sign, no spaces
        raise DecodeError(f"schema_version header is not a version number: {version!r}")
    return event_type, int(version)


@functools.cache  # one entry per topic name consumed
def topic_of(name: str) -> Topic | None:
    """The contract topic a (prefixed) topic name stands for; None for a topic outside the contract."""
    return next((t for t in Topic if name.endswith(t.value)), None)


def check_headers_agree(headers: Mapping[str, bytes], envelope: Envelope[Any]) -> None:
    """The body decides (its type and version were checked while decoding); ids in headers must match it."""
    event_id, correlation_id = headers.get("event_id"), headers.get("correlation_id")
    if event_id is not None and event_id != str(envelope.event_id).encode():  # else: another spelling?
        try:
            agrees = UUID(event_id.decode()) == envelope.event_id
        except (UnicodeDecodeError, ValueError):
            agrees = False
        if not agrees:
            raise DecodeError(f"event_id header {event_id!r} disagrees with the body's {envelope.event_id}")
    if correlation_id is not None and correlation_id != envelope.correlation_id.encode():
        raise DecodeError(
            f"correlation_id header {correlation_id!r} disagrees with the body's {envelope.correlation_id!r}"
        )


def decode(
    record: Record, registry: EventRegistry = REGISTRY, headers: Mapping[str, bytes] | None = None
) -> Envelope[Any]:
    """Check and parse one message: size first, then its headers against the topic, then the body.
    `headers`: first_headers(record), if the caller has them already."""
    if record.value is None:
        raise DecodeError("message has no value")
    check_event_size(len(record.value))
    headers = first_headers(record) if headers is None else headers
    event_type, version = routing_headers(headers)
    envelope = registry.decode(record.value, event_type, version, topic=topic_of(record.topic))
    check_headers_agree(headers, envelope)
    return envelope


class ConsumerLoop:
    def __init__(
        self,
        *,
        bootstrap_servers: str,
        group_id: str,
        topics: Sequence[str],
        pool: asyncpg.Pool,
        handler: Handler,
        service: str,
        dead_letter_producer: AIOKafkaProducer | None = None,
        registry: EventRegistry = REGISTRY,
        batch_size: int = 500,
        handles: Collection[str] | None = None,
        metrics: ServiceMetrics | None = None,
        client_options: Mapping[str, Any] | None = None,
        **consumer_options: Any,
    ) -> None:
        """`handles`: the event types the handler acts on. A message whose event_type header names another
        known type of its topic is acknowledged without its body being parsed (the topics carry many events
        a service ignores, and parsing is most of a consumer's cost); one without the header is parsed and
        handled as usual. `dead_letter_producer`: None gives the loop its own, not idempotent (see
        backbone.deadletter). `client_options`: backbone.kafka.client_options(), for every client it makes."""
        security = dict(client_options or {})
        self._consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=batch_size,
            **security,
            **consumer_options,
        )
        self._pool = pool
        self._handler = handler
        self._own_dlq = dead_letter_producer is None
        self._dlq = dead_letter_producer or reliable_producer(
            bootstrap_servers, enable_idempotence=False, **security
        )
        self._service = service
        self._registry = registry
        self._batch_size = batch_size
        self._handles = None if handles is None else frozenset(handles)
        # (topic, event_type header, schema_version header) -> skip?; only for headers that passed the check
        self._verdicts: dict[tuple[str, bytes, bytes | None], bool] = {}
        self.health = HealthReport()
        self.skipped = 0  # not for this service, by their header
        self.applied = 0  # events applied for the first time (for benchmarks and health)
        self.replayed = 0  # new event ids for business facts already applied (backbone.business_keys)
        self.dead_lettered = 0
        self._metrics = metrics

    async def run(self) -> None:
        """Consume until cancelled."""
        try:
            if self._own_dlq:
                await self._dlq.start()
            await self._consumer.start()  # joins the group: a stop during the join must still leave it
            while True:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=self._batch_size)
                if batches:
                    await self.process([r for records in batches.values() for r in records])
                    await self._commit({tp: records[-1].offset + 1 for tp, records in batches.items()})
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._consumer.stop())
            if self._own_dlq:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._dlq.stop())

    def _skips(self, record: Record, headers: Mapping[str, bytes]) -> bool:
        """True for a message to acknowledge unparsed: within the size limit, with an event_type header that
        names a known event of its topic which this service does not handle. DecodeError if the size or
        the headers break the contract. The verdict per distinct headers is cached: this runs for every
        message, and most messages on a busy topic are skipped."""
        if self._handles is None:
            return False
        if record.value is None:
            raise DecodeError("message has no value")
        check_event_size(len(record.value))
        kind, version = headers.get("event_type"), headers.get("schema_version")
        if kind is None:
            return False
        key = (record.topic, kind, version)
        verdict = self._verdicts.get(key)
        if verdict is None:
            event_type, schema_version = routing_headers(headers)
            assert event_type is not None
            self._registry.route(event_type, schema_version, topic_of(record.topic))
            verdict = event_type not in self._handles
            if len(self._verdicts) < _VERDICT_CACHE:
                self._verdicts[key] = verdict
        return verdict

    async def lag(self) -> dict[tuple[str, int], int]:
        """Messages behind the end offset per assigned partition: the broker's end offsets against the
        consumer's own positions (the next offset it hands out; at most one batch ahead of what is
        applied). Asked afresh each time, so a partition that moved away and came back is not judged by
        an old figure."""
        assigned = list(self._consumer.assignment())
        if not assigned:
            return {}
        ends = await self._consumer.end_offsets(assigned)
        return {
            (tp.topic, tp.partition): max(0, ends[tp] - await self._consumer.position(tp)) for tp in assigned
        }

    async def process(self, records: Sequence[Record]) -> None:
        started = time.perf_counter()
        before = (self.applied, self.skipped, self.replayed, self.dead_lettered)
        decoded: list[tuple[Record, Envelope[Any]]] = []
        dead: list[DeadLetter] = []
        for record in records:
            try:
                headers = first_headers(record)
                if self._skips(record, headers):
                    self.skipped += 1
                    continue
                decoded.append((record, decode(record, self._registry, headers)))
            except DecodeError as e:
                dead.append(DeadLetter(record, e.reason))
        dead.extend(await self._apply(decoded))
        if dead:
            await send_dead_letters(self._dlq, self._service, dead, health=self.health)
            self.dead_lettered += len(dead)
        if self._metrics is not None:
            self._observe(records, before, time.perf_counter() - started)

    def _observe(self, records: Sequence[Record], before: tuple[int, int, int, int], seconds: float) -> None:
        assert self._metrics is not None
        m = self._metrics
        m.batch_size.observe(len(records))
        m.batch_seconds.observe(seconds)
        per_topic: dict[str, int] = {}
        for record in records:
            per_topic[record.topic] = per_topic.get(record.topic, 0) + 1
        for topic, count in per_topic.items():
            m.messages.labels(topic=topic).inc(count)
        applied, skipped, replayed, dead = (
            now - then
            for now, then in zip(
                (self.applied, self.skipped, self.replayed, self.dead_lettered), before, strict=True
            )
        )
        duplicates = len(records) - applied - skipped - replayed - dead
        for outcome, count in (
            ("applied", applied),
            ("skipped", skipped),
            ("replayed", replayed),
            ("dead_lettered", dead),
            ("duplicate", duplicates),
        ):
            if count:
                m.events.labels(outcome=outcome).inc(count)

    async def _apply(self, decoded: Sequence[tuple[Record, Envelope[Any]]]) -> list[DeadLetter]:
        if not decoded:
            return []
        try:
            await self._traced(decoded)
            return []
        except Exception as e:
            log.warning("batch failed; applying its messages one by one", error=repr(e), size=len(decoded))
        dead = []
        for record, envelope in decoded:
            try:
                await self._traced([(record, envelope)])
            except business_keys.BusinessKeyConflict as e:
                log.warning("business key reused with other content", event_id=str(envelope.event_id))
                dead.append(DeadLetter(record, str(e)))
            except Exception as e:
                log.exception(
                    "message failed",
                    event_type=envelope.event_type,
                    event_id=str(envelope.event_id),
                    correlation_id=envelope.correlation_id,
                )
                dead.append(DeadLetter(record, f"handler failed: {type(e).__name__}: {e}"))
        return dead

    async def _traced(self, decoded: Sequence[tuple[Record, Envelope[Any]]]) -> None:
        """_with_retries, continuing each message's trace (when traces are on)."""
        messages = (
            [(r.topic, e.event_type, e.correlation_id, r.headers) for r, e in decoded]
            if tracing.enabled()
            else []
        )
        with tracing.consuming(self._service, messages):
            await self._with_retries([e for _, e in decoded])

    async def _with_retries(self, envelopes: Sequence[Envelope[Any]]) -> None:
        """Apply in one transaction; an outage is waited out however long it lasts, conflicts are retried
        up to a bound (for ConcurrencyError) and any other error is raised to the caller."""
        outage, conflict = Backoff(first=0.1, cap=_MAX_DELAY), Backoff(first=0.1, cap=_MAX_DELAY)
        outage_since: float | None = None
        while True:
            try:
                await self._transaction(envelopes)
            except Exception as e:
                if is_database_unavailable(e):
                    outage_since = outage_since or time.monotonic()
                    delay = outage.next_delay()
                    self.health.degraded(f"database unreachable: {type(e).__name__}: {e}")
                    log.warning(
                        "database unreachable; retrying",
                        error=repr(e),
                        attempt=outage.attempt,
                        delay=delay,
                        unreachable_for=round(time.monotonic() - outage_since, 1),
                        events=len(envelopes),
                    )
                elif isinstance(e, CONFLICT_ERRORS):
                    if isinstance(e, ConcurrencyError) and conflict.attempt >= _MAX_CONFLICT_RETRIES:
                        raise
                    delay = conflict.next_delay()
                    log.warning("conflict; retrying", error=repr(e), attempt=conflict.attempt, delay=delay)
                else:
                    raise
                await asyncio.sleep(delay)
                continue
            if outage_since is not None:
                log.info("database reachable again", after=round(time.monotonic() - outage_since, 1))
            if self.health.current.status != "ok":
                self.health.ok()
            return

    async def _transaction(self, envelopes: Sequence[Envelope[Any]]) -> None:
        async with self._pool.acquire() as conn:
            try:
                async with conn.transaction():
                    first_seen = await inbox.claim(conn, [e.event_id for e in envelopes])
                    fresh = []
                    for e in envelopes:  # keeps order, and drops a repeat inside the batch too
                        if e.event_id in first_seen:
                            first_seen.discard(e.event_id)
                            fresh.append(e)
                    facts = await business_keys.first_applications(conn, fresh)
                    replayed = len(fresh) - len(facts)
                    if facts:
                        await self._handler(conn, facts)
            except Exception as e:
                # A connection that failed mid-protocol may look open; closed, the pool replaces it. (One
                # that asyncpg saw die is already detached from the pool, and refuses the call.)
                if is_database_unavailable(e):
                    with contextlib.suppress(asyncpg.InterfaceError):
                        conn.terminate()
                raise
        self.applied += len(facts)
        if replayed:
            self.replayed += replayed
            log.info("facts re-sent under new event ids were dropped", count=replayed)

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self._consumer.commit(offsets)
        except KafkaError as e:
            # Typically a rebalance: the partitions' new owner re-reads these messages, the inbox drops them.
            log.warning("offset commit failed; the batch will be redelivered", error=repr(e))
