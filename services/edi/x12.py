"""ANSI X12 codec of the supplier EDI adapter: 855, 856 and 861 interchanges parsed into the neutral
documents of documents.py; our 850 purchase orders and 997/999/TA1 acknowledgements rendered. Pure;
which segments and elements are read, their rules and the code lists are data in x12_maps.py.

Syntax. The separators come from the ISA: the element separator is its 4th character, the component
separator ISA16 and the segment terminator the character after ISA16; CR/LF after a terminator and
blank lines are tolerated. The ISA is 106 characters of fixed-width fields. Element values are read
with surrounding spaces removed. Positions: segments are counted from ISA = 1 in the whole interchange
(EdiError.position) and from ST = 1 inside a transaction set (AK302); elements from 1.

`parse` is all-or-nothing: the first fault raises X12Error (an EdiError) and no Interchange is made.
X12Error.fault says what the acknowledgement must name: the TA105 note code of an envelope fault, the
AK905 code of a functional group fault, or the set's AK502 code with the segment (AK3: id, position in
the set, loop, AK304 code) and element (AK4: position, reference number, AK403 code, copy of the bad
value). EdiError.header carries the ISA as far as read and every functional group and set found in the
text, so that a rejection can answer all of them.

Mapping to the neutral documents:
- our SKU is the buyer's part number (qualifier BP, what our 850 sends), else the SKU qualifier SK, in
  PO1, LIN and RCD/LIN product id pairs; a line naming neither is refused.
- 855: BAK03 is our po_id, BAK08 (seller's order number) the document_id, else ST02. Each PO1 is one
  ConfirmedLine. Its ACKs: accepted statuses (x12_maps.ACK_STATUS) add up their ACK02 (or PO102 when
  the PO1 has a single ACK without a quantity), at the latest of their dates; only rejected ACKs ->
  confirmed_quantity 0; only holds -> no line (nothing is confirmed yet). A PO1 without ACK is
  confirmed as ordered, or rejected when BAK02 is a rejection. A date is the ACK04/ACK05 date, else a
  DTM of the PO1 loop, else a header DTM (delivery qualifiers preferred over ship ones); an accepted
  line with none is refused; a rejected one falls back on BAK09 (acknowledgment date), else BAK04. An
  855 without PO1 lines (e.g. BAK02 AK "no detail") is refused: it does not say which SKU it confirms.
- 856: BSN02 is the asn_id; the expected date is the shipment level's DTM 017, else DTM 011, else
  BSN03. PRF01 of each order (O) level is the PO of every item (I) below it, through packs (P) and
  tares (T); each item needs one LIN and one SN1; the same (PO, SKU) twice is summed.
- 861: BRA01 is the receipt_id; DTM 050 (date, time, DTM04 zone) is received_at in UTC, else BRA02
  (with BRA05 when given) at UTC. Each RCD loop is a line of RCD02 units with its own PRF, else the
  header PRF, else no PO. Rejected/returned units (RCD04) are not received: a loop with RCD02 0 and
  a positive RCD04 adds no line.
Transaction set purpose 01 (cancellation) is refused as an invalid code: no contract event withdraws
an acknowledgement, notice or receipt.

Acknowledgements: an accepted interchange gets a 997 (or a 999 for 00501 partners) with AK1/AK9 per
functional group and AK2/AK5 per set, all A. A rejected one that got past the ISA and its GS segments
gets the same with R everywhere (all-or-nothing): the set at fault carries AK3/AK4 (IK3/IK4) and its
AK502 code (5 "one or more segments in error" for a segment fault; 1, 2, 3, 4, 6, 7, 23 for set
faults); the other sets get AK5*R without a code, because every X12 set syntax code would claim a
fault of their own; a group fault (GE) gives its AK905 code. Faults of the ISA/IEA envelope, an
unreadable GS, a truncated file or content outside the group structure get a TA1 with TA104 R and the
TA105 note code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from itertools import pairwise
from typing import Literal, TypeAlias, Unpack

from services.edi import x12_maps as maps
from services.edi.documents import (
    ConfirmedLine,
    Document,
    EdiError,
    Envelope,
    FunctionalGroup,
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

FaultLevel: TypeAlias = Literal["interchange", "group", "set"]


@dataclass(frozen=True, slots=True)
class Fault:
    """What the acknowledgement of a rejected interchange names, beyond the EdiError's segment, position
    and element."""

    level: FaultLevel  # interchange: TA1; group: AK9; set: AK2..AK5
    code: str = ""  # TA105 / AK905 / AK502 code; "" when no code applies
    group_control_number: str = ""  # GS06 of the group at fault
    set_position: int = 0  # AK302: the segment's position in its set, ST = 1
    loop: str = ""  # AK303
    segment_fault: maps.SegmentFault | None = None  # AK304
    element_fault: maps.ElementFault | None = None  # AK403
    element_reference: str = ""  # AK402
    bad_value: str = ""  # AK404
    declared_sets: int | None = None  # GE01 when it disagrees with the count (AK902)


class X12Error(EdiError):
    """A malformed X12 interchange; `fault` is how its acknowledgement names the fault, and
    `interchange_date`/`interchange_time` are ISA09/ISA10 as sent (the TA1 echoes them)."""

    def __init__(self, reason: str, *, fault: Fault, **where: Unpack[Where]) -> None:
        super().__init__(reason, **where)
        self.fault = fault
        self.interchange_date = ""
        self.interchange_time = ""


# --- syntax ---------------------------------------------------------------------------------------------

_TAG = re.compile(r"[A-Z][A-Z0-9]{1,2}")
_DIGITS = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_ALNUM = re.compile(r"[A-Za-z0-9]+")


@dataclass(frozen=True, slots=True)
class _Separators:
    element: str
    component: str
    terminator: str
    repetition: str = ""  # ISA11 from 00402 on

    def reserved(self) -> str:
        return self.element + self.component + self.terminator + self.repetition + "\r\n"


@dataclass(frozen=True, slots=True)
class _Segment:
    tag: str
    elements: tuple[str, ...]
    position: int  # in the interchange, ISA = 1

    def value(self, position: int) -> str:
        return self.elements[position - 1] if 0 < position <= len(self.elements) else ""


@dataclass(frozen=True, slots=True)
class _Isa:
    fields: tuple[str, ...]  # ISA01..ISA16 as sent (fixed width)
    separators: _Separators
    length: int

    def field(self, position: int) -> str:
        return self.fields[position - 1].strip() if position <= len(self.fields) else ""

    def envelope(self, groups: tuple[FunctionalGroup, ...] = ()) -> Envelope:
        return Envelope(
            standard="x12",
            sender_id=self.field(6),
            receiver_id=self.field(8),
            control_number=self.field(13),
            sender_qualifier=self.field(5),
            receiver_qualifier=self.field(7),
            groups=groups,
            version=self.field(12),
        )


def _text(raw: bytes | str) -> str:
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")  # every byte is a character: the positions stay true
    else:
        text = raw
    return text.lstrip("\ufeff \t\r\n")


def _isa_error(reason: str, code: str, isa_fields: Sequence[str], *, element: int = 0) -> X12Error:
    partial = _Isa(tuple(isa_fields), _Separators("*", ">", "~"), 0)
    error = X12Error(
        reason,
        fault=Fault("interchange", code),
        segment="ISA",
        position=1,
        element=element,
        header=partial.envelope(),
    )
    error.interchange_date, error.interchange_time = partial.field(9), partial.field(10)
    return error


def _read_isa(text: str) -> _Isa:
    """The ISA's fields and separators; its fixed layout and the values of its fields checked."""
    if not text.startswith("ISA"):
        raise _isa_error(
            f"an X12 interchange starts with ISA, this one with {text[:3]!r}", maps.TA1_CONTROL_STRUCTURE, ()
        )
    element = text[3:4]
    if not element or element.isalnum() or element.isspace():
        raise _isa_error(
            f"{element!r} (the character after ISA) cannot be the element separator",
            maps.TA1_ELEMENT_SEPARATOR,
            (),
        )
    cuts = [3]
    while len(cuts) < 16:
        cut = text.find(element, cuts[-1] + 1)
        if cut < 0:
            break
        cuts.append(cut)
    fields = [text[a + 1 : b] for a, b in pairwise(cuts)]
    if len(cuts) < 16 or cuts[-1] + 2 >= len(text):
        reason = (
            f"the ISA is incomplete: the text ends after {len(cuts)} of its 16 element separators"
            if len(cuts) < 16
            else "the ISA is incomplete: the text ends before ISA16 and the segment terminator"
        )
        short = len(text) < maps.ISA_LENGTH
        raise _isa_error(reason, maps.TA1_END_OF_FILE if short else maps.TA1_CONTROL_STRUCTURE, fields)
    fields.append(text[cuts[-1] + 1])
    length = cuts[-1] + 3
    for spec in maps.ISA_FIELDS:
        actual = len(fields[spec.position - 1])
        if actual != spec.width:
            whole = (
                f"the ISA is {length} characters long, its fixed layout has {maps.ISA_LENGTH}: "
                if length != maps.ISA_LENGTH
                else ""
            )
            raise _isa_error(
                f"{whole}{spec.name} has {actual} characters, its fixed width is {spec.width}",
                spec.note_code,
                fields,
                element=spec.position,
            )
    component, terminator = fields[15], text[length - 1]
    if component.isalnum() or component.isspace() or component == element:
        raise _isa_error(
            f"ISA16 {component!r} cannot be the component separator",
            maps.TA1_COMPONENT_SEPARATOR,
            fields,
            element=16,
        )
    if terminator.isalnum() or terminator in (" ", element, component):
        raise _isa_error(
            f"{terminator!r} (after ISA16) cannot be the segment terminator",
            maps.TA1_SEGMENT_TERMINATOR,
            fields,
        )
    version = fields[11]
    repetition = ""
    if _DIGITS.fullmatch(version) and version >= maps.FIRST_VERSION_WITH_REPETITION_SEPARATOR:
        repetition = fields[10]
        if repetition.isalnum() or repetition in (" ", element, component, terminator):
            raise _isa_error(
                f"ISA11 {repetition!r} cannot be the repetition separator", "016", fields, element=11
            )
    isa = _Isa(tuple(fields), _Separators(element, component, terminator, repetition), length)
    _check_isa_values(isa, fields)
    return isa


