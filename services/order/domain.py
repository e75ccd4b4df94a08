"""The order service's domain, decider style: `decide(state, incoming) -> events`, `evolve(state, event)`.

Pure: no I/O and no clock; every time is an input. One stream per order; folding `evolve` over the
stream's events alone rebuilds the state, because whatever the order learns from other services is
recorded in its own stream as internal events (services/order/events.py). A stream before its first
event is `initial_state(order_id)`, e.g. for backbone.aggregate:
    StreamRepository(store, lambda stream: initial_state(stream.removeprefix("order:")), evolve)
Inventory's answers may reach the order service before the order itself (they travel on another topic):
they are recorded on lines of a not-yet-placed order, and the placement completes those lines.

Line arithmetic (units of one line):
    ordered     = reserved at placement + backordered + rejected      (once inventory has decided)
    backordered = filled later + cancelled while waiting + still waiting
    allocated   = reserved at placement + filled later - cancelled from stock   (in stock for the line)
There is no shipping event in the contract yet, so every allocated unit counts as unshipped.

Order status, derived from the lines of a placed order:
    accepted              inventory has not decided every line yet
    ready_to_ship         nothing waits and some units are allocated
    partially_backordered some units are allocated and some wait
    backordered           nothing is allocated and some units wait
    cancelled             nothing is allocated or waiting, and some units were cancelled
    rejected              nothing is allocated or waiting, and nothing was cancelled: all was refused
The shipping preference does not change the status; it decides what may leave now (`shippable_now`):
ship_available ships the allocated units of a partially backordered order, ship_complete waits until
the order is ready_to_ship.

Cancellation: the units of a line to cancel are taken from the waiting units first, then from the
allocated ones. Inventory applies the same rule to OrderCancelled, so both books agree even when a fill
races a cancellation (a fill of units already cancelled here is counted as `filled_after_cancel`, and
inventory releases it). Every cancelled unit with a non-zero price was paid at checkout (the contract has
no payment status) and is refunded by one RefundRequested per line, decided together with the
cancellation, so the refund happens exactly once.

Errors: every refused command raises an `OrderError`; the HTTP layer maps `OrderNotFound`/`LineNotFound`
to 404, `OrderConflict` to 409 and `InvalidCommand` to 422. A consumed event that contradicts the order
raises `UnexpectedEvent`, which belongs in the dead-letter topic.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import reduce
from typing import Literal

from backbone.contracts import EventPayload
from backbone.contracts.events import (
    BackorderEtaUpdated,
    BackorderFulfilled,
    LineQuantity,
    OrderCancelled,
    OrderPlaced,
    RefundRequested,
    StockReleased,
    StockReserved,
    StockShort,
)
from services.order.events import (
    ExternalCancellationRecorded,
    LineBackordered,
    LineEtaChanged,
    LineFilled,
    LineRejected,
    LineReleased,
    LineReserved,
    OrderLineEvent,
    OrderRecorded,
)

OrderStatus = Literal[
    "accepted", "ready_to_ship", "partially_backordered", "backordered", "rejected", "cancelled"
]
CancelReason = Literal["customer_request", "max_wait_exceeded", "shop_request"]


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


class OrderNotYetAllocated(OrderConflict):
    """Inventory has not decided every line yet; cancelling the whole order must wait a moment."""


class NothingToCancel(OrderConflict):
    pass


class InvalidCommand(OrderError):
    pass


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
    cancelled_waiting: int = 0
    cancelled_allocated: int = 0
    filled_after_cancel: int = 0  # a fill that raced a cancellation; inventory releases these units
    released_reserved: int = 0  # inventory's confirmations of cancelled units leaving its books
    dropped_backordered: int = 0
    refunded: int = 0
    refunded_amount: Decimal = Decimal(0)
    eta: date | None = None
    previous_eta: date | None = None
    eta_known: bool = False  # True once procurement answered, even "no purchase order covers it" (None)
    po_id: str | None = None  # the purchase order the ETA comes from

    @property
    def decided(self) -> bool:
        return (
            self.ordered > 0 and self.reserved_at_placement + self.backordered + self.rejected == self.ordered
        )

    @property
    def waiting(self) -> int:
        return self.backordered - self.filled - self.cancelled_waiting

    @property
    def allocated(self) -> int:
        return self.reserved_at_placement + self.filled - self.cancelled_allocated

    @property
    def cancelled(self) -> int:
        return self.cancelled_waiting + self.cancelled_allocated

    @property
    def unshipped(self) -> int:
        return self.allocated + self.waiting


@dataclass(frozen=True, slots=True)
class OrderState:
    order_id: str
    placement: OrderPlaced | None = None  # None: facts about the order arrived before the order itself
    lines: Mapping[str, LineState] = field(default_factory=dict)
    cancellations: tuple[OrderCancelled, ...] = ()  # to recognise the orders topic echoing our own

    @property
    def placed(self) -> bool:
        return self.placement is not None

    @property
    def waiting(self) -> int:
        return sum(line.waiting for line in self.lines.values())


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
    """Cancel every unshipped unit of every line: waiting units leave the queue, stock is released."""

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


Command = PlaceOrder | CancelBackorderedUnits | CancelOrder | CancelOverdueBackorders


# --- decide -----------------------------------------------------------------------------------------------


def decide(state: OrderState, incoming: Command | EventPayload) -> list[EventPayload]:
    """The events that `incoming` (a command, or a consumed contract event) adds to the order's stream.

    Deciding the same incoming twice from the evolved state adds nothing the second time. Events the
    order service does not act on decide to nothing.
    """
    match incoming:
        case PlaceOrder(order=placed):
            return _place(state, placed)
        case CancelBackorderedUnits():
            return _cancel_backordered(_placed(state, incoming.order_id), incoming)
        case CancelOrder():
            return _cancel_order(_placed(state, incoming.order_id), incoming)
        case CancelOverdueBackorders():
            return _cancel_overdue(_placed(state, incoming.order_id), incoming)
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
    return []  # e.g. our own RefundRequested echoed by the orders topic


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
    if line.waiting == 0:
        raise NothingToCancel(f"line {line.line_id} of order {state.order_id} has no units waiting")
    quantity = line.waiting if command.quantity is None else command.quantity
    if not 0 < quantity <= line.waiting:
        raise InvalidCommand(
            f"line {line.line_id} has {line.waiting} units waiting, cannot cancel {quantity}"
        )
    return _cancel(state, {line.line_id: quantity}, command.reason, command.requested_at)


def _cancel_order(state: OrderState, command: CancelOrder) -> list[EventPayload]:
    if not all(line.decided for line in state.lines.values()):
        raise OrderNotYetAllocated(f"order {state.order_id} is still being allocated; try again shortly")
    quantities = {line.line_id: line.unshipped for line in state.lines.values() if line.unshipped > 0}
    if not quantities:
        raise NothingToCancel(f"order {state.order_id} has no units left to cancel")
    return _cancel(state, quantities, command.reason, command.requested_at)


def _cancel_overdue(state: OrderState, command: CancelOverdueBackorders) -> list[EventPayload]:
    if command.now < command.deadline:
        return []
    quantities = {line.line_id: line.waiting for line in state.lines.values() if line.waiting > 0}
    if not quantities:
        return []  # already cancelled or filled: this is what makes the auto-cancel happen once
    return _cancel(state, quantities, "max_wait_exceeded", command.now)


def _cancel(
    state: OrderState, quantities: Mapping[str, int], reason: CancelReason, at: datetime
) -> list[EventPayload]:
    cancelled = OrderCancelled(
        order_id=state.order_id,
        lines=[
            LineQuantity(line_id=line_id, sku=state.lines[line_id].sku, quantity=quantity)
            for line_id, quantity in quantities.items()
        ],
        reason=reason,
        cancelled_at=at,
    )
    return [cancelled, *_refunds(state, evolve(state, cancelled), reason)]


def _refunds(before: OrderState, after: OrderState, reason: CancelReason) -> list[EventPayload]:
    """One refund per line for the units a cancellation actually cancelled, read off evolve itself."""
    if after.placement is None:
        return []
    refunds: list[EventPayload] = []
    for line in after.lines.values():
        quantity = line.cancelled - before.lines[line.line_id].cancelled
        if quantity > 0 and line.unit_price > 0:
            refunds.append(
                RefundRequested(
                    order_id=after.order_id,
                    line_id=line.line_id,
                    sku=line.sku,
                    quantity=quantity,
                    amount=quantity * line.unit_price,
                    currency=after.placement.currency,
                    reason=reason,
                )
            )
    return refunds


def _record_placement(state: OrderState, placed: OrderPlaced) -> list[EventPayload]:
    if state.placement is not None:
        if state.placement == placed:
            return []  # our own OrderPlaced, echoed by the orders topic
        raise UnexpectedEvent(f"order {placed.order_id} was placed before with other content")
    return [OrderRecorded(order=placed)]


def _record_cancellation(state: OrderState, cancellation: OrderCancelled) -> list[EventPayload]:
    if state.placement is None:
        raise UnexpectedEvent(f"cancellation of unknown order {cancellation.order_id}")
    if cancellation in state.cancellations:
        return []  # our own cancellation, echoed by the orders topic
    for requested in cancellation.lines:
        _known_line(state, requested.line_id, requested.sku)
    recorded = ExternalCancellationRecorded(cancellation=cancellation)
    return [recorded, *_refunds(state, evolve(state, recorded), cancellation.reason)]


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
    _known_line(state, released.line_id, released.sku)
    if released.released_reserved == 0 and released.dropped_backordered == 0:
        return []
    return [
        LineReleased(
            order_id=released.order_id,
            line_id=released.line_id,
            sku=released.sku,
            released_reserved=released.released_reserved,
            dropped_backordered=released.dropped_backordered,
        )
    ]


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


# --- evolve -----------------------------------------------------------------------------------------------


def evolve(state: OrderState, event: EventPayload) -> OrderState:
    match event:
        case OrderPlaced():
            return _opened(state, event)
        case OrderRecorded(order=placed):
            return _opened(state, placed)
        case OrderCancelled():
            return _cancelled(state, event)
        case ExternalCancellationRecorded(cancellation=cancellation):
            return _cancelled(state, cancellation)
        case OrderLineEvent() | RefundRequested():
            # Creates the line if inventory's answer came before the order (see _known_line).
            line = state.lines.get(event.line_id) or LineState(line_id=event.line_id, sku=event.sku)
            return replace(state, lines={**state.lines, event.line_id: _line_after(line, event)})
    raise TypeError(f"{type(event).__name__} is not an event of an order stream")


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
            still_wanted = min(event.quantity, line.waiting)
            return replace(
                line,
                filled=line.filled + still_wanted,
                filled_after_cancel=line.filled_after_cancel + event.quantity - still_wanted,
            )
        case LineReleased():
            return replace(
                line,
                released_reserved=line.released_reserved + event.released_reserved,
                dropped_backordered=line.dropped_backordered + event.dropped_backordered,
            )
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


def rebuild(order_id: str, events: Iterable[EventPayload]) -> OrderState:
    """The order's state from its stream alone."""
    return reduce(evolve, events, initial_state(order_id))


