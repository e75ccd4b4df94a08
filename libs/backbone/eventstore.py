"""Append-only event streams in a service's own database, with optimistic concurrency.

Appending also fills the outbox, in the caller's transaction: the events, the service's projection
changes and the inbox record commit or roll back together.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from backbone import tracing
from backbone.contracts import REGISTRY, Envelope, EventRegistry


class ConcurrencyError(Exception):
    """Another writer appended to the stream since the caller read it; reload and decide again."""


@dataclass(frozen=True, slots=True)
class StreamAppend:
    stream_id: str
    expected_version: int  # 0 for a new stream
    events: Sequence[Envelope[Any]]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    global_position: int
    stream_id: str
    stream_version: int
    envelope: Envelope[Any]


FROM_SNAPSHOT = -1  # read_tails: the stream from its snapshot's version, or whole if it has none


@dataclass(frozen=True, slots=True)
class StreamTail:
    """A stream from a known version on: the id of the event at that version (None for version 0, or if
    the stream does not reach it) and the events after it."""

    stream_id: str
    known_version: int
    known_event_id: UUID | None
    events: list[StoredEvent]

    @property
    def version(self) -> int:
        return self.events[-1].stream_version if self.events else self.known_version


# One backward step of the (stream_id, stream_version) index per stream: a join + max() would read the
# whole stream, and a hot SKU's stream holds tens of thousands of events.
_CURRENT_VERSIONS = """
SELECT s.stream_id,
       coalesce((SELECT e.stream_version FROM event_store e WHERE e.stream_id = s.stream_id
                 ORDER BY e.stream_version DESC LIMIT 1), 0) AS version
FROM unnest($1::text[]) AS s(stream_id)
"""

_INSERT = """
WITH inserted AS (
    INSERT INTO event_store (stream_id, stream_version, event_id, event_type, schema_version,
                             correlation_id, topic, partition_key, body, traceparent)
    SELECT * FROM unnest($1::text[], $2::int[], $3::uuid[], $4::text[], $5::int[],
                         $6::text[], $7::text[], $8::text[], $9::jsonb[], $10::text[])
    RETURNING global_position, topic
)
INSERT INTO outbox (global_position)
SELECT global_position FROM inserted WHERE topic IS NOT NULL
"""

# Per stream, the event at the known version (its id only: the caller has its effect) and the events after
# it. FROM_SNAPSHOT starts at the stream's snapshot of the given shape, else at 0 (the whole stream). One
# statement for a batch's streams, each an index range scan; a stream without such events gives one row of
# NULLs, so that its known version is still told.
_TAILS = f"""
SELECT s.stream_id, s.known, e.global_position, e.stream_version, e.event_id, e.event_type,
       e.schema_version, CASE WHEN e.stream_version > s.known THEN e.body::text END AS body
FROM (SELECT u.stream_id,
             CASE WHEN u.known <> {FROM_SNAPSHOT} THEN u.known
                  ELSE coalesce((SELECT sn.version FROM snapshots sn
                                 WHERE sn.stream_id = u.stream_id AND sn.state_shape = $3), 0) END AS known
      FROM unnest($1::text[], $2::int[]) AS u(stream_id, known)) s
