"""The outbox relay: publishes committed events to Kafka in position order, at least once.

Why it cannot skip an event: it never keeps a "last published position". It publishes whatever rows
the outbox holds and deletes them after Kafka acknowledged them, so an event whose position was
allocated early but committed late is simply found on a later round. Per stream, positions follow
commit order (a stream's next version can only commit after the previous one), and every stream's
events share one partition key, so each key's events reach Kafka in commit order.

A crash between commit and publish, or between publish and delete, leaves rows that the next relay
publishes (again): consumers deduplicate by event id. One relay per database is active at a time
(an advisory lock), so two instances of a service do not interleave each other's publishing.

Outages never end the relay. A lost database connection is a lost lock too: the relay reconnects with
a capped backoff and competes for the lock again, so it may come back as the standby of an instance
that took over meanwhile. A round that Kafka fails (broker down, timeouts) leaves its rows in the outbox
and is tried again after a backoff. An event Kafka can never take (larger than the producer's
max_request_size or the broker's limit, an invalid or missing topic) is *parked*: moved from the outbox
to `parked_events` in one transaction, so that the events behind it flow. Only those with another key,
though: later events of the parked one's topic and partition key stay in the outbox until an operator
retries or discards it (retry_parked, discard_parked), because publishing them first would reorder that
key. Client-side checks (topic name, record size) catch the usual cases before anything is sent; an
event the broker refuses after later events of its key were already in flight cannot be held back.
"""

import asyncio
import contextlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    UnknownTopicOrPartitionError,
)

from backbone import tracing
from backbone.backoff import Backoff
from backbone.contracts.envelope import event_headers
from backbone.db import DATABASE_UNAVAILABLE
from backbone.health import HealthReport
from backbone.metrics import ServiceMetrics

log = structlog.get_logger(__name__)

CHANNEL = "backorder_outbox"
APPLICATION_NAME = "backorder-outbox-relay"  # in pg_stat_activity, for operators (and outage tests)
_RELAY_LOCK = 7_401_002
_LEGAL_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}")
# Refusals that say this record will never be taken, whatever the retries.
_UNPUBLISHABLE = (MessageSizeTooLargeError, RecordListTooLargeError, InvalidTopicError)

# Each pending event is looked up by its position (the LATERAL subquery with OFFSET 0 is not flattened
# into a join): a merge join, which the planner picks for a large outbox, reads event_store's key from
# the log's first event up to the oldest pending one on every poll, a cost that grows with the history.
_PENDING = """
SELECT o.global_position, e.topic, e.partition_key, e.body::text AS body,
       e.event_type, e.schema_version, e.event_id, e.correlation_id, e.traceparent
FROM outbox o
CROSS JOIN LATERAL (
    SELECT * FROM event_store es WHERE es.global_position = o.global_position OFFSET 0
) e
WHERE NOT EXISTS (
    SELECT 1 FROM parked_events p WHERE p.topic = e.topic AND p.partition_key = e.partition_key
)
ORDER BY o.global_position
LIMIT $1
"""

_PARK = """
INSERT INTO parked_events (global_position, topic, partition_key, reason)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])
ON CONFLICT (global_position) DO NOTHING
"""

_DELETE = "DELETE FROM outbox WHERE global_position = ANY($1::bigint[])"


