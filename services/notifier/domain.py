"""The notifier's domain: which message each change deserves, exactly once, and how delivery is retried.

Pure: no I/O and no clock. Three kinds of small deciders, each over its own stream:

- per order (`decide_order`/`evolve_order`): from the contract events about an order, record what the
  notifier learns and request one `Notification` per customer per meaningful change;
- per SKU (`decide_sku`/`evolve_sku`): back-in-stock subscriptions, each consumed by its one message;
- per message (`decide_delivery`/`evolve_delivery` over `delivered`/`delivery_failed`): NotificationSent,
  a retry with exponential backoff, or NotificationFailed once the attempts are exhausted; each attempt
  is recorded once, and nothing after the final outcome.
A stream before its first event is `initial_order_facts(order_id)`, `initial_sku_watch(sku)` or
`initial_delivery(notification_id)`; the stream ids are `order_stream_id(order_id)` ("order:<id>"),
`sku_stream_id(sku)` ("sku:<sku>") and `delivery_stream_id(notification_id)` ("delivery:<id>").

Exactly one message per change: every notification has a stable id (`notification_id`) computed from its
subject (order and line, or SKU and customer), its kind and the change's distinguishing value. The state
remembers the ids it requested, so deciding the same change again requests nothing, and the delivery
queue keeps one row per id, so even a state rebuilt from scratch cannot send a change twice.

When "backordered" is sent: StockShort (inventory topic) and the line's first BackorderEtaUpdated
(procurement topic) arrive separately and in either order. The backordered message waits for the first
ETA answer, a date or "no purchase order covers it", so the customer gets one complete message instead of
"backordered, date unknown" followed a moment later by "ETA changed". If procurement has not answered
within a grace period, `due_backorder_announcements` makes the message go out without a date; a later
date then follows as eta_changed. Messages also wait for the order's contact details (OrderPlaced) if
inventory's answer overtook it.

Distinguishing values: backordered and rejected happen once per line; eta_changed by its sequence number
and new ETA (so A -> B -> A is two messages, the same B twice is one); fulfilled by the units still
waiting afterwards; cancelled and refunded by the id of the causing event; back_in_stock by the id of the
stock arrival.
"""

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from functools import reduce
from typing import Any, Literal

from pydantic import ValidationError

from backbone.contracts import Envelope, EventPayload
from backbone.contracts.events import (
    BackorderEtaUpdated,
    BackorderFulfilled,
    Channel,
    GoodsReceived,
    LineQuantity,
    NotificationFailed,
    NotificationKind,
    NotificationSent,
    OrderCancelled,
    OrderPlaced,
    RefundRequested,
    SkuPolicyChanged,
    StockAdjusted,
    StockShort,
)
from services.notifier.events import (
    BackInStockContent,
    BackInStockSubscribed,
    BackInStockSubscriptionEnded,
    BackorderedContent,
    BackorderOption,
    CancellationObserved,
    CancelledContent,
    DeliveryRetryScheduled,
    EtaChangedContent,
    FulfilledContent,
    LineEtaObserved,
    LineFillObserved,
    LineShortObserved,
    MessageContent,
    Notification,
    NotificationRequested,
    NotifierLineEvent,
    OrderContactRecorded,
    RefundedContent,
    RejectedContent,
    SkuPolicyObserved,
)


class NotifierError(Exception):
    """A command the notifier refuses; the message is safe to show to the caller."""


class BackordersAllowed(NotifierError):
    """A SKU that can be backordered needs no back-in-stock subscription: the customer can order it."""


class InvalidSubscription(NotifierError):
    pass


# --- stable ids -------------------------------------------------------------------------------------------

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:backorder:notifier:notification")


