"""The notifier as outsiders see it: a running process, the topics it reads, a real mail relay (aiosmtpd)
and a real shop webhook (FastAPI under uvicorn, checking the signature as a shop would), and its HTTP
API."""

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import asyncpg
import httpx
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from fastapi import FastAPI, Request, Response

from backbone.contracts import Envelope, EventPayload, new_envelope
from backbone.contracts.events import (
    BackorderEtaUpdated,
    BackorderFulfilled,
    Customer,
    GoodsReceived,
    LineQuantity,
    OrderCancelled,
    OrderLine,
    OrderPlaced,
    RefundRequested,
    ShipmentDispatched,
    ShippedLine,
    StockReleased,
    StockShipped,
    StockShort,
)
from backbone.testing.databases import table_rows
from backbone.testing.fixtures import unique_name
from backbone.testing.service import free_port, run_rebuild, service_settings
from backbone.testing.service import serving as serving_service
from backbone.testing.waiting import eventually
from services.notifier.app import SERVICE, NotifierSettings
from services.notifier.channels import SIGNATURE_HEADER, SignatureError, verify_signature

SENDER = "Shop <orders@shop.example>"


def settings(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, smtp_port: int, **overrides: Any
) -> NotifierSettings:
    """Fast retries and polling, so a test sees several attempts within a second or two."""
    return service_settings(
        NotifierSettings,
        service_name="notifier",
        database_url=database_url,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        **{
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_port,
            "smtp_sender": SENDER,
            "smtp_timeout_seconds": 5.0,
            "webhook_timeout_seconds": 5.0,
            "delivery_lease_seconds": 30.0,
            "delivery_poll_seconds": 0.05,
            "retry_first_delay_seconds": 0.3,
            "retry_multiplier": 2.0,
            "retry_max_delay_seconds": 5.0,
            "retry_max_attempts": 3,
            "announcement_interval_seconds": 0.2,
            **overrides,
        },
    )


def serving(config: NotifierSettings) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    return serving_service(SERVICE, config)


# --- a mail relay ------------------------------------------------------------------------------------------


@dataclass
class MailSink:
    """An SMTP server (its own thread) keeping what it accepts; `refuse` maps an address to the reply
    its RCPT gets instead of 250, e.g. "451 4.3.0 try again later"."""

    refuse: dict[str, str] = field(default_factory=dict)
    port: int = 0
    delay: float = 0.0  # seconds each accepted message takes, to keep several sends in flight
    _messages: list[EmailMessage] = field(default_factory=list)
    _refusals: list[tuple[str, float]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: SmtpEnvelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            with self._lock:
                self._refusals.append((address, time.monotonic()))
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SmtpEnvelope) -> str:
        await asyncio.sleep(self.delay)
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        message = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self._messages.append(message)
        return "250 Message accepted for delivery"

    def messages(self, to: str | None = None) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self._messages if to is None or to in str(m["To"])]

    def refusals(self, address: str) -> list[float]:
        """When each RCPT of `address` was refused (monotonic seconds)."""
        with self._lock:
            return [at for a, at in self._refusals if a == address]


@contextlib.asynccontextmanager
async def mail_relay(refuse: dict[str, str] | None = None, delay: float = 0.0) -> AsyncIterator[MailSink]:
    sink = MailSink(refuse=refuse or {}, port=free_port(), delay=delay)
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    await asyncio.to_thread(controller.start)
    try:
        yield sink
    finally:
        await asyncio.to_thread(controller.stop)


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return " ".join(str(body.get_content()).split())  # one line: the templates wrap sentences


# --- a shop's webhook --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes  # the body as it came, which the signature covers


@dataclass
class ShopWebhook:
    """Checks each POST /hook's Backorder-Signature with `secret` as a shop's receiver would: a call whose
    signature does not hold is refused with 401 and kept in `refused`; a good one is answered with the
    next status of `statuses`, then 200, and kept in `calls`."""

    url: str
    statuses: list[int]
    secret: str = "shop-webhook-secret-" + "s" * 24
    calls: list[Call] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def setting(self, secret: str | None = None) -> dict[str, str]:
        """This endpoint's SHOP_WEBHOOKS entry for the notifier (signing with `secret`, default ours)."""
        return {"url": self.url, "secret": secret or self.secret}


