"""Read models of procurement (tables in migrations/001_procurement.sql), derived from the event log.

Rows are written from the folded state of every SKU a transaction touched (the decider has it, and it
is authoritative), plus the few facts the state does not keep, taken from the new events themselves
(`Details`): who set the catalogue and when, when a PO was issued and last changed, and the PO and
reason of each line's latest ETA announcement. Only the rows the batch's events concern are written:
a waiting line's row when it joined, shrank, left or got a new ETA, never the rest of its SKU's queue.
Its place in the queue is not stored (one line joining ahead would renumber all behind it): the row
keeps the line's rank, and queries number the lines by it.

`rebuild(conn)` truncates them and re-derives them from the log through the same `update`, so a rebuilt
read model equals the live one.
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import asyncpg

from backbone.contracts import Envelope
from backbone.contracts.events import (
    BackorderEtaUpdated,
    PurchaseOrderCancelled,
    PurchaseOrderIssued,
    ReorderPolicyPlanned,
)
from backbone.db import columns
from backbone.decider import Decided
from backbone.eventstore import EventStore
from services.procurement.domain import ProcurementState, PurchaseOrder, evolve, initial_state, open_need
from services.procurement.eta import LineKey, line_key
from services.procurement.events import (
    BackorderLineReduced,
    BackorderQueueRecorded,
    DemandRecorded,
    PurchaseOrderConfirmed,
    PurchaseOrderOverdue,
    QueueLineChanged,
    ReceiptRecorded,
    ReorderLevelsRecorded,
    ReplenishmentSettingsChanged,
    ShipmentExpected,
    SupplierTermsSet,
)
from services.procurement.queue import priority_score_of
from services.procurement.reliability import MAX_DAYS_LATE, MIN_DAYS_LATE, EtaAccuracy

STREAM_PREFIX = "sku:"
NOT_ANNOUNCED = "no ETA announced yet"


def stream_id(sku: str) -> str:
    return f"{STREAM_PREFIX}{sku}"


def sku_of(stream: str) -> str:
    return stream.removeprefix(STREAM_PREFIX)


@dataclass(frozen=True, slots=True)
class Announcement:
    po_id: str | None
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CatalogueChange:
    actor: str
    at: datetime


@dataclass(slots=True)
class Details:
    """What the read models need from a SKU's new events beyond its folded state (latest wins)."""

    last_event_at: datetime | None = None
    catalogue: CatalogueChange | None = None
    po_issued_at: dict[str, datetime] = field(default_factory=dict)
    po_changed_at: dict[str, datetime] = field(default_factory=dict)
    announcements: dict[LineKey, Announcement] = field(default_factory=dict)
    lines: set[LineKey] = field(default_factory=set)  # waiting lines whose units, rank or ETA changed
    receipts: list[ReceiptRecorded] = field(default_factory=list)  # against a PO: supplier reliability
    replenishment: bool = False  # its settings, demand or levels changed
    whole_queue: bool = False  # a legacy snapshot replaced the queue (or a rebuild): write all its lines

    def add(self, envelope: Envelope[Any]) -> None:
        e, at = envelope.payload, envelope.occurred_at
        self.last_event_at = at
        match e:
            case SupplierTermsSet():
                self.catalogue = CatalogueChange(e.actor, at)
            case PurchaseOrderIssued():
                self.po_issued_at.setdefault(e.po_id, at)
                self.po_changed_at[e.po_id] = at
            case (
                PurchaseOrderConfirmed()
                | ShipmentExpected()
                | PurchaseOrderOverdue()
                | PurchaseOrderCancelled()
            ):
                self.po_changed_at[e.po_id] = at
            case ReceiptRecorded() if e.po_id is not None:
                self.po_changed_at[e.po_id] = at
                self.receipts.append(e)
            case BackorderEtaUpdated():
                self.announcements[line_key(e)] = Announcement(e.po_id, e.reason, at)
                self.lines.add(line_key(e))
            case QueueLineChanged() | BackorderLineReduced():
                self.lines.add(line_key(e))
            case BackorderQueueRecorded():
                self.whole_queue = True
            case (
                ReplenishmentSettingsChanged()
                | DemandRecorded()
                | ReorderPolicyPlanned()
                | ReorderLevelsRecorded()
            ):
                self.replenishment = True
            case _:
                pass

    @classmethod
    def of(cls, envelopes: Iterable[Envelope[Any]]) -> "Details":
        details = cls()
        for envelope in envelopes:
            details.add(envelope)
        return details


