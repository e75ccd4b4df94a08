"""Runs a service's decider against its event-sourced streams, inside the caller's transaction.

Every service does the same for each consumed event or API command: find the stream it belongs to,
load that stream's state, decide the new events, append them. `decide_and_append` does it for a whole
batch: inputs are grouped by stream (in arrival order within a stream), each touched stream is locked
for the transaction (advisory lock, taken in one global order so two writers never deadlock), all are
loaded in one statement, every input is decided on the state its predecessors left, and all new events
are appended in one statement. The event store's optimistic concurrency stays the final guard
(ConcurrencyError -> the caller's transaction is retried). A domain error propagates: nothing of
the batch is written.
"""

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg

from backbone.aggregate import StreamRepository
from backbone.contracts import Envelope, EventPayload, new_envelope

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


# unnest yields the array in its order, and the locks are taken row by row as it does.
_LOCK = "SELECT count(pg_advisory_xact_lock(key)) FROM unnest($1::bigint[]) AS key"


async def lock_streams(conn: asyncpg.Connection, names: Sequence[str]) -> None:
    """Transaction-scoped advisory locks, one per name, taken in key order (so never a deadlock), in one
    statement."""
    await conn.execute(_LOCK, sorted({_lock_key(n) for n in names}))


Execute = Callable[[S, M], tuple[S, Sequence[EventPayload]]]
_YIELD_EVERY = 64  # inputs decided between two yields to the event loop (heartbeats, /health, the relay)


async def decide_and_append(
    conn: asyncpg.Connection,
    repository: StreamRepository[S],
    inputs: Sequence[Input[M]],
    *,
    decide: Callable[[S, M], Sequence[EventPayload]] | None = None,
    execute: Execute[S, M] | None = None,
) -> list[Decided[S]]:
    """Decide every input on its stream and append the results (to the repository's store); returns the
    streams that got events. `execute`: instead of `decide`, for a domain whose decision already folds its
    events (returns the state they lead to), so they are not folded twice."""
    if execute is None:
        if decide is None:
            raise TypeError("decide_and_append needs decide or execute")
        execute = _folding(decide, repository.evolve)
    by_stream: dict[str, list[Input[M]]] = {}
    for item in inputs:
        by_stream.setdefault(item.stream_id, []).append(item)
    await lock_streams(conn, list(by_stream))
    decided: list[Decided[S]] = []
    advanced_streams = []
    decided_inputs = 0
    # Read after the locks, so no other writer of these streams can commit until this transaction ends.
    streams = await repository.load_many(conn, list(by_stream))
    for stream_id, items in by_stream.items():
        loaded = streams[stream_id]
        state, events = loaded.state, []
        for item in items:
            state, payloads = execute(state, item.message)
            events.extend(
                new_envelope(p, cause=item.cause, correlation_id=item.correlation_id) for p in payloads
            )
            decided_inputs += 1
            if decided_inputs % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
        if events:
            advanced, append = repository.advance(loaded, events, state)
            advanced_streams.append((append, advanced))
            decided.append(Decided(stream_id, advanced.state, advanced.version, events))
    await repository.store.append_many(conn, [append for append, _ in advanced_streams], versions_read=True)
    await repository.save_snapshots(conn, advanced_streams)
    return decided


def _folding(
    decide: Callable[[S, M], Sequence[EventPayload]], evolve: Callable[[S, EventPayload], S]
) -> Execute[S, M]:
    def execute(state: S, message: M) -> tuple[S, Sequence[EventPayload]]:
        payloads = decide(state, message)
        for payload in payloads:
            state = evolve(state, payload)
        return state, payloads

    return execute
