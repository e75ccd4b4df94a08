"""The notifier's domain: which message each change deserves, exactly once, and how delivery is retried.

Pure: no I/O and no clock. Three kinds of small deciders, each over its own stream:

- per order (`decide_order`/`evolve_order`): from the contract events about an order, record what the
  notifier learns and request one `Notification` per customer per meaningful change;
- per SKU (`decide_sku`/`evolve_sku`): back-in-stock subscriptions, each consumed by its one message;
- per message (`decide_delivery`/`evolve_delivery` over `delivered`/`delivery_failed`): NotificationSent,
  a retry with exponential backoff, or NotificationFailed once the attempts are exhausted; each attempt
  is recorded once, and nothing after the final outcome. They name the destination by reference
  (`email:<customer_id>`, `webhook:<shop_id>`), and the channels' error texts lose e-mail addresses,
  the customer's name and the webhook URL (`scrub_error`): the events are published, and the log is
  append-only.
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

One story per line. The topics interleave freely (only one topic's events of one key keep their order),
so a line's facts are kept as sums (filled, released, dropped, shipped, cancellation units requested)
that any arrival order adds up the same, next to what the customer was told (`LineFacts`). After every
event the notifier requests each message the facts call for that was not requested before (`_due`):
- shipped units are those inventory took out of its books (StockShipped), never what the warehouse
  announced (ShipmentDispatched): inventory may refuse a shipment whose units are not reserved any more.
- waiting = backordered - filled - dropped - shipped units beyond what the notifier knows was reserved
  (inventory ships only reserved units, so such a shipment proves a fill not seen yet; a safeguard, as
  inventory's topic orders a line's fill before the StockShipped that uses it).
- rejected: once per line; an unknown SKU (reason "unknown SKU...") says so plainly.
- backordered: once, while units wait; never once nothing waits any more (filled, shipped or dropped
  before the announcement: the customer hears the outcome instead). It names the ETA's basis: no date
  promised when no supplier is known, a purchase order being placed.
- eta_changed: only while units wait and the promise (a date; none yet; none, no supplier) changed.
- A requested cancellation (OrderCancelled) is not news: only inventory's StockReleased says what left
  its books. Until it answers (cancelled units < units requested), backordered and eta_changed wait if
  units still wait (the request is about to take them), and fulfilled waits if the request may take
  reserved units too (not `only_waiting`). A request inventory cannot serve leaves nothing waiting, so
  such a hold never outlives the line's last news.
- fulfilled: units that arrived since the customer last heard of the line and are still reserved for
  them (not shipped, not released), once the backorder was announced; a fill that only_waiting
  cancellations raced is kept and told.
- cancelled: per line, the units StockReleased reports (released_reserved + dropped_backordered), with
  its reason; nothing when it cancelled nothing. Units that left for a substitute (StockReleased names
  the substitution) are a switch the customer asked for, not a cancellation: never told as cancelled.
- substitutes: the backordered message offers up to 3 of the SKU's substitutes (inventory's
  SkuSubstitutesChanged, in its preference order) with at least the backordered units available, each
  with the order service's switch endpoint and body. Which are in stock is the caller's data
  (`SubstituteCatalogue`, from the notifier's projections) and ends up in the message's content, so
  the decision is recorded, not re-made; none in stock: the message says nothing of substitutes.
- refunded: per RefundRequested, after the cancelled message that covers its units (it may overtake
  StockReleased on its own topic).
- shipped: per shipment, order-wide, once the notifier has the warehouse's ShipmentDispatched (carrier,
  tracking, the lines it announced) and inventory's StockShipped for every announced line, in either
  order; it gives the units inventory shipped. Inventory applies a shipment all or nothing, so one it
  refused (e.g. a cancellation released the units first) is never told: the customer hears only the
  cancellation and refund. Until told, a shipment waits in `OrderFacts.shipments_pending`.
So nothing contradicts an earlier message, and the last message about a line matches its final state.

Distinguishing values: backordered and rejected happen once per line; eta_changed by its sequence number
and new promise (so A -> B -> A is two messages, the same B twice is one); fulfilled by the units filled
so far; cancelled by the units cancelled so far; refunded by the id of the RefundRequested; shipped by the
shipment id; back_in_stock by the id of the stock arrival. Additive facts (cancellations, releases,
refunds, shipments, shipped lines) are applied once per event id, shipment id, or shipment and line
(`OrderFacts.observed`).
"""

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import reduce
from typing import Any, Literal
from urllib.parse import quote