@dataclass(frozen=True, slots=True)
class SkuChange:
    """A SKU stream after a transaction: its state and version, and the details of its new events."""

    state: ProcurementState
    version: int
    details: Details

    @classmethod
    def of(cls, decided: Decided[ProcurementState]) -> "SkuChange":
        return cls(decided.state, decided.version, Details.of(decided.events))


# --- SQL -----------------------------------------------------------------------------------------------

_UPSERT_SKUS = """
INSERT INTO procurement_skus (sku, version, free_stock, backordered, reorder_point, safety_stock,
                              on_order, open_need, waiting_lines, sourced, updated_at)
SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
                     $7::bigint[], $8::bigint[], $9::bigint[], $10::boolean[], $11::timestamptz[])
ON CONFLICT (sku) DO UPDATE SET
    version = excluded.version, free_stock = excluded.free_stock, backordered = excluded.backordered,
    reorder_point = excluded.reorder_point, safety_stock = excluded.safety_stock,
    on_order = excluded.on_order, open_need = excluded.open_need, waiting_lines = excluded.waiting_lines,
    sourced = excluded.sourced, updated_at = excluded.updated_at
WHERE procurement_skus.version < excluded.version
"""

_UPSERT_CATALOGUES = """
INSERT INTO supplier_catalogues (sku, actor, updated_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])
ON CONFLICT (sku) DO UPDATE SET actor = excluded.actor, updated_at = excluded.updated_at
"""

_INSERT_TERMS = """
INSERT INTO supplier_terms (sku, position, supplier_id, role, lead_time_days, minimum_order_quantity,
                            pack_size, unit_cost, currency)
SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::int[], $6::bigint[], $7::bigint[],
                     $8::numeric[], $9::text[])
"""

_UPSERT_POS = """
INSERT INTO purchase_orders (po_id, sku, sequence, supplier_id, revision, quantity, unit_cost, currency,
                             expected_arrival, confirmed_quantity, confirmed_date, shipments,
                             received_quantity, outstanding, expected_complete, status, issued_at,
                             updated_at, due_date)
SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::int[], $6::bigint[],
                     $7::numeric[], $8::text[], $9::date[], $10::bigint[], $11::date[], $12::jsonb[],
                     $13::bigint[], $14::bigint[], $15::date[], $16::text[], $17::timestamptz[],
                     $18::timestamptz[], $19::date[])
ON CONFLICT (po_id) DO UPDATE SET
    supplier_id = excluded.supplier_id, revision = excluded.revision, quantity = excluded.quantity,
    unit_cost = excluded.unit_cost, currency = excluded.currency,
    expected_arrival = excluded.expected_arrival, confirmed_quantity = excluded.confirmed_quantity,
    confirmed_date = excluded.confirmed_date, shipments = excluded.shipments,
    received_quantity = excluded.received_quantity, outstanding = excluded.outstanding,
    expected_complete = excluded.expected_complete, status = excluded.status,
    updated_at = excluded.updated_at, due_date = excluded.due_date
"""

_SELECT_ANNOUNCEMENTS = """
SELECT sku, order_id, line_id, po_id, reason, updated_at FROM line_etas WHERE sku = ANY($1::text[])
"""

_INSERT_LINES = """
INSERT INTO line_etas (sku, order_id, line_id, priority_score, placed_at, sequence, quantity, eta, po_id,
                       reason, updated_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::numeric[], $5::timestamptz[], $6::bigint[],
                     $7::bigint[], $8::date[], $9::text[], $10::text[], $11::timestamptz[])
"""

# A line with a new announcement: everything. Without one (its units or rank changed): the rest stays.
_UPSERT_ANNOUNCED_LINES = f"""{_INSERT_LINES}
ON CONFLICT (sku, order_id, line_id) DO UPDATE SET
    priority_score = excluded.priority_score, placed_at = excluded.placed_at, sequence = excluded.sequence,
    quantity = excluded.quantity, eta = excluded.eta, po_id = excluded.po_id, reason = excluded.reason,
    updated_at = excluded.updated_at
"""

