"""Procurement of one SKU, decider style: `decide` turns an input into events, `evolve` folds them.

State is per SKU (one stream per SKU) and is rebuilt by folding `evolve` over that stream alone: the
inputs from other services are first recorded as internal facts (see `events.py`), then the decision
(buy or not, which ETAs changed) is made on the state those facts produce. No I/O and no clock: the
caller passes `today`.

Every event costs O(1) or O(log n) to fold, whatever the length of the queue or the history: the queue
is a persistent ranked map, announced ETAs and receipt ids persistent hash tries, and a decision
re-plans only the lines whose ETA it can have moved (replan.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Self, TypeAlias

from pydantic import BaseModel, model_validator
from rpds import HashTrieMap, HashTrieSet

from backbone.contracts.envelope import STRICT, EventPayload
from backbone.contracts.events import (
    BackorderEtaUpdated,
    BackorderFulfilled,
    BackorderQueueChanged,
    GoodsReceived,
    PurchaseOrderAcknowledged,
    PurchaseOrderIssued,
    ReorderPointReached,
    ShipmentNoticed,
    StockReleased,
)
from backbone.contracts.types import Identifier, Sku
from backbone.ranked import RankedMap
from services.procurement.eta import ArrivalBatch, LineKey, Supply, line_key
from services.procurement.events import (
    BackorderLineReduced,
    BackorderQueueRecorded,
    BackorderShortfallRecorded,
    PurchaseOrderConfirmed,
    QueueLineChanged,
    ReceiptRecorded,
    ReservedStockReleased,
    ShipmentExpected,
    StockPositionRecorded,
    SupplierTerms,
    SupplierTermsSet,
    check_catalogue,
)
from services.procurement.planning import (
    DEFAULT_POLICY,
    PurchasePolicy,
    choose_supplier,
    order_quantity,
    purchase_order_id,
    replenishment_need,
    revised_arrival,
)
from services.procurement.queue import WaitingQueue, legacy_queue, queue_rank, reduce_line, set_line
from services.procurement.replan import LineChange, all_lines, lines_to_replan, updates_for

# --- errors ---------------------------------------------------------------------------------------


class ProcurementConflict(Exception):
    """An input contradicts what the SKU's stream knows; nothing of it is applied (the consumer
    dead-letters it with this message, for an operator to correct at its source)."""


# --- commands -------------------------------------------------------------------------------------


class SetSupplierTerms(BaseModel):
    """Admin command: replace the SKU's supplier catalogue."""

    model_config = STRICT

    sku: Sku
    suppliers: list[SupplierTerms]
    actor: Identifier

    @model_validator(mode="after")
    def _valid_catalogue(self) -> Self:
        check_catalogue(self.suppliers)
        return self


Incoming: TypeAlias = (
    BackorderQueueChanged
    | ReorderPointReached
    | BackorderFulfilled
    | StockReleased
    | GoodsReceived
    | PurchaseOrderAcknowledged
    | ShipmentNoticed
    | SetSupplierTerms
)

# The contract's events procurement consumes (from the inventory and supplier topics). StockShort is not
# among them: the line's "joined" BackorderQueueChanged that follows it says all procurement needs.
CONSUMED_EVENTS: tuple[type[EventPayload], ...] = (
    BackorderQueueChanged,
    ReorderPointReached,
    BackorderFulfilled,
    StockReleased,
    GoodsReceived,
    PurchaseOrderAcknowledged,
    ShipmentNoticed,
)

# --- state ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shipment:
    asn_id: str
    quantity: int  # units of the notice not received yet
    expected_date: date


