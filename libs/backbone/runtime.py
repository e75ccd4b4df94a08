"""Runs one service: migrations, topics, outbox relay, consumer loop and HTTP API in one process.

A service only describes itself (`Service`): its migrations, the topics it consumes, its handler and
its HTTP routes. Everything here is the same for all four.

Outages do not end a service. At start it waits (logging each attempt, without a deadline) until Kafka
and its database answer; a configuration error (wrong password, unknown database, a topic that cannot be
created) still ends it, since waiting would not help. Once running, every component waits out an outage
on its own and reports it in its HealthReport; one that ends or fails anyway is started again after a
capped backoff. GET /health answers 200 `{"status": "ok", ...}` when every component is fine and 503
`{"status": "degraded", "components": {...}, ...}` while one waits; routes that find the database away
answer 503 `{"detail": ...}` with Retry-After. Only the HTTP server ending (or a signal) stops a service.
"""

import asyncio
import contextlib
import contextvars
import functools
import signal
import time
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

import asyncpg
import structlog
import uvicorn
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Body, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ConfigDict, Field

from backbone import auth, outbox, tracing
from backbone.backoff import Backoff
from backbone.consumer import ConsumerLoop, Handler
from backbone.contracts import REGISTRY, EventPayload, EventRegistry, Topic, dead_letter_topic
from backbone.db import BACKBONE_MIGRATIONS, DATABASE_UNAVAILABLE, create_pool, migrate, migration_files
from backbone.eventstore import EventStore
from backbone.health import OK, ComponentHealth, HealthReport
from backbone.kafka import KafkaProbe, client_options, ensure_topics, started_producer
from backbone.log import configure_logging
from backbone.metrics import HttpMetrics, Readings, ServiceMetrics
from backbone.outbox import OutboxRelay
from backbone.settings import ServiceSettings

log = structlog.get_logger(__name__)

T = TypeVar("T")
Components = Callable[[], Mapping[str, ComponentHealth]]

_HEALTH_DB_TIMEOUT = 3.0
_RETRY_AFTER_SECONDS = "5"


@dataclass(frozen=True)
class ServiceContext:
    """What a service's handlers, API and background jobs get to work with."""

    settings: ServiceSettings
    pool: asyncpg.Pool
    store: EventStore
    producer: AIOKafkaProducer
    metrics: ServiceMetrics = field(default_factory=lambda: ServiceMetrics("unnamed"))


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
    # The service's business gauges, read at each scrape of /metrics (bounded queries of its own tables).
    readings: Readings | None = None


# --- the health of background jobs --------------------------------------------------------------------------

_job_health: contextvars.ContextVar[HealthReport | None] = contextvars.ContextVar("job_health", default=None)


def component_health() -> HealthReport:
    """The HealthReport of the background job (Service.background) this code runs in: the job says there
    while it waits for a server. Outside a running service (a test calling a job directly) a report of
    its own that nobody reads."""
    return _job_health.get() or HealthReport()


def worst(*reports: ComponentHealth | None) -> ComponentHealth:
    return next((r for r in reports if r is not None and r.status != "ok"), OK)


async def supervised(name: str, health: HealthReport, start: Callable[[], Awaitable[None]]) -> None:
    """Run a component for the service's lifetime: should it end or fail despite handling outages itself,
    it is logged, reported degraded and started again after a capped backoff."""
    backoff = Backoff(first=0.5, cap=30.0)
    while True:
        started = time.monotonic()
        try:
            await start()
            reason = "ended"
            log.error("component ended; starting it again", component=name)
        except Exception as e:
            reason = f"failed: {type(e).__name__}: {e}"
            log.exception("component failed; starting it again", component=name)
        if time.monotonic() - started > 60:
            backoff.reset()  # it ran a good while: a fresh failure, not a crash loop
        delay = backoff.next_delay()
        health.degraded(f"{reason}; restarting in {delay:.1f} s")
        await asyncio.sleep(delay)
        health.ok()


# --- start-up -----------------------------------------------------------------------------------------------