from pydantic import ValidationError

from backbone.contracts import Envelope, EventPayload
from backbone.contracts.events import (
    BackorderEtaUpdated,
    BackorderFulfilled,
    CancelReason,
    Channel,
    EtaBasis,
    GoodsReceived,
    LineQuantity,
    NotificationFailed,
    NotificationFailedV1,
    NotificationKind,
    NotificationSent,
    NotificationSentV1,
    OrderCancelled,
    OrderPlaced,
    RefundRequested,
    ShipmentDispatched,
    SkuPolicyChanged,
    SkuSubstitutesChanged,
    StockAdjusted,
    StockLevelChanged,
    StockReleased,
    StockReserved,
    StockShipped,
    StockShort,
    default_substitution_id,
    recipient_ref,
)
from backbone.log import REDACTED, redact_text
from backbone.values import replace
from services.notifier.events import (
    MAX_SUBSTITUTE_OFFERS,
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
    LineReleaseObserved,
    LineShortObserved,
    MessageContent,
    Notification,
    NotificationRequested,
    NotifierLineEvent,
    OrderContactRecorded,
    RefundedContent,
    RefundObserved,
    RejectedContent,
    ShipmentLineConfirmed,
    ShipmentObserved,
    ShippedContent,
    SkuPolicyObserved,
    SubstituteOffer,
)

# Inventory's rejection of a SKU it has never stocked and has no supplier for (cross-service agreement 5).
UNKNOWN_SKU_PREFIX = "unknown SKU"


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
    """What the notifier knows of one order line (facts, as sums, so arrival order does not matter) and
    what the customer has been told about it."""

    line_id: str
    sku: str
    ordered: int = 0
    disposition: Literal["backordered", "rejected"] | None = None  # set once inventory fell short
    available: int = 0  # reserved at placement
    short_quantity: int = 0
    rejection_reason: str | None = None
    short_at: datetime | None = None
    filled: int = 0  # units fills brought (BackorderFulfilled)
    released: int = 0  # reserved units a cancellation released (StockReleased)
    dropped: int = 0  # waiting units a cancellation dropped (StockReleased)
    shipped: int = 0  # units inventory shipped (StockShipped), not what the warehouse announced
    cancel_requested: int = 0  # units OrderCancelled asked for, answered or not
    full_cancel_requested: int = 0  # of those, by cancellations that may take reserved units too
    cancel_reason: CancelReason | None = None  # of the last cancellation seen
    switched: int = 0  # of released + dropped, the units that left for a substitute (not cancelled)
    eta: date | None = None
    eta_known: bool = False  # procurement answered, possibly with "no purchase order" (eta None)
    basis: EtaBasis | None = None
    refunds_pending: tuple[RefundObserved, ...] = ()  # waiting for their cancellation to be told
    # What the customer was told:
    backorder_announced: bool = False
    announced_eta: date | None = None
    announced_basis: EtaBasis | None = None
    eta_announcements: int = 0
    told_filled: int = 0  # fills up to this total are told (or were absorbed by a later message)
    told_cancelled: int = 0
    told_refunded: int = 0

    @property
    def reserved_basis(self) -> int:
        """Reserved at placement: a line inventory did not fall short on is (assumed) reserved in full."""
        return self.available if self.disposition is not None else self.ordered

    @property
    def unshipped(self) -> int:
        """Units allocated to the line and not shipped. Negative: shipments reported units whose fill the
        notifier has not seen yet (inventory ships only from a reservation, so those fills happened)."""
        return self.reserved_basis + self.filled - self.released - self.shipped

    @property
    def waiting(self) -> int:
        """Backordered units still waiting for stock, as far as the notifier knows."""
        if self.disposition != "backordered":
            return 0
        unseen_fills = max(-self.unshipped, 0)
        return max(self.short_quantity - self.filled - self.dropped - unseen_fills, 0)

    @property
    def cancelled(self) -> int:
        return self.released + self.dropped - self.switched

    @property
    def cancellation_unanswered(self) -> bool:
        """A cancellation was requested and inventory has not (yet) said what it cancelled."""
        return self.cancel_requested > self.cancelled

    @property
    def waiting_news_held(self) -> bool:
        """backordered/eta_changed wait: a cancellation is about to take the waiting units."""
        return self.waiting > 0 and self.cancellation_unanswered

    @property
    def fill_news_held(self) -> bool:
        """fulfilled waits: a whole-line cancellation may release the filled units."""
        return self.full_cancel_requested > 0 and self.cancellation_unanswered