@contextlib.asynccontextmanager
async def shop_webhook(statuses: Sequence[int] = ()) -> AsyncIterator[ShopWebhook]:
    port = free_port()
    hook = ShopWebhook(url=f"http://127.0.0.1:{port}/hook", statuses=list(statuses))
    app = FastAPI()

    @app.post("/hook")
    async def receive(request: Request) -> Response:
        raw = await request.body()
        try:
            verify_signature(request.headers.get(SIGNATURE_HEADER), raw, hook.secret, now=time.time())
        except SignatureError as e:
            hook.refused.append(str(e))
            return Response(status_code=401, content=str(e).encode())
        hook.calls.append(Call(dict(request.headers), json.loads(raw), raw))
        status = hook.statuses.pop(0) if hook.statuses else 200
        return Response(status_code=status, content=b"busy" if status >= 300 else b"")

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: asyncio.sleep(0, server.started), what="the webhook receiver to start")
        yield hook
    finally:
        server.should_exit = True
        await task


# --- what the other services publish ------------------------------------------------------------------------


def placed(
    order_id: str,
    customer_id: str,
    email: str,
    lines: Sequence[tuple[str, str, int]],
    shop_id: str = "default",
) -> Envelope[OrderPlaced]:
    """lines: (line_id, sku, quantity)."""
    return new_envelope(
        OrderPlaced(
            order_id=order_id,
            shop_id=shop_id,
            customer=Customer(customer_id=customer_id, email=email, name="Ada"),
            lines=[
                OrderLine(line_id=line_id, sku=sku, quantity=quantity, unit_price=Decimal("19.90"))
                for line_id, sku, quantity in lines
            ],
            placed_at=datetime.now(UTC),
            max_wait_days=30,
        ),
        correlation_id=order_id,
    )


def short(
    order_id: str, line_id: str, sku: str, demanded: int, available: int, disposition: str = "backordered"
) -> Envelope[StockShort]:
    return new_envelope(
        StockShort(
            order_id=order_id,
            line_id=line_id,
            sku=sku,
            demanded=demanded,
            available=available,
            short_quantity=demanded - available,
            disposition=disposition,  # type: ignore[arg-type]
            reason="the SKU takes no backorders" if disposition == "rejected" else None,
        ),
        correlation_id=order_id,
    )


def eta(
    order_id: str, line_id: str, sku: str, when: date | None, previous: date | None = None
) -> Envelope[Any]:
    return new_envelope(
        BackorderEtaUpdated(
            order_id=order_id,
            line_id=line_id,
            sku=sku,
            eta=when,
            previous_eta=previous,
            po_id="PO-1" if when else None,
            reason="purchase order issued" if when else "no purchase order covers it",
        ),
        correlation_id=order_id,
    )


def filled(order_id: str, line_id: str, sku: str, quantity: int, remaining: int) -> Envelope[Any]:
    return new_envelope(
        BackorderFulfilled(
            order_id=order_id,
            line_id=line_id,
            sku=sku,
            quantity=quantity,
            remaining_backordered=remaining,
            source="GRN-1",
            priority_reason="1st in the backorder queue",
        ),
        correlation_id=order_id,
    )


def cancel(order_id: str, line_id: str, sku: str, quantity: int) -> Envelope[OrderCancelled]:
    """The customer's request (orders topic); inventory answers with `released`."""
    return new_envelope(
        OrderCancelled(
            order_id=order_id,
            lines=[LineQuantity(line_id=line_id, sku=sku, quantity=quantity)],
            reason="customer_request",
            cancelled_at=datetime.now(UTC),
            cancellation_id=f"{order_id}:cancel:1",
        ),
        correlation_id=order_id,
    )


def rejected_orders(sku: str, count: int) -> tuple[list[Envelope[OrderPlaced]], list[Envelope[Any]]]:
    """`count` orders of 2 units of `sku`, each by its own customer, and inventory's refusal of each: one
    "rejected" message per order, all due at once."""
    orders = [
        placed(unique_name("order"), unique_name("customer"), f"buyer{n}@example.com", [("1", sku, 2)])
        for n in range(count)
    ]
    return orders, [short(o.payload.order_id, "1", sku, 2, 0, disposition="rejected") for o in orders]


def released(order_id: str, line_id: str, sku: str, reserved: int, dropped: int) -> Envelope[StockReleased]:
    return new_envelope(
        StockReleased(
            order_id=order_id,
            line_id=line_id,
            sku=sku,
            released_reserved=reserved,
            dropped_backordered=dropped,
            reason="customer_request",
        ),
        correlation_id=order_id,
    )


