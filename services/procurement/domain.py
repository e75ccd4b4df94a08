"""Procurement of one SKU, decider style: `decide` turns an input into events, `evolve` folds them.

State is per SKU (one stream per SKU) and is rebuilt by folding `evolve` over that stream alone: the
inputs from other services are first recorded as internal facts (see `events.py`), then the decision
(buy or not, which ETAs changed) is made on the state those facts produce. No I/O and no clock: the
caller passes `today`.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Self, TypeAlias

from pydantic import BaseModel, model_validator

from backbone.contracts.envelope import STRICT, EventPayload
from backbone.contracts.events import (
    BackorderEtaUpdated,
    BackorderFulfilled,
    BackorderQueueChanged,
    BackorderQueueEntry,
    GoodsReceived,
    PurchaseOrderAcknowledged,
    PurchaseOrderIssued,
    ReorderPointReached,
    ShipmentNoticed,
    StockReleased,
    StockShort,
)
from backbone.contracts.types import Identifier, Sku
from services.procurement.eta import ArrivalBatch, LineKey, assign_etas, eta_updates, line_key
from services.procurement.events import (
    BackorderLineReduced,
    BackorderQueueRecorded,
    BackorderShortfallRecorded,
    PurchaseOrderConfirmed,
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
    StockShort
    | BackorderQueueChanged
    | ReorderPointReached
    | BackorderFulfilled
    | StockReleased
    | GoodsReceived
    | PurchaseOrderAcknowledged
    | ShipmentNoticed
    | SetSupplierTerms
)

# The contract's events procurement consumes (from the inventory and supplier topics).
CONSUMED_EVENTS: tuple[type[EventPayload], ...] = (
    StockShort,
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
    backordered: int = 0
    reorder_point: int = 0
    safety_stock: int = 0


@dataclass(frozen=True, slots=True)
class ProcurementState:
    sku: str
    suppliers: tuple[SupplierTerms, ...] = ()
    stock: StockPosition = StockPosition()
    queue: tuple[BackorderQueueEntry, ...] = ()  # waiting lines in allocation order
    purchase_orders: tuple[PurchaseOrder, ...] = ()  # in issue order; closed ones kept for late receipts
    announced_etas: Mapping[LineKey, date | None] = field(default_factory=dict)
    receipt_ids: frozenset[str] = frozenset()  # receipts already counted

    @property
    def open_purchase_orders(self) -> tuple[PurchaseOrder, ...]:
        return tuple(po for po in self.purchase_orders if po.is_open)

    @property
    def on_order(self) -> int:
        return sum(po.outstanding for po in self.purchase_orders)

    def purchase_order(self, po_id: str) -> PurchaseOrder | None:
        return next((po for po in self.purchase_orders if po.po_id == po_id), None)


def initial_state(sku: str) -> ProcurementState:
    return ProcurementState(sku=sku)


# --- evolve -----------------------------------------------------------------------------------------


def evolve(state: ProcurementState, event: EventPayload) -> ProcurementState:
    """The state after one event of the SKU's procurement stream."""
    match event:
        case SupplierTermsSet():
            return replace(state, suppliers=tuple(event.suppliers))
        case StockPositionRecorded():
            stock = StockPosition(
                free_stock=event.available,
                backordered=event.backordered,
                reorder_point=event.reorder_point,
                safety_stock=event.safety_stock,
            )
            return replace(state, stock=stock)
        case BackorderQueueRecorded():
            return _with_queue(state, tuple(event.entries), backordered=_total(event.entries))
        case BackorderShortfallRecorded():
            stock = replace(state.stock, backordered=state.stock.backordered + event.quantity)
            return replace(state, stock=stock)
        case BackorderLineReduced():
            return _reduce_line(state, event)
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
            received = replace(state, stock=stock, receipt_ids=state.receipt_ids | {event.receipt_id})
            if event.po_id is None:
                return received
            return _change_po(received, event.po_id, lambda po: po.receive(event.quantity))
        case BackorderEtaUpdated():
            key = (event.order_id, event.line_id)
            return replace(state, announced_etas={**state.announced_etas, key: event.eta})
        case _:
            raise ValueError(f"{type(event).__name__} is not an event of a procurement stream")


def rebuild(sku: str, events: Iterable[EventPayload]) -> ProcurementState:
    """The SKU's state from its stream's events, oldest first."""
    return fold(initial_state(sku), events)


def fold(state: ProcurementState, events: Iterable[EventPayload]) -> ProcurementState:
    for event in events:
        state = evolve(state, event)
    return state


def _total(entries: Iterable[BackorderQueueEntry]) -> int:
    return sum(e.quantity for e in entries)


