"""Loading an event-sourced state (one stream) for a decider, inside the caller's transaction.

State is the fold of `evolve` over the stream's events. A per-process cache keeps the last folded state
so a busy stream is not replayed from its start for every message; it is only a shortcut: every load
reads the stream from the cached version on, and checks that the cached last event is still the one at
that version (a rolled-back append or another instance's write makes it replay from the start).
"""

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from uuid import UUID

import asyncpg

from backbone.contracts import Envelope, EventPayload
from backbone.eventstore import EventStore, StreamAppend

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Loaded(Generic[S]):
    stream_id: str
    state: S
    version: int
    last_event_id: UUID | None


class StreamRepository(Generic[S]):
    def __init__(
        self,
        store: EventStore,
        initial: Callable[[str], S],
        evolve: Callable[[S, EventPayload], S],
        *,
        cache_size: int = 10_000,
    ) -> None:
        self._store = store
        self._initial = initial
        self.evolve = evolve
        self._cache: OrderedDict[str, Loaded[S]] = OrderedDict()
        self._cache_size = cache_size

    async def load(self, conn: asyncpg.Connection, stream_id: str) -> Loaded[S]:
        cached = self._cache.get(stream_id)
        if cached is not None and cached.version > 0:
            events = await self._store.read_stream(conn, stream_id, after_version=cached.version - 1)
            if events and events[0].envelope.event_id == cached.last_event_id:
                return self._fold(cached, [e.envelope for e in events[1:]], events[-1].stream_version)
        events = await self._store.read_stream(conn, stream_id)
        start = Loaded(stream_id, self._initial(stream_id), 0, None)
        return self._fold(start, [e.envelope for e in events], events[-1].stream_version if events else 0)

    def _fold(self, loaded: Loaded[S], envelopes: Sequence[Envelope[Any]], version: int) -> Loaded[S]:
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
            return self._fold(loaded, new_events, version), append
        return self._remember(Loaded(loaded.stream_id, folded, version, new_events[-1].event_id)), append

    def _remember(self, loaded: Loaded[S]) -> Loaded[S]:
        # Caching an uncommitted state is safe: the next load checks it against the stored stream.
        self._cache[loaded.stream_id] = loaded
        self._cache.move_to_end(loaded.stream_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return loaded
