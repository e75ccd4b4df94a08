"""Wiring of the inventory service: settings, the consumed topics, the handler and the HTTP routes."""

from pathlib import Path

from fastapi import APIRouter
from pydantic import Field

from backbone.consumer import Handler
from backbone.contracts import Topic
from backbone.contracts.events import (
    GoodsReceived,
    OrderCancelled,
    OrderLineSubstituted,
    OrderPlaced,
    ReorderPolicyPlanned,
    ShipmentDispatched,
    SkuSourcingChanged,
    contract_registry,
)
from backbone.runtime import Service, ServiceContext
from backbone.settings import ServiceSettings
from services.inventory import api, handlers, metrics
from services.inventory.domain import UnknownSkuPolicy
from services.inventory.events import INVENTORY_EVENTS
from services.inventory.priority import PriorityMode, PriorityPolicy


class InventorySettings(ServiceSettings):
    service_name: str = "inventory"
    priority_mode: PriorityMode = "first_come_first_served"  # PRIORITY_MODE: who gets received stock first
    unknown_sku_policy: UnknownSkuPolicy = Field(  # UNKNOWN_SKU_POLICY
        default="reject",
        description="An order line for a SKU never stocked, with no policy and no supplier: reject it "
        "(StockShort rejected, 'unknown SKU: ...') or backorder it like any other",
    )

    @property
    def priority(self) -> PriorityPolicy:
        return PriorityPolicy(mode=self.priority_mode)


def priority_of(ctx: ServiceContext) -> PriorityPolicy:
    settings = ctx.settings
    return settings.priority if isinstance(settings, InventorySettings) else PriorityPolicy()


def unknown_sku_policy_of(ctx: ServiceContext) -> UnknownSkuPolicy:
    settings = ctx.settings
    return settings.unknown_sku_policy if isinstance(settings, InventorySettings) else "reject"


def make_handler(ctx: ServiceContext) -> Handler:
    return handlers.make_handler(ctx.store, priority_of(ctx), unknown_sku_policy_of(ctx))


def make_routes(ctx: ServiceContext) -> APIRouter:
    return api.make_router(ctx.pool, ctx.store, priority_of(ctx), unknown_sku_policy_of(ctx))


SERVICE = Service(
    name="inventory",
    settings_type=InventorySettings,
    migrations=Path(__file__).parent / "migrations",
    consumes=[Topic.ORDERS, Topic.SUPPLIER, Topic.FULFILMENT, Topic.PROCUREMENT],
    make_handler=make_handler,
    make_routes=make_routes,
    registry=contract_registry(INVENTORY_EVENTS),
    # See handlers.commands_of; of the procurement topic only SkuSourcingChanged and ReorderPolicyPlanned.
    handles=(
        OrderPlaced,
        OrderCancelled,
        OrderLineSubstituted,
        GoodsReceived,
        ShipmentDispatched,
        SkuSourcingChanged,
        ReorderPolicyPlanned,
    ),
    readings=metrics.readings,
)
