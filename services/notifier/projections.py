"""Read models of the notifier (tables in migrations/001_notifier.sql and after), derived from its event log.

- `notification_delivery`, the delivery queue, follows the events themselves: a NotificationRequested
  inserts its row (ON CONFLICT DO NOTHING, so a request decided again never queues twice), and each
  delivery outcome (DeliveryRetryScheduled, NotificationSent, NotificationFailed, and their versions
  from before contract 3.0) updates it. Its times are the events' `occurred_at`, so a rebuild writes
  the very same values.
- `backorder_announcement`, `sku_watch` and `back_in_stock_subscription` are written whole from the new
  state of every order or SKU stream a transaction appended to: the state is folded anyway, and the
  read model cannot drift from it.
- `sku_substitutes` and `sku_availability` (migrations/006) come from the consumed inventory events
  themselves (`record_stock`, one row per SKU per batch), not from the log: `rebuild` keeps them. They
  feed the `SubstituteCatalogue` a backordered message is decided with (`catalogue`).

Everything runs in the caller's transaction, next to the append. `rebuild(conn, store)` truncates the
tables and re-derives them from the whole log; it must give the same rows.
"""

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import jinja2
import structlog

from backbone import tracing
from backbone.contracts import Envelope
from backbone.contracts.events import (
    NotificationFailed,
    NotificationFailedV1,
    NotificationSent,
    NotificationSentV1,
    SkuSubstitutesChanged,
    StockLevelChanged,
    StockReserved,
    StockShort,
)
from backbone.db import columns
from backbone.decider import Decided
from backbone.eventstore import EventStore
from services.notifier.domain import (
    OrderFacts,
    SkuWatch,
    SubstituteCatalogue,
    backorder_announcement_due_at,
    evolve_order,
    evolve_sku,
    initial_order_facts,
    initial_sku_watch,
    order_stream_id,
    sku_stream_id,
    skus_awaiting_announcement,
)
from services.notifier.events import DeliveryRetryScheduled, Notification, NotificationRequested
from services.notifier.messages import email_for

log = structlog.get_logger(__name__)

ORDER_STREAM_PREFIX = order_stream_id("")
SKU_STREAM_PREFIX = sku_stream_id("")


def awaiting_eta_since(state: OrderFacts) -> datetime | None:
    """When the order's earliest backordered line still lacking an ETA fell short (None: no such line).
    The grace period is the announcement pass's setting, so the table stores the start, not the deadline."""
    return backorder_announcement_due_at(state, timedelta(0))


def subject_of(notification: Notification) -> str:
    """The email subject, for listing. A template error is not the consumed event's fault: it must not
    dead-letter it; the delivery attempt meets the same error and records it."""
    try:
        return email_for(notification).subject
    except jinja2.TemplateError as e:
        log.error("subject could not be rendered", notification_id=notification.notification_id, error=str(e))
        return f"({notification.kind}: the subject could not be rendered)"


# --- the delivery queue ------------------------------------------------------------------------------------

_INSERT_DELIVERY = """
INSERT INTO notification_delivery (notification_id, kind, customer_id, shop_id, email, order_id, line_id,
                                   sku, subject, notification, correlation_id, status, attempts,
                                   next_attempt_at, requested_at, updated_at, traceparent)
SELECT id, kind, customer_id, shop_id, email, order_id, line_id, sku, subject, notification,
       correlation_id, 'pending', 0, at, at, at, traceparent
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::text[], $9::text[], $10::jsonb[], $11::text[], $12::timestamptz[], $13::text[])
     AS r(id, kind, customer_id, shop_id, email, order_id, line_id, sku, subject, notification,
          correlation_id, at, traceparent)
ON CONFLICT (notification_id) DO NOTHING
"""

# An outcome also ends the lease of the worker that reported it. The destination is kept by reference
# (contract 3.0, as NotificationSent.recipient_ref): derived from the row, so that retries and outcomes
# recorded before 3.0, which named the address itself, give the same value.
_RECORD_OUTCOME = """
UPDATE notification_delivery
SET status = $2, attempts = $3, next_attempt_at = $4, last_error = coalesce($5, last_error),
    channel = $6,
    recipient_ref = CASE $6 WHEN 'webhook' THEN 'webhook:' || shop_id ELSE 'email:' || customer_id END,
    updated_at = $7, claimed_until = NULL, claim_token = NULL
WHERE notification_id = $1
"""


def _delivery_row(envelope: Envelope[Any]) -> tuple[Any, ...] | None:
    payload = envelope.payload
    if not isinstance(payload, NotificationRequested):
        return None
    n = payload.notification
    return (
        n.notification_id,
        n.kind,
        n.customer_id,
        n.shop_id,
        n.email,
        n.order_id,
        n.line_id,
        getattr(n.content, "sku", None),
        subject_of(n),
        n.model_dump_json(),
        envelope.correlation_id,
        envelope.occurred_at,
        tracing.traceparent_for(envelope.correlation_id),  # the flow being applied, as the event store keeps
    )


