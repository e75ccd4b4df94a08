"""Procurement of one SKU, decider style: `decide` turns an input into events, `evolve` folds them.

State is per SKU (one stream per SKU) and is rebuilt by folding `evolve` over that stream alone: the
inputs from other services are first recorded as internal facts (see `events.py`), then the decision
(buy or not, which ETAs changed) is made on the state those facts produce. No I/O and no clock: the
caller passes `today`.

Every event costs O(1) or O(log n) to fold, whatever the length of the queue or the history: the queue
is a persistent ranked map, announced ETAs and receipt ids persistent hash tries, and a decision
re-plans only the lines whose ETA it can have moved (replan.py). Loops over open POs are over what is
in flight (a handful), never over the queue.

The rules, in the order a decision applies them:
- Free stock is inventory's `available` (StockLevelChanged), plus receipts procurement counted that
  inventory's figures do not hold yet; between two reports procurement moves it by the receipts,
  fills and releases it sees (see `StockLevelRecorded`).
- No ETA is before today. A PO whose expected date passed is overdue: every decision (and the daily
  job's `ReplanOverdue`) moves its outstanding units to today + `PurchasePolicy.overdue_grace_days`
  once (the state keeps the revised date, so a second run the same day finds nothing to do).
- A need nothing covers is bought (a new PO or a larger revision of an unconfirmed one). When
  backorders are cancelled, surplus supply shrinks or cancels unconfirmed POs, latest first, down to
  what the policy still asks for; confirmed ones stay (their surplus is future stock).
- A SKU without a supplier buys nothing: its uncovered lines hear `basis="no_supplier"`. A change of
  the catalogue's suppliers is published (SkuSourcingChanged); `PublishSourcing` publishes a catalogue
  set before that event existed, which inventory would otherwise never hear of.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Self, TypeAlias

from pydantic import BaseModel, Field, model_validator
from rpds import HashTrieMap, HashTrieSet

from backbone.contracts.envelope import STRICT, EventPayload
from backbone.contracts.events import (
    AUTO_REPLENISHMENT_ACTOR,
    BackorderEtaUpdated,
    BackorderFulfilled,
    BackorderQueueChanged,
    GoodsReceived,
    PurchaseOrderAcknowledged,
    PurchaseOrderCancelled,
    PurchaseOrderIssued,
    ReorderPointReached,
    ReorderPolicyPlanned,
    ServiceLevel,
    ShipmentNoticed,
    SkuPolicyChanged,
    SkuSourcingChanged,
    StockLevelChanged,
    StockReleased,
)
from backbone.contracts.types import Identifier, NonNegativeQuantity, Sku
from backbone.ranked import RankedMap
from backbone.values import replace
from services.procurement.eta import ArrivalBatch, LineKey, Supply, line_key
from services.procurement.events import (
    BackorderLineReduced,
    BackorderQueueRecorded,
    BackorderShortfallRecorded,
    DemandRecorded,
    PurchaseOrderConfirmed,
    PurchaseOrderOverdue,
    QueueLineChanged,
    ReceiptRecorded,
    ReorderLevelsRecorded,
    ReplenishmentMode,
    ReplenishmentSettingsChanged,
    ReservedStockReleased,
    ShipmentExpected,
    StockLevelRecorded,
    StockPositionRecorded,
    SupplierDelayNoted,
    SupplierTerms,
    SupplierTermsSet,
    check_catalogue,
)
from services.procurement.forecast import DemandEstimate, LeadTimeEstimate, Recommendation
from services.procurement.planning import (
    DEFAULT_POLICY,
    MAX_PO_QUANTITY,
    PurchasePolicy,
    choose_supplier,
    max_order_quantity,
    order_quantity,
    purchase_order_id,
    reduced_quantity,
    replenishment_need,
    revised_arrival,
    surplus,
)
from services.procurement.queue import WaitingQueue, legacy_queue, queue_rank, reduce_line, set_line
from services.procurement.replan import LineChange, all_lines, lines_to_replan, updates_for
from services.procurement.replenishment import (
    DemandDay,
    ReplenishmentSettings,
    levels_to_apply,
    recommendation,
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


class ReplanOverdue(BaseModel):
    """The daily job's command: re-plan the SKU's overdue purchase orders (a no-op if none is)."""

    model_config = STRICT

    sku: Sku


class PublishSourcing(BaseModel):
    """The startup catch-up's command: publish the SKU's suppliers if inventory was never told them (a
    catalogue set before SkuSourcingChanged existed); a no-op once it was."""

    model_config = STRICT

    sku: Sku


class SetReplenishment(BaseModel):
    """Admin command: how the SKU's reorder point and safety stock are kept (see ReplenishmentSettings)."""

    model_config = STRICT

    sku: Sku
    mode: ReplenishmentMode
    service_level: ServiceLevel
    actor: Identifier
    today_units: NonNegativeQuantity = Field(
        default=0, description="The open day's demand so far (the ledger's): switching to auto applies it too"
    )