def _with_queue(
    state: ProcurementState, queue: tuple[BackorderQueueEntry, ...], *, backordered: int
) -> ProcurementState:
    """Replace the queue; a line that left it is forgotten, so if it ever returns it is announced anew."""
    waiting = {line_key(e) for e in queue}
    announced = {k: eta for k, eta in state.announced_etas.items() if k in waiting}
    stock = replace(state.stock, backordered=max(0, backordered))
    return replace(state, queue=queue, announced_etas=announced, stock=stock)


def _reduce_line(state: ProcurementState, event: BackorderLineReduced) -> ProcurementState:
    key = (event.order_id, event.line_id)
    queue, left_queue = [], 0
    for entry in state.queue:
        if line_key(entry) != key:
            queue.append(entry)
            continue
        # Count only what leaves our copy of the queue: a snapshot may have removed it already.
        left_queue = entry.quantity - event.remaining
        if event.remaining > 0:
            queue.append(entry.model_copy(update={"quantity": event.remaining}))
    reduced = _with_queue(state, tuple(queue), backordered=state.stock.backordered - max(0, left_queue))
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
            supplier_id=event.supplier_id,
            revision=event.revision,
            quantity=event.quantity,
            unit_cost=event.unit_cost,
            currency=event.currency,
            expected_arrival=event.expected_arrival,
        )
        return replace(state, purchase_orders=(*state.purchase_orders, po))
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
    orders = tuple(change(po) if po.po_id == po_id else po for po in state.purchase_orders)
    return replace(state, purchase_orders=orders)


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
    if incoming.sku != state.sku:
        raise ValueError(
            f"{type(incoming).__name__} for {incoming.sku!r} sent to the stream of {state.sku!r}"
        )
    facts = _facts(state, incoming, today)
    if not facts:
        return []
    informed = fold(state, facts)
    purchases = _purchases(informed, today, policy)
    planned = fold(informed, purchases)
    return [*facts, *purchases, *_eta_changes(planned, today, _trigger(incoming))]


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
            unchanged = tuple(incoming.entries) == state.queue
            if unchanged and state.stock.backordered == _total(incoming.entries):
                return []  # confirms what the fill or release before it told us: nothing to record
            return [BackorderQueueRecorded(sku=sku, entries=incoming.entries)]
        case StockShort():
            already_queued = any(line_key(e) == (incoming.order_id, incoming.line_id) for e in state.queue)
            if incoming.disposition != "backordered" or already_queued:
                return []
            return [
                BackorderShortfallRecorded(
                    sku=sku,
                    order_id=incoming.order_id,
                    line_id=incoming.line_id,
                    quantity=incoming.short_quantity,
                )
            ]
        case BackorderFulfilled():
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


def _released(state: ProcurementState, released: StockReleased) -> list[EventPayload]:
    """Cancelled units: reserved ones become free stock (which inventory may give to the queue: a fill
    would follow), backordered ones leave the queue."""
    facts: list[EventPayload] = []
    line = {"sku": state.sku, "order_id": released.order_id, "line_id": released.line_id}
    if released.released_reserved > 0:
        facts.append(ReservedStockReleased(**line, quantity=released.released_reserved))
    if released.dropped_backordered > 0:
        waiting = next((e.quantity for e in state.queue if line_key(e) == line_key(released)), 0)
        remaining = max(0, waiting - released.dropped_backordered)
        facts.append(
            BackorderLineReduced(
                **line, quantity=released.dropped_backordered, remaining=remaining, cause="released"
            )
        )
    return facts


def open_need(state: ProcurementState) -> int:
    """Units the SKU needs that neither free stock nor open POs cover (see planning.replenishment_need).
    After a decision it is 0 unless nothing can be bought: no supplier catalogue."""
    return replenishment_need(
        backordered=state.stock.backordered,
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
    for po in reversed(state.purchase_orders):
        if po.amendable and po.supplier_id == supplier_id:
            revised = revised_arrival(po.expected_arrival, fresh_arrival, policy)
            if revised is not None:
                return po, revised
    return None


def _eta_changes(state: ProcurementState, today: date, trigger: str) -> list[BackorderEtaUpdated]:
    arrivals = [batch for po in state.open_purchase_orders for batch in po.arrivals()]
    assigned = assign_etas(state.queue, arrivals, free_stock=state.stock.free_stock, today=today)
    return eta_updates(state.sku, state.queue, assigned, state.announced_etas, trigger)


def _trigger(incoming: Incoming) -> str:
    """What prompted a re-plan, in words for the ETA's reason."""
    match incoming:
        case SetSupplierTerms():
            return "supplier terms changed"
        case ReorderPointReached():
            return "stock position updated"
        case BackorderQueueChanged():
            return "backorder queue changed"
        case StockShort():
            return "new backorder"
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
