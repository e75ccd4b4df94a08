"""The stock of one SKU as a decider: `decide(state, command, priority)` -> events, `evolve(state, event)`.

Pure: no I/O, no clock, no randomness. A SKU's state is rebuilt by folding `evolve` over its event
stream (the contract's inventory events plus the internal ones of `services.inventory.events`), and
`decide` works out its answer by applying its own events with that same `evolve`, so the live state
and a rebuilt one cannot drift apart.

Rules where a choice had to be made:
- Stock allocated to a backorder becomes reserved for that line (ready to ship), exactly like a
  reservation made at placement; nothing leaves stock on hand until shipping.
- Whenever stock becomes available while lines wait (a receipt, a cancellation that releases a
  reservation, a positive adjustment) it is allocated at once, so lines wait only while available is 0.
- Backorder cap: a line's shortfall is backordered only if all of it fits under the cap (units
  waiting + shortfall <= cap); otherwise all of it is rejected. StockShort has a single disposition,
  so one line's shortfall is never split into a backordered and a rejected part. Tightening the
  policy (deny, or a cap below what waits) keeps the lines already waiting; it applies to new ones.
- ReorderPointReached is emitted once per stay at or below the reorder point: after a command that
  leaves available <= reorder point while the alert is armed (a backorder leaves available at 0, so
  it counts). The alert re-arms when available rises above the reorder point. A new SKU starts armed.
- A waiting line's rank (priority score under the shop's PriorityPolicy, then placement time, then
  arrival) is fixed when it joins the queue; a changed PRIORITY_MODE ranks the lines that join later.
  So every change touches one line, and the queue's order is part of the SKU's state and its events.
- Repeats are no-ops: reserving a line that already holds a reservation or waits in the queue,
  cancelling units that are no longer there, setting the settings a SKU already has, recording the
  sourcing a SKU already has. (The consumer's inbox and business keys guarantee exactly-once; this only
  keeps a duplicate order line harmless.)
- Shipping takes units out of the line's reservation: reserved and on hand both go down by the units
  shipped (available is unchanged, so nothing is allocated). A line leaves `reservations` when its last
  reserved unit ships. Shipping more than the line holds reserved is refused (StockConflict) naming the
  shipment, the line and the units reserved; a shipment's lines are applied together or not at all.
- A count sets stock on hand to what was counted (StockCounted explains the difference, also when it is
  0). A count below what is reserved is refused: those units must be shipped or released first. A count
  above on hand allocates the extra units to waiting lines like a receipt (source = the count_id).
- A cancellation copies its reason into StockReleased. With `only_waiting` it drops only units still
  waiting and releases nothing reserved: a fill that reached the line first is kept (and ships). Without
  it: waiting units first, then reserved ones (shipped units are no longer on the books).
- Unknown SKU: a SKU is known once it had a receipt, an adjustment or a count, a policy change, or a
  supplier (SourcingRecorded with sourced=True); known never reverts. Setting an unknown SKU's policy
  is recorded even when it equals the defaults (a staff decision to carry the SKU). An order line for
  an unknown SKU is, under the shop's UnknownSkuPolicy "reject", rejected whole with
  UNKNOWN_SKU_REASON; under "backorder" it is treated like any other SKU.
- Every command whose events changed on hand, reserved or backordered ends with one StockLevelChanged
  (the figures after it), the very last of its events, after a ReorderPointReached; except an order
  line's reservation, the commonest command by far: what it did is in its StockReserved / StockShort,
  a shortfall joins the queue only once nothing is available, and a fall to the reorder point says its
  figures in ReorderPointReached. Recording a SKU's sourcing changes no figure and emits neither event
  (it is procurement's own fact, fed back).
- Substitutes (OrderLineSubstituted, two commands on two SKUs, the second told the first's outcome):
  GiveUpWaitingUnits drops the replaced line's waiting units like an only_waiting cancellation
  (StockReleased names the substitution); ReserveSubstitute then reserves the new line like any line,
  except that its shortfall is always backordered (those units were backordered already, and staff
  listed the SKU as a substitute), and gives back at once what the replaced line could not give up (a
  fill won the race). A substitute line already on the books is not reserved again. Setting a SKU's
  substitutes changes no figure: SkuSubstitutesChanged only, and only when the list changes.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import reduce
from typing import Literal, NamedTuple, assert_never

from pydantic import AwareDatetime, BaseModel, Field
from rpds import HashTrieMap

from backbone.contracts.envelope import STRICT, EventPayload
from backbone.contracts.events import (
    AUTO_REPLENISHMENT_ACTOR,
    MAX_SUBSTITUTES,
    BackorderFulfilled,
    BackorderQueueChanged,
    BackorderQueueSnapshotV1,
    CancelReason,
    CustomerTier,
    GoodsReceived,
    OrderCancelled,
    OrderLineSubstituted,
    OrderPlaced,
    QueueChange,
    ReorderPointReached,
    ReorderPolicyPlanned,
    ShipmentDispatched,
    SkuPolicyChanged,
    SkuSourcingChanged,
    SkuSubstitutesChanged,
    StockAdjusted,
    StockCounted,
    StockLevelChanged,
    StockReleased,
    StockReserved,
    StockShipped,
    StockShort,
    substitutes_problem,
)
from backbone.contracts.types import Identifier, NonNegativeQuantity, Quantity, Sku, Text
from backbone.ranked import RankedMap
from backbone.values import replace
from services.inventory.events import BackorderQueued, LineValue, SourcingRecorded, StockReceived
from services.inventory.priority import FIRST_COME_FIRST_SERVED, PriorityPolicy

BackorderPolicy = Literal["deny", "allow", "cap"]
UnknownSkuPolicy = Literal["reject", "backorder"]  # the shop's UNKNOWN_SKU_POLICY
UNKNOWN_SKU_REASON = "unknown SKU: never stocked and no supplier is known"
MAX_ON_HAND = 1_000_000_000  # the contract's largest quantity


# --- state ---------------------------------------------------------------------------------------------


class LineRef(NamedTuple):
    order_id: str
    line_id: str


@dataclass(frozen=True, slots=True)
class BackorderEntry:
    """Units of an order line waiting for stock, with what the priority policy ranks them by."""

    order_id: str
    line_id: str
    remaining: int
    placed_at: datetime
    tier: CustomerTier
    urgent: bool
    line_value: Decimal
    sequence: int  # arrival order within the SKU
    priority_score: Decimal = Decimal(0)  # under the policy in force when the line joined

    @property
    def rank(self) -> "QueueRank":
        return QueueRank(-self.priority_score, self.placed_at, self.sequence)

    def __reduce__(self) -> tuple[type["BackorderEntry"], tuple[object, ...]]:
        # Pickled (in snapshots) by its fields in order: several times faster than dataclasses' getstate.
        return BackorderEntry, (
            self.order_id,
            self.line_id,
            self.remaining,
            self.placed_at,
            self.tier,
            self.urgent,
            self.line_value,
            self.sequence,
            self.priority_score,
        )


class QueueRank(NamedTuple):
    """Allocation order: highest score first, then earliest placement, then earliest arrival."""

    negative_score: Decimal
    placed_at: datetime
    sequence: int


Queue = RankedMap[LineRef, QueueRank, BackorderEntry]


@dataclass(frozen=True, slots=True)
class SkuSettings:
    backorder_policy: BackorderPolicy = "allow"
    backorder_cap: int | None = None  # with policy "cap": most units that may wait at once
    reorder_point: int = 0
    safety_stock: int = 0  # informs procurement's order size; reservations may use all stock


@dataclass(frozen=True, slots=True)
class SkuState:
    """Persistent collections (a hash trie, a ranked map): an event changes one entry in O(log n) and
    the state stays a value, however long the queue."""

    sku: str
    on_hand: int = 0
    reserved: int = 0
    settings: SkuSettings = SkuSettings()
    reservations: HashTrieMap = field(default_factory=HashTrieMap)  # LineRef -> units reserved
    queue: Queue = field(default_factory=RankedMap)  # waiting lines in allocation order
    next_sequence: int = 1
    reorder_alerted: bool = False  # ReorderPointReached was emitted and has not re-armed since
    known: bool = False  # ever stocked, counted, given a policy or a supplier (see the module docstring)
    sourced: bool = False  # procurement's last word: at least one supplier can deliver it
    substitutes: tuple[str, ...] = ()  # what customers may switch its backorders to, preferred first

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    @property
    def backordered(self) -> int:
        return self.queue.units

    @property
    def levels(self) -> tuple[int, int, int]:
        """What StockLevelChanged reports a change of: on hand, reserved, backordered."""
        return self.on_hand, self.reserved, self.queue.units


def initial_state(sku: str) -> SkuState:
    """A never-seen SKU: nothing on hand, backorders allowed, reorder point and safety stock 0, unknown
    (see UnknownSkuPolicy) and without a supplier."""
    return SkuState(sku=sku)


def allocation_order(state: SkuState) -> list[BackorderEntry]:
    """The waiting lines, first to be served first (O(n): for reports and tests, not per event)."""
    return [entry for _, entry, _ in state.queue.items()]


# --- commands ------------------------------------------------------------------------------------------


class ReserveLine(BaseModel):
    """Reserve one line of a placed order; what stock cannot cover is backordered or rejected."""

    model_config = STRICT

    sku: Sku
    order_id: Identifier
    line_id: Identifier
    quantity: Quantity
    placed_at: AwareDatetime
    tier: CustomerTier = "standard"
    urgent: bool = False
    line_value: LineValue = Field(default=Decimal(0), description="quantity x unit price")


class ReceiveGoods(BaseModel):
    """Goods of a receipt arrived: add them to stock and serve the backorder queue."""

    model_config = STRICT

    sku: Sku
    receipt_id: Identifier
    quantity: Quantity


class CancelLine(BaseModel):
    """Cancel units of an order line: its backordered units first, then (unless only_waiting) its
    reserved ones."""

    model_config = STRICT

    sku: Sku
    order_id: Identifier
    line_id: Identifier
    quantity: Quantity
    cancellation_id: Identifier = Field(
        description="Names the cancellation (e.g. its event id) as the source of fills its stock makes"
    )
    only_waiting: bool = Field(default=False, description="Drop waiting units only; release no reservation")
    reason: CancelReason | None = Field(default=None, description="Copied into StockReleased")
    substitution_id: Identifier | None = Field(
        default=None, description="The units leave for a substitute: copied into StockReleased"
    )


class ShipLine(BaseModel):
    """Units of an order line left the warehouse in a shipment: take them out of the line's reservation."""

    model_config = STRICT

    sku: Sku
    shipment_id: Identifier
    order_id: Identifier
    line_id: Identifier
    quantity: Quantity


