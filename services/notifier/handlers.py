"""Consumed events -> the notifier's order and SKU streams -> one append + projections, in the loop's
transaction.

An event about an order's customer (`order_id_of`: OrderPlaced, OrderCancelled, RefundRequested,
StockShort, BackorderFulfilled, StockReleased, BackorderEtaUpdated, ShipmentDispatched, StockShipped) goes
to its order stream; one that can matter to back-in-stock subscribers (`sku_of`: SkuPolicyChanged,
GoodsReceived, StockAdjusted with units added) to its SKU stream; anything else on the consumed topics is
not the notifier's business. The domain takes the envelope itself, since some changes are named by the
causing event's id and time.

Before deciding, the batch's inventory events update the substitutes and available units the notifier
keeps (projections.record_stock); a backordered message is then decided with the substitutes in stock
of the SKUs the batch's order events name (one query per batch, projections.catalogue).

Every NotificationRequested lands in the delivery queue in this same transaction (projections), so a
notification is queued exactly when its decision commits. Order streams are locked before SKU streams,
in every writer, so two transactions never wait on each other in a cycle.
"""

from collections.abc import Sequence
from typing import Any

import asyncpg

from backbone.aggregate import StreamRepository
from backbone.consumer import Handler
from backbone.contracts import Envelope
from backbone.contracts.events import OrderCancelled, OrderPlaced, ShipmentDispatched
from backbone.decider import Decided, Input, decide_and_append
from backbone.eventstore import EventStore
from services.notifier import projections
from services.notifier.domain import (
    DeliveryState,
    OrderFacts,
    SkuWatch,
    decide_sku,
    delivery_stream_id,
    evolve_delivery,
    evolve_order,
    evolve_sku,
    execute_order,
    initial_delivery,
    initial_order_facts,
    initial_sku_watch,
    order_id_of,
    order_stream_id,
    sku_of,
    sku_stream_id,
)

_DELIVERY_STREAM_PREFIX = delivery_stream_id("")


def order_repository(store: EventStore) -> StreamRepository[OrderFacts]:
    prefix = projections.ORDER_STREAM_PREFIX
    return StreamRepository(
        store, lambda stream: initial_order_facts(stream.removeprefix(prefix)), evolve_order
    )


def sku_repository(store: EventStore) -> StreamRepository[SkuWatch]:
    prefix = projections.SKU_STREAM_PREFIX
    return StreamRepository(store, lambda stream: initial_sku_watch(stream.removeprefix(prefix)), evolve_sku)


def delivery_repository(store: EventStore) -> StreamRepository[DeliveryState]:
    prefix = _DELIVERY_STREAM_PREFIX
    return StreamRepository(
        store, lambda stream: initial_delivery(stream.removeprefix(prefix)), evolve_delivery
    )


def skus_named(payload: object) -> list[str]:
    """The SKUs an order event is about: the backordered messages it may decide are of those lines."""
    if isinstance(payload, OrderPlaced | OrderCancelled | ShipmentDispatched):
        return [line.sku for line in payload.lines]
    sku = getattr(payload, "sku", None)
    return [sku] if isinstance(sku, str) else []


def make_handler(store: EventStore, order_api_url: str = "") -> Handler:
    orders, skus = order_repository(store), sku_repository(store)

    async def handle(conn: asyncpg.Connection, envelopes: Sequence[Envelope[Any]]) -> None:
        await projections.record_stock(conn, envelopes)
        order_inputs = [
            Input(order_stream_id(order_id), e, cause=e)
            for e in envelopes
            if (order_id := order_id_of(e.payload)) is not None
        ]
        sku_inputs = [
            Input(sku_stream_id(sku), e, cause=e) for e in envelopes if (sku := sku_of(e.payload)) is not None
        ]
        decided: list[Decided[Any]] = []
        if order_inputs:
            named = [sku for i in order_inputs for sku in skus_named(i.message.payload)]
            offers = await projections.catalogue(conn, named, order_api_url)

            def execute(state: OrderFacts, envelope: Envelope[Any]) -> tuple[OrderFacts, list[Any]]:
                return execute_order(state, envelope, offers)

            decided += await decide_and_append(conn, orders, order_inputs, execute=execute)
        if sku_inputs:
            decided += await decide_and_append(conn, skus, sku_inputs, decide=decide_sku)
        await projections.apply(conn, decided)

    return handle