def notification_id(subject: Sequence[str], kind: NotificationKind, change: str) -> str:
    """The same (subject, kind, change) always gives the same id, in any process, after any restart."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join((*subject, kind, change))))


def line_subject(order_id: str, line_id: str) -> tuple[str, ...]:
    return ("order", order_id, "line", line_id)


def order_subject(order_id: str) -> tuple[str, ...]:
    return ("order", order_id)


def subscription_subject(sku: str, customer_id: str) -> tuple[str, ...]:
    return ("sku", sku, "customer", customer_id)


# --- per order: state -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineFacts:
    line_id: str
    sku: str
    ordered: int = 0
    disposition: Literal["backordered", "rejected"] | None = None  # set once inventory fell short
    available: int = 0
    short_quantity: int = 0
    rejection_reason: str | None = None
    short_at: datetime | None = None
    waiting: int = 0
    eta: date | None = None
    eta_known: bool = False  # procurement answered, possibly with "no purchase order" (eta None)
    backorder_announced: bool = False
    announced_eta: date | None = None  # the ETA the customer was last told
    eta_announcements: int = 0

    @property
    def backorder_pending(self) -> bool:
        """Backordered units wait and the customer has not been told yet."""
        return self.disposition == "backordered" and self.waiting > 0 and not self.backorder_announced


@dataclass(frozen=True, slots=True)
class OrderFacts:
    order_id: str
    contact: OrderContactRecorded | None = None  # None until OrderPlaced: nobody to write to yet
    lines: Mapping[str, LineFacts] = field(default_factory=dict)
    requested: frozenset[str] = frozenset()  # ids of every notification requested for this order


def initial_order_facts(order_id: str) -> OrderFacts:
    return OrderFacts(order_id=order_id)


def order_stream_id(order_id: str) -> str:
    return f"order:{order_id}"


@dataclass(frozen=True, slots=True)
class AnnounceOverdueBackorders:
    """Made by `due_backorder_announcements`: procurement has not given an ETA within the grace period."""

    order_id: str
    now: datetime
    grace: timedelta


# --- per order: decide ------------------------------------------------------------------------------------


def decide_order(
    state: OrderFacts, incoming: Envelope[Any] | AnnounceOverdueBackorders
) -> list[EventPayload]:
    """What the notifier records about the order and which notifications it requests, for one message.

    `incoming` is the consumed envelope (its event id and time distinguish some changes) or the
    grace-period command.
    """
    if isinstance(incoming, AnnounceOverdueBackorders):
        return _announce_overdue(state, incoming)
    if _already_handled(state, incoming):
        return []
    observed = _observe(state, incoming)
    after = reduce(evolve_order, observed, state)
    return [*observed, *_requests(after, _notifications(after, incoming))]


def due_backorder_announcements(
    state: OrderFacts, now: datetime, grace: timedelta
) -> AnnounceOverdueBackorders | None:
    """The command to announce backorders still lacking an ETA after `grace`, if any is due at `now`."""
    due_at = backorder_announcement_due_at(state, grace)
    if due_at is None or now < due_at:
        return None
    return AnnounceOverdueBackorders(order_id=state.order_id, now=now, grace=grace)


def backorder_announcement_due_at(state: OrderFacts, grace: timedelta) -> datetime | None:
    """When the earliest pending backordered message goes out without an ETA; for the scheduler."""
    due = [at for line in state.lines.values() if (at := _announcement_due_at(state, line, grace))]
    return min(due, default=None)


def _announce_overdue(state: OrderFacts, command: AnnounceOverdueBackorders) -> list[EventPayload]:
    overdue = [
        line
        for line in state.lines.values()
        if (due_at := _announcement_due_at(state, line, command.grace)) is not None and due_at <= command.now
    ]
    return _requests(state, [_backordered(state, line) for line in overdue])


def _announcement_due_at(state: OrderFacts, line: LineFacts, grace: timedelta) -> datetime | None:
    if state.contact is None or not line.backorder_pending or line.eta_known or line.short_at is None:
        return None
    return line.short_at + grace


def _already_handled(state: OrderFacts, incoming: Envelope[Any]) -> bool:
    """Changes identified by their causing event: a redelivered one was handled before."""
    match incoming.payload:
        case OrderCancelled():
            return _cancelled_id(state.order_id, incoming) in state.requested
        case RefundRequested(line_id=line_id):
            return _refunded_id(state.order_id, line_id, incoming) in state.requested
    return False


def _cancelled_id(order_id: str, cause: Envelope[Any]) -> str:
    return notification_id(order_subject(order_id), "cancelled", str(cause.event_id))


def _refunded_id(order_id: str, line_id: str, cause: Envelope[Any]) -> str:
    return notification_id(line_subject(order_id, line_id), "refunded", str(cause.event_id))


def _observe(state: OrderFacts, incoming: Envelope[Any]) -> list[EventPayload]:
    """The facts of `incoming` worth remembering, in the notifier's terms; nothing if already known."""
    payload = incoming.payload
    lines = state.lines
    match payload:
        case OrderPlaced():
            if state.contact is not None:
                return []
            return [
                OrderContactRecorded(
                    order_id=payload.order_id,
                    shop_id=payload.shop_id,
                    customer=payload.customer,
                    lines=[
                        LineQuantity(line_id=line.line_id, sku=line.sku, quantity=line.quantity)
                        for line in payload.lines
                    ],
                    shipping_preference=payload.shipping_preference,
                    placed_at=payload.placed_at,
                    max_wait_days=payload.max_wait_days,
                )
            ]
        case StockShort():
            known = lines.get(payload.line_id)
            if known is not None and known.disposition is not None:
                return []
            return [
                LineShortObserved(
                    order_id=payload.order_id,
                    line_id=payload.line_id,
                    sku=payload.sku,
                    ordered=payload.demanded,
                    available=payload.available,
                    short_quantity=payload.short_quantity,
                    disposition=payload.disposition,
                    reason=payload.reason,
                    observed_at=incoming.occurred_at,
                )
            ]
        case BackorderEtaUpdated():
            known = lines.get(payload.line_id)
            if known is not None and known.eta_known and known.eta == payload.eta:
                return []
            return [
                LineEtaObserved(
                    order_id=payload.order_id, line_id=payload.line_id, sku=payload.sku, eta=payload.eta
                )
            ]
        case BackorderFulfilled():
            known = lines.get(payload.line_id)
            if known is not None and known.waiting <= payload.remaining_backordered:
                return []  # a fill seen before: waiting only ever goes down
            return [
                LineFillObserved(
                    order_id=payload.order_id,
                    line_id=payload.line_id,
                    sku=payload.sku,
                    quantity=payload.quantity,
                    remaining_backordered=payload.remaining_backordered,
                )
            ]
        case OrderCancelled():
            return [CancellationObserved(order_id=payload.order_id, lines=payload.lines)]
    return []


