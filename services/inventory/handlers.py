"""Consumed events -> SKU commands -> one append for the batch + projections, in the loop's transaction.

OrderPlaced reserves each line, OrderCancelled cancels lines (the envelope's event id names the
cancellation), GoodsReceived receives goods; other events of the consumed topics are not ours.

Concurrency: orders are keyed by order id, so two instances (or the admin API) may work on the same
SKU at once. Each transaction first takes a transaction-scoped advisory lock per touched SKU (in one
global order, so no deadlock); writers of one SKU then queue behind each other instead of failing.
The event store's optimistic concurrency stays the guard that makes overselling impossible: a stale
version raises ConcurrencyError, the transaction rolls back and is retried. A StockConflict raised by
the domain rolls the batch back too; the loop re-applies it message by message and dead-letters the
one that fails, with the reason.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from backbone.aggregate import StreamRepository
from backbone.consumer import Handler
from backbone.contracts import Envelope, new_envelope
from backbone.contracts.events import GoodsReceived, OrderCancelled, OrderPlaced
from backbone.decider import lock_streams
from backbone.eventstore import EventStore, StreamAppend
from services.inventory import projections
from services.inventory.domain import (
    Command,
    SkuState,
    cancel_line_commands,
    evolve,
    execute,
    initial_state,
    receive_goods_command,
    reserve_line_commands,
)
from services.inventory.priority import PriorityPolicy


@dataclass(frozen=True, slots=True)
class Work:
    """A command and what its events are an effect of (the consumed event, or an API request's id)."""

    command: Command
    cause: Envelope[Any] | None = None
    correlation_id: str | None = None

    def wrap(self, payload: Any) -> Envelope[Any]:
        return new_envelope(payload, cause=self.cause, correlation_id=self.correlation_id)


def new_repository(store: EventStore) -> StreamRepository[SkuState]:
    return StreamRepository(store, lambda stream: initial_state(stream.removeprefix("sku:")), evolve)


async def apply_commands(
    conn: asyncpg.Connection,
    repository: StreamRepository[SkuState],
    store: EventStore,
    priority: PriorityPolicy,
    work: Sequence[Work],
) -> dict[str, list[Envelope[Any]]]:
    """Run the commands in order against their SKUs, append all events at once, update the read models.
    Returns the new events per SKU. Raises InventoryError (nothing written) or ConcurrencyError."""
    by_sku: dict[str, list[Work]] = {}
    for w in work:
        by_sku.setdefault(w.command.sku, []).append(w)
    await lock_streams(conn, list(by_sku))
    appends: list[StreamAppend] = []
    touched: list[projections.SkuVersion] = []
    allocations: list[projections.Allocation] = []
    emitted: dict[str, list[Envelope[Any]]] = {}
    for sku, items in by_sku.items():
        loaded = await repository.load(conn, projections.stream_id(sku))
        state, events = loaded.state, []
        for w in items:
            state, payloads = execute(state, w.command, priority)
            events.extend(w.wrap(p) for p in payloads)
        if not events:
            continue
        advanced, append = repository.advance(loaded, events)
        appends.append(append)
        touched.append(projections.SkuVersion(advanced.state, advanced.version))
        for version, e in enumerate(events, start=loaded.version + 1):
            if (row := projections.allocation(e, version)) is not None:
                allocations.append(row)
        emitted[sku] = events
    await store.append_many(conn, appends)
    await projections.update(conn, touched, allocations, priority)
    return emitted


def commands_of(envelope: Envelope[Any]) -> list[Command]:
    match envelope.payload:
        case OrderPlaced() as order:
            return list(reserve_line_commands(order))
        case OrderCancelled() as cancellation:
            return list(cancel_line_commands(cancellation, str(envelope.event_id)))
        case GoodsReceived() as receipt:
            return [receive_goods_command(receipt)]
        case _:
            return []


def make_handler(store: EventStore, priority: PriorityPolicy) -> Handler:
    repository = new_repository(store)

    async def handle(conn: asyncpg.Connection, envelopes: Sequence[Envelope[Any]]) -> None:
        work = [Work(command, cause=e) for e in envelopes for command in commands_of(e)]
        if work:
            await apply_commands(conn, repository, store, priority, work)

    return handle
