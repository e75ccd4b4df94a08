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
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from fastapi import status as http_status
from pydantic import BaseModel, ConfigDict, Field

from backbone.auth import Principal, ReadsViews, Role, requires
from backbone.contracts.events import Channel, NotificationKind
from backbone.contracts.types import Email, Identifier, Text
from backbone.decider import Decided, Input, decide_and_append
from backbone.eventstore import ConcurrencyError, EventStore
from backbone.log import redact_text
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
# Who may do what (README "Roles"). Subscribing takes a customer's address, so not everyone may: support
# and staff, or the shop's checkout system on the customer's behalf (its storefront's "notify me").
# Names and addresses only to support and staff; the others see them as null.
Subscribes = Annotated[Principal, Depends(requires(Role.STAFF, Role.SUPPORT, Role.CHECKOUT))]
_ONLY_TO_SUPPORT = "Null unless the caller's token has role support or staff (customer data)"


class SubscriptionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: Identifier
    email: Email
    customer_name: Text | None = None
    shop_id: Identifier = Field(default="default", description="Whose webhook, if any, delivers the message")


class SubscriptionView(BaseModel):
    sku: str
    customer_id: str
    email: str | None = Field(description=_ONLY_TO_SUPPORT)
    customer_name: str | None = Field(description=_ONLY_TO_SUPPORT)
    shop_id: str
    subscribed_at: datetime

    def as_seen_by(self, principal: Principal) -> "SubscriptionView":
        if principal.sees_customer_data:
            return self
        return self.model_copy(update={"email": None, "customer_name": None})


class SkuSubscriptions(BaseModel):
    sku: str
    backorder_policy: str | None = Field(description="As last seen from inventory; null: not seen yet")
    subscriptions: list[SubscriptionView]

    def as_seen_by(self, principal: Principal) -> "SkuSubscriptions":
        shown = [s.as_seen_by(principal) for s in self.subscriptions]
        return self.model_copy(update={"subscriptions": shown})


class NotificationView(BaseModel):
    notification_id: str
    kind: NotificationKind
    status: DeliveryStatus
    customer_id: str
    shop_id: str
    email: str | None = Field(description=_ONLY_TO_SUPPORT)
    order_id: str | None
    line_id: str | None
    sku: str | None
    subject: str
    content: dict[str, Any] = Field(description="What the message says, field by field")
    channel: Channel | None = Field(description="Of the last attempt; null before the first")
    recipient_ref: str | None = Field(
        description="Where the last attempt went, by reference: email:<customer_id> (the customer's "
        "address, `email`) or webhook:<shop_id> (the shop's SHOP_WEBHOOKS entry); null before the first"
    )
    attempts: int
    next_attempt_at: datetime | None = Field(description="When a pending message is due")
    last_error: str | None
    requested_at: datetime
    updated_at: datetime

    def as_seen_by(self, principal: Principal) -> "NotificationView":
        if principal.sees_customer_data:
            return self
        # The notifier records errors without addresses; rows recorded before it did may quote them.
        error = redact_text(self.last_error) if self.last_error else self.last_error
        return self.model_copy(update={"email": None, "last_error": error})


_NOTIFICATION_COLUMNS = """
notification_id, kind, status, customer_id, shop_id, email, order_id, line_id, sku, subject,
notification::text AS notification, channel, recipient_ref, attempts, next_attempt_at, last_error,
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
                    decided = await decide_and_append(conn, repository, work, decide=decide_sku)
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
    async def subscribe(
        sku: SkuPath, body: SubscriptionRequest, response: Response, principal: Subscribes
    ) -> SubscriptionView:
        """Tell the customer once when the SKU (which does not take backorders) is back in stock. A shop's
        checkout token subscribes for its own shop only."""
        if not principal.may_act_for_shop(body.shop_id):
            raise HTTPException(403, detail=f"your token subscribes for shop {principal.shop} only")
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
        return found.as_seen_by(principal)

    @router.delete(
        "/skus/{sku}/subscriptions/{customer_id}",
        status_code=http_status.HTTP_204_NO_CONTENT,
        responses={404: {"description": "No such subscription"}},
    )
    async def unsubscribe(sku: SkuPath, customer_id: IdPath, principal: Subscribes) -> Response:
        """End the subscription. A shop's checkout token ends only its own shop's subscriptions."""
        if principal.shop is not None:
            shop = await pool.fetchval(
                "SELECT shop_id FROM back_in_stock_subscription WHERE sku = $1 AND customer_id = $2",
                sku,
                customer_id,
            )
            if shop is not None and not principal.may_act_for_shop(shop):
                raise HTTPException(404, detail=f"{customer_id!r} has no subscription to {sku!r}")
        decided, _ = await run(sku, Unsubscribe(sku=sku, customer_id=customer_id))
        if not decided:
            raise HTTPException(404, detail=f"{customer_id!r} has no subscription to {sku!r}")
        return Response(status_code=http_status.HTTP_204_NO_CONTENT)

    @router.get("/skus/{sku}/subscriptions", response_model=SkuSubscriptions)
    async def subscriptions(sku: SkuPath, principal: ReadsViews) -> SkuSubscriptions:
        async with pool.acquire() as conn:
            return (await _subscriptions(conn, sku)).as_seen_by(principal)

    @router.get("/notifications", response_model=list[NotificationView])
    async def notifications(
        principal: ReadsViews,
        order_id: Annotated[Identifier | None, Query()] = None,
        customer_id: Annotated[Identifier | None, Query()] = None,
        status: Annotated[DeliveryStatus | None, Query()] = None,
        kind: Annotated[NotificationKind | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        newest_first: Annotated[bool, Query()] = False,
    ) -> list[NotificationView]:
        """The delivery queue, oldest request first (or newest first), filtered by every parameter given."""
        # Only the filters given go into the statement, so that each shape gets a plan that uses its index
        # (per order, per customer, pending or failed ones) instead of one generic plan over the table.
        filters = {"order_id": order_id, "customer_id": customer_id, "status": status, "kind": kind}
        given = [(column, value) for column, value in filters.items() if value is not None]
        where = " AND ".join(f"{column} = ${n}" for n, (column, _) in enumerate(given, start=1))
        direction = "DESC" if newest_first else "ASC"
        rows = await pool.fetch(
            f"SELECT {_NOTIFICATION_COLUMNS} FROM notification_delivery"
            + (f" WHERE {where}" if where else "")
            + f" ORDER BY requested_at {direction}, notification_id {direction} LIMIT ${len(given) + 1}",
            *(value for _, value in given),
            limit,
        )
        return [_notification_view(r).as_seen_by(principal) for r in rows]

    @router.get(
        "/notifications/{notification_id}",
        response_model=NotificationView,
        responses={404: {"description": "No such notification"}},
    )
    async def notification(notification_id: IdPath, principal: ReadsViews) -> NotificationView:
        row = await pool.fetchrow(
            f"SELECT {_NOTIFICATION_COLUMNS} FROM notification_delivery WHERE notification_id = $1",
            notification_id,
        )
        if row is None:
            raise HTTPException(404, detail=f"unknown notification {notification_id!r}")
        return _notification_view(row).as_seen_by(principal)

    return router