def _check_isa_values(isa: _Isa, fields: Sequence[str]) -> None:
    def refuse(position: int, reason: str, code: str = "") -> X12Error:
        spec = maps.ISA_FIELDS[position - 1]
        return _isa_error(f"{spec.name}: {reason}", code or spec.note_code, fields, element=position)

    if isa.field(1) not in maps.ISA_AUTHORIZATION_QUALIFIERS:
        raise refuse(1, f"{isa.field(1)!r} is not an authorization information qualifier")
    if isa.field(3) not in maps.ISA_SECURITY_QUALIFIERS:
        raise refuse(3, f"{isa.field(3)!r} is not a security information qualifier")
    for position in (5, 7):
        if not _ALNUM.fullmatch(fields[position - 1]):
            raise refuse(position, f"{fields[position - 1]!r} is not an interchange id qualifier")
    for position in (6, 8):
        if not isa.field(position):
            raise refuse(position, "the id is blank")
    if _yymmdd(fields[8]) is None:
        raise refuse(9, f"{fields[8]!r} is not a date")
    if _clock(fields[9]) is None or len(fields[9]) != 4:
        raise refuse(10, f"{fields[9]!r} is not a time")
    version = fields[11]
    if not _DIGITS.fullmatch(version):
        raise refuse(12, f"{version!r} is not a version number")
    if not version.startswith(maps.SUPPORTED_VERSIONS):
        raise refuse(12, f"version {version} is not supported (004xx, 005xx)", maps.TA1_VERSION_NOT_SUPPORTED)
    if version < maps.FIRST_VERSION_WITH_REPETITION_SEPARATOR and fields[10] != "U":
        raise refuse(11, f"{fields[10]!r}: version {version} has the standards identifier U here")
    if not _DIGITS.fullmatch(fields[12]):
        raise refuse(13, f"{fields[12]!r} is not 9 digits")
    if fields[13] not in maps.ISA_ACKNOWLEDGMENT_REQUESTED:
        raise refuse(14, f"{fields[13]!r} is not 0 or 1")
    if fields[14] not in maps.ISA_USAGE:
        raise refuse(15, f"{fields[14]!r} is not P, T or I")


def _split(text: str, isa: _Isa) -> tuple[list[_Segment], str]:
    """The segments after the ISA (positions from 2) and whatever follows the last terminator."""
    separators = isa.separators
    parts = text[isa.length :].split(separators.terminator)
    trailing = parts.pop()
    segments: list[_Segment] = []
    for part in parts:
        part = part.lstrip("\r\n")
        if separators.terminator == "\n":
            part = part.rstrip("\r")
        if not part.strip():
            continue  # a blank line between segments is layout, not a segment
        tag, *values = part.split(separators.element)
        segments.append(_Segment(tag, tuple(v.strip(" ") for v in values), len(segments) + 2))
    return segments, trailing.strip()


def _groups_seen(segments: Sequence[_Segment]) -> tuple[FunctionalGroup, ...]:
    """Every functional group and set in the text that an acknowledgement can name (control numbers
    that are well formed), read leniently: what a rejected interchange's 997 answers."""
    groups: list[FunctionalGroup] = []
    current: FunctionalGroup | None = None
    sets: list[tuple[str, str]] = []

    def close() -> None:
        if current is not None:
            groups.append(replace(current, set_control_numbers=tuple(sets)))

    for segment in segments:
        if segment.tag == "GS":
            close()
            sets = []
            current = None
            fid, number, version = segment.value(1), segment.value(6), segment.value(8)
            if _ALNUM.fullmatch(fid) and _DIGITS.fullmatch(number) and len(number) <= 9:
                current = FunctionalGroup(fid, number, version if _ALNUM.fullmatch(version) else "", ())
        elif segment.tag == "ST" and current is not None:
            kind, number = segment.value(1), segment.value(2)
            if _ALNUM.fullmatch(kind) and _ALNUM.fullmatch(number) and len(number) <= 9:
                sets.append((kind, number))
        elif segment.tag in ("GE", "IEA"):
            close()
            current = None
            if segment.tag == "IEA":
                break
    close()
    return tuple(groups)


# --- element values ---------------------------------------------------------------------------------


def _yymmdd(value: str) -> date | None:
    if len(value) != 6 or not _DIGITS.fullmatch(value):
        return None
    return _day(2000 + int(value[:2]), int(value[2:4]), int(value[4:6]))  # ISA09: 21st century


