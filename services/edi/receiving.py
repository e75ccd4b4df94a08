"""Receiving one inbound interchange, from the inbox folder or over HTTP: all of it or nothing.

1. Refused before parsing: too large, not EDI, or from a sender that is no partner (no acknowledgement
   can be addressed to a stranger).
2. Parsed by its standard's codec; checked to be addressed to us; its lines checked against the POs
   this adapter sent (inbound.py).
3. In one transaction: a re-sent interchange (same standard, sender and control number as one applied
   before) changes nothing and is answered with the acknowledgement it got then. Otherwise the
   InterchangeAccepted and its contract events are appended to the interchange's own stream (the
   outbox publishes the contract events on the supplier topic), the acknowledgement is rendered and
   written to the supplier's outbox folder, and the read models are updated. A refused interchange is
   recorded (InterchangeRejected, with segment, position and reason) and, when its sender is a
   partner, acknowledged as rejected; nothing of it is applied.
"""

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from uuid import uuid4

import asyncpg
import structlog
from pydantic import BaseModel

from backbone.contracts import Envelope, new_envelope
from backbone.eventstore import ConcurrencyError, EventStore
from services.edi import inbound, projections
from services.edi.codecs import ENVELOPE_SEGMENT, RECEIVER_ELEMENT, codec, deliver, detect, envelope_of
from services.edi.documents import EdiError, Interchange, Partner, Standard
from services.edi.documents import Envelope as EdiEnvelope
from services.edi.events import InterchangeAccepted, InterchangeRejected
from services.edi.outbound import file_name
from services.edi.partners import Partners

log = structlog.get_logger(__name__)

Status = Literal["accepted", "duplicate", "rejected"]


class Outcome(BaseModel):
    """What became of an interchange (the HTTP answer, the inbox's log line and .reason file)."""

    status: Status
    standard: Standard | None = None
    sender_id: str | None = None
    control_number: str | None = None
    supplier_id: str | None = None
    events: int = 0
    reason: str | None = None
    segment: str | None = None
    position: int | None = None
    element: int | None = None
    acknowledgement: str | None = None
    acknowledgement_file: str | None = None