def _notifications(state: OrderFacts, incoming: Envelope[Any]) -> list[Notification]:
    payload = incoming.payload
    if state.contact is None:
        return []  # inventory overtook OrderPlaced: the messages go out when it arrives
    match payload:
        case OrderPlaced():
            return [n for line in state.lines.values() for n in _due_from_facts(state, line)]
        case StockShort() | BackorderEtaUpdated():
            line = state.lines.get(payload.line_id)
            return _due_from_facts(state, line) if line else []
        case BackorderFulfilled():
            return _fulfilled(state, payload)
        case OrderCancelled():
            cancelled = CancelledContent(reason=payload.reason, lines=payload.lines)
            return [_notification(state, None, _cancelled_id(state.order_id, incoming), cancelled)]
        case RefundRequested():
            refunded = RefundedContent(
                sku=payload.sku,
                quantity=payload.quantity,
                amount=payload.amount,
                currency=payload.currency,
                reason=payload.reason,
            )
            refund_id = _refunded_id(state.order_id, payload.line_id, incoming)
            return [_notification(state, payload.line_id, refund_id, refunded)]
    return []


def _due_from_facts(state: OrderFacts, line: LineFacts) -> list[Notification]:
    """Messages the line's facts call for and the customer has not had: rejected, backordered, new ETA."""
    if line.disposition == "rejected":
        return [_rejected(state, line)]
    if line.disposition != "backordered" or line.waiting == 0 or not line.eta_known:
        return []
    if not line.backorder_announced:
        return [_backordered(state, line)]
    if line.eta != line.announced_eta:
        content = EtaChangedContent(
            sku=line.sku, waiting=line.waiting, previous_eta=line.announced_eta, eta=line.eta
        )
        change = f"{line.eta_announcements + 1}:{line.eta.isoformat() if line.eta else 'none'}"
        return [_line_notification(state, line, change, content)]
    return []


