"""Runs one service: migrations, topics, outbox relay, consumer loop and HTTP API in one process.

A service only describes itself (`Service`): its migrations, the topics it consumes, its handler and
its HTTP routes. Everything here is the same for all four.
"""

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import structlog
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse

from backbone.consumer import ConsumerLoop, Handler
from backbone.contracts import REGISTRY, EventPayload, EventRegistry, Topic, dead_letter_topic
from backbone.db import BACKBONE_MIGRATIONS, create_pool, migrate, migration_files
from backbone.eventstore import EventStore
from backbone.kafka import ensure_topics, reliable_producer
from backbone.log import configure_logging
from backbone.outbox import OutboxRelay
from backbone.settings import ServiceSettings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ServiceContext:
    """What a service's handlers, API and background jobs get to work with."""

    settings: ServiceSettings
    pool: asyncpg.Pool
    store: EventStore
    producer: AIOKafkaProducer


@dataclass(frozen=True)
class Service:
    name: str
    settings_type: type[ServiceSettings]
    migrations: Path
    consumes: Sequence[Topic]
    make_handler: Callable[[ServiceContext], Handler]
    make_routes: Callable[[ServiceContext], APIRouter]
    registry: EventRegistry = REGISTRY
    # The consumed events the handler acts on; the loop skips the others unparsed. None: parse everything.
    handles: Collection[type[EventPayload]] | None = None
    background: Sequence[Callable[[ServiceContext], Awaitable[None]]] = field(default_factory=tuple)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # signals are ours (run_service): uvicorn would re-raise SIGTERM and skip our clean-up


def http_app(
    service: Service, ctx: ServiceContext, status: Callable[[], dict[str, object]] = dict
) -> FastAPI:
    """The service's routes plus GET /health (database reachable; `status` adds the components' figures)."""
    app = FastAPI(title=f"backorder {service.name} service", version="1.0.0")
    app.include_router(service.make_routes(ctx))

    @app.get("/health", tags=["operations"])
    async def health() -> JSONResponse:
        try:
            await ctx.pool.fetchval("SELECT 1")
        except (OSError, asyncpg.PostgresError) as e:
            return JSONResponse({"status": "database unreachable", "error": str(e)}, status_code=503)
        return JSONResponse({"status": "ok", "service": service.name, **status()})

    return app


async def run_service(service: Service, settings: ServiceSettings) -> None:
    """Run until SIGTERM/SIGINT or until a component fails (then exit non-zero through the exception)."""
    configure_logging(service.name, settings.log_level)
    all_topics = [t.qualified(settings.topic_prefix) for t in Topic]
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        [*all_topics, *map(dead_letter_topic, all_topics)],
        settings.topic_partitions,
        settings.topic_replication_factor,
    )
    pool = await create_pool(settings.database_url, max_size=settings.db_pool_size)
    producer = reliable_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        async with pool.acquire() as conn:
            await migrate(conn, migration_files(BACKBONE_MIGRATIONS, service.migrations))
        ctx = ServiceContext(settings, pool, EventStore(service.registry), producer)
        relay = OutboxRelay(
            settings.database_url, producer, settings.topic_prefix, batch_size=settings.relay_batch_size
        )
        loop = ConsumerLoop(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=settings.consumer_group,
            topics=[t.qualified(settings.topic_prefix) for t in service.consumes],
            pool=pool,
            handler=service.make_handler(ctx),
            dead_letter_producer=producer,
            service=service.name,
            registry=service.registry,
            batch_size=settings.consumer_batch_size,
            handles=None if service.handles is None else [e.event_type for e in service.handles],
        )
        server = _Server(
            uvicorn.Config(
                http_app(
                    service,
                    ctx,
                    lambda: {
                        "relay_active": relay.active,
                        "events_published": relay.published,
                        "events_applied": loop.applied,
                        "events_skipped": loop.skipped,
                        "dead_lettered": loop.dead_lettered,
                    },
                ),
                host=settings.http_host,
                port=settings.http_port,
                log_config=None,
                access_log=False,
                lifespan="off",
            )
        )
        components = [relay.run(), loop.run(), server.serve(), *(job(ctx) for job in service.background)]
        tasks = [asyncio.create_task(c) for c in components]
        server_task = tasks[2]
        stop = asyncio.Event()
        event_loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            event_loop.add_signal_handler(sig, stop.set)
        stopper = asyncio.create_task(stop.wait())
        log.info("service started", http=f"http://{settings.http_host}:{settings.http_port}")
        try:
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            log.info("service stopping", reason="signal" if stopper in done else "a component ended")
        finally:
            # On a signal, a failed component or our own cancellation: stop everything started here
            # before the pool and producer close under it. The HTTP server drains instead of dying.
            server.should_exit = True
            for task in [*tasks, stopper]:
                if task is not server_task:
                    task.cancel()
            results = await asyncio.gather(*tasks, stopper, return_exceptions=True)
            for sig in (signal.SIGTERM, signal.SIGINT):
                event_loop.remove_signal_handler(sig)
        failures = [r for r in results[: len(tasks)] if isinstance(r, Exception)]
        if failures and stopper not in done:
            raise failures[0]
    finally:
        await producer.stop()
        await pool.close()
