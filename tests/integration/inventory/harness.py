"""The inventory service as outsiders see it: a running process, its topics and its HTTP API."""

import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import httpx

from backbone.contracts import Envelope, new_envelope
from backbone.contracts.events import (
    Customer,
    GoodsReceived,
    LineQuantity,
    OrderCancelled,
    OrderLine,
    OrderPlaced,
)
from backbone.runtime import run_service
from backbone.testing.background import running
from backbone.testing.waiting import eventually
from services.inventory.app import SERVICE, InventorySettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, **overrides: Any
) -> InventorySettings:
    values: dict[str, Any] = {
        "service_name": "inventory",
        "database_url": database_url,
        "kafka_bootstrap_servers": kafka_bootstrap,
        "topic_prefix": topic_prefix,
        "http_host": "127.0.0.1",
        "http_port": free_port(),
        "priority_mode": "first_come_first_served",
        "consumer_batch_size": 50,
        **overrides,
    }
    return InventorySettings(**values)


@contextlib.asynccontextmanager
async def serving(config: InventorySettings) -> AsyncIterator[httpx.AsyncClient]:
    """The service running in this event loop; yields an HTTP client once /health answers."""
    base_url = f"http://{config.http_host}:{config.http_port}"
    async with running(run_service(SERVICE, config)) as task, httpx.AsyncClient(base_url=base_url) as http:

        async def healthy() -> bool:
            if task.done():
                task.result()  # raises what made the service fail
            try:
                return (await http.get("/health")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(healthy, what="the inventory service to answer /health")
        yield http


def order(order_id: str, sku: str, quantity: int) -> Envelope[OrderPlaced]:
    customer = Customer(customer_id=f"c-{order_id}", email=f"{order_id}@example.com")
    line = OrderLine(line_id="1", sku=sku, quantity=quantity, unit_price=Decimal("10.00"))
    return new_envelope(
        OrderPlaced(order_id=order_id, customer=customer, lines=[line], placed_at=datetime.now(UTC))
    )


def cancellation(order_id: str, sku: str, quantity: int) -> Envelope[OrderCancelled]:
    line = LineQuantity(line_id="1", sku=sku, quantity=quantity)
    return new_envelope(
        OrderCancelled(
            order_id=order_id, lines=[line], reason="customer_request", cancelled_at=datetime.now(UTC)
        )
    )


def receipt(sku: str, quantity: int, receipt_id: str | None = None) -> Envelope[GoodsReceived]:
    return new_envelope(
        GoodsReceived(
            receipt_id=receipt_id or f"r-{uuid.uuid4().hex[:8]}",
            sku=sku,
            quantity=quantity,
            received_at=datetime.now(UTC),
        )
    )


async def stock(http: httpx.AsyncClient, sku: str) -> dict[str, Any] | None:
    response = await http.get(f"/stock/{sku}")
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return dict(response.json())


async def stock_reaches(
    http: httpx.AsyncClient, sku: str, *, demanded: int | None = None, **expected: int
) -> dict[str, Any]:
    """Wait until GET /stock shows the expected figures (and reserved + backordered == demanded)."""

    async def probe() -> dict[str, Any] | None:
        view = await stock(http, sku)
        if not view or any(view[k] != v for k, v in expected.items()):
            return None
        return view if demanded is None or view["reserved"] + view["backordered"] == demanded else None

    result = await eventually(probe, what=f"stock of {sku} to show {expected}")
    assert result is not None
    return result


async def read_models(database_url: str) -> dict[str, list[dict[str, Any]]]:
    conn = await asyncpg.connect(database_url)
    try:
        return {
            table: [dict(r) for r in await conn.fetch(f"SELECT * FROM {table} ORDER BY {order_by}")]
            for table, order_by in [
                ("stock", "sku"),
                ("backorder_queue", "sku, position"),
                ("allocation_audit", "sku, version"),
            ]
        }
    finally:
        await conn.close()
