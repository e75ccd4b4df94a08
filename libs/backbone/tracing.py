"""OpenTelemetry traces: off unless the standard OTEL_* variables ask for them.

On with `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) or `OTEL_TRACES_EXPORTER`
(`otlp`, `console`; `none` keeps them off); `OTEL_SDK_DISABLED=true` wins. Sampler, resource attributes
and exporter details come from the SDK's own variables (`OTEL_TRACES_SAMPLER`, `OTEL_SERVICE_NAME`,
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_HEADERS`, ...).

One trace per business flow across services: an event appended while a span is current keeps that
span's `traceparent` in the event store (the relay runs later, in another task). The relay publishes it
under a producer span of that trace and puts the producer span's context in the Kafka headers; the
consumer continues the trace of each message it applies, and an event a handler appends in that batch
joins the trace of the consumed event with its correlation id (a batch mixes many flows, so "the current
span" would attach every effect to one of them).
"""

import contextlib
import contextvars
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import structlog
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind, Tracer

log = structlog.get_logger(__name__)

_enabled = False
_tracer: Tracer = trace.get_tracer("backbone")
# correlation id -> the context of the consumed event's span, while a batch is applied
_flows: contextvars.ContextVar[Mapping[str, otel_context.Context] | None] = contextvars.ContextVar(
    "trace_flows", default=None
)


def enabled() -> bool:
    return _enabled


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the OTEL_* variables ask for traces."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = [e.strip() for e in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip()]
    if exporters:
        return exporters != ["none"]
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def configure_tracing(service: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Install the SDK's tracer provider once per process, if the environment asks for traces. The
    SDK is imported only then, so a service without traces pays nothing for them."""
    global _enabled, _tracer
    if _enabled or not wanted(environ):
        return _enabled
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    names = [e.strip() for e in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if e.strip()]
    attributes = {} if environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: f"backorder-{service}"}
    provider = TracerProvider(resource=Resource.create(attributes))
    for name in names:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif name == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        elif name != "none":
            raise ValueError(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (otlp, console or none)")
    trace.set_tracer_provider(provider)
    AsyncPGInstrumentor().instrument()
    _tracer = trace.get_tracer("backbone")
    _enabled = True
    log.info("traces on", exporters=names)
    return True


def shutdown() -> None:
    """Flush the spans still buffered (at the end of a service)."""
    provider = trace.get_tracer_provider()
    if _enabled and hasattr(provider, "shutdown"):
        provider.shutdown()


def instrument_http(app: Any) -> None:
    """HTTP server spans for a FastAPI app; probes and scrapes are left out."""
    if not _enabled:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls="health,metrics")


# --- propagation --------------------------------------------------------------------------------------------


def traceparent_for(correlation_id: str) -> str | None:
    """The traceparent to keep with an event being appended: its flow's consumed event, else the
    current span (an HTTP request's)."""
    if not _enabled:
        return None
    flows = _flows.get()
    ctx = flows.get(correlation_id) if flows else None
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=ctx)
    return carrier.get("traceparent")


def _parent(traceparent: str | None) -> otel_context.Context | None:
    return propagate.extract({"traceparent": traceparent}) if traceparent else None


@contextlib.contextmanager
def publishing(topic: str, event_type: str, traceparent: str | None) -> Iterator[list[tuple[str, bytes]]]:
    """A producer span in the event's trace; yields the Kafka headers that carry it on."""
    if not _enabled:
        yield []
        return
    with _tracer.start_as_current_span(
        f"{topic} publish",
        context=_parent(traceparent),
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
            "event_type": event_type,
        },
        record_exception=False,
    ):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        yield [(k, v.encode()) for k, v in carrier.items()]


@contextlib.contextmanager
def continuing(traceparent: str | None, name: str) -> Iterator[None]:
    """A span of a background job's work in the trace of the event it acts on (`traceparent`, as kept
    in the event store); events appended meanwhile join that trace."""
    if not _enabled:
        yield
        return
    with _tracer.start_as_current_span(name, context=_parent(traceparent), record_exception=False):
        yield


def headers_context(headers: Sequence[tuple[str, bytes]]) -> otel_context.Context | None:
    carrier = {k: v.decode("latin-1") for k, v in headers if k in ("traceparent", "tracestate")}
    return propagate.extract(carrier) if carrier else None


@contextlib.contextmanager
def consuming(
    service: str, messages: Sequence[tuple[str, str, str, Sequence[tuple[str, bytes]]]]
) -> Iterator[None]:
    """Spans for one applied batch: `messages` are (topic, event_type, correlation_id, headers). Each
    message continues its producer's trace with a consumer span; the batch span links them all and is
    current while the batch is applied (its database spans belong to it); events appended meanwhile
    join their flow's consumer span (traceparent_for)."""
    if not _enabled or not messages:
        yield
        return
    spans, flows, links = [], {}, []
    for topic, event_type, correlation_id, headers in messages:
        span = _tracer.start_span(
            f"{topic} process",
            context=headers_context(headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": topic,
                "messaging.consumer.group.name": service,
                "event_type": event_type,
            },
        )
        spans.append(span)
        flows[correlation_id] = trace.set_span_in_context(span)
        links.append(Link(span.get_span_context()))
    token = _flows.set(flows)
    try:
        with _tracer.start_as_current_span(
            f"{service} apply batch",
            kind=SpanKind.INTERNAL,
            links=links[:128],
            attributes={"messages": len(messages)},
            record_exception=False,  # exception texts may name customers; the (redacted) logs have them
            set_status_on_exception=False,
        ) as batch:
            try:
                yield
            except Exception as e:
                batch.set_status(trace.Status(trace.StatusCode.ERROR, type(e).__name__))
                raise
    finally:
        _flows.reset(token)
        for span in spans:
            span.end()
