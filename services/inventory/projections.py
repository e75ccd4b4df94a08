"""Read models of the inventory (tables in migrations/001_inventory.sql), derived from the event log.

- `stock` is upserted from the new SkuState of every SKU a transaction touched (one row per SKU): the
  state is already folded (the decider needs it) and authoritative. It includes whether the SKU is
  known and sourced (migrations/004), and its substitutes (migrations/007).
- `backorder_queue` changes by the lines that changed: each BackorderQueueChanged inserts, shrinks or
  deletes its line's row, so the cost follows the change, not the queue's length. Rows carry the rank;
  positions are numbered when read.
- `allocation_audit` is appended from the allocating events themselves (StockReserved at placement,
  BackorderFulfilled later), since it is history rather than state.

`rebuild(conn)` truncates them and re-derives them from the log; it must give the same rows.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from backbone.contracts import Envelope
from backbone.contracts.events import BackorderFulfilled, BackorderQueueChanged, StockReserved
from backbone.db import columns, row_of
from backbone.eventstore import EventStore
from services.inventory.domain import SkuState, evolve, initial_state

STREAM_PREFIX = "sku:"
RESERVED_AT_PLACEMENT = "reserved at placement from stock on hand"


def stream_id(sku: str) -> str:
    return f"{STREAM_PREFIX}{sku}"


def sku_of(stream: str) -> str:
    return stream.removeprefix(STREAM_PREFIX)


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


@dataclass(frozen=True, slots=True)
class QueueRow:
    sku: str
    order_id: str
    line_id: str
    quantity: int  # 0: the line left the queue
    priority_score: Decimal
    placed_at: datetime
    sequence: int

    @classmethod
    def of(cls, e: BackorderQueueChanged) -> "QueueRow":
        return cls(e.sku, e.order_id, e.line_id, e.remaining, e.priority_score, e.placed_at, e.sequence)


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
INSERT INTO stock (sku, version, on_hand, reserved, available, backordered, backorder_policy,
                   backorder_cap, reorder_point, safety_stock, waiting_lines, known, sourced, substitutes)
SELECT sku, version, on_hand, reserved, available, backordered, backorder_policy, backorder_cap,
       reorder_point, safety_stock, waiting_lines, known, sourced,
       -- a text[][] cannot be unnested row by row: each row's list travels as one JSON array
       ARRAY(SELECT jsonb_array_elements_text(substitutes))
FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
            $7::text[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bool[],
            $13::bool[], $14::jsonb[])
     AS r(sku, version, on_hand, reserved, available, backordered, backorder_policy, backorder_cap,
          reorder_point, safety_stock, waiting_lines, known, sourced, substitutes)
ON CONFLICT (sku) DO UPDATE SET
    version = excluded.version, on_hand = excluded.on_hand, reserved = excluded.reserved,
    available = excluded.available, backordered = excluded.backordered,
    backorder_policy = excluded.backorder_policy, backorder_cap = excluded.backorder_cap,
    reorder_point = excluded.reorder_point, safety_stock = excluded.safety_stock,
    waiting_lines = excluded.waiting_lines, known = excluded.known, sourced = excluded.sourced,
    substitutes = excluded.substitutes
WHERE stock.version < excluded.version
"""

_UPSERT_QUEUE = """
INSERT INTO backorder_queue (sku, order_id, line_id, quantity, priority_score, placed_at, sequence)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::numeric[], $6::timestamptz[],
                     $7::bigint[])
ON CONFLICT (sku, order_id, line_id) DO UPDATE SET quantity = excluded.quantity
"""

_DELETE_QUEUE = """
DELETE FROM backorder_queue q USING unnest($1::text[], $2::text[], $3::text[]) AS d(sku, order_id, line_id)
WHERE q.sku = d.sku AND q.order_id = d.order_id AND q.line_id = d.line_id
"""

_INSERT_AUDIT = """
INSERT INTO allocation_audit (sku, version, event_id, order_id, line_id, quantity, source,
                              priority_reason, at)
SELECT * FROM unnest($1::text[], $2::int[], $3::uuid[], $4::text[], $5::text[], $6::bigint[],
                     $7::text[], $8::text[], $9::timestamptz[])
ON CONFLICT DO NOTHING
"""


async def update(
    conn: asyncpg.Connection,
    skus: Sequence[SkuVersion],
    allocations: Sequence[Allocation],
    queue: Sequence[QueueRow] = (),
) -> None:
    """Write the given SKUs' states, the new allocations and the queue lines that changed, in the order
    they changed (in the caller's transaction)."""
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
                len(s.state.queue),
                s.state.known,
                s.state.sourced,
                json.dumps(s.state.substitutes),
            )
            for s in skus
        ]
        await conn.execute(_UPSERT_STOCK, *columns(stock, 14))
    if queue:
        latest = {(r.sku, r.order_id, r.line_id): r for r in queue}  # a line's last change wins
        waiting = [row_of(r) for r in latest.values() if r.quantity > 0]
        left = [key for key, r in latest.items() if r.quantity == 0]
        if left:
            await conn.execute(_DELETE_QUEUE, *columns(left, 3))
        if waiting:
            await conn.execute(_UPSERT_QUEUE, *columns(waiting, 7))
    if allocations:
        await conn.execute(_INSERT_AUDIT, *columns(map(row_of, allocations), 9))


async def rebuild(conn: asyncpg.Connection, store: EventStore, page_size: int = 1000) -> int:
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
        await update(conn, [], allocations)
    queue = [
        QueueRow(sku, e.order_id, e.line_id, e.remaining, e.priority_score, e.placed_at, e.sequence)
        for sku, s in skus.items()
        for _, e, _ in s.state.queue.items()
    ]
    await update(conn, list(skus.values()), [], queue)
    return len(skus)