def _outcome_row(envelope: Envelope[Any]) -> tuple[Any, ...] | None:
    e, at = envelope.payload, envelope.occurred_at
    match e:
        case DeliveryRetryScheduled():
            return (e.notification_id, "pending", e.attempts, e.retry_at, e.error, e.channel, at)
        case NotificationSent() | NotificationSentV1():
            return (e.notification_id, "sent", e.attempts, None, None, e.channel, at)
        case NotificationFailed() | NotificationFailedV1():
            return (e.notification_id, "failed", e.attempts, None, e.error, e.channel, at)
    return None


async def apply_delivery_events(conn: asyncpg.Connection, envelopes: Sequence[Envelope[Any]]) -> None:
    """Queue the requested notifications, then record the outcomes, in log order. Requests first is the
    same as strict log order: an outcome is only ever recorded after its request committed."""
    requested = [row for e in envelopes if (row := _delivery_row(e)) is not None]
    if requested:
        await conn.execute(_INSERT_DELIVERY, *columns(requested, 13))
    outcomes = [row for e in envelopes if (row := _outcome_row(e)) is not None]
    if outcomes:
        await conn.executemany(_RECORD_OUTCOME, outcomes)


# --- per order and per SKU: written from the state ----------------------------------------------------------

_UPSERT_SKU_WATCH = """
INSERT INTO sku_watch (sku, version, backorder_policy)
SELECT * FROM unnest($1::text[], $2::int[], $3::text[])
ON CONFLICT (sku) DO UPDATE SET version = excluded.version, backorder_policy = excluded.backorder_policy
WHERE sku_watch.version < excluded.version
"""

_INSERT_SUBSCRIPTIONS = """
INSERT INTO back_in_stock_subscription (sku, customer_id, email, customer_name, shop_id, subscribed_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
"""

_INSERT_ANNOUNCEMENTS = """
INSERT INTO backorder_announcement (order_id, awaiting_eta_since, skus)
SELECT order_id, since, ARRAY(SELECT jsonb_array_elements_text(skus))
FROM unnest($1::text[], $2::timestamptz[], $3::jsonb[]) AS r(order_id, since, skus)
"""


async def write_orders(conn: asyncpg.Connection, orders: Sequence[OrderFacts]) -> None:
    if not orders:
        return
    await conn.execute(
        "DELETE FROM backorder_announcement WHERE order_id = ANY($1::text[])", [o.order_id for o in orders]
    )
    due = [
        (o.order_id, since, json.dumps(skus_awaiting_announcement(o)))
        for o in orders
        if (since := awaiting_eta_since(o)) is not None
    ]
    if due:
        await conn.execute(_INSERT_ANNOUNCEMENTS, *columns(due, 3))


async def write_skus(conn: asyncpg.Connection, skus: Sequence[tuple[SkuWatch, int]]) -> None:
    """Each SKU's state at its stream version."""
    if not skus:
        return
    await conn.execute(
        _UPSERT_SKU_WATCH, *columns(((s.sku, version, s.backorder_policy) for s, version in skus), 3)
    )
    await conn.execute(
        "DELETE FROM back_in_stock_subscription WHERE sku = ANY($1::text[])", [s.sku for s, _ in skus]
    )
    subscriptions = [
        (s.sku, s.customer_id, s.email, s.customer_name, s.shop_id, s.subscribed_at)
        for state, _ in skus
        for s in state.subscribers.values()
    ]
    if subscriptions:
        await conn.execute(_INSERT_SUBSCRIPTIONS, *columns(subscriptions, 6))


async def apply(conn: asyncpg.Connection, decided: Sequence[Decided[Any]]) -> None:
    """Update the read models for the streams a transaction just appended to (`decide_and_append`)."""
    await write_orders(conn, [d.state for d in decided if isinstance(d.state, OrderFacts)])
    await write_skus(conn, [(d.state, d.version) for d in decided if isinstance(d.state, SkuWatch)])
    await apply_delivery_events(conn, [e for d in decided for e in d.events])


# --- substitutes in stock, from the inventory topic ---------------------------------------------------

_UPSERT_SUBSTITUTES = """
INSERT INTO sku_substitutes (sku, substitutes)
SELECT sku, ARRAY(SELECT jsonb_array_elements_text(substitutes))
FROM unnest($1::text[], $2::jsonb[]) AS r(sku, substitutes)
ON CONFLICT (sku) DO UPDATE SET substitutes = excluded.substitutes
"""