@dataclass(frozen=True, slots=True)
class PendingShipment:
    """A shipment not told yet. The warehouse's announcement (ShipmentDispatched) and inventory's
    confirmation of each line (StockShipped) arrive on different topics, in either order."""

    shipment_id: str
    dispatched: ShipmentObserved | None = None  # tracking, and the lines the warehouse announced
    confirmed: Mapping[str, LineQuantity] = field(default_factory=dict)  # by line id: units shipped

    @property
    def confirmed_lines(self) -> list[LineQuantity] | None:
        """The announced lines with the units inventory shipped, once it confirmed every one; else None
        (a shipment inventory refused is never confirmed)."""
        if self.dispatched is None:
            return None
        lines = [self.confirmed.get(line.line_id) for line in self.dispatched.lines]
        return None if None in lines else [line for line in lines if line is not None]


@dataclass(frozen=True, slots=True)
class OrderFacts:
    order_id: str
    contact: OrderContactRecorded | None = None  # None until OrderPlaced: nobody to write to yet
    lines: Mapping[str, LineFacts] = field(default_factory=dict)
    requested: frozenset[str] = frozenset()  # ids of every notification requested for this order
    # Additive facts applied (cancellation/release/refund event ids, shipment ids, shipped lines): a
    # redelivery adds nothing. Bounded by the order's own lifecycle, like `requested`.
    observed: frozenset[str] = frozenset()
    # Not told yet: unconfirmed (or unannounced), or no contact yet. Bounded by the order's shipments.
    shipments_pending: Mapping[str, PendingShipment] = field(default_factory=dict)


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


@dataclass(frozen=True, slots=True)
class SubstituteCatalogue:
    """What the backordered message may offer: per SKU, its substitutes in preference order with the
    units each had available (the notifier's projections, read by the caller), and the order service's
    base URL for the switch endpoint. Data, so the domain stays pure."""

    order_api_url: str = ""
    substitutes: Mapping[str, Sequence[tuple[str, int]]] = field(default_factory=dict)

    def offers(self, order_id: str, line_id: str, sku: str, units: int) -> list[SubstituteOffer]:
        """The first substitutes of `sku` with at least `units` available, at most MAX_SUBSTITUTE_OFFERS."""
        endpoint = f"{self.order_api_url.rstrip('/')}/orders/{quote(order_id, safe='')}/lines/"
        endpoint += f"{quote(line_id, safe='')}/substitution"
        in_stock = [
            SubstituteOffer(
                sku=substitute,
                available=available,
                endpoint=endpoint,
                substitution_id=default_substitution_id(line_id, substitute),
            )
            for substitute, available in self.substitutes.get(sku, ())
            if available >= units and substitute != sku
        ]
        return in_stock[:MAX_SUBSTITUTE_OFFERS]


NO_SUBSTITUTES = SubstituteCatalogue()


# --- per order: decide ------------------------------------------------------------------------------------


def decide_order(
    state: OrderFacts, incoming: Envelope[Any] | AnnounceOverdueBackorders
) -> list[EventPayload]:
    """`execute_order`'s events."""
    return execute_order(state, incoming)[1]