async def until_ready(what: str, attempt: Callable[[], Awaitable[T]]) -> T:
    """`attempt` until it works, as long as it fails only because `what` is not reachable (yet)."""
    backoff = Backoff(first=0.5, cap=10.0)
    while True:
        try:
            return await attempt()
        except (*DATABASE_UNAVAILABLE, KafkaError) as e:
            delay = backoff.next_delay()
            log.warning(
                f"waiting for {what}",
                error=f"{type(e).__name__}: {e}",
                attempt=backoff.attempt,
                retry_in=delay,
            )
            await asyncio.sleep(delay)


# --- HTTP ---------------------------------------------------------------------------------------------------


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # signals are ours (run_service): uvicorn would re-raise SIGTERM and skip our clean-up


class OperatorAction(auth.WithoutActor):
    """Why an operator acts on a parked event; who acts is the token's subject. Both go to the log as the
    audit trail."""

    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=2000)


OperatorBody = Annotated[OperatorAction | None, Body()]


def _operations(pool: asyncpg.Pool) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/outbox/parked", response_model=list[outbox.ParkedEvent])
    async def list_parked(_: auth.ReadsViews) -> list[outbox.ParkedEvent]:
        """Events the relay could never publish, oldest first (`waiting_behind`: later events of the
        same topic and key held in the outbox)."""
        return await outbox.parked_events(pool)

    async def act(
        position: int, operator: auth.Principal, action: OperatorAction | None, verb: str
    ) -> dict[str, object]:
        act_on = outbox.retry_parked if verb == "retried" else outbox.discard_parked
        async with pool.acquire() as conn:
            done = await act_on(conn, position)
        if not done:
            raise HTTPException(404, f"no parked event at position {position}")
        note = action.note if action else None
        log.warning(f"parked event {verb}", position=position, actor=operator.subject, note=note)
        return {"position": position, "status": verb, "actor": operator.subject}

    @router.post("/outbox/parked/{position}/retry")
    async def retry_parked(
        position: int, operator: auth.Staff, action: OperatorBody = None
    ) -> dict[str, object]:
        """Put the event back into the outbox: it is published before the later events of its key (and
        parked again if Kafka still refuses it)."""
        return await act(position, operator, action, "retried")

    @router.post("/outbox/parked/{position}/discard")
    async def discard_parked(
        position: int, operator: auth.Staff, action: OperatorBody = None
    ) -> dict[str, object]:
        """Never publish the event (it stays in the event store); the later events of its key flow."""
        return await act(position, operator, action, "discarded")

    return router


def http_app(
    service: Service,
    ctx: ServiceContext,
    status: Callable[[], dict[str, object]] = dict,
    components: Components = dict,
    scrape: Callable[[], Awaitable[bytes]] | None = None,
) -> FastAPI:
    """The service's routes, the parked-events operations, the probes and GET /metrics (`scrape`)."""
    app = FastAPI(title=f"backorder {service.name} service", version="1.0.0")
    app.include_router(service.make_routes(ctx))
    app.include_router(_operations(ctx.pool))
    app.include_router(_probes(service, ctx, status, components, scrape))
    auth.install(app, ctx.settings)  # every route but the probes needs a token; fails without a verifier
    app.add_middleware(HttpMetrics, metrics=ctx.metrics)
    tracing.instrument_http(app)

    async def database_away(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"detail": f"database unavailable, try again shortly ({type(exc).__name__})"},
            status_code=503,
            headers={"Retry-After": _RETRY_AFTER_SECONDS},
        )

    for error in DATABASE_UNAVAILABLE:
        app.add_exception_handler(error, database_away)

    return app


