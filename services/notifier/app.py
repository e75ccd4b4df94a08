"""Wiring of the notifier service: settings, the consumed topics, the handler, routes and background jobs."""

from pathlib import Path

from fastapi import APIRouter

from backbone.consumer import Handler
from backbone.contracts import Topic
from backbone.runtime import Service, ServiceContext
from services.notifier import api, handlers, jobs, metrics
from services.notifier.domain import CONSUMED_EVENTS
from services.notifier.events import NOTIFIER_REGISTRY
from services.notifier.settings import NotifierSettings

__all__ = ["SERVICE", "NotifierSettings", "settings_of"]


def settings_of(ctx: ServiceContext) -> NotifierSettings:
    settings = ctx.settings
    if isinstance(settings, NotifierSettings):
        return settings
    # Run with the base settings (e.g. by a generic runner): the notifier's own come from the environment.
    return NotifierSettings(**settings.model_dump())


def make_handler(ctx: ServiceContext) -> Handler:
    return handlers.make_handler(ctx.store, str(settings_of(ctx).order_api_url))


def make_routes(ctx: ServiceContext) -> APIRouter:
    return api.make_router(ctx.pool, ctx.store)


async def deliver(ctx: ServiceContext) -> None:
    await jobs.DeliveryWorker(ctx.pool, ctx.store, settings_of(ctx), metrics=ctx.metrics).run()


async def announce(ctx: ServiceContext) -> None:
    await jobs.announcement_pass(ctx.pool, ctx.store, settings_of(ctx))


SERVICE = Service(
    name="notifier",
    settings_type=NotifierSettings,
    migrations=Path(__file__).parent / "migrations",
    # orders: contact details, cancellations requested, refunds; inventory: shortfalls, fills, units a
    # cancellation released, units shipped, stock added, SKU policies, substitutes and available units
    # (the substitutes offered); procurement: ETAs; supplier: goods
    # received (back in stock); fulfilment: shipments announced (tracking).
    consumes=[Topic.ORDERS, Topic.INVENTORY, Topic.PROCUREMENT, Topic.SUPPLIER, Topic.FULFILMENT],
    make_handler=make_handler,
    make_routes=make_routes,
    registry=NOTIFIER_REGISTRY,
    handles=CONSUMED_EVENTS,
    background=[deliver, announce],
    readings=metrics.readings,
)
