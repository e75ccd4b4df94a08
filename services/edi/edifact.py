"""UN/EDIFACT codec of the supplier EDI adapter: ORDRSP, DESADV and RECADV interchanges parsed into the
neutral documents of documents.py, our ORDERS and CONTRL rendered. Pure; the message maps (segments,
qualifiers, code lists) are data in edifact_maps.py.

The syntax layer is pydifact 0.2.3: its Tokenizer honours the release character (?' ?+ ?: ??), its
Parser.convert_tokens_to_raw_segments groups the tokens into segments of simple and composite data
elements, and its Serializer renders segments, releasing service characters in every value. Its
one-call Parser.parse is not used, because
- without a UNA at the very start it searches the text for "'UNA" regardless of release characters: a
  free text holding ?'UNA makes it drop everything before and read service characters from the text;
- it validates each segment against directory files the 0.2.3 wheel does not ship, warning
  (MissingImplementationWarning) for every segment tag;
- a last segment cut off after a separator is dropped without a word, so a truncated interchange
  could look whole;
so this module reads the UNA itself, feeds the tokenizer, and watches that the text ends on a segment
terminator. Bytes are tokenized as ISO 8859-1 (the service characters are ASCII, and no byte of a
multi-byte UTF-8 sequence is) and each value is then decoded in the character set UNB S001 names.

Positions: segments are counted from UNB = 1 (the UNA service string advice, when present, is #0),
data elements and components from 1. `parse` is all-or-nothing: the first fault raises EdifactError,
an EdiError that also carries the ISO 9735 syntax error code (0085), the component and the segment's
position inside its message (UNH = 1) that the CONTRL answering it names. Functional groups (UNG..UNE)
are refused, so that a CONTRL never needs group responses (UCF).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Literal, TypeVar, Unpack

from pydifact.control import Characters
from pydifact.exceptions import EDISyntaxError
from pydifact.parser import Parser
from pydifact.segments import Segment as WireSegment
from pydifact.serializer import Serializer
from pydifact.token import Token
from pydifact.tokenizer import Tokenizer

from services.edi import edifact_maps as maps
from services.edi.documents import (
    ConfirmedLine,
    Document,
    EdiError,
    Envelope,
    Interchange,
    Message,
    Outgoing,
    Partner,
    PoAcknowledgement,
    PurchaseOrderDocument,
    ReceivedLine,
    ReceivingAdvice,
    ShipNotice,
    ShippedLine,
    Where,
)

Element = str | list[str]  # a rendered data element: simple, or the components of a composite
_T = TypeVar("_T")


class EdifactError(EdiError):
    """An EdiError with what the CONTRL answering it names besides the neutral fields."""

    def __init__(
        self,
        reason: str,
        *,
        syntax_error: str,
        component: int = 0,
        message_position: int = 0,
        message_identifier: tuple[str, ...] = (),
        **where: Unpack[Where],
    ) -> None:
        super().__init__(reason, **where)
        self.syntax_error = syntax_error  # 0085
        self.component = component  # 1-based in the composite, 0 for a simple data element
        self.message_position = message_position  # the segment's position in its message (UNH = 1), or 0
        self.message_identifier = message_identifier  # UNH S009 as received (type, version, release, ...)


# --- parsing -----------------------------------------------------------------------------------------


def parse(raw: bytes | str) -> Interchange:
    """The interchange's messages as documents, or EdifactError naming the first fault."""
    reader = _Reader()
    try:
        return reader.read(raw)
    except _Fault as fault:
        raise reader.error(fault) from None


class _Fault(Exception):
    """A fault where it was found; _Reader.error adds the envelope and message it was found in."""

    def __init__(self, reason: str, code: str, tag: str, position: int, element: int = 0, component: int = 0):
        super().__init__(reason)
        self.reason, self.code, self.tag, self.position = reason, code, tag, position
        self.element, self.component = element, component


@dataclass(frozen=True, slots=True)
class _Segment:
    tag: str
    elements: tuple[tuple[str, ...], ...]  # each data element's components (one for a simple element)
    position: int  # in the interchange, UNB = 1

    def __getitem__(self, ref: maps.ElementRef) -> str:
        return self.at(ref.element, max(ref.component, 1))

    def at(self, element: int, component: int = 1) -> str:
        if element > len(self.elements):
            return ""
        components = self.elements[element - 1]
        return components[component - 1].strip() if component <= len(components) else ""

    def required(self, ref: maps.ElementRef) -> str:
        value = self[ref]
        if not value:
            raise self.fault(f"{self.tag} {ref} is missing", maps.MISSING, ref)
        return value

    def fault(self, reason: str, code: str, ref: maps.ElementRef | None = None) -> _Fault:
        return _Fault(
            reason, code, self.tag, self.position, ref.element if ref else 0, ref.component if ref else 0
        )


@dataclass(slots=True)
class _MessageContext:
    reference: str
    position: int  # of its UNH in the interchange
    kind: str
    identifier: tuple[str, ...]


