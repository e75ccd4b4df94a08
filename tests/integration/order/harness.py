"""The order service as outsiders see it: a running process, the topics it reads and writes, its HTTP API.

The tests play checkout (orders topic), inventory (inventory topic), procurement (procurement topic) and
a warehouse adapter (fulfilment topic).
"""

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import httpx

from backbone.contracts import Envelope, EventPayload, new_envelope
from backbone.contracts.events import (
    BackorderEtaUpdated,
    BackorderFulfilled,
    Customer,
    OrderLine,
    OrderPlaced,
    ShipmentDispatched,
    ShippedLine,
    StockReleased,
    StockReserved,
    StockShipped,
    StockShort,
)
from backbone.testing.databases import table_rows
from backbone.testing.service import service_settings
from backbone.testing.service import serving as serving_service
from backbone.testing.waiting import eventually
from services.order.app import SERVICE, OrderSettings


def settings(database_url: str, kafka_bootstrap: str, topic_prefix: str, **overrides: Any) -> OrderSettings:
    return service_settings(
        OrderSettings,
        service_name="order",
        database_url=database_url,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        **overrides,
    )


def serving(config: OrderSettings) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    return serving_service(SERVICE, config)


def envelope(payload: EventPayload) -> Envelope[Any]:
    return new_envelope(payload)


def order(
    order_id: str,
    *lines: tuple[str, str, int, str],
    placed_at: datetime | None = None,
    customer_id: str | None = None,
    max_wait_days: int | None = None,
) -> OrderPlaced:
    """An order of (line_id, sku, quantity, unit price) lines."""
    return OrderPlaced(
        order_id=order_id,
        customer=Customer(
            customer_id=customer_id or f"c-{order_id}", email=f"{order_id}@example.com", tier="gold"
        ),
        lines=[
            OrderLine(line_id=line_id, sku=sku, quantity=quantity, unit_price=Decimal(price))
            for line_id, sku, quantity, price in lines
        ],
        placed_at=placed_at or datetime.now(UTC),
        max_wait_days=max_wait_days,
    )


def reserved(order_id: str, line_id: str, sku: str, quantity: int) -> StockReserved:
    return StockReserved(order_id=order_id, line_id=line_id, sku=sku, quantity=quantity)


def short(order_id: str, line_id: str, sku: str, demanded: int, available: int) -> StockShort:
    return StockShort(
        order_id=order_id,
        line_id=line_id,
        sku=sku,
        demanded=demanded,
        available=available,
        short_quantity=demanded - available,
        disposition="backordered",
    )


def fill(order_id: str, line_id: str, sku: str, quantity: int, remaining: int) -> BackorderFulfilled:
    return BackorderFulfilled(
        order_id=order_id,
        line_id=line_id,
        sku=sku,
        quantity=quantity,
        remaining_backordered=remaining,
        source="GRN-1",
        priority_reason="1st in the backorder queue",
    )


def released(
    order_id: str, line_id: str, sku: str, *, reserved: int = 0, dropped: int = 0, reason: str | None = None
) -> StockReleased:
    """Inventory's confirmation of cancelled units; reason None: an inventory that does not copy it."""
    return StockReleased(
        order_id=order_id,
        line_id=line_id,
        sku=sku,
        released_reserved=reserved,
        dropped_backordered=dropped,
        reason=reason,  # type: ignore[arg-type]
    )


def dispatched(
    shipment_id: str, order_id: str, *lines: tuple[str, str, int], tracking: str | None = None
) -> ShipmentDispatched:
    """What a warehouse adapter reports: a shipment of (line_id, sku, quantity) lines."""
    return ShipmentDispatched(
        shipment_id=shipment_id,
        order_id=order_id,
        lines=[ShippedLine(line_id=line_id, sku=sku, quantity=quantity) for line_id, sku, quantity in lines],
        carrier="DHL" if tracking else None,
        tracking_number=tracking,
        tracking_url=f"https://track.example.com/{tracking}" if tracking else None,
        shipped_at=datetime.now(UTC),
    )


def stock_shipped(shipment_id: str, order_id: str, line_id: str, sku: str, quantity: int) -> StockShipped:
    """Inventory's part of a shipment: units of one line out of its reservation and out of stock."""
    return StockShipped(
        shipment_id=shipment_id,
        order_id=order_id,
        line_id=line_id,
        sku=sku,
        quantity=quantity,
        on_hand_after=0,
    )


def eta(order_id: str, line_id: str, sku: str, when: date, po_id: str = "PO-1") -> BackorderEtaUpdated:
    return BackorderEtaUpdated(
        order_id=order_id,
        line_id=line_id,
        sku=sku,
        eta=when,
        previous_eta=None,
        po_id=po_id,
        reason="purchase order issued",
    )


def order_json(placed: OrderPlaced) -> dict[str, Any]:
    """The body a checkout system sends to POST /orders: the payload as JSON."""
    return dict(placed.model_dump(mode="json"))


async def order_when(
    http: httpx.AsyncClient, order_id: str, condition: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    """Wait until GET /orders/{order_id} answers and satisfies `condition`."""

    async def probe() -> dict[str, Any] | None:
        response = await http.get(f"/orders/{order_id}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        view = dict(response.json())
        return view if condition(view) else None

    result = await eventually(probe, what=f"order {order_id}: {what}")
    assert result is not None
    return result


def line(view: dict[str, Any], line_id: str) -> dict[str, Any]:
    return dict(next(each for each in view["lines"] if each["line_id"] == line_id))


def history_types(view: dict[str, Any]) -> list[str]:
    return [entry["event_type"] for entry in view["history"]]


async def read_models(database_url: str) -> dict[str, list[dict[str, Any]]]:
    return await table_rows(database_url, {"orders": "order_id", "order_lines": "order_id, line_id"})


async def stored_events(database_url: str, order_id: str, event_type: str) -> int:
    """How many events of a type the order's stream holds (the outbox publishes each exactly once)."""
    conn = await asyncpg.connect(database_url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM event_store WHERE stream_id = $1 AND event_type = $2",
                f"order:{order_id}",
                event_type,
            )
        )
    finally:
        await conn.close()
