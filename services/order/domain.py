"""The order service's domain, decider style: `decide(state, incoming) -> events`, `evolve(state, event)`.

Pure: no I/O and no clock; every time is an input. One stream per order; folding `evolve` over the
stream's events alone rebuilds the state, because whatever the order learns from other services is
recorded in its own stream as internal events (services/order/events.py). A stream before its first
event is `initial_state(order_id)`, e.g. for backbone.aggregate:
    StreamRepository(store, lambda stream: initial_state(stream.removeprefix("order:")), evolve)
Inventory's answers may reach the order service before the order itself (they travel on another topic):
they are recorded on lines of a not-yet-placed order, and the placement completes those lines.

Line arithmetic (units of one line; inventory's answers are the truth of what happened to units):
    ordered     = reserved at placement + backordered + rejected      (once inventory has decided)
    backordered = filled later + dropped from the queue + still waiting
    allocated   = reserved at placement + filled later - released from stock    (shipped ones included)
    to ship     = allocated - shipped
    cancelled   = released from stock + dropped from the queue        (both confirmed by StockReleased)
A cancellation request (OrderCancelled, ours or a checkout's) only makes units *pending*: `pending_cancel`
(waiting first, then allocated: a whole order) and `pending_cancel_waiting` (only_waiting: units still
waiting). They become cancelled when inventory's StockReleased confirms them; what inventory could not
cancel any more (a fill that won the race of an only_waiting request, units shipped meanwhile) stops
being pending as soon as the line shows it: pending units never exceed what is still open.

Order status, derived from the lines of a placed order:
    accepted              inventory has not decided every line yet
    partially_shipped     some units shipped, and some still to ship or waiting
    shipped               some units shipped, nothing left to ship or wait for
    ready_to_ship         nothing waits and some units are to ship
    partially_backordered some units are to ship and some wait
    backordered           nothing is to ship and some units wait
    cancelled             nothing to ship, waiting or shipped, and some units were cancelled
    rejected              nothing to ship, waiting or shipped, and nothing was cancelled: all was refused
An order is `closed` when every line is decided and has nothing to ship or wait for (shipped, cancelled,
rejected). Pending cancellations do not change the status: inventory's answer does.

The shipping preference does not change the status; it decides what may leave now (`shippable_now`):
ship_available ships the units to ship of any order with some (also partially backordered or shipped),
ship_complete only once nothing (not already pending cancellation) waits. Units pending cancellation
from stock never ship. That pick list, plus what each line shipped so far, is published as
FulfilmentRequested (revision 1, 2, ...) whenever it changes.

Shipments: two facts, joined by shipment_id, in either order (the fulfilment and inventory topics are
not ordered with each other). The warehouse's ShipmentDispatched (recorded as ShipmentAnnounced) gives
the metadata (carrier, tracking, shipped_at) and the lines as announced; it moves no units. Inventory's
StockShipped (recorded as LineShipped, one per line) gives the units that left: a line's `shipped`
counts those only. Inventory's topic orders a line's StockShipped with its StockReleased and fills, and
inventory never both ships and releases the same units, so shipped and cancelled units cannot overlap
(a shipment racing a cancellation: whichever inventory handled first wins; the other answer is 0 units
or a dead-lettered shipment, which then stays announced and unconfirmed). A StockShipped beyond what the
line has to ship is inventory's truth: recorded, and reported by `invariant_violations`. The order
keeps what arrived per shipment (`OrderState.shipments`, as many as the order has shipments).

Cancellation: the order service asks (OrderCancelled), inventory answers (StockReleased) and refunds
follow the answer. CancelOrder cancels every open unit of every line that is not already pending, also
while inventory is still deciding lines (a cancellation that arrives before the decision is kept and
applied: inventory answers with StockReserved/StockShort, then StockReleased). CancelBackorderedUnits and
the max-wait auto-cancel ask only_waiting=True: a fill that reaches the line first is kept and ships.
Every OrderCancelled decided here carries cancellation_id f"{order_id}:cancel:{n}", n = 1, 2, ... per order.

Refunds: after a StockReleased (or a placement that completes lines inventory had already released),
a line whose confirmed cancelled units exceed its refunded units, at a non-zero price (paid at
checkout: the contract has no payment status), gets one RefundRequested for the difference, with the
cancellation's reason (StockReleased.reason, else the pending request's). "Cancelled - refunded" also
keeps streams written before this rule (refunds decided at cancellation time, then LineReleased)
refunded exactly once: their refunds already cover the units inventory confirmed later.

Substitutes: SubstituteBackorderedUnits switches every waiting unit of a line (not already pending a
cancellation) to a substitute SKU, one listed for the line's SKU (the caller passes the list the order
service last heard from inventory; whether the substitute is in stock is not checked: a new line for one
that ran out simply backorders). One OrderLineSubstituted gives up those units of the replaced line
(pending, like an only_waiting cancellation, until inventory's StockReleased names the substitution)
and adds a new line (`substitute_for`) of the same units at the replaced line's price. Until inventory
decided the new line its units count as waiting (they were waiting, and still are), so the order is
not "accepted" again. Units that leave inventory's books for a substitution (`substituted`: given up by
the replaced line, or given back by the new line when a fill won the race) are never refunded: the
customer's payment moves with them. The same substitution_id again decides nothing.

Errors: every refused command raises an `OrderError`; the HTTP layer maps `OrderNotFound`/`LineNotFound`
to 404, `OrderConflict` to 409 and `InvalidCommand` to 422. A consumed event that contradicts the order
raises `UnexpectedEvent`, which belongs in the dead-letter topic.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import reduce
from typing import Literal

from backbone.contracts import EventPayload
from backbone.contracts.events import (
    BackorderEtaUpdated,
    BackorderFulfilled,
    FulfilmentRequested,
    LineQuantity,
    OrderCancelled,
    OrderLine,
    OrderLineSubstituted,
    OrderPlaced,
    RefundRequested,
    ShipmentDispatched,
    ShippableLine,
    ShippedLine,
    StockReleased,
    StockReserved,
    StockShipped,
    StockShort,
    default_substitution_id,
)
from backbone.values import replace
from services.order.events import (
    ExternalCancellationRecorded,
    LineBackordered,
    LineEtaChanged,
    LineFilled,
    LineRejected,
    LineReleased,
    LineReserved,
    LineShipped,
    OrderLineEvent,
    OrderRecorded,
    ShipmentAnnounced,
)

OrderStatus = Literal[
    "accepted",
    "ready_to_ship",
    "partially_backordered",
    "backordered",
    "partially_shipped",
    "shipped",
    "rejected",
    "cancelled",
]
CancelReason = Literal["customer_request", "max_wait_exceeded", "shop_request"]
MAX_LINES = 500  # of an order, substitute lines included: the contract's pick list holds no more
MAX_ID_LENGTH = 128  # the contract's Identifier


# --- errors -----------------------------------------------------------------------------------------------


class OrderError(Exception):
    """A command or event the order refuses; the message is safe to show to the caller."""


class OrderNotFound(OrderError):
    pass


class LineNotFound(OrderError):
    pass


class OrderConflict(OrderError):
    """The command is valid in general but not in the order's current state."""