class _Reader:
    """One parse: the envelope and the message being read, for the error a fault becomes."""

    def __init__(self) -> None:
        self.header: Envelope | None = None
        self.message: _MessageContext | None = None
        self.last_position = 0

    def error(self, fault: _Fault) -> EdifactError:
        context = self.message
        return EdifactError(
            f"{context.kind or 'message'} {context.reference}: {fault.reason}"
            if context and context.reference
            else fault.reason,
            syntax_error=fault.code,
            segment=fault.tag,
            position=fault.position,
            element=fault.element,
            component=fault.component,
            message_position=fault.position - context.position + 1 if context else 0,
            message_identifier=context.identifier if context else (),
            header=self.header,
            message_control_number=context.reference if context else "",
            message_kind=context.kind if context else "",
        )

    def read(self, raw: bytes | str) -> Interchange:
        text = _text(raw)
        characters, body = _service_characters(text)
        segments = _segments(body, characters)
        unb = next(segments, None)
        if unb is None or unb.tag != "UNB":
            found = f"starts with {unb.tag}" if unb else "is empty"
            raise _Fault(f"UNB is missing: the interchange {found}", maps.MISSING, "UNB", 1)
        self.header = _envelope(unb)
        encoding, prepared_at = _checked_header(unb)
        decoding = encoding if isinstance(raw, bytes) and encoding != "latin-1" else None
        if decoding is not None:
            self.header = _envelope(_decoded(unb, decoding))
        segments = self._counted(segments, decoding)
        messages: list[Message] = []
        references: set[str] = set()
        for segment in segments:
            if segment.tag == "UNH":
                messages.append(self._message(segment, segments, references))
            elif segment.tag == "UNZ":
                _check_trailer(segment, len(messages), self.header.control_number)
                trailing = next(segments, None)
                if trailing is not None:
                    raise trailing.fault(
                        f"{trailing.tag} follows UNZ: nothing may follow the end of the interchange",
                        maps.OUTSIDE_MESSAGE,
                    )
                return Interchange(
                    standard="edifact",
                    sender_id=self.header.sender_id,
                    receiver_id=self.header.receiver_id,
                    control_number=self.header.control_number,
                    prepared_at=prepared_at,
                    messages=tuple(messages),
                )
            elif segment.tag in maps.GROUP_SEGMENTS:
                raise segment.fault(
                    "functional groups (UNG..UNE) are not supported: send the messages directly in the"
                    " interchange",
                    maps.ENVELOPE_FUNCTIONALITY_NOT_SUPPORTED,
                )
            else:
                raise segment.fault(
                    f"{segment.tag} outside a message: only UNH..UNT messages come between UNB and UNZ",
                    maps.OUTSIDE_MESSAGE,
                )
        raise _Fault(
            "the interchange ends without UNZ: it is truncated", maps.MISSING, "UNZ", self.last_position + 1
        )

    def _counted(self, segments: Iterator[_Segment], decoding: str | None) -> Iterator[_Segment]:
        """The segments after UNB, their values decoded when the bytes are not ISO 8859-1."""
        self.last_position = 1
        for segment in segments:
            self.last_position = segment.position
            yield segment if decoding is None else _decoded(segment, decoding)

    def _message(self, unh: _Segment, segments: Iterator[_Segment], references: set[str]) -> Message:
        reference = unh[maps.UNH_REFERENCE]
        kind = unh[maps.UNH_TYPE]
        self.message = _MessageContext(
            reference, unh.position, kind, unh.elements[1] if len(unh.elements) > 1 else ()
        )
        for ref in (maps.UNH_REFERENCE, maps.UNH_TYPE, maps.UNH_VERSION, maps.UNH_RELEASE, maps.UNH_AGENCY):
            unh.required(ref)
        if reference in references:
            raise unh.fault(
                f"message reference {reference!r} is used twice in the interchange",
                maps.DUPLICATE_DETECTED,
                maps.UNH_REFERENCE,
            )
        references.add(reference)
        message_map = maps.INBOUND.get(kind)
        if message_map is None:
            raise unh.fault(
                f"{kind} messages are not accepted: only {', '.join(maps.INBOUND)}",
                maps.VALUE_NOT_SUPPORTED,
                maps.UNH_TYPE,
            )
        for ref, expected in (
            (maps.UNH_VERSION, maps.MESSAGE_VERSION),
            (maps.UNH_AGENCY, maps.CONTROLLING_AGENCY),
        ):
            if unh[ref] != expected:
                raise unh.fault(
                    f"UNH {ref} is {unh[ref]!r}: only UN directory messages ({expected!r}) are read",
                    maps.VALUE_NOT_SUPPORTED,
                    ref,
                )
        reader = _DocumentReader(message_map)
        count = 1
        for segment in segments:
            count += 1
            if segment.tag == "UNT":
                _check_message_trailer(segment, count, reference)
                document = reader.finish(segment)
                self.message = None
                return Message(control_number=reference, kind=kind, document=document)
            if segment.tag in maps.SERVICE_SEGMENTS:
                raise _Fault(
                    f"no UNT: {segment.tag} comes before the message ends",
                    maps.MISSING,
                    "UNT",
                    segment.position,
                )
            for ref in maps.REQUIRED.get(segment.tag, ()):
                segment.required(ref)
            reader.feed(segment)
        raise _Fault(
            "the interchange ends inside the message, without UNT: it is truncated",
            maps.MISSING,
            "UNT",
            self.last_position + 1,
        )


def _text(raw: bytes | str) -> str:
    """The interchange as text: bytes as ISO 8859-1 (decoded per value later), without a byte-order mark
    or the padding some transfers add around it."""
    text = (
        raw.removeprefix(b"\xef\xbb\xbf").decode("latin-1")
        if isinstance(raw, bytes)
        else raw.removeprefix("\ufeff")
    )
    return text.strip(" \t\r\n\x00\x1a")


_NO_RELEASE = "\x00"  # a release character that never occurs in EDIFACT text: none is in use
_LEVEL_B = Characters("\x1f", "\x1d", ".", _NO_RELEASE, " ", "\x1c")  # IS1, IS3, IS4 (ISO 9735)