_UPSERT_WAITING_LINES = f"""{_INSERT_LINES}
ON CONFLICT (sku, order_id, line_id) DO UPDATE SET
    priority_score = excluded.priority_score, placed_at = excluded.placed_at, sequence = excluded.sequence,
    quantity = excluded.quantity, eta = excluded.eta
"""

_DELETE_LINES = """
DELETE FROM line_etas
WHERE (sku, order_id, line_id) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))
"""

LINE_COLUMNS = 11


def _last_event_at(change: SkuChange) -> datetime:
    if change.details.last_event_at is None:
        raise ValueError(f"a change of {change.state.sku!r} without events has nothing to project")
    return change.details.last_event_at


def _expected_complete(po: PurchaseOrder) -> date | None:
    arrivals = po.arrivals()
    return max(a.expected_date for a in arrivals) if arrivals else None


def _shipments_json(po: PurchaseOrder) -> str:
    shipments = sorted(po.shipments, key=lambda s: (s.expected_date, s.asn_id))
    return json.dumps(
        [
            {"asn_id": s.asn_id, "quantity": s.quantity, "expected_date": s.expected_date.isoformat()}
            for s in shipments
        ]
    )


def _po_rows(change: SkuChange) -> list[tuple[Any, ...]]:
    details, rows = change.details, []
    for po_id, changed_at in details.po_changed_at.items():
        po = change.state.purchase_order(po_id)
        if po is None:  # a receipt against another party's PO
            continue
        rows.append(
            (
                po.po_id,
                change.state.sku,
                po.sequence,
                po.supplier_id,
                po.revision,
                po.quantity,
                po.unit_cost,
                po.currency,
                po.expected_arrival,
                po.confirmed_quantity,
                po.confirmed_date,
                _shipments_json(po),
                po.received,
                po.outstanding,
                _expected_complete(po),
                "cancelled" if po.cancelled else "open" if po.is_open else "closed",
                # Only the first revision's event knows when the PO was issued; on an update the
                # stored issued_at is kept (the upsert does not set it), so any value does here.
                details.po_issued_at.get(po.po_id, changed_at),
                changed_at,
                po.due_date,
            )
        )
    return rows


@dataclass(frozen=True, slots=True)
class Delivery:
    """A receipt against one of our POs, as supplier reliability counts it."""

    supplier_id: str
    days_late: int  # against the supplier's confirmed date, else our planned one; clamped
    planned: date  # issue day + quoted lead time: what ETAs rested on before the supplier said more
    received_on: date


def _deliveries(change: SkuChange) -> list[Delivery]:
    deliveries = []
    for receipt in change.details.receipts:
        po = change.state.purchase_order(receipt.po_id or "")
        if po is None:  # a receipt against another party's PO
            continue
        promised = po.confirmed_date or po.expected_arrival
        days_late = min(MAX_DAYS_LATE, max(MIN_DAYS_LATE, (receipt.received_on - promised).days))
        deliveries.append(Delivery(po.supplier_id, days_late, po.expected_arrival, receipt.received_on))
    return deliveries


async def _count_deliveries(conn: asyncpg.Connection, deliveries: Sequence[Delivery], at: datetime) -> None:
    """Add the batch's receipts to the suppliers' counts: one increment per (supplier, days late) and per
    supplier, whatever the number of receipts."""
    if not deliveries:
        return
    lateness: dict[tuple[str, int], int] = {}
    accuracy: dict[str, EtaAccuracy] = {}
    for d in deliveries:
        lateness[(d.supplier_id, d.days_late)] = lateness.get((d.supplier_id, d.days_late), 0) + 1
        accuracy[d.supplier_id] = accuracy.get(d.supplier_id, EtaAccuracy()).observe(d.planned, d.received_on)
    await conn.execute(
        _COUNT_LATENESS, *columns([(s, days, n) for (s, days), n in sorted(lateness.items())], 3)
    )
    rows = [(s, a.count, a.kept, a.abs_error_days_total, at) for s, a in sorted(accuracy.items())]
    await conn.execute(_COUNT_ETA_ACCURACY, *columns(rows, 5))