def _opened(state: OrderState, placed: OrderPlaced) -> OrderState:
    lines = {
        ordered.line_id: replace(
            state.lines.get(ordered.line_id) or LineState(line_id=ordered.line_id, sku=ordered.sku),
            sku=ordered.sku,
            ordered=ordered.quantity,
            unit_price=ordered.unit_price,
        )
        for ordered in placed.lines
    }
    return replace(state, placement=placed, lines=lines)


def _cancelled(state: OrderState, cancellation: OrderCancelled) -> OrderState:
    lines = dict(state.lines)
    for requested in cancellation.lines:
        line = lines.get(requested.line_id)
        if line is None:
            continue
        from_waiting = min(requested.quantity, line.waiting)
        from_allocated = min(requested.quantity - from_waiting, line.allocated)
        lines[line.line_id] = replace(
            line,
            cancelled_waiting=line.cancelled_waiting + from_waiting,
            cancelled_allocated=line.cancelled_allocated + from_allocated,
        )
    return replace(state, lines=lines, cancellations=(*state.cancellations, cancellation))


# --- queries ----------------------------------------------------------------------------------------------


def order_status(state: OrderState) -> OrderStatus:
    """The order's status by the rules in the module docstring. The order must be placed."""
    if state.placement is None:
        raise OrderNotFound(f"order {state.order_id} is unknown")
    lines = state.lines.values()
    if not all(line.decided for line in lines):
        return "accepted"
    allocated = sum(line.allocated for line in lines)
    waiting = sum(line.waiting for line in lines)
    if waiting and allocated:
        return "partially_backordered"
    if waiting:
        return "backordered"
    if allocated:
        return "ready_to_ship"
    if any(line.cancelled for line in lines):
        return "cancelled"
    return "rejected"


def shippable_now(state: OrderState) -> dict[str, int]:
    """Allocated units that may leave the warehouse now, by line, honouring the shipping preference."""
    status = order_status(state)
    ships_partially = state.placement is not None and state.placement.shipping_preference == "ship_available"
    may_ship = status == "ready_to_ship" or (status == "partially_backordered" and ships_partially)
    if not may_ship:
        return {}
    return {line.line_id: line.allocated for line in state.lines.values() if line.allocated > 0}


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
        if line.filled + line.cancelled_waiting + line.waiting != line.backordered or line.waiting < 0:
            problems.append(f"{line.line_id}: backordered != filled + cancelled + waiting")
        if line.allocated < 0:
            problems.append(f"{line.line_id}: more units cancelled from stock than allocated")
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
)


def order_id_of(incoming: Command | EventPayload) -> str | None:
    """The order stream an incoming message belongs to; None for messages the order service ignores."""
    if isinstance(incoming, PlaceOrder | CancelBackorderedUnits | CancelOrder | CancelOverdueBackorders):
        return incoming.order_id
    if isinstance(incoming, CONSUMED_EVENTS):
        return str(getattr(incoming, "order_id"))  # noqa: B009 -- every consumed event names its order
    return None