def _ccyymmdd(value: str) -> date | None:
    if len(value) != 8 or not _DIGITS.fullmatch(value):
        return None
    return _day(int(value[:4]), int(value[4:6]), int(value[6:8]))


def _day(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _clock(value: str) -> time | None:
    """HHMM, HHMMSS or HHMMSS with decimal seconds (dropped)."""
    if len(value) not in (4, 6, 7, 8) or not _DIGITS.fullmatch(value):
        return None
    hour, minute, second = int(value[:2]), int(value[2:4]), int(value[4:6] or 0)
    if hour > 23 or minute > 59 or second > 59:
        return None
    return time(hour, minute, second)


@dataclass(frozen=True, slots=True)
class _Problem:
    element: int
    fault: maps.ElementFault
    reason: str
    rule: maps.ElementRule | None = None
    value: str = ""


def _value_problem(value: str, rule: maps.ElementRule) -> tuple[maps.ElementFault, str] | None:
    if rule.kind == "DT":
        return None if _ccyymmdd(value) else ("invalid_date", "not a date (CCYYMMDD)")
    if rule.kind == "TM":
        return None if _clock(value) else ("invalid_time", "not a time (HHMM[SS])")
    if rule.kind == "N0" and not _DIGITS.fullmatch(value):
        return "invalid_character", "not a whole number"
    if rule.kind == "R" and not _DECIMAL.fullmatch(value):
        return "invalid_character", "not a number"
    size = sum(c.isdigit() for c in value) if rule.kind in ("N0", "R") else len(value)
    if size < rule.min_length:
        return "too_short", f"shorter than {rule.min_length}"
    if size > rule.max_length:
        return "too_long", f"longer than {rule.max_length}"
    if rule.codes and value not in rule.codes:
        listed = ", ".join(sorted(rule.codes)[:12]) + (", ..." if len(rule.codes) > 12 else "")
        return "invalid_code", f"not an accepted code ({listed})"
    return None


def _element_problem(segment: _Segment, rule: maps.SegmentRule) -> _Problem | None:
    """The first element of `segment` that breaks `rule`, or None."""
    if len(segment.elements) > rule.max_elements:
        return _Problem(
            rule.max_elements + 1,
            "too_many",
            f"{segment.tag} has {len(segment.elements)} elements, at most {rule.max_elements}",
        )
    for element in rule.elements:
        value = segment.value(element.position)
        if not value:
            if element.required:
                return _Problem(element.position, "missing", f"{element.name} is required", element)
            continue
        problem = _value_problem(value, element)
        if problem is not None:
            return _Problem(
                element.position, problem[0], f"{element.name} {value!r} is {problem[1]}", element, value
            )
    for first, second in rule.pairs:
        if bool(segment.value(first)) != bool(segment.value(second)):
            given, missing = (first, second) if segment.value(first) else (second, first)
            missing_rule = rule.rule(missing)
            return _Problem(
                missing,
                "conditional_missing",
                f"{_name(segment.tag, missing, rule)} is required with {_name(segment.tag, given, rule)}",
                missing_rule,
            )
    return None


def _name(tag: str, position: int, rule: maps.SegmentRule) -> str:
    element = rule.rule(position)
    return element.name if element else f"{tag}{position:02d}"


# --- envelope walk ----------------------------------------------------------------------------------


def parse(raw: bytes | str) -> Interchange:
    """The interchange in `raw`, or X12Error naming the first fault (see the module docstring)."""
    text = _text(raw)
    isa = _read_isa(text)
    segments, trailing = _split(text, isa)
    try:
        return _Reader(isa, segments, trailing).interchange()
    except X12Error as error:
        error.header = isa.envelope(_groups_seen(segments))
        error.interchange_date, error.interchange_time = isa.field(9), isa.field(10)
        raise


class _Reader:
    def __init__(self, isa: _Isa, segments: Sequence[_Segment], trailing: str) -> None:
        self._isa, self._segments, self._trailing = isa, segments, trailing
        self._next_index = 0

    def _next(self, expecting: str, inside: str) -> _Segment:
        if self._next_index < len(self._segments):
            segment = self._segments[self._next_index]
            self._next_index += 1
            return segment
        unterminated = (
            f"; its last text {self._trailing[:30]!r} has no segment terminator "
            f"{self._isa.separators.terminator!r}"
            if self._trailing
            else ""
        )
        raise X12Error(
            f"the interchange ends {inside} without {expecting}: the file is truncated{unterminated}",
            fault=Fault("interchange", maps.TA1_END_OF_FILE),
            segment="IEA",
            position=len(self._segments) + 2,
        )

    def interchange(self) -> Interchange:
        isa = self._isa
        groups: list[FunctionalGroup] = []
        messages: list[Message] = []
        while True:
            segment = self._next("IEA", "after its last functional group")
            if segment.tag == "IEA":
                break
            if segment.tag != "GS":
                raise _envelope_error(f"{segment.tag} where a GS or IEA belongs", segment)
            group, group_messages = self._group(segment, {g.control_number for g in groups})
            groups.append(group)
            messages.extend(group_messages)
        self._check_trailer(segment, len(groups))
        prepared = datetime.combine(_must(_yymmdd(isa.fields[8])), _clock(isa.fields[9]) or time(), UTC)
        return Interchange(
            standard="x12",
            sender_id=isa.field(6),
            receiver_id=isa.field(8),
            control_number=isa.field(13),
            prepared_at=prepared,
            messages=tuple(messages),
            groups=tuple(groups),
        )

    def _check_trailer(self, iea: _Segment, group_count: int) -> None:
        problem = _element_problem(iea, maps.IEA)
        if problem is not None:
            code = maps.TA1_GROUP_COUNT if problem.element == 1 else maps.TA1_CONTROL_NUMBER_MISMATCH
            raise _envelope_error(problem.reason, iea, element=problem.element, code=code)
        if iea.value(2) != self._isa.field(13):
            raise _envelope_error(
                f"IEA02 {iea.value(2)} does not match ISA13 {self._isa.field(13)}",
                iea,
                element=2,
                code=maps.TA1_CONTROL_NUMBER_MISMATCH,
            )
        if int(iea.value(1)) != group_count:
            raise _envelope_error(
                f"IEA01 says {int(iea.value(1))} functional groups, the interchange has {group_count}",
                iea,
                element=1,
                code=maps.TA1_GROUP_COUNT,
            )
        if self._next_index < len(self._segments):
            after = self._segments[self._next_index]
            raise _envelope_error(
                f"{after.tag} after IEA: one interchange per file", after, code=maps.TA1_CONTROL_STRUCTURE
            )
        if self._trailing:
            raise X12Error(
                f"text after IEA: {self._trailing[:30]!r}",
                fault=Fault("interchange", maps.TA1_CONTROL_STRUCTURE),
                segment="IEA",
                position=iea.position,
            )

    def _group(self, gs: _Segment, earlier: set[str]) -> tuple[FunctionalGroup, list[Message]]:
        problem = _element_problem(gs, maps.GS)
        if problem is not None:
            raise _envelope_error(f"unreadable GS: {problem.reason}", gs, element=problem.element)
        number, version = gs.value(6), gs.value(8)
        if number in earlier:
            raise _envelope_error(f"GS06 {number} is used by an earlier group too", gs, element=6)

        def group_error(
            reason: str, segment: _Segment, element: int, code: str, declared_sets: int | None = None
        ) -> X12Error:
            return X12Error(
                reason,
                fault=Fault("group", code, group_control_number=number, declared_sets=declared_sets),
                segment=segment.tag,
                position=segment.position,
                element=element,
            )

        if not version.startswith(maps.SUPPORTED_VERSIONS) or not _ALNUM.fullmatch(version):
            raise group_error(f"GS08 version {version!r} is not supported (004xxx, 005xxx)", gs, 8, "2")
        sets: list[tuple[str, str]] = []
        messages: list[Message] = []
        while True:
            segment = self._next("GE", f"inside functional group {number}")
            if segment.tag == "GE":
                break
            if segment.tag != "ST":
                raise _envelope_error(
                    f"{segment.tag} in functional group {number} outside any ST..SE", segment
                )
            message = self._set(segment, number, {n for _, n in sets})
            sets.append((message.kind, message.control_number))
            messages.append(message)
        problem = _element_problem(segment, maps.GE)
        if problem is not None:
            code = maps.GROUP_SET_COUNT if problem.element == 1 else maps.GROUP_CONTROL_NUMBER_MISMATCH
            raise group_error(problem.reason, segment, problem.element, code)
        if int(segment.value(2)) != int(number):
            raise group_error(
                f"GE02 {segment.value(2)} does not match GS06 {number}",
                segment,
                2,
                maps.GROUP_CONTROL_NUMBER_MISMATCH,
            )
        if int(segment.value(1)) != len(sets):
            raise group_error(
                f"GE01 says {int(segment.value(1))} transaction sets, group {number} has {len(sets)}",
                segment,
                1,
                maps.GROUP_SET_COUNT,
                int(segment.value(1)),
            )
        return FunctionalGroup(gs.value(1), number, version, tuple(sets)), messages

    def _set(self, st: _Segment, group: str, earlier: set[str]) -> Message:
        kind, number = st.value(1), st.value(2)
        scope = _Scope(kind, number, group, st.position)
        problem = _element_problem(st, maps.ST)
        if problem is not None:
            code = maps.SET_IDENTIFIER_INVALID if problem.element == 1 else maps.SET_CONTROL_NUMBER_INVALID
            raise scope.set_error(problem.reason, code, st, problem.element)
        if not _ALNUM.fullmatch(number):
            raise scope.set_error(
                f"ST02 {number!r} must be letters and digits", maps.SET_CONTROL_NUMBER_INVALID, st, 2
            )
        if number in earlier:
            raise scope.set_error(
                f"ST02 {number} is used by an earlier set of group {group}",
                maps.SET_CONTROL_NUMBER_NOT_UNIQUE,
                st,
                2,
            )
        set_map = maps.SETS.get(kind)
        if set_map is None:
            raise scope.set_error(
                f"ST01 {kind}: transaction set {kind} is not one we receive ({', '.join(maps.SETS)})",
                maps.SET_NOT_SUPPORTED,
                st,
                1,
            )
        body: list[_Segment] = []
        while True:
            segment = self._next("SE", f"inside transaction set {kind} {number}")
            if segment.tag == "SE":
                break
            if segment.tag in maps.ENVELOPE_TAGS:
                raise scope.set_error(
                    f"transaction set {kind} {number} has no SE: "
                    f"{segment.tag} at #{segment.position} comes first",
                    maps.SET_TRAILER_MISSING,
                    segment,
                    tag="SE",
                )
            body.append(segment)
        problem = _element_problem(segment, maps.SE)
        if problem is not None:
            code = maps.SET_SEGMENT_COUNT if problem.element == 1 else maps.SET_CONTROL_NUMBER_MISMATCH
            raise scope.set_error(problem.reason, code, segment, problem.element)
        if int(segment.value(1)) != len(body) + 2:
            raise scope.set_error(
                f"SE01 says {int(segment.value(1))} segments, transaction set {kind} {number} has "
                f"{len(body) + 2} (ST through SE)",
                maps.SET_SEGMENT_COUNT,
                segment,
                1,
            )
        if segment.value(2) != number:
            raise scope.set_error(
                f"SE02 {segment.value(2)} does not match ST02 {number}",
                maps.SET_CONTROL_NUMBER_MISMATCH,
                segment,
                2,
            )
        scope.bind(set_map, segment.position)
        document = _READERS[kind](scope, body)
        return Message(control_number=number, kind=kind, document=document, group_control_number=group)


def _envelope_error(
    reason: str, segment: _Segment, *, element: int = 0, code: str = maps.TA1_CONTENT
) -> X12Error:
    return X12Error(
        reason,
        fault=Fault("interchange", code),
        segment=segment.tag,
        position=segment.position,
        element=element,
    )


# --- transaction sets -------------------------------------------------------------------------------


class _Scope:
    """One transaction set being read: validates its segments against the set's map, tracks the loop
    (AK303), and makes the errors that name the set."""

    def __init__(self, kind: str, control_number: str, group: str, st_position: int) -> None:
        self.kind, self.control_number, self.group, self.st_position = (
            kind,
            control_number,
            group,
            st_position,
        )
        self.set_map: maps.SetMap | None = None
        self.se_position = 0
        self.loop = ""

    def bind(self, set_map: maps.SetMap, se_position: int) -> None:
        self.set_map, self.se_position = set_map, se_position

    @property
    def map(self) -> maps.SetMap:
        assert self.set_map is not None  # bound before any body segment is read
        return self.set_map

    def set_error(
        self, reason: str, code: str, segment: _Segment, element: int = 0, *, tag: str = ""
    ) -> X12Error:
        """A fault of the set as a whole (AK502 code, no AK3); `tag` names a segment that is missing
        where `segment` was found instead."""
        return X12Error(
            reason,
            fault=Fault("set", code, group_control_number=self.group),
            segment=tag or segment.tag,
            position=segment.position,
            element=element,
            message_control_number=self.control_number,
            message_kind=self.kind,
        )

    def segment_error(
        self,
        reason: str,
        tag: str,
        position: int,
        fault: maps.SegmentFault,
        problem: _Problem | None = None,
    ) -> X12Error:
        return X12Error(
            f"{self.kind} {self.control_number}: {reason}",
            fault=Fault(
                "set",
                maps.SET_SEGMENTS_IN_ERROR,
                group_control_number=self.group,
                set_position=position - self.st_position + 1,
                loop=self.loop,
                segment_fault=fault,
                element_fault=problem.fault if problem else None,
                element_reference=problem.rule.reference if problem and problem.rule else "",
                bad_value=problem.value if problem else "",
            ),
            segment=tag,
            position=position,
            element=problem.element if problem else 0,
            message_control_number=self.control_number,
            message_kind=self.kind,
        )

    def element_error(
        self, segment: _Segment, element: int, fault: maps.ElementFault, reason: str
    ) -> X12Error:
        rule = self.map.rules[segment.tag].rule(element)
        problem = _Problem(element, fault, reason, rule, segment.value(element))
        return self.segment_error(reason, segment.tag, segment.position, "element_errors", problem)

    def missing(self, tag: str, position: int, reason: str) -> X12Error:
        return self.segment_error(reason, tag, position, "missing")

    def misplaced(self, segment: _Segment, reason: str, fault: maps.SegmentFault = "sequence") -> X12Error:
        return self.segment_error(reason, segment.tag, segment.position, fault)

    def check(self, segment: _Segment) -> None:
        """The segment belongs to the set and its elements follow their rules."""
        rule = self.map.rules.get(segment.tag)
        opened = rule.loop if rule else maps.TOLERATED_LOOPS.get(segment.tag, "")
        if segment.tag == "CTT":
            self.loop = ""
        elif opened:
            self.loop = opened
        if not _TAG.fullmatch(segment.tag):
            raise self.misplaced(segment, f"{segment.tag!r} is not a segment id", "unrecognized")
        if rule is None:
            if segment.tag in self.map.tolerated:
                return
            raise self.misplaced(
                segment, f"{segment.tag} is not a segment of the {self.kind} {self.map.name}", "not_in_set"
            )
        problem = _element_problem(segment, rule)
        if problem is not None:
            raise self.segment_error(problem.reason, segment.tag, segment.position, "element_errors", problem)

    def beginning(self, body: Sequence[_Segment]) -> _Segment:
        tag = self.map.beginning
        first = body[0] if body else None
        if first is None or first.tag != tag:
            found = f"found {first.tag}" if first else "the set is empty"
            raise self.missing(
                tag, first.position if first else self.se_position, f"{tag} must follow ST; {found}"
            )
        self.check(first)
        return first

    def units(self, segment: _Segment, element: int, *, allow_zero: bool = False) -> int:
        """A quantity element as whole units: positive (or 0 where allowed), at most the contracts' bound."""
        amount = Decimal(segment.value(element))
        name = _name(segment.tag, element, self.map.rules[segment.tag])
        if amount != amount.to_integral_value():
            raise self.element_error(
                segment, element, "value", f"{name} {amount} is not a whole number of units"
            )
        if amount < 0 or (amount == 0 and not allow_zero):
            raise self.element_error(segment, element, "value", f"{name} {amount} must be positive")
        if amount > maps.MAX_QUANTITY:
            raise self.element_error(
                segment, element, "value", f"{name} {amount} is more than {maps.MAX_QUANTITY}"
            )
        return int(amount)

    def sku(self, segment: _Segment, first_pair: int) -> str:
        """Our SKU among the segment's product id pairs (x12_maps.SKU_QUALIFIERS)."""
        named: dict[str, str] = {}
        for qualifier_at in range(first_pair, len(segment.elements) + 1, 2):
            qualifier, value = segment.value(qualifier_at), segment.value(qualifier_at + 1)
            if qualifier and value:
                named.setdefault(qualifier, value)
        for qualifier in maps.SKU_QUALIFIERS:
            if qualifier in named:
                return named[qualifier]
        given = ", ".join(f"{q} {v}" for q, v in named.items()) or "no product id"
        fault: maps.ElementFault = "invalid_code" if named else "conditional_missing"
        reason = f"{segment.tag} names no buyer's part number (BP) or SKU (SK): {given}"
        raise self.element_error(segment, first_pair, fault, reason)

    def date_of(self, dtm: _Segment) -> date:
        """DTM02 of a DTM whose qualifier we read (DTM02 is conditional in the standard)."""
        if not dtm.value(2):
            raise self.element_error(
                dtm, 2, "conditional_missing", f"DTM02 is required with DTM01 {dtm.value(1)}"
            )
        return _must(_ccyymmdd(dtm.value(2)))


def _must(value: date | None) -> date:
    assert value is not None  # validated by the element rules before
    return value


def _preferred(qualifiers: Sequence[str], *dated: Mapping[str, date]) -> date | None:
    """The date of the most preferred qualifier, looking in each mapping in turn."""
    for dates in dated:
        for qualifier in qualifiers:
            if qualifier in dates:
                return dates[qualifier]
    return None


@dataclass(slots=True)
class _PoLine:
    po1: _Segment
    sku: str
    ordered: int
    acks: list[_Segment] = field(default_factory=list)
    dates: dict[str, date] = field(default_factory=dict)


def _read_855(scope: _Scope, body: Sequence[_Segment]) -> PoAcknowledgement:
    bak = scope.beginning(body)
    header_dates: dict[str, date] = {}
    lines: list[_PoLine] = []
    summary = False
    for segment in body[1:]:
        scope.check(segment)
        tag = segment.tag
        if tag == "BAK":
            raise scope.misplaced(segment, "a second BAK", "max_use")
        if summary and tag in ("PO1", "ACK"):
            raise scope.misplaced(segment, f"{tag} after CTT")
        if tag == "PO1":
            lines.append(_PoLine(segment, scope.sku(segment, 6), scope.units(segment, 2)))
        elif tag == "ACK":
            if not lines:
                raise scope.misplaced(segment, "ACK before any PO1")
            lines[-1].acks.append(segment)
        elif tag == "DTM" and segment.value(1) in maps.ACK_DATE_QUALIFIERS:
            dates = lines[-1].dates if lines else header_dates
            dates.setdefault(segment.value(1), scope.date_of(segment))
        elif tag == "CTT":
            summary = True
    if not lines:
        raise scope.missing(
            "PO1", scope.se_position, "an 855 without PO1 lines does not say which SKU it confirms"
        )
    rejecting = bak.value(2) in maps.REJECTING_ACKNOWLEDGEMENT_TYPES
    acknowledged_on = _must(_ccyymmdd(bak.value(9) or bak.value(4)))
    confirmed = (
        _confirmed(scope, line, bak.value(3), rejecting, header_dates, acknowledged_on) for line in lines
    )
    return PoAcknowledgement(
        document_id=bak.value(8) or scope.control_number,
        lines=tuple(line for line in confirmed if line is not None),
    )


def _confirmed(
    scope: _Scope,
    line: _PoLine,
    po_id: str,
    rejecting: bool,
    header_dates: Mapping[str, date],
    acknowledged_on: date,
) -> ConfirmedLine | None:
    """One PO1 loop as a confirmed line (see the module docstring); None when all its ACKs are holds."""
    stated = _preferred(maps.ACK_DATE_QUALIFIERS, line.dates, header_dates)
    if not line.acks:
        if rejecting:
            return ConfirmedLine(po_id, line.sku, 0, stated or acknowledged_on)
        if stated is None:
            raise scope.missing(
                "DTM",
                line.po1.position,
                f"PO1 #{line.po1.position} ({line.sku}) has no ACK date and no DTM date",
            )
        return ConfirmedLine(po_id, line.sku, line.ordered, stated)
    accepted_quantity = 0
    accepted_dates: list[date] = []
    rejected_dates: list[date] = []
    rejected = False
    for ack in line.acks:
        status = maps.ACK_STATUS[ack.value(1)]
        day = _ccyymmdd(ack.value(5))
        if status == "held":
            continue
        if status == "rejected":
            rejected = True
            if day is not None:
                rejected_dates.append(day)
            continue
        if ack.value(2):
            accepted_quantity += scope.units(ack, 2)
        elif len(line.acks) == 1:
            accepted_quantity += line.ordered
        else:
            raise scope.element_error(
                ack,
                2,
                "conditional_missing",
                f"ACK02 is required when PO1 #{line.po1.position} has several ACKs",
            )
        if day is None and stated is None:
            raise scope.element_error(
                ack,
                5,
                "conditional_missing",
                f"ACK {ack.value(1)} of {line.sku} has no date (ACK04/ACK05) "
                "and no DTM in its PO1 loop or the header",
            )
        accepted_dates.append(day or _must(stated))
    if accepted_dates:
        return ConfirmedLine(po_id, line.sku, accepted_quantity, max(accepted_dates))
    if rejected:
        return ConfirmedLine(po_id, line.sku, 0, max(rejected_dates, default=stated or acknowledged_on))
    return None


@dataclass(slots=True)
class _Level:
    level: str
    order: str | None  # HL01 of the order level at or above it
    segment: _Segment
    po_id: str | None = None  # PRF01, order levels only


@dataclass(slots=True)
class _Item:
    hl: _Segment
    order: str
    lin: _Segment | None = None
    sn1: _Segment | None = None


def _read_856(scope: _Scope, body: Sequence[_Segment]) -> ShipNotice:
    bsn = scope.beginning(body)
    levels: dict[str, _Level] = {}
    current: _Level | None = None
    item: _Item | None = None
    shipment_dates: dict[str, date] = {}
    shipped: dict[tuple[str, str], int] = {}
    summary = False

    def ship(item: _Item | None) -> None:
        if item is None:
            return
        for tag, segment in (("LIN", item.lin), ("SN1", item.sn1)):
            if segment is None:
                raise scope.missing(tag, item.hl.position, f"item level HL {item.hl.value(1)} has no {tag}")
        assert item.lin is not None and item.sn1 is not None
        order = levels[item.order]
        if order.po_id is None:
            raise scope.missing(
                "PRF", order.segment.position, f"order level HL {order.segment.value(1)} has no PRF"
            )
        key = (order.po_id, scope.sku(item.lin, 2))
        shipped[key] = shipped.get(key, 0) + scope.units(item.sn1, 2)

    for segment in body[1:]:
        scope.check(segment)
        tag = segment.tag
        if tag == "BSN":
            raise scope.misplaced(segment, "a second BSN", "max_use")
        if summary and tag in ("HL", "PRF", "LIN", "SN1"):
            raise scope.misplaced(segment, f"{tag} after CTT")
        if tag == "HL":
            ship(item)
            current = _level(scope, segment, levels)
            item = _Item(segment, current.order) if current.level == maps.ITEM and current.order else None
        elif tag == "PRF":
            if current is None or current.level != maps.ORDER:
                raise scope.misplaced(segment, "PRF belongs to an order (O) level")
            if current.po_id is not None:
                raise scope.misplaced(segment, "a second PRF in one order level", "max_use")
            current.po_id = segment.value(1)
        elif tag in ("LIN", "SN1"):
            if item is None:
                raise scope.misplaced(segment, f"{tag} belongs to an item (I) level")
            if (item.lin if tag == "LIN" else item.sn1) is not None:
                raise scope.misplaced(segment, f"a second {tag} in one item level", "max_use")
            if tag == "LIN":
                item.lin = segment
            else:
                item.sn1 = segment
        elif tag == "DTM" and current is not None and current.level == maps.SHIPMENT:
            if segment.value(1) in maps.SHIPMENT_DATE_QUALIFIERS:
                shipment_dates.setdefault(segment.value(1), scope.date_of(segment))
        elif tag == "CTT":
            ship(item)
            item, summary = None, True
    ship(item)
    if not any(level.level == maps.ITEM for level in levels.values()):
        raise scope.missing("HL", scope.se_position, "an 856 without item (I) levels ships nothing")
    expected = _preferred(maps.SHIPMENT_DATE_QUALIFIERS, shipment_dates) or _must(_ccyymmdd(bsn.value(3)))
    return ShipNotice(
        asn_id=bsn.value(2),
        expected_date=expected,
        lines=tuple(ShippedLine(po_id, sku, quantity) for (po_id, sku), quantity in shipped.items()),
    )


def _level(scope: _Scope, hl: _Segment, levels: dict[str, _Level]) -> _Level:
    """A new HL level, placed under its parent (x12_maps.HL_PARENTS)."""
    number, parent_number, level = hl.value(1), hl.value(2), hl.value(3)
    if number in levels:
        raise scope.element_error(hl, 1, "invalid_code", f"HL01 {number} is used by an earlier HL too")
    if parent_number and parent_number not in levels:
        raise scope.element_error(hl, 2, "invalid_code", f"HL02 {parent_number} names no earlier HL")
    parent = levels.get(parent_number)
    parent_level = parent.level if parent else ""
    if parent_level not in maps.HL_PARENTS[level]:
        where = f"under a {parent_level} level" if parent else "without a parent (HL02)"
        fault: maps.ElementFault = "invalid_code" if parent else "conditional_missing"
        raise scope.element_error(hl, 2, fault, f"HL {number}: a {level} level cannot be {where}")
    if level == maps.SHIPMENT and levels:
        raise scope.misplaced(hl, "one shipment (S) level per 856", "max_use")
    order = number if level == maps.ORDER else (parent.order if parent else None)
    if level == maps.ITEM and order is None:
        raise scope.misplaced(hl, f"item level HL {number} is not under an order (O) level")
    levels[number] = _Level(level, order, hl)
    return levels[number]


@dataclass(slots=True)
class _Receipt:
    rcd: _Segment
    prf: _Segment | None = None
    lin: _Segment | None = None


def _read_861(scope: _Scope, body: Sequence[_Segment]) -> ReceivingAdvice:
    bra = scope.beginning(body)
    header_prf: _Segment | None = None
    received: _Segment | None = None
    receipts: list[_Receipt] = []
    summary = False
    for segment in body[1:]:
        scope.check(segment)
        tag = segment.tag
        if tag == "BRA":
            raise scope.misplaced(segment, "a second BRA", "max_use")
        if summary and tag in ("RCD", "LIN", "PRF"):
            raise scope.misplaced(segment, f"{tag} after CTT")
        if tag == "RCD":
            receipts.append(_Receipt(segment))
        elif tag == "PRF":
            if (receipts[-1].prf if receipts else header_prf) is not None:
                raise scope.misplaced(segment, "a second PRF in one loop", "max_use")
            if receipts:
                receipts[-1].prf = segment
            else:
                header_prf = segment
        elif tag == "LIN":
            if not receipts:
                raise scope.misplaced(segment, "LIN belongs to an RCD loop")
            if receipts[-1].lin is not None:
                raise scope.misplaced(segment, "a second LIN in one RCD loop", "max_use")
            receipts[-1].lin = segment
        elif tag == "DTM" and not receipts and segment.value(1) == maps.RECEIVED_DATE_QUALIFIER:
            received = received or segment
        elif tag == "CTT":
            summary = True
    if not receipts:
        raise scope.missing("RCD", scope.se_position, "an 861 without RCD loops receives nothing")
    if received is not None:
        received_at = _moment(scope, received)
    else:
        received_at = datetime.combine(_must(_ccyymmdd(bra.value(2))), _clock(bra.value(5)) or time(), UTC)
    lines: list[ReceivedLine] = []
    for receipt in receipts:
        if receipt.lin is None:
            raise scope.missing("LIN", receipt.rcd.position, f"RCD #{receipt.rcd.position} has no LIN")
        sku = scope.sku(receipt.lin, 2)
        quantity = scope.units(receipt.rcd, 2, allow_zero=True)
        if quantity == 0:
            if not receipt.rcd.value(4) or scope.units(receipt.rcd, 4, allow_zero=True) == 0:
                raise scope.element_error(
                    receipt.rcd, 2, "value", "RCD02 0 units received and none returned or rejected (RCD04)"
                )
            continue  # all of it rejected: nothing came into stock
        prf = receipt.prf or header_prf
        lines.append(ReceivedLine(prf.value(1) if prf else None, sku, quantity))
    return ReceivingAdvice(receipt_id=bra.value(1), received_at=received_at, lines=tuple(lines))


def _moment(scope: _Scope, dtm: _Segment) -> datetime:
    """DTM date, time and time code as an aware UTC datetime."""
    day = scope.date_of(dtm)
    clock = _clock(dtm.value(3)) or time()
    code = dtm.value(4)
    if code and code not in maps.TIME_CODE_OFFSETS:
        raise scope.element_error(
            dtm,
            4,
            "invalid_code",
            f"DTM04 time code {code} has no fixed offset from UTC (send one of "
            f"{', '.join(maps.TIME_CODE_OFFSETS)})",
        )
    zone = timezone(timedelta(hours=maps.TIME_CODE_OFFSETS.get(code, 0)))
    return datetime.combine(day, clock, zone).astimezone(UTC)


_READERS: Mapping[str, Callable[[_Scope, Sequence[_Segment]], Document]] = {
    "855": _read_855,
    "856": _read_856,
    "861": _read_861,
}
assert set(_READERS) == set(maps.SETS)  # every set in the maps has its reader


# --- rendering ----------------------------------------------------------------------------------------

# What we send: element *, component >, repetition ^ (00402 on), segment ~ and a line feed.
_OUT = _Separators("*", ">", "~", "^")
_IMPLEMENTATION_999 = "005010X231A1"


@dataclass(frozen=True, slots=True)
class _Numbers:
    interchange: str  # ISA13/IEA02: 9 digits
    group: str  # GS06/GE02
    set: str  # ST02/SE02: at least 4 digits


def _numbers(control_number: str) -> _Numbers:
    if not _DIGITS.fullmatch(control_number) or len(control_number) > 9 or int(control_number) == 0:
        raise ValueError(f"control_number must be 1 to 9 digits and not 0 (ISA13), not {control_number!r}")
    number = int(control_number)
    return _Numbers(f"{number:09d}", str(number), f"{number:04d}")


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, not {moment.isoformat()}")
    return moment.astimezone(UTC)


def _unbroken(field_name: str, value: str) -> str:
    """Refuses (with the field's name) a value that would break the document it is put in."""
    reserved = next((c for c in value if c in _OUT.reserved()), None)
    if reserved is not None:
        raise ValueError(
            f"{field_name} {value!r} contains {reserved!r}, a separator of our X12 documents "
            "(element *, component >, repetition ^, segment ~, line breaks): it cannot be sent"
        )
    return value


def _value(field_name: str, value: str, max_length: int, *, min_length: int = 1) -> str:
    """A value of ours for an element: no separators, printable, within the element's lengths."""
    _unbroken(field_name, value)
    if not min_length <= len(value) <= max_length:
        raise ValueError(f"{field_name} {value!r} must have {min_length} to {max_length} characters")
    if not value.isprintable():
        raise ValueError(f"{field_name} {value!r} has control characters")
    return value


def _whole(field_name: str, value: int, max_digits: int) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or len(str(value)) > max_digits:
        raise ValueError(
            f"{field_name} must be a positive whole number of at most {max_digits} digits, not {value!r}"
        )
    return str(value)


def _check_partner(partner: Partner) -> None:
    if partner.standard != "x12":
        raise ValueError(f"partner {partner.supplier_id!r} trades {partner.standard}, not X12")
    _value("partner.our_id", partner.our_id, 15, min_length=2)  # GS02/GS03 hold 2 to 15 characters
    _value("partner.their_id", partner.their_id, 15, min_length=2)
    for name, qualifier in (
        ("partner.our_qualifier", partner.our_qualifier),
        ("partner.their_qualifier", partner.their_qualifier),
    ):
        if len(qualifier) != 2 or not _ALNUM.fullmatch(qualifier):
            raise ValueError(f"{name} must be 2 letters or digits (ISA05/ISA07), not {qualifier!r}")
    version = partner.x12_version
    if not (_DIGITS.fullmatch(version) and len(version) == 5 and version.startswith(maps.SUPPORTED_VERSIONS)):
        raise ValueError(f"partner.x12_version must be 004xx or 005xx (ISA12), not {version!r}")


class _Segments:
    """Segments of one transaction set or envelope, rendered with our separators."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, tag: str, *elements: str) -> None:
        values = list(elements)
        while values and not values[-1]:
            values.pop()  # trailing empty elements are left out, as X12 requires
        for position, value in enumerate(values, 1):
            _unbroken(f"{tag}{position:02d}", value)
        self.lines.append(_OUT.element.join((tag, *values)))


def _interchange(
    partner: Partner, numbers: _Numbers, stamp: datetime, functional_id: str, version: str, body: _Segments
) -> str:
    """ISA/GS around one transaction set (its ST..SE in `body`), with GE/IEA counts."""
    outer = _Segments()
    outer.lines.append(_isa(partner, numbers, stamp))
    outer.add(
        "GS",
        functional_id,
        partner.our_id,
        partner.their_id,
        stamp.strftime("%Y%m%d"),
        stamp.strftime("%H%M"),
        numbers.group,
        "X",
        version,
    )
    outer.lines.extend(body.lines)
    outer.add("GE", "1", numbers.group)
    outer.add("IEA", "1", numbers.interchange)
    return _joined(outer)


def _isa(partner: Partner, numbers: _Numbers, stamp: datetime) -> str:
    version = partner.x12_version
    fields = (
        "00",
        " " * 10,
        "00",
        " " * 10,
        partner.our_qualifier,
        partner.our_id.ljust(15),
        partner.their_qualifier,
        partner.their_id.ljust(15),
        stamp.strftime("%y%m%d"),
        stamp.strftime("%H%M"),
        _OUT.repetition if version >= maps.FIRST_VERSION_WITH_REPETITION_SEPARATOR else "U",
        version,
        numbers.interchange,
        "0",  # no TA1 requested: the 997/999 answers our documents
        "T" if partner.test else "P",
        _OUT.component,
    )
    isa = _OUT.element.join(("ISA", *fields))
    assert len(isa) + 1 == maps.ISA_LENGTH, isa  # the terminator makes 106
    return isa


def _joined(segments: _Segments) -> str:
    return "".join(line + _OUT.terminator + "\n" for line in segments.lines)


def _close(body: _Segments, set_number: str) -> None:
    body.add("SE", str(len(body.lines) + 1), set_number)


_BEG_PURPOSE = {"original": "00", "replace": "05", "cancel": "01"}


def render_purchase_order(
    po: PurchaseOrderDocument, partner: Partner, *, control_number: str, now: datetime
) -> Outgoing:
    """The X12 850 for `po`: BEG (00 original / 05 replace / 01 cancellation, SA stand-alone order,
    po_id, issued_on), REF*PP purchase order revision number, CUR*BY currency, DTM*002 requested
    delivery, one PO1 (quantity EA, unit price, BP = sku) and CTT (line count, quantity hash total)."""
    _check_partner(partner)
    if po.supplier_id != partner.supplier_id:
        raise ValueError(
            f"purchase order {po.po_id!r} is for supplier {po.supplier_id!r}, not {partner.supplier_id!r}"
        )
    numbers, stamp = _numbers(control_number), _utc(now)
    po_id = _value("po_id", po.po_id, 22)  # BEG03 (324)
    sku = _value("sku", po.sku, 48)  # PO107 (234)
    quantity = _whole("quantity", po.quantity, 15)
    revision = _whole("revision", po.revision, 30)
    price = "" if po.unit_cost is None else _price(po.unit_cost)
    body = _Segments()
    body.add("ST", "850", numbers.set)
    body.add("BEG", _BEG_PURPOSE[po.purpose], "SA", po_id, "", po.issued_on.strftime("%Y%m%d"))
    body.add("REF", "PP", revision)
    if po.currency is not None:
        if not re.fullmatch(r"[A-Z]{3}", po.currency):
            raise ValueError(f"currency must be an ISO 4217 code, not {po.currency!r}")
        body.add("CUR", "BY", po.currency)
    if po.requested_date is not None:
        body.add("DTM", "002", po.requested_date.strftime("%Y%m%d"))
    body.add("PO1", "1", quantity, "EA", price, "", "BP", sku)
    body.add("CTT", "1", quantity)
    _close(body, numbers.set)
    version = partner.x12_version + "0"
    text = _interchange(partner, numbers, stamp, maps.FUNCTIONAL_IDS["850"], version, body)
    return Outgoing(control_number=numbers.interchange, text=text, kinds=("850",))


def _price(amount: Decimal) -> str:
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"unit_cost must be a non-negative amount, not {amount}")
    text = f"{amount:f}"
    if sum(c.isdigit() for c in text) > 17:  # PO104 (212) holds 17 digits
        raise ValueError(f"unit_cost {text} has more than 17 digits")
    return text


# --- acknowledgements -------------------------------------------------------------------------------


def acknowledge(
    parsed: Interchange | EdiError, partner: Partner, *, control_number: str, now: datetime
) -> Outgoing:
    """The 997/999 (or TA1) answering `parsed` from us to the partner (see the module docstring)."""
    _check_partner(partner)
    numbers, stamp = _numbers(control_number), _utc(now)
    if isinstance(parsed, Interchange):
        return _functional_ack(parsed.groups, None, partner, numbers, stamp)
    fault = parsed.fault if isinstance(parsed, X12Error) else _fault_of(parsed)
    header = parsed.header
    if fault.level == "interchange" or header is None or not header.groups:
        return _ta1(parsed, fault, partner, numbers, stamp)
    return _functional_ack(header.groups, (parsed, fault), partner, numbers, stamp)


def _fault_of(error: EdiError) -> Fault:
    """The fault of an EdiError made outside this codec (the adapter's own refusals): a misaddressed
    ISA is the unknown receiver of TA105 009; a refused set is rejected without a syntax code."""
    if error.segment in ("ISA", "IEA", ""):
        if error.segment == "ISA" and error.element == 8:
            return Fault("interchange", maps.TA1_UNKNOWN_RECEIVER)
        if error.segment == "ISA" and 0 < error.element <= len(maps.ISA_FIELDS):
            return Fault("interchange", maps.ISA_FIELDS[error.element - 1].note_code)
        return Fault("interchange", maps.TA1_CONTENT)
    if error.segment in ("GS", "GE"):
        return Fault("group")
    return Fault("set")


def _ta1(error: EdiError, fault: Fault, partner: Partner, numbers: _Numbers, stamp: datetime) -> Outgoing:
    header = error.header
    theirs = header.control_number if header else ""
    sent_date = getattr(error, "interchange_date", "")
    sent_time = getattr(error, "interchange_time", "")
    segments = _Segments()
    segments.lines.append(_isa(partner, numbers, stamp))
    segments.add(
        "TA1",
        theirs if len(theirs) == 9 and _DIGITS.fullmatch(theirs) else "000000000",
        # TA102/TA103 echo ISA09/ISA10; when they cannot be read (or were not kept), our own time
        sent_date if _yymmdd(sent_date) else stamp.strftime("%y%m%d"),
        sent_time if len(sent_time) == 4 and _clock(sent_time) else stamp.strftime("%H%M"),
        "R",
        fault.code or maps.TA1_CONTENT,
    )
    segments.add("IEA", "0", numbers.interchange)
    return Outgoing(control_number=numbers.interchange, text=_joined(segments), kinds=("TA1",))


def _functional_ack(
    groups: Sequence[FunctionalGroup],
    rejection: tuple[EdiError, Fault] | None,
    partner: Partner,
    numbers: _Numbers,
    stamp: datetime,
) -> Outgoing:
    kind = "999" if partner.acknowledgement == "999" else "997"
    detail = "IK" if kind == "999" else "AK"  # the 999 names its segment, element and set results IK3/IK4/IK5
    body = _Segments()
    body.add("ST", kind, numbers.set, _IMPLEMENTATION_999 if kind == "999" else "")
    error, fault = rejection if rejection else (None, None)
    faulted_group = _faulted_group(groups, error, fault)
    status = "R" if rejection else "A"
    for group in groups:
        body.add("AK1", group.functional_id, group.control_number, group.version if kind == "999" else "")
        for set_kind, set_number in group.set_control_numbers:
            body.add("AK2", set_kind, set_number)
            at_fault = (
                error is not None
                and fault is not None
                and fault.level == "set"
                and group is faulted_group
                and (set_kind, set_number) == (error.message_kind, error.message_control_number)
            )
            if at_fault and fault is not None and error is not None and fault.segment_fault is not None:
                _fault_detail(body, detail, kind, error, fault)
            body.add(f"{detail}5", status, fault.code if at_fault and fault is not None else "")
        count = len(group.set_control_numbers)
        group_at_fault = fault is not None and fault.level == "group" and group is faulted_group
        declared = (
            fault.declared_sets if group_at_fault and fault and fault.declared_sets is not None else count
        )
        body.add(
            "AK9",
            status,
            str(declared),
            str(count),
            str(0 if rejection else count),
            fault.code if group_at_fault and fault is not None else "",
        )
    _close(body, numbers.set)
    version = _IMPLEMENTATION_999 if kind == "999" else partner.x12_version + "0"
    text = _interchange(partner, numbers, stamp, maps.FUNCTIONAL_IDS[kind], version, body)
    return Outgoing(control_number=numbers.interchange, text=text, kinds=(kind,))


def _faulted_group(
    groups: Sequence[FunctionalGroup], error: EdiError | None, fault: Fault | None
) -> FunctionalGroup | None:
    if error is None or fault is None:
        return None
    for group in groups:
        if fault.group_control_number:
            if group.control_number == fault.group_control_number:
                return group
        elif (error.message_kind, error.message_control_number) in group.set_control_numbers:
            return group
    return None


def _fault_detail(body: _Segments, detail: str, kind: str, error: EdiError, fault: Fault) -> None:
    """AK3/AK4 (IK3/IK4): the segment at fault and, when an element is, the element."""
    assert fault.segment_fault is not None
    body.add(
        f"{detail}3",
        error.segment,
        str(fault.set_position),
        fault.loop,
        maps.SEGMENT_ERROR_CODES[fault.segment_fault],
    )
    if fault.element_fault is None or not error.element:
        return
    codes = maps.ELEMENT_ERROR_CODES[fault.element_fault]
    copy = fault.bad_value[:99]
    if any(c in _OUT.reserved() for c in copy) or not copy.isprintable():
        copy = ""  # a copy that our separators would break is left out (AK404 is optional)
    body.add(
        f"{detail}4", str(error.element), fault.element_reference, codes[1 if kind == "999" else 0], copy
    )