# `absolute`: the units a StockLevelChanged (or StockShort: none) left available, null if the batch had
# neither; `taken`: the units reserved after it (or after the stored figure).
_UPDATE_AVAILABILITY = """
WITH r AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS r(sku, absolute, taken)),
updated AS (
    UPDATE sku_availability a SET available = greatest(0, coalesce(r.absolute, a.available) - r.taken)
    FROM r WHERE a.sku = r.sku
    RETURNING a.sku
)
INSERT INTO sku_availability (sku, available)
SELECT sku, greatest(0, coalesce(absolute, 0) - taken) FROM r WHERE sku NOT IN (SELECT sku FROM updated)
ON CONFLICT (sku) DO NOTHING
"""

_CATALOGUE = """
SELECT s.sku, listed.substitute, coalesce(a.available, 0) AS available
FROM sku_substitutes s
CROSS JOIN LATERAL unnest(s.substitutes) WITH ORDINALITY AS listed(substitute, preference)
LEFT JOIN sku_availability a ON a.sku = listed.substitute
WHERE s.sku = ANY($1::text[])
ORDER BY s.sku, listed.preference
"""


async def record_stock(conn: asyncpg.Connection, envelopes: Sequence[Envelope[Any]]) -> None:
    """The SKUs' substitutes and available units after `envelopes` (a SKU's events arrive in order)."""
    substitutes: dict[str, list[str]] = {}
    levels: dict[str, tuple[int | None, int]] = {}  # sku -> (absolute, taken since)
    for envelope in envelopes:
        match envelope.payload:
            case SkuSubstitutesChanged(sku=sku, substitutes=listed):
                substitutes[sku] = listed
            case StockLevelChanged(sku=sku, available=available):
                levels[sku] = (available, 0)
            case StockShort(sku=sku):
                levels[sku] = (0, 0)  # a shortfall takes every unit that was available
            case StockReserved(sku=sku, quantity=quantity):
                absolute, taken = levels.get(sku, (None, 0))
                levels[sku] = (absolute, taken + quantity)
    if substitutes:
        rows = [(sku, json.dumps(listed)) for sku, listed in substitutes.items()]
        await conn.execute(_UPSERT_SUBSTITUTES, *columns(rows, 2))
    if levels:
        rows_levels = [(sku, absolute, taken) for sku, (absolute, taken) in levels.items()]
        await conn.execute(_UPDATE_AVAILABILITY, *columns(rows_levels, 3))


async def catalogue(conn: asyncpg.Connection, skus: Iterable[str], order_api_url: str) -> SubstituteCatalogue:
    """The substitutes of `skus` with their available units, for the backordered messages (one query)."""
    wanted = sorted(set(skus))
    if not wanted:
        return SubstituteCatalogue(order_api_url=order_api_url)
    listed: dict[str, list[tuple[str, int]]] = {}
    for row in await conn.fetch(_CATALOGUE, wanted):
        listed.setdefault(row["sku"], []).append((row["substitute"], row["available"]))
    return SubstituteCatalogue(order_api_url=order_api_url, substitutes=listed)


# --- rebuild ------------------------------------------------------------------------------------------------


async def rebuild(conn: asyncpg.Connection, store: EventStore, page_size: int = 1000) -> int:
    """Truncate the read models and re-derive them from the whole log; returns the events read.

    Run it in a transaction: TRUNCATE locks the tables first, so a live writer waits for the rebuild.
    The delivery leases are dropped with the rows: a send in flight meanwhile may be repeated, which
    the Message-ID and Idempotency-Key let the receivers recognise.
    """
    await conn.execute(
        "TRUNCATE notification_delivery, backorder_announcement, sku_watch, back_in_stock_subscription"
    )
    orders: dict[str, OrderFacts] = {}
    skus: dict[str, tuple[SkuWatch, int]] = {}
    position = read = 0
    while page := await store.read_all(conn, after_position=position, limit=page_size):
        position = page[-1].global_position
        read += len(page)
        for stored in page:
            stream, payload = stored.stream_id, stored.envelope.payload
            if stream.startswith(ORDER_STREAM_PREFIX):
                order_id = stream.removeprefix(ORDER_STREAM_PREFIX)
                orders[order_id] = evolve_order(
                    orders.get(order_id) or initial_order_facts(order_id), payload
                )
            elif stream.startswith(SKU_STREAM_PREFIX):
                sku = stream.removeprefix(SKU_STREAM_PREFIX)
                state = skus[sku][0] if sku in skus else initial_sku_watch(sku)
                skus[sku] = (evolve_sku(state, payload), stored.stream_version)
        await apply_delivery_events(conn, [stored.envelope for stored in page])
    await write_orders(conn, list(orders.values()))
    await write_skus(conn, list(skus.values()))
    return read