class OrderAlreadyPlaced(OrderConflict):
    pass


class NothingToCancel(OrderConflict):
    pass


class InvalidCommand(OrderError):
    pass


class NotASubstitute(OrderConflict):
    """The SKU is the line's own, or not among the substitutes listed for it."""


class SubstitutionConflict(OrderConflict):
    """The substitution_id names another switch of the order."""


class UnexpectedEvent(OrderError):
    """A consumed event contradicts what the order knows (unknown line, other SKU, second decision)."""


# --- state ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineState:
    line_id: str
    sku: str
    ordered: int = 0  # 0 until the placement is known: inventory's answers may arrive before it
    unit_price: Decimal = Decimal(0)
    reserved_at_placement: int = 0
    backordered: int = 0
    rejected: int = 0
    rejection_reason: str | None = None
    filled: int = 0
    released_reserved: int = 0  # inventory's confirmations of cancelled units leaving its books
    dropped_backordered: int = 0
    shipped: int = 0  # units inventory shipped (StockShipped), not what a warehouse announced
    pending_cancel: int = 0  # requested (waiting first, then allocated), not yet confirmed by inventory
    pending_cancel_waiting: int = 0  # requested only_waiting, not yet confirmed
    pending_reason: CancelReason | None = None  # of the latest request still pending
    release_reason: CancelReason | None = None  # of the latest confirmation
    refunded: int = 0
    refunded_amount: Decimal = Decimal(0)
    eta: date | None = None
    previous_eta: date | None = None
    eta_known: bool = False  # True once procurement answered, even "no purchase order covers it" (None)
    po_id: str | None = None  # the purchase order the ETA comes from
    substitute_for: str | None = None  # a substitute line: the line whose waiting units it took over
    substituted: int = 0  # of the cancelled units, those that left for a substitution: never refunded

    @property
    def decided(self) -> bool:
        return (
            self.ordered > 0 and self.reserved_at_placement + self.backordered + self.rejected == self.ordered
        )

    @property
    def awaiting_decision(self) -> int:
        """Units of a substitute line inventory has not decided yet: they waited, and wait still."""
        if self.substitute_for is None or self.ordered == 0:
            return 0
        return max(0, self.ordered - self.reserved_at_placement - self.backordered - self.rejected)

    @property
    def waiting(self) -> int:
        return self.backordered - self.filled - self.dropped_backordered + self.awaiting_decision

    @property
    def allocated(self) -> int:
        """Units in stock for the line, shipped ones included."""
        return self.reserved_at_placement + self.filled - self.released_reserved

    @property
    def to_ship(self) -> int:
        return self.allocated - self.shipped

    @property
    def cancelled(self) -> int:
        return self.released_reserved + self.dropped_backordered

    @property
    def unshipped(self) -> int:
        # to_ship < 0 only if inventory shipped more than the line knows allocated (an invariant
        # violation, reported): nothing is left to ship then.
        return max(0, self.to_ship) + self.waiting

    @property
    def open_units(self) -> int:
        """Units neither shipped, cancelled nor rejected; before the decision: all ordered units."""
        return self.ordered - self.rejected - self.cancelled - self.shipped

    @property
    def cancellation_pending(self) -> int:
        return self.pending_cancel + self.pending_cancel_waiting

    @property
    def cancellable(self) -> int:
        """Open units no pending request covers yet: what a whole-order cancellation may still ask for."""
        return max(0, self.open_units - self.cancellation_pending)

    @property
    def waiting_not_pending(self) -> int:
        """Waiting units no pending request may take (counting a whole-order request against them)."""
        return max(0, self.waiting - self.cancellation_pending)

    @property
    def pending_from_stock(self) -> int:
        """Units to ship that a pending whole-order request will release (it takes waiting ones first)."""
        return min(
            self.to_ship, max(0, self.pending_cancel - max(0, self.waiting - self.pending_cancel_waiting))
        )

    @property
    def pickable(self) -> int:
        """Units to ship that no pending cancellation is about to release."""
        return max(0, self.to_ship - self.pending_from_stock)

    @property
    def closed(self) -> bool:
        return self.decided and self.unshipped == 0