def execute_order(
    state: OrderFacts,
    incoming: Envelope[Any] | AnnounceOverdueBackorders,
    catalogue: SubstituteCatalogue = NO_SUBSTITUTES,
) -> tuple[OrderFacts, list[EventPayload]]:
    """What the notifier records about the order and which notifications it requests, for one message.

    `incoming` is the consumed envelope or the grace-period command. Whatever arrived, every message the
    facts now call for is requested: a message held back by an earlier rule goes out with the event that
    lifts the hold. Returns the state the events lead to as well: they are folded once, here.
    `catalogue`: the substitutes in stock a backordered message may offer (for the SKUs `incoming`
    names, or, for the grace-period command, the SKUs of the lines awaiting their message).
    """
    if isinstance(incoming, AnnounceOverdueBackorders):
        overdue = {
            line.line_id
            for line in state.lines.values()
            if (due_at := _announcement_due_at(state, line, incoming.grace)) is not None
            and due_at <= incoming.now
        }
        requests = _requests(state, _due(state, catalogue, overdue)) if overdue else []
        return reduce(evolve_order, requests, state), requests
    if _already_handled(state, incoming):
        return state, []
    observed = _observe(state, incoming)
    if not observed:
        return state, []
    after = reduce(evolve_order, observed, state)
    requests = _requests(after, _due(after, catalogue))
    return reduce(evolve_order, requests, after), [*observed, *requests]


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


def skus_awaiting_announcement(state: OrderFacts) -> list[str]:
    """The SKUs of the lines whose backordered message waits for an ETA: the announcement pass offers
    their substitutes."""
    lines = state.lines.values()
    return sorted({line.sku for line in lines if _announcement_due_at(state, line, timedelta(0))})


def _announcement_due_at(state: OrderFacts, line: LineFacts, grace: timedelta) -> datetime | None:
    if not _backordered_due(state, line) or line.eta_known or line.short_at is None:
        return None
    return line.short_at + grace


def _already_handled(state: OrderFacts, incoming: Envelope[Any]) -> bool:
    """Additive facts identified by their causing event (or shipment): a redelivered one was applied."""
    match incoming.payload:
        case OrderCancelled() | StockReleased():
            return _event_key(incoming.event_id) in state.observed
        case RefundRequested(line_id=line_id):
            # Streams written before issue 8 requested the refund directly, under the same id.
            return (
                _event_key(incoming.event_id) in state.observed
                or _refunded_id(state.order_id, line_id, incoming) in state.requested
            )
        case ShipmentDispatched(shipment_id=shipment_id):
            return _shipment_key(shipment_id) in state.observed
        case StockShipped(shipment_id=shipment_id, line_id=line_id):
            # No business key in the contract: one StockShipped per shipment and line.
            return _shipped_line_key(shipment_id, line_id) in state.observed
    return False


def _event_key(event_id: object) -> str:
    return f"event:{event_id}"


def _shipment_key(shipment_id: str) -> str:
    return f"shipment:{shipment_id}"


