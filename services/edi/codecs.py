"""Which standard an interchange is in, and that standard's codec (x12.py, edifact.py)."""

import asyncio
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Protocol

from services.edi import edifact, x12
from services.edi.documents import (
    EdiError,
    Envelope,
    Interchange,
    Outgoing,
    Partner,
    PurchaseOrderDocument,
    Standard,
)
from services.edi.files import write_atomically


class Codec(Protocol):
    parse: Callable[[bytes | str], Interchange]

    def acknowledge(
        self, parsed: Interchange | EdiError, partner: Partner, *, control_number: str, now: datetime
    ) -> Outgoing: ...

    def render_purchase_order(
        self, po: PurchaseOrderDocument, partner: Partner, *, control_number: str, now: datetime
    ) -> Outgoing: ...


CODECS: dict[Standard, ModuleType] = {"x12": x12, "edifact": edifact}


def detect(raw: bytes) -> Standard:
    """X12 interchanges open with ISA, EDIFACT ones with UNA (service string advice) or UNB; a byte-order
    mark or leading whitespace is tolerated, anything else is refused before any parsing."""
    head = raw.lstrip(b"\xef\xbb\xbf \t\r\n")[:3]
    if head == b"ISA":
        return "x12"
    if head in (b"UNA", b"UNB"):
        return "edifact"
    shown = head.decode("latin-1") or "nothing"
    raise EdiError(
        f"not an EDI interchange: it starts with {shown!r}, not ISA (X12) or UNA/UNB (EDIFACT)",
        segment=shown if head else "",
        position=1,
        header=None,
    )


def codec(standard: Standard) -> Codec:
    return CODECS[standard]  # type: ignore[return-value]  # the modules implement the protocol


# X12's basic and extended character sets are within ASCII for what we send; EDIFACT is sent as UNOC
# (ISO 8859-1), as the UNB we render says.
ENCODINGS: dict[Standard, str] = {"x12": "ascii", "edifact": "latin-1"}


def encoded(standard: Standard, text: str) -> bytes:
    """The document's bytes; a character its character set lacks is refused with the standard's name."""
    try:
        return text.encode(ENCODINGS[standard])
    except UnicodeEncodeError as e:
        raise ValueError(
            f"{standard} documents are {ENCODINGS[standard]}: {text[e.start : e.end]!r} cannot be sent"
        ) from None


async def deliver(outbox_dir: Path, partner: Partner, name: str, text: str) -> None:
    """An outgoing document into the partner's folder, in its standard's character set (written off the
    event loop, atomically: see files.write_atomically)."""
    content = encoded(partner.standard, text)
    await asyncio.to_thread(write_atomically, outbox_dir / partner.supplier_id, name, content)


# The segment that opens an interchange, and its element naming the receiver.
ENVELOPE_SEGMENT: dict[Standard, str] = {"x12": "ISA", "edifact": "UNB"}
RECEIVER_ELEMENT: dict[Standard, int] = {"x12": 8, "edifact": 3}


def envelope_of(error: EdiError, standard: Standard) -> Envelope:
    return error.header or Envelope(standard=standard)