@dataclass(frozen=True, slots=True)
class ShipmentState:
    """What the order knows of one shipment: the warehouse's announcement and inventory's units."""

    shipment_id: str
    announcement: ShipmentAnnounced | None = None  # None: only inventory's StockShipped arrived yet
    shipped: Mapping[str, int] = field(default_factory=dict)  # line_id -> units inventory shipped

    @property
    def confirmed(self) -> bool:
        """Inventory shipped it: every announced line (inventory ships a shipment's lines all or none),
        or, before the announcement, whatever it reported. False: announced, not (yet) shipped by
        inventory, e.g. refused because the units were released meanwhile."""
        if self.announcement is None:
            return bool(self.shipped)
        return all(line.line_id in self.shipped for line in self.announcement.lines)

    @property
    def announced_lines(self) -> Mapping[str, ShippedLine]:
        return {} if self.announcement is None else {ln.line_id: ln for ln in self.announcement.lines}


PickList = Mapping[str, tuple[int, int]]  # line_id -> (units that may ship now, units shipped so far)


@dataclass(frozen=True, slots=True)
class OrderState:
    order_id: str
    placement: OrderPlaced | None = None  # None: facts about the order arrived before the order itself
    lines: Mapping[str, LineState] = field(default_factory=dict)
    cancellations: tuple[OrderCancelled, ...] = ()  # to recognise the orders topic echoing our own
    own_cancellations: int = 0  # OrderCancelled decided here: numbers the next cancellation_id
    fulfilment_revision: int = 0  # of the last FulfilmentRequested
    pick_list: PickList = field(default_factory=dict)  # as last published (lines with units or shipped)
    shipments: Mapping[str, ShipmentState] = field(default_factory=dict)  # by shipment_id, first known first
    # By substitution_id: recognises a repeated switch. Bounded: each adds a line, at most MAX_LINES.
    substitutions: Mapping[str, OrderLineSubstituted] = field(default_factory=dict)

    @property
    def placed(self) -> bool:
        return self.placement is not None

    @property
    def waiting(self) -> int:
        return sum(line.waiting for line in self.lines.values())

    @property
    def shipped(self) -> int:
        return sum(line.shipped for line in self.lines.values())

    @property
    def closed(self) -> bool:
        """Nothing remains to ship or wait for: every line is shipped, cancelled or rejected."""
        return self.placed and all(line.closed for line in self.lines.values())


def initial_state(order_id: str) -> OrderState:
    """An order stream before its first event: nothing is known, not even the order."""
    return OrderState(order_id=order_id)


def order_stream_id(order_id: str) -> str:
    return f"order:{order_id}"


# --- commands ---------------------------------------------------------------------------------------------


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None:
        raise InvalidCommand("times must carry a time zone")


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """`POST /orders`: the order service takes an order itself, so its OrderPlaced is published."""

    order: OrderPlaced

    @property
    def order_id(self) -> str:
        return self.order.order_id


@dataclass(frozen=True, slots=True)
class CancelBackorderedUnits:
    """The customer gives up (part of) the waiting units of one line; allocated units still ship."""

    order_id: str
    line_id: str
    requested_at: datetime
    quantity: int | None = None  # None: every unit still waiting
    reason: CancelReason = "customer_request"

    def __post_init__(self) -> None:
        _require_aware(self.requested_at)


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """Cancel every open (unshipped) unit of every line, also of lines inventory has not decided yet."""

    order_id: str
    requested_at: datetime
    reason: CancelReason = "customer_request"

    def __post_init__(self) -> None:
        _require_aware(self.requested_at)


@dataclass(frozen=True, slots=True)
class CancelOverdueBackorders:
    """Made by `due_for_auto_cancel`: the order's maximum wait is over; cancel what still waits."""

    order_id: str
    deadline: datetime
    now: datetime

    def __post_init__(self) -> None:
        _require_aware(self.deadline)
        _require_aware(self.now)


@dataclass(frozen=True, slots=True)
class SubstituteBackorderedUnits:
    """Switch the waiting units of one line to a substitute SKU (a new line); allocated units still ship.

    `substitutes`: those listed for the line's SKU, as the caller knows them (the order service keeps
    inventory's SkuSubstitutesChanged); `substitution_id` names the switch (default: derived from the
    line and the SKU); `unit_price` of the new line, default: the replaced line's."""

    order_id: str
    line_id: str
    sku: str
    requested_at: datetime
    substitutes: tuple[str, ...] = ()
    substitution_id: str | None = None
    unit_price: Decimal | None = None

    def __post_init__(self) -> None:
        _require_aware(self.requested_at)

    @property
    def named(self) -> str:
        return self.substitution_id or default_substitution_id(self.line_id, self.sku)


Command = (
    PlaceOrder | CancelBackorderedUnits | CancelOrder | CancelOverdueBackorders | SubstituteBackorderedUnits
)


# --- decide -----------------------------------------------------------------------------------------------


def decide(state: OrderState, incoming: Command | EventPayload) -> list[EventPayload]:
    """The events that `incoming` (a command, or a consumed contract event) adds to the order's stream.

    Deciding the same incoming twice from the evolved state adds nothing the second time. Events the
    order service does not act on decide to nothing. When the events change the order's pick list, a
    FulfilmentRequested with the next revision follows them (for inventory's units of an announced
    shipment: once every announced line has them).
    """
    return execute(state, incoming)[1]


def execute(state: OrderState, incoming: Command | EventPayload) -> tuple[OrderState, list[EventPayload]]:
    """`decide`, and the state its events lead to: folded once, here, not again by the caller."""
    events = _decide(state, incoming)
    if not events:
        return state, events
    after = reduce(evolve, events, state)
    if isinstance(incoming, StockShipped) and _awaiting_rest(after, incoming.shipment_id):
        # Inventory ships an announced shipment's lines all or none, one StockShipped per line: the pick
        # list follows once the last arrived, one revision per shipment instead of one per line.
        return after, events
    pick_list = _fulfilment(after)
    return reduce(evolve, pick_list, after), [*events, *pick_list]


