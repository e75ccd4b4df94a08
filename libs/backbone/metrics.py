"""Prometheus metrics of one service process, served at GET /metrics.

Each service gets a registry of its own (tests run several services in one process). Counters and
histograms are updated where things happen (consumer loop, relay, HTTP); figures that live elsewhere
(consumer lag from the broker's end offsets, the outbox backlog, the pool, the service's own business
gauges) are read when Prometheus scrapes, each bounded by a timeout so that a slow database or broker
makes a scrape stale, never hung. No label carries an order, customer or SKU: their number is unbounded.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import asyncpg
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger(__name__)

_READ_TIMEOUT = 2.0  # per source and scrape
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of a gauge read at scrape time (a service's business figures)."""

    name: str  # without the backorder_ prefix
    help: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


Readings = Callable[[asyncpg.Pool], Awaitable[Sequence[Reading]]]

_OUTBOX_FIGURES = """
SELECT (SELECT count(*) FROM (SELECT 1 FROM outbox LIMIT 1000000) o) AS pending,
       (SELECT extract(epoch FROM now() - e.recorded_at) FROM event_store e
        WHERE e.global_position = (SELECT min(global_position) FROM outbox)) AS oldest_age,
       (SELECT count(*) FROM parked_events) AS parked
"""


class ServiceMetrics:
    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = r = CollectorRegistry()
        self.messages = Counter(
            "backorder_consumer_messages", "Messages received by the consumer loop", ["topic"], registry=r
        )
        self.events = Counter(
            "backorder_consumer_events",
            "Consumed messages by outcome: applied, skipped (not for this service), duplicate (inbox), "
            "replayed (a business fact re-sent under a new id), dead_lettered",
            ["outcome"],
            registry=r,
        )
        self.batch_size = Histogram(
            "backorder_consumer_batch_messages",
            "Messages per consumed batch",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "backorder_consumer_batch_duration_seconds",
            "Time to decode, apply and dead-letter one consumed batch",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "backorder_consumer_lag_messages",
            "Messages behind the partition's end offset, per assigned partition",
            ["topic", "partition"],
            registry=r,
        )
        self.published = Counter("backorder_relay_events_published", "Events published", registry=r)
        self.parked_total = Counter("backorder_relay_events_parked", "Events parked by the relay", registry=r)
        self.publish_seconds = Histogram(
            "backorder_relay_publish_duration_seconds",
            "Time from a relay round's first send to its last acknowledgement",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.relay_active = Gauge(
            "backorder_relay_active", "1 while this instance's relay holds the lock", registry=r
        )
        self.outbox_pending = Gauge("backorder_outbox_pending_events", "Events not yet published", registry=r)
        self.outbox_oldest = Gauge(
            "backorder_outbox_oldest_pending_age_seconds", "Age of the oldest unpublished event", registry=r
        )
        self.parked = Gauge("backorder_parked_events", "Events the relay could never publish", registry=r)
        self.http_seconds = Histogram(
            "backorder_http_request_duration_seconds",
            "HTTP requests by route template, method and status",
            ["method", "route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.pool = Gauge(
            "backorder_db_pool_connections",
            "Database pool connections (in_use, idle, max)",
            ["state"],
            registry=r,
        )
        self.scrape_errors = Counter(
            "backorder_metrics_read_errors",
            "Scrape-time reads that failed or timed out",
            ["source"],
            registry=r,
        )
        self._business: dict[str, Gauge] = {}
        self._counters: dict[str, Counter] = {}

    def count_job(self, name: str, help: str, labels: Sequence[str] = ()) -> Counter:
        """A counter a service's job keeps (e.g. notifications sent per channel); created once by name."""
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters[name] = Counter(
                f"backorder_{name}", help, list(labels), registry=self.registry
            )
        return counter

    def record_readings(self, readings: Iterable[Reading]) -> None:
        seen: set[str] = set()
        for reading in readings:
            gauge = self._business.get(reading.name)
            if gauge is None:
                gauge = self._business[reading.name] = Gauge(
                    f"backorder_{reading.name}", reading.help, list(reading.labels), registry=self.registry
                )
            if reading.name not in seen and reading.labels:
                gauge.clear()  # label sets that vanished (a channel with no failures any more) go too
            seen.add(reading.name)
            (gauge.labels(**reading.labels) if reading.labels else gauge).set(reading.value)

    def record_lag(self, lag: Mapping[tuple[str, int], int]) -> None:
        self.lag.clear()  # partitions revoked in a rebalance must not report their last figure forever
        for (topic, partition), behind in lag.items():
            self.lag.labels(topic=topic, partition=str(partition)).set(behind)

    async def exposition(
        self,
        pool: asyncpg.Pool,
        *,
        lag: Callable[[], Awaitable[Mapping[tuple[str, int], int]]] | None = None,
        relay_active: bool = False,
        readings: Readings | None = None,
    ) -> bytes:
        """Read the scrape-time figures (concurrently, each bounded) and render the registry."""
        self.relay_active.set(1 if relay_active else 0)
        self.pool.labels(state="max").set(pool.get_max_size())
        self.pool.labels(state="idle").set(pool.get_idle_size())
        self.pool.labels(state="in_use").set(pool.get_size() - pool.get_idle_size())

        async def outbox() -> None:
            row = await pool.fetchrow(_OUTBOX_FIGURES)
            self.outbox_pending.set(row["pending"])
            self.outbox_oldest.set(float(row["oldest_age"] or 0.0))
            self.parked.set(row["parked"])

        async def consumer_lag() -> None:
            if lag is not None:
                self.record_lag(await lag())

        async def business() -> None:
            if readings is not None:
                self.record_readings(await readings(pool))

        sources = {"outbox": outbox, "consumer_lag": consumer_lag, "business": business}
        results = await asyncio.gather(
            *(asyncio.wait_for(read(), _READ_TIMEOUT) for read in sources.values()), return_exceptions=True
        )
        for source, result in zip(sources, results, strict=True):
            if isinstance(result, BaseException):
                self.scrape_errors.labels(source=source).inc()
                log.warning("metrics source unavailable", source=source, error=repr(result))
        return generate_latest(self.registry)


class HttpMetrics:
    """ASGI middleware: every request's duration by route template (never the raw path, which holds
    order ids), method and status."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self._app = app
        self._seconds = metrics.http_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees if the app raises before answering

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"  # callers pick methods
            self._seconds.labels(method=method, route=template, status=str(status)).observe(
                time.perf_counter() - started
            )
