"""HTTP API of the notifier: back-in-stock subscriptions (commands) and the delivery queue (queries).

Subscription commands run the SKU decider like the consumer does (lock, load, decide, append, project) in
one transaction, retried a few times on ConcurrencyError. BackordersAllowed -> 409 (the customer can
simply order the SKU), InvalidSubscription or an invalid body -> 422; nothing is written then.
"""

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, HTTPException, Path, Query, Response
from fastapi import status as http_status
from pydantic import BaseModel, ConfigDict, Field

from backbone.contracts.events import Channel, NotificationKind
from backbone.contracts.types import Email, Identifier, Text
from backbone.decider import Decided, Input, decide_and_append
from backbone.eventstore import ConcurrencyError, EventStore
from services.notifier import projections
from services.notifier.domain import (
    BackordersAllowed,
    InvalidSubscription,
    SkuWatch,
    Subscribe,
    Unsubscribe,
    decide_sku,
    sku_stream_id,
)
from services.notifier.handlers import sku_repository

ATTEMPTS = 5
_ID_PATTERN = r"^\S(?:.*\S)?$"
SkuPath = Annotated[str, Path(min_length=1, max_length=128, pattern=_ID_PATTERN)]
IdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=_ID_PATTERN)]
DeliveryStatus = Literal["pending", "sent", "failed"]


class SubscriptionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: Identifier
    email: Email
    customer_name: Text | None = None
    shop_id: Identifier = Field(default="default", description="Whose webhook, if any, delivers the message")


class SubscriptionView(BaseModel):
    sku: str
    customer_id: str
    email: str
    customer_name: str | None
    shop_id: str
    subscribed_at: datetime


class SkuSubscriptions(BaseModel):
    sku: str
    backorder_policy: str | None = Field(description="As last seen from inventory; null: not seen yet")
    subscriptions: list[SubscriptionView]


class NotificationView(BaseModel):
    notification_id: str
    kind: NotificationKind
    status: DeliveryStatus
    customer_id: str
    shop_id: str
    email: str
    order_id: str | None
    line_id: str | None
    sku: str | None
    subject: str
    content: dict[str, Any] = Field(description="What the message says, field by field")
    channel: Channel | None = Field(description="Of the last attempt; null before the first")
    recipient: str | None = Field(description="Email address or webhook URL of the last attempt")
    attempts: int
    next_attempt_at: datetime | None = Field(description="When a pending message is due")
    last_error: str | None
    requested_at: datetime
    updated_at: datetime


_NOTIFICATION_COLUMNS = """
notification_id, kind, status, customer_id, shop_id, email, order_id, line_id, sku, subject,
notification::text AS notification, channel, recipient, attempts, next_attempt_at, last_error,
requested_at, updated_at
"""


def _notification_view(row: asyncpg.Record) -> NotificationView:
    values = dict(row)
    content = dict(json.loads(values.pop("notification"))["content"])
    content.pop("kind", None)
    return NotificationView(**values, content=content)


async def _subscriptions(conn: asyncpg.Connection, sku: str) -> SkuSubscriptions:
    policy = await conn.fetchval("SELECT backorder_policy FROM sku_watch WHERE sku = $1", sku)
    rows = await conn.fetch(
        "SELECT sku, customer_id, email, customer_name, shop_id, subscribed_at"
        " FROM back_in_stock_subscription WHERE sku = $1 ORDER BY subscribed_at, customer_id",
        sku,
    )
    return SkuSubscriptions(
        sku=sku, backorder_policy=policy, subscriptions=[SubscriptionView(**dict(r)) for r in rows]
    )


