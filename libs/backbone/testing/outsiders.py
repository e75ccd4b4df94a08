"""The system's users, as the end-to-end tests and the demo play them: only Kafka messages and HTTP calls.

- a checkout system publishing OrderPlaced;
- a supplier's EDI adapter publishing acknowledgements, shipment notices and GoodsReceived;
- shop staff using the admin APIs (stock, backorder policy, supplier catalogue), as the subject of the
  deployment's token (the audit actor);
- a warehouse's fulfilment adapter (`Warehouse`): reading FulfilmentRequested, publishing
  ShipmentDispatched;
- customers reading their orders and e-mails, cancelling, subscribing to back-in-stock.
"""

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from email.message import EmailMessage
from typing import Any, Protocol

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from backbone.consumer import decode
from backbone.contracts import DecodeError, Envelope, EventPayload, Topic, new_envelope
from backbone.contracts.events import (
    Customer,
    CustomerTier,
    FulfilmentRequested,
    GoodsReceived,
    OrderLine,
    OrderPlaced,
    PurchaseOrderAcknowledged,
    ShipmentDispatched,
    ShipmentNoticed,
    ShippedLine,
)
from backbone.testing.fixtures import publish
from backbone.testing.mailsink import MailSink
from backbone.testing.waiting import eventually

Json = dict[str, Any]


class Deployment(Protocol):
    """Where the services are: a test's fleet (backbone.testing.fleet) or the ones `make run` started."""

    http: httpx.AsyncClient

    def url(self, name: str) -> str: ...

    def topic(self, topic: Topic) -> str: ...


@dataclass
class RunningServices:
    """Services started elsewhere (`make run`); `http` sends `token` (e.g. a development token)."""

    urls: Mapping[str, str]
    topic_prefix: str
    token: str | None = None
    http: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        self.http = httpx.AsyncClient(timeout=10.0, headers=headers)

    def url(self, name: str) -> str:
        return self.urls[name]

    def topic(self, topic: Topic) -> str:
        return topic.qualified(self.topic_prefix)