def _probes(
    service: Service,
    ctx: ServiceContext,
    status: Callable[[], dict[str, object]],
    components: Components,
    scrape: Callable[[], Awaitable[bytes]] | None,
) -> APIRouter:
    """GET /health (the database answers and every component is ok: 200; else 503 with each component's
    state; `status` adds the components' figures), the orchestrator's probes and /metrics. Open to all:
    they carry no customer data."""
    router = APIRouter(tags=["operations"])
    database = HealthReport()

    async def parked_count() -> int | None:
        try:
            async with asyncio.timeout(_HEALTH_DB_TIMEOUT):
                parked = await outbox.parked_count(ctx.pool)
            database.ok()
            return parked
        except (*DATABASE_UNAVAILABLE, asyncpg.PostgresError) as e:
            database.degraded(f"unreachable: {type(e).__name__}: {e}")
            return None

    def verdict(
        states: Mapping[str, ComponentHealth], ok_word: str, bad_word: str, **extra: object
    ) -> JSONResponse:
        ok = all(c.status == "ok" for c in states.values())
        components = {name: c.as_json() for name, c in states.items()}
        body = {"status": ok_word if ok else bad_word, **extra, "components": components}
        return JSONResponse(body, status_code=200 if ok else 503)

    @router.get("/health")
    async def health() -> JSONResponse:
        parked = await parked_count()
        states = {"database": database.current, **components()}
        return verdict(states, "ok", "degraded", service=service.name, parked_events=parked, **status())

    @router.get("/health/live")
    async def live() -> dict[str, str]:
        """200 while the process answers: an outage of Kafka or the database is waited out inside, so it
        is no reason to restart the process."""
        return {"status": "alive", "service": service.name}

    @router.get("/health/ready")
    async def ready() -> JSONResponse:
        """200 when the database answers and the consumer loop applies messages (not waiting for a server,
        not restarting): send this instance work. 503 otherwise."""
        await parked_count()
        states = {"database": database.current}
        states |= {name: c for name, c in components().items() if name == "consumer"}
        return verdict(states, "ready", "not ready")

    @router.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        """Prometheus text exposition (see backbone.metrics)."""
        body = await scrape() if scrape is not None else generate_latest(ctx.metrics.registry)
        return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)

    return router


# --- the service --------------------------------------------------------------------------------------------


async def run_service(service: Service, settings: ServiceSettings) -> None:
    """Run until SIGTERM/SIGINT or until the HTTP server ends."""
    configure_logging(service.name, settings.log_level)
    tracing.configure_tracing(service.name)
    kafka = client_options(settings)
    all_topics = [t.qualified(settings.topic_prefix) for t in Topic]
    if settings.topic_auto_create:
        await until_ready(
            "Kafka (creating topics)",
            lambda: ensure_topics(
                settings.kafka_bootstrap_servers,
                [*all_topics, *map(dead_letter_topic, all_topics)],
                settings.topic_partitions,
                settings.topic_replication_factor,
                **kafka,
            ),
        )
    await until_ready("the database (migrations)", lambda: migrate_service(settings.migration_url, service))
    pool = await until_ready(
        "the database", lambda: create_pool(settings.database_url, max_size=settings.db_pool_size)
    )
    try:
        producer = await until_ready(
            "Kafka", lambda: started_producer(settings.kafka_bootstrap_servers, **kafka)
        )
        try:
            ctx = ServiceContext(
                settings, pool, EventStore(service.registry), producer, ServiceMetrics(service.name)
            )
            await _serve(service, settings, ctx, kafka)
        finally:
            await producer.stop()
    finally:
        await _close(pool)
        tracing.shutdown()


_POOL_CLOSE_SECONDS = 10.0


async def _close(pool: asyncpg.Pool) -> None:
    """Close the pool gracefully, but bounded: a connection that a cancelled task never gave back (or a
    server that stopped answering) must not keep the service from stopping."""
    try:
        await asyncio.wait_for(pool.close(), timeout=_POOL_CLOSE_SECONDS)
    except TimeoutError:
        log.warning(
            "database connections did not close in time; terminating them", seconds=_POOL_CLOSE_SECONDS
        )
        pool.terminate()


async def migrate_service(database_url: str, service: Service) -> list[str]:
    """Migrations run as the role that owns the database (DATABASE_MIGRATION_URL), which may differ from
    the runtime role of the pool: that one cannot rewrite the event store. Without DATABASE_MIGRATION_URL
    (a cluster, where `python -m services.<name> migrate` ran before as the owner) this only verifies, as
    the runtime role, that nothing is pending; MigrationsPending ends the service otherwise. Returns the
    names applied."""
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        return await migrate(
            conn, migration_files(BACKBONE_MIGRATIONS, service.migrations), service=service.name
        )
    finally:
        await conn.close(timeout=5)