def _service_characters(text: str) -> tuple[Characters, str]:
    """The service characters and the text after the UNA: those the UNA gives, else level A's `:+.? '`,
    or level B's information separators when the UNB is written with them."""
    if not text.startswith("UNA"):
        return (_LEVEL_B if text[3:4] == "\x1d" else Characters.from_str(maps.SERVICE_CHARACTERS)), text
    advice = text[3:9]
    if len(advice) < 6:
        raise _Fault("UNA is cut short: it must give six service characters", maps.MISSING, "UNA", 0)
    component, data, _decimal_mark, release, _reserved, terminator = advice
    used = [component, data, terminator] + ([release] if release != " " else [])
    if len(set(used)) < len(used) or any(c.isalnum() or c in "\r\n" for c in used):
        raise _Fault(
            f"UNA {advice!r}: separators and release character must differ and not be letters, digits"
            " or line breaks",
            maps.INVALID_AS_SERVICE_CHARACTER,
            "UNA",
            0,
        )
    characters = Characters.from_str(advice)
    if release == " ":  # a space in UNA4: no release character
        characters.escape_character = _NO_RELEASE
    return characters, text[9:].lstrip(" \t\r\n")


class _Watched:
    """pydifact's tokens passed through, noting the tag of the segment being read and whether the
    text ended on a segment terminator (pydifact drops an unterminated last segment silently)."""

    def __init__(self, tokens: Iterator[Token]) -> None:
        self._tokens = tokens
        self.last: Token.Type | None = None
        self.tag = ""

    def __iter__(self) -> Iterator[Token]:
        for token in self._tokens:
            if self.last in (None, Token.Type.TERMINATOR):
                self.tag = token.value[:3] if token.type is Token.Type.CONTENT else ""
            self.last = token.type
            yield token


_TAG = re.compile(r"[A-Z][A-Z0-9]{2}")


def _segments(text: str, characters: Characters) -> Iterator[_Segment]:
    tokenizer = Tokenizer()
    watched = _Watched(tokenizer.get_tokens(text, characters))
    position = 0
    try:
        for raw in Parser().convert_tokens_to_raw_segments(watched):
            position += 1
            tag = raw[0] if raw else ""
            if not isinstance(tag, str) or not _TAG.fullmatch(tag):
                shown = ":".join(tag) if isinstance(tag, list) else tag
                raise _Fault(
                    f"{shown[:20]!r} is not a segment tag (three capital letters or digits)",
                    maps.INVALID_VALUE,
                    shown[:3],
                    position,
                )
            elements = tuple((e,) if isinstance(e, str) else tuple(e) for e in raw[1:])
            yield _Segment(tag, elements, position)
    except EDISyntaxError as e:
        if tokenizer.end_of_message():
            watched.last = None  # reported below, as any unterminated end
        else:
            raise _Fault(
                f"segment {watched.tag or '?'} cannot be read: {e}",
                maps.INVALID_SERVICE_CHARACTERS,
                watched.tag,
                position + 1,
            ) from None
    if text and watched.last is not Token.Type.TERMINATOR:
        raise _Fault(
            f"the interchange ends inside segment {watched.tag or '?'}, without a segment terminator: it is"
            " truncated",
            maps.MISSING,
            watched.tag,
            position + 1,
        )


def _decoded(segment: _Segment, encoding: str) -> _Segment:
    """The segment's values as the character set decodes their bytes (tokenized as ISO 8859-1)."""
    if all(value.isascii() for components in segment.elements for value in components):
        return segment
    elements: list[tuple[str, ...]] = []
    for index, components in enumerate(segment.elements, 1):
        try:
            elements.append(tuple(value.encode("latin-1").decode(encoding) for value in components))
        except UnicodeDecodeError:
            raise _Fault(
                f"{segment.tag} element {index} holds bytes that are not {encoding}, the character set UNB"
                " names",
                maps.INVALID_CHARACTERS,
                segment.tag,
                segment.position,
                index,
            ) from None
    return _Segment(segment.tag, tuple(elements), segment.position)


def _envelope(unb: _Segment) -> Envelope:
    """The header as far as it can be read, before it is checked: a rejection is still answered."""
    return Envelope(
        standard="edifact",
        sender_id=unb[maps.UNB_SENDER],
        receiver_id=unb[maps.UNB_RECIPIENT],
        control_number=unb[maps.UNB_CONTROL_REFERENCE],
        sender_qualifier=unb[maps.UNB_SENDER_QUALIFIER],
        receiver_qualifier=unb[maps.UNB_RECIPIENT_QUALIFIER],
        version=unb[maps.UNB_SYNTAX_VERSION],
    )


