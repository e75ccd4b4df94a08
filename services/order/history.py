"""One-line, human-readable summaries of the events in an order's stream (for GET /orders/{id})."""

from backbone.contracts import EventPayload
from backbone.contracts.events import (
    FulfilmentRequested,
    OrderCancelled,
    OrderLineSubstituted,
    OrderPlaced,
    RefundRequested,
)
from services.order.events import (
    ExternalCancellationRecorded,
    LineBackordered,
    LineEtaChanged,
    LineFilled,
    LineRejected,
    LineReleased,
    LineReserved,
    LineShipped,
    OrderRecorded,
    ShipmentAnnounced,
)


def _units(quantity: int) -> str:
    return f"{quantity} unit{'' if quantity == 1 else 's'}"


def _placement(order: OrderPlaced, how: str) -> str:
    units = sum(line.quantity for line in order.lines)
    lines = len(order.lines)
    return f"order {how}: {lines} line{'' if lines == 1 else 's'}, {_units(units)}"


def _cancellation(cancellation: OrderCancelled, how: str) -> str:
    parts = ", ".join(f"line {c.line_id} {_units(c.quantity)}" for c in cancellation.lines)
    which = "waiting units " if cancellation.only_waiting else ""
    return f"cancellation of {which}requested {how}({cancellation.reason}): {parts}"


def summarize(event: EventPayload) -> str:
    match event:
        case OrderPlaced():
            return _placement(event, "placed through this service")
        case OrderRecorded(order=order):
            return _placement(order, "received from checkout")
        case OrderCancelled():
            return _cancellation(event, "")
        case ExternalCancellationRecorded(cancellation=cancellation):
            return _cancellation(cancellation, "by checkout ")
        case OrderLineSubstituted(replaced=replaced, line=line):
            return (
                f"switched {_units(replaced.quantity)} of {replaced.sku} to {line.sku}: line "
                f"{replaced.line_id} gives them up, new line {line.line_id} at {line.unit_price} each "
                f"(substitution {event.substitution_id})"
            )
        case RefundRequested():
            return (
                f"refund requested for line {event.line_id}: {_units(event.quantity)}, "
                f"{event.amount} {event.currency} ({event.reason})"
            )
        case LineReserved():
            return f"line {event.line_id}: {_units(event.quantity)} reserved from stock"
        case LineBackordered():
            return (
                f"line {event.line_id}: {_units(event.reserved)} reserved, "
                f"{_units(event.backordered)} backordered"
            )
        case LineRejected():
            reason = f" ({event.reason})" if event.reason else ""
            return (
                f"line {event.line_id}: {_units(event.reserved)} reserved, "
                f"{_units(event.rejected)} rejected{reason}"
            )
        case LineFilled():
            return (
                f"line {event.line_id}: {_units(event.quantity)} filled from {event.source}, "
                f"{_units(event.remaining_backordered)} still backordered"
            )
        case LineReleased():
            reason = f" ({event.reason})" if event.reason else ""
            if event.substitution_id:
                reason = f" (switched: substitution {event.substitution_id}, not refunded)"
            return (
                f"line {event.line_id}: inventory released {_units(event.released_reserved)} "
                f"and dropped {_units(event.dropped_backordered)} from the queue{reason}"
            )
        case ShipmentAnnounced():
            parts = ", ".join(f"line {s.line_id} {_units(s.quantity)}" for s in event.lines)
            via = " ".join(part for part in (event.carrier, event.tracking_number) if part)
            via = f" ({via})" if via else ""
            return f"shipment {event.shipment_id} announced by the warehouse{via}: {parts}"
        case LineShipped():
            return f"line {event.line_id}: inventory shipped {_units(event.quantity)} in {event.shipment_id}"
        case FulfilmentRequested():
            parts = ", ".join(f"line {p.line_id} {p.quantity} (shipped {p.shipped})" for p in event.lines)
            complete = ", complete" if event.complete else ""
            return f"pick list revision {event.revision}{complete}: {parts}"
        case LineEtaChanged():
            eta = event.eta.isoformat() if event.eta else "unknown (no purchase order yet)"
            before = f" (was {event.previous_eta.isoformat()})" if event.previous_eta else ""
            po = f", {event.po_id}" if event.po_id else ""
            return f"line {event.line_id}: ETA {eta}{before}{po}: {event.reason}"
    return event.event_type