@dataclass(frozen=True, slots=True)
class PurchaseOrder:
    po_id: str
    sequence: int  # the SKU's n-th PO
    supplier_id: str
    revision: int
    quantity: int  # ordered, latest revision
    unit_cost: Decimal
    currency: str
    expected_arrival: date  # our estimate when issued: issue day + lead time
    confirmed_quantity: int | None = None  # None until the supplier acknowledges
    confirmed_date: date | None = None
    shipments: tuple[Shipment, ...] = ()
    received: int = 0

    @property
    def acknowledged(self) -> bool:
        return self.confirmed_quantity is not None

    @property
    def outstanding(self) -> int:
        """Units still to come: what the supplier committed to (or, before it said, what we ordered)."""
        committed = self.quantity if self.confirmed_quantity is None else self.confirmed_quantity
        return max(0, committed - self.received)

    @property
    def is_open(self) -> bool:
        return self.outstanding > 0

    @property
    def amendable(self) -> bool:
        """Can still be enlarged by a new revision: the supplier has neither confirmed nor shipped."""
        return self.is_open and not self.acknowledged and not self.shipments and self.received == 0

    def arrivals(self) -> list[ArrivalBatch]:
        """Outstanding units by expected day: noticed shipments on their dates, the rest on the
        supplier's confirmed date (or our estimate before it confirmed)."""
        batches, left = [], self.outstanding
        for shipment in sorted(self.shipments, key=lambda s: (s.expected_date, s.asn_id)):
            quantity = min(shipment.quantity, left)
            if quantity > 0:
                batches.append(ArrivalBatch(shipment.expected_date, self.po_id, quantity))
                left -= quantity
        if left > 0:
            batches.append(ArrivalBatch(self.confirmed_date or self.expected_arrival, self.po_id, left))
        return batches

    def receive(self, quantity: int) -> Self:
        """Received goods are taken to be those of the earliest noticed shipments."""
        shipments, to_match = [], quantity
        for shipment in sorted(self.shipments, key=lambda s: (s.expected_date, s.asn_id)):
            matched = min(shipment.quantity, to_match)
            to_match -= matched
            if shipment.quantity > matched:
                shipments.append(replace(shipment, quantity=shipment.quantity - matched))
        return replace(self, received=self.received + quantity, shipments=tuple(shipments))


@dataclass(frozen=True, slots=True)
class StockPosition:
    """The latest stock figures, as inventory reported them and procurement has since moved them."""

    # On hand minus reserved. Raised by receipts and lowered by fills as procurement sees them;
    # inventory's fills may arrive before the receipt they used (different topics), so it may dip
    # below 0 until that receipt arrives. Kept signed so the buy need is the same in either order.
    free_stock: int = 0
    reorder_point: int = 0
    safety_stock: int = 0


@dataclass(frozen=True, slots=True)
class ProcurementState:
    sku: str
    suppliers: tuple[SupplierTerms, ...] = ()
    stock: StockPosition = StockPosition()
    queue: WaitingQueue = field(default_factory=RankedMap)  # waiting lines in allocation order
    # Every PO issued, by id; closed ones are kept for late receipts. The open ones, in issue order, are
    # few (what is in flight), so they are listed apart for the plan.
    purchase_orders: HashTrieMap[str, PurchaseOrder] = field(default_factory=HashTrieMap)
    open_po_ids: tuple[str, ...] = ()
    announced_etas: HashTrieMap[LineKey, date | None] = field(default_factory=HashTrieMap)
    receipt_ids: HashTrieSet[str] = field(default_factory=HashTrieSet)  # receipts already counted

    @property
    def backordered(self) -> int:
        """Units waiting in the queue."""
        return self.queue.units

    @property
    def open_purchase_orders(self) -> tuple[PurchaseOrder, ...]:
        return tuple(self.purchase_orders[po_id] for po_id in self.open_po_ids)

    @property
    def on_order(self) -> int:
        return sum(po.outstanding for po in self.open_purchase_orders)

    def purchase_order(self, po_id: str) -> PurchaseOrder | None:
        return self.purchase_orders.get(po_id)

    def supply(self, today: date) -> Supply:
        """What serves the queue: free stock today, then the open POs' arrivals."""
        arrivals = [batch for po in self.open_purchase_orders for batch in po.arrivals()]
        return Supply.of(arrivals, free_stock=self.stock.free_stock, today=today)


def initial_state(sku: str) -> ProcurementState:
    return ProcurementState(sku=sku)


# --- evolve -----------------------------------------------------------------------------------------


