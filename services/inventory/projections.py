"""Read models of the inventory (tables in migrations/001_inventory.sql), derived from the event log.

- `stock` and `backorder_queue` are upserted from the new SkuState of every SKU a transaction touched:
  the state is already folded (the decider needs it), it is authoritative, and writing it whole is one
  set-based statement per table whatever events led there, so the read model cannot drift from it.
- `allocation_audit` is appended from the allocating events themselves (StockReserved at placement,
  BackorderFulfilled later), since it is history rather than state.

`rebuild(conn)` truncates them and re-derives them from the log; it must give the same rows.
"""

from collections.abc import Sequence
from dataclasses import astuple, dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from backbone.contracts import Envelope
from backbone.contracts.events import BackorderFulfilled, StockReserved
from backbone.db import columns
from backbone.eventstore import EventStore
from services.inventory.domain import SkuState, allocation_order, evolve, initial_state
from services.inventory.priority import PriorityPolicy

STREAM_PREFIX = "sku:"
RESERVED_AT_PLACEMENT = "reserved at placement from stock on hand"


def stream_id(sku: str) -> str:
    return f"{STREAM_PREFIX}{sku}"


@dataclass(frozen=True, slots=True)
class SkuVersion:
    state: SkuState
    version: int  # of the SKU's stream


@dataclass(frozen=True, slots=True)
class Allocation:
    sku: str
    version: int
    event_id: UUID
    order_id: str
    line_id: str
    quantity: int
    source: str
    priority_reason: str
    at: datetime


def allocation(envelope: Envelope[Any], version: int) -> Allocation | None:
    """The audit row of an event stored at `version` of its SKU stream, if it allocates stock."""
    e = envelope.payload
    match e:
        case StockReserved():
            source, reason = f"order {e.order_id}", RESERVED_AT_PLACEMENT
        case BackorderFulfilled():
            source, reason = e.source, e.priority_reason
        case _:
            return None
    event_id, at = envelope.event_id, envelope.occurred_at
    return Allocation(e.sku, version, event_id, e.order_id, e.line_id, e.quantity, source, reason, at)


_UPSERT_STOCK = """
INSERT INTO stock (sku, version, on_hand, reserved, available, backordered,
                   backorder_policy, backorder_cap, reorder_point, safety_stock)
SELECT * FROM unnest($1::text[], $2::int[], $3::int[], $4::int[], $5::int[], $6::int[],
                     $7::text[], $8::int[], $9::int[], $10::int[])
ON CONFLICT (sku) DO UPDATE SET
    version = excluded.version, on_hand = excluded.on_hand, reserved = excluded.reserved,
    available = excluded.available, backordered = excluded.backordered,
    backorder_policy = excluded.backorder_policy, backorder_cap = excluded.backorder_cap,
    reorder_point = excluded.reorder_point, safety_stock = excluded.safety_stock
WHERE stock.version < excluded.version
"""

_INSERT_QUEUE = """
INSERT INTO backorder_queue (sku, position, order_id, line_id, quantity)
SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::int[])
"""

_INSERT_AUDIT = """
INSERT INTO allocation_audit (sku, version, event_id, order_id, line_id, quantity, source,
                              priority_reason, at)
SELECT * FROM unnest($1::text[], $2::int[], $3::uuid[], $4::text[], $5::text[], $6::int[],
                     $7::text[], $8::text[], $9::timestamptz[])
ON CONFLICT DO NOTHING
"""


async def update(
    conn: asyncpg.Connection,
    skus: Sequence[SkuVersion],
    allocations: Sequence[Allocation],
    priority: PriorityPolicy,
) -> None:
    """Write the given SKUs' states and the new allocations (in the caller's transaction)."""
    if skus:
        stock = [
            (
                s.state.sku,
                s.version,
                s.state.on_hand,
                s.state.reserved,
                s.state.available,
                s.state.backordered,
                s.state.settings.backorder_policy,
                s.state.settings.backorder_cap,
                s.state.settings.reorder_point,
                s.state.settings.safety_stock,
            )
            for s in skus
        ]
        queue = [
            (s.state.sku, position, e.order_id, e.line_id, e.remaining)
            for s in skus
            for position, e in enumerate(allocation_order(s.state, priority), start=1)
        ]
        await conn.execute(_UPSERT_STOCK, *columns(stock, 10))
        await conn.execute(
            "DELETE FROM backorder_queue WHERE sku = ANY($1::text[])",
            [s.state.sku for s in skus],
        )
        if queue:
            await conn.execute(_INSERT_QUEUE, *columns(queue, 5))
    if allocations:
        await conn.execute(_INSERT_AUDIT, *columns(map(astuple, allocations), 9))


async def rebuild(
    conn: asyncpg.Connection, store: EventStore, priority: PriorityPolicy, page_size: int = 1000
) -> int:
    """Truncate the read models and re-derive them from the whole log; returns the SKUs rebuilt.

    Run it in a transaction: TRUNCATE locks the tables first, so a live writer waits and then upserts
    its (newer) state over the rebuilt one.
    """
    await conn.execute("TRUNCATE stock, backorder_queue, allocation_audit")
    skus: dict[str, SkuVersion] = {}
    position = 0
    while page := await store.read_all(conn, after_position=position, limit=page_size):
        position = page[-1].global_position
        allocations = []
        for stored in page:
            if not stored.stream_id.startswith(STREAM_PREFIX):
                continue
            sku = stored.stream_id.removeprefix(STREAM_PREFIX)
            state = skus[sku].state if sku in skus else initial_state(sku)
            skus[sku] = SkuVersion(evolve(state, stored.envelope.payload), stored.stream_version)
            if (row := allocation(stored.envelope, stored.stream_version)) is not None:
                allocations.append(row)
        await update(conn, [], allocations, priority)
    await update(conn, list(skus.values()), [], priority)
    return len(skus)