def _checked_header(unb: _Segment) -> tuple[str, datetime]:
    """The character set's codec and the preparation time (UTC) of a UNB with all it must have."""
    for ref in (
        maps.UNB_SYNTAX_IDENTIFIER,
        maps.UNB_SYNTAX_VERSION,
        maps.UNB_SENDER,
        maps.UNB_RECIPIENT,
        maps.UNB_DATE,
        maps.UNB_TIME,
        maps.UNB_CONTROL_REFERENCE,
    ):
        unb.required(ref)
    syntax = unb[maps.UNB_SYNTAX_IDENTIFIER]
    encoding = maps.CHARACTER_SETS.get(syntax)
    if encoding is None:
        raise unb.fault(
            f"UNB syntax identifier {syntax!r} is not supported: {', '.join(maps.CHARACTER_SETS)}",
            maps.CHARACTER_SET_NOT_SUPPORTED,
            maps.UNB_SYNTAX_IDENTIFIER,
        )
    if unb[maps.UNB_SYNTAX_VERSION] not in maps.SYNTAX_VERSIONS:
        raise unb.fault(
            f"UNB syntax version {unb[maps.UNB_SYNTAX_VERSION]!r} is not supported: 1 to 4",
            maps.SYNTAX_VERSION_NOT_SUPPORTED,
            maps.UNB_SYNTAX_VERSION,
        )
    if len(unb[maps.UNB_CONTROL_REFERENCE]) > maps.MAX_CONTROL_REFERENCE:
        raise unb.fault(
            f"UNB {maps.UNB_CONTROL_REFERENCE} has more than {maps.MAX_CONTROL_REFERENCE} characters",
            maps.DATA_ELEMENT_TOO_LONG,
            maps.UNB_CONTROL_REFERENCE,
        )
    day, time = unb[maps.UNB_DATE], unb[maps.UNB_TIME]
    # YYMMDD up to syntax version 3, CCYYMMDD in version 4; HHMM.
    stamp = ("20" + day if len(day) == 6 else day) + time
    try:
        if not (_digits(day) and len(day) in (6, 8) and _digits(time) and len(time) == 4):
            raise ValueError(stamp)
        return encoding, datetime.strptime(stamp, "%Y%m%d%H%M").replace(tzinfo=UTC)
    except ValueError:
        raise unb.fault(
            f"UNB date/time of preparation {day}:{time} is not YYMMDD (or CCYYMMDD):HHMM",
            maps.INVALID_VALUE,
            maps.UNB_DATE,
        ) from None


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _check_message_trailer(unt: _Segment, count: int, reference: str) -> None:
    stated = unt.required(maps.UNT_SEGMENT_COUNT)
    if not _digits(stated):
        raise unt.fault(
            f"UNT {maps.UNT_SEGMENT_COUNT} {stated!r} is not a number",
            maps.INVALID_CHARACTER_TYPE,
            maps.UNT_SEGMENT_COUNT,
        )
    if int(stated) != count:
        raise unt.fault(
            f"UNT counts {int(stated)} segments, the message has {count} (UNH to UNT)",
            maps.CONTROL_COUNT_MISMATCH,
            maps.UNT_SEGMENT_COUNT,
        )
    if unt.required(maps.UNT_REFERENCE) != reference:
        raise unt.fault(
            f"UNT message reference {unt[maps.UNT_REFERENCE]!r} does not match UNH {reference!r}",
            maps.REFERENCES_DO_NOT_MATCH,
            maps.UNT_REFERENCE,
        )


def _check_trailer(unz: _Segment, messages: int, control_number: str) -> None:
    stated = unz.required(maps.UNZ_CONTROL_COUNT)
    if not _digits(stated):
        raise unz.fault(
            f"UNZ {maps.UNZ_CONTROL_COUNT} {stated!r} is not a number",
            maps.INVALID_CHARACTER_TYPE,
            maps.UNZ_CONTROL_COUNT,
        )
    if int(stated) != messages:
        raise unz.fault(
            f"UNZ counts {int(stated)} messages, the interchange has {messages}",
            maps.CONTROL_COUNT_MISMATCH,
            maps.UNZ_CONTROL_COUNT,
        )
    if unz.required(maps.UNZ_CONTROL_REFERENCE) != control_number:
        raise unz.fault(
            f"UNZ control reference {unz[maps.UNZ_CONTROL_REFERENCE]!r} does not match UNB's"
            f" {control_number!r}",
            maps.REFERENCES_DO_NOT_MATCH,
            maps.UNZ_CONTROL_REFERENCE,
        )
    if messages == 0:
        raise unz.fault("the interchange holds no message", maps.LOWER_LEVEL_EMPTY)


# --- one message's segments as its document ----------------------------------------------------------


@dataclass(slots=True)
class _Level:
    """A CPS packing level: the order number its lines get unless they name their own."""

    inherited: str | None
    own: str | None = None

    @property
    def order(self) -> str | None:
        return self.own or self.inherited


@dataclass(slots=True)
class _Line:
    """A LIN group being read."""

    lin: _Segment
    inherited_order: str | None  # from its packing level or the header
    sku: str  # LIN C212 7140 when 7143 is IN
    action: str  # LIN 1229
    own_level: bool = True  # no segment group of the line has begun yet
    order: str | None = None
    item_segment: _Segment | None = None  # the PIA that named the SKU
    item_sku: str = ""
    quantities: dict[str, int] = field(default_factory=dict)
    dates: dict[str, datetime] = field(default_factory=dict)

    @property
    def name(self) -> str:
        number = self.lin.at(1)
        return f"LIN {number}" if number else f"LIN #{self.lin.position}"


_Zone = Literal["start", "header", "header groups", "detail", "summary"]


