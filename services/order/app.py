"""Wiring of the order service: settings, the consumed topics, the handler, the HTTP routes, the scheduler."""

from pathlib import Path

from fastapi import APIRouter
from pydantic import Field

from backbone.consumer import Handler
from backbone.contracts import Topic
from backbone.contracts.events import SkuSubstitutesChanged
from backbone.runtime import Service, ServiceContext
from backbone.settings import ServiceSettings
from services.order import api, handlers, scheduler
from services.order.domain import CONSUMED_EVENTS
from services.order.events import ORDER_REGISTRY


class OrderSettings(ServiceSettings):
    service_name: str = "order"
    default_max_wait_days: int = Field(
        default=30,
        gt=0,
        le=365,
        description="DEFAULT_MAX_WAIT_DAYS: backorders of orders without their own "
        "max_wait_days are cancelled this many days after placement (refunded once inventory confirms)",
    )
    auto_cancel_interval_seconds: float = Field(
        default=2.0,
        gt=0,
        le=3600,
        description="AUTO_CANCEL_INTERVAL_SECONDS: how often overdue orders are looked for",
    )


def order_settings(ctx: ServiceContext) -> OrderSettings:
    settings = ctx.settings
    if isinstance(settings, OrderSettings):
        return settings
    return OrderSettings(**settings.model_dump())  # plain ServiceSettings: the order defaults apply


def make_handler(ctx: ServiceContext) -> Handler:
    return handlers.make_handler(ctx.store)


def make_routes(ctx: ServiceContext) -> APIRouter:
    return api.make_router(ctx.pool, ctx.store, order_settings(ctx).default_max_wait_days)


async def auto_cancel(ctx: ServiceContext) -> None:
    settings = order_settings(ctx)
    await scheduler.run(
        ctx.pool,
        handlers.new_repository(ctx.store),
        interval_seconds=settings.auto_cancel_interval_seconds,
        default_max_wait_days=settings.default_max_wait_days,
    )


SERVICE = Service(
    name="order",
    settings_type=OrderSettings,
    migrations=Path(__file__).parent / "migrations",
    consumes=[Topic.ORDERS, Topic.INVENTORY, Topic.PROCUREMENT, Topic.FULFILMENT],
    make_handler=make_handler,
    make_routes=make_routes,
    registry=ORDER_REGISTRY,
    handles=(*CONSUMED_EVENTS, SkuSubstitutesChanged),  # the latter for projections.record_substitutes
    background=[auto_cancel],
)