def _awaiting_rest(state: OrderState, shipment_id: str) -> bool:
    shipment = state.shipments[shipment_id]
    return shipment.announcement is not None and not shipment.confirmed


def _decide(state: OrderState, incoming: Command | EventPayload) -> list[EventPayload]:
    match incoming:
        case PlaceOrder(order=placed):
            return _place(state, placed)
        case CancelBackorderedUnits():
            return _cancel_backordered(_placed(state, incoming.order_id), incoming)
        case CancelOrder():
            return _cancel_order(_placed(state, incoming.order_id), incoming)
        case CancelOverdueBackorders():
            return _cancel_overdue(_placed(state, incoming.order_id), incoming)
        case SubstituteBackorderedUnits():
            return _substitute(_placed(state, incoming.order_id), incoming)
        case OrderPlaced():
            return _record_placement(state, incoming)
        case OrderCancelled():
            return _record_cancellation(state, incoming)
        case StockReserved():
            return _record_reservation(state, incoming)
        case StockShort():
            return _record_shortfall(state, incoming)
        case BackorderFulfilled():
            return _record_fill(state, incoming)
        case StockReleased():
            return _record_release(state, incoming)
        case BackorderEtaUpdated():
            return _record_eta(state, incoming)
        case ShipmentDispatched():
            return _record_announcement(state, incoming)
        case StockShipped():
            return _record_shipped(state, incoming)
    return []  # e.g. our own RefundRequested or FulfilmentRequested echoed by the orders topic


def _placed(state: OrderState, order_id: str) -> OrderState:
    if state.placement is None:
        raise OrderNotFound(f"order {order_id} is unknown")
    return state


def _line(state: OrderState, line_id: str) -> LineState:
    try:
        return state.lines[line_id]
    except KeyError:
        raise LineNotFound(f"order {state.order_id} has no line {line_id}") from None


def _place(state: OrderState, placed: OrderPlaced) -> list[EventPayload]:
    if state.placement is not None:
        if state.placement == placed:
            return []  # a retried POST
        raise OrderAlreadyPlaced(f"order {placed.order_id} already exists")
    return [placed]


def _cancel_backordered(state: OrderState, command: CancelBackorderedUnits) -> list[EventPayload]:
    line = _line(state, command.line_id)
    free = line.waiting_not_pending
    if free == 0:
        pending = (
            f" ({line.cancellation_pending} already being cancelled)" if line.cancellation_pending else ""
        )
        raise NothingToCancel(f"line {line.line_id} of order {state.order_id} has no units waiting{pending}")
    quantity = free if command.quantity is None else command.quantity
    if not 0 < quantity <= free:
        raise InvalidCommand(f"line {line.line_id} has {free} units waiting, cannot cancel {quantity}")
    return [_cancellation(state, {line.line_id: quantity}, command.reason, command.requested_at, True)]


def _substitute(state: OrderState, command: SubstituteBackorderedUnits) -> list[EventPayload]:
    substitution_id = command.named
    earlier = state.substitutions.get(substitution_id)
    if earlier is not None:
        if (earlier.replaced.line_id, earlier.line.sku) == (command.line_id, command.sku):
            return []  # the same switch again (a retry, a link clicked twice)
        raise SubstitutionConflict(
            f"substitution {substitution_id} of order {state.order_id} switched line "
            f"{earlier.replaced.line_id} to {earlier.line.sku}, not line {command.line_id} to {command.sku}"
        )
    line = _line(state, command.line_id)
    if command.sku == line.sku:
        raise NotASubstitute(f"line {line.line_id} is {line.sku} already")
    if command.sku not in command.substitutes:
        listed = ", ".join(command.substitutes) or "none"
        raise NotASubstitute(f"{command.sku} is not a substitute of {line.sku} (listed: {listed})")
    quantity = line.waiting_not_pending
    if quantity == 0:
        pending = (
            f" ({line.cancellation_pending} already being cancelled or switched)"
            if line.cancellation_pending
            else ""
        )
        raise NothingToCancel(f"line {line.line_id} of order {state.order_id} has no units waiting{pending}")
    if len(state.lines) >= MAX_LINES:
        raise OrderConflict(f"order {state.order_id} has {len(state.lines)} lines, the most an order has")
    placement = state.placement
    assert placement is not None  # _placed checked it
    return [
        OrderLineSubstituted(
            order_id=state.order_id,
            substitution_id=substitution_id,
            replaced=LineQuantity(line_id=line.line_id, sku=line.sku, quantity=quantity),
            line=OrderLine(
                line_id=_substitute_line_id(state, line.line_id),
                sku=command.sku,
                quantity=quantity,
                unit_price=line.unit_price if command.unit_price is None else command.unit_price,
            ),
            tier=placement.customer.tier,
            urgent=placement.urgent,
            placed_at=placement.placed_at,
            substituted_at=command.requested_at,
        )
    ]


def _substitute_line_id(state: OrderState, line_id: str) -> str:
    """f"{line_id}-s{n}", n = 1, 2, ... the first one free; the line id shortened to fit an Identifier."""
    for n in range(1, MAX_LINES + 2):
        suffix = f"-s{n}"
        candidate = f"{line_id[: MAX_ID_LENGTH - len(suffix)]}{suffix}"
        if candidate not in state.lines:
            return candidate
    raise AssertionError("an order with fewer than MAX_LINES lines has a free substitute line id")


def _cancel_order(state: OrderState, command: CancelOrder) -> list[EventPayload]:
    # No waiting for inventory's decision: a line it has not decided yet is cancelled whole, and
    # inventory, which reads the orders topic in order, decides it and then releases what it holds.
    quantities = {line.line_id: line.cancellable for line in state.lines.values() if line.cancellable > 0}
    if not quantities:
        raise NothingToCancel(f"order {state.order_id} has no units left to cancel")
    return [_cancellation(state, quantities, command.reason, command.requested_at, False)]