def _shipped_line_key(shipment_id: str, line_id: str) -> str:
    # Length-prefixed: ids may contain any separator.
    return f"shipped-line:{len(shipment_id)}:{shipment_id}:{line_id}"


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
            if (
                known is not None
                and known.eta_known
                and (known.eta, known.basis) == (payload.eta, payload.basis)
            ):
                return []
            return [
                LineEtaObserved(
                    order_id=payload.order_id,
                    line_id=payload.line_id,
                    sku=payload.sku,
                    eta=payload.eta,
                    basis=payload.basis,
                )
            ]
        case BackorderFulfilled():
            known = lines.get(payload.line_id)
            # Inventory's events of one SKU arrive in order, so what still waited in its books is
            # short - filled - dropped; a fill seen before (re-sent) left no more than that waiting.
            if (
                known is not None
                and known.disposition is not None
                and known.short_quantity - known.filled - known.dropped <= payload.remaining_backordered
            ):
                return []
            return [
                LineFillObserved(
                    order_id=payload.order_id,
                    line_id=payload.line_id,
                    sku=payload.sku,
                    quantity=payload.quantity,
                    remaining_backordered=payload.remaining_backordered,
                )
            ]
        case StockReleased():
            return [
                LineReleaseObserved(
                    order_id=payload.order_id,
                    line_id=payload.line_id,
                    sku=payload.sku,
                    released_reserved=payload.released_reserved,
                    dropped_backordered=payload.dropped_backordered,
                    reason=payload.reason,
                    source_event_id=str(incoming.event_id),
                    substitution_id=payload.substitution_id,
                )
            ]
        case OrderCancelled():
            return [
                CancellationObserved(
                    order_id=payload.order_id,
                    lines=payload.lines,
                    reason=payload.reason,
                    only_waiting=payload.only_waiting,
                    source_event_id=str(incoming.event_id),
                )
            ]
        case RefundRequested():
            return [
                RefundObserved(
                    order_id=payload.order_id,
                    line_id=payload.line_id,
                    sku=payload.sku,
                    notification_id=_refunded_id(state.order_id, payload.line_id, incoming),
                    quantity=payload.quantity,
                    amount=payload.amount,
                    currency=payload.currency,
                    reason=payload.reason,
                    source_event_id=str(incoming.event_id),
                )
            ]
        case ShipmentDispatched():
            return [
                ShipmentObserved(
                    order_id=payload.order_id,
                    shipment_id=payload.shipment_id,
                    lines=[
                        LineQuantity(line_id=line.line_id, sku=line.sku, quantity=line.quantity)
                        for line in payload.lines
                    ],
                    carrier=payload.carrier,
                    tracking_number=payload.tracking_number,
                    tracking_url=payload.tracking_url,
                    shipped_at=payload.shipped_at,
                )
            ]
        case StockShipped():
            return [
                ShipmentLineConfirmed(
                    order_id=payload.order_id,
                    line_id=payload.line_id,
                    sku=payload.sku,
                    shipment_id=payload.shipment_id,
                    quantity=payload.quantity,
                )
            ]
    return []


# --- per order: the story rules -----------------------------------------------------------------------------


def _due(
    state: OrderFacts,
    catalogue: SubstituteCatalogue = NO_SUBSTITUTES,
    overdue: frozenset[str] | set[str] = frozenset(),
) -> list[Notification]:
    """Every message the facts call for now (`_requests` drops those requested before), line by line in
    story order, then the shipments inventory confirmed. `overdue`: lines whose backordered message goes
    out without an ETA."""
    if state.contact is None:
        return []  # inventory overtook OrderPlaced: the messages go out when it arrives
    due: list[Notification] = []
    for line in state.lines.values():
        due += _due_for_line(state, line, catalogue, line.line_id in overdue)
    for shipment in state.shipments_pending.values():
        lines = shipment.confirmed_lines
        if shipment.dispatched is None or lines is None:
            continue  # no tracking yet, or inventory has not (or never will have) shipped every line
        dispatched = shipment.dispatched
        content = ShippedContent(
            shipment_id=shipment.shipment_id,
            lines=lines,
            carrier=dispatched.carrier,
            tracking_number=dispatched.tracking_number,
            tracking_url=dispatched.tracking_url,
            shipped_at=dispatched.shipped_at,
        )
        shipped_id = notification_id(order_subject(state.order_id), "shipped", shipment.shipment_id)
        due.append(_notification(state, None, shipped_id, content))
    return due