class CountStock(BaseModel):
    """An audited cycle count: stock on hand becomes `counted`."""

    model_config = STRICT

    sku: Sku
    count_id: Identifier
    counted: NonNegativeQuantity
    reason: Text
    actor: Identifier
    counted_at: AwareDatetime


class ApplyReorderLevels(BaseModel):
    """Procurement's auto mode planned the SKU's reorder point and safety stock (ReorderPolicyPlanned):
    recorded as an audited SkuPolicyChanged that keeps the backorder policy staff set."""

    model_config = STRICT

    sku: Sku
    reorder_point: NonNegativeQuantity
    safety_stock: NonNegativeQuantity
    actor: Identifier


class RecordSourcing(BaseModel):
    """Procurement's catalogue for the SKU changed: whether any supplier can deliver it."""

    model_config = STRICT

    sku: Sku
    sourced: bool


class AdjustStock(BaseModel):
    """An audited manual change of stock on hand (count, damage, opening balance)."""

    model_config = STRICT

    sku: Sku
    delta: int = Field(ge=-MAX_ON_HAND, le=MAX_ON_HAND, description="Not 0")
    reason: Text
    actor: Identifier
    adjustment_id: Identifier = Field(
        description="Names the adjustment (e.g. a request id) as the source of fills its stock makes"
    )