class Unpublishable(Exception):
    """This event can never be published as it is."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OutboxRelay:
    def __init__(
        self,
        dsn: str,
        producer: AIOKafkaProducer,
        topic_prefix: str,
        *,
        batch_size: int = 1000,
        idle_poll_seconds: float = 1.0,
        max_backoff_seconds: float = 5.0,
        ack_patience_seconds: float = 5.0,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self._dsn = dsn
        self._producer = producer
        self._prefix = topic_prefix
        self._batch_size = batch_size
        self._idle_poll = idle_poll_seconds  # a fallback only: NOTIFY wakes the relay on every commit
        self._max_backoff = max_backoff_seconds
        self._ack_patience = ack_patience_seconds  # acks slower than this: reported as waiting for Kafka
        self._wake = asyncio.Event()
        self._metrics = metrics
        self.health = HealthReport()
        self.published = 0
        self.parked = 0
        self.active = False  # holds the lock; a standby waits

    async def run(self) -> None:
        """Publish until cancelled. Waits (as a standby) while another relay holds the lock; waits out
        database and Kafka outages."""
        backoff = Backoff(cap=self._max_backoff)
        while True:
            try:
                await self._session(backoff)
            except DATABASE_UNAVAILABLE as e:
                self.health.degraded(f"database unreachable: {type(e).__name__}: {e}")
                log.warning("outbox relay lost the database; reconnecting", error=repr(e))
            except Exception as e:  # a bug or an unforeseen refusal: logged, and the relay goes on
                self.health.degraded(f"failed: {type(e).__name__}: {e}")
                log.exception("outbox relay failed; starting again")
            await backoff.wait()

    async def _session(self, backoff: Backoff) -> None:
        """One database connection: stand by until the lock is ours, then publish round after round."""
        conn: asyncpg.Connection = await asyncpg.connect(
            self._dsn, timeout=10, command_timeout=60, server_settings={"application_name": APPLICATION_NAME}
        )
        try:
            await conn.add_listener(CHANNEL, lambda *_: self._wake.set())
            standing_by = False
            # polling the database's lock, not an in-process flag
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _RELAY_LOCK):
                if not standing_by:
                    log.info("outbox relay standing by: another instance publishes")
                    standing_by = True
                    self.health.ok()
                    backoff.reset()
                await asyncio.sleep(self._idle_poll)
            self.active = True
            log.info("outbox relay active")
            kafka_backoff = Backoff(cap=self._max_backoff)
            while True:
                self._wake.clear()
                try:
                    handled = await self.publish_pending(conn)
                except KafkaError as e:
                    delay = kafka_backoff.next_delay()
                    self.health.degraded(f"Kafka unavailable: {type(e).__name__}: {e}")
                    log.warning("publishing failed; retrying", error=repr(e), retry_in=round(delay, 2))
                    await asyncio.sleep(delay)
                    continue
                kafka_backoff.reset()
                backoff.reset()
                self.health.ok()
                if handled < self._batch_size:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._idle_poll)
        finally:
            self.active = False
            try:
                await asyncio.shield(conn.close(timeout=5))
            except Exception:
                conn.terminate()  # a dead connection: nothing to say goodbye to

    async def publish_pending(self, conn: asyncpg.Connection) -> int:
        """One round: publish up to a batch of pending events, wait for their acks, then delete the
        acknowledged and park the unpublishable ones. Returns the rows handled. Raises KafkaError when
        Kafka failed some of them (those stay for the next round), or what the database raised."""
        rows = await conn.fetch(_PENDING, self._batch_size)
        if not rows:
            return 0
        started = time.perf_counter()
        in_flight: list[tuple[asyncpg.Record, asyncio.Future[Any]]] = []
        parked: list[tuple[asyncpg.Record, str]] = []
        held: set[tuple[str, str]] = set()  # keys with an event parked in this round
        failure: BaseException | None = None
        for r in rows:
            key = (r["topic"], r["partition_key"])
            if key in held:
                continue  # behind its key's parked event: stays in the outbox
            try:
                in_flight.append((r, await self._send(r)))
            except Unpublishable as e:
                parked.append((r, e.reason))
                held.add(key)
            except KafkaError as e:
                failure = e
                break  # Kafka is in trouble: wait for what is in flight, retry the rest later
        await self._acknowledged([f for _, f in in_flight])
        published = []
        for r, future in in_flight:
            ack = KafkaError("send cancelled") if future.cancelled() else future.exception()
            if ack is None:
                published.append(r["global_position"])
            elif isinstance(ack, _UNPUBLISHABLE):
                parked.append((r, f"refused by Kafka: {type(ack).__name__}: {ack}"))
            elif failure is None:
                failure = ack
        if self._metrics is not None and in_flight:
            self._metrics.publish_seconds.observe(time.perf_counter() - started)
        await self._settle(conn, published, parked)
        self.published += len(published)
        if self._metrics is not None:
            self._metrics.published.inc(len(published))
            self._metrics.parked_total.inc(len(parked))
        if failure is not None:
            raise failure if isinstance(failure, KafkaError) else KafkaError(repr(failure))
        return len(rows)

    async def _acknowledged(self, futures: Sequence["asyncio.Future[Any]"]) -> None:
        """Wait for every ack or error. The producer retries a lost broker without end rather than fail
        what it already sent, so this may take the whole outage: reported, not given up on (sending the
        rows again meanwhile would only add duplicates behind the ones in flight)."""
        pending = set(futures)
        while pending:
            _, pending = await asyncio.wait(pending, timeout=self._ack_patience)
            if pending:
                if self.health.current.status == "ok":
                    log.warning("Kafka does not acknowledge; waiting", in_flight=len(pending))
                self.health.degraded(f"waiting for Kafka to acknowledge {len(pending)} events")

    async def _send(self, r: asyncpg.Record) -> "asyncio.Future[Any]":
        topic = f"{self._prefix}{r['topic']}"
        if not _LEGAL_TOPIC.fullmatch(topic) or topic in (".", ".."):
            raise Unpublishable(f"invalid topic name {topic!r}")
        headers = event_headers(r["event_type"], r["schema_version"], r["event_id"], r["correlation_id"])
        try:
            with tracing.publishing(topic, r["event_type"], r["traceparent"]) as trace_headers:
                return await self._producer.send(
                    topic,
                    value=r["body"].encode(),
                    key=r["partition_key"].encode(),
                    headers=headers + trace_headers,
                )
        except MessageSizeTooLargeError as e:
            raise Unpublishable(f"too large: {e}") from e
        except UnknownTopicOrPartitionError:
            if await self._topic_missing(topic):
                raise Unpublishable(f"topic {topic!r} does not exist") from None
            raise

    async def _topic_missing(self, topic: str) -> bool:
        """Kafka answers and has no such topic (rather than: Kafka does not answer)."""
        try:
            async with asyncio.timeout(10):
                cluster = await self._producer.client.fetch_all_metadata()
        except (KafkaError, TimeoutError, OSError):
            return False
        return topic not in cluster.topics()

    async def _settle(
        self, conn: asyncpg.Connection, published: Sequence[int], parked: Sequence[tuple[asyncpg.Record, str]]
    ) -> None:
        if not published and not parked:
            return
        if not parked:  # one statement is its own transaction: no BEGIN and COMMIT round trips around it
            await conn.execute(_DELETE, published)
            return
        async with conn.transaction():
            await conn.execute(
                _PARK,
                [r["global_position"] for r, _ in parked],
                [r["topic"] for r, _ in parked],
                [r["partition_key"] for r, _ in parked],
                [reason[:2000] for _, reason in parked],
            )
            await conn.execute(_DELETE, [*published, *(r["global_position"] for r, _ in parked)])
        for r, reason in parked:
            self.parked += 1
            log.error(
                "event parked: Kafka will not take it; later events of its key wait behind it",
                position=r["global_position"],
                event_id=str(r["event_id"]),
                event_type=r["event_type"],
                topic=r["topic"],
                partition_key=r["partition_key"],
                reason=reason,
            )


# --- what an operator does with parked events ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParkedEvent:
    position: int
    event_id: str
    event_type: str
    topic: str
    partition_key: str
    reason: str
    parked_at: datetime
    waiting_behind: int  # later events of its key held in the outbox


async def parked_events(conn: asyncpg.Connection | asyncpg.Pool) -> list[ParkedEvent]:
    rows = await conn.fetch(
        """
        SELECT p.global_position, e.event_id, e.event_type, p.topic, p.partition_key, p.reason, p.parked_at,
               (SELECT count(*) FROM outbox o JOIN event_store w USING (global_position)
                WHERE w.topic = p.topic AND w.partition_key = p.partition_key) AS waiting_behind
        FROM parked_events p JOIN event_store e USING (global_position)
        ORDER BY p.global_position
        """
    )
    return [
        ParkedEvent(
            r["global_position"],
            str(r["event_id"]),
            r["event_type"],
            r["topic"],
            r["partition_key"],
            r["reason"],
            r["parked_at"],
            r["waiting_behind"],
        )
        for r in rows
    ]


async def parked_count(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM parked_events"))


async def retry_parked(conn: asyncpg.Connection, position: int) -> bool:
    """Put a parked event back into the outbox (say, after raising the broker's limit or creating the
    topic); it goes before the events of its key that waited. False if it is not parked."""
    async with conn.transaction():
        if await conn.fetchval("DELETE FROM parked_events WHERE global_position = $1 RETURNING 1", position):
            await conn.execute("INSERT INTO outbox (global_position) VALUES ($1)", position)
            return True
    return False


async def discard_parked(conn: asyncpg.Connection, position: int) -> bool:
    """Give up publishing a parked event (it stays in the event store); its key's later events flow."""
    async with conn.transaction():
        if await conn.fetchval("DELETE FROM parked_events WHERE global_position = $1 RETURNING 1", position):
            await conn.execute("SELECT pg_notify($1, '')", CHANNEL)  # wake the relay for the released ones
            return True
    return False