class _DocumentReader:
    """One message's segments between UNH and UNT, read line by line into its document: a line is
    turned into its document line when the next LIN, CPS or the summary begins."""

    def __init__(self, message_map: maps.MessageMap) -> None:
        self._map = message_map
        self._zone: _Zone = "start"
        self._document_id = ""
        self._function = ""
        self._header_dates: dict[str, datetime] = {}
        self._header_order: str | None = None
        self._levels: dict[str, _Level] = {}
        self._level: _Level | None = None
        self._level_open = False  # the current CPS has no LIN yet: an RFF+ON there is the level's
        self._line: _Line | None = None
        self._lines = 0
        self._confirmed: list[ConfirmedLine] = []
        self._shipped: dict[tuple[str, str], int] = {}
        self._received: dict[tuple[str | None, str], int] = {}

    def feed(self, segment: _Segment) -> None:
        tag = segment.tag
        if self._zone == "start":
            if tag != "BGM":
                raise _Fault(f"BGM must follow UNH, not {tag}", maps.MISSING, "BGM", segment.position)
            self._begin(segment)
            return
        if tag == "BGM":
            raise segment.fault("a second BGM", maps.NOT_SUPPORTED_IN_POSITION)
        if tag in maps.DETAIL_STARTS:
            if self._zone == "summary":
                raise segment.fault(f"{tag} after the summary section", maps.NOT_SUPPORTED_IN_POSITION)
            self._end_line()
            self._zone = "detail"
            if tag == "CPS":
                self._begin_level(segment)
            else:
                self._begin_line(segment)
            return
        if tag in maps.SUMMARY_STARTS:
            self._end_line()
            self._zone = "summary"
            return
        if self._zone == "header" and tag not in maps.HEADER_LEVEL:
            self._zone = "header groups"
        if self._line is not None and tag not in maps.LINE_LEVEL:
            self._line.own_level = False
        if tag == "DTM":
            self._date(segment)
        elif tag == "RFF":
            self._reference(segment)
        elif tag == "QTY":
            self._quantity(segment)
        elif tag == "PIA":
            self._item(segment)

    def finish(self, unt: _Segment) -> Document:
        kind = self._map.kind
        if self._zone == "start":
            raise _Fault("BGM is missing", maps.MISSING, "BGM", unt.position)
        self._end_line()
        if not self._lines:
            raise _Fault(f"{kind} {self._document_id} has no line (LIN)", maps.MISSING, "LIN", unt.position)
        if self._map is maps.ORDRSP:
            return PoAcknowledgement(document_id=self._document_id, lines=tuple(self._confirmed))
        moment = _first(self._header_dates, self._map.header_dates)
        if moment is None:
            qualifiers = ", ".join(f"DTM+{q}" for q in self._map.header_dates)
            raise _Fault(
                f"{kind} {self._document_id} has no {qualifiers} in its header",
                maps.MISSING,
                "DTM",
                unt.position,
            )
        if self._map is maps.DESADV:
            return ShipNotice(
                asn_id=self._document_id,
                expected_date=moment.date(),
                lines=tuple(ShippedLine(po, sku, quantity) for (po, sku), quantity in self._shipped.items()),
            )
        return ReceivingAdvice(
            receipt_id=self._document_id,
            received_at=moment,
            lines=tuple(ReceivedLine(po, sku, quantity) for (po, sku), quantity in self._received.items()),
        )

    def _begin(self, bgm: _Segment) -> None:
        self._zone = "header"
        name = bgm[maps.BGM_DOCUMENT_NAME]
        if name and name not in self._map.document_names:
            expected = ", ".join(f"{code} ({meaning})" for code, meaning in self._map.document_names.items())
            raise bgm.fault(
                f"BGM {maps.BGM_DOCUMENT_NAME} {name!r} is not what a {self._map.kind} is: {expected}",
                maps.VALUE_NOT_SUPPORTED,
                maps.BGM_DOCUMENT_NAME,
            )
        self._document_id = bgm[maps.BGM_DOCUMENT_NUMBER]
        function = bgm[maps.BGM_MESSAGE_FUNCTION]
        if function and function not in self._map.functions:
            expected = ", ".join(f"{code} ({meaning})" for code, meaning in self._map.functions.items())
            raise bgm.fault(
                f"BGM {maps.BGM_MESSAGE_FUNCTION} {function!r} is not handled in a {self._map.kind}:"
                f" {expected}",
                maps.VALUE_NOT_SUPPORTED,
                maps.BGM_MESSAGE_FUNCTION,
            )
        self._function = function

    def _begin_level(self, cps: _Segment) -> None:
        number = cps[maps.CPS_ID]
        if number in self._levels:
            raise cps.fault(f"CPS {number!r} is given twice", maps.INVALID_VALUE, maps.CPS_ID)
        parent_number = cps[maps.CPS_PARENT]
        parent = self._levels.get(parent_number) if parent_number else None
        if parent_number and parent is None:
            raise cps.fault(
                f"CPS {number} names parent {parent_number!r}, which is not a level before it",
                maps.INVALID_VALUE,
                maps.CPS_PARENT,
            )
        self._level = _Level(inherited=parent.order if parent else self._header_order)
        self._levels[number] = self._level
        self._level_open = True

    def _begin_line(self, lin: _Segment) -> None:
        self._level_open = False
        item_is_ours = lin[maps.LIN_ITEM_TYPE] == maps.BUYERS_ITEM_NUMBER
        self._line = _Line(
            lin=lin,
            inherited_order=self._level.order if self._level else self._header_order,
            sku=lin[maps.LIN_ITEM_NUMBER] if item_is_ours else "",
            action=lin[maps.LIN_ACTION],
        )

    def _date(self, dtm: _Segment) -> None:
        if self._zone == "header":
            wanted, found = self._map.header_dates, self._header_dates
        elif self._line is not None and self._line.own_level:
            wanted, found = self._map.line_dates, self._line.dates
        else:
            return
        qualifier = dtm[maps.DTM_QUALIFIER]
        if qualifier not in wanted:
            return
        moment = _moment(dtm, qualifier)
        earlier = found.setdefault(qualifier, moment)
        if earlier != moment:
            raise dtm.fault(
                f"DTM+{qualifier} is given twice, {earlier:%Y-%m-%d %H:%M} and {moment:%Y-%m-%d %H:%M}",
                maps.INVALID_VALUE,
                maps.DTM_VALUE,
            )

    def _reference(self, rff: _Segment) -> None:
        if rff[maps.RFF_QUALIFIER] != maps.ORDER_NUMBER:
            return
        number = rff.required(maps.RFF_NUMBER)
        if self._line is not None:
            self._line.order = _same_order(self._line.order, number, rff, self._line.name)
        elif self._level is not None and self._level_open:
            self._level.own = _same_order(self._level.own, number, rff, "the packing level")
        elif self._zone in ("header", "header groups"):
            self._header_order = _same_order(self._header_order, number, rff, "the header")

    def _quantity(self, qty: _Segment) -> None:
        qualifier = qty[maps.QTY_QUALIFIER]
        amount = _amount(qty, qualifier)
        line = self._line
        if line is None or not line.own_level or qualifier not in self._map.quantities:
            return
        if qualifier in line.quantities:
            raise qty.fault(
                f"QTY+{qualifier} is given twice in {line.name}", maps.INVALID_VALUE, maps.QTY_QUALIFIER
            )
        if amount < 0 or amount != amount.to_integral_value():
            raise qty.fault(
                f"QTY+{qualifier} {qty[maps.QTY_QUANTITY]!r} is not a whole number of units",
                maps.INVALID_VALUE,
                maps.QTY_QUANTITY,
            )
        line.quantities[qualifier] = int(amount)

    def _item(self, pia: _Segment) -> None:
        line = self._line
        if line is None or not line.own_level or pia[maps.PIA_FUNCTION] not in maps.PIA_FUNCTIONS:
            return
        for element in maps.PIA_ITEM_ELEMENTS:
            if pia.at(element, 2) == maps.BUYERS_ITEM_NUMBER and pia.at(element, 1):
                sku = pia.at(element, 1)
                if line.item_sku and line.item_sku != sku:
                    raise pia.fault(
                        f"{line.name} has two buyer's item numbers, {line.item_sku!r} and {sku!r}",
                        maps.INVALID_VALUE,
                        maps.ElementRef(element, 1, "7140", "item number"),
                    )
                line.item_sku, line.item_segment = sku, pia

    def _end_line(self) -> None:
        line, self._line = self._line, None
        if line is None:
            return
        self._lines += 1
        if line.sku and line.item_sku and line.sku != line.item_sku:
            assert line.item_segment is not None
            raise line.item_segment.fault(
                f"{line.name} names SKU {line.sku!r}, its PIA {line.item_sku!r}", maps.INVALID_VALUE
            )
        sku = line.sku or line.item_sku
        if not sku:
            raise line.lin.fault(
                f"{line.name} has no buyer's item number (7143 {maps.BUYERS_ITEM_NUMBER!r} in LIN or PIA):"
                " our SKU is unknown",
                maps.MISSING,
                maps.LIN_ITEM_NUMBER,
            )
        order = line.order or line.inherited_order
        if self._map is maps.RECADV:
            key = (order, sku)
            self._received[key] = self._received.get(key, 0) + self._required_quantity(line, sku)
            return
        if order is None:
            raise line.lin.fault(
                f"{line.name} ({sku}) has no order number: RFF+ON in the line, its packing level or the"
                " header",
                maps.MISSING,
            )
        if self._map is maps.ORDRSP:
            self._confirmed.append(self._confirmation(line, order, sku))
        else:
            self._shipped[(order, sku)] = self._shipped.get((order, sku), 0) + self._required_quantity(
                line, sku
            )

    def _required_quantity(self, line: _Line, sku: str) -> int:
        quantity = _first(line.quantities, self._map.quantities)
        if quantity is None:
            qualifiers = " or ".join(f"QTY+{q}" for q in self._map.quantities)
            raise line.lin.fault(f"{line.name} ({sku}) has no {qualifiers}", maps.MISSING)
        return quantity

    def _confirmation(self, line: _Line, order: str, sku: str) -> ConfirmedLine:
        actions = self._map.line_actions
        if line.action not in actions:
            expected = ", ".join(f"{code} ({meaning})" for code, meaning in actions.items() if code)
            raise line.lin.fault(
                f"{line.name} action {maps.LIN_ACTION} {line.action!r} is not an answer to an order line:"
                f" {expected}",
                maps.VALUE_NOT_SUPPORTED,
                maps.LIN_ACTION,
            )
        refused = (
            self._function in self._map.rejecting_functions or line.action in self._map.rejecting_line_actions
        )
        quantity = 0 if refused else self._required_quantity(line, sku)
        moment = (
            _first(line.dates, self._map.line_dates)
            or _first(self._header_dates, self._map.line_dates)
            or (_first(self._header_dates, self._map.rejected_line_dates) if refused else None)
        )
        if moment is None:
            qualifiers = ", ".join(f"DTM+{q}" for q in self._map.line_dates)
            raise line.lin.fault(
                f"{line.name} ({sku}) has no delivery date: {qualifiers} in the line or the header",
                maps.MISSING,
            )
        return ConfirmedLine(po_id=order, sku=sku, confirmed_quantity=quantity, confirmed_date=moment.date())


