"""Consumed events, API commands, the auto-cancel check -> order stream + read models, in one transaction.

Everything that changes an order goes through `apply`: backbone.decider locks the touched order streams,
loads them, decides each input with the domain in arrival order and appends all new events; the read
models are then updated from those streams in the same transaction. The domain's own events
(OrderPlaced, OrderCancelled, RefundRequested, FulfilmentRequested) go to the outbox and the relay
publishes them on the orders topic; the order service sees them echoed there and the domain ignores them.
A shipment's metadata (ShipmentDispatched) comes from the fulfilment topic, a re-sent one (same
shipment_id) dropped by the consumer loop's business keys before it gets here; its units (StockShipped,
per line) from the inventory topic. The domain joins them by shipment_id, in either order.

Inventory's SkuSubstitutesChanged concerns no order: its list is kept in `sku_substitutes`
(projections.record_substitutes), what a switch to a substitute is checked against.

A consumed event that contradicts the order raises UnexpectedEvent: the batch rolls back, the loop
re-applies it message by message and dead-letters the one that fails, with the reason.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from backbone.aggregate import StreamRepository
from backbone.consumer import Handler
from backbone.contracts import Envelope, EventPayload
from backbone.decider import Decided, Input, decide_and_append
from backbone.eventstore import EventStore
from services.order import projections
from services.order.domain import (
    Command,
    OrderState,
    due_for_auto_cancel,
    evolve,
    execute,
    initial_state,
    order_id_of,
    order_stream_id,
)


@dataclass(frozen=True, slots=True)
class AutoCancelCheck:
    """The scheduler asks whether the order's maximum wait is over at `now` (see due_for_auto_cancel)."""

    order_id: str
    now: datetime
    default_max_wait_days: int


Incoming = Command | EventPayload | AutoCancelCheck


def decide_incoming(state: OrderState, incoming: Incoming) -> list[EventPayload]:
    return execute_incoming(state, incoming)[1]


def execute_incoming(state: OrderState, incoming: Incoming) -> tuple[OrderState, list[EventPayload]]:
    if isinstance(incoming, AutoCancelCheck):
        command = due_for_auto_cancel(state, incoming.now, incoming.default_max_wait_days)
        return (state, []) if command is None else execute(state, command)
    return execute(state, incoming)


def new_repository(store: EventStore) -> StreamRepository[OrderState]:
    return StreamRepository(
        store, lambda stream: initial_state(projections.order_id_of_stream(stream)), evolve
    )


async def apply(
    conn: asyncpg.Connection,
    repository: StreamRepository[OrderState],
    inputs: Sequence[Input[Incoming]],
) -> list[Decided[OrderState]]:
    """Decide and append the inputs, update the read models; returns the streams that got events.
    Raises OrderError (nothing written) or ConcurrencyError (retry the transaction)."""
    before: dict[str, OrderState] = {}

    def execute_noting_state(state: OrderState, incoming: Incoming) -> tuple[OrderState, list[EventPayload]]:
        # decide_and_append decides a stream's first input on the state it loaded: the projections need
        # that state to read the times off the new events (projections.track).
        before.setdefault(state.order_id, state)
        return execute_incoming(state, incoming)

    decided = await decide_and_append(conn, repository, inputs, execute=execute_noting_state)
    await projections.update(
        conn,
        [projections.StreamChange(before[d.state.order_id], d.version, d.events) for d in decided],
    )
    return decided


def inputs_of(envelopes: Sequence[Envelope[Any]]) -> list[Input[Incoming]]:
    """The consumed events that concern an order, each as an input to its order's stream."""
    inputs: list[Input[Incoming]] = []
    for envelope in envelopes:
        order_id = order_id_of(envelope.payload)
        if order_id is not None:
            inputs.append(Input(order_stream_id(order_id), envelope.payload, cause=envelope))
    return inputs


def make_handler(store: EventStore) -> Handler:
    repository = new_repository(store)

    async def handle(conn: asyncpg.Connection, envelopes: Sequence[Envelope[Any]]) -> None:
        if inputs := inputs_of(envelopes):
            await apply(conn, repository, inputs)
        await projections.record_substitutes(conn, envelopes)

    return handle