def _due_for_line(
    state: OrderFacts, line: LineFacts, catalogue: SubstituteCatalogue, overdue: bool
) -> list[Notification]:
    due: list[Notification] = []
    if line.disposition == "rejected":
        due.append(_rejected(state, line))
    if _backordered_due(state, line) and (line.eta_known or overdue):
        due.append(_backordered(state, line, catalogue))
    elif (
        line.backorder_announced
        and line.waiting > 0
        and not line.waiting_news_held
        and _promise(line.eta, line.basis) != _promise(line.announced_eta, line.announced_basis)
    ):
        content = EtaChangedContent(
            sku=line.sku,
            waiting=line.waiting,
            previous_eta=line.announced_eta,
            eta=line.eta,
            basis=line.basis,
        )
        change = f"{line.eta_announcements + 1}:{_promise(line.eta, line.basis)}"
        due.append(_line_notification(state, line, change, content))
    fill = _fill_to_tell(line)
    if fill:
        content = FulfilledContent(
            sku=line.sku,
            filled=fill,
            still_waiting=line.waiting,
            order_ready=all(other.waiting == 0 for other in state.lines.values()),
        )
        due.append(_line_notification(state, line, f"filled:{line.filled}", content))
    if line.cancelled > line.told_cancelled:
        content = CancelledContent(
            reason=line.cancel_reason or "customer_request",
            lines=[
                LineQuantity(
                    line_id=line.line_id, sku=line.sku, quantity=line.cancelled - line.told_cancelled
                )
            ],
        )
        due.append(_line_notification(state, line, f"{line.cancelled}", content))
    refunded = line.told_refunded
    for refund in line.refunds_pending:
        if refunded + refund.quantity > line.cancelled:
            break  # its cancellation has not been told yet: refunds follow what was cancelled
        refunded += refund.quantity
        content = RefundedContent(
            sku=refund.sku,
            quantity=refund.quantity,
            amount=refund.amount,
            currency=refund.currency,
            reason=refund.reason,
        )
        due.append(_notification(state, line.line_id, refund.notification_id, content))
    return due


def _backordered_due(state: OrderFacts, line: LineFacts) -> bool:
    """The line's backordered message is owed (once the first ETA answer came, or the grace ran out)."""
    return (
        state.contact is not None
        and line.disposition == "backordered"
        and not line.backorder_announced
        and line.waiting > 0
        and not line.waiting_news_held
    )


def _fill_to_tell(line: LineFacts) -> int:
    """Units that arrived since the customer last heard of the line and are still reserved for them: a
    fill before the backorder was announced, or whose units shipped or were released, is not news."""
    if not line.backorder_announced or line.fill_news_held:
        return 0
    return max(min(line.filled - line.told_filled, line.unshipped), 0)


def _promise(eta: date | None, basis: EtaBasis | None) -> str:
    """What a customer is promised: a date, no date yet, or no date because no supplier is known."""
    if eta is not None:
        return eta.isoformat()
    return "no_supplier" if basis == "no_supplier" else "none"


def _rejected(state: OrderFacts, line: LineFacts) -> Notification:
    content = RejectedContent(
        sku=line.sku,
        ordered=line.ordered,
        available=line.available,
        rejected=line.short_quantity,
        reason=line.rejection_reason,
        unknown_sku=(line.rejection_reason or "").startswith(UNKNOWN_SKU_PREFIX),
    )
    return _line_notification(state, line, "", content)