def _line_row(change: SkuChange, key: LineKey, announcement: Announcement | None) -> tuple[Any, ...] | None:
    """The row of a waiting line, or None if it is not waiting. Without an announcement it keeps the PO
    and reason of the one stored (the upsert leaves them); a line inserted so (unreachable while every
    line is announced as it joins) says it was not announced yet."""
    queue = change.state.queue
    if key not in queue:
        return None
    rank = queue.rank(key)
    latest = announcement or Announcement(None, NOT_ANNOUNCED, _last_event_at(change))
    return (
        change.state.sku,
        *key,
        priority_score_of(rank),
        rank[1],
        rank[2],
        queue.units_of(key),
        change.state.announced_etas.get(key),
        latest.po_id,
        latest.reason,
        latest.at,
    )


async def _write_changed_lines(conn: asyncpg.Connection, changes: Sequence[SkuChange]) -> None:
    """Insert, update or delete exactly the rows of the lines the events concern."""
    announced, waiting, gone = [], [], []
    for c in changes:
        for key in sorted(c.details.lines):  # a stable order of row locks
            announcement = c.details.announcements.get(key)
            row = _line_row(c, key, announcement)
            if row is None:
                gone.append((c.state.sku, *key))
            else:
                (waiting if announcement is None else announced).append(row)
    if gone:
        await conn.execute(_DELETE_LINES, *columns(gone, 3))
    if announced:
        await conn.execute(_UPSERT_ANNOUNCED_LINES, *columns(announced, LINE_COLUMNS))
    if waiting:
        await conn.execute(_UPSERT_WAITING_LINES, *columns(waiting, LINE_COLUMNS))


async def _rewrite_queues(conn: asyncpg.Connection, changes: Sequence[SkuChange]) -> None:
    """Rewrite all waiting lines of the SKUs: after a legacy whole-queue snapshot, and when rebuilding.
    A line without an announcement among the events keeps the PO and reason of its stored row."""
    skus = [c.state.sku for c in changes]
    stored = {
        (r["sku"], r["order_id"], r["line_id"]): Announcement(r["po_id"], r["reason"], r["updated_at"])
        for r in await conn.fetch(_SELECT_ANNOUNCEMENTS, skus)
    }
    rows = []
    for c in changes:
        for key in c.state.queue:
            announcement = c.details.announcements.get(key) or stored.get((c.state.sku, *key))
            row = _line_row(c, key, announcement)
            if row is not None:
                rows.append(row)
    await conn.execute("DELETE FROM line_etas WHERE sku = ANY($1::text[])", skus)
    if rows:
        await conn.execute(_INSERT_LINES, *columns(rows, LINE_COLUMNS))


async def _write_lines(conn: asyncpg.Connection, changes: Sequence[SkuChange]) -> None:
    whole = [c for c in changes if c.details.whole_queue]
    if whole:
        await _rewrite_queues(conn, whole)
    changed = [c for c in changes if not c.details.whole_queue and c.details.lines]
    if changed:
        await _write_changed_lines(conn, changed)


_COUNT_LATENESS = """
INSERT INTO supplier_lateness (supplier_id, days_late, receipts)
SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[])
ON CONFLICT (supplier_id, days_late) DO UPDATE SET receipts = supplier_lateness.receipts + excluded.receipts
"""

_COUNT_ETA_ACCURACY = """
INSERT INTO supplier_eta_accuracy (supplier_id, receipts, kept, abs_error_days_total, updated_at)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::timestamptz[])
ON CONFLICT (supplier_id) DO UPDATE SET
    receipts = supplier_eta_accuracy.receipts + excluded.receipts,
    kept = supplier_eta_accuracy.kept + excluded.kept,
    abs_error_days_total = supplier_eta_accuracy.abs_error_days_total + excluded.abs_error_days_total,
    updated_at = greatest(supplier_eta_accuracy.updated_at, excluded.updated_at)
"""


_UPSERT_REPLENISHMENT = """
INSERT INTO procurement_replenishment (sku, mode, service_level, demand_days, last_demand_day, demand_per_day,
                                       fast_rate, slow_rate, rising, reorder_point, safety_stock, updated_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::numeric[], $4::int[], $5::date[], $6::float8[],
                     $7::float8[], $8::float8[], $9::bool[], $10::bigint[], $11::bigint[], $12::timestamptz[])
ON CONFLICT (sku) DO UPDATE SET
    mode = excluded.mode, service_level = excluded.service_level, demand_days = excluded.demand_days,
    last_demand_day = excluded.last_demand_day, demand_per_day = excluded.demand_per_day,
    fast_rate = excluded.fast_rate, slow_rate = excluded.slow_rate, rising = excluded.rising,
    reorder_point = excluded.reorder_point, safety_stock = excluded.safety_stock,
    updated_at = excluded.updated_at
"""