def refund(order_id: str, line_id: str, sku: str, quantity: int) -> Envelope[RefundRequested]:
    return new_envelope(
        RefundRequested(
            order_id=order_id,
            line_id=line_id,
            sku=sku,
            quantity=quantity,
            amount=quantity * Decimal("19.90"),
            currency="EUR",
            reason="customer_request",
        ),
        correlation_id=order_id,
    )


def dispatched(
    order_id: str, shipment_id: str, lines: Sequence[tuple[str, str, int]], **tracking: str
) -> Envelope[ShipmentDispatched]:
    """lines: (line_id, sku, quantity); tracking: carrier, tracking_number, tracking_url."""
    return new_envelope(
        ShipmentDispatched(
            shipment_id=shipment_id,
            order_id=order_id,
            lines=[ShippedLine(line_id=line_id, sku=sku, quantity=q) for line_id, sku, q in lines],
            shipped_at=datetime.now(UTC) - timedelta(minutes=5),
            **tracking,
        ),
        correlation_id=order_id,
    )


def stock_shipped(
    shipment: Envelope[ShipmentDispatched], line_id: str, quantity: int | None = None
) -> Envelope[StockShipped]:
    """Inventory's confirmation of one line of `shipment` (inventory topic, key sku); by default the units
    the warehouse announced."""
    dispatched = shipment.payload
    (line,) = [line for line in dispatched.lines if line.line_id == line_id]
    return new_envelope(
        StockShipped(
            shipment_id=dispatched.shipment_id,
            order_id=dispatched.order_id,
            line_id=line_id,
            sku=line.sku,
            quantity=line.quantity if quantity is None else quantity,
            on_hand_after=0,
        ),
        correlation_id=dispatched.order_id,
    )


def received(sku: str, quantity: int, receipt_id: str) -> Envelope[GoodsReceived]:
    return new_envelope(
        GoodsReceived(receipt_id=receipt_id, sku=sku, quantity=quantity, received_at=datetime.now(UTC))
    )


def again(envelope: Envelope[Any]) -> Envelope[Any]:
    """The same fact published anew: same payload, new event id (a producer that retried after a crash)."""
    payload: EventPayload = envelope.payload
    return new_envelope(payload, correlation_id=envelope.correlation_id)


# --- waiting for the service --------------------------------------------------------------------------------


async def consumed(database_url: str, *envelopes: Envelope[Any]) -> None:
    """Until the notifier has applied these events (their ids are in its inbox, committed with the effects).
    Wait for the last event of a partition to know that all before it were applied too."""
    ids = [e.event_id for e in envelopes]

    async def probe() -> bool:
        conn = await asyncpg.connect(database_url)
        try:
            return bool(
                await conn.fetchval("SELECT count(*) FROM inbox WHERE event_id = ANY($1)", ids) == len(ids)
            )
        finally:
            await conn.close()

    await eventually(probe, what=f"the notifier to consume {[e.event_type for e in envelopes]}")


async def notifications(http: httpx.AsyncClient, **query: str) -> list[dict[str, Any]]:
    response = await http.get("/notifications", params=query)
    assert response.status_code == 200, response.text
    return list(response.json())


async def settled(http: httpx.AsyncClient, **query: str) -> list[dict[str, Any]]:
    """Until no matching notification is pending any more; returns them all."""

    async def probe() -> list[dict[str, Any]] | None:
        rows = await notifications(http, **query)
        return rows if rows and all(r["status"] != "pending" for r in rows) else None

    result = await eventually(probe, what=f"notifications {query} to be sent or failed")
    assert result is not None
    return result


# --- read models and the rebuild command --------------------------------------------------------------------

READ_MODELS = {
    "notification_delivery": "notification_id",
    "backorder_announcement": "order_id",
    "sku_watch": "sku",
    "back_in_stock_subscription": "sku, customer_id",
}


async def read_models(database_url: str) -> dict[str, list[dict[str, Any]]]:
    return await table_rows(database_url, READ_MODELS)


async def rebuild(database_url: str) -> bytes:
    return await run_rebuild("notifier", database_url)


async def assert_rebuild_gives_the_same_read_models(database_url: str) -> None:
    before = await read_models(database_url)
    conn = await asyncpg.connect(database_url)
    try:  # damage every read model first, so the rebuild has to do the work
        await conn.execute(
            "UPDATE notification_delivery SET status = 'failed', attempts = 99, next_attempt_at = NULL;"
            " DELETE FROM back_in_stock_subscription; DELETE FROM backorder_announcement;"
            " UPDATE sku_watch SET backorder_policy = NULL"
        )
    finally:
        await conn.close()
    await rebuild(database_url)
    assert await read_models(database_url) == before