def evolve(state: ProcurementState, event: EventPayload) -> ProcurementState:
    """The state after one event of the SKU's procurement stream."""
    match event:
        case SupplierTermsSet():
            return replace(state, suppliers=tuple(event.suppliers))
        case StockPositionRecorded():
            # Inventory's backordered figure is not taken: the queue's units are the waiting demand.
            stock = StockPosition(
                free_stock=event.available,
                reorder_point=event.reorder_point,
                safety_stock=event.safety_stock,
            )
            return replace(state, stock=stock)
        case QueueLineChanged():
            key = line_key(event)
            rank = queue_rank(key, event.priority_score, event.placed_at, event.sequence)
            queued = replace(state, queue=set_line(state.queue, key, rank, event.remaining))
            return queued if event.remaining > 0 else _forget_eta(queued, key)
        case BackorderLineReduced():
            return _reduce_line(state, event)
        case BackorderQueueRecorded():  # legacy: a whole-queue snapshot (contract 1.x), O(queue)
            queue = legacy_queue(event.entries)
            announced = HashTrieMap({k: eta for k, eta in state.announced_etas.items() if k in queue})
            return replace(state, queue=queue, announced_etas=announced)
        case BackorderShortfallRecorded():
            # Legacy: counted a shortfall before the snapshot placed it; the queue now says it all.
            return state
        case PurchaseOrderIssued():
            return _issue(state, event)
        case PurchaseOrderConfirmed():
            return _change_po(
                state,
                event.po_id,
                lambda po: replace(
                    po, confirmed_quantity=event.confirmed_quantity, confirmed_date=event.confirmed_date
                ),
            )
        case ShipmentExpected():
            notice = Shipment(event.asn_id, event.quantity, event.expected_date)
            return _change_po(
                state,
                event.po_id,
                lambda po: replace(
                    po, shipments=(*(s for s in po.shipments if s.asn_id != event.asn_id), notice)
                ),
            )
        case ReservedStockReleased():
            stock = replace(state.stock, free_stock=state.stock.free_stock + event.quantity)
            return replace(state, stock=stock)
        case ReceiptRecorded():
            stock = replace(state.stock, free_stock=state.stock.free_stock + event.quantity)
            received = replace(state, stock=stock, receipt_ids=state.receipt_ids.insert(event.receipt_id))
            if event.po_id is None:
                return received
            return _change_po(received, event.po_id, lambda po: po.receive(event.quantity))
        case BackorderEtaUpdated():
            return replace(state, announced_etas=state.announced_etas.insert(line_key(event), event.eta))
        case _:
            raise ValueError(f"{type(event).__name__} is not an event of a procurement stream")


def rebuild(sku: str, events: Iterable[EventPayload]) -> ProcurementState:
    """The SKU's state from its stream's events, oldest first."""
    return fold(initial_state(sku), events)


def fold(state: ProcurementState, events: Iterable[EventPayload]) -> ProcurementState:
    for event in events:
        state = evolve(state, event)
    return state


def _forget_eta(state: ProcurementState, key: LineKey) -> ProcurementState:
    """A line that left the queue is forgotten, so if it ever returns it is announced anew."""
    return replace(state, announced_etas=state.announced_etas.discard(key))


def _reduce_line(state: ProcurementState, event: BackorderLineReduced) -> ProcurementState:
    key = line_key(event)
    reduced = replace(state, queue=reduce_line(state.queue, key, event.remaining))
    if key not in reduced.queue:
        reduced = _forget_eta(reduced, key)
    if event.cause != "fulfilled":
        return reduced
    # Filled units were taken from free stock (a receipt or released reservations).
    stock = replace(reduced.stock, free_stock=reduced.stock.free_stock - event.quantity)
    return replace(reduced, stock=stock)


def _issue(state: ProcurementState, event: PurchaseOrderIssued) -> ProcurementState:
    existing = state.purchase_order(event.po_id)
    if existing is None:
        po = PurchaseOrder(
            po_id=event.po_id,
            sequence=len(state.purchase_orders) + 1,
            supplier_id=event.supplier_id,
            revision=event.revision,
            quantity=event.quantity,
            unit_cost=event.unit_cost,
            currency=event.currency,
            expected_arrival=event.expected_arrival,
        )
        return _with_po(state, po)
    return _change_po(
        state,
        event.po_id,
        lambda po: replace(
            po,
            revision=event.revision,
            quantity=event.quantity,
            unit_cost=event.unit_cost,
            currency=event.currency,
            expected_arrival=event.expected_arrival,
        ),
    )