@dataclass(frozen=True, slots=True)
class SupplierDelay:
    """A supplier's lateness as its receipts show it (the P80 of days late, at least 3 receipts)."""

    delay_days: int
    receipts: int


@dataclass(frozen=True, slots=True)
class ReviewReplenishment:
    """The replenishment review's command (review.py): the SKU's closed demand days not recorded yet
    (in day order), the units its open day has seen so far, and its suppliers' lateness now."""

    sku: str
    closed_days: tuple[DemandDay, ...] = ()
    today_units: int = 0
    supplier_delays: tuple[tuple[str, SupplierDelay], ...] = ()


@dataclass(frozen=True, slots=True)
class Origin:
    """The consumed message an input came in (ids only, so the domain stays free of I/O): inventory's
    reports name the receipt they are the effect of by its message id (causation_id)."""

    event_id: str
    causation_id: str | None = None


Incoming: TypeAlias = (
    BackorderQueueChanged
    | StockLevelChanged
    | ReorderPointReached
    | BackorderFulfilled
    | StockReleased
    | GoodsReceived
    | PurchaseOrderAcknowledged
    | ShipmentNoticed
    | SkuPolicyChanged
    | SetSupplierTerms
    | SetReplenishment
    | ReplanOverdue
    | ReviewReplenishment
    | PublishSourcing
)