def make_router(pool: asyncpg.Pool, store: EventStore) -> APIRouter:
    router = APIRouter(tags=["notifier"])
    repository = sku_repository(store)

    async def run(
        sku: str, command: Subscribe | Unsubscribe
    ) -> tuple[Sequence[Decided[SkuWatch]], SkuSubscriptions]:
        work = [Input(sku_stream_id(sku), command, correlation_id=str(uuid.uuid4()))]
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with pool.acquire() as conn, conn.transaction():
                    decided = await decide_and_append(conn, store, repository, decide_sku, work)
                    await projections.apply(conn, decided)
                    return decided, await _subscriptions(conn, sku)
            except ConcurrencyError:
                if attempt == ATTEMPTS:
                    raise HTTPException(503, detail="the SKU is too busy; try again") from None
            except BackordersAllowed as e:
                raise HTTPException(409, detail=str(e)) from None
            except InvalidSubscription as e:
                raise HTTPException(422, detail=str(e)) from None
        raise AssertionError("unreachable")

    @router.post(
        "/skus/{sku}/subscriptions",
        response_model=SubscriptionView,
        status_code=http_status.HTTP_201_CREATED,
        responses={
            200: {"description": "Already subscribed: the existing subscription"},
            409: {"description": "The SKU can be backordered: order it instead"},
            422: {"description": "Invalid subscription"},
        },
    )
    async def subscribe(sku: SkuPath, body: SubscriptionRequest, response: Response) -> SubscriptionView:
        """Tell the customer once when the SKU (which does not take backorders) is back in stock."""
        command = Subscribe(
            sku=sku,
            customer_id=body.customer_id,
            email=body.email,
            customer_name=body.customer_name,
            shop_id=body.shop_id,
            subscribed_at=datetime.now(UTC),
        )
        decided, current = await run(sku, command)
        if not decided:
            response.status_code = http_status.HTTP_200_OK
        found = next((s for s in current.subscriptions if s.customer_id == body.customer_id), None)
        assert found is not None  # just subscribed, in the same transaction
        return found

    @router.delete(
        "/skus/{sku}/subscriptions/{customer_id}",
        status_code=http_status.HTTP_204_NO_CONTENT,
        responses={404: {"description": "No such subscription"}},
    )
    async def unsubscribe(sku: SkuPath, customer_id: IdPath) -> Response:
        decided, _ = await run(sku, Unsubscribe(sku=sku, customer_id=customer_id))
        if not decided:
            raise HTTPException(404, detail=f"{customer_id!r} has no subscription to {sku!r}")
        return Response(status_code=http_status.HTTP_204_NO_CONTENT)

    @router.get("/skus/{sku}/subscriptions", response_model=SkuSubscriptions)
    async def subscriptions(sku: SkuPath) -> SkuSubscriptions:
        async with pool.acquire() as conn:
            return await _subscriptions(conn, sku)

    @router.get("/notifications", response_model=list[NotificationView])
    async def notifications(
        order_id: Annotated[Identifier | None, Query()] = None,
        customer_id: Annotated[Identifier | None, Query()] = None,
        status: Annotated[DeliveryStatus | None, Query()] = None,
        kind: Annotated[NotificationKind | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[NotificationView]:
        """The delivery queue, oldest request first, filtered by every parameter given."""
        rows = await pool.fetch(
            f"SELECT {_NOTIFICATION_COLUMNS} FROM notification_delivery"
            " WHERE ($1::text IS NULL OR order_id = $1) AND ($2::text IS NULL OR customer_id = $2)"
            " AND ($3::text IS NULL OR status = $3) AND ($4::text IS NULL OR kind = $4)"
            " ORDER BY requested_at, notification_id LIMIT $5",
            order_id,
            customer_id,
            status,
            kind,
            limit,
        )
        return [_notification_view(r) for r in rows]

    @router.get(
        "/notifications/{notification_id}",
        response_model=NotificationView,
        responses={404: {"description": "No such notification"}},
    )
    async def notification(notification_id: IdPath) -> NotificationView:
        row = await pool.fetchrow(
            f"SELECT {_NOTIFICATION_COLUMNS} FROM notification_delivery WHERE notification_id = $1",
            notification_id,
        )
        if row is None:
            raise HTTPException(404, detail=f"unknown notification {notification_id!r}")
        return _notification_view(row)

    return router