class Outsiders:
    def __init__(
        self, services: Deployment, producer: AIOKafkaProducer, mail: MailSink | None = None
    ) -> None:
        self.services = services
        self._mail = mail
        self._producer = producer
        self._http = services.http

    @property
    def mail(self) -> MailSink:
        assert self._mail is not None, "no mail sink: the e-mails go elsewhere"
        return self._mail

    # --- Kafka, as checkout systems and EDI adapters ------------------------------------------------

    async def publish(self, topic: Topic, *payloads: EventPayload) -> list[Envelope[Any]]:
        envelopes = [new_envelope(p) for p in payloads]
        await publish(self._producer, self.services.topic(topic), envelopes)
        return envelopes

    async def place_order(
        self,
        order_id: str,
        lines: Sequence[tuple[str, int]],
        *,
        customer: str | None = None,
        tier: CustomerTier = "standard",
        placed_at: datetime | None = None,
        unit_price: str = "25.00",
        **extra: Any,
    ) -> OrderPlaced:
        customer_id = customer or f"cust-{order_id}"
        order = OrderPlaced(
            order_id=order_id,
            customer=Customer(customer_id=customer_id, email=f"{customer_id}@example.com", tier=tier),
            lines=[
                OrderLine(line_id=str(n), sku=sku, quantity=quantity, unit_price=Decimal(unit_price))
                for n, (sku, quantity) in enumerate(lines, start=1)
            ],
            placed_at=placed_at or datetime.now(UTC),
            **extra,
        )
        await self.publish(Topic.ORDERS, order)
        return order

    async def receive_goods(self, sku: str, quantity: int, po_id: str | None = None) -> None:
        receipt = GoodsReceived(
            receipt_id=f"rcpt-{uuid.uuid4().hex[:10]}",
            po_id=po_id,
            sku=sku,
            quantity=quantity,
            received_at=datetime.now(UTC),
        )
        await self.publish(Topic.SUPPLIER, receipt)

    async def acknowledge(self, po_id: str, sku: str, quantity: int, on: date) -> None:
        ack = PurchaseOrderAcknowledged(po_id=po_id, sku=sku, confirmed_quantity=quantity, confirmed_date=on)
        await self.publish(Topic.SUPPLIER, ack)

    async def notice_shipment(self, po_id: str, sku: str, quantity: int, expected: date) -> None:
        asn = ShipmentNoticed(
            asn_id=f"asn-{uuid.uuid4().hex[:10]}",
            po_id=po_id,
            sku=sku,
            quantity=quantity,
            expected_date=expected,
        )
        await self.publish(Topic.SUPPLIER, asn)

    # --- HTTP ---------------------------------------------------------------------------------------

    async def call(self, service: str, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        response = await self._http.request(method, f"{self.services.url(service)}{path}", **kwargs)
        assert response.status_code == expect, (
            f"{method} {service}{path}: {response.status_code} {response.text}"
        )
        return response.json() if response.content else None

    async def get_or_none(self, service: str, path: str) -> Json | None:
        response = await self._http.get(f"{self.services.url(service)}{path}")
        if response.status_code == 404:
            return None
        assert response.status_code == 200, f"GET {service}{path}: {response.status_code} {response.text}"
        return dict(response.json())

    async def stock_up(self, sku: str, quantity: int) -> None:
        body = {"delta": quantity, "reason": "opening balance"}
        await self.call("inventory", "POST", f"/skus/{sku}/adjustments", json=body)

    async def set_policy(self, sku: str, policy: str, **extra: Any) -> None:
        body = {"backorder_policy": policy, **extra}
        await self.call("inventory", "PUT", f"/skus/{sku}/policy", json=body)

    async def set_suppliers(self, sku: str, *suppliers: Json) -> Json:
        """Each supplier: supplier_id, lead_time_days, unit_cost, role (+ MOQ, pack size)."""
        body = {"suppliers": [{"currency": "EUR", **s} for s in suppliers]}
        catalogue = dict(await self.call("procurement", "PUT", f"/skus/{sku}/suppliers", json=body))
        if suppliers:  # inventory learns of them from SkuSourcingChanged; until then the SKU may be unknown
            await eventually(
                lambda: self._sourced(sku), timeout=45.0, what=f"inventory to see {sku}'s suppliers"
            )
        return catalogue

    async def _sourced(self, sku: str) -> bool:
        stock = await self.stock(sku)
        return stock is not None and stock["sourced"] is True

    async def purchase_orders(self, sku: str) -> list[Json]:
        return list(await self.call("procurement", "GET", "/purchase-orders", params={"sku": sku}))

    async def stock(self, sku: str) -> Json | None:
        return await self.get_or_none("inventory", f"/stock/{sku}")

    # --- waiting ------------------------------------------------------------------------------------

    async def order_when(self, order_id: str, what: str, check: Any, timeout: float = 45.0) -> Json:
        """GET /orders/{id} until `check(view)` holds."""

        last: list[Json | None] = [None]

        async def probe() -> Json | None:
            view = last[0] = await self.get_or_none("order", f"/orders/{order_id}")
            return view if view is not None and check(view) else None

        try:
            result = await eventually(probe, timeout=timeout, interval=0.1, what=f"order {order_id}: {what}")
        except AssertionError as e:
            raise AssertionError(f"{e}\nlast view: {last[0]}") from None
        assert result is not None
        return result

    async def order_status(self, order_id: str, status: str) -> Json:
        return await self.order_when(order_id, f"status {status}", lambda v: v["status"] == status)

    async def emails_to(self, customer_id: str, count: int, timeout: float = 45.0) -> list[EmailMessage]:
        address = f"{customer_id}@example.com"

        async def arrived() -> list[EmailMessage]:
            found = self.mail.to(address)
            return found if len(found) >= count else []

        try:
            return await eventually(
                arrived, timeout=timeout, interval=0.1, what=f"{count} e-mails to {address}"
            )
        except AssertionError as e:
            known = await self.call("notifier", "GET", "/notifications", params={"customer_id": customer_id})
            raise AssertionError(
                f"{e}\nreceived: {[m['Subject'] for m in self.mail.to(address)]}\n"
                f"the notifier's deliveries: {known}"
            ) from None


class Warehouse:
    """A warehouse's fulfilment adapter, as a WMS integration would be written: it follows the orders
    topic, keeps the highest FulfilmentRequested revision per order (its pick list) and reports what it
    ships as ShipmentDispatched. Use as `async with Warehouse(...) as warehouse:`."""

    def __init__(self, services: Deployment, producer: AIOKafkaProducer, bootstrap_servers: str) -> None:
        self._services = services
        self._producer = producer
        self._consumer = AIOKafkaConsumer(
            services.topic(Topic.ORDERS),
            bootstrap_servers=bootstrap_servers,
            group_id=f"warehouse-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        self.pick_lists: dict[str, FulfilmentRequested] = {}

    async def __aenter__(self) -> "Warehouse":
        await self._consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def _read(self) -> None:
        batches = await self._consumer.getmany(timeout_ms=100)
        for record in (r for records in batches.values() for r in records):
            if dict(record.headers).get("event_type") != b"FulfilmentRequested":
                continue
            try:
                request = decode(record).payload
            except DecodeError:
                continue  # not the warehouse's to judge: the services dead-letter what breaks the contract
            known = self.pick_lists.get(request.order_id)
            if known is None or request.revision > known.revision:
                self.pick_lists[request.order_id] = request

    async def pick_list(
        self, order_id: str, what: str, check: Any, timeout: float = 45.0
    ) -> FulfilmentRequested:
        """The order's latest pick list, once `check(pick_list)` holds."""

        async def probe() -> FulfilmentRequested | None:
            await self._read()
            latest = self.pick_lists.get(order_id)
            return latest if latest is not None and check(latest) else None

        found = await eventually(
            probe, timeout=timeout, interval=0.05, what=f"pick list of {order_id}: {what}"
        )
        assert found is not None
        return found

    async def ship(
        self,
        pick_list: FulfilmentRequested,
        *,
        quantities: Mapping[str, int] | None = None,
        shipment_id: str | None = None,
        tracking_number: str | None = None,
    ) -> ShipmentDispatched:
        """Ship the pick list (or `quantities` per line id of it) as one parcel."""
        wanted = quantities or {line.line_id: line.quantity for line in pick_list.lines}
        shipment = ShipmentDispatched(
            shipment_id=shipment_id or f"shp-{uuid.uuid4().hex[:10]}",
            order_id=pick_list.order_id,
            lines=[
                ShippedLine(line_id=line.line_id, sku=line.sku, quantity=wanted[line.line_id])
                for line in pick_list.lines
                if wanted.get(line.line_id)
            ],
            carrier="DHL" if tracking_number else None,
            tracking_number=tracking_number,
            tracking_url=f"https://tracking.example.com/{tracking_number}" if tracking_number else None,
            shipped_at=datetime.now(UTC),
        )
        await publish(self._producer, self._services.topic(Topic.FULFILMENT), [new_envelope(shipment)])
        return shipment