class SetPolicy(BaseModel):
    """An audited change of a SKU's backorder policy, reorder point and safety stock."""

    model_config = STRICT

    sku: Sku
    backorder_policy: BackorderPolicy
    backorder_cap: NonNegativeQuantity | None = Field(default=None, description="With policy cap only")
    reorder_point: NonNegativeQuantity = 0
    safety_stock: NonNegativeQuantity = 0
    actor: Identifier


class SetSubstitutes(BaseModel):
    """An audited change of the SKUs a customer may switch this SKU's backorders to."""

    model_config = STRICT

    sku: Sku
    substitutes: list[Sku] = Field(max_length=MAX_SUBSTITUTES, description="Preference order; [] = none")
    actor: Identifier


class ReserveSubstitute(BaseModel):
    """Reserve the new line of a substitution (after GiveUpWaitingUnits on the replaced line's SKU)."""

    model_config = STRICT

    line: ReserveLine
    substitution_id: Identifier
    units_given_up: NonNegativeQuantity = Field(
        description="Of line.quantity, the waiting units the replaced line actually gave up"
    )

    @property
    def sku(self) -> str:
        return self.line.sku


Command = (
    ReserveLine
    | ReceiveGoods
    | CancelLine
    | AdjustStock
    | SetPolicy
    | ShipLine
    | CountStock
    | RecordSourcing
    | ApplyReorderLevels
    | SetSubstitutes
    | ReserveSubstitute
)


