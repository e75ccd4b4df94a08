"""The procurement service as outsiders see it; the test plays inventory and the supplier EDI adapters."""

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from backbone.contracts import Envelope, new_envelope
from backbone.contracts.events import (
    BackorderFulfilled,
    GoodsReceived,
    PurchaseOrderAcknowledged,
    ReorderPointReached,
    ShipmentNoticed,
    StockReleased,
    StockReserved,
    StockShort,
)
from backbone.testing.databases import table_rows
from backbone.testing.service import service_settings
from backbone.testing.service import serving as serving_service
from backbone.testing.waiting import eventually
from services.procurement.app import ProcurementSettings, build_service
from tests.unit.procurement.scenario import InventoryQueue

DAY0 = date(2030, 1, 7)


def day(n: int) -> date:
    return DAY0 + timedelta(days=n)


@dataclass
class FixedClock:
    """The day the service decides on; a test moves it forward between steps."""

    today: date = DAY0

    def __call__(self) -> date:
        return self.today


def settings(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, **overrides: Any
) -> ProcurementSettings:
    return service_settings(
        ProcurementSettings,
        service_name="procurement",
        database_url=database_url,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        **overrides,
    )


def serving(
    config: ProcurementSettings, clock: Callable[[], date]
) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    return serving_service(build_service(clock), config)


# --- inventory's events, in the order services/inventory emits them ------------------------------------


def backordered(sku: str, order_id: str, *, demanded: int, available: int) -> list[Envelope[Any]]:
    """What inventory publishes for a placed line it cannot fully serve: the reservation (if any),
    then the shortfall. The line's "joined" BackorderQueueChanged follows: see `Inventory.queue`."""
    events: list[Envelope[Any]] = []
    if available:
        events.append(
            new_envelope(StockReserved(order_id=order_id, line_id="1", sku=sku, quantity=available))
        )
    short = StockShort(
        order_id=order_id,
        line_id="1",
        sku=sku,
        demanded=demanded,
        available=available,
        short_quantity=demanded - available,
        disposition="backordered",
    )
    return [*events, new_envelope(short)]


@dataclass
class Inventory:
    """Inventory's backorder queues, as far as its BackorderQueueChanged events tell them."""

    queues: dict[str, InventoryQueue] = field(default_factory=dict)

    def queue(self, sku: str, *lines: tuple[str, int]) -> list[Envelope[Any]]:
        """The one-line changes that make the SKU's queue `lines` (order_id, quantity; each order's line
        "1"): lines not in it leave, others are reduced, new ones join at the end."""
        queue = self.queues.setdefault(sku, InventoryQueue(sku=sku))
        return [new_envelope(change) for change in queue.becomes(*lines)]


def reorder_point_reached(sku: str, *, on_hand: int, reserved: int, backordered: int) -> Envelope[Any]:
    return new_envelope(
        ReorderPointReached(
            sku=sku,
            on_hand=on_hand,
            reserved=reserved,
            available=on_hand - reserved,
            backordered=backordered,
            reorder_point=0,
            safety_stock=0,
        )
    )


def fulfilled(sku: str, order_id: str, quantity: int, remaining: int, source: str) -> Envelope[Any]:
    return new_envelope(
        BackorderFulfilled(
            order_id=order_id,
            line_id="1",
            sku=sku,
            quantity=quantity,
            remaining_backordered=remaining,
            source=source,
            priority_reason="1st in the backorder queue, first come first served",
        )
    )


def cancelled(sku: str, order_id: str, *, reserved: int, backordered: int) -> Envelope[Any]:
    return new_envelope(
        StockReleased(
            order_id=order_id,
            line_id="1",
            sku=sku,
            released_reserved=reserved,
            dropped_backordered=backordered,
        )
    )


# --- the supplier EDI adapters' events -----------------------------------------------------------------


def acknowledged(sku: str, po_id: str, quantity: int, on: date) -> Envelope[Any]:
    return new_envelope(
        PurchaseOrderAcknowledged(po_id=po_id, sku=sku, confirmed_quantity=quantity, confirmed_date=on)
    )


def shipment(sku: str, asn_id: str, po_id: str, quantity: int, on: date) -> Envelope[Any]:
    return new_envelope(
        ShipmentNoticed(asn_id=asn_id, po_id=po_id, sku=sku, quantity=quantity, expected_date=on)
    )


def received(sku: str, receipt_id: str, po_id: str, quantity: int, supplier_id: str) -> Envelope[Any]:
    return new_envelope(
        GoodsReceived(
            receipt_id=receipt_id,
            po_id=po_id,
            supplier_id=supplier_id,
            sku=sku,
            quantity=quantity,
            received_at=datetime.now(UTC),
        )
    )


async def publish_raw(
    producer: AIOKafkaProducer, topic: str, key: str, value: bytes, headers: list[tuple[str, bytes]]
) -> None:
    """A message exactly as given: for what a faulty producer sends."""
    await producer.send_and_wait(topic, value, key=key.encode(), headers=headers)


def tampered(envelope: Envelope[Any], **payload_changes: Any) -> bytes:
    """The envelope's JSON with payload fields overwritten, bypassing the model's validation."""
    data = envelope.model_dump(mode="json")
    data["payload"].update(payload_changes)
    return json.dumps(data).encode()


# --- the HTTP API --------------------------------------------------------------------------------------


def supplier(
    supplier_id: str,
    *,
    lead_time_days: int,
    unit_cost: str = "4.00",
    role: str = "primary",
    moq: int = 1,
    pack: int = 1,
    currency: str = "EUR",
) -> dict[str, Any]:
    return {
        "supplier_id": supplier_id,
        "lead_time_days": lead_time_days,
        "minimum_order_quantity": moq,
        "pack_size": pack,
        "unit_cost": unit_cost,
        "currency": currency,
        "role": role,
    }


async def set_catalogue(http: httpx.AsyncClient, sku: str, *suppliers: dict[str, Any]) -> httpx.Response:
    return await http.put(f"/skus/{sku}/suppliers", json={"suppliers": list(suppliers)})


async def view_if(
    http: httpx.AsyncClient, path: str, check: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    """The view at `path` if it exists and satisfies `check`, else None (a probe for `eventually`)."""
    response = await http.get(path)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    view = dict(response.json())
    return view if check(view) else None


async def sku_reaches(
    http: httpx.AsyncClient, sku: str, check: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    """Wait until GET /skus/{sku} answers and satisfies `check`; returns that view."""
    result = await eventually(lambda: view_if(http, f"/skus/{sku}", check), timeout=20, what=f"{sku}: {what}")
    assert result is not None
    return result


def etas_of(view: dict[str, Any]) -> dict[str, str | None]:
    """The SKU view's waiting lines as order_id -> ETA (ISO date or None)."""
    return {line["order_id"]: line["eta"] for line in view["backorders"]}


async def purchase_order(http: httpx.AsyncClient, po_id: str) -> dict[str, Any]:
    response = await http.get(f"/purchase-orders/{po_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def read_models(database_url: str) -> dict[str, list[dict[str, Any]]]:
    return await table_rows(
        database_url,
        {
            "procurement_skus": "sku",
            "supplier_catalogues": "sku",
            "supplier_terms": "sku, position",
            "purchase_orders": "po_id",
            "line_etas": "sku, order_id, line_id",
            "procurement_replenishment": "sku",
            "procurement_demand_days": "sku, day",  # not derived from the log: rebuild keeps it
        },
    )