def _rejected(state: OrderFacts, line: LineFacts) -> Notification:
    content = RejectedContent(
        sku=line.sku,
        ordered=line.ordered,
        available=line.available,
        rejected=line.short_quantity,
        reason=line.rejection_reason,
    )
    return _line_notification(state, line, "", content)


def _backordered(state: OrderFacts, line: LineFacts) -> Notification:
    contact = state.contact
    assert contact is not None  # callers only announce once the contact is known
    cancel_by = (
        (contact.placed_at + timedelta(days=contact.max_wait_days)).date() if contact.max_wait_days else None
    )
    content = BackorderedContent(
        sku=line.sku,
        ordered=line.ordered,
        available=line.available,
        backordered=line.waiting,
        eta=line.eta,
        cancel_by=cancel_by,
        shipping_preference=contact.shipping_preference,
        options=_backorder_options(state, line),
    )
    return _line_notification(state, line, "", content)


def _backorder_options(state: OrderFacts, line: LineFacts) -> list[BackorderOption]:
    """Wait and cancel always; shipping what is available now only if some of the order is in stock."""
    options: list[BackorderOption] = ["wait", "cancel_backordered"]
    # A line inventory did not fall short on is reserved in full.
    in_stock = any(other.disposition is None or other.available > 0 for other in state.lines.values())
    if in_stock:
        options.append("ship_available_now")
    return options


def _fulfilled(state: OrderFacts, fill: BackorderFulfilled) -> list[Notification]:
    line = state.lines.get(fill.line_id)
    if line is None or not line.backorder_announced:
        return []  # filled before the customer heard of the backorder: nothing changed for them
    content = FulfilledContent(
        sku=line.sku,
        filled=fill.quantity,
        still_waiting=line.waiting,
        order_ready=all(other.waiting == 0 for other in state.lines.values()),
    )
    change = f"remaining:{fill.remaining_backordered}"
    return [_line_notification(state, line, change, content)]


def _line_notification(
    state: OrderFacts, line: LineFacts, change: str, content: MessageContent
) -> Notification:
    """A notification about one line, identified by the line, the kind and the change's value."""
    change_id = notification_id(line_subject(state.order_id, line.line_id), content.kind, change)
    return _notification(state, line.line_id, change_id, content)


def _notification(
    state: OrderFacts, line_id: str | None, change_id: str, content: MessageContent
) -> Notification:
    contact = state.contact
    assert contact is not None  # callers only notify once the contact is known
    return Notification(
        notification_id=change_id,
        customer_id=contact.customer.customer_id,
        email=contact.customer.email,
        customer_name=contact.customer.name,
        shop_id=contact.shop_id,
        order_id=state.order_id,
        line_id=line_id,
        content=content,
    )


def _requests(state: OrderFacts, notifications: Iterable[Notification]) -> list[EventPayload]:
    """Requests for the notifications not requested before (by id), each once."""
    seen = set(state.requested)
    requests: list[EventPayload] = []
    for notification in notifications:
        if notification.notification_id not in seen:
            seen.add(notification.notification_id)
            requests.append(NotificationRequested(notification=notification))
    return requests


# --- per order: evolve ------------------------------------------------------------------------------------


