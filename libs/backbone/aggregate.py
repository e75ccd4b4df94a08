"""Loading an event-sourced state (one stream) for a decider, inside the caller's transaction.

State is the fold of `evolve` over the stream's events. Two shortcuts keep a load from replaying a long
stream from its start, and neither is trusted blindly:
- a per-process cache keeps the last folded state: every load reads the stream from the cached version
  on and checks that the cached last event is still the one at that version, by its id (a rolled-back
  append or another instance's write makes it fall back); a batch's streams are read in one statement;
- every `snapshot_every` events the state is stored in the `snapshots` table, in the transaction that
  appended those events; a cold load (a restart, a cache miss, another instance) reads the snapshot and
  the tail after it. A snapshot counts only if its `state_shape` (a hash of the code that folds and
  holds the state) is the current one and its last event is the stream's event at its version.
States are pickled: they are the service's own values in its own database, never outside input.
"""

import asyncio
import hashlib
import inspect
import pickle
import sys
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from uuid import UUID

import asyncpg

from backbone.contracts import Envelope, EventPayload
from backbone.eventstore import FROM_SNAPSHOT, EventStore, StreamAppend, StreamTail
from backbone.ranked import RankedMap

S = TypeVar("S")

SNAPSHOT_EVERY = 1000  # events between a stream's snapshots, at least
# ...and at least one event per this many bytes of its last snapshot (pickled, before compression):
# taking a snapshot costs about its size, so a large state (a queue of 50,000 lines, ~2 MB) is taken less
# often and the cost per event stays flat. A cold load folds at most max(1,000, bytes / 100) events after
# the snapshot: work in proportion to the state it loads anyway.
SNAPSHOT_BYTES_PER_EVENT = 100


def snapshot_due(expected_version: int, version: int, every: int, last_snapshot: int | None) -> bool:
    """Whether an append from `expected_version` to `version` takes a snapshot: once `every` events were
    appended since the last snapshot this instance took or loaded. Counted from that snapshot, not as
    multiples of `every`: the interval grows with the state, and the next multiple of a grown interval
    can be a few events away, so small batches would snapshot a large state at almost every append.
    Without a known snapshot (a stream folded from its start), when the append crosses a multiple."""
    if last_snapshot is None:
        return version // every > expected_version // every
    return version - last_snapshot >= every


@dataclass(frozen=True, slots=True)
class Loaded(Generic[S]):
    stream_id: str
    state: S
    version: int
    last_event_id: UUID | None


def code_shape(*objects: object) -> str:
    """A hash of the source files that define `objects` (functions, classes, modules): any change to how
    a state is folded or laid out gives another shape, so older snapshots are ignored."""
    digest = hashlib.sha256()
    for name in sorted({inspect.getmodule(o).__name__ for o in objects}):  # type: ignore[union-attr]
        digest.update(name.encode())
        digest.update(inspect.getsource(sys.modules[name]).encode())
    return digest.hexdigest()[:32]


_SNAPSHOTS = """
SELECT stream_id, version, last_event_id, state FROM snapshots
WHERE stream_id = ANY($1::text[]) AND state_shape = $2
"""
_SAVE_SNAPSHOTS = """
INSERT INTO snapshots (stream_id, version, last_event_id, state_shape, state)
SELECT * FROM unnest($1::text[], $2::int[], $3::uuid[], $4::text[], $5::bytea[])
ON CONFLICT (stream_id) DO UPDATE SET
    version = excluded.version, last_event_id = excluded.last_event_id,
    state_shape = excluded.state_shape, state = excluded.state, taken_at = now()
WHERE snapshots.version < excluded.version
"""


def _dump(state: object) -> tuple[bytes, int]:
    """The stored form of `state`, and its size before compression."""
    pickled = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    return zlib.compress(pickled, 1), len(pickled)


def _load(data: bytes) -> tuple[Any, int]:
    pickled = zlib.decompress(data)
    return pickle.loads(pickled), len(pickled)  # our own state, see the module docstring


