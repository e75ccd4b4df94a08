"""Consumed events and admin commands -> the SKU's procurement stream -> read models, in one transaction.

Every batch first adds its reservations, shortfalls and releases to the demand ledger (demand.py).
Every input names its SKU, and each SKU is one stream (`sku:<sku>`): `decide_and_append` locks the
touched streams, decides each input on the state its predecessors left, appends everything at once,
and the read models are then written from the resulting states. Inputs that are none of procurement's
business (reservations, shortfalls, stock adjustments, the retired whole-queue snapshots of contract
1.x, ...) are dropped before any stream is loaded. A consumed event reaches the domain with its message
ids (domain.Origin): inventory's StockLevelChanged names, as its causation, the receipt it counted.
A ProcurementConflict raised by the domain rolls the batch back; the consumer loop re-applies it message
by message and dead-letters the one that fails, with the reason.
"""

from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

import asyncpg

from backbone.aggregate import StreamRepository, code_shape
from backbone.consumer import Handler
from backbone.contracts import Envelope, EventPayload
from backbone.decider import Decided, Input, decide_and_append
from backbone.eventstore import EventStore
from backbone.ranked import RankedMap
from services.procurement import demand, domain, eta, events, forecast, projections, queue, replenishment
from services.procurement.domain import (
    CONSUMED_EVENTS,
    Incoming,
    Origin,
    ProcurementState,
    decide_and_fold,
    evolve,
    initial_state,
)
from services.procurement.planning import PurchasePolicy

Clock = Callable[[], date]  # the day a decision is made on (purchase dates and ETAs count from it)


# The code that holds and folds a SKU's state: a change to any of it makes older snapshots stale.
STATE_SHAPE = code_shape(domain, queue, eta, events, forecast, replenishment, RankedMap)


def new_repository(store: EventStore) -> StreamRepository[ProcurementState]:
    return StreamRepository(
        store, lambda stream: initial_state(projections.sku_of(stream)), evolve, shape=STATE_SHAPE
    )


def concerns_procurement(payload: EventPayload) -> bool:
    """Whether a consumed event can change a SKU's procurement (cheap: no stream is loaded for the rest).
    A BackorderQueueChanged of contract 1.x decodes as BackorderQueueSnapshotV1, which is none of them."""
    return isinstance(payload, CONSUMED_EVENTS)


async def apply(
    conn: asyncpg.Connection,
    repository: StreamRepository[ProcurementState],
    inputs: Sequence[Input[Incoming | Envelope[Any]]],
    *,
    today: date,
    policy: PurchasePolicy,
) -> list[Decided[ProcurementState]]:
    """Decide and append the inputs (commands, or consumed envelopes: the domain is told their ids),
    then update the read models of the streams that got events."""

    def execute(
        state: ProcurementState, message: Incoming | Envelope[Any]
    ) -> tuple[ProcurementState, list[EventPayload]]:
        if isinstance(message, Envelope):
            origin = Origin(str(message.event_id), message.causation_id)
            return decide_and_fold(state, message.payload, today=today, policy=policy, origin=origin)
        return decide_and_fold(state, message, today=today, policy=policy)

    decided = await decide_and_append(conn, repository, inputs, execute=execute)
    await projections.update(conn, [projections.SkuChange.of(d) for d in decided])
    return decided


def make_handler(store: EventStore, policy: PurchasePolicy, clock: Clock) -> Handler:
    repository = new_repository(store)

    async def handle(conn: asyncpg.Connection, envelopes: Sequence[Envelope[Any]]) -> None:
        await demand.record(conn, envelopes)
        inputs: list[Input[Incoming | Envelope[Any]]] = [
            Input(projections.stream_id(e.payload.sku), e, cause=e)
            for e in envelopes
            if concerns_procurement(e.payload)
        ]
        if inputs:
            await apply(conn, repository, inputs, today=clock(), policy=policy)

    return handle
