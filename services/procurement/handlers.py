"""Consumed events and admin commands -> the SKU's procurement stream -> read models, in one transaction.

Every input names its SKU, and each SKU is one stream (`sku:<sku>`): `decide_and_append` locks the
touched streams, decides each input on the state its predecessors left, appends everything at once,
and the read models are then written from the resulting states. Inputs that are none of procurement's
business (reservations, stock adjustments, rejected shortfalls, ...) are dropped before any stream is
loaded. A ProcurementConflict raised by the domain rolls the batch back; the consumer loop re-applies
it message by message and dead-letters the one that fails, with the reason.
"""

from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

import asyncpg

from backbone.aggregate import StreamRepository
from backbone.consumer import Handler
from backbone.contracts import Envelope, EventPayload
from backbone.contracts.events import StockShort
from backbone.decider import Decided, Input, decide_and_append
from backbone.eventstore import EventStore
from services.procurement import projections
from services.procurement.domain import (
    CONSUMED_EVENTS,
    Incoming,
    ProcurementState,
    decide,
    evolve,
    initial_state,
)
from services.procurement.planning import PurchasePolicy

Clock = Callable[[], date]  # the day a decision is made on (purchase dates and ETAs count from it)


def new_repository(store: EventStore) -> StreamRepository[ProcurementState]:
    return StreamRepository(store, lambda stream: initial_state(projections.sku_of(stream)), evolve)


def concerns_procurement(payload: EventPayload) -> bool:
    """Whether a consumed event can change a SKU's procurement (cheap: no stream is loaded for the rest)."""
    if isinstance(payload, StockShort):
        return payload.disposition == "backordered"
    return isinstance(payload, CONSUMED_EVENTS)


async def apply(
    conn: asyncpg.Connection,
    store: EventStore,
    repository: StreamRepository[ProcurementState],
    inputs: Sequence[Input[Incoming]],
    *,
    today: date,
    policy: PurchasePolicy,
) -> list[Decided[ProcurementState]]:
    """Decide and append the inputs, then update the read models of the streams that got events."""

    def decide_on(state: ProcurementState, incoming: Incoming) -> list[EventPayload]:
        return decide(state, incoming, today=today, policy=policy)

    decided = await decide_and_append(conn, store, repository, decide_on, inputs)
    await projections.update(conn, [projections.SkuChange.of(d) for d in decided])
    return decided


def make_handler(store: EventStore, policy: PurchasePolicy, clock: Clock) -> Handler:
    repository = new_repository(store)

    async def handle(conn: asyncpg.Connection, envelopes: Sequence[Envelope[Any]]) -> None:
        inputs = [
            Input(projections.stream_id(e.payload.sku), e.payload, cause=e)
            for e in envelopes
            if concerns_procurement(e.payload)
        ]
        if inputs:
            await apply(conn, store, repository, inputs, today=clock(), policy=policy)

    return handle