class StreamRepository(Generic[S]):
    def __init__(
        self,
        store: EventStore,
        initial: Callable[[str], S],
        evolve: Callable[[S, EventPayload], S],
        *,
        cache_size: int = 10_000,
        snapshot_every: int = SNAPSHOT_EVERY,
        shape: str | None = None,
    ) -> None:
        """`shape`: names the state's code for its snapshots; by default the code of `evolve`, of the
        state's class and of backbone.ranked (pass `code_shape(...)` of more modules if the state holds
        types defined elsewhere)."""
        self.store = store
        self._initial = initial
        self.evolve = evolve
        self._cache: OrderedDict[str, Loaded[S]] = OrderedDict()
        self._cache_size = cache_size
        self._snapshot_every = snapshot_every
        # Per stream: events between snapshots, and the version of the last snapshot taken or loaded.
        self._intervals: OrderedDict[str, tuple[int, int | None]] = OrderedDict()
        self._shape = shape or code_shape(evolve, type(initial("")), RankedMap)

    async def load(self, conn: asyncpg.Connection, stream_id: str) -> Loaded[S]:
        return (await self.load_many(conn, [stream_id]))[stream_id]

    async def load_many(self, conn: asyncpg.Connection, stream_ids: Sequence[str]) -> dict[str, Loaded[S]]:
        """The streams' states, in one round trip when their cached states are current or their tails
        short. Each pass reads every remaining stream in one statement (EventStore.read_tails):
        1. a cached stream from its cached version on: the event there must be the cached last event
           (its id is compared, the event is not decoded), and only the events after it are folded;
        2. the streams not cached, or whose cache was disproved: from their snapshot on (the snapshots
           themselves in one more statement, and only for streams that have one);
        3. the streams whose snapshot was disproved: whole."""
        loaded: dict[str, Loaded[S]] = {}
        # Taken now: folding other streams may push these out of the cache meanwhile.
        cached = {s: c for s in stream_ids if (c := self._cache.get(s)) is not None and c.version > 0}
        pending = {s: cached[s].version if s in cached else FROM_SNAPSHOT for s in stream_ids}
        while pending:
            tails = await self.store.read_tails(conn, pending, self._shape)  # a row for every stream
            retry: dict[str, int] = {}
            snapshotted: dict[str, StreamTail] = {}
            for stream_id, known in pending.items():
                tail = tails[stream_id]
                if known == FROM_SNAPSHOT and tail.known_version > 0:
                    snapshotted[stream_id] = tail
                elif known > 0:  # from the cache
                    if tail.known_event_id == cached[stream_id].last_event_id:
                        loaded[stream_id] = self._fold(cached[stream_id], tail)
                    else:
                        retry[stream_id] = FROM_SNAPSHOT
                else:  # the whole stream (none yet: a new one)
                    loaded[stream_id] = self._fold(Loaded(stream_id, self._initial(stream_id), 0, None), tail)
            if snapshotted:
                snapshots = await self._snapshots(conn, list(snapshotted))
                for stream_id, tail in snapshotted.items():
                    snapshot = snapshots.get(stream_id)
                    if (
                        snapshot is not None
                        and snapshot.version == tail.known_version
                        and snapshot.last_event_id == tail.known_event_id
                    ):
                        loaded[stream_id] = self._fold(snapshot, tail)
                    else:  # not this stream's history (or gone meanwhile): replay it
                        retry[stream_id] = 0
            pending = retry
        return loaded

    async def _snapshots(self, conn: asyncpg.Connection, stream_ids: Sequence[str]) -> dict[str, Loaded[S]]:
        """The streams' snapshots of the current shape."""
        rows = await conn.fetch(_SNAPSHOTS, stream_ids, self._shape)
        if not rows:
            return {}
        # A long queue unpickles in a while: off the event loop.
        states = await asyncio.to_thread(lambda: [_load(r["state"]) for r in rows])
        snapshots = {}
        for r, (state, size) in zip(rows, states, strict=True):
            self._learn_interval(r["stream_id"], size, r["version"])
            snapshots[r["stream_id"]] = Loaded(r["stream_id"], state, r["version"], r["last_event_id"])
        return snapshots

    def _snapshot_due(self, append: StreamAppend, advanced: Loaded[S]) -> bool:
        every, last = self._intervals.get(advanced.stream_id, (self._snapshot_every, None))
        return snapshot_due(append.expected_version, advanced.version, every, last)

    def _learn_interval(self, stream_id: str, snapshot_bytes: int, version: int) -> None:
        every = max(self._snapshot_every, snapshot_bytes // SNAPSHOT_BYTES_PER_EVENT)
        self._intervals[stream_id] = (every, version)
        self._intervals.move_to_end(stream_id)
        while len(self._intervals) > self._cache_size:
            self._intervals.popitem(last=False)

    def _fold(self, loaded: Loaded[S], tail: StreamTail) -> Loaded[S]:
        return self._evolved(loaded, [e.envelope for e in tail.events], tail.version)

    def _evolved(self, loaded: Loaded[S], envelopes: Sequence[Envelope[Any]], version: int) -> Loaded[S]:
        state = loaded.state
        for e in envelopes:
            state = self.evolve(state, e.payload)
        last = envelopes[-1].event_id if envelopes else loaded.last_event_id
        return self._remember(Loaded(loaded.stream_id, state, version, last))

    def advance(
        self, loaded: Loaded[S], new_events: Sequence[Envelope[Any]], folded: S | None = None
    ) -> tuple[Loaded[S], StreamAppend]:
        """The state after `new_events` and the append that stores them (at the loaded version).
        `folded`: that state if the caller already evolved it (saves folding the events twice)."""
        append = StreamAppend(loaded.stream_id, loaded.version, new_events)
        version = loaded.version + len(new_events)
        if folded is None or not new_events:
            return self._evolved(loaded, new_events, version), append
        return self._remember(Loaded(loaded.stream_id, folded, version, new_events[-1].event_id)), append

    async def save_snapshots(
        self, conn: asyncpg.Connection, appended: Iterable[tuple[StreamAppend, Loaded[S]]]
    ) -> int:
        """Store the states of the streams whose append crossed a multiple of their snapshot interval, in
        the caller's transaction (so a snapshot never outlives the events it folds). Returns how many."""
        due = [
            advanced
            for append, advanced in appended
            if advanced.last_event_id is not None and self._snapshot_due(append, advanced)
        ]
        if not due:
            return 0
        # States are immutable values: pickling them off the event loop is safe and keeps it answering.
        dumped = await asyncio.to_thread(lambda: [_dump(d.state) for d in due])
        for d, (_, size) in zip(due, dumped, strict=True):
            self._learn_interval(d.stream_id, size, d.version)
        await conn.execute(
            _SAVE_SNAPSHOTS,
            [d.stream_id for d in due],
            [d.version for d in due],
            [d.last_event_id for d in due],
            [self._shape] * len(due),
            [data for data, _ in dumped],
        )
        return len(due)

    def _remember(self, loaded: Loaded[S]) -> Loaded[S]:
        # Caching an uncommitted state is safe: the next load checks it against the stored stream.
        self._cache[loaded.stream_id] = loaded
        self._cache.move_to_end(loaded.stream_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return loaded