def _replenishment_row(change: SkuChange) -> tuple[Any, ...]:
    """The SKU's mode and its demand as of its last recorded day (rising: demand_signals.py)."""
    state, demand = change.state, change.state.demand
    day = demand.last_day if demand is not None else None
    fast = demand.fast_rate(day) if demand is not None and day is not None else 0.0
    slow = demand.slow_rate(day) if demand is not None and day is not None else 0.0
    return (
        state.sku,
        state.replenishment.mode,
        state.replenishment.service_level,
        demand.days_with_demand if demand is not None else 0,
        day,
        demand.rate_per_day if demand is not None else 0.0,
        fast,
        slow,
        demand is not None and day is not None and demand.rising(day),
        state.stock.reorder_point,
        state.stock.safety_stock,
        _last_event_at(change),
    )


async def update(conn: asyncpg.Connection, changes: Sequence[SkuChange]) -> None:
    """Write the read models of the given SKUs (in the caller's transaction)."""
    if not changes:
        return
    skus = [
        (
            c.state.sku,
            c.version,
            c.state.stock.free_stock,
            c.state.backordered,
            c.state.stock.reorder_point,
            c.state.stock.safety_stock,
            c.state.on_order,
            open_need(c.state),
            len(c.state.queue),
            c.state.sourced,
            _last_event_at(c),
        )
        for c in changes
    ]
    await conn.execute(_UPSERT_SKUS, *columns(skus, 11))

    catalogues = [(c.state, c.details.catalogue) for c in changes if c.details.catalogue is not None]
    if catalogues:
        heads = [(state.sku, set_by.actor, set_by.at) for state, set_by in catalogues]
        await conn.execute(_UPSERT_CATALOGUES, *columns(heads, 3))
        await conn.execute(
            "DELETE FROM supplier_terms WHERE sku = ANY($1::text[])", [sku for sku, _, _ in heads]
        )
        terms = [
            (
                state.sku,
                position,
                t.supplier_id,
                t.role,
                t.lead_time_days,
                t.minimum_order_quantity,
                t.pack_size,
                t.unit_cost,
                t.currency,
            )
            for state, _ in catalogues
            for position, t in enumerate(state.suppliers, start=1)
        ]
        if terms:
            await conn.execute(_INSERT_TERMS, *columns(terms, 9))

    orders = [row for c in changes for row in _po_rows(c)]
    if orders:
        await conn.execute(_UPSERT_POS, *columns(orders, 19))

    await _count_deliveries(conn, [d for c in changes for d in _deliveries(c)], _last_event_at(changes[-1]))

    replenished = [_replenishment_row(c) for c in changes if c.details.replenishment]
    if replenished:
        await conn.execute(_UPSERT_REPLENISHMENT, *columns(replenished, 12))

    await _write_lines(conn, changes)


async def rebuild(conn: asyncpg.Connection, store: EventStore, page_size: int = 1000) -> int:
    """Truncate the read models and re-derive them from the whole log; returns the SKUs rebuilt.

    Run it in a transaction: TRUNCATE locks the tables first, so a live writer waits and then writes
    its (newer) state over the rebuilt one. The demand ledger (demand.py) stays: it counts consumed
    messages, not this log.
    """
    await conn.execute(
        "TRUNCATE procurement_skus, supplier_catalogues, supplier_terms, purchase_orders, line_etas,"
        " supplier_lateness, supplier_eta_accuracy, procurement_replenishment"
    )
    states: dict[str, ProcurementState] = {}
    versions: dict[str, int] = {}
    details: dict[str, Details] = {}
    position = 0
    while page := await store.read_all(conn, after_position=position, limit=page_size):
        position = page[-1].global_position
        for stored in page:
            if not stored.stream_id.startswith(STREAM_PREFIX):
                continue
            sku = sku_of(stored.stream_id)
            state = states.get(sku) or initial_state(sku)
            states[sku] = evolve(state, stored.envelope.payload)
            versions[sku] = stored.stream_version
            details.setdefault(sku, Details()).add(stored.envelope)
    for rebuilt in details.values():
        rebuilt.whole_queue = True
    await update(conn, [SkuChange(states[sku], versions[sku], details[sku]) for sku in states])
    return len(states)