def _first(found: Mapping[str, _T], qualifiers: Sequence[str]) -> _T | None:
    """The value of the first qualifier (in order of preference) that was given."""
    return next((found[q] for q in qualifiers if q in found), None)


def _same_order(current: str | None, number: str, rff: _Segment, scope: str) -> str:
    if current is not None and current != number:
        raise rff.fault(
            f"{scope} names two order numbers, RFF+ON {current!r} and {number!r}",
            maps.INVALID_VALUE,
            maps.RFF_NUMBER,
        )
    return number


def _moment(dtm: _Segment, qualifier: str) -> datetime:
    value = dtm.required(maps.DTM_VALUE)
    form = dtm.required(maps.DTM_FORMAT)
    known = maps.DATE_FORMATS.get(form)
    if known is None:
        readable = ", ".join(f"{code} ({looks})" for code, (looks, _, _) in maps.DATE_FORMATS.items())
        raise dtm.fault(
            f"DTM+{qualifier} format {form!r} is not read: {readable}",
            maps.VALUE_NOT_SUPPORTED,
            maps.DTM_FORMAT,
        )
    looks, pattern, digits = known
    if not (_digits(value) and len(value) == digits):
        raise dtm.fault(
            f"DTM+{qualifier} {value!r} is not {looks} (format {form})", maps.INVALID_VALUE, maps.DTM_VALUE
        )
    try:
        return datetime.strptime(value, pattern).replace(tzinfo=UTC)
    except ValueError:
        raise dtm.fault(
            f"DTM+{qualifier} {value!r} is not a calendar date and time ({looks}, format {form})",
            maps.INVALID_VALUE,
            maps.DTM_VALUE,
        ) from None


_NUMBER = re.compile(r"-?(\d+)(?:[.,](\d+))?")