def give_up_waiting_command(substitution: OrderLineSubstituted) -> CancelLine:
    """The replaced line's part of a substitution: drop its waiting units (never reserved ones)."""
    replaced = substitution.replaced
    return CancelLine(
        sku=replaced.sku,
        order_id=substitution.order_id,
        line_id=replaced.line_id,
        quantity=replaced.quantity,
        cancellation_id=substitution.substitution_id,
        only_waiting=True,
        substitution_id=substitution.substitution_id,
    )


def units_given_up(substitution: OrderLineSubstituted, events: Iterable[EventPayload]) -> int:
    """What the replaced line gave up, by the events its SKU decided for `give_up_waiting_command`."""
    return sum(
        e.dropped_backordered
        for e in events
        if isinstance(e, StockReleased)
        and e.substitution_id == substitution.substitution_id
        and (e.order_id, e.line_id) == (substitution.order_id, substitution.replaced.line_id)
    )


def reserve_substitute_command(substitution: OrderLineSubstituted, given_up: int) -> ReserveSubstitute:
    line = substitution.line
    return ReserveSubstitute(
        line=ReserveLine(
            sku=line.sku,
            order_id=substitution.order_id,
            line_id=line.line_id,
            quantity=line.quantity,
            placed_at=substitution.placed_at,
            tier=substitution.tier,
            urgent=substitution.urgent,
            line_value=line.quantity * line.unit_price,
        ),
        substitution_id=substitution.substitution_id,
        units_given_up=min(given_up, line.quantity),
    )


def reserve_line_commands(order: OrderPlaced) -> list[ReserveLine]:
    """One ReserveLine per order line; lines go to their SKU's stream, possibly several to one."""
    return [
        ReserveLine(
            sku=line.sku,
            order_id=order.order_id,
            line_id=line.line_id,
            quantity=line.quantity,
            placed_at=order.placed_at,
            tier=order.customer.tier,
            urgent=order.urgent,
            line_value=line.quantity * line.unit_price,
        )
        for line in order.lines
    ]


def cancel_line_commands(cancellation: OrderCancelled, cancellation_id: str) -> list[CancelLine]:
    return [
        CancelLine(
            sku=line.sku,
            order_id=cancellation.order_id,
            line_id=line.line_id,
            quantity=line.quantity,
            cancellation_id=cancellation_id,
            only_waiting=cancellation.only_waiting,
            reason=cancellation.reason,
        )
        for line in cancellation.lines
    ]


def ship_line_commands(shipment: ShipmentDispatched) -> list[ShipLine]:
    """One ShipLine per shipped line, on its SKU's stream."""
    return [
        ShipLine(
            sku=line.sku,
            shipment_id=shipment.shipment_id,
            order_id=shipment.order_id,
            line_id=line.line_id,
            quantity=line.quantity,
        )
        for line in shipment.lines
    ]


def record_sourcing_command(sourcing: SkuSourcingChanged) -> RecordSourcing:
    return RecordSourcing(sku=sourcing.sku, sourced=bool(sourcing.supplier_ids))


def apply_reorder_levels_command(plan: ReorderPolicyPlanned) -> ApplyReorderLevels:
    return ApplyReorderLevels(
        sku=plan.sku,
        reorder_point=plan.reorder_point,
        safety_stock=plan.safety_stock,
        actor=AUTO_REPLENISHMENT_ACTOR,
    )


def receive_goods_command(receipt: GoodsReceived) -> ReceiveGoods:
    return ReceiveGoods(sku=receipt.sku, receipt_id=receipt.receipt_id, quantity=receipt.quantity)


# --- refusals --------------------------------------------------------------------------------------------


class InventoryError(Exception):
    """A command the SKU's rules refuse; nothing changed. The HTTP layer answers 4xx with the message."""


class InvalidCommand(InventoryError):
    """The command contradicts itself, whatever the stock (HTTP 422)."""


class StockConflict(InventoryError):
    """The command does not fit the current stock, e.g. it would leave reserved units uncovered (409)."""


# --- decide ----------------------------------------------------------------------------------------------


