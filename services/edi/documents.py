"""The supplier documents the EDI adapter understands, independent of the standard that carried them.

The X12 (x12.py) and EDIFACT (edifact.py) codecs parse an interchange into these values and render
outbound purchase orders and acknowledgements from them; inbound.py turns them into contract events.
Pure values, no I/O. Lines are as the supplier sent them (one document may cover several POs and
SKUs); quantities are whole units, dates are calendar days.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Literal, TypeAlias, TypedDict, Unpack

Standard: TypeAlias = Literal["x12", "edifact"]


# --- inbound: what a supplier tells us -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfirmedLine:
    """One PO line as the supplier confirmed it (X12 855 PO1/ACK, EDIFACT ORDRSP LIN/QTY/DTM)."""

    po_id: str
    sku: str
    confirmed_quantity: int  # 0: the line is rejected
    confirmed_date: date


@dataclass(frozen=True, slots=True)
class PoAcknowledgement:
    """X12 855 / EDIFACT ORDRSP: the supplier's answer to one purchase order."""

    document_id: str  # the supplier's number of the acknowledgement (BAK08 or the set's control number)
    lines: tuple[ConfirmedLine, ...]


@dataclass(frozen=True, slots=True)
class ShippedLine:
    """Units of one PO's SKU on their way (X12 856 order/item levels, EDIFACT DESADV CPS/LIN)."""

    po_id: str
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class ShipNotice:
    """X12 856 / EDIFACT DESADV: goods are on their way, expected on a day."""

    asn_id: str  # BSN02 / BGM 1004
    expected_date: date  # DTM 017 (estimated delivery) / DTM 2 or 17; the ship date if none is given
    lines: tuple[ShippedLine, ...]


@dataclass(frozen=True, slots=True)
class ReceivedLine:
    po_id: str | None  # None: goods that came without a purchase order
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class ReceivingAdvice:
    """X12 861 / EDIFACT RECADV: goods were received (counted at the warehouse)."""

    receipt_id: str  # BRA01 / BGM 1004
    received_at: datetime  # aware; UTC when the document gives no zone
    lines: tuple[ReceivedLine, ...]


Document: TypeAlias = PoAcknowledgement | ShipNotice | ReceivingAdvice


@dataclass(frozen=True, slots=True)
class Message:
    """One transaction set (X12 ST..SE) / message (EDIFACT UNH..UNT) and what it said."""

    control_number: str  # ST02 / UNH 0062
    kind: str  # "855", "856", "861" / "ORDRSP", "DESADV", "RECADV"
    document: Document
    group_control_number: str = ""  # X12 GS06 of its functional group; "" for EDIFACT without UNG


@dataclass(frozen=True, slots=True)
class Interchange:
    """A whole parsed interchange (X12 ISA..IEA / EDIFACT UNB..UNZ)."""

    standard: Standard
    sender_id: str  # ISA06 / UNB S002 0004, stripped
    receiver_id: str  # ISA08 / UNB S003 0010, stripped
    control_number: str  # ISA13 / UNB 0020: a re-sent interchange repeats it
    prepared_at: datetime  # ISA09+ISA10 / UNB S004, as UTC
    messages: tuple[Message, ...]
    # X12: the functional groups (GS01 functional id, GS06 control number, version GS08) the 997/999
    # answers; EDIFACT leaves it empty.
    groups: tuple[FunctionalGroup, ...] = ()


@dataclass(frozen=True, slots=True)
class FunctionalGroup:
    functional_id: str  # GS01, e.g. "PR" (855), "SH" (856), "DX"/"RC" (861)
    control_number: str  # GS06
    version: str  # GS08, e.g. "004010"
    set_control_numbers: tuple[tuple[str, str], ...]  # (ST01 kind, ST02) of each set in it


class Where(TypedDict, total=False):
    """Where in an interchange a fault is (EdiError's keywords; every one may be left out)."""

    segment: str
    position: int
    element: int
    header: Envelope | None
    message_control_number: str
    message_kind: str


class EdiError(Exception):
    """A malformed interchange: where (segment tag and its 1-based position in the interchange, the
    element's 1-based position when known) and why. Whatever envelope was read before the fault is
    kept so that the rejection can still be acknowledged to the sender."""

    def __init__(self, reason: str, **where: Unpack[Where]) -> None:
        self.reason = reason
        self.segment = where.get("segment", "")
        self.position = where.get("position", 0)
        self.element = where.get("element", 0)
        self.header = where.get("header")
        self.message_control_number = where.get("message_control_number", "")
        self.message_kind = where.get("message_kind", "")
        place = f"segment {self.segment or '?'} #{self.position}" + (
            f" element {self.element}" if self.element else ""
        )
        super().__init__(f"{place}: {reason}" if self.segment or self.position else reason)


@dataclass(frozen=True, slots=True)
class Envelope:
    """The interchange header as far as it could be read (for acknowledging a rejected interchange)."""

    standard: Standard
    sender_id: str = ""
    receiver_id: str = ""
    control_number: str = ""
    # X12 only: what the 997/999 must name.
    sender_qualifier: str = ""
    receiver_qualifier: str = ""
    groups: tuple[FunctionalGroup, ...] = ()
    version: str = ""  # X12 ISA12 / EDIFACT syntax version (UNB S001 0002)


# --- outbound: what we tell a supplier -------------------------------------------------------------

Purpose: TypeAlias = Literal["original", "replace", "cancel"]


@dataclass(frozen=True, slots=True)
class PurchaseOrderDocument:
    """A purchase order to send (X12 850 / EDIFACT ORDERS): one SKU per PO, as procurement issues them.
    `replace` carries a revision (BEG01 05 / BGM 1225 5), `cancel` withdraws it (BEG01 01 / BGM 1225 1)."""

    po_id: str
    revision: int
    purpose: Purpose
    supplier_id: str
    sku: str
    quantity: int
    unit_cost: Decimal | None
    currency: str | None
    requested_date: date | None  # the expected arrival procurement plans with
    issued_on: date


@dataclass(frozen=True, slots=True)
class Partner:
    """Identifiers of one trading relationship, as both sides put them in envelopes."""

    supplier_id: str
    standard: Standard
    their_id: str  # ISA06 / UNB sender of their documents
    our_id: str  # ISA08 / UNB recipient
    their_qualifier: str = (
        "ZZ"  # X12 ISA05/07 qualifier ("ZZ" mutually defined, "01" DUNS); EDIFACT: "ZZZ"/"14"
    )
    our_qualifier: str = "ZZ"
    x12_version: str = "00401"  # ISA12; GS08 is this + "0" (004010). 00501 -> 999 acknowledgements
    acknowledgement: Literal["997", "999", "CONTRL"] = "997"
    test: bool = False  # ISA15 T / UNB 0035 1


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A rendered interchange for one partner: its bytes and the control number used."""

    control_number: str
    text: str
    kinds: tuple[str, ...] = field(default=())
