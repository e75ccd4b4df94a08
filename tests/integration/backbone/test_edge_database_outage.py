"""The database goes away under the consumer loop, also in the middle of a transaction: the loop waits
and says so in its health, dead-letters nothing, and applies everything once the database is back.

The outage is a TCP forwarder between the loop's pool and PostgreSQL that the test cuts (connections
refused, live ones dropped) and restores: the shared server itself is never touched."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from backbone.consumer import ConsumerLoop
from backbone.contracts import Envelope
from backbone.db import create_pool
from backbone.kafka import ensure_topics
from backbone.testing.background import running
from backbone.testing.fixtures import publish
from backbone.testing.waiting import eventually
from tests.integration.backbone.events import receipt

pytestmark = pytest.mark.integration


class Forwarder:
    """127.0.0.1:<port> -> the target. While down, every connection is dropped at once (and counted)."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        self.down = False
        self.refused = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _link(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.down:
            self.refused += 1
            client_writer.transport.abort()
            return
        server_reader, server_writer = await asyncio.open_connection(*self._target)
        self._links |= {client_writer, server_writer}
        pipes = [
            asyncio.create_task(self._pipe(client_reader, server_writer)),
            asyncio.create_task(self._pipe(server_reader, client_writer)),
        ]
        self._tasks.update(pipes)
        await asyncio.gather(*pipes, return_exceptions=True)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()

    def cut(self) -> None:
        """Live connections are dropped, new ones too until `restore`."""
        self.down = True
        for writer in self._links:
            writer.transport.abort()
        self._links.clear()

    def restore(self) -> None:
        self.down = False

    async def stop(self) -> None:
        self.cut()
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class HeldReceipts:
    """Records receipt ids; `hold` makes it wait inside its transaction until `release` is set."""

    def __init__(self) -> None:
        self.hold = False
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, conn: asyncpg.Connection, events: Sequence[Envelope[Any]]) -> None:
        await conn.executemany(
            "INSERT INTO applied (receipt_id) VALUES ($1)", [(e.payload.receipt_id,) for e in events]
        )
        if self.hold:
            self.holding.set()
            await self.release.wait()
            await conn.execute("SELECT 1")  # the connection is gone by now


@pytest.fixture
async def forwarder(database_url: str) -> AsyncIterator[Forwarder]:
    target = urlsplit(database_url)
    f = Forwarder(target.hostname or "127.0.0.1", target.port or 5432)
    await f.start()
    yield f
    await f.stop()


def through(database_url: str, port: int) -> str:
    parts = urlsplit(database_url)
    credentials = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{credentials}@127.0.0.1:{port}"))


async def test_an_outage_is_waited_out_without_dead_letters_even_mid_transaction(
    database_url: str,
    forwarder: Forwarder,
    kafka_bootstrap: str,
    topic_prefix: str,
    producer: AIOKafkaProducer,
) -> None:
    topic = f"{topic_prefix}supplier"
    await ensure_topics(kafka_bootstrap, [topic, f"{topic}.dlq"], 1, 1)
    direct = await create_pool(database_url)
    await direct.execute("CREATE TABLE applied (receipt_id text PRIMARY KEY)")
    pool = await create_pool(through(database_url, forwarder.port))
    handler = HeldReceipts()
    loop = ConsumerLoop(
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{topic_prefix}group",
        topics=[topic],
        pool=pool,
        handler=handler,
        dead_letter_producer=producer,
        service="test",
    )

    async def applied() -> set[str]:
        return {r["receipt_id"] for r in await direct.fetch("SELECT receipt_id FROM applied")}

    async def has(*ids: str) -> bool:
        return set(ids) <= await applied()

    try:
        async with running(loop.run()):
            await publish(producer, topic, [receipt("SKU-1", "r-0")])
            await eventually(lambda: has("r-0"), what="the first receipt")

            handler.hold = True
            await publish(producer, topic, [receipt("SKU-1", "r-1")])
            await eventually(_is_set(handler.holding), what="the handler inside its transaction")
            forwarder.cut()
            handler.hold = False
            handler.release.set()
            await eventually(
                lambda: _degraded(loop, "database unreachable: "), what="the loop to report the outage"
            )
            await publish(producer, topic, [receipt("SKU-1", f"r-{i}") for i in range(2, 6)])
            assert await applied() == {"r-0"}  # r-1's insert rolled back with its transaction

            # Several reconnections are refused (with backoff between them) before the database is back.
            await eventually(lambda: _at_least(forwarder, 4), what="the loop to retry during the outage")
            assert loop.dead_lettered == 0
            forwarder.restore()
            await eventually(lambda: has(*(f"r-{i}" for i in range(6))), what="every receipt applied")
            await eventually(lambda: _ok(loop), what="the loop to report ok again")
    finally:
        await pool.close()
        with contextlib.suppress(Exception):
            await direct.execute("DROP TABLE applied")
        await direct.close()
    assert (loop.applied, loop.dead_lettered) == (6, 0)


async def _at_least(forwarder: Forwarder, refused: int) -> bool:
    return forwarder.refused >= refused


def _is_set(event: asyncio.Event) -> Any:
    async def probe() -> bool:
        return event.is_set()

    return probe


async def _degraded(loop: ConsumerLoop, detail: str) -> bool:
    current = loop.health.current
    return current.status == "degraded" and (current.detail or "").startswith(detail)


async def _ok(loop: ConsumerLoop) -> bool:
    return loop.health.current.status == "ok"