class _Decision:
    """The events decided so far and the state they lead to, so each rule sees the previous ones' effect."""

    def __init__(self, state: SkuState) -> None:
        self.state = state
        self.levels_before = state.levels
        self.events: list[EventPayload] = []

    def emit(self, event: EventPayload) -> None:
        self.events.append(event)
        self.state = evolve(self.state, event)

    def emit_queue_change(self, event: BackorderQueued | BackorderFulfilled | StockReleased) -> None:
        """Emit `event`, which changes one waiting line, and then tell other services how it changed."""
        line = LineRef(event.order_id, event.line_id)
        before = self.state.queue.get(line)
        position_before = self.state.queue.position(line) + 1 if before is not None else None
        self.emit(event)
        queue = self.state.queue
        after = queue.get(line)
        change: QueueChange
        if before is None:
            change, position = "joined", queue.position(line) + 1
        else:
            change, position = ("reduced" if after is not None else "left"), position_before or 1
        ranked = after or before
        assert ranked is not None
        self.emit(
            BackorderQueueChanged(
                sku=self.state.sku,
                order_id=line.order_id,
                line_id=line.line_id,
                change=change,
                position=position,
                remaining=after.remaining if after is not None else 0,
                priority_score=ranked.priority_score,
                placed_at=ranked.placed_at,
                sequence=ranked.sequence,
                waiting_lines=len(queue),
                waiting_units=queue.units,
            )
        )

    def close(self, *, report_levels: bool = True) -> None:
        """Add the consequences every command shares: the reorder alert, then the stock level (last, so
        that it reports the figures after everything the command did)."""
        state = self.state
        if self.events and state.available <= state.settings.reorder_point and not state.reorder_alerted:
            self.emit(
                ReorderPointReached(
                    sku=state.sku,
                    on_hand=state.on_hand,
                    reserved=state.reserved,
                    available=state.available,
                    backordered=state.backordered,
                    reorder_point=state.settings.reorder_point,
                    safety_stock=state.settings.safety_stock,
                )
            )
        if report_levels and state.levels != self.levels_before:
            self.emit(
                StockLevelChanged(
                    sku=state.sku,
                    on_hand=state.on_hand,
                    reserved=state.reserved,
                    available=state.available,
                    backordered=state.backordered,
                )
            )


def decide(
    state: SkuState,
    command: Command,
    priority: PriorityPolicy = FIRST_COME_FIRST_SERVED,
    unknown_sku: UnknownSkuPolicy = "reject",
) -> list[EventPayload]:
    """The events that carry out `command`; [] if it changes nothing. Raises InventoryError to refuse."""
    return _decide(state, command, priority, unknown_sku).events


def execute(
    state: SkuState,
    command: Command,
    priority: PriorityPolicy = FIRST_COME_FIRST_SERVED,
    unknown_sku: UnknownSkuPolicy = "reject",
) -> tuple[SkuState, list[EventPayload]]:
    """decide, and the state its events lead to (handy for applying several commands to one SKU)."""
    decision = _decide(state, command, priority, unknown_sku)
    return decision.state, decision.events


def _decide(
    state: SkuState, command: Command, priority: PriorityPolicy, unknown_sku: UnknownSkuPolicy
) -> _Decision:
    if command.sku != state.sku:
        raise ValueError(f"a command for SKU {command.sku!r} was given the state of {state.sku!r}")
    decision = _Decision(state)
    match command:
        case ReserveLine():
            _reserve(decision, command, priority, unknown_sku)
        case ReceiveGoods():
            _receive(decision, command, priority)
        case CancelLine():
            _cancel(decision, command, priority)
        case AdjustStock():
            _adjust(decision, command, priority)
        case SetPolicy():
            _set_policy(decision, command)
        case ApplyReorderLevels():
            settings = state.settings
            policy = SetPolicy(
                sku=command.sku,
                backorder_policy=settings.backorder_policy,
                backorder_cap=settings.backorder_cap,
                reorder_point=command.reorder_point,
                safety_stock=command.safety_stock,
                actor=command.actor,
            )
            _set_policy(decision, policy)
        case ShipLine():
            _ship(decision, command)
        case CountStock():
            _count(decision, command, priority)
        case RecordSourcing():
            _record_sourcing(decision, command)
            return decision  # no figure changed: neither a reorder alert nor a stock level
        case SetSubstitutes():
            _set_substitutes(decision, command)
            return decision  # as RecordSourcing: no figure changed
        case ReserveSubstitute():
            _reserve_substitute(decision, command, priority)
        case _:
            assert_never(command)
    decision.close(report_levels=not isinstance(command, ReserveLine))
    return decision