def _change_po(
    state: ProcurementState, po_id: str, change: Callable[[PurchaseOrder], PurchaseOrder]
) -> ProcurementState:
    """Apply `change` to the PO; a PO this stream never issued is left alone (nothing to change)."""
    po = state.purchase_order(po_id)
    return state if po is None else _with_po(state, change(po))


def _with_po(state: ProcurementState, po: PurchaseOrder) -> ProcurementState:
    """Store the PO and keep the open ones listed (a refused PO closes; a later ack may reopen it)."""
    orders = state.purchase_orders.insert(po.po_id, po)
    open_ids = state.open_po_ids
    if po.is_open and po.po_id not in open_ids:
        open_ids = tuple(sorted((*open_ids, po.po_id), key=lambda po_id: orders[po_id].sequence))
    elif not po.is_open and po.po_id in open_ids:
        open_ids = tuple(po_id for po_id in open_ids if po_id != po.po_id)
    return replace(state, purchase_orders=orders, open_po_ids=open_ids)


# --- decide -----------------------------------------------------------------------------------------


def decide(
    state: ProcurementState,
    incoming: Incoming,
    *,
    today: date,
    policy: PurchasePolicy = DEFAULT_POLICY,
) -> list[EventPayload]:
    """Events to append to the SKU's stream for one input: the facts it brings, then any purchase
    (a new PO or a larger revision of an open one), then the ETA of every line whose date changed.
    Raises ProcurementConflict for an input that contradicts the stream (nothing is decided)."""
    return decide_and_fold(state, incoming, today=today, policy=policy)[1]


def decide_and_fold(
    state: ProcurementState,
    incoming: Incoming,
    *,
    today: date,
    policy: PurchasePolicy = DEFAULT_POLICY,
) -> tuple[ProcurementState, list[EventPayload]]:
    """`decide`, and the state its events lead to (deciding folds them anyway)."""
    if incoming.sku != state.sku:
        raise ValueError(
            f"{type(incoming).__name__} for {incoming.sku!r} sent to the stream of {state.sku!r}"
        )
    facts = _facts(state, incoming, today)
    if not facts:
        return state, []
    informed = fold(state, facts)
    purchases = _purchases(informed, today, policy)
    planned = fold(informed, purchases)
    etas = _eta_changes(state, planned, facts, today, replan_trigger(incoming))
    return fold(planned, etas), [*facts, *purchases, *etas]


