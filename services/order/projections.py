"""Read models of the order service (tables in migrations/001_*.sql, 002_*.sql), derived from the event log.

- `orders` and `order_lines` are upserted from the folded OrderState of every order stream a transaction
  touched (the order row, and the lines its new events changed): the state is authoritative (the
  decider needs it anyway) and writing it is one set-based statement per table, so the read model
  cannot drift from it.
- `sku_substitutes` keeps inventory's SkuSubstitutesChanged (the last list per SKU), for the switch to
  a substitute; it comes from the consumed events, not the log, so `rebuild` leaves it alone.
- The times the reports need (when a line was backordered, first promised an ETA, filled) are not part
  of the state; `track` reads them off the new events, folded from the stream's state before them, and
  the upsert merges them with the stored ones: "first" facts keep the stored value, "last" facts take
  the new one. That merge does not depend on how the stream's events were split into transactions, so
  `rebuild(conn)` (the whole log at once, page by page) gives the same rows as the live updates.
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import asyncpg

from backbone.contracts import Envelope, EventPayload
from backbone.contracts.events import (
    OrderCancelled,
    OrderLineSubstituted,
    OrderPlaced,
    RefundRequested,
    SkuSubstitutesChanged,
)
from backbone.db import columns
from backbone.eventstore import EventStore
from backbone.values import replace
from services.order.domain import (
    LineState,
    OrderState,
    evolve,
    initial_state,
    order_status,
    order_stream_id,
)
from services.order.events import (
    ExternalCancellationRecorded,
    LineEtaChanged,
    OrderLineEvent,
    OrderRecorded,
)

STREAM_PREFIX = order_stream_id("")


def order_id_of_stream(stream_id: str) -> str:
    return stream_id.removeprefix(STREAM_PREFIX)


@dataclass(frozen=True, slots=True)
class LineTimes:
    """Times of one line, read off its events. None: not (yet) happened, or not in the events read."""

    backordered_at: datetime | None = None
    first_eta: date | None = None
    first_eta_at: datetime | None = None
    last_filled_at: datetime | None = None
    filled_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StreamChange:
    """New events (with their envelopes) of an order stream, the state before them and the new version."""

    before: OrderState
    version: int
    events: Sequence[Envelope[Any]]


@dataclass(slots=True)
class Tracked:
    state: OrderState
    times: dict[str, LineTimes] = field(default_factory=dict)
    # line_id -> index (in the events tracked) of the last event that changed the line
    last_change: dict[str, int] = field(default_factory=dict)
    status_changed_at: datetime | None = None  # of the last event, of these, that changed the status


def _lines_changed(event: EventPayload) -> Iterable[str]:
    """The lines whose state `evolve` may change for this event (see domain.evolve)."""
    match event:
        case OrderPlaced():
            return [line.line_id for line in event.lines]
        case OrderRecorded(order=placed):
            return [line.line_id for line in placed.lines]
        case OrderCancelled():
            return [line.line_id for line in event.lines]
        case ExternalCancellationRecorded(cancellation=cancellation):
            return [line.line_id for line in cancellation.lines]
        case OrderLineSubstituted(replaced=replaced, line=line):
            return [replaced.line_id, line.line_id]
        case OrderLineEvent() | RefundRequested():
            return [event.line_id]  # LineShipped among them: the units shipped are the line's
    return []  # e.g. FulfilmentRequested or ShipmentAnnounced: it changes no line


def track(before: OrderState, events: Iterable[Envelope[Any]]) -> Tracked:
    """Fold `events` from `before`; which lines they changed, and the times these events alone show."""
    tracked = Tracked(before)
    status = order_status(before) if before.placed else None
    for index, envelope in enumerate(events):
        event = envelope.payload
        prior = tracked.state
        tracked.state = evolve(prior, event)
        for line_id in _lines_changed(event):
            tracked.last_change[line_id] = index
        if tracked.state.placed and (now := order_status(tracked.state)) != status:
            status, tracked.status_changed_at = now, envelope.occurred_at
        if not isinstance(event, OrderLineEvent):
            continue  # placements, cancellations and refunds carry no time a report needs
        line_id, at = event.line_id, envelope.occurred_at
        old = prior.lines.get(line_id) or LineState(line_id=line_id, sku=event.sku)
        new = tracked.state.lines[line_id]
        times = tracked.times.get(line_id, LineTimes())
        if new.backordered > 0 and old.backordered == 0:
            times = replace(times, backordered_at=at)
        if isinstance(event, LineEtaChanged) and event.eta is not None and times.first_eta_at is None:
            times = replace(times, first_eta=event.eta, first_eta_at=at)
        if new.filled > old.filled:
            times = replace(times, last_filled_at=at)
            if old.waiting > 0 and new.waiting == 0:
                times = replace(times, filled_at=at)  # waiting only falls, so this happens once
        tracked.times[line_id] = times
    return tracked


_UPSERT_ORDERS = """
INSERT INTO orders (order_id, version, shop_id, customer_id, email, customer_name, tier, currency, status,
                    placed_at, urgent, shipping_preference, max_wait_days, waiting, status_changed_at,
                    shipped, closed)
SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                     $8::text[], $9::text[], $10::timestamptz[], $11::bool[], $12::text[], $13::int[],
                     $14::bigint[], $15::timestamptz[], $16::bigint[], $17::bool[])
ON CONFLICT (order_id) DO UPDATE SET
    version = excluded.version, shop_id = excluded.shop_id, customer_id = excluded.customer_id,
    email = excluded.email, customer_name = excluded.customer_name, tier = excluded.tier,
    currency = excluded.currency, status = excluded.status, placed_at = excluded.placed_at,
    urgent = excluded.urgent, shipping_preference = excluded.shipping_preference,
    max_wait_days = excluded.max_wait_days, waiting = excluded.waiting,
    shipped = excluded.shipped, closed = excluded.closed,
    status_changed_at = coalesce(excluded.status_changed_at, orders.status_changed_at)
WHERE orders.version < excluded.version
"""

_LINE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("order_id", "text"),
    ("line_id", "text"),
    ("version", "int"),
    ("sku", "text"),
    ("unit_price", "numeric"),
    ("ordered", "bigint"),
    ("decided", "bool"),
    ("reserved_at_placement", "bigint"),
    ("backordered", "bigint"),
    ("rejected", "bigint"),
    ("rejection_reason", "text"),
    ("filled", "bigint"),
    ("cancelled_waiting", "bigint"),
    ("cancelled_allocated", "bigint"),
    ("waiting", "bigint"),
    ("allocated", "bigint"),
    ("refunded", "bigint"),
    ("shipped", "bigint"),
    ("cancellation_pending", "bigint"),
    ("refunded_amount", "numeric"),
    ("eta", "date"),
    ("previous_eta", "date"),
    ("po_id", "text"),
    ("backordered_at", "timestamptz"),
    ("first_eta", "date"),
    ("first_eta_at", "timestamptz"),
    ("last_filled_at", "timestamptz"),
    ("filled_at", "timestamptz"),
)

_UPSERT_LINES = f"""
INSERT INTO order_lines ({", ".join(name for name, _ in _LINE_COLUMNS)})
SELECT * FROM unnest({", ".join(f"${i}::{t}[]" for i, (_, t) in enumerate(_LINE_COLUMNS, start=1))})
ON CONFLICT (order_id, line_id) DO UPDATE SET
    version = excluded.version, sku = excluded.sku, unit_price = excluded.unit_price,
    ordered = excluded.ordered, decided = excluded.decided,
    reserved_at_placement = excluded.reserved_at_placement, backordered = excluded.backordered,
    rejected = excluded.rejected, rejection_reason = excluded.rejection_reason, filled = excluded.filled,
    cancelled_waiting = excluded.cancelled_waiting, cancelled_allocated = excluded.cancelled_allocated,
    waiting = excluded.waiting, allocated = excluded.allocated, refunded = excluded.refunded,
    shipped = excluded.shipped, cancellation_pending = excluded.cancellation_pending,
    refunded_amount = excluded.refunded_amount, eta = excluded.eta, previous_eta = excluded.previous_eta,
    po_id = excluded.po_id,
    -- first facts keep what is stored, last facts take the new value (see the module docstring)
    backordered_at = coalesce(order_lines.backordered_at, excluded.backordered_at),
    first_eta = CASE WHEN order_lines.first_eta_at IS NULL THEN excluded.first_eta
                     ELSE order_lines.first_eta END,
    first_eta_at = coalesce(order_lines.first_eta_at, excluded.first_eta_at),
    last_filled_at = coalesce(excluded.last_filled_at, order_lines.last_filled_at),
    filled_at = coalesce(order_lines.filled_at, excluded.filled_at)
WHERE order_lines.version < excluded.version
"""

# A placement keeps only the lines the order has: answers that came earlier about another line go.
_DELETE_LINES_NOT_ORDERED = """
DELETE FROM order_lines l
WHERE l.order_id = ANY($1::text[])
  AND (l.order_id, l.line_id) NOT IN (SELECT * FROM unnest($2::text[], $3::text[]))
