"""Consumed events -> SKU commands -> one append for the batch + projections, in the loop's transaction.

OrderPlaced reserves each line, OrderCancelled cancels lines (its cancellation_id, else the envelope's
event id, names the cancellation), GoodsReceived receives goods, ShipmentDispatched ships each line from
its reservation, SkuSourcingChanged records whether the SKU has a supplier, ReorderPolicyPlanned sets
the reorder point and safety stock procurement's auto mode planned (SkuPolicyChanged, actor
procurement:auto), OrderLineSubstituted gives up the replaced line's waiting units and then reserves
the new line, told what was given up (so a batch with substitutions is decided in phases, one more per
substitution, under locks taken for all of its SKUs at the start); other events of the consumed topics
are not ours. A re-sent fact (same business key) never reaches here: the consumer loop drops it
(backbone.business_keys).

Concurrency: orders are keyed by order id, so two instances (or the admin API) may work on the same
SKU at once. The shared decider runner (backbone.decider) locks each touched SKU for the transaction (in
one global order, so no deadlock); writers of one SKU then queue behind each other instead of failing.
The event store's optimistic concurrency stays the guard that makes overselling impossible: a stale
version raises ConcurrencyError, the transaction rolls back and is retried. A StockConflict raised by
the domain (e.g. a shipment of more than a line holds reserved) rolls the batch back too; the loop
re-applies it message by message and dead-letters the one that fails, with the reason. So a shipment's
lines are applied together or not at all.
"""

from collections.abc import Sequence
from typing import Any

import asyncpg

from backbone.aggregate import StreamRepository
from backbone.consumer import Handler
from backbone.contracts import Envelope, EventPayload
from backbone.contracts.events import (
    BackorderQueueChanged,
    GoodsReceived,
    OrderCancelled,
    OrderLineSubstituted,
    OrderPlaced,
    ReorderPolicyPlanned,
    ShipmentDispatched,
    SkuSourcingChanged,
)
from backbone.decider import Input, decide_and_append, lock_streams
from backbone.eventstore import EventStore
from services.inventory import projections
from services.inventory.domain import (
    Command,
    SkuState,
    UnknownSkuPolicy,
    apply_reorder_levels_command,
    cancel_line_commands,
    evolve,
    execute,
    give_up_waiting_command,
    initial_state,
    receive_goods_command,
    record_sourcing_command,
    reserve_line_commands,
    reserve_substitute_command,
    ship_line_commands,
    units_given_up,
)
from services.inventory.priority import PriorityPolicy


def work_for(
    command: Command, *, cause: Envelope[Any] | None = None, correlation_id: str | None = None
) -> Input[Command]:
    """A command for its SKU's stream, and what its events are an effect of (an event or a request)."""
    return Input(projections.stream_id(command.sku), command, cause, correlation_id)


def new_repository(store: EventStore) -> StreamRepository[SkuState]:
    return StreamRepository(store, lambda stream: initial_state(stream.removeprefix("sku:")), evolve)


async def apply_commands(
    conn: asyncpg.Connection,
    repository: StreamRepository[SkuState],
    priority: PriorityPolicy,
    work: Sequence[Input[Command]],
    unknown_sku: UnknownSkuPolicy = "reject",
) -> dict[str, list[Envelope[Any]]]:
    """Run the commands in order against their SKUs, append all events at once, update the read models.
    Returns the new events per SKU. Raises InventoryError (nothing written) or ConcurrencyError."""

    def run(state: SkuState, command: Command) -> tuple[SkuState, list[EventPayload]]:
        return execute(state, command, priority, unknown_sku)

    decided = await decide_and_append(conn, repository, work, execute=run)
    allocations: list[projections.Allocation] = []
    queue: list[projections.QueueRow] = []
    for d in decided:
        for version, e in enumerate(d.events, start=d.first_version):
            if (row := projections.allocation(e, version)) is not None:
                allocations.append(row)
            if isinstance(e.payload, BackorderQueueChanged):
                queue.append(projections.QueueRow.of(e.payload))
    touched = [projections.SkuVersion(d.state, d.version) for d in decided]
    await projections.update(conn, touched, allocations, queue)
    return {projections.sku_of(d.stream_id): list(d.events) for d in decided}


def commands_of(envelope: Envelope[Any]) -> list[Command]:
    match envelope.payload:
        case OrderPlaced() as order:
            return list(reserve_line_commands(order))
        case OrderCancelled() as cancellation:
            return list(
                cancel_line_commands(cancellation, cancellation.cancellation_id or str(envelope.event_id))
            )
        case GoodsReceived() as receipt:
            return [receive_goods_command(receipt)]
        case ShipmentDispatched() as shipment:
            return list(ship_line_commands(shipment))
        case SkuSourcingChanged() as sourcing:
            return [record_sourcing_command(sourcing)]
        case ReorderPolicyPlanned() as plan:
            return [apply_reorder_levels_command(plan)]
        case OrderLineSubstituted() as substitution:
            return [give_up_waiting_command(substitution)]  # then the new line: apply_substitutions
        case _:
            return []


def make_handler(
    store: EventStore, priority: PriorityPolicy, unknown_sku: UnknownSkuPolicy = "reject"
) -> Handler:
    repository = new_repository(store)

    async def handle(conn: asyncpg.Connection, envelopes: Sequence[Envelope[Any]]) -> None:
        if any(isinstance(e.payload, OrderLineSubstituted) for e in envelopes):
            await apply_substitutions(conn, repository, priority, envelopes, unknown_sku)
            return
        work = [work_for(command, cause=e) for e in envelopes for command in commands_of(e)]
        if work:
            await apply_commands(conn, repository, priority, work, unknown_sku)

    return handle


async def apply_substitutions(
    conn: asyncpg.Connection,
    repository: StreamRepository[SkuState],
    priority: PriorityPolicy,
    envelopes: Sequence[Envelope[Any]],
    unknown_sku: UnknownSkuPolicy = "reject",
) -> None:
    """A batch with substitutions, in arrival order: everything up to a substitution's give-up is decided,
    then its new line (told what was given up) opens the next phase. Every SKU of the batch is locked
    first, in one global order, so the later phases take no lock another writer could hold."""
    names = {work_for(c).stream_id for e in envelopes for c in commands_of(e)}
    names |= {
        projections.stream_id(e.payload.line.sku)
        for e in envelopes
        if isinstance(e.payload, OrderLineSubstituted)
    }
    await lock_streams(conn, sorted(names))
    work: list[Input[Command]] = []
    for envelope in envelopes:
        work += [work_for(command, cause=envelope) for command in commands_of(envelope)]
        if isinstance(substitution := envelope.payload, OrderLineSubstituted):
            decided = await apply_commands(conn, repository, priority, work, unknown_sku)
            replaced = [e.payload for e in decided.get(substitution.replaced.sku, [])]
            given_up = units_given_up(substitution, replaced)
            work = [work_for(reserve_substitute_command(substitution, given_up), cause=envelope)]
    if work:
        await apply_commands(conn, repository, priority, work, unknown_sku)