def _reserve(
    decision: _Decision,
    command: ReserveLine,
    priority: PriorityPolicy,
    unknown_sku: UnknownSkuPolicy,
    *,
    substitute: bool = False,
) -> None:
    """`substitute`: the new line of a substitution, whose shortfall is backordered whatever the policy."""
    state = decision.state
    line = LineRef(command.order_id, command.line_id)
    if line in state.reservations or line in state.queue:
        return  # a repeated order line: it is on the books already
    if not state.known and unknown_sku == "reject" and not substitute:
        # Never stocked: nothing to reserve, and no one would ever fill a backorder.
        decision.emit(
            StockShort(
                order_id=command.order_id,
                line_id=command.line_id,
                sku=state.sku,
                demanded=command.quantity,
                available=0,
                short_quantity=command.quantity,
                disposition="rejected",
                reason=UNKNOWN_SKU_REASON,
            )
        )
        return
    reserved = min(command.quantity, state.available)
    if reserved:
        decision.emit(
            StockReserved(
                order_id=command.order_id, line_id=command.line_id, sku=state.sku, quantity=reserved
            )
        )
    short = command.quantity - reserved
    if not short:
        return
    refusal = None if substitute else _backorder_refusal(state.settings, state.backordered, short)
    decision.emit(
        StockShort(
            order_id=command.order_id,
            line_id=command.line_id,
            sku=state.sku,
            demanded=command.quantity,
            available=reserved,
            short_quantity=short,
            disposition="backordered" if refusal is None else "rejected",
            reason=refusal,
        )
    )
    if refusal is None:
        decision.emit_queue_change(
            BackorderQueued(
                order_id=command.order_id,
                line_id=command.line_id,
                sku=state.sku,
                quantity=short,
                placed_at=command.placed_at,
                tier=command.tier,
                urgent=command.urgent,
                line_value=command.line_value,
                sequence=decision.state.next_sequence,
                priority_score=priority.score(command),
            )
        )


def _reserve_substitute(decision: _Decision, command: ReserveSubstitute, priority: PriorityPolicy) -> None:
    line, state = command.line, decision.state
    ref = LineRef(line.order_id, line.line_id)
    if ref in state.reservations or ref in state.queue:
        return  # decided before (a repeated substitution): neither reserved nor given back again
    _reserve(decision, line, priority, "backorder", substitute=True)
    give_back = line.quantity - command.units_given_up
    if give_back > 0:
        # The replaced line had fewer units waiting than were switched (a fill reached it first): the new
        # line keeps only what was given up; waiting units go back first, then reserved ones.
        cancel = CancelLine(
            sku=line.sku,
            order_id=line.order_id,
            line_id=line.line_id,
            quantity=give_back,
            cancellation_id=command.substitution_id,
            substitution_id=command.substitution_id,
        )
        _cancel(decision, cancel, priority)


def _backorder_refusal(settings: SkuSettings, waiting: int, short: int) -> str | None:
    """Why a shortfall of `short` units may not be backordered, or None if it may."""
    match settings.backorder_policy:
        case "allow":
            return None
        case "deny":
            return "backorders are not allowed for this SKU"
        case "cap":
            cap = settings.backorder_cap or 0
            if waiting + short <= cap:
                return None
            return f"backorder cap of {cap} units exceeded: {waiting} already waiting, {short} more short"
        case _:
            assert_never(settings.backorder_policy)


def _receive(decision: _Decision, command: ReceiveGoods, priority: PriorityPolicy) -> None:
    on_hand_after = _within_limit(decision.state.on_hand + command.quantity)
    decision.emit(
        StockReceived(
            sku=command.sku,
            receipt_id=command.receipt_id,
            quantity=command.quantity,
            on_hand_after=on_hand_after,
        )
    )
    _allocate(decision, priority, source=command.receipt_id)


def _cancel(decision: _Decision, command: CancelLine, priority: PriorityPolicy) -> None:
    state = decision.state
    line = LineRef(command.order_id, command.line_id)
    entry = state.queue.get(line)
    dropped = min(command.quantity, entry.remaining if entry else 0)
    # Reserved units stay with only_waiting: a fill that reached the line before the cancellation wins.
    releasable = 0 if command.only_waiting else state.reservations.get(line, 0)
    released = min(command.quantity - dropped, releasable)
    if not (dropped or released):
        return  # nothing of this line that may be cancelled is on the books (any more)
    release = StockReleased(
        order_id=command.order_id,
        line_id=command.line_id,
        sku=command.sku,
        released_reserved=released,
        dropped_backordered=dropped,
        reason=command.reason,
        substitution_id=command.substitution_id,
    )
    if dropped:
        decision.emit_queue_change(release)
    else:
        decision.emit(release)
    _allocate(decision, priority, source=command.cancellation_id)