def _facts(state: ProcurementState, incoming: Incoming, today: date) -> list[EventPayload]:
    """What procurement learns from an input, as events of its own stream; [] if it does not concern it."""
    sku = state.sku
    match incoming:
        case SetSupplierTerms():
            return [SupplierTermsSet(sku=sku, suppliers=incoming.suppliers, actor=incoming.actor)]
        case ReorderPointReached():
            return [
                StockPositionRecorded(
                    sku=sku,
                    on_hand=incoming.on_hand,
                    reserved=incoming.reserved,
                    available=incoming.available,
                    backordered=incoming.backordered,
                    reorder_point=incoming.reorder_point,
                    safety_stock=incoming.safety_stock,
                    as_of=today,
                )
            ]
        case BackorderQueueChanged():
            if _queue_knows(state.queue, incoming):
                return []  # a redelivery, or confirms the fill before it: nothing to record
            return [
                QueueLineChanged(
                    sku=sku,
                    order_id=incoming.order_id,
                    line_id=incoming.line_id,
                    change=incoming.change,
                    priority_score=incoming.priority_score,
                    placed_at=incoming.placed_at,
                    sequence=incoming.sequence,
                    remaining=incoming.remaining,
                )
            ]
        case BackorderFulfilled():
            # Recorded with the line's reduction: free stock and the queue shrink together, so the ETAs
            # decided on it never count the filled units twice (as free stock and as waiting units).
            # The "reduced"/"left" BackorderQueueChanged that follows then confirms it.
            return [
                BackorderLineReduced(
                    sku=sku,
                    order_id=incoming.order_id,
                    line_id=incoming.line_id,
                    quantity=incoming.quantity,
                    remaining=incoming.remaining_backordered,
                    cause="fulfilled",
                )
            ]
        case StockReleased():
            return _released(state, incoming)
        case GoodsReceived():
            if incoming.receipt_id in state.receipt_ids:
                return []  # an adapter re-sent the receipt under a new event id: count its goods once
            _check_supplier(state, incoming)
            # Any receipt adds free stock; one against a PO of ours also lowers what is on order.
            return [
                ReceiptRecorded(
                    sku=sku,
                    receipt_id=incoming.receipt_id,
                    po_id=incoming.po_id,
                    quantity=incoming.quantity,
                    received_on=incoming.received_at.date(),
                )
            ]
        case PurchaseOrderAcknowledged():
            if state.purchase_order(incoming.po_id) is None:
                return []
            return [
                PurchaseOrderConfirmed(
                    sku=sku,
                    po_id=incoming.po_id,
                    confirmed_quantity=incoming.confirmed_quantity,
                    confirmed_date=incoming.confirmed_date,
                )
            ]
        case ShipmentNoticed():
            if state.purchase_order(incoming.po_id) is None:
                return []
            return [
                ShipmentExpected(
                    sku=sku,
                    po_id=incoming.po_id,
                    asn_id=incoming.asn_id,
                    quantity=incoming.quantity,
                    expected_date=incoming.expected_date,
                )
            ]
        case _:
            raise TypeError(f"procurement does not handle {type(incoming).__name__}")


def _check_supplier(state: ProcurementState, receipt: GoodsReceived) -> None:
    """A receipt naming one of our POs but another supplier than the PO's is a mapping error at the
    adapter: counting it against the PO could close an order whose goods never came."""
    po = state.purchase_order(receipt.po_id) if receipt.po_id is not None else None
    if po is not None and receipt.supplier_id is not None and receipt.supplier_id != po.supplier_id:
        raise ProcurementConflict(
            f"receipt {receipt.receipt_id} names purchase order {po.po_id} of supplier {po.supplier_id!r}"
            f" but comes from supplier {receipt.supplier_id!r}"
        )


def _queue_knows(queue: WaitingQueue, change: BackorderQueueChanged) -> bool:
    """Whether the queue already holds the line as the change leaves it (absent if it left)."""
    key = line_key(change)
    if change.remaining == 0:
        return key not in queue
    rank = queue_rank(key, change.priority_score, change.placed_at, change.sequence)
    return key in queue and queue.rank(key) == rank and queue.units_of(key) == change.remaining


def _released(state: ProcurementState, released: StockReleased) -> list[EventPayload]:
    """Cancelled units: reserved ones become free stock (which inventory may give to the queue: a fill
    would follow). Backordered ones leave the queue with the BackorderQueueChanged that follows."""
    if released.released_reserved == 0:
        return []
    return [
        ReservedStockReleased(
            sku=state.sku,
            order_id=released.order_id,
            line_id=released.line_id,
            quantity=released.released_reserved,
        )
    ]


def open_need(state: ProcurementState) -> int:
    """Units the SKU needs that neither free stock nor open POs cover (see planning.replenishment_need).
    After a decision it is 0 unless nothing can be bought: no supplier catalogue."""
    return replenishment_need(
        backordered=state.backordered,
        reorder_point=state.stock.reorder_point,
        safety_stock=state.stock.safety_stock,
        free_stock=state.stock.free_stock,
        on_order=state.on_order,
    )