def evolve_order(state: OrderFacts, event: EventPayload) -> OrderFacts:
    match event:
        case OrderContactRecorded():
            lines = dict(state.lines)
            for placed in event.lines:
                known = lines.get(placed.line_id) or LineFacts(line_id=placed.line_id, sku=placed.sku)
                lines[placed.line_id] = replace(known, ordered=placed.quantity)
            return replace(state, contact=event, lines=lines)
        case NotifierLineEvent():
            # Creates the line if inventory's or procurement's answer came before the order.
            line = state.lines.get(event.line_id) or LineFacts(line_id=event.line_id, sku=event.sku)
            return replace(state, lines={**state.lines, event.line_id: _line_after(line, event)})
        case CancellationObserved():
            lines = dict(state.lines)
            for cancelled in event.lines:
                if (cancelled_line := lines.get(cancelled.line_id)) is not None:
                    # The same rule as inventory's: a cancellation takes waiting units first.
                    waiting = max(cancelled_line.waiting - cancelled.quantity, 0)
                    lines[cancelled.line_id] = replace(cancelled_line, waiting=waiting)
            return replace(state, lines=lines)
        case NotificationRequested(notification=notification):
            base = replace(state, requested=state.requested | {notification.notification_id})
            announced_line = base.lines.get(notification.line_id or "")
            if announced_line is None:
                return base
            announced = _announced(announced_line, notification.content)
            return replace(base, lines={**base.lines, announced.line_id: announced})
    raise TypeError(f"{type(event).__name__} is not an event of a notifier order stream")


def _line_after(line: LineFacts, event: NotifierLineEvent) -> LineFacts:
    match event:
        case LineShortObserved():
            return replace(
                line,
                ordered=event.ordered,
                disposition=event.disposition,
                available=event.available,
                short_quantity=event.short_quantity,
                rejection_reason=event.reason,
                short_at=event.observed_at,
                waiting=event.short_quantity if event.disposition == "backordered" else 0,
            )
        case LineEtaObserved():
            return replace(line, eta=event.eta, eta_known=True)
        case LineFillObserved():
            return replace(line, waiting=min(line.waiting, event.remaining_backordered))
    raise TypeError(f"{type(event).__name__} is not an event of an order line")


def rebuild_order(order_id: str, events: Iterable[EventPayload]) -> OrderFacts:
    return reduce(evolve_order, events, initial_order_facts(order_id))


def _announced(line: LineFacts, content: MessageContent) -> LineFacts:
    match content:
        case BackorderedContent():
            return replace(line, backorder_announced=True, announced_eta=content.eta)
        case EtaChangedContent():
            return replace(line, announced_eta=content.eta, eta_announcements=line.eta_announcements + 1)
    return line


# The consumed events a customer may hear about, per order and per SKU (back in stock); no other matters.
ORDER_EVENTS: tuple[type[EventPayload], ...] = (
    OrderPlaced,
    OrderCancelled,
    RefundRequested,
    StockShort,
    BackorderFulfilled,
    BackorderEtaUpdated,
)
SKU_EVENTS: tuple[type[EventPayload], ...] = (SkuPolicyChanged, GoodsReceived, StockAdjusted)
CONSUMED_EVENTS = (*ORDER_EVENTS, *SKU_EVENTS)


def order_id_of(payload: EventPayload) -> str | None:
    """The order stream a consumed event belongs to; None if it is not about an order's customer."""
    if isinstance(payload, ORDER_EVENTS):
        return str(getattr(payload, "order_id"))  # noqa: B009 -- each of them names its order
    return None


# --- per SKU: back-in-stock subscriptions -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SkuWatch:
    sku: str
    backorder_policy: str | None = None  # None until a SkuPolicyChanged was seen
    subscribers: Mapping[str, BackInStockSubscribed] = field(default_factory=dict)  # by customer id


@dataclass(frozen=True, slots=True)
class Subscribe:
    sku: str
    customer_id: str
    email: str
    subscribed_at: datetime
    customer_name: str | None = None
    shop_id: str = "default"


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    sku: str
    customer_id: str


def initial_sku_watch(sku: str) -> SkuWatch:
    return SkuWatch(sku=sku)


def sku_stream_id(sku: str) -> str:
    return f"sku:{sku}"


