import asyncio

import asyncpg
import pytest

from backbone.contracts import CONTRACT_EVENTS, EventPayload, EventRegistry, new_envelope
from backbone.eventstore import ConcurrencyError, EventStore, StreamAppend
from backbone.testing.waiting import eventually
from tests.integration.backbone.events import adjustment

pytestmark = pytest.mark.integration
store = EventStore()


async def test_appended_events_read_back_in_stream_order(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        first, second = adjustment("SKU-1", 5), adjustment("SKU-1", -2)
        assert await store.append(conn, "sku-SKU-1", 0, [first]) == 1
        assert await store.append(conn, "sku-SKU-1", 1, [second]) == 2
        stored = await store.read_stream(conn, "sku-SKU-1")
        assert [s.envelope for s in stored] == [first, second]
        assert [s.stream_version for s in stored] == [1, 2]
        assert stored[0].global_position < stored[1].global_position
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 2
    finally:
        await conn.close()


async def test_stale_or_future_expected_version_is_refused(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await store.append(conn, "s", 0, [adjustment("A")])
        with pytest.raises(ConcurrencyError):
            await store.append(conn, "s", 0, [adjustment("A")])
        with pytest.raises(ConcurrencyError):
            await store.append(conn, "s", 5, [adjustment("A")])
        assert len(await store.read_stream(conn, "s")) == 1
    finally:
        await conn.close()


async def test_two_concurrent_appends_at_one_expected_version_exactly_one_wins(database_url: str) -> None:
    a, b = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        tx_a = a.transaction()
        await tx_a.start()
        await store.append(a, "race", 0, [adjustment("R", 1)])  # holds the (race, 1) slot, uncommitted

        async def append_b() -> None:
            async with b.transaction():
                await store.append(b, "race", 0, [adjustment("R", 2)])

        b_task = asyncio.create_task(append_b())
        blocked = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"  # noqa: E501
        await eventually(lambda: a.fetchval(blocked), what="the second append to wait for the first")
        await tx_a.commit()
        with pytest.raises(ConcurrencyError):
            await b_task
        events = await store.read_stream(a, "race")
        assert [e.envelope.payload.delta for e in events] == [1]
    finally:
        await a.close()
        await b.close()


class InternalNote(EventPayload):
    event_type = "InternalNote"
    topic = None
    key_field = "subject"
    subject: str
    text: str


async def test_append_many_is_atomic_across_streams_and_keeps_internal_events_home(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    store_with_notes = EventStore(EventRegistry([*CONTRACT_EVENTS, InternalNote]))
    try:
        y = adjustment("Y")
        await store.append(conn, "y", 0, [y])
        with pytest.raises(ConcurrencyError):
            async with conn.transaction():
                await store.append_many(
                    conn, [StreamAppend("x", 0, [adjustment("X")]), StreamAppend("y", 0, [adjustment("Y")])]
                )
        assert await store.read_stream(conn, "x") == []
        x, note = adjustment("X"), new_envelope(InternalNote(subject="Z", text="kept, not published"))
        await store.append_many(conn, [StreamAppend("x", 0, [x]), StreamAppend("notes", 0, [note])])
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 2  # y and x: internal events stay home
        assert [s.envelope for s in await store_with_notes.read_all(conn)] == [y, x, note]
    finally:
        await conn.close()