def _adjust(decision: _Decision, command: AdjustStock, priority: PriorityPolicy) -> None:
    state = decision.state
    if command.delta == 0:
        raise InvalidCommand("an adjustment must change stock on hand: delta must not be 0")
    on_hand_after = _within_limit(state.on_hand + command.delta)
    if on_hand_after < state.reserved:
        raise StockConflict(
            f"cannot remove {-command.delta} units of {state.sku}: {state.on_hand} on hand, "
            f"{state.reserved} of them reserved for orders"
        )
    decision.emit(
        StockAdjusted(
            sku=command.sku,
            delta=command.delta,
            on_hand_after=on_hand_after,
            reason=command.reason,
            actor=command.actor,
        )
    )
    _allocate(decision, priority, source=command.adjustment_id)


def _set_policy(decision: _Decision, command: SetPolicy) -> None:
    if (command.backorder_policy == "cap") != (command.backorder_cap is not None):
        raise InvalidCommand("backorder_cap is required with policy cap, and only then")
    settings = SkuSettings(
        backorder_policy=command.backorder_policy,
        backorder_cap=command.backorder_cap,
        reorder_point=command.reorder_point,
        safety_stock=command.safety_stock,
    )
    if settings == decision.state.settings and decision.state.known:
        return  # an unknown SKU's defaults were never set: setting them is what makes it known
    decision.emit(
        SkuPolicyChanged(
            sku=command.sku,
            backorder_policy=settings.backorder_policy,
            backorder_cap=settings.backorder_cap,
            reorder_point=settings.reorder_point,
            safety_stock=settings.safety_stock,
            actor=command.actor,
        )
    )


def _ship(decision: _Decision, command: ShipLine) -> None:
    state = decision.state
    held = state.reservations.get(LineRef(command.order_id, command.line_id), 0)
    if command.quantity > held:
        raise StockConflict(
            f"shipment {command.shipment_id} ships {command.quantity} units of line {command.line_id} of "
            f"order {command.order_id} ({state.sku}), but only {held} units are reserved for that line"
        )
    decision.emit(
        StockShipped(
            shipment_id=command.shipment_id,
            order_id=command.order_id,
            line_id=command.line_id,
            sku=state.sku,
            quantity=command.quantity,
            on_hand_after=state.on_hand - command.quantity,
        )
    )


def _count(decision: _Decision, command: CountStock, priority: PriorityPolicy) -> None:
    state = decision.state
    counted = _within_limit(command.counted)
    if counted < state.reserved:
        raise StockConflict(
            f"count {command.count_id} of {state.sku} found {counted} units, but {state.reserved} are "
            "reserved for orders: ship or release the reserved units first"
        )
    decision.emit(
        StockCounted(
            sku=state.sku,
            count_id=command.count_id,
            counted=counted,
            on_hand_before=state.on_hand,
            difference=counted - state.on_hand,
            reason=command.reason,
            actor=command.actor,
            counted_at=command.counted_at,
        )
    )
    _allocate(decision, priority, source=command.count_id)


def _set_substitutes(decision: _Decision, command: SetSubstitutes) -> None:
    substitutes = tuple(command.substitutes)
    problem = substitutes_problem(command.sku, substitutes)
    if problem is not None:
        raise InvalidCommand(problem)
    if substitutes == decision.state.substitutes:
        return
    decision.emit(SkuSubstitutesChanged(sku=command.sku, substitutes=list(substitutes), actor=command.actor))


def _record_sourcing(decision: _Decision, command: RecordSourcing) -> None:
    if command.sourced != decision.state.sourced:
        decision.emit(SourcingRecorded(sku=command.sku, sourced=command.sourced))


def _within_limit(on_hand: int) -> int:
    if on_hand > MAX_ON_HAND:
        raise StockConflict(f"stock on hand would be {on_hand}, more than {MAX_ON_HAND} units")
    return on_hand


def _allocate(decision: _Decision, priority: PriorityPolicy, source: str) -> None:
    """Serve waiting lines in priority order from the available stock; partial fills allowed. Walks only
    the lines it serves: the queue is already in allocation order."""
    available = decision.state.available
    if available == 0:
        return
    # The queue as it is now: a persistent value, so the fills below do not disturb the walk.
    for position, (_, entry, _) in enumerate(decision.state.queue.items(), start=1):
        quantity = min(entry.remaining, available)
        available -= quantity
        decision.emit_queue_change(
            BackorderFulfilled(
                order_id=entry.order_id,
                line_id=entry.line_id,
                sku=decision.state.sku,
                quantity=quantity,
                remaining_backordered=entry.remaining - quantity,
                source=source,
                priority_reason=priority.reason(entry, position),
            )
        )
        if available == 0:
            return