@dataclass(frozen=True, slots=True)
class Receiver:
    """What receiving needs: where, with whom, how much at most."""

    pool: asyncpg.Pool
    store: EventStore
    partners: Partners
    outbox_dir: Path
    max_bytes: int

    async def receive(self, raw: bytes, *, source: str, now: datetime) -> Outcome:
        digest = hashlib.sha256(raw).hexdigest()
        if len(raw) > self.max_bytes:
            return await self._refuse(
                EdiError(
                    f"the interchange has {len(raw)} bytes, more than the {self.max_bytes} accepted in one"
                ),
                None,
                None,
                source,
                digest,
                now,
            )
        try:
            standard = detect(raw)
        except EdiError as e:
            return await self._refuse(e, None, None, source, digest, now)
        try:
            # In a thread: a large interchange takes seconds to tokenize; the API and relay share this loop.
            parsed: Interchange | EdiError = await asyncio.to_thread(codec(standard).parse, raw)
        except EdiError as e:
            parsed = e
        except Exception as e:  # a codec fault on odd input: refuse the file rather than retry it forever
            log.exception("interchange unreadable", source=source)
            parsed = EdiError(f"the interchange could not be read: {type(e).__name__}: {e}")
        header = _header(parsed, standard)
        partner = self.partners.sent_by(standard, header.sender_id)
        if partner is None:
            who = repr(header.sender_id) if header.sender_id else "an unreadable sender"
            error = (
                parsed
                if isinstance(parsed, EdiError) and not header.sender_id
                else EdiError(
                    f"{who} is not a trading partner (EDI_PARTNERS)",
                    segment=ENVELOPE_SEGMENT[standard],
                    position=1,
                    header=header,
                )
            )
            return await self._refuse(error, standard, None, source, digest, now)
        if isinstance(parsed, Interchange) and parsed.receiver_id != partner.our_id:
            parsed = EdiError(
                f"the interchange is addressed to {parsed.receiver_id!r}, not to us ({partner.our_id!r})",
                segment=ENVELOPE_SEGMENT[standard],
                position=1,
                element=RECEIVER_ELEMENT[standard],
                header=header,
            )
        if isinstance(parsed, EdiError):
            return await self._refuse(parsed, standard, partner, source, digest, now)
        for attempt in (1, 2):  # a concurrent receipt of the same interchange wins the race: then a duplicate
            try:
                return await self._apply(parsed, partner, source, digest, now)
            except (ConcurrencyError, asyncpg.UniqueViolationError):
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _apply(
        self, interchange: Interchange, partner: Partner, source: str, digest: str, now: datetime
    ) -> Outcome:
        key = (interchange.standard, interchange.sender_id, interchange.control_number)
        async with self.pool.acquire() as conn, conn.transaction():
            earlier = await projections.accepted_interchange(conn, *key)
            if earlier is not None:
                return _duplicate(earlier, digest)
            sent = await projections.sent_purchase_orders(
                conn, inbound.referenced_purchase_orders(interchange), by="reference"
            )
            try:
                events = inbound.events_of(interchange, partner.supplier_id, sent)
            except EdiError as e:
                e.header = _header(interchange, interchange.standard)  # so the rejection is acknowledged
                return await self._refuse(e, interchange.standard, partner, source, digest, now, conn=conn)
            acknowledgement, ack_file, ack_number = await self._acknowledge(conn, interchange, partner, now)
            accepted = InterchangeAccepted(
                standard=interchange.standard,
                sender_id=interchange.sender_id,
                control_number=interchange.control_number,
                supplier_id=partner.supplier_id,
                source=source,
                digest=digest,
                messages=len(interchange.messages),
                events=len(events),
                acknowledgement=acknowledgement,
                acknowledgement_control_number=ack_number,
            )
            correlation = "edi:" + ":".join(key)
            envelopes: list[Envelope[Any]] = [
                new_envelope(payload, correlation_id=correlation, occurred_at=now)
                for payload in (accepted, *events)
            ]
            await self.store.append(conn, "interchange:" + ":".join(key), 0, envelopes)
            await projections.record(conn, envelopes[0])
        log.info(
            "interchange accepted",
            standard=interchange.standard,
            sender=interchange.sender_id,
            control_number=interchange.control_number,
            supplier=partner.supplier_id,
            events=len(events),
            source=source,
        )
        return Outcome(
            status="accepted",
            standard=interchange.standard,
            sender_id=interchange.sender_id,
            control_number=interchange.control_number,
            supplier_id=partner.supplier_id,
            events=len(events),
            acknowledgement=acknowledgement,
            acknowledgement_file=ack_file,
        )

    async def _acknowledge(
        self, conn: asyncpg.Connection, parsed: Interchange | EdiError, partner: Partner, now: datetime
    ) -> tuple[str, str, str]:
        """Render the acknowledgement and write it to the supplier's folder (in the caller's transaction:
        rolled back, its retry takes the same control number and writes the same file again)."""
        number = str(await projections.next_control_number(conn, partner.supplier_id))
        outgoing = codec(partner.standard).acknowledge(parsed, partner, control_number=number, now=now)
        subject = (
            parsed.control_number
            if isinstance(parsed, Interchange)
            else (_header(parsed, partner.standard).control_number or "unreadable")
        )
        name = file_name(outgoing.kinds[0] if outgoing.kinds else "ack", subject, outgoing.control_number)
        await deliver(self.outbox_dir, partner, name, outgoing.text)
        return outgoing.text, name, outgoing.control_number

    async def _refuse(
        self,
        error: EdiError,
        standard: Standard | None,
        partner: Partner | None,
        source: str,
        digest: str,
        now: datetime,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> Outcome:
        if conn is None:
            async with self.pool.acquire() as conn, conn.transaction():
                return await self._refuse(error, standard, partner, source, digest, now, conn=conn)
        header = error.header or (EdiEnvelope(standard=standard) if standard else None)
        acknowledgement = ack_file = ack_number = None
        if partner is not None:
            acknowledgement, ack_file, ack_number = await self._acknowledge(conn, error, partner, now)
        rejected = InterchangeRejected(
            standard=standard,
            sender_id=(header.sender_id or None) if header else None,
            control_number=(header.control_number or None) if header else None,
            supplier_id=partner.supplier_id if partner else None,
            source=source[:1000],
            digest=digest,
            reason=str(error)[:1000],
            segment=error.segment[:16],
            position=max(error.position, 0),
            element=max(error.element, 0),
            acknowledgement=acknowledgement,
            acknowledgement_control_number=ack_number,
        )
        envelope = new_envelope(rejected, occurred_at=now)
        await self.store.append(conn, f"rejection:{uuid4()}", 0, [envelope])
        await projections.record(conn, envelope)
        log.warning(
            "interchange rejected",
            reason=str(error),
            standard=standard,
            sender=rejected.sender_id,
            control_number=rejected.control_number,
            source=source,
        )
        return Outcome(
            status="rejected",
            standard=standard,
            sender_id=rejected.sender_id,
            control_number=rejected.control_number,
            supplier_id=rejected.supplier_id,
            reason=str(error),
            segment=error.segment or None,
            position=error.position or None,
            element=error.element or None,
            acknowledgement=acknowledgement,
            acknowledgement_file=ack_file,
        )


def _header(parsed: Interchange | EdiError, standard: Standard) -> EdiEnvelope:
    if isinstance(parsed, EdiError):
        return envelope_of(parsed, standard)
    return EdiEnvelope(
        standard=parsed.standard,
        sender_id=parsed.sender_id,
        receiver_id=parsed.receiver_id,
        control_number=parsed.control_number,
        groups=parsed.groups,
    )


def _duplicate(earlier: asyncpg.Record, digest: str) -> Outcome:
    same = earlier["digest"] == digest
    reason = (
        "a re-send of an interchange applied before: nothing changed"
        if same
        else "this control number was applied before with other content: the re-send is ignored"
        " (a changed document needs a new control number)"
    )
    return Outcome(
        status="duplicate",
        standard=earlier["standard"],
        sender_id=earlier["sender_id"],
        control_number=earlier["control_number"],
        supplier_id=earlier["supplier_id"],
        events=0,
        reason=reason,
        acknowledgement=earlier["acknowledgement"],
    )
