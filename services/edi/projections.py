"""Read models of the EDI adapter (migrations/001_edi.sql), written from its own events as they are
appended, and re-derived from the log by `rebuild` through the same `record`."""

from collections.abc import Collection
from typing import Any, Literal

import asyncpg

from backbone.contracts import Envelope, EventPayload
from backbone.eventstore import EventStore
from services.edi.events import InterchangeAccepted, InterchangeRejected, PurchaseOrderTransmitted
from services.edi.outbound import SentPurchaseOrder

CONTROL_NUMBER_LIMIT = 999_999_999  # ISA13 has nine digits; after it the sequence starts again at 1

_UPSERT_PO = """
INSERT INTO edi_purchase_orders (po_id, supplier_id, sku, revision, purpose, quantity, unit_cost, currency,
                                 expected_arrival, standard, control_number, file_name, reference,
                                 transmitted_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (po_id) DO UPDATE SET
    reference = excluded.reference, supplier_id = excluded.supplier_id, sku = excluded.sku,
    revision = excluded.revision,
    purpose = excluded.purpose, quantity = excluded.quantity, unit_cost = excluded.unit_cost,
    currency = excluded.currency, expected_arrival = excluded.expected_arrival, standard = excluded.standard,
    control_number = excluded.control_number, file_name = excluded.file_name,
    transmitted_at = excluded.transmitted_at
"""

_INSERT_ACCEPTED = """
INSERT INTO edi_interchanges (standard, sender_id, control_number, supplier_id, source, digest, messages,
                              events, acknowledgement, acknowledgement_control_number, received_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
"""

_INSERT_REJECTED = """
INSERT INTO edi_rejections (standard, sender_id, control_number, supplier_id, source, digest, reason, segment,
                            segment_position, element, acknowledgement, received_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
"""

# The control number after `last`, per supplier; a missing row starts at 1.
_NEXT_CONTROL_NUMBER = f"""
INSERT INTO edi_control_numbers (supplier_id, last) VALUES ($1, 1)
ON CONFLICT (supplier_id) DO UPDATE
SET last = CASE WHEN edi_control_numbers.last >= {CONTROL_NUMBER_LIMIT} THEN 1
                ELSE edi_control_numbers.last + 1 END
RETURNING last
"""

# Rebuild: the sequence continues after the highest number used (numbers are digits, as we render them).
_RAISE_CONTROL_NUMBER = """
INSERT INTO edi_control_numbers (supplier_id, last) VALUES ($1, $2)
ON CONFLICT (supplier_id) DO UPDATE SET last = greatest(edi_control_numbers.last, excluded.last)
"""


async def next_control_number(conn: asyncpg.Connection, supplier_id: str) -> int:
    """The next interchange control number towards the supplier. In the caller's transaction, so a
    rolled-back send gives its number back and its retry renders the very same document."""
    return int(await conn.fetchval(_NEXT_CONTROL_NUMBER, supplier_id))


# Per event type: its statement and the fields that fill its parameters in order; the event's time
# (occurred_at) is the last parameter.
_RECORDS: dict[type[EventPayload], tuple[str, tuple[str, ...]]] = {
    PurchaseOrderTransmitted: (
        _UPSERT_PO,
        ("po_id", "supplier_id", "sku", "revision", "purpose", "quantity", "unit_cost", "currency",
         "expected_arrival", "standard", "control_number", "file_name", "reference"),
    ),
    InterchangeAccepted: (
        _INSERT_ACCEPTED,
        ("standard", "sender_id", "control_number", "supplier_id", "source", "digest", "messages", "events",
         "acknowledgement", "acknowledgement_control_number"),
    ),
    InterchangeRejected: (
        _INSERT_REJECTED,
        ("standard", "sender_id", "control_number", "supplier_id", "source", "digest", "reason", "segment",
         "position", "element", "acknowledgement"),
    ),
}  # fmt: skip


async def record(conn: asyncpg.Connection, envelope: Envelope[Any]) -> None:
    """Write what one of the adapter's own events says to the read models (contract events: nothing)."""
    event: EventPayload = envelope.payload
    found = _RECORDS.get(type(event))
    if found is not None:
        statement, fields = found
        await conn.execute(statement, *(getattr(event, name) for name in fields), envelope.occurred_at)


async def sent_purchase_orders(
    conn: asyncpg.Connection, keys: Collection[str], *, by: Literal["po_id", "reference"]
) -> dict[str, SentPurchaseOrder]:
    """The POs sent, by our po_id or by the reference the supplier knows them by."""
    if not keys:
        return {}
    rows = await conn.fetch(
        "SELECT po_id, reference, supplier_id, sku, revision, purpose, quantity, unit_cost, currency,"
        f" expected_arrival FROM edi_purchase_orders WHERE {by} = ANY($1::text[])",
        list(keys),
    )
    return {r[by]: SentPurchaseOrder(**dict(r)) for r in rows}


async def accepted_interchange(
    conn: asyncpg.Connection, standard: str, sender_id: str, control_number: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM edi_interchanges WHERE standard = $1 AND sender_id = $2 AND control_number = $3",
        standard,
        sender_id,
        control_number,
    )


async def rebuild(conn: asyncpg.Connection, store: EventStore, page_size: int = 1000) -> int:
    """Truncate the read models and re-derive them from the whole log; returns the events applied. The
    control number sequences are only raised, never lowered: a number sent stays used."""
    await conn.execute("TRUNCATE edi_purchase_orders, edi_interchanges, edi_rejections")
    highest: dict[str, int] = {}
    applied, position = 0, 0
    while page := await store.read_all(conn, after_position=position, limit=page_size):
        position = page[-1].global_position
        for stored in page:
            event = stored.envelope.payload
            if not isinstance(event, PurchaseOrderTransmitted | InterchangeAccepted | InterchangeRejected):
                continue
            await record(conn, stored.envelope)
            applied += 1
            supplier, used = _control_number_used(event)
            if supplier is not None and used is not None:
                highest[supplier] = max(highest.get(supplier, 0), used)
    for supplier, used in highest.items():
        await conn.execute(_RAISE_CONTROL_NUMBER, supplier, used)
    return applied


def _control_number_used(
    event: PurchaseOrderTransmitted | InterchangeAccepted | InterchangeRejected,
) -> tuple[str | None, int | None]:
    number = (
        event.control_number
        if isinstance(event, PurchaseOrderTransmitted)
        else event.acknowledgement_control_number
    )
    return event.supplier_id, int(number) if number and number.isdigit() else None