# --- evolve ----------------------------------------------------------------------------------------------


def evolve(state: SkuState, event: EventPayload) -> SkuState:
    """The state after `event`. Knows every event of a SKU's stream and refuses any other."""
    match event:
        case StockReserved():
            line = LineRef(event.order_id, event.line_id)
            state = replace(
                state,
                reserved=state.reserved + event.quantity,
                reservations=_counted(state.reservations, line, event.quantity),
            )
        case StockShort() | BackorderQueueChanged() | BackorderQueueSnapshotV1() | StockLevelChanged():
            return state  # for other services; BackorderQueued and the fills carry the queue
        case BackorderQueued():
            entry = BackorderEntry(
                order_id=event.order_id,
                line_id=event.line_id,
                remaining=event.quantity,
                placed_at=event.placed_at,
                tier=event.tier,
                urgent=event.urgent,
                line_value=event.line_value,
                sequence=event.sequence,
                priority_score=event.priority_score,
            )
            queue = state.queue.insert(
                LineRef(event.order_id, event.line_id), entry.rank, entry, entry.remaining
            )
            state = replace(state, queue=queue, next_sequence=max(state.next_sequence, event.sequence + 1))
        case BackorderFulfilled():
            line = LineRef(event.order_id, event.line_id)
            state = replace(
                state,
                reserved=state.reserved + event.quantity,
                reservations=_counted(state.reservations, line, event.quantity),
                queue=_shortened(state.queue, line, event.quantity),
            )
        case StockReleased():
            line = LineRef(event.order_id, event.line_id)
            state = replace(
                state,
                reserved=state.reserved - event.released_reserved,
                reservations=_counted(state.reservations, line, -event.released_reserved),
                queue=_shortened(state.queue, line, event.dropped_backordered),
            )
        case ReorderPointReached():
            return replace(state, reorder_alerted=True)
        case StockShipped():
            line = LineRef(event.order_id, event.line_id)
            state = replace(
                state,
                on_hand=state.on_hand - event.quantity,
                reserved=state.reserved - event.quantity,
                reservations=_counted(state.reservations, line, -event.quantity),
            )
        case StockReceived():
            state = replace(state, on_hand=state.on_hand + event.quantity, known=True)
        case StockAdjusted():
            state = replace(state, on_hand=state.on_hand + event.delta, known=True)
        case StockCounted():
            state = replace(state, on_hand=event.counted, known=True)
        case SourcingRecorded():
            return replace(state, sourced=event.sourced, known=state.known or event.sourced)
        case SkuSubstitutesChanged():
            return replace(state, substitutes=tuple(event.substitutes))
        case SkuPolicyChanged():
            settings = SkuSettings(
                backorder_policy=event.backorder_policy,
                backorder_cap=event.backorder_cap,
                reorder_point=event.reorder_point,
                safety_stock=event.safety_stock,
            )
            state = replace(state, settings=settings, known=True)
        case _:
            raise TypeError(f"{type(event).__name__} is not an event of a SKU's stream")
    return _rearmed(state)


def fold(state: SkuState, events: Iterable[EventPayload]) -> SkuState:
    return reduce(evolve, events, state)


def rebuild(sku: str, events: Iterable[EventPayload]) -> SkuState:
    """A SKU's state from its whole stream."""
    return fold(initial_state(sku), events)


def _rearmed(state: SkuState) -> SkuState:
    # Lines waiting means stock is about to be allocated to them (within the same decision): not a rise.
    if state.reorder_alerted and not state.queue and state.available > state.settings.reorder_point:
        return replace(state, reorder_alerted=False)
    return state


def _counted(counts: HashTrieMap, line: LineRef, delta: int) -> HashTrieMap:
    """`counts` with `line` changed by `delta`; a line at 0 is dropped."""
    if delta == 0:
        return counts
    count = counts.get(line, 0) + delta
    return counts.insert(line, count) if count else counts.remove(line)


def _shortened(queue: Queue, line: LineRef, units: int) -> Queue:
    """`queue` with `units` fewer waiting for `line`; a line with none left leaves the queue."""
    if units == 0:
        return queue
    entry = queue.get(line)
    if entry is None:
        raise ValueError(f"{line} is not waiting")
    if entry.remaining > units:
        return queue.replace(line, replace(entry, remaining=entry.remaining - units), entry.remaining - units)
    return queue.remove(line)
