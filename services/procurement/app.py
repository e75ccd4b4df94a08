"""Wiring of the procurement service: settings, the consumed topics, the handler, the HTTP routes, the
daily re-plan of overdue purchase orders (scheduler.py), the replenishment review (review.py) and the
startup catch-up of sourcing (sourcing.py)."""

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from fastapi import APIRouter
from pydantic import Field

from backbone.consumer import Handler
from backbone.contracts import Topic
from backbone.contracts.events import contract_registry
from backbone.runtime import Service, ServiceContext
from backbone.settings import ServiceSettings
from services.procurement import (
    api,
    demand,
    handlers,
    metrics,
    replenishment_api,
    review,
    scheduler,
    sourcing,
)
from services.procurement.domain import CONSUMED_EVENTS
from services.procurement.events import PROCUREMENT_EVENTS
from services.procurement.handlers import Clock
from services.procurement.planning import DEFAULT_POLICY, PurchasePolicy

DEFAULT_CHECK_INTERVAL_SECONDS = 60.0


def utc_today() -> date:
    return datetime.now(UTC).date()


class ProcurementSettings(ServiceSettings):
    service_name: str = "procurement"
    alternate_min_days_sooner: int = Field(
        default=DEFAULT_POLICY.alternate_min_days_sooner,
        ge=0,
        le=365,
        description="ALTERNATE_MIN_DAYS_SOONER: an alternate supplier is chosen over the primary only if it"
        " arrives sooner by more than this many days",
    )
    alternate_max_cost_premium: Decimal = Field(
        default=DEFAULT_POLICY.alternate_max_cost_premium,
        ge=0,
        le=10,
        decimal_places=4,
        description="ALTERNATE_MAX_COST_PREMIUM: how much dearer per unit than the primary an alternate may"
        " be, as a fraction (0.10 = 10 %)",
    )
    enlarge_max_delay_days: int = Field(
        default=DEFAULT_POLICY.enlarge_max_delay_days,
        ge=0,
        le=365,
        description="ENLARGE_MAX_DELAY_DAYS: an open, unconfirmed PO is enlarged instead of issuing a new"
        " one only if that delays it by at most this many days (0: never delay promised lines)",
    )
    overdue_grace_days: int = Field(
        default=DEFAULT_POLICY.overdue_grace_days,
        ge=1,
        le=365,
        description="OVERDUE_GRACE_DAYS: the outstanding units of a PO whose expected date passed are"
        " expected this many days after the day it is found overdue (and again when that passes)",
    )
    overdue_check_interval_seconds: float = Field(
        default=DEFAULT_CHECK_INTERVAL_SECONDS,
        gt=0,
        le=3600,
        description="OVERDUE_CHECK_INTERVAL_SECONDS: how often the overdue re-plan looks whether a new day"
        " began (it runs at startup and once per day), and how often the replenishment review runs",
    )

    @property
    def policy(self) -> PurchasePolicy:
        return PurchasePolicy(
            alternate_min_days_sooner=self.alternate_min_days_sooner,
            alternate_max_cost_premium=self.alternate_max_cost_premium,
            enlarge_max_delay_days=self.enlarge_max_delay_days,
            overdue_grace_days=self.overdue_grace_days,
        )


def policy_of(ctx: ServiceContext) -> PurchasePolicy:
    settings = ctx.settings
    return settings.policy if isinstance(settings, ProcurementSettings) else DEFAULT_POLICY


def check_interval_of(ctx: ServiceContext) -> float:
    settings = ctx.settings
    if isinstance(settings, ProcurementSettings):
        return settings.overdue_check_interval_seconds
    return DEFAULT_CHECK_INTERVAL_SECONDS


REGISTRY = contract_registry(PROCUREMENT_EVENTS)


def build_service(clock: Clock = utc_today) -> Service:
    """The service; `clock` is replaceable so that tests can fix the day decisions are made on."""

    def make_handler(ctx: ServiceContext) -> Handler:
        return handlers.make_handler(ctx.store, policy_of(ctx), clock)

    def make_routes(ctx: ServiceContext) -> APIRouter:
        repository = handlers.new_repository(ctx.store)  # one cache for the commands and the views
        router = api.make_router(ctx.pool, repository, policy_of(ctx), clock)
        router.include_router(replenishment_api.make_router(ctx.pool, repository, policy_of(ctx), clock))
        return router

    async def replan_overdue(ctx: ServiceContext) -> None:
        await scheduler.run(
            ctx.pool,
            handlers.new_repository(ctx.store),
            clock=clock,
            policy=policy_of(ctx),
            check_interval_seconds=check_interval_of(ctx),
        )

    async def review_replenishment(ctx: ServiceContext) -> None:
        await review.run(
            ctx.pool,
            handlers.new_repository(ctx.store),
            clock=clock,
            policy=policy_of(ctx),
            check_interval_seconds=check_interval_of(ctx),
        )

    async def publish_sourcing(ctx: ServiceContext) -> None:
        await sourcing.run(ctx.pool, handlers.new_repository(ctx.store), clock=clock, policy=policy_of(ctx))

    return Service(
        name="procurement",
        settings_type=ProcurementSettings,
        migrations=Path(__file__).parent / "migrations",
        consumes=[Topic.INVENTORY, Topic.SUPPLIER],
        make_handler=make_handler,
        make_routes=make_routes,
        registry=REGISTRY,
        handles=(*CONSUMED_EVENTS, *demand.COUNTED_EVENTS),
        background=[replan_overdue, review_replenishment, publish_sourcing],
        readings=metrics.readings,
    )


SERVICE = build_service()