def _backordered(state: OrderFacts, line: LineFacts, catalogue: SubstituteCatalogue) -> Notification:
    contact = state.contact
    assert contact is not None  # callers only announce once the contact is known
    cancel_by = (
        (contact.placed_at + timedelta(days=contact.max_wait_days)).date() if contact.max_wait_days else None
    )
    substitutes = catalogue.offers(state.order_id, line.line_id, line.sku, line.waiting)
    content = BackorderedContent(
        sku=line.sku,
        ordered=line.ordered,
        available=line.available,
        backordered=line.waiting,
        eta=line.eta,
        cancel_by=cancel_by,
        shipping_preference=contact.shipping_preference,
        options=[*_backorder_options(state, line), *(["switch_to_substitute"] if substitutes else [])],
        basis=line.basis if line.eta_known else None,
        substitutes=substitutes,
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
            after = replace(state, lines={**state.lines, event.line_id: _line_after(line, event)})
            if isinstance(event, LineReleaseObserved | RefundObserved):
                return replace(after, observed=after.observed | {_event_key(event.source_event_id)})
            if isinstance(event, ShipmentLineConfirmed):
                return _shipment_after(after, event)
            return after
        case CancellationObserved():
            lines = dict(state.lines)
            for cancelled in event.lines:
                line = lines.get(cancelled.line_id) or LineFacts(line_id=cancelled.line_id, sku=cancelled.sku)
                lines[cancelled.line_id] = replace(
                    line,
                    cancel_requested=line.cancel_requested + cancelled.quantity,
                    full_cancel_requested=line.full_cancel_requested
                    + (0 if event.only_waiting else cancelled.quantity),
                    cancel_reason=event.reason or line.cancel_reason,
                )
            observed = state.observed | (
                {_event_key(event.source_event_id)} if event.source_event_id else set()
            )
            return replace(state, lines=lines, observed=observed)
        case ShipmentObserved():
            # Only metadata: the lines' shipped units come from inventory (ShipmentLineConfirmed).
            return _shipment_after(state, event)
        case NotificationRequested(notification=notification):
            return _told(
                replace(state, requested=state.requested | {notification.notification_id}), notification
            )
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
            )
        case LineEtaObserved():
            return replace(line, eta=event.eta, eta_known=True, basis=event.basis)
        case LineFillObserved():
            return replace(line, filled=line.filled + event.quantity)
        case LineReleaseObserved():
            units = event.released_reserved + event.dropped_backordered
            return replace(
                line,
                released=line.released + event.released_reserved,
                dropped=line.dropped + event.dropped_backordered,
                cancel_reason=event.reason or line.cancel_reason,
                switched=line.switched + (units if event.substitution_id else 0),
            )
        case RefundObserved():
            return replace(line, refunds_pending=(*line.refunds_pending, event))
        case ShipmentLineConfirmed():
            return replace(line, shipped=line.shipped + event.quantity)
    raise TypeError(f"{type(event).__name__} is not an event of an order line")


def _shipment_after(state: OrderFacts, event: ShipmentObserved | ShipmentLineConfirmed) -> OrderFacts:
    """The pending shipment with the warehouse's announcement or one of inventory's confirmations."""
    pending = state.shipments_pending.get(event.shipment_id) or PendingShipment(event.shipment_id)
    if isinstance(event, ShipmentObserved):
        key = _shipment_key(event.shipment_id)
        pending = replace(pending, dispatched=event)
    else:
        key = _shipped_line_key(event.shipment_id, event.line_id)
        confirmed = LineQuantity(line_id=event.line_id, sku=event.sku, quantity=event.quantity)
        pending = replace(pending, confirmed={**pending.confirmed, event.line_id: confirmed})
    return replace(
        state,
        observed=state.observed | {key},
        shipments_pending={**state.shipments_pending, event.shipment_id: pending},
    )


def _told(state: OrderFacts, notification: Notification) -> OrderFacts:
    """What the customer now knows, after `notification`."""
    content = notification.content
    if isinstance(content, ShippedContent):
        pending = {k: s for k, s in state.shipments_pending.items() if k != content.shipment_id}
        return replace(state, shipments_pending=pending)
    line = state.lines.get(notification.line_id or "")
    if line is None:
        return state  # e.g. an order-wide cancellation message of a stream written before issue 8
    match content:
        case BackorderedContent():
            # Fills before the announcement are in its figures: not news later.
            told = replace(
                line,
                backorder_announced=True,
                announced_eta=content.eta,
                announced_basis=content.basis,
                told_filled=line.filled,
            )
        case EtaChangedContent():
            told = replace(
                line,
                announced_eta=content.eta,
                announced_basis=content.basis,
                eta_announcements=line.eta_announcements + 1,
            )
        case FulfilledContent():
            told = replace(line, told_filled=line.filled)
        case CancelledContent():
            told = replace(line, told_cancelled=line.told_cancelled + sum(c.quantity for c in content.lines))
        case RefundedContent():
            pending = tuple(
                r for r in line.refunds_pending if r.notification_id != notification.notification_id
            )
            told = replace(line, refunds_pending=pending, told_refunded=line.told_refunded + content.quantity)
        case _:
            return state
    return replace(state, lines={**state.lines, line.line_id: told})


