"""One trace per business flow across services: an order placed over HTTP at the order service, refused by
inventory (a SKU it never heard of), answered back to the order service and mailed to the customer by the
notifier's delivery job, all in one trace, exported over OTLP/HTTP to a collector of the test's own (traces
are on only because OTEL_* variables say so)."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import uvicorn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from backbone.contracts.events import Customer, OrderLine, OrderPlaced
from backbone.testing.fixtures import unique_name
from backbone.testing.fleet import running_fleet
from backbone.testing.mailsink import MailSink
from backbone.testing.servers import Servers, state_dir
from backbone.testing.service import free_port
from backbone.testing.waiting import eventually

pytestmark = pytest.mark.e2e

Span = dict[str, Any]


class Collector:
    """An OTLP/HTTP trace receiver: POST /v1/traces with protobuf, kept as flat span dicts."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.port = free_port()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            service = next(
                a.value.string_value for a in resource.resource.attributes if a.key == "service.name"
            )
            for scoped in resource.scope_spans:
                for s in scoped.spans:
                    self.spans.append(
                        {
                            "service": service,
                            "name": s.name,
                            "kind": s.kind,
                            "trace_id": s.trace_id.hex(),
                            "span_id": s.span_id.hex(),
                            "parent": s.parent_span_id.hex(),
                            "attributes": {a.key: a.value.string_value for a in s.attributes},
                        }
                    )
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/x-protobuf")],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator["Collector"]:
        server = uvicorn.Server(
            uvicorn.Config(self, host="127.0.0.1", port=self.port, log_config=None, lifespan="off")
        )
        task = asyncio.create_task(server.serve())
        await eventually(lambda: asyncio.sleep(0, server.started), what="the collector to listen")
        try:
            yield self
        finally:
            server.should_exit = True
            await task


# SpanKind values of the OTLP protocol
SERVER, PRODUCER, CONSUMER = 2, 4, 5


async def test_an_order_is_one_trace_from_the_http_request_through_inventory_to_the_customer(
    servers: Servers,
) -> None:
    run = unique_name("traces")
    async with Collector().serving() as collector, MailSink().serving() as mail:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.port}",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_TRACES_SAMPLER": "always_on",
        }
        async with running_fleet(
            servers,
            run,
            state_dir() / "test-logs" / run,
            env=env,
            service_env={"notifier": {"SMTP_HOST": mail.host, "SMTP_PORT": str(mail.port)}},
            names=("order", "inventory", "notifier"),
        ) as fleet:
            order = OrderPlaced(
                order_id="o-traced",
                customer=Customer(customer_id="c-traced", email="c-traced@example.com"),
                lines=[OrderLine(line_id="1", sku="SKU-TRACED", quantity=2, unit_price=Decimal("9.50"))],
                placed_at=datetime.now(UTC),
            )
            response = await fleet.http.post(f"{fleet.url('order')}/orders", content=order.model_dump_json())
            assert response.status_code == 202, response.text

            def flow() -> list[Span]:
                server = [
                    s for s in collector.spans if s["kind"] == SERVER and s["service"] == "backorder-order"
                ]
                if not server:
                    return []
                trace_id = server[0]["trace_id"]
                return [s for s in collector.spans if s["trace_id"] == trace_id]

            def complete() -> list[Span]:
                spans = flow()
                kinds = {(s["service"], s["kind"]) for s in spans}
                wanted = {
                    ("backorder-order", SERVER),  # POST /orders
                    ("backorder-order", PRODUCER),  # the relay publishes OrderPlaced
                    ("backorder-inventory", CONSUMER),  # inventory applies it
                    ("backorder-inventory", PRODUCER),  # and publishes its answer
                    ("backorder-order", CONSUMER),  # which the order service applies
                    ("backorder-notifier", CONSUMER),  # as does the notifier, which requests a message
                    ("backorder-notifier", PRODUCER),  # and, once mailed, publishes NotificationSent
                }
                return spans if wanted <= kinds else []

            async def arrived() -> list[Span]:
                return complete()

            spans = await eventually(arrived, timeout=45.0, what="the whole flow's spans in one trace")
            by_id = {s["span_id"]: s for s in spans}
            # Parentage crosses the services: inventory's consumer span is the child of order's producer span.
            consumed = next(
                s for s in spans if s["service"] == "backorder-inventory" and s["kind"] == CONSUMER
            )
            assert by_id[consumed["parent"]]["service"] == "backorder-order"
            assert by_id[consumed["parent"]]["kind"] == PRODUCER
            assert consumed["attributes"]["messaging.destination.name"] == fleet.topic_prefix + "orders"
            # The delivery job's attempt is in the flow too: NotificationSent's publication descends from it.
            (delivery,) = [s for s in spans if s["name"] == "deliver rejected notification"]
            sent = next(s for s in spans if s["service"] == "backorder-notifier" and s["kind"] == PRODUCER)
            assert sent["attributes"]["messaging.destination.name"] == fleet.topic_prefix + "notifier"
            assert by_id[delivery["parent"]]["service"] == "backorder-notifier"
            # Database work is traced too (asyncpg spans inside the flow).
            assert any(
                s["attributes"].get("db.system") == "postgresql" or "db.system.name" in s["attributes"]
                for s in spans
            )