# The contract's events procurement consumes (from the inventory and supplier topics). StockShort is not
# among them: the line's "joined" BackorderQueueChanged that follows it says all procurement needs; nor
# are reservations, adjustments, counts or shipments: the StockLevelChanged after each says their effect.
# ReorderPointReached and SkuPolicyChanged bring the reorder point and safety stock. The demand ledger
# (projections.record_demand) also reads StockReserved, StockShort and StockReleased, without a stream.
CONSUMED_EVENTS: tuple[type[EventPayload], ...] = (
    BackorderQueueChanged,
    SkuPolicyChanged,
    StockLevelChanged,
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
    revised_date: date | None = None  # overdue: nothing arrives before it (until the supplier's news)
    cancelled: bool = False
    issued_on: date | None = None  # expected arrival - the quoted lead time (None: supplier unknown then)

    @property
    def acknowledged(self) -> bool:
        return self.confirmed_quantity is not None

    @property
    def outstanding(self) -> int:
        """Units still to come: what the supplier committed to (or, before it said, what we ordered)."""
        if self.cancelled:
            return 0
        committed = self.quantity if self.confirmed_quantity is None else self.confirmed_quantity
        return max(0, committed - self.received)

    @property
    def due_date(self) -> date | None:
        """When its first outstanding units are due by the supplier's dates (None when nothing is to come)."""
        return self.due_on()

    def due_on(self, delay_days: int = 0) -> date | None:
        """When its first outstanding units are expected, the supplier's dates `delay_days` later."""
        arrivals = self.arrivals(delay_days)
        return min(a.expected_date for a in arrivals) if arrivals else None

    @property
    def is_open(self) -> bool:
        return self.outstanding > 0

    @property
    def amendable(self) -> bool:
        """Can still be enlarged by a new revision: the supplier has neither confirmed nor shipped."""
        return self.is_open and not self.acknowledged and not self.shipments and self.received == 0

    def arrivals(self, delay_days: int = 0) -> list[ArrivalBatch]:
        """Outstanding units by expected day: noticed shipments on their dates, the rest on the
        supplier's confirmed date (or our estimate before it confirmed) plus `delay_days`, the lateness
        its record shows (a shipment under way has the carrier's date); none before a revised date."""
        batches, left = [], self.outstanding
        for shipment in sorted(self.shipments, key=lambda s: (s.expected_date, s.asn_id)):
            quantity = min(shipment.quantity, left)
            if quantity > 0:
                batches.append(
                    ArrivalBatch(self._not_before_revision(shipment.expected_date), self.po_id, quantity)
                )
                left -= quantity
        if left > 0:
            promised = self.confirmed_date or self.expected_arrival
            adjusted = promised + timedelta(days=delay_days)
            due = self._not_before_revision(adjusted)
            # Named only when the lateness moved it, not an overdue re-plan.
            moved = promised if delay_days and due == adjusted else None
            batches.append(ArrivalBatch(due, self.po_id, left, moved))
        return batches

    def _not_before_revision(self, expected: date) -> date:
        return expected if self.revised_date is None else max(expected, self.revised_date)

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
    on_hand: int = 0  # as inventory last reported it: a rise names a receipt that may still be on its way


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
    # Receipts counted in free stock that inventory's figures do not hold yet (message id -> units);
    # in flight only: each leaves with inventory's report of it.
    unreported_receipts: HashTrieMap[str, int] = field(default_factory=HashTrieMap)
    unreported_units: int = 0
    # Messages (receipts, by message id) that inventory's reports already hold in on hand but that
    # procurement has not read yet: the receipt is then not counted again when it arrives. Only a
    # consumed receipt raises on hand with a causation id (an adjustment or count is an API command,
    # without one), so each entry leaves when its receipt arrives; none is dropped, however many the
    # inventory topic runs ahead (a backlog, a restart): a forgotten one would count its goods twice.
    raised_by: HashTrieSet[str] = field(default_factory=HashTrieSet)
    # The supplier ids last published (SkuSourcingChanged); None: never, inventory knows no supplier.
    published_sourcing: tuple[str, ...] | None = None
    # Replenishment (replenishment.py): the settings, the closed days' demand, the lead time each
    # supplier's receipts show and the lateness of each (all of constant size per supplier).
    replenishment: ReplenishmentSettings = field(default_factory=ReplenishmentSettings)
    demand: DemandEstimate | None = None
    lead_times: HashTrieMap[str, LeadTimeEstimate] = field(default_factory=HashTrieMap)
    supplier_delays: HashTrieMap[str, int] = field(default_factory=HashTrieMap)

    @property
    def sourced(self) -> bool:
        """Whether the SKU can be bought: its catalogue has a (primary) supplier."""
        return bool(self.suppliers)

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

    def delay_of(self, supplier_id: str) -> int:
        return self.supplier_delays.get(supplier_id, 0)

    def lead_time(self, supplier: SupplierTerms) -> LeadTimeEstimate:
        """Issue to receipt as the supplier's receipts of this SKU show it, else as it quotes."""
        learnt = self.lead_times.get(supplier.supplier_id)
        return learnt if learnt is not None else LeadTimeEstimate.quoted(supplier.lead_time_days)

    def recommendation(
        self, today: date, policy: PurchasePolicy = DEFAULT_POLICY, today_units: int = 0
    ) -> Recommendation | None:
        """The reorder point and safety stock the SKU's demand and the chosen supplier's lead time imply
        (None without demand seen or a supplier)."""
        supplier = choose_supplier(self.suppliers, policy, self.supplier_delays)
        if supplier is None:
            return None
        return recommendation(
            self.demand, self.lead_time(supplier), self.replenishment, today=today, today_units=today_units
        )

    def supply(self, today: date, *, clamp: bool = True) -> Supply:
        """What serves the queue: free stock today, then the open POs' arrivals (see Supply.of), each
        supplier's dates moved by its lateness."""
        arrivals = [
            batch for po in self.open_purchase_orders for batch in po.arrivals(self.delay_of(po.supplier_id))
        ]
        return Supply.of(
            arrivals, free_stock=self.stock.free_stock, today=today, sourced=self.sourced, clamp=clamp
        )


def initial_state(sku: str) -> ProcurementState:
    return ProcurementState(sku=sku)


# --- evolve -----------------------------------------------------------------------------------------


def evolve(state: ProcurementState, event: EventPayload) -> ProcurementState:
    """The state after one event of the SKU's procurement stream."""
    match event:
        case SupplierTermsSet():
            return replace(state, suppliers=tuple(event.suppliers))
        case ReplenishmentSettingsChanged():
            settings = ReplenishmentSettings(mode=event.mode, service_level=event.service_level)
            return replace(state, replenishment=settings)
        case DemandRecorded():
            return _demand_recorded(state, event)
        case SupplierDelayNoted():
            delays = state.supplier_delays.discard(event.supplier_id)
            if event.delay_days:
                delays = delays.insert(event.supplier_id, event.delay_days)
            return replace(state, supplier_delays=delays)
        case ReorderPolicyPlanned() | ReorderLevelsRecorded():
            stock = replace(state.stock, reorder_point=event.reorder_point, safety_stock=event.safety_stock)
            return replace(state, stock=stock)
        case SkuSourcingChanged():
            return replace(state, published_sourcing=tuple(event.supplier_ids))
        case PurchaseOrderCancelled():
            return _change_po(state, event.po_id, lambda po: replace(po, cancelled=True))
        case StockPositionRecorded():
            # Inventory's backordered figure is not taken: the queue's units are the waiting demand.
            state = _receipt_reported(state, event.receipt_message)
            stock = replace(
                state.stock,
                free_stock=event.available + state.unreported_units,
                on_hand=event.on_hand,
                reorder_point=event.reorder_point,
                safety_stock=event.safety_stock,
            )
            return replace(state, stock=stock)
        case StockLevelRecorded():
            return _stock_level(_receipt_reported(state, event.receipt_message), event)
        case PurchaseOrderOverdue():
            return _change_po(state, event.po_id, lambda po: replace(po, revised_date=event.revised_date))
        case QueueLineChanged():
            key = line_key(event)
            rank = queue_rank(key, event.priority_score, event.placed_at, event.sequence)
            queued = replace(state, queue=set_line(state.queue, key, rank, event.remaining))
            if event.change == "joined":
                # Inventory queues a shortfall only once nothing is available: free stock is 0 then (plus
                # receipts it has not seen), even while its StockLevelChanged for the order is on its way.
                queued = replace(queued, stock=replace(queued.stock, free_stock=queued.unreported_units))
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
            # The supplier's word replaces a revision of ours; if its date is past too, the decision
            # that records it revises the PO again.
            return _change_po(
                state,
                event.po_id,
                lambda po: replace(
                    po,
                    confirmed_quantity=event.confirmed_quantity,
                    confirmed_date=event.confirmed_date,
                    revised_date=None,
                ),
            )
        case ShipmentExpected():
            notice = Shipment(event.asn_id, event.quantity, event.expected_date)
            return _change_po(
                state,
                event.po_id,
                lambda po: replace(
                    po,
                    shipments=(*(s for s in po.shipments if s.asn_id != event.asn_id), notice),
                    revised_date=None,
                ),
            )
        case ReservedStockReleased():
            stock = replace(state.stock, free_stock=state.stock.free_stock + event.quantity)
            return replace(state, stock=stock)
        case ReceiptRecorded():
            received = _receipt(state, event)
            if event.po_id is None:
                return received
            return _change_po(
                _lead_time_observed(received, event), event.po_id, lambda po: po.receive(event.quantity)
            )
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


def _receipt(state: ProcurementState, event: ReceiptRecorded) -> ProcurementState:
    """Free stock rises by the goods unless inventory's figures hold them already; until they do, the
    receipt is remembered as unreported."""
    state = replace(state, receipt_ids=state.receipt_ids.insert(event.receipt_id))
    # Decided as in_stock_level exactly when its message is in raised_by; a stream of an earlier
    # release, that remembered only the latest 16 raises, recorded some as not: folded now, their
    # goods are not counted twice either.
    if event.in_stock_level or (event.message_id is not None and event.message_id in state.raised_by):
        return replace(state, raised_by=state.raised_by.discard(event.message_id or ""))
    stock = replace(state.stock, free_stock=state.stock.free_stock + event.quantity)
    state = replace(state, stock=stock)
    if event.message_id is None:  # recorded before inventory reported its figures
        return state
    return replace(
        state,
        unreported_receipts=state.unreported_receipts.insert(event.message_id, event.quantity),
        unreported_units=state.unreported_units + event.quantity,
    )


def _demand_recorded(state: ProcurementState, event: DemandRecorded) -> ProcurementState:
    """A closed day enters the estimate; its first day starts the SKU's observation. A day without units
    ordered (only cancellations) leaves it: Croston counts the zero days in closed form."""
    if event.demanded == 0:
        return state
    demand = state.demand if state.demand is not None else DemandEstimate(started=event.day)
    return replace(state, demand=demand.observe(event.day, event.demanded))


def _lead_time_observed(state: ProcurementState, receipt: ReceiptRecorded) -> ProcurementState:
    """A PO's first receipt tells how long its supplier took from issue to delivery."""
    po = state.purchase_order(receipt.po_id or "")
    if po is None or po.received > 0 or po.issued_on is None or receipt.received_on < po.issued_on:
        return state
    learnt = state.lead_times.get(po.supplier_id) or LeadTimeEstimate.quoted(
        (po.expected_arrival - po.issued_on).days
    )
    observed = learnt.observe((receipt.received_on - po.issued_on).days)
    return replace(state, lead_times=state.lead_times.insert(po.supplier_id, observed))


def _receipt_reported(state: ProcurementState, message_id: str | None) -> ProcurementState:
    """Inventory's figures now hold the receipt: it is no longer in flight."""
    if message_id is None or message_id not in state.unreported_receipts:
        return state
    return replace(
        state,
        unreported_receipts=state.unreported_receipts.discard(message_id),
        unreported_units=state.unreported_units - state.unreported_receipts[message_id],
    )


def _stock_level(state: ProcurementState, event: StockLevelRecorded) -> ProcurementState:
    raised = state.raised_by if event.raised_by is None else state.raised_by.insert(event.raised_by)
    stock = replace(state.stock, free_stock=event.available + state.unreported_units, on_hand=event.on_hand)
    return replace(state, stock=stock, raised_by=raised)


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
        terms = next((s for s in state.suppliers if s.supplier_id == event.supplier_id), None)
        po = PurchaseOrder(
            po_id=event.po_id,
            sequence=len(state.purchase_orders) + 1,
            supplier_id=event.supplier_id,
            revision=event.revision,
            quantity=event.quantity,
            unit_cost=event.unit_cost,
            currency=event.currency,
            expected_arrival=event.expected_arrival,
            issued_on=None if terms is None else event.expected_arrival - timedelta(terms.lead_time_days),
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
    origin: Origin | None = None,
) -> list[EventPayload]:
    """Events to append to the SKU's stream for one input: the facts it brings, the revision of any
    overdue PO, then any purchase (a new PO or a larger revision of an open one) or, when backorders
    were cancelled, the reduction or cancellation of unconfirmed POs no longer needed, then the ETA of
    every line whose date changed. `origin`: the consumed message's ids (None for a command).
    Raises ProcurementConflict for an input that contradicts the stream (nothing is decided)."""
    return decide_and_fold(state, incoming, today=today, policy=policy, origin=origin)[1]


def decide_and_fold(
    state: ProcurementState,
    incoming: Incoming,
    *,
    today: date,
    policy: PurchasePolicy = DEFAULT_POLICY,
    origin: Origin | None = None,
) -> tuple[ProcurementState, list[EventPayload]]:
    """`decide`, and the state its events lead to (deciding folds them anyway)."""
    if incoming.sku != state.sku:
        raise ValueError(
            f"{type(incoming).__name__} for {incoming.sku!r} sent to the stream of {state.sku!r}"
        )
    facts = _facts(state, incoming, today, origin)
    informed = fold(state, facts)
    plan = _reorder_plan(informed, incoming, today, policy)
    informed, facts = fold(informed, plan), [*facts, *plan]
    overdue = _overdue(informed, today, policy)
    if not facts and not overdue:
        return state, []
    informed = fold(informed, overdue)
    resourced = _resourced(informed, today, policy) if isinstance(incoming, ReviewReplenishment) else []
    informed = fold(informed, resourced)
    changes = [*resourced, *_purchases(informed, today, policy)]
    if not changes and _cancels_backorders(incoming, facts):
        changes = _shrinks(informed)
    planned = fold(informed, changes)
    trigger = overdue_trigger(overdue) if overdue else replan_trigger(incoming)
    etas = _eta_changes(state, planned, facts, today, trigger)
    return fold(planned, etas), [*facts, *overdue, *changes, *etas]


def _facts(
    state: ProcurementState, incoming: Incoming, today: date, origin: Origin | None = None
) -> list[EventPayload]:
    """What procurement learns from an input, as events of its own stream; [] if it does not concern it."""
    sku = state.sku
    match incoming:
        case SetSupplierTerms():
            terms_set = SupplierTermsSet(sku=sku, suppliers=incoming.suppliers, actor=incoming.actor)
            return [terms_set, *_sourcing_news(state, incoming.suppliers)]
        case PublishSourcing():
            return _sourcing_news(state, state.suppliers)
        case SetReplenishment():
            settings = ReplenishmentSettings(mode=incoming.mode, service_level=incoming.service_level)
            if settings == state.replenishment:
                return []
            return [
                ReplenishmentSettingsChanged(
                    sku=sku, mode=incoming.mode, service_level=incoming.service_level, actor=incoming.actor
                )
            ]
        case ReviewReplenishment():
            return _review_facts(state, incoming)
        case SkuPolicyChanged():
            levels = (incoming.reorder_point, incoming.safety_stock)
            # Auto mode's own plan: the state took it when planning (and a later one may be on its way).
            known = (state.stock.reorder_point, state.stock.safety_stock)
            if incoming.actor == AUTO_REPLENISHMENT_ACTOR or levels == known:
                return []
            return [
                ReorderLevelsRecorded(
                    sku=sku,
                    reorder_point=incoming.reorder_point,
                    safety_stock=incoming.safety_stock,
                    actor=incoming.actor,
                )
            ]
        case StockLevelChanged():
            return _stock_level_fact(state, incoming, origin)
        case ReplanOverdue():
            return []  # the overdue check every decision makes is all it asks for
        case ReorderPointReached():
            caused_by = origin.causation_id if origin is not None else None
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
                    receipt_message=caused_by if caused_by in state.unreported_receipts else None,
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
            message_id = origin.event_id if origin is not None else None
            return [
                ReceiptRecorded(
                    sku=sku,
                    receipt_id=incoming.receipt_id,
                    po_id=incoming.po_id,
                    quantity=incoming.quantity,
                    received_on=incoming.received_at.date(),
                    message_id=message_id,
                    in_stock_level=message_id is not None and message_id in state.raised_by,
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


def _review_facts(state: ProcurementState, review: ReviewReplenishment) -> list[EventPayload]:
    """The closed days not recorded yet (a day already in the estimate is not recorded twice: the review
    may be retried) and each supplier's lateness where it changed."""
    last = state.demand.last_day if state.demand is not None else None
    facts: list[EventPayload] = [
        DemandRecorded(
            sku=state.sku,
            day=d.day,
            demanded=d.demanded,
            backordered=d.backordered,
            rejected=d.rejected,
            cancelled=d.cancelled,
        )
        for d in review.closed_days
        if last is None or d.day > last
    ]
    known = {s.supplier_id for s in state.suppliers}
    facts.extend(
        SupplierDelayNoted(
            sku=state.sku, supplier_id=supplier_id, delay_days=delay.delay_days, receipts=delay.receipts
        )
        for supplier_id, delay in review.supplier_delays
        if supplier_id in known and delay.delay_days != state.delay_of(supplier_id)
    )
    return facts


def _reorder_plan(
    state: ProcurementState, incoming: Incoming, today: date, policy: PurchasePolicy
) -> list[EventPayload]:
    """Auto mode's new levels, decided when the settings change or the review runs: published for
    inventory to apply, and taken by procurement's own plan at once (so it buys before the shortfall)."""
    if not isinstance(incoming, ReviewReplenishment | SetReplenishment):
        return []
    # A review within the day only raises the levels; staff switching to auto take the plan as it is.
    intraday = isinstance(incoming, ReviewReplenishment) and incoming.today_units > 0
    recommended = state.recommendation(today, policy, incoming.today_units)
    current = (state.stock.reorder_point, state.stock.safety_stock)
    levels = levels_to_apply(recommended, current, settings=state.replenishment, intraday=intraday)
    if levels is None or recommended is None:
        return []
    return [
        ReorderPolicyPlanned(
            sku=state.sku,
            reorder_point=levels[0],
            safety_stock=levels[1],
            service_level=state.replenishment.service_level,
            demand_per_day=_decimal(recommended.demand_per_day, 4),
            demand_sigma_per_day=_decimal(recommended.demand_sigma_per_day, 4),
            lead_time_days=_decimal(recommended.lead_time_days, 2),
            lead_time_sigma_days=_decimal(recommended.lead_time_sigma_days, 2),
            planned_on=today,
        )
    ]


def _decimal(value: float, places: int) -> Decimal:
    return Decimal(str(round(value, places)))


def _supplier_ids(suppliers: Sequence[SupplierTerms]) -> list[str]:
    """The catalogue's suppliers, primary first (as published in SkuSourcingChanged)."""
    return [s.supplier_id for s in sorted(suppliers, key=lambda s: s.role != "primary")]


def _sourcing_news(state: ProcurementState, suppliers: Sequence[SupplierTerms]) -> list[EventPayload]:
    """SkuSourcingChanged if the catalogue's suppliers are not what inventory was last told. Compared with
    the published ids, not the previous catalogue: a catalogue set before the event existed was never
    told, and inventory takes a SKU it heard nothing of as one without a supplier."""
    supplier_ids = _supplier_ids(suppliers)
    if supplier_ids == list(state.published_sourcing or ()):
        return []
    return [SkuSourcingChanged(sku=state.sku, supplier_ids=supplier_ids)]


def _stock_level_fact(
    state: ProcurementState, level: StockLevelChanged, origin: Origin | None
) -> list[EventPayload]:
    """Inventory's figures, recorded when they change what procurement plans with (free stock, on hand,
    the receipts in flight); the same figures again are no news."""
    caused_by = origin.causation_id if origin is not None else None
    receipt = caused_by if caused_by is not None and caused_by in state.unreported_receipts else None
    in_flight = state.unreported_units - (state.unreported_receipts[receipt] if receipt else 0)
    # A rise of on hand for a message procurement does not know may be a receipt still on its way here.
    raised = caused_by if receipt is None and caused_by and level.on_hand > state.stock.on_hand else None
    if (
        receipt is None
        and raised is None
        and level.available + in_flight == state.stock.free_stock
        and level.on_hand == state.stock.on_hand
    ):
        return []
    return [
        StockLevelRecorded(
            sku=state.sku,
            on_hand=level.on_hand,
            reserved=level.reserved,
            available=level.available,
            backordered=level.backordered,
            receipt_message=receipt,
            raised_by=raised,
        )
    ]


def _overdue(state: ProcurementState, today: date, policy: PurchasePolicy) -> list[EventPayload]:
    """A revision for each open PO with units expected before today (open POs are few)."""
    revised = today + timedelta(days=policy.overdue_grace_days)
    return [
        PurchaseOrderOverdue(sku=state.sku, po_id=po.po_id, was_due=due, revised_date=revised)
        for po in state.open_purchase_orders
        if (due := po.due_on(state.delay_of(po.supplier_id))) is not None and due < today
    ]


def overdue_trigger(overdue: Sequence[EventPayload]) -> str:
    revisions = [e for e in overdue if isinstance(e, PurchaseOrderOverdue)]
    names = ", ".join(f"{e.po_id} (due {e.was_due.isoformat()})" for e in revisions)
    return f"overdue purchase order re-planned: {names}"


def _cancels_backorders(incoming: Incoming, facts: Sequence[EventPayload]) -> bool:
    """Whether the input took waiting or reserved units away without a fill (a cancellation)."""
    if isinstance(incoming, StockReleased):
        return True
    return isinstance(incoming, BackorderQueueChanged) and incoming.change != "joined" and bool(facts)


def _shrinks(state: ProcurementState) -> list[EventPayload]:
    """Unconfirmed POs reduced (a new revision) or cancelled, latest first, while supply exceeds what
    the policy asks for (the waiting units plus the target level); confirmed POs stay: what the
    supplier committed to will come, and its surplus is true future stock. Rounded to what each
    supplier sells, so a reduction may keep a few surplus units."""
    excess = surplus(
        backordered=state.backordered,
        reorder_point=state.stock.reorder_point,
        safety_stock=state.stock.safety_stock,
        free_stock=state.stock.free_stock,
        on_order=state.on_order,
    )
    changes: list[EventPayload] = []
    for po in reversed(state.open_purchase_orders):
        if excess <= 0:
            break
        if not po.amendable:
            continue
        terms = next((s for s in state.suppliers if s.supplier_id == po.supplier_id), None)
        quantity = reduced_quantity(po.quantity, excess, terms)
        if quantity == 0:
            changes.append(
                PurchaseOrderCancelled(
                    po_id=po.po_id,
                    supplier_id=po.supplier_id,
                    sku=state.sku,
                    reason="the backorders it was for were cancelled: nothing needs it any more",
                )
            )
        elif quantity < po.quantity:
            changes.append(
                PurchaseOrderIssued(
                    po_id=po.po_id,
                    revision=po.revision + 1,
                    supplier_id=po.supplier_id,
                    sku=state.sku,
                    quantity=quantity,
                    unit_cost=po.unit_cost,
                    currency=po.currency,
                    expected_arrival=po.expected_arrival,
                )
            )
        excess -= po.quantity - quantity
    return changes


def _resourced(state: ProcurementState, today: date, policy: PurchasePolicy) -> list[EventPayload]:
    """Unconfirmed POs of a supplier whose usual lateness now makes it lose to the supplier the policy
    chooses: cancelled when a PO issued today to that one arrives sooner by more than the policy's days,
    so the purchase that follows buys their units there and the lines they served get the better date.
    A PO the supplier confirmed or shipped is its commitment and stays."""
    chosen = choose_supplier(state.suppliers, policy, state.supplier_delays)
    if chosen is None:
        return []
    fresh = today + timedelta(days=chosen.lead_time_days + state.delay_of(chosen.supplier_id))
    cancelled: list[EventPayload] = []
    for po in state.open_purchase_orders:
        late = state.delay_of(po.supplier_id)
        due = po.due_on(late)
        if po.supplier_id == chosen.supplier_id or not po.amendable or due is None:
            continue
        if (due - fresh).days > policy.alternate_min_days_sooner:
            reason = (
                f"re-sourced to {chosen.supplier_id} (expected {fresh.isoformat()}): {po.supplier_id}'s"
                f" receipts come {late} days late, so this order would arrive {due.isoformat()}"
            )
            cancelled.append(
                PurchaseOrderCancelled(
                    po_id=po.po_id, supplier_id=po.supplier_id, sku=state.sku, reason=reason
                )
            )
    return cancelled


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
    """Normally one purchase: a larger revision of the chosen supplier's still-amendable PO if that keeps
    its date (see PurchasePolicy), else a new PO. Rounding to the supplier's MOQ and packs makes one
    purchase enough for the whole need, unless the need exceeds what one PO may hold (the contract's
    maximum quantity): then further POs are issued, as few as hold it (the waiting units and the
    target level are each within that maximum, so a handful at most)."""
    need = open_need(state)
    supplier = choose_supplier(state.suppliers, policy, state.supplier_delays)
    if need == 0 or supplier is None:
        return []
    arrival = today + timedelta(days=supplier.lead_time_days)
    enlargeable = _enlargeable(state, supplier.supplier_id, arrival, policy)
    if (
        enlargeable is not None
        and order_quantity(enlargeable[0].quantity + need, supplier) <= MAX_PO_QUANTITY
    ):
        po, revised = enlargeable
        return [
            _issued(
                state,
                supplier,
                po.po_id,
                po.revision + 1,
                order_quantity(po.quantity + need, supplier),
                revised,
            )
        ]
    purchases: list[EventPayload] = []
    sequence = len(state.purchase_orders)
    while need > 0:
        sequence += 1
        quantity = min(order_quantity(need, supplier), max_order_quantity(supplier))
        po_id = purchase_order_id(state.sku, sequence)
        purchases.append(_issued(state, supplier, po_id, 1, quantity, arrival))
        need -= quantity
    return purchases


def _issued(
    state: ProcurementState, supplier: SupplierTerms, po_id: str, revision: int, quantity: int, arrival: date
) -> PurchaseOrderIssued:
    return PurchaseOrderIssued(
        po_id=po_id,
        revision=revision,
        supplier_id=supplier.supplier_id,
        sku=state.sku,
        quantity=quantity,
        unit_cost=supplier.unit_cost,
        currency=supplier.currency,
        expected_arrival=arrival,
    )


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
    a line that moved to another rank (a correction from inventory) makes it re-plan them all. Every
    decision revises overdue POs first, so no line was told a date its supply had clamped: the supply
    before is compared with its passed dates as they were told."""
    supply = planned.supply(today)
    changed = {line_key(f) for f in facts if isinstance(f, QueueLineChanged | BackorderLineReduced)}
    change = _line_change(before.queue, planned.queue, next(iter(changed))) if len(changed) == 1 else None
    if changed and change is None:
        lines = all_lines(planned.queue)
    else:
        lines = lines_to_replan(planned.queue, before.supply(today, clamp=False), supply, change)
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
        case StockLevelChanged():
            return "stock level updated"
        case PublishSourcing():
            return "supplier catalogue published"
        case SetReplenishment():
            return "replenishment settings changed"
        case ReviewReplenishment():
            return "review of the demand and the suppliers' lateness"
        case SkuPolicyChanged():
            return "reorder point changed"
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