def rebuild_order(order_id: str, events: Iterable[EventPayload]) -> OrderFacts:
    return reduce(evolve_order, events, initial_order_facts(order_id))


# The consumed events a customer may hear about, per order and per SKU (back in stock); no other matters.
ORDER_EVENTS: tuple[type[EventPayload], ...] = (
    OrderPlaced,
    OrderCancelled,
    RefundRequested,
    StockShort,
    BackorderFulfilled,
    StockReleased,
    BackorderEtaUpdated,
    ShipmentDispatched,
    StockShipped,
)
SKU_EVENTS: tuple[type[EventPayload], ...] = (SkuPolicyChanged, GoodsReceived, StockAdjusted)
# What the substitutes offered rest on (projections.record_stock), beside StockShort of ORDER_EVENTS.
STOCK_EVENTS: tuple[type[EventPayload], ...] = (SkuSubstitutesChanged, StockLevelChanged, StockReserved)
CONSUMED_EVENTS = (*ORDER_EVENTS, *SKU_EVENTS, *STOCK_EVENTS)


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
    recipient: str  # an email address, or the shop's webhook URL: what the channel sends to, never recorded
    ref: str  # what the events say instead (NotificationSent.recipient_ref)


def destination_for(notification: Notification, shop_webhook_url: str | None) -> Destination:
    """A shop with a webhook messages its customers itself; otherwise the customer gets an email."""
    channel: Channel = "webhook" if shop_webhook_url else "email"
    return Destination(
        channel=channel,
        recipient=shop_webhook_url or notification.email,
        ref=recipient_ref(channel, notification.customer_id, notification.shop_id),
    )


def scrub_error(error: str, notification: Notification, destination: Destination) -> str:
    """A channel's answer as the events keep it (and publish it, in NotificationFailed): without the
    webhook URL, any e-mail address (a relay's refusal names the mailbox) or the customer's name. What
    refused stays clear from the channel and the reference."""
    text = error
    if destination.channel == "webhook":
        for url in {destination.recipient, destination.recipient.rstrip("/")}:
            text = text.replace(url, "<webhook URL>")
    text = redact_text(text)  # addresses first: a name may be an address's local part
    if notification.customer_name and len(notification.customer_name.strip()) > 1:
        name = re.escape(notification.customer_name.strip())
        text = re.sub(rf"(?<!\w){name}(?!\w)", REDACTED, text, flags=re.IGNORECASE)
    return text


def _error_text(error: str, notification: Notification, destination: Destination) -> str:
    return (scrub_error(error, notification, destination).strip() or "unknown error")[:1000]


def delivered(notification: Notification, destination: Destination, attempts: int) -> NotificationSent:
    return NotificationSent(
        notification_id=notification.notification_id,
        customer_id=notification.customer_id,
        order_id=notification.order_id,
        line_id=notification.line_id,
        kind=notification.kind,
        channel=destination.channel,
        recipient_ref=destination.ref,
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
    error = _error_text(error, notification, destination)
    if permanent or attempts >= policy.max_attempts:
        return NotificationFailed(
            notification_id=notification.notification_id,
            customer_id=notification.customer_id,
            order_id=notification.order_id,
            line_id=notification.line_id,
            kind=notification.kind,
            channel=destination.channel,
            recipient_ref=destination.ref,
            attempts=attempts,
            error=error,
        )
    return DeliveryRetryScheduled(
        notification_id=notification.notification_id,
        customer_id=notification.customer_id,
        channel=destination.channel,
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
        case NotificationSent() | NotificationSentV1():
            return replace(state, attempts=event.attempts, outcome="sent")
        case NotificationFailed() | NotificationFailedV1():
            return replace(state, attempts=event.attempts, outcome="failed")
    raise TypeError(f"{type(event).__name__} is not an event of a notifier delivery stream")