def _cancel_overdue(state: OrderState, command: CancelOverdueBackorders) -> list[EventPayload]:
    if command.now < command.deadline:
        return []
    quantities = {
        line.line_id: line.waiting_not_pending
        for line in state.lines.values()
        if line.waiting_not_pending > 0
    }
    if not quantities:
        return []  # already cancelled (or pending) or filled: this is what makes the auto-cancel happen once
    return [_cancellation(state, quantities, "max_wait_exceeded", command.now, True)]


def _cancellation(
    state: OrderState, quantities: Mapping[str, int], reason: CancelReason, at: datetime, only_waiting: bool
) -> OrderCancelled:
    return OrderCancelled(
        order_id=state.order_id,
        lines=[
            LineQuantity(line_id=line_id, sku=state.lines[line_id].sku, quantity=quantity)
            for line_id, quantity in quantities.items()
        ],
        reason=reason,
        cancelled_at=at,
        only_waiting=only_waiting,
        cancellation_id=f"{state.order_id}:cancel:{state.own_cancellations + 1}",
    )


def _refunds(state: OrderState) -> list[EventPayload]:
    """One refund per line for the confirmed cancelled units not refunded yet (see the module docstring)."""
    if state.placement is None:
        return []
    refunds: list[EventPayload] = []
    for line in state.lines.values():
        quantity = line.cancelled - line.substituted - line.refunded
        if quantity > 0 and line.unit_price > 0:
            refunds.append(
                RefundRequested(
                    order_id=state.order_id,
                    line_id=line.line_id,
                    sku=line.sku,
                    quantity=quantity,
                    amount=quantity * line.unit_price,
                    currency=state.placement.currency,
                    reason=line.release_reason or line.pending_reason or "customer_request",
                )
            )
    return refunds


def _with_refunds(state: OrderState, events: list[EventPayload]) -> list[EventPayload]:
    return [*events, *_refunds(reduce(evolve, events, state))]


def _record_placement(state: OrderState, placed: OrderPlaced) -> list[EventPayload]:
    if state.placement is not None:
        if state.placement == placed:
            return []  # our own OrderPlaced, echoed by the orders topic
        raise UnexpectedEvent(f"order {placed.order_id} was placed before with other content")
    # Inventory may have released units before the order reached us: refund them now.
    return _with_refunds(state, [OrderRecorded(order=placed)])


def _record_cancellation(state: OrderState, cancellation: OrderCancelled) -> list[EventPayload]:
    if state.placement is None:
        raise UnexpectedEvent(f"cancellation of unknown order {cancellation.order_id}")
    if cancellation in state.cancellations:
        return []  # our own cancellation, echoed by the orders topic
    for requested in cancellation.lines:
        _known_line(state, requested.line_id, requested.sku)
    return [ExternalCancellationRecorded(cancellation=cancellation)]


def _known_line(state: OrderState, line_id: str, sku: str) -> LineState | None:
    """The line an inventory or procurement fact is about; None if that fact comes before the order."""
    line = state.lines.get(line_id)
    if line is None and state.placement is not None:
        raise UnexpectedEvent(f"order {state.order_id} has no line {line_id}")
    if line is not None and line.sku != sku:
        raise UnexpectedEvent(f"line {line_id} of order {state.order_id} is {line.sku}, not {sku}")
    return line


def _record_reservation(state: OrderState, reserved: StockReserved) -> list[EventPayload]:
    line = _known_line(state, reserved.line_id, reserved.sku)
    if line is not None and line.reserved_at_placement == reserved.quantity:
        return []  # inventory may also state the reserved part in StockShort.available
    if line is not None and line.ordered and reserved.quantity > line.ordered:
        raise UnexpectedEvent(f"{reserved.quantity} reserved for line {line.line_id} of {line.ordered} units")
    return [
        LineReserved(
            order_id=reserved.order_id, line_id=reserved.line_id, sku=reserved.sku, quantity=reserved.quantity
        )
    ]


def _record_shortfall(state: OrderState, short: StockShort) -> list[EventPayload]:
    line = _known_line(state, short.line_id, short.sku)
    if line is not None:
        if line.ordered and short.demanded != line.ordered:
            raise UnexpectedEvent(
                f"line {line.line_id} ordered {line.ordered}, inventory saw {short.demanded}"
            )
        already = line.backordered if short.disposition == "backordered" else line.rejected
        if already == short.short_quantity and line.reserved_at_placement == short.available:
            return []
        if line.backordered or line.rejected:
            raise UnexpectedEvent(f"line {line.line_id} of order {short.order_id} was decided before")
    ids = {"order_id": short.order_id, "line_id": short.line_id, "sku": short.sku}
    if short.disposition == "backordered":
        return [LineBackordered(**ids, reserved=short.available, backordered=short.short_quantity)]
    return [LineRejected(**ids, reserved=short.available, rejected=short.short_quantity, reason=short.reason)]


def _record_fill(state: OrderState, fill: BackorderFulfilled) -> list[EventPayload]:
    line = _known_line(state, fill.line_id, fill.sku)
    if line is None or line.backordered == 0:
        raise UnexpectedEvent(
            f"fill of line {fill.line_id} of order {fill.order_id}, which is not backordered"
        )
    if fill.quantity > line.waiting:
        raise UnexpectedEvent(
            f"fill of {fill.quantity} units of line {fill.line_id} of order {fill.order_id}, "
            f"which has {line.waiting} waiting"
        )
    return [
        LineFilled(
            order_id=fill.order_id,
            line_id=fill.line_id,
            sku=fill.sku,
            quantity=fill.quantity,
            remaining_backordered=fill.remaining_backordered,
            source=fill.source,
        )
    ]