"""


def _order_row(state: OrderState, version: int, status_changed_at: datetime | None) -> tuple[Any, ...]:
    placed = state.placement
    assert placed is not None
    customer = placed.customer
    return (
        state.order_id,
        version,
        placed.shop_id,
        customer.customer_id,
        customer.email,
        customer.name,
        customer.tier,
        placed.currency,
        order_status(state),
        placed.placed_at,
        placed.urgent,
        placed.shipping_preference,
        placed.max_wait_days,
        state.waiting,
        status_changed_at,  # None: unchanged by these events
        state.shipped,
        state.closed,
    )


def _line_row(order_id: str, version: int, line: LineState, times: LineTimes) -> tuple[Any, ...]:
    return (
        order_id,
        line.line_id,
        version,
        line.sku,
        line.unit_price,
        line.ordered,
        line.decided,
        line.reserved_at_placement,
        line.backordered,
        line.rejected,
        line.rejection_reason,
        line.filled,
        line.dropped_backordered,  # column cancelled_waiting: confirmed by inventory (002_*.sql)
        line.released_reserved,  # column cancelled_allocated
        line.waiting,
        line.allocated,
        line.refunded,
        line.shipped,
        line.cancellation_pending,
        line.refunded_amount,
        line.eta,
        line.previous_eta,
        line.po_id,
        times.backordered_at,
        times.first_eta,
        times.first_eta_at,
        times.last_filled_at,
        times.filled_at,
    )


async def update(conn: asyncpg.Connection, changes: Sequence[StreamChange]) -> dict[str, OrderState]:
    """Write the changed order streams' rows (in the caller's transaction); returns their new states."""
    states: dict[str, OrderState] = {}
    orders: list[tuple[Any, ...]] = []
    lines: list[tuple[Any, ...]] = []
    placed_now: list[OrderState] = []
    for change in changes:
        tracked = track(change.before, change.events)
        state = states[tracked.state.order_id] = tracked.state
        if state.placement is not None:
            orders.append(_order_row(state, change.version, tracked.status_changed_at))
            if any(isinstance(e.payload, OrderPlaced | OrderRecorded) for e in change.events):
                placed_now.append(state)
        # Only the lines the events changed (an order may have hundreds), each at the version of the
        # event that changed it last: that version does not depend on how events were batched either.
        first_version = change.version - len(change.events) + 1
        for line_id, index in tracked.last_change.items():
            if (line := state.lines.get(line_id)) is not None:
                times = tracked.times.get(line_id, LineTimes())
                lines.append(_line_row(state.order_id, first_version + index, line, times))
    if orders:
        await conn.execute(_UPSERT_ORDERS, *columns(orders, 17))
    if lines:
        await conn.execute(_UPSERT_LINES, *columns(lines, len(_LINE_COLUMNS)))
    if placed_now:
        kept = [(s.order_id, line_id) for s in placed_now for line_id in s.lines]
        await conn.execute(_DELETE_LINES_NOT_ORDERED, [s.order_id for s in placed_now], *columns(kept, 2))
    return states


# --- substitutes, as inventory lists them (migrations/005_*.sql) ------------------------------------------

_UPSERT_SUBSTITUTES = """
INSERT INTO sku_substitutes (sku, substitutes, changed_at)
SELECT sku, ARRAY(SELECT jsonb_array_elements_text(substitutes)), changed_at
FROM unnest($1::text[], $2::jsonb[], $3::timestamptz[]) AS r(sku, substitutes, changed_at)
ON CONFLICT (sku) DO UPDATE SET substitutes = excluded.substitutes, changed_at = excluded.changed_at
WHERE sku_substitutes.changed_at <= excluded.changed_at
"""

_SUBSTITUTES_OF_LINE = """
SELECT s.substitutes FROM order_lines l JOIN sku_substitutes s ON s.sku = l.sku
WHERE l.order_id = $1 AND l.line_id = $2
"""


async def record_substitutes(conn: asyncpg.Connection, envelopes: Sequence[Envelope[Any]]) -> None:
    """The lists of the SkuSubstitutesChanged among `envelopes`: one row per SKU, its last list (each
    replaces the whole list, and a SKU's events arrive in order)."""
    latest: dict[str, tuple[Any, ...]] = {}
    for e in envelopes:
        if isinstance(e.payload, SkuSubstitutesChanged):
            latest[e.payload.sku] = (e.payload.sku, json.dumps(e.payload.substitutes), e.occurred_at)
    if latest:
        await conn.execute(_UPSERT_SUBSTITUTES, *columns(latest.values(), 3))


async def substitutes_of_line(conn: asyncpg.Connection, order_id: str, line_id: str) -> tuple[str, ...]:
    """What inventory lists as substitutes of the line's SKU; () if none (or no such line)."""
    listed = await conn.fetchval(_SUBSTITUTES_OF_LINE, order_id, line_id)
    return tuple(listed or ())


async def rebuild(conn: asyncpg.Connection, store: EventStore, page_size: int = 1000) -> int:
    """Truncate the read models and re-derive them from the whole log; returns the orders rebuilt.

    Run it in a transaction: TRUNCATE locks the tables first, so a live writer waits and then upserts
    its (newer) state over the rebuilt one. Every order's state is kept in memory while the log is read.
    """
    await conn.execute("TRUNCATE orders, order_lines")
    states: dict[str, OrderState] = {}
    position = 0
    while page := await store.read_all(conn, after_position=position, limit=page_size):
        position = page[-1].global_position
        # The page's events per stream, in stream order (positions follow commit order within a stream).
        by_stream: dict[str, list[Envelope[Any]]] = {}
        versions: dict[str, int] = {}
        for stored in page:
            if stored.stream_id.startswith(STREAM_PREFIX):
                by_stream.setdefault(stored.stream_id, []).append(stored.envelope)
                versions[stored.stream_id] = stored.stream_version
        changes = []
        for stream_id, events in by_stream.items():
            order_id = order_id_of_stream(stream_id)
            before = states.get(order_id) or initial_state(order_id)
            changes.append(StreamChange(before, versions[stream_id], events))
        states.update(await update(conn, changes))
    return sum(1 for s in states.values() if s.placement is not None)