def decide_sku(state: SkuWatch, incoming: Subscribe | Unsubscribe | Envelope[Any]) -> list[EventPayload]:
    """Subscriptions to a SKU that denies backorders; stock arriving consumes each with one message."""
    match incoming:
        case Subscribe():
            return _subscribe(state, incoming)
        case Unsubscribe():
            if incoming.customer_id not in state.subscribers:
                return []
            return [
                BackInStockSubscriptionEnded(
                    sku=incoming.sku, customer_id=incoming.customer_id, reason="unsubscribed"
                )
            ]
        case Envelope(payload=SkuPolicyChanged() as policy):
            if state.backorder_policy == policy.backorder_policy:
                return []
            return [SkuPolicyObserved(sku=policy.sku, backorder_policy=policy.backorder_policy)]
        case Envelope(payload=StockAdjusted(delta=delta)) if delta > 0:
            return _back_in_stock(state, str(incoming.event_id))
        case Envelope(payload=GoodsReceived()):
            return _back_in_stock(state, str(incoming.event_id))
    return []


def _subscribe(state: SkuWatch, command: Subscribe) -> list[EventPayload]:
    if state.backorder_policy == "allow":
        raise BackordersAllowed(f"{command.sku} can be backordered: order it and it ships when it arrives")
    if command.customer_id in state.subscribers:
        return []
    try:
        subscribed = BackInStockSubscribed(
            sku=command.sku,
            customer_id=command.customer_id,
            email=command.email,
            customer_name=command.customer_name,
            shop_id=command.shop_id,
            subscribed_at=command.subscribed_at,
        )
    except ValidationError as e:
        raise InvalidSubscription(str(e)) from None
    return [subscribed]


def _back_in_stock(state: SkuWatch, arrival_event_id: str) -> list[EventPayload]:
    events: list[EventPayload] = []
    for subscriber in sorted(state.subscribers.values(), key=lambda s: (s.subscribed_at, s.customer_id)):
        subject = subscription_subject(subscriber.sku, subscriber.customer_id)
        notification = Notification(
            notification_id=notification_id(subject, "back_in_stock", arrival_event_id),
            customer_id=subscriber.customer_id,
            email=subscriber.email,
            customer_name=subscriber.customer_name,
            shop_id=subscriber.shop_id,
            order_id=None,
            line_id=None,
            content=BackInStockContent(sku=subscriber.sku),
        )
        events.append(NotificationRequested(notification=notification))
        events.append(
            BackInStockSubscriptionEnded(
                sku=subscriber.sku, customer_id=subscriber.customer_id, reason="notified"
            )
        )
    return events


def evolve_sku(state: SkuWatch, event: EventPayload) -> SkuWatch:
    match event:
        case SkuPolicyObserved():
            return replace(state, backorder_policy=event.backorder_policy)
        case BackInStockSubscribed():
            return replace(state, subscribers={**state.subscribers, event.customer_id: event})
        case BackInStockSubscriptionEnded():
            remaining = {k: v for k, v in state.subscribers.items() if k != event.customer_id}
            return replace(state, subscribers=remaining)
        case NotificationRequested():
            return state  # the subscription ends with its own event
    raise TypeError(f"{type(event).__name__} is not an event of a notifier SKU stream")


def rebuild_sku(sku: str, events: Iterable[EventPayload]) -> SkuWatch:
    return reduce(evolve_sku, events, initial_sku_watch(sku))


def sku_of(payload: EventPayload) -> str | None:
    """The SKU stream a consumed event belongs to; None if no subscription can care."""
    if isinstance(payload, SkuPolicyChanged | GoodsReceived) or (
        isinstance(payload, StockAdjusted) and payload.delta > 0
    ):
        return payload.sku
    return None


# --- per message: delivery --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff without jitter: the schedule is a pure function of the attempt number."""

    first_delay: timedelta = timedelta(seconds=30)
    multiplier: float = 2.0
    max_delay: timedelta = timedelta(hours=1)
    max_attempts: int = 8

    def __post_init__(self) -> None:
        if self.first_delay <= timedelta(0) or self.multiplier < 1 or self.max_attempts < 1:
            raise ValueError("retry policy needs a positive first delay, multiplier >= 1, max_attempts >= 1")

    def delay_after(self, attempt: int) -> timedelta:
        """How long to wait after failed attempt `attempt` (1-based): first * multiplier^(n-1), capped."""
        if attempt < 1:
            raise ValueError("attempts count from 1")
        # Capped in float seconds, so that a very late attempt cannot overflow timedelta.
        seconds = self.first_delay.total_seconds() * self.multiplier ** min(attempt - 1, 64)
        return timedelta(seconds=min(seconds, self.max_delay.total_seconds()))