LEFT JOIN event_store e ON e.stream_id = s.stream_id AND e.stream_version >= s.known
ORDER BY s.stream_id, e.stream_version
"""

_SELECT = """
SELECT global_position, stream_id, stream_version, event_type, schema_version, body::text AS body
FROM event_store
"""


class EventStore:
    def __init__(self, registry: EventRegistry = REGISTRY) -> None:
        self._registry = registry

    async def append(
        self, conn: asyncpg.Connection, stream_id: str, expected_version: int, events: Sequence[Envelope[Any]]
    ) -> int:
        """Append to one stream; returns its new version."""
        await self.append_many(conn, [StreamAppend(stream_id, expected_version, events)])
        return expected_version + len(events)

    async def append_many(
        self, conn: asyncpg.Connection, appends: Sequence[StreamAppend], *, versions_read: bool = False
    ) -> None:
        """Append to several streams in one statement (two if the versions are checked first). Raises
        ConcurrencyError if any expected version is stale, also when a concurrent transaction wins the race
        after our check (unique violation). `versions_read`: the caller read these versions from the
        streams in this transaction (backbone.decider), so a version ahead of the stream cannot happen and
        a stale one is refused by the unique (stream_id, stream_version) constraint: no check first."""
        appends = [a for a in appends if a.events]
        if not appends:
            return
        ids = [a.stream_id for a in appends]
        if len(set(ids)) != len(ids):
            raise ValueError("append_many takes each stream once")
        if not versions_read:
            current = {r["stream_id"]: r["version"] for r in await conn.fetch(_CURRENT_VERSIONS, ids)}
            stale = [
                f"{a.stream_id} is at {current[a.stream_id]}, not {a.expected_version}"
                for a in appends
                if current[a.stream_id] != a.expected_version
            ]
            if stale:
                raise ConcurrencyError("; ".join(stale))
        columns: list[list[Any]] = [[] for _ in range(10)]
        for a in appends:
            for offset, e in enumerate(a.events, start=1):
                row = (
                    a.stream_id,
                    a.expected_version + offset,
                    e.event_id,
                    e.event_type,
                    e.schema_version,
                    e.correlation_id,
                    e.payload.topic.value if e.payload.topic else None,
                    e.key,
                    e.model_dump_json(),
                    tracing.traceparent_for(e.correlation_id),
                )
                for column, value in zip(columns, row, strict=True):
                    column.append(value)
        try:
            await conn.execute(_INSERT, *columns)
        except asyncpg.UniqueViolationError as e:
            if e.constraint_name == "event_store_stream_id_stream_version_key":
                raise ConcurrencyError(str(e)) from e
            raise

    async def read_stream(
        self, conn: asyncpg.Connection, stream_id: str, after_version: int = 0
    ) -> list[StoredEvent]:
        rows = await conn.fetch(
            _SELECT + "WHERE stream_id = $1 AND stream_version > $2 ORDER BY stream_version",
            stream_id,
            after_version,
        )
        return [self._stored(r) for r in rows]

    async def read_tails(
        self, conn: asyncpg.Connection, known: Mapping[str, int], state_shape: str
    ) -> dict[str, StreamTail]:
        """Each stream after its known version (FROM_SNAPSHOT: its snapshot's, see _TAILS), in one round
        trip."""
        if not known:
            return {}
        rows = await conn.fetch(_TAILS, list(known), list(known.values()), state_shape)
        tails: dict[str, StreamTail] = {}
        for r in rows:
            stream_id = r["stream_id"]
            tail = tails.get(stream_id)
            if tail is None:
                # The first row is the event at the known version (no body), or a row of NULLs if the stream
                # ends before it, or else the first event after a known version of 0.
                at_known = r["body"] is None
                tail = tails[stream_id] = StreamTail(
                    stream_id, r["known"], r["event_id"] if at_known else None, []
                )
                if at_known:
                    continue
            tail.events.append(self._stored(r))
        return tails

    async def read_all(
        self, conn: asyncpg.Connection, after_position: int = 0, limit: int = 1000
    ) -> list[StoredEvent]:
        """Events of every stream in position order; for rebuilding projections."""
        rows = await conn.fetch(
            _SELECT + "WHERE global_position > $1 ORDER BY global_position LIMIT $2", after_position, limit
        )
        return [self._stored(r) for r in rows]

    def _stored(self, row: asyncpg.Record) -> StoredEvent:
        envelope = self._registry.decode(row["body"].encode(), row["event_type"], row["schema_version"])
        return StoredEvent(row["global_position"], row["stream_id"], row["stream_version"], envelope)