async def _serve(
    service: Service, settings: ServiceSettings, ctx: ServiceContext, kafka_options: Mapping[str, Any]
) -> None:
    """`kafka_options`: client_options(settings), built once (a TLS context reads its CA file)."""
    relay = OutboxRelay(
        settings.database_url,
        ctx.producer,
        settings.topic_prefix,
        batch_size=settings.relay_batch_size,
        metrics=ctx.metrics,
    )
    kafka = KafkaProbe(ctx.producer)
    handler = service.make_handler(ctx)

    def new_loop() -> ConsumerLoop:
        return ConsumerLoop(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=settings.consumer_group,
            topics=[t.qualified(settings.topic_prefix) for t in service.consumes],
            pool=ctx.pool,
            handler=handler,
            service=service.name,
            registry=service.registry,
            batch_size=settings.consumer_batch_size,
            handles=None if service.handles is None else [e.event_type for e in service.handles],
            metrics=ctx.metrics,
            client_options=kafka_options,
            fetch_min_bytes=settings.consumer_fetch_min_bytes,
            fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms,
        )

    consumer = _Replaceable(new_loop)

    def figures() -> dict[str, object]:
        return {
            "relay_active": relay.active,
            "events_published": relay.published,
            "events_parked": relay.parked,
            "events_applied": consumer.figure("applied"),
            "events_skipped": consumer.figure("skipped"),
            "dead_lettered": consumer.figure("dead_lettered"),
        }

    supervisors: dict[str, HealthReport] = {}  # filled as the components start
    starts: dict[str, Callable[[], Awaitable[None]]] = {
        "relay": relay.run,
        "consumer": consumer.run,
        "kafka": kafka.run,
        **{f"job:{_job_name(job)}": functools.partial(job, ctx) for job in service.background},
    }
    own: dict[str, Callable[[], ComponentHealth | None]] = {
        "relay": lambda: relay.health.current,
        "kafka": lambda: kafka.health.current,
        "consumer": lambda: _reported(consumer.current),
    }

    def components() -> dict[str, ComponentHealth]:
        return {name: worst(supervisors[name].current, own.get(name, _none)()) for name in starts}

    async def scrape() -> bytes:
        return await ctx.metrics.exposition(
            ctx.pool, lag=consumer.current.lag, relay_active=relay.active, readings=service.readings
        )

    server = _Server(
        uvicorn.Config(
            http_app(service, ctx, figures, components, scrape),
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    tasks = []
    for name, start in starts.items():
        report = supervisors[name] = HealthReport()
        context = contextvars.copy_context()
        context.run(_job_health.set, report)  # a job reports into its supervisor's report
        tasks.append(asyncio.create_task(supervised(name, report, start), context=context))
    server_task = asyncio.create_task(server.serve())
    stop = asyncio.Event()
    event_loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        event_loop.add_signal_handler(sig, stop.set)
    stopper = asyncio.create_task(stop.wait())
    log.info("service started", http=f"http://{settings.http_host}:{settings.http_port}")
    try:
        done, _ = await asyncio.wait([server_task, stopper], return_when=asyncio.FIRST_COMPLETED)
        log.info("service stopping", reason="signal" if stopper in done else "the HTTP server ended")
    finally:
        # On a signal, the server's end or our own cancellation: stop everything started here before the
        # pool and producer close under it. The HTTP server drains instead of dying.
        server.should_exit = True
        for task in [*tasks, stopper]:
            task.cancel()
        results = await asyncio.gather(server_task, *tasks, stopper, return_exceptions=True)
        for sig in (signal.SIGTERM, signal.SIGINT):
            event_loop.remove_signal_handler(sig)
    if isinstance(results[0], Exception) and stopper not in done:
        raise results[0]


class _Replaceable:
    """The consumer loop, replaced by a new one when it failed: aiokafka's consumer cannot start twice."""

    def __init__(self, make: Callable[[], ConsumerLoop]) -> None:
        self._make = make
        self.current = make()
        self._used = False
        self._earlier: dict[str, int] = {}  # figures of the replaced loops

    async def run(self) -> None:
        if self._used:
            for name in ("applied", "skipped", "dead_lettered"):
                self._earlier[name] = self.figure(name)
            self.current = self._make()
        self._used = True
        await self.current.run()

    def figure(self, name: str) -> int:
        return self._earlier.get(name, 0) + int(getattr(self.current, name))


def _none() -> None:
    return None


def _reported(component: Any) -> ComponentHealth | None:
    """A component's own HealthReport, if it keeps one (the consumer loop gets `health`)."""
    report = getattr(component, "health", None)
    return report.current if isinstance(report, HealthReport) else None


def _job_name(job: Callable[..., object]) -> str:
    return getattr(job, "__name__", type(job).__name__)