@dataclass(frozen=True, slots=True)
class Destination:
    channel: Channel
    recipient: str  # an email address, or the shop's webhook URL


def destination_for(notification: Notification, shop_webhook_url: str | None) -> Destination:
    """A shop with a webhook messages its customers itself; otherwise the customer gets an email."""
    if shop_webhook_url:
        return Destination(channel="webhook", recipient=shop_webhook_url)
    return Destination(channel="email", recipient=notification.email)


def delivered(notification: Notification, destination: Destination, attempts: int) -> NotificationSent:
    return NotificationSent(
        notification_id=notification.notification_id,
        customer_id=notification.customer_id,
        order_id=notification.order_id,
        line_id=notification.line_id,
        kind=notification.kind,
        channel=destination.channel,
        recipient=destination.recipient,
        attempts=attempts,
    )


def delivery_failed(
    notification: Notification,
    destination: Destination,
    attempts: int,
    error: str,
    now: datetime,
    policy: RetryPolicy,
    permanent: bool = False,
) -> DeliveryRetryScheduled | NotificationFailed:
    """After failed attempt number `attempts`: try again later, or give up (out of attempts, or the
    channel said the message can never be delivered, e.g. an unknown mailbox)."""
    error = (error.strip() or "unknown error")[:1000]
    if permanent or attempts >= policy.max_attempts:
        return NotificationFailed(
            notification_id=notification.notification_id,
            customer_id=notification.customer_id,
            order_id=notification.order_id,
            line_id=notification.line_id,
            kind=notification.kind,
            channel=destination.channel,
            recipient=destination.recipient,
            attempts=attempts,
            error=error,
        )
    return DeliveryRetryScheduled(
        notification_id=notification.notification_id,
        customer_id=notification.customer_id,
        channel=destination.channel,
        recipient=destination.recipient,
        attempts=attempts,
        error=error,
        retry_at=now + policy.delay_after(attempts),
    )


# --- per message: the delivery stream ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """What the log says about one notification's delivery: attempts recorded, and the final outcome."""

    notification_id: str
    attempts: int = 0
    outcome: Literal["sent", "failed"] | None = None


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """The result of attempt number `attempt` to send `notification` to `destination`, finished at `at`.
    `error` None: the channel accepted the message; `permanent`: it said the message can never go out."""

    notification: Notification
    destination: Destination
    attempt: int
    at: datetime
    policy: RetryPolicy
    error: str | None = None
    permanent: bool = False


def delivery_stream_id(notification_id: str) -> str:
    return f"delivery:{notification_id}"


def initial_delivery(notification_id: str) -> DeliveryState:
    return DeliveryState(notification_id=notification_id)


def decide_delivery(state: DeliveryState, attempt: DeliveryAttempt) -> list[EventPayload]:
    """Record an attempt's outcome once: nothing after the final outcome, nor for an attempt that is not
    the next one (a second worker whose lease ran out records nothing over the first one's result)."""
    if state.outcome is not None or attempt.attempt != state.attempts + 1:
        return []
    if attempt.error is None:
        return [delivered(attempt.notification, attempt.destination, attempt.attempt)]
    return [
        delivery_failed(
            attempt.notification,
            attempt.destination,
            attempt.attempt,
            attempt.error,
            attempt.at,
            attempt.policy,
            permanent=attempt.permanent,
        )
    ]


def evolve_delivery(state: DeliveryState, event: EventPayload) -> DeliveryState:
    match event:
        case DeliveryRetryScheduled():
            return replace(state, attempts=event.attempts)
        case NotificationSent():
            return replace(state, attempts=event.attempts, outcome="sent")
        case NotificationFailed():
            return replace(state, attempts=event.attempts, outcome="failed")
    raise TypeError(f"{type(event).__name__} is not an event of a notifier delivery stream")