def _record_release(state: OrderState, released: StockReleased) -> list[EventPayload]:
    line = _known_line(state, released.line_id, released.sku)
    if released.released_reserved == 0 and released.dropped_backordered == 0:
        return []
    # Not checked against the line: StockReleased is the truth of what left inventory's books.
    reason = released.reason or (line.pending_reason if line is not None else None)
    recorded = LineReleased(
        order_id=released.order_id,
        line_id=released.line_id,
        sku=released.sku,
        released_reserved=released.released_reserved,
        dropped_backordered=released.dropped_backordered,
        reason=None if released.substitution_id else reason,
        substitution_id=released.substitution_id,
    )
    return _with_refunds(state, [recorded])


def _record_eta(state: OrderState, update: BackorderEtaUpdated) -> list[EventPayload]:
    # Recorded even before the shortfall is known: the procurement and inventory topics are not ordered.
    line = _known_line(state, update.line_id, update.sku)
    if line is not None and line.eta_known and line.eta == update.eta:
        return []
    return [
        LineEtaChanged(
            order_id=update.order_id,
            line_id=update.line_id,
            sku=update.sku,
            eta=update.eta,
            previous_eta=line.eta if line is not None else None,
            po_id=update.po_id,
            reason=update.reason,
        )
    ]


def _record_announcement(state: OrderState, shipment: ShipmentDispatched) -> list[EventPayload]:
    # A re-sent shipment (same shipment_id) never gets here: the consumer loop drops it by business key.
    # No bound on the units: inventory decides whether they ship (StockShipped) or refuses the shipment.
    if state.placement is None:
        # A warehouse ships from a pick list, which only an order the service knows has.
        raise UnexpectedEvent(f"shipment {shipment.shipment_id} of unknown order {shipment.order_id}")
    for announced in shipment.lines:
        line = state.lines.get(announced.line_id)
        if line is None:
            raise UnexpectedEvent(
                f"shipment {shipment.shipment_id}: order {state.order_id} has no line {announced.line_id}"
            )
        if line.sku != announced.sku:
            raise UnexpectedEvent(
                f"shipment {shipment.shipment_id}: line {line.line_id} is {line.sku}, not {announced.sku}"
            )
    announcement = ShipmentAnnounced(
        order_id=shipment.order_id,
        shipment_id=shipment.shipment_id,
        lines=shipment.lines,
        carrier=shipment.carrier,
        tracking_number=shipment.tracking_number,
        tracking_url=shipment.tracking_url,
        shipped_at=shipment.shipped_at,
    )
    known = state.shipments.get(shipment.shipment_id)
    if known is not None and known.announcement is not None:
        if known.announcement == announcement:
            return []
        raise UnexpectedEvent(f"shipment {shipment.shipment_id} was announced before with other content")
    return [announcement]


def _record_shipped(state: OrderState, shipped: StockShipped) -> list[EventPayload]:
    # Like inventory's other answers, it may come before the order itself (another topic).
    _known_line(state, shipped.line_id, shipped.sku)
    known = state.shipments.get(shipped.shipment_id)
    earlier = known.shipped.get(shipped.line_id) if known is not None else None
    if earlier == shipped.quantity:
        return []  # the same fact again
    if earlier is not None:
        raise UnexpectedEvent(
            f"shipment {shipped.shipment_id} shipped {earlier} units of line {shipped.line_id} before, "
            f"now {shipped.quantity}"
        )
    # Not bounded by the line's units to ship: inventory is the authority of what left its stock (an
    # excess shows in invariant_violations).
    return [
        LineShipped(
            order_id=shipped.order_id,
            line_id=shipped.line_id,
            sku=shipped.sku,
            shipment_id=shipped.shipment_id,
            quantity=shipped.quantity,
        )
    ]


def pick_list(state: OrderState) -> dict[str, tuple[int, int]]:
    """What may ship now and what shipped, per line with either (see `shippable_now`)."""
    shippable = shippable_now(state) if state.placed else {}
    return {
        line.line_id: (shippable.get(line.line_id, 0), line.shipped)
        for line in state.lines.values()
        if shippable.get(line.line_id, 0) > 0 or line.shipped > 0
    }


def _fulfilment(state: OrderState) -> list[EventPayload]:
    """FulfilmentRequested with the next revision, if the pick list differs from the last one published."""
    if state.placement is None:
        return []
    current = pick_list(state)
    if current == state.pick_list:
        return []
    # A line dropped from the pick list is listed once more with quantity 0: its units are withdrawn.
    listed = {**{line_id: (0, shipped) for line_id, (_, shipped) in state.pick_list.items()}, **current}
    lines = [
        ShippableLine(line_id=line_id, sku=state.lines[line_id].sku, quantity=quantity, shipped=shipped)
        for line_id, (quantity, shipped) in listed.items()
    ]
    # Units pending cancellation count as gone: inventory is about to release or drop them.
    complete = all(
        line.decided
        and line.waiting_not_pending == 0
        and current.get(line.line_id, (0, 0))[0] == line.pickable
        for line in state.lines.values()
    )
    return [
        FulfilmentRequested(
            order_id=state.order_id,
            revision=state.fulfilment_revision + 1,
            customer_id=state.placement.customer.customer_id,
            shipping_preference=state.placement.shipping_preference,
            lines=lines,
            complete=complete,
        )
    ]


# --- evolve -----------------------------------------------------------------------------------------------