def _amount(qty: _Segment, qualifier: str) -> Decimal:
    """QTY 6060 as a number; either decimal mark is accepted (syntax version 4 allows both)."""
    text = qty[maps.QTY_QUANTITY]
    match = _NUMBER.fullmatch(text) if text.isascii() else None
    if match is None:
        raise qty.fault(
            f"QTY+{qualifier} quantity {text!r} is not a number",
            maps.INVALID_CHARACTER_TYPE,
            maps.QTY_QUANTITY,
        )
    if len(match[1]) + len(match[2] or "") > maps.MAX_NUMBER_DIGITS:
        raise qty.fault(
            f"QTY+{qualifier} quantity {text!r} has more than {maps.MAX_NUMBER_DIGITS} digits",
            maps.DATA_ELEMENT_TOO_LONG,
            maps.QTY_QUANTITY,
        )
    return Decimal(text.replace(",", "."))


# --- rendering ---------------------------------------------------------------------------------------


def acknowledge(
    parsed: Interchange | EdiError, partner: Partner, *, control_number: str, now: datetime
) -> Outgoing:
    """A CONTRL in its own interchange. Accepted: the UCI alone, with action 7, which acknowledges "this
    level and all lower levels" (CONTRL reports messages (UCM) to reject them; an acknowledged
    interchange answered per message would only repeat it). Rejected: UCI action 4 with the syntax
    error when the fault is in the envelope; else UCI action 4, the faulty message's UCM (action 4 and
    the error) and, for a fault in its body, UCS (the segment's position in the message and the
    error) and UCD (the data element and component). The UCI names the interchange as its UNB did;
    qualifiers it did not give (or an Interchange, which keeps none) are the partner's, and a UNB
    that had no control reference is answered with an empty one: nothing else identifies it."""
    if isinstance(parsed, Interchange):
        subject = _Subject(
            parsed.control_number,
            (parsed.sender_id, partner.their_qualifier),
            (parsed.receiver_id, partner.our_qualifier),
        )
        body = [subject.response(maps.ACKNOWLEDGED)]
    else:
        body = _rejection(parsed, partner)
    text = _interchange(partner, control_number, now, maps.CONTRL_IDENTIFIER, body)
    return Outgoing(control_number=control_number, text=text, kinds=("CONTRL",))


@dataclass(frozen=True, slots=True)
class _Subject:
    """The interchange a CONTRL answers, as its UNB named it: UCI 0020, S002, S003."""

    control_number: str
    sender: tuple[str, str]  # id, qualifier
    recipient: tuple[str, str]

    def response(self, action: str, *error: Element) -> list[Element]:
        return ["UCI", self.control_number, list(self.sender), list(self.recipient), action, *error]


def _rejection(error: EdiError, partner: Partner) -> list[list[Element]]:
    header = error.header or Envelope(standard="edifact")
    subject = _Subject(
        header.control_number,
        (header.sender_id or partner.their_id, header.sender_qualifier or partner.their_qualifier),
        (header.receiver_id or partner.our_id, header.receiver_qualifier or partner.our_qualifier),
    )
    code = _syntax_error(error)
    component = error.component if isinstance(error, EdifactError) else 0
    where = _data_element(error.element, component)
    identifier = _message_identifier(error)
    if not (error.message_control_number and identifier):
        # An envelope fault (or a message that cannot be named): the UCI says it all.
        if error.segment in maps.SERVICE_SEGMENTS:
            return [subject.response(maps.REJECTED, code, error.segment, where)]
        return [subject.response(maps.REJECTED, code)]
    in_trailer_or_header = error.segment in ("UNH", "UNT") and isinstance(error, EdifactError)
    message: list[Element] = ["UCM", error.message_control_number, list(identifier), maps.REJECTED, code]
    if in_trailer_or_header:
        message += [error.segment, where]
    segments = [subject.response(maps.REJECTED), message]
    if isinstance(error, EdifactError) and error.message_position and not in_trailer_or_header:
        segments.append(["UCS", str(error.message_position), code])
        if error.element:
            segments.append(["UCD", code, where])
    return segments


def _syntax_error(error: EdiError) -> str:
    if isinstance(error, EdifactError):
        return error.syntax_error
    # The adapter's own refusals: not addressed to us (UNB S003), a sender we do not know (UNB S002),
    # or a message it cannot apply (a PO it never sent...), for which no syntax code is more precise.
    if error.segment == "UNB" and error.element == 3:
        return maps.NOT_ACTUAL_RECIPIENT
    if error.segment == "UNB" and error.element == 2:
        return maps.UNKNOWN_SENDER
    return maps.UNSPECIFIED


def _message_identifier(error: EdiError) -> tuple[str, ...]:
    """UCM S009: as the UNH gave it; our maps' directory for a message the adapter refused after
    parsing (documents.Message keeps its type only); none if the UNH lacks a mandatory component."""
    if isinstance(error, EdifactError) and error.message_identifier:
        identifier = tuple(c.strip() for c in error.message_identifier)
        return identifier if len(identifier) >= 4 and all(identifier[:4]) else ()
    return (error.message_kind, *maps.DEFAULT_MESSAGE_IDENTIFIER) if error.message_kind else ()


def _data_element(element: int, component: int) -> Element:
    """S011: the data element's position and, inside a composite, the component's."""
    if not element:
        return ""
    return [str(element), str(component)] if component else str(element)


