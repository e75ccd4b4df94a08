"""Loading a batch's streams: one statement when the cached states are current, the tail only when
another writer moved a stream on, and a fall back (never a stale state) when the cache is disproved."""

import asyncpg
import pytest

from backbone.decider import Input, decide_and_append
from tests.integration.backbone.test_snapshots import STREAM, CountingStore, Tally, decide, repository

pytestmark = pytest.mark.integration


async def test_a_batch_of_cached_streams_loads_in_one_statement(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        store = CountingStore()
        repo = repository(store)
        streams = [f"tally:{n}" for n in range(50)]
        async with conn.transaction():
            await decide_and_append(conn, repo, [Input(s, 2) for s in streams], decide=decide)
        store.read = store.statements = 0
        loaded = await repo.load_many(conn, streams)
        assert store.statements == 1
        assert store.read == 50  # each stream's cached last event, compared by id and not decoded
        assert {s: (loaded[s].state, loaded[s].version) for s in streams} == {
            s: (Tally(1, 2), 1) for s in streams
        }
    finally:
        await conn.close()


async def test_another_writers_events_are_folded_onto_the_cached_state(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        mine, theirs = CountingStore(), CountingStore()
        my_repo, their_repo = repository(mine), repository(theirs)
        async with conn.transaction():
            await decide_and_append(conn, my_repo, [Input(STREAM, 1)] * 2, decide=decide)
        async with conn.transaction():  # another instance, with its own cache
            await decide_and_append(conn, their_repo, [Input(STREAM, 5)] * 3, decide=decide)
        mine.read = mine.statements = 0
        loaded = await my_repo.load(conn, STREAM)
        assert (loaded.state, loaded.version) == (Tally(5, 17), 5)
        assert (mine.statements, mine.read) == (1, 1 + 3)  # the cached last event, then the three after it
    finally:
        await conn.close()


async def test_a_cache_holding_a_rolled_back_append_falls_back_to_the_stored_stream(
    database_url: str,
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        store = CountingStore()
        repo = repository(store)
        async with conn.transaction():
            await decide_and_append(conn, repo, [Input(STREAM, 1)] * 3, decide=decide)
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await decide_and_append(conn, repo, [Input(STREAM, 7)], decide=decide)
                raise RuntimeError("rolled back after the append")
        # The cache now holds version 4 (uncommitted); the stream is at 3. And another instance appends
        # one event, so the stream is at version 4 again, with another event there.
        other = repository(CountingStore())
        async with conn.transaction():
            await decide_and_append(conn, other, [Input(STREAM, 100)], decide=decide)
        loaded = await repo.load(conn, STREAM)
        assert (loaded.state, loaded.version) == (Tally(4, 103), 4)
    finally:
        await conn.close()