def _purchases(state: ProcurementState, today: date, policy: PurchasePolicy) -> list[EventPayload]:
    """At most one purchase: a larger revision of the chosen supplier's still-amendable PO if that keeps
    its date (see PurchasePolicy), else a new PO. Rounding to the supplier's MOQ and packs makes one
    purchase enough for the whole need."""
    need = open_need(state)
    supplier = choose_supplier(state.suppliers, policy)
    if need == 0 or supplier is None:
        return []
    arrival = today + timedelta(days=supplier.lead_time_days)
    enlargeable = _enlargeable(state, supplier.supplier_id, arrival, policy)
    if enlargeable is not None:
        po, arrival = enlargeable
        po_id, revision = po.po_id, po.revision + 1
        quantity = order_quantity(po.quantity + need, supplier)
    else:
        po_id, revision = purchase_order_id(state.sku, len(state.purchase_orders) + 1), 1
        quantity = order_quantity(need, supplier)
    return [
        PurchaseOrderIssued(
            po_id=po_id,
            revision=revision,
            supplier_id=supplier.supplier_id,
            sku=state.sku,
            quantity=quantity,
            unit_cost=supplier.unit_cost,
            currency=supplier.currency,
            expected_arrival=arrival,
        )
    ]


def _enlargeable(
    state: ProcurementState, supplier_id: str, fresh_arrival: date, policy: PurchasePolicy
) -> tuple[PurchaseOrder, date] | None:
    """The supplier's latest amendable PO that a revision would not delay too much, and its new date."""
    for po in reversed(state.open_purchase_orders):
        if po.amendable and po.supplier_id == supplier_id:
            revised = revised_arrival(po.expected_arrival, fresh_arrival, policy)
            if revised is not None:
                return po, revised
    return None


def _eta_changes(
    before: ProcurementState,
    planned: ProcurementState,
    facts: Sequence[EventPayload],
    today: date,
    trigger: str,
) -> list[BackorderEtaUpdated]:
    """The ETA updates of a decision. Every waiting line was announced and matched its supply when the
    decision began, so only the lines whose ETA the decision can have moved are re-planned (replan.py);
    a line that moved to another rank (a correction from inventory) makes it re-plan them all."""
    supply = planned.supply(today)
    changed = {line_key(f) for f in facts if isinstance(f, QueueLineChanged | BackorderLineReduced)}
    change = _line_change(before.queue, planned.queue, next(iter(changed))) if len(changed) == 1 else None
    if changed and change is None:
        lines = all_lines(planned.queue)
    else:
        lines = lines_to_replan(planned.queue, before.supply(today), supply, change)
    return updates_for(planned.sku, lines, supply, planned.announced_etas, trigger)


def _line_change(before: WaitingQueue, after: WaitingQueue, key: LineKey) -> LineChange | None:
    """How the line changed in the queue, if it kept its rank (None if it moved)."""
    was, now = key in before, key in after
    if was and now and before.rank(key) != after.rank(key):
        return None
    units_ahead = _units_ahead(after, key) if now else _units_ahead(before, key) if was else 0
    return LineChange(
        key=key,
        units_ahead=units_ahead,
        before=before.units_of(key) if was else 0,
        after=after.units_of(key) if now else 0,
    )


def _units_ahead(queue: WaitingQueue, key: LineKey) -> int:
    """Units ranked before the line; for the last one (where lines join first come, first served)
    without summing its block."""
    last, _, units = next(queue.items(len(queue) - 1))
    return queue.units - units if last == key else queue.units_ahead(key)


def replan_trigger(incoming: Incoming) -> str:
    """What prompted a re-plan, in words for the ETA's reason."""
    match incoming:
        case SetSupplierTerms():
            return "supplier terms changed"
        case ReorderPointReached():
            return "stock position updated"
        case BackorderQueueChanged():
            return "new backorder" if incoming.change == "joined" else "backorder queue changed"
        case BackorderFulfilled():
            return "backordered units filled"
        case StockReleased():
            return "backordered units cancelled"
        case GoodsReceived():
            return f"goods received ({incoming.receipt_id})"
        case PurchaseOrderAcknowledged():
            return f"supplier confirmed {incoming.po_id} for {incoming.confirmed_date.isoformat()}"
        case ShipmentNoticed():
            due = incoming.expected_date.isoformat()
            return f"shipment notice {incoming.asn_id}: {incoming.po_id} due {due}"
        case _:
            raise TypeError(f"procurement does not handle {type(incoming).__name__}")
