"""Snapshots of long streams: a cold load reads the latest snapshot plus a short tail, and a snapshot that
does not fit the stream or the code is ignored, never trusted."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from uuid import uuid4

import asyncpg
import pytest

from backbone.aggregate import StreamRepository
from backbone.contracts import EventPayload
from backbone.contracts.events import StockAdjusted
from backbone.decider import Input, decide_and_append
from backbone.eventstore import EventStore, StreamTail
from tests.integration.backbone.events import adjustment

pytestmark = pytest.mark.integration
STREAM = "tally:1"


@dataclass(frozen=True, slots=True)
class Tally:
    events: int = 0
    total: int = 0


def evolve(state: Tally, event: EventPayload) -> Tally:
    assert isinstance(event, StockAdjusted)
    return replace(state, events=state.events + 1, total=state.total + event.delta)


def decide(state: Tally, delta: int) -> Sequence[EventPayload]:
    return [adjustment("SKU-1", delta).payload]


class CountingStore(EventStore):
    """Counts the events loads read, to tell a snapshot load from a replay."""

    def __init__(self) -> None:
        super().__init__()
        self.read = 0
        self.statements = 0

    async def read_tails(
        self, conn: asyncpg.Connection, known: Mapping[str, int], state_shape: str
    ) -> dict[str, StreamTail]:
        tails = await super().read_tails(conn, known, state_shape)
        # The event at the known version is checked (by id) too, so it counts as read.
        self.read += sum(len(t.events) + (t.known_event_id is not None) for t in tails.values())
        self.statements += 1
        return tails


def repository(store: EventStore, shape: str = "tally-v1") -> StreamRepository[Tally]:
    return StreamRepository(store, lambda _: Tally(), evolve, snapshot_every=10, shape=shape)


async def append(conn: asyncpg.Connection, repo: StreamRepository[Tally], deltas: list[int]) -> None:
    async with conn.transaction():
        await decide_and_append(conn, repo, [Input(STREAM, d) for d in deltas], decide=decide)


async def test_a_cold_load_reads_the_snapshot_and_the_tail_only(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        writer = repository(CountingStore())
        for batch in range(5):
            await append(conn, writer, [batch + 1] * 5)  # 25 events, snapshots at 10 and 20
        assert await conn.fetchval("SELECT version FROM snapshots WHERE stream_id = $1", STREAM) == 20

        cold_store = CountingStore()
        loaded = await repository(cold_store).load(conn, STREAM)
        assert (loaded.state, loaded.version) == (Tally(25, 5 * (1 + 2 + 3 + 4 + 5)), 25)
        assert cold_store.read == 6  # the snapshot's last event (a check) and the 5 after it

        other_code = CountingStore()
        assert (await repository(other_code, shape="tally-v2").load(conn, STREAM)).state == loaded.state
        assert other_code.read == 25  # another shape: the snapshot is ignored, the stream replayed
    finally:
        await conn.close()


async def test_a_snapshot_that_does_not_fit_the_stream_is_ignored(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        writer = repository(CountingStore())
        await append(conn, writer, [1] * 12)
        await conn.execute("UPDATE snapshots SET last_event_id = $1", uuid4())  # as if from another history
        cold_store = CountingStore()
        loaded = await repository(cold_store).load(conn, STREAM)
        assert (loaded.state, loaded.version) == (Tally(12, 12), 12)
        # One append of 12 crossed 10: a snapshot at 12, disproved by reading its last event, then a replay.
        assert cold_store.read == 1 + 12
    finally:
        await conn.close()


async def test_a_rolled_back_append_leaves_no_snapshot(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        writer = repository(CountingStore())
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await decide_and_append(conn, writer, [Input(STREAM, 1)] * 10, decide=decide)
                raise RuntimeError("the transaction fails after the append")
        assert await conn.fetchval("SELECT count(*) FROM snapshots") == 0
        assert (await repository(CountingStore()).load(conn, STREAM)).version == 0
    finally:
        await conn.close()