def render_purchase_order(
    po: PurchaseOrderDocument, partner: Partner, *, control_number: str, now: datetime
) -> Outgoing:
    """The PO as an ORDERS (D.96A): BGM 220 with its function (9 original, 5 replace, 1 cancellation),
    DTM 137 issued and 2 requested delivery, RFF+PP (purchase order change number) carrying the
    revision, NAD+SU with our supplier id (assigned by the buyer, 92), CUX, one LIN with the SKU as
    buyer's item number, QTY+21, PRI+AAA net unit price, UNS+S. ValueError for a value no ORDERS can
    carry (too long, a control character): a broken document is never sent."""
    function = maps.ORDER_FUNCTIONS.get(po.purpose)
    if function is None:
        raise ValueError(
            f"purchase order {po.po_id!r}: purpose {po.purpose!r} is not one of {list(maps.ORDER_FUNCTIONS)}"
        )
    if po.revision < 1:
        raise ValueError(f"purchase order {po.po_id!r}: revision {po.revision} is not a positive number")
    po_id = _value(po.po_id, "po_id", maps.MAX_DOCUMENT_NUMBER)
    body: list[list[Element]] = [
        ["BGM", maps.ORDER_DOCUMENT_NAME, po_id, function],
        ["DTM", [maps.ISSUE_DATE, _calendar_date(po.issued_on), maps.CALENDAR_DATE]],
    ]
    if po.requested_date is not None:
        body.append(["DTM", [maps.REQUESTED_DELIVERY, _calendar_date(po.requested_date), maps.CALENDAR_DATE]])
    body.append(["RFF", [maps.REVISION_REFERENCE, str(po.revision)]])
    supplier = _value(po.supplier_id, "supplier_id", maps.MAX_PARTY_ID)
    body.append(["NAD", maps.SUPPLIER_PARTY, [supplier, "", maps.ASSIGNED_BY_BUYER]])
    if po.currency is not None:
        if not re.fullmatch(r"[A-Z]{3}", po.currency):
            raise ValueError(f"purchase order {po_id!r}: currency {po.currency!r} is not an ISO 4217 code")
        body.append(["CUX", [maps.REFERENCE_CURRENCY[0], po.currency, maps.REFERENCE_CURRENCY[1]]])
    body.append(["LIN", "1", "", [_value(po.sku, "sku", maps.MAX_ITEM_NUMBER), maps.BUYERS_ITEM_NUMBER]])
    body.append(["QTY", [maps.ORDERED_QUANTITY, _number(Decimal(po.quantity), "quantity")]])
    if po.unit_cost is not None:
        body.append(["PRI", [maps.NET_PRICE, _number(po.unit_cost, "unit_cost")]])
    body.append(["UNS", maps.DETAIL_SECTION_END])
    text = _interchange(partner, control_number, now, maps.ORDERS_IDENTIFIER, body)
    return Outgoing(control_number=control_number, text=text, kinds=("ORDERS",))


def _interchange(
    partner: Partner,
    control_number: str,
    now: datetime,
    identifier: tuple[str, ...],
    body: list[list[Element]],
) -> str:
    """UNA, UNB, one message (UNH, `body`, UNT) and UNZ; the message reference is the control number."""
    if not re.fullmatch(rf"[A-Za-z0-9]{{1,{maps.MAX_CONTROL_REFERENCE}}}", control_number):
        raise ValueError(
            f"control number {control_number!r}: 1 to {maps.MAX_CONTROL_REFERENCE} letters or digits"
        )
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"{now!r} has no time zone: the interchange's time must be unambiguous")
    stamp = now.astimezone(UTC)
    header: list[Element] = [
        "UNB",
        list(maps.RENDERED_SYNTAX),
        [
            _value(partner.our_id, "our_id", maps.MAX_PARTY_ID),
            _value(partner.our_qualifier, "our_qualifier", maps.MAX_QUALIFIER, empty=True),
        ],
        [
            _value(partner.their_id, "their_id", maps.MAX_PARTY_ID),
            _value(partner.their_qualifier, "their_qualifier", maps.MAX_QUALIFIER, empty=True),
        ],
        [f"{stamp:%y%m%d}", f"{stamp:%H%M}"],
        control_number,
    ]
    if partner.test:
        header += [""] * (maps.UNB_TEST_INDICATOR_ELEMENT - len(header)) + ["1"]
    message: list[list[Element]] = [["UNH", control_number, list(identifier)], *body]
    message.append(["UNT", str(len(message) + 1), control_number])
    segments = [header, *message, ["UNZ", "1", control_number]]
    serializer = Serializer(Characters.from_str(maps.SERVICE_CHARACTERS))
    return serializer.serialize(
        [WireSegment(str(s[0]), *_trimmed(s[1:])) for s in segments], with_una_header=True
    )


def _trimmed(elements: Sequence[Element]) -> list[Element]:
    """Without trailing empty data elements and components (ISO 9735 omits them)."""
    kept: list[Element] = []
    for element in elements:
        if isinstance(element, list):
            components = list(element)
            while components and not components[-1]:
                components.pop()
            kept.append(components if len(components) > 1 else (components[0] if components else ""))
        else:
            kept.append(element)
    while kept and kept[-1] == "":
        kept.pop()
    return kept


def _value(text: str, name: str, max_length: int, *, empty: bool = False) -> str:
    """A value as it can go in a data element: the serializer releases service characters; a control
    character or a value longer than the element's an..n cannot be sent."""
    if (not text and not empty) or len(text) > max_length:
        raise ValueError(f"{name} {text!r} must have 1 to {max_length} characters to fit its EDIFACT element")
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text):
        raise ValueError(f"{name} {text!r} holds a control character, which EDIFACT text cannot carry")
    return text


def _number(value: Decimal, name: str) -> str:
    if not value.is_finite() or value < 0:
        raise ValueError(f"{name} {value} is not a non-negative number")
    text = f"{abs(value) if value == 0 else value:f}"
    if sum(c.isdigit() for c in text) > maps.MAX_NUMBER_DIGITS:
        raise ValueError(f"{name} {value} has more than {maps.MAX_NUMBER_DIGITS} digits")
    return text


def _calendar_date(day: date) -> str:
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"
