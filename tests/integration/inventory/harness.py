"""The inventory service as outsiders see it: a running process, its topics and its HTTP API."""

import uuid
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from backbone.contracts import Envelope, new_envelope
from backbone.contracts.events import (
    Customer,
    GoodsReceived,
    LineQuantity,
    OrderCancelled,
    OrderLine,
    OrderPlaced,
    ShipmentDispatched,
    ShippedLine,
    SkuSourcingChanged,
)
from backbone.testing.databases import table_rows
from backbone.testing.service import service_settings
from backbone.testing.service import serving as serving_service
from backbone.testing.waiting import eventually
from services.inventory.app import SERVICE, InventorySettings


def settings(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, **overrides: Any
) -> InventorySettings:
    return service_settings(
        InventorySettings,
        service_name="inventory",
        database_url=database_url,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        **{"priority_mode": "first_come_first_served", **overrides},
    )


def serving(config: InventorySettings) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    return serving_service(SERVICE, config)


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


def shipment(
    shipment_id: str, order_id: str, sku: str, quantity: int, line_id: str = "1"
) -> Envelope[ShipmentDispatched]:
    return new_envelope(
        ShipmentDispatched(
            shipment_id=shipment_id,
            order_id=order_id,
            lines=[ShippedLine(line_id=line_id, sku=sku, quantity=quantity)],
            carrier="DHL",
            shipped_at=datetime.now(UTC),
        )
    )


def sourcing(sku: str, *supplier_ids: str) -> Envelope[SkuSourcingChanged]:
    return new_envelope(SkuSourcingChanged(sku=sku, supplier_ids=list(supplier_ids)))


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
    return await table_rows(
        database_url,
        {"stock": "sku", "backorder_queue": "sku, order_id, line_id", "allocation_audit": "sku, version"},
    )