def evolve(state: OrderState, event: EventPayload) -> OrderState:
    match event:
        case OrderPlaced():
            return _opened(state, event)
        case OrderRecorded(order=placed):
            return _opened(state, placed)
        case OrderCancelled():
            cancelled = _cancelled(state, event)
            return replace(cancelled, own_cancellations=cancelled.own_cancellations + 1)
        case OrderLineSubstituted():
            return _substituted(state, event)
        case ExternalCancellationRecorded(cancellation=cancellation):
            return _cancelled(state, cancellation)
        case ShipmentAnnounced():
            known = state.shipments.get(event.shipment_id) or ShipmentState(event.shipment_id)
            return _with_shipment(state, replace(known, announcement=event))
        case FulfilmentRequested():
            return replace(
                state,
                fulfilment_revision=event.revision,
                pick_list={
                    line.line_id: (line.quantity, line.shipped)
                    for line in event.lines
                    if line.quantity > 0 or line.shipped > 0
                },
            )
        case OrderLineEvent() | RefundRequested():
            # Creates the line if inventory's answer came before the order (see _known_line).
            line = state.lines.get(event.line_id) or LineState(line_id=event.line_id, sku=event.sku)
            state = replace(state, lines={**state.lines, event.line_id: _settled(_line_after(line, event))})
            if isinstance(event, LineShipped):
                known = state.shipments.get(event.shipment_id) or ShipmentState(event.shipment_id)
                shipped = {**known.shipped, event.line_id: event.quantity}
                state = _with_shipment(state, replace(known, shipped=shipped))
            return state
    raise TypeError(f"{type(event).__name__} is not an event of an order stream")


def _with_shipment(state: OrderState, shipment: ShipmentState) -> OrderState:
    return replace(state, shipments={**state.shipments, shipment.shipment_id: shipment})


def _line_after(line: LineState, event: OrderLineEvent | RefundRequested) -> LineState:
    match event:
        case LineReserved():
            return replace(line, reserved_at_placement=event.quantity)
        case LineBackordered():
            return replace(line, reserved_at_placement=event.reserved, backordered=event.backordered)
        case LineRejected():
            return replace(
                line,
                reserved_at_placement=event.reserved,
                rejected=event.rejected,
                rejection_reason=event.reason,
            )
        case LineFilled():
            # Inventory's fill is the truth, also when it raced a cancellation here: those units stay
            # pending until inventory releases them (a whole-order request) or ship (only_waiting).
            return replace(line, filled=line.filled + event.quantity)
        case LineReleased():
            dropped_waiting = min(line.pending_cancel_waiting, event.dropped_backordered)
            rest = event.released_reserved + event.dropped_backordered - dropped_waiting
            return replace(
                line,
                released_reserved=line.released_reserved + event.released_reserved,
                dropped_backordered=line.dropped_backordered + event.dropped_backordered,
                pending_cancel_waiting=line.pending_cancel_waiting - dropped_waiting,
                pending_cancel=max(0, line.pending_cancel - rest),
                release_reason=event.reason or line.release_reason,
                substituted=line.substituted
                + (event.released_reserved + event.dropped_backordered if event.substitution_id else 0),
            )
        case LineShipped():
            return replace(line, shipped=line.shipped + event.quantity)
        case LineEtaChanged():
            return replace(
                line, eta=event.eta, previous_eta=event.previous_eta, eta_known=True, po_id=event.po_id
            )
        case RefundRequested():
            return replace(
                line,
                refunded=line.refunded + event.quantity,
                refunded_amount=line.refunded_amount + event.amount,
            )
    raise TypeError(f"{type(event).__name__} is not an event of an order line")


def _settled(line: LineState) -> LineState:
    """Pending cancellations capped to what is still open: what inventory can no longer cancel (filled
    before an only_waiting request, shipped meanwhile) stops being pending as soon as the line shows it."""
    if line.ordered == 0:
        return line  # the placement is unknown: nothing to measure the requests against yet
    if line.decided:
        waiting_cap, open_cap = line.waiting, line.unshipped
    else:
        waiting_cap = open_cap = max(0, line.open_units)  # inventory will decide the line first
    pending_waiting = min(line.pending_cancel_waiting, waiting_cap)
    pending = min(line.pending_cancel, max(0, open_cap - pending_waiting))
    reason = line.pending_reason if pending_waiting + pending else None
    if (pending_waiting, pending, reason) == (
        line.pending_cancel_waiting,
        line.pending_cancel,
        line.pending_reason,
    ):
        return line
    return replace(
        line, pending_cancel_waiting=pending_waiting, pending_cancel=pending, pending_reason=reason
    )


def rebuild(order_id: str, events: Iterable[EventPayload]) -> OrderState:
    """The order's state from its stream alone."""
    return reduce(evolve, events, initial_state(order_id))


def _opened(state: OrderState, placed: OrderPlaced) -> OrderState:
    lines = {
        ordered.line_id: _settled(
            replace(
                state.lines.get(ordered.line_id) or LineState(line_id=ordered.line_id, sku=ordered.sku),
                sku=ordered.sku,
                ordered=ordered.quantity,
                unit_price=ordered.unit_price,
            )
        )
        for ordered in placed.lines
    }
    return replace(state, placement=placed, lines=lines)


def _substituted(state: OrderState, substitution: OrderLineSubstituted) -> OrderState:
    """The replaced line's units become pending (as an only_waiting cancellation), the new line opens."""
    lines = dict(state.lines)
    replaced = lines.get(substitution.replaced.line_id)
    if replaced is not None:
        lines[replaced.line_id] = _settled(
            replace(
                replaced,
                pending_cancel_waiting=replaced.pending_cancel_waiting + substitution.replaced.quantity,
            )
        )
    new = substitution.line
    lines[new.line_id] = LineState(
        line_id=new.line_id,
        sku=new.sku,
        ordered=new.quantity,
        unit_price=new.unit_price,
        substitute_for=substitution.replaced.line_id,
    )
    substitutions = {**state.substitutions, substitution.substitution_id: substitution}
    return replace(state, lines=lines, substitutions=substitutions)


