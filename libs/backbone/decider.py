"""Runs a service's decider against its event-sourced streams, inside the caller's transaction.

Every service does the same for each consumed event or API command: find the stream it belongs to,
load that stream's state, decide the new events, append them. `decide_and_append` does it for a whole
batch: inputs are grouped by stream (in arrival order within a stream), each touched stream is locked
for the transaction (advisory lock, taken in one global order so two writers never deadlock), loaded
once, every input is decided on the state its predecessors left, and all new events are appended in one
statement. The event store's optimistic concurrency stays the final guard (ConcurrencyError -> the
caller's transaction is retried). A domain error propagates: nothing of the batch is written.
"""

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg

from backbone.aggregate import StreamRepository
from backbone.contracts import Envelope, EventPayload, new_envelope
from backbone.eventstore import EventStore

S = TypeVar("S")
M = TypeVar("M")


@dataclass(frozen=True, slots=True)
class Input(Generic[M]):
    """One message for one stream, and what its events are an effect of."""

    stream_id: str
    message: M  # a command, a consumed payload or envelope: whatever the service's decide takes
    cause: Envelope[Any] | None = None
    correlation_id: str | None = None


@dataclass(frozen=True, slots=True)
class Decided(Generic[S]):
    """A stream after the batch: its new state and version, and the events just appended to it."""

    stream_id: str
    state: S
    version: int
    events: Sequence[Envelope[Any]]

    @property
    def first_version(self) -> int:
        return self.version - len(self.events) + 1


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


async def lock_streams(conn: asyncpg.Connection, names: Sequence[str]) -> None:
    """Transaction-scoped advisory locks, one per name, taken in key order (so never a deadlock)."""
    await conn.executemany(
        "SELECT pg_advisory_xact_lock($1)", [(key,) for key in sorted({_lock_key(n) for n in names})]
    )


async def decide_and_append(
    conn: asyncpg.Connection,
    store: EventStore,
    repository: StreamRepository[S],
    decide: Callable[[S, M], Sequence[EventPayload]],
    inputs: Sequence[Input[M]],
) -> list[Decided[S]]:
    """Decide every input on its stream and append the results; returns the streams that got events."""
    by_stream: dict[str, list[Input[M]]] = {}
    for item in inputs:
        by_stream.setdefault(item.stream_id, []).append(item)
    await lock_streams(conn, list(by_stream))
    decided: list[Decided[S]] = []
    appends = []
    for stream_id, items in by_stream.items():
        loaded = await repository.load(conn, stream_id)
        state, events = loaded.state, []
        for item in items:
            for payload in decide(state, item.message):
                state = repository.evolve(state, payload)
                events.append(new_envelope(payload, cause=item.cause, correlation_id=item.correlation_id))
        if events:
            advanced, append = repository.advance(loaded, events, state)
            appends.append(append)
            decided.append(Decided(stream_id, advanced.state, advanced.version, events))
    await store.append_many(conn, appends)
    return decided