def _cancelled(state: OrderState, cancellation: OrderCancelled) -> OrderState:
    lines = dict(state.lines)
    for requested in cancellation.lines:
        line = lines.get(requested.line_id)
        if line is None:
            continue
        if cancellation.only_waiting:
            line = replace(line, pending_cancel_waiting=line.pending_cancel_waiting + requested.quantity)
        else:
            line = replace(line, pending_cancel=line.pending_cancel + requested.quantity)
        lines[line.line_id] = _settled(replace(line, pending_reason=cancellation.reason))
    return replace(state, lines=lines, cancellations=(*state.cancellations, cancellation))


# --- queries ----------------------------------------------------------------------------------------------


def order_status(state: OrderState) -> OrderStatus:
    """The order's status by the rules in the module docstring. The order must be placed."""
    if state.placement is None:
        raise OrderNotFound(f"order {state.order_id} is unknown")
    lines = state.lines.values()
    # A substitute line inventory has not decided yet counts as waiting (see LineState.awaiting_decision).
    if not all(line.decided or line.substitute_for is not None for line in lines):
        return "accepted"
    to_ship = sum(max(0, line.to_ship) for line in lines)  # an over-shipped line has nothing to ship
    waiting = sum(line.waiting for line in lines)
    if any(line.shipped for line in lines):
        return "partially_shipped" if to_ship or waiting else "shipped"
    if waiting and to_ship:
        return "partially_backordered"
    if waiting:
        return "backordered"
    if to_ship:
        return "ready_to_ship"
    if any(line.cancelled for line in lines):
        return "cancelled"
    return "rejected"


def shippable_now(state: OrderState) -> dict[str, int]:
    """Units that may leave the warehouse now, by line: allocated, not shipped, not pending cancellation,
    honouring the shipping preference (ship_complete: only once nothing waits but what is being cancelled)."""
    if order_status(state) == "accepted":
        return {}
    lines = state.lines.values()
    placement = state.placement
    assert placement is not None  # order_status checked it
    if placement.shipping_preference == "ship_complete" and any(line.waiting_not_pending for line in lines):
        return {}
    return {line.line_id: line.pickable for line in lines if line.pickable > 0}


def auto_cancel_deadline(state: OrderState, default_max_wait_days: int) -> datetime | None:
    """When the still-waiting units of the order will be cancelled; None while nothing waits."""
    if state.placement is None or state.waiting == 0:
        return None
    days = state.placement.max_wait_days or default_max_wait_days
    return state.placement.placed_at + timedelta(days=days)


def due_for_auto_cancel(
    state: OrderState, now: datetime, default_max_wait_days: int
) -> CancelOverdueBackorders | None:
    """The command to cancel the order's overdue backorders, if its maximum wait is over at `now`."""
    deadline = auto_cancel_deadline(state, default_max_wait_days)
    if deadline is None or now < deadline:
        return None
    return CancelOverdueBackorders(order_id=state.order_id, deadline=deadline, now=now)


def invariant_violations(state: OrderState) -> list[str]:
    """Broken line arithmetic, described; empty when the books balance."""
    problems = []
    for line in state.lines.values():
        if line.decided and line.reserved_at_placement + line.backordered + line.rejected != line.ordered:
            problems.append(f"{line.line_id}: ordered != reserved + backordered + rejected")
        if line.waiting < 0:
            problems.append(f"{line.line_id}: more units filled or dropped than backordered")
        if line.allocated < 0:
            problems.append(f"{line.line_id}: more units released from stock than allocated")
        if line.to_ship < 0:
            # Inventory shipped more than the order knows allocated: recorded (inventory's truth), but
            # the books of the line disagree with inventory's.
            problems.append(f"{line.line_id}: more units shipped than allocated")
        if line.pending_cancel < 0 or line.pending_cancel_waiting < 0:
            problems.append(f"{line.line_id}: negative pending cancellation")
        if line.ordered and line.cancellation_pending > max(0, line.open_units):
            problems.append(f"{line.line_id}: more units pending cancellation than open")
        # Refunds follow confirmed cancellations; a stream written before that rule refunded at request
        # time, so units still pending count as covered.
        if line.refunded > line.cancelled + line.cancellation_pending:
            problems.append(f"{line.line_id}: more units refunded than cancelled")
    for shipment in state.shipments.values():
        announced = shipment.announced_lines
        if shipment.announcement is None:
            continue  # inventory's part alone: nothing to compare it with yet
        for line_id, units in shipment.shipped.items():
            if line_id not in announced or announced[line_id].quantity != units:
                listed = announced[line_id].quantity if line_id in announced else 0
                problems.append(
                    f"shipment {shipment.shipment_id}: inventory shipped {units} units of line {line_id}, "
                    f"the warehouse announced {listed}"
                )
    return problems


# What the order service learns from the topics it consumes; it ignores every other event.
CONSUMED_EVENTS: tuple[type[EventPayload], ...] = (
    OrderPlaced,
    OrderCancelled,
    StockReserved,
    StockShort,
    BackorderFulfilled,
    StockReleased,
    BackorderEtaUpdated,
    ShipmentDispatched,
    StockShipped,
)


ORDER_COMMANDS = (
    PlaceOrder,
    CancelBackorderedUnits,
    CancelOrder,
    CancelOverdueBackorders,
    SubstituteBackorderedUnits,
)


def order_id_of(incoming: Command | EventPayload) -> str | None:
    """The order stream an incoming message belongs to; None for messages the order service ignores."""
    if isinstance(incoming, ORDER_COMMANDS):
        return incoming.order_id
    if isinstance(incoming, CONSUMED_EVENTS):
        return str(getattr(incoming, "order_id"))  # noqa: B009 -- every consumed event names its order
    return None
