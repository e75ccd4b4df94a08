"""ANSI X12 segment maps and code lists the X12 codec (x12.py) is driven by: pure data, no logic.

What is here, per the X12 004010 standard tables (005010 is read with the same maps: the segments we
read did not change between the two):
- the envelope: the ISA fixed layout with the TA1 note code (TA105) of each field, GS/GE, ST/SE, IEA;
- per transaction set we receive (855, 856, 861): the segments we read with their element rules
  (data element reference number, type, min/max length, required, accepted codes), the segments of the
  standard's table we tolerate without reading, and the segments that must be present;
- the code lists behind the mapping (ACK01 line status, BAK02 acknowledgement type, BAK01/BSN01/BRA03
  purpose, DTM qualifiers in order of preference, HL levels and their parents, time codes, our SKU's
  product id qualifiers);
- the error codes of the acknowledgements: AK304/IK304, AK403/IK403, AK502/IK502, AK905 and TA105.

"Required" is what *we* need to map the document, which can be stricter than the standard (PO102 is
conditional in the 855 table, but a line without its ordered quantity cannot be confirmed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, TypeAlias

# X12 simple data element types: AN string, ID code, N0 integer, R decimal, DT CCYYMMDD date, TM time.
ElementKind: TypeAlias = Literal["AN", "ID", "N0", "R", "DT", "TM"]


@dataclass(frozen=True, slots=True)
class ElementRule:
    position: int  # 1-based (PO102 -> 2)
    reference: str  # data element dictionary number, named by AK402/IK402 ("330" quantity ordered)
    name: str
    kind: ElementKind
    min_length: int
    max_length: int
    required: bool = False
    codes: frozenset[str] = frozenset()  # an ID element's accepted values; empty: any


@dataclass(frozen=True, slots=True)
class SegmentRule:
    tag: str
    name: str
    max_elements: int  # more is "too many data elements" (AK403 3)
    elements: tuple[ElementRule, ...] = ()
    # X12 "P" relational conditions: if one element of a pair is present, so must the other be.
    pairs: tuple[tuple[int, int], ...] = ()
    loop: str = ""  # the loop this segment opens, named by AK303/IK303

    def rule(self, position: int) -> ElementRule | None:
        return next((e for e in self.elements if e.position == position), None)


@dataclass(frozen=True, slots=True)
class SetMap:
    set_id: str  # ST01
    name: str
    beginning: str  # the segment that must follow ST
    required: tuple[str, ...]  # segments that must occur at least once (besides the beginning)
    rules: Mapping[str, SegmentRule]  # segments we read, with their element rules
    tolerated: frozenset[str] = field(default=frozenset())  # in the standard's table, not read


def _id(position: int, reference: str, name: str, length: int | tuple[int, int], **kw: object) -> ElementRule:
    low, high = (length, length) if isinstance(length, int) else length
    return ElementRule(position, reference, name, "ID", low, high, **kw)  # type: ignore[arg-type]


def _an(position: int, reference: str, name: str, low: int, high: int, **kw: object) -> ElementRule:
    return ElementRule(position, reference, name, "AN", low, high, **kw)  # type: ignore[arg-type]


def _n0(position: int, reference: str, name: str, low: int, high: int, **kw: object) -> ElementRule:
    return ElementRule(position, reference, name, "N0", low, high, **kw)  # type: ignore[arg-type]


def _r(position: int, reference: str, name: str, low: int, high: int, **kw: object) -> ElementRule:
    return ElementRule(position, reference, name, "R", low, high, **kw)  # type: ignore[arg-type]


def _dt(position: int, name: str, **kw: object) -> ElementRule:
    return ElementRule(position, "373", name, "DT", 8, 8, **kw)  # type: ignore[arg-type]


def _tm(position: int, name: str, **kw: object) -> ElementRule:
    return ElementRule(position, "337", name, "TM", 4, 8, **kw)  # type: ignore[arg-type]


def _product_ids(
    tag: str, first: int, last: int, *, first_required: bool = False
) -> tuple[tuple[ElementRule, ...], tuple[tuple[int, int], ...]]:
    """Product/service id pairs (235 qualifier, 234 id), e.g. PO106/PO107 .. PO124/PO125."""
    rules: list[ElementRule] = []
    pairs: list[tuple[int, int]] = []
    for q in range(first, last, 2):
        required = first_required and q == first
        rules.append(_id(q, "235", f"{tag}{q:02d} product/service id qualifier", 2, required=required))
        rules.append(_an(q + 1, "234", f"{tag}{q + 1:02d} product/service id", 1, 48, required=required))
        pairs.append((q, q + 1))
    return tuple(rules), tuple(pairs)


# --- envelope ----------------------------------------------------------------------------------------

ISA_LENGTH = 106  # "ISA", 16 fixed-width elements with their separators, the segment terminator


@dataclass(frozen=True, slots=True)
class IsaField:
    position: int
    name: str
    width: int
    note_code: str  # TA105 when this field is at fault


ISA_FIELDS: tuple[IsaField, ...] = (
    IsaField(1, "ISA01 authorization information qualifier", 2, "010"),
    IsaField(2, "ISA02 authorization information", 10, "011"),
    IsaField(3, "ISA03 security information qualifier", 2, "012"),
    IsaField(4, "ISA04 security information", 10, "013"),
    IsaField(5, "ISA05 interchange sender id qualifier", 2, "005"),
    IsaField(6, "ISA06 interchange sender id", 15, "006"),
    IsaField(7, "ISA07 interchange receiver id qualifier", 2, "007"),
    IsaField(8, "ISA08 interchange receiver id", 15, "008"),
    IsaField(9, "ISA09 interchange date (YYMMDD)", 6, "014"),
    IsaField(10, "ISA10 interchange time (HHMM)", 4, "015"),
    IsaField(11, "ISA11 standards identifier / repetition separator", 1, "016"),
    IsaField(12, "ISA12 interchange control version number", 5, "017"),
    IsaField(13, "ISA13 interchange control number", 9, "018"),
    IsaField(14, "ISA14 acknowledgment requested", 1, "019"),
    IsaField(15, "ISA15 usage indicator", 1, "020"),
    IsaField(16, "ISA16 component element separator", 1, "027"),
)
ISA_AUTHORIZATION_QUALIFIERS = frozenset({"00", "01", "02", "03", "04", "05", "06"})  # I01
ISA_SECURITY_QUALIFIERS = frozenset({"00", "01"})  # I03
ISA_ACKNOWLEDGMENT_REQUESTED = frozenset({"0", "1"})  # I13
ISA_USAGE = frozenset({"P", "T", "I"})  # I14: production, test, information
# ISA11 is the standards identifier "U" up to 00401; from 00402 on it is the repetition separator.
FIRST_VERSION_WITH_REPETITION_SEPARATOR = "00402"
SUPPORTED_VERSIONS = ("004", "005")  # ISA12 / GS08 prefixes: 004010 .. 005050

GS = SegmentRule(
    "GS",
    "functional group header",
    8,
    (
        _id(1, "479", "GS01 functional identifier code", 2, required=True),
        _an(2, "142", "GS02 application sender's code", 2, 15, required=True),
        _an(3, "124", "GS03 application receiver's code", 2, 15, required=True),
        _dt(4, "GS04 date", required=True),
        _tm(5, "GS05 time", required=True),
        _n0(6, "28", "GS06 group control number", 1, 9, required=True),
        _id(7, "455", "GS07 responsible agency code", (1, 2), required=True, codes=frozenset({"X", "T"})),
        _an(8, "480", "GS08 version / release / industry identifier code", 1, 12, required=True),
    ),
)
GE = SegmentRule(
    "GE",
    "functional group trailer",
    2,
    (
        _n0(1, "97", "GE01 number of transaction sets included", 1, 6, required=True),
        _n0(2, "28", "GE02 group control number", 1, 9, required=True),
    ),
)
ST = SegmentRule(
    "ST",
    "transaction set header",
    3,
    (
        _id(1, "143", "ST01 transaction set identifier code", 3, required=True),
        _an(2, "329", "ST02 transaction set control number", 4, 9, required=True),
        _an(3, "1705", "ST03 implementation convention reference", 1, 35),
    ),
)
SE = SegmentRule(
    "SE",
    "transaction set trailer",
    2,
    (
        _n0(1, "96", "SE01 number of included segments", 1, 10, required=True),
        _an(2, "329", "SE02 transaction set control number", 4, 9, required=True),
    ),
)
IEA = SegmentRule(
    "IEA",
    "interchange control trailer",
    2,
    (
        _n0(1, "I16", "IEA01 number of included functional groups", 1, 5, required=True),
        _n0(2, "I12", "IEA02 interchange control number", 9, 9, required=True),
    ),
)
ENVELOPE_TAGS = frozenset({"ISA", "IEA", "GS", "GE", "ST", "SE"})

# --- code lists --------------------------------------------------------------------------------------

LineStatus: TypeAlias = Literal["accepted", "rejected", "held"]

# ACK01 (668) line item status. "accepted" quantities count as confirmed (a backorder is a commitment
# for a later date); "rejected" lines are confirmed at 0; "held" says nothing yet (a later 855 will).
ACK_STATUS: Mapping[str, LineStatus] = MappingProxyType(
    {
        "AC": "accepted",  # item accepted and shipped
        "AR": "accepted",  # item accepted and released for shipment
        "BP": "accepted",  # item accepted, partial shipment, balance backordered
        "DR": "accepted",  # item accepted, date rescheduled
        "IA": "accepted",  # item accepted
        "IB": "accepted",  # item backordered
        "IC": "accepted",  # item accepted, changes made
        "IP": "accepted",  # item accepted, price changed
        "IQ": "accepted",  # item accepted, quantity changed
        "IS": "accepted",  # item accepted, substitution made
        "SP": "accepted",  # item accepted, schedule date pending
        "ID": "rejected",  # item deleted
        "IR": "rejected",  # item rejected
        "R1": "rejected",  # not a contract item
        "R2": "rejected",  # invalid item product number
        "R3": "rejected",  # invalid unit of issue
        "R4": "rejected",  # contract item not available
        "R5": "rejected",  # reorder item as a just-in-time order
        "R6": "rejected",  # reorder item as an extended delivery order
        "R7": "rejected",  # reorder item as a drop shipment
        "R8": "rejected",  # reorder item as a surplus order
        "IF": "held",  # item on hold, incomplete description
        "IH": "held",  # item on hold
        "IW": "held",  # item on hold, waiver required
    }
)

# BAK02 (587) acknowledgement type; the rejections make PO1 lines without an ACK rejected lines.
ACKNOWLEDGEMENT_TYPES = frozenset(
    {"AC", "AD", "AE", "AH", "AK", "AP", "AT", "NA", "RD", "RF", "RJ", "RN", "RO", "RV", "ZZ"}
)
REJECTING_ACKNOWLEDGEMENT_TYPES = frozenset({"RD", "RF", "RJ", "RN", "RO", "RV"})

# Transaction set purpose (353) we can apply: 00 original, 04 change, 05 replace, 06 confirmation,
# 07 duplicate. A later document replaces what an earlier one said, so all of them map the same way;
# 01 cancellation has no contract event (an acknowledgement or notice cannot be withdrawn) and is
# refused as an invalid code, so that the sender learns it was not applied.
ACK_PURPOSES = frozenset({"00", "04", "05", "06", "07"})
ASN_PURPOSES = frozenset({"00", "04", "05", "06", "07"})
RECEIPT_PURPOSES = frozenset({"00", "04", "05", "06", "07"})

# Date/time qualifiers (374), in order of preference: a delivery date before a ship date (we plan with
# arrivals; a ship date is the best we have when no delivery date is given).
ACK_DATE_QUALIFIERS: tuple[str, ...] = (
    "067",  # current schedule delivery
    "069",  # promised for delivery
    "017",  # estimated delivery
    "002",  # delivery requested
    "068",  # current schedule ship
    "010",  # requested ship
    "011",  # shipped
)
SHIPMENT_DATE_QUALIFIERS: tuple[str, ...] = ("017", "011")  # estimated delivery, else shipped
RECEIVED_DATE_QUALIFIER = "050"  # received

# HL03 (735) hierarchical levels we read and the levels each may hang under ("" = none, the root).
# Both the pick-and-pack structure (S/O/P/I, optionally a tare T) and standard pack (S/O/I/P) fit.
SHIPMENT, ORDER, TARE, PACK, ITEM = "S", "O", "T", "P", "I"
HL_PARENTS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        SHIPMENT: frozenset({""}),
        ORDER: frozenset({SHIPMENT}),
        TARE: frozenset({SHIPMENT, ORDER}),
        PACK: frozenset({SHIPMENT, ORDER, TARE, ITEM}),
        ITEM: frozenset({ORDER, TARE, PACK}),
    }
)

# DTM04 (623) time codes with a fixed offset from UTC in hours. Codes whose offset depends on daylight
# saving (ET, CT, MT, PT, LT local) are refused: the document would not say which one applies.
TIME_CODE_OFFSETS: Mapping[str, int] = MappingProxyType(
    {
        "UT": 0,  # universal time coordinate
        "GM": 0,  # Greenwich mean time
        "AS": -4,  # Atlantic standard
        "AD": -3,  # Atlantic daylight
        "ES": -5,  # Eastern standard
        "ED": -4,  # Eastern daylight
        "CS": -6,  # Central standard
        "CD": -5,  # Central daylight
        "MS": -7,  # Mountain standard
        "MD": -6,  # Mountain daylight
        "PS": -8,  # Pacific standard
        "PD": -7,  # Pacific daylight
    }
)

# Our SKU in product/service id pairs (235), in order of preference: BP buyer's part number (what our
# 850 sends in PO106/PO107), else SK stock keeping unit.
SKU_QUALIFIERS: tuple[str, ...] = ("BP", "SK")

# The contracts' bound on a quantity (backbone.contracts.types.Quantity).
MAX_QUANTITY = 1_000_000_000

# --- segment rules per transaction set ----------------------------------------------------------------

DTM = SegmentRule(
    "DTM",
    "date/time reference",
    6,
    (
        _id(1, "374", "DTM01 date/time qualifier", 3, required=True),
        _dt(2, "DTM02 date"),
        _tm(3, "DTM03 time"),
        _id(4, "623", "DTM04 time code", 2),
        _id(5, "1250", "DTM05 date time period format qualifier", (2, 3)),
        _an(6, "1251", "DTM06 date time period", 1, 35),
    ),
)
PRF = SegmentRule(
    "PRF",
    "purchase order reference",
    7,
    (
        _an(1, "324", "PRF01 purchase order number", 1, 22, required=True),
        _an(2, "328", "PRF02 release number", 1, 30),
        _an(3, "327", "PRF03 change order sequence number", 1, 8),
        _dt(4, "PRF04 purchase order date"),
    ),
)
_LIN_IDS, _LIN_PAIRS = _product_ids("LIN", 2, 32, first_required=True)
LIN = SegmentRule(
    "LIN",
    "item identification",
    31,
    (_an(1, "350", "LIN01 assigned identification", 1, 20), *_LIN_IDS),
    _LIN_PAIRS,
)
CTT = SegmentRule(
    "CTT", "transaction totals", 7, (_n0(1, "354", "CTT01 number of line items", 1, 6, required=True),)
)

_PO1_IDS, _PO1_PAIRS = _product_ids("PO1", 6, 26)
PO1 = SegmentRule(
    "PO1",
    "baseline item data",
    25,
    (
        _an(1, "350", "PO101 assigned identification", 1, 20),
        _r(2, "330", "PO102 quantity ordered", 1, 15, required=True),
        _id(3, "355", "PO103 unit or basis for measurement code", 2),
        _r(4, "212", "PO104 unit price", 1, 17),
        _id(5, "639", "PO105 basis of unit price code", 2),
        *_PO1_IDS,
    ),
    _PO1_PAIRS,
    loop="PO1",
)
_ACK_IDS, _ACK_PAIRS = _product_ids("ACK", 7, 29)
ACK = SegmentRule(
    "ACK",
    "line item acknowledgment",
    29,
    (
        _id(1, "668", "ACK01 line item status code", 2, required=True, codes=frozenset(ACK_STATUS)),
        _r(2, "380", "ACK02 quantity", 1, 15),
        _id(3, "355", "ACK03 unit or basis for measurement code", 2),
        _id(4, "374", "ACK04 date/time qualifier", 3, codes=frozenset(ACK_DATE_QUALIFIERS)),
        _dt(5, "ACK05 date"),
        _an(6, "326", "ACK06 request reference number", 1, 45),
        *_ACK_IDS,
    ),
    ((4, 5), *_ACK_PAIRS),
    loop="ACK",
)
BAK = SegmentRule(
    "BAK",
    "beginning segment for purchase order acknowledgment",
    12,
    (
        _id(1, "353", "BAK01 transaction set purpose code", 2, required=True, codes=ACK_PURPOSES),
        _id(2, "587", "BAK02 acknowledgment type", 2, required=True, codes=ACKNOWLEDGEMENT_TYPES),
        _an(3, "324", "BAK03 purchase order number", 1, 22, required=True),
        _dt(4, "BAK04 purchase order date", required=True),
        _an(8, "127", "BAK08 reference identification (seller's order number)", 1, 30),
        _dt(9, "BAK09 acknowledgment date"),
    ),
)
BSN = SegmentRule(
    "BSN",
    "beginning segment for ship notice",
    7,
    (
        _id(1, "353", "BSN01 transaction set purpose code", 2, required=True, codes=ASN_PURPOSES),
        _an(2, "396", "BSN02 shipment identification", 2, 30, required=True),
        _dt(3, "BSN03 date", required=True),
        _tm(4, "BSN04 time", required=True),
        _id(5, "1005", "BSN05 hierarchical structure code", 4),
    ),
)
HL = SegmentRule(
    "HL",
    "hierarchical level",
    4,
    (
        _an(1, "628", "HL01 hierarchical id number", 1, 12, required=True),
        _an(2, "734", "HL02 hierarchical parent id number", 1, 12),
        _id(3, "735", "HL03 hierarchical level code", (1, 2), required=True, codes=frozenset(HL_PARENTS)),
        _id(4, "736", "HL04 hierarchical child code", 1),
    ),
    loop="HL",
)
SN1 = SegmentRule(
    "SN1",
    "item detail (shipment)",
    8,
    (
        _an(1, "350", "SN101 assigned identification", 1, 20),
        _r(2, "382", "SN102 number of units shipped", 1, 10, required=True),
        _id(3, "355", "SN103 unit or basis for measurement code", 2, required=True),
    ),
)
BRA = SegmentRule(
    "BRA",
    "beginning segment for receiving advice or acceptance certificate",
    5,
    (
        _an(1, "127", "BRA01 reference identification (receipt number)", 1, 30, required=True),
        _dt(2, "BRA02 date", required=True),
        _id(3, "353", "BRA03 transaction set purpose code", 2, required=True, codes=RECEIPT_PURPOSES),
        _id(4, "962", "BRA04 receiving advice or acceptance certificate type code", 1),
        _tm(5, "BRA05 time"),
    ),
)
RCD = SegmentRule(
    "RCD",
    "receiving conditions",
    21,
    (
        _an(1, "350", "RCD01 assigned identification", 1, 20),
        _r(2, "663", "RCD02 quantity units received or accepted", 1, 9, required=True),
        _r(4, "664", "RCD04 quantity units returned or rejected", 1, 9),
        _r(6, "665", "RCD06 quantity damaged or on hold", 1, 9),
    ),
    loop="RCD",
)

# Loops opened by segments we tolerate without reading, for AK303 (the read ones name theirs).
TOLERATED_LOOPS: Mapping[str, str] = MappingProxyType(
    {"N1": "N1", "N9": "N9", "SCH": "SCH", "SLN": "SLN", "LM": "LM"}
)

N1_LOOP = frozenset({"N1", "N2", "N3", "N4", "REF", "PER", "FOB"})
_COMMON = frozenset(
    {
        "REF",
        "PER",
        "CUR",
        "MSG",
        "NTE",
        "N9",
        "MEA",
        "PID",
        "PWK",
        "PKG",
        "TD1",
        "TD3",
        "TD4",
        "TD5",
        "MAN",
        "SAC",
        "TXI",
        "AMT",
        "FOB",
        "ITD",
        "DIS",
        "PO4",
        "SDQ",
        "LM",
        "LQ",
    }
)

SETS: Mapping[str, SetMap] = MappingProxyType(
    {
        "855": SetMap(
            "855",
            "purchase order acknowledgment",
            "BAK",
            ("PO1",),
            MappingProxyType({s.tag: s for s in (BAK, DTM, PO1, ACK, CTT)}),
            _COMMON
            | N1_LOOP
            | frozenset(
                {
                    "TAX",
                    "CTP",
                    "PAM",
                    "CSH",
                    "LDT",
                    "LIN",
                    "SI",
                    "CTB",
                    "NX2",
                    "CN1",
                    "PO3",
                    "IT8",
                    "INC",
                    "FST",
                    "PCT",
                    "SPI",
                    "CB1",
                    "SCH",
                    "SLN",
                    "QTY",
                }
            ),
        ),
        "856": SetMap(
            "856",
            "ship notice/manifest",
            "BSN",
            ("HL",),
            MappingProxyType({s.tag: s for s in (BSN, DTM, HL, PRF, LIN, SN1, CTT)}),
            _COMMON
            | N1_LOOP
            | frozenset(
                {
                    "SLN",
                    "TSD",
                    "CLD",
                    "ETD",
                    "GF",
                    "YNQ",
                    "V1",
                    "H1",
                    "H2",
                    "PAL",
                    "LH1",
                    "LH2",
                    "LH3",
                    "LFH",
                    "LEP",
                    "LH4",
                    "LHT",
                    "LHR",
                    "CUR",
                }
            ),
        ),
        "861": SetMap(
            "861",
            "receiving advice/acceptance certificate",
            "BRA",
            ("RCD",),
            MappingProxyType({s.tag: s for s in (BRA, DTM, RCD, LIN, PRF, CTT)}),
            _COMMON | N1_LOOP | frozenset({"SN1", "FA1", "FA2"}),
        ),
    }
)
# The functional group (GS01) each set travels in; our 850 and the 997/999 we send use PO and FA.
FUNCTIONAL_IDS: Mapping[str, str] = MappingProxyType(
    {"855": "PR", "856": "SH", "861": "RC", "850": "PO", "997": "FA", "999": "FA"}
)

# --- error codes of the acknowledgements --------------------------------------------------------------

SegmentFault: TypeAlias = Literal[
    "unrecognized", "unexpected", "missing", "loop_max", "max_use", "not_in_set", "sequence", "element_errors"
]
# AK304 (997) / IK304 (999): the codes are the same in both.
SEGMENT_ERROR_CODES: Mapping[SegmentFault, str] = MappingProxyType(
    {
        "unrecognized": "1",  # unrecognized segment id
        "unexpected": "2",  # unexpected segment
        "missing": "3",  # mandatory segment missing
        "loop_max": "4",  # loop occurs over maximum times
        "max_use": "5",  # segment exceeds maximum use
        "not_in_set": "6",  # segment not in defined transaction set
        "sequence": "7",  # segment not in proper sequence
        "element_errors": "8",  # segment has data element errors
    }
)

ElementFault: TypeAlias = Literal[
    "missing",
    "conditional_missing",
    "too_many",
    "too_short",
    "too_long",
    "invalid_character",
    "invalid_code",
    "invalid_date",
    "invalid_time",
    "value",
]
# AK403 (997) and IK403 (999). "value" is a well-formed number that breaks our rule (zero, negative, a
# fraction of a unit): the 997 has no closer code than 6 (invalid character); the 999 has I12
# (implementation pattern match failure).
ELEMENT_ERROR_CODES: Mapping[ElementFault, tuple[str, str]] = MappingProxyType(
    {
        "missing": ("1", "1"),  # mandatory data element missing
        "conditional_missing": ("2", "2"),  # conditional required data element missing
        "too_many": ("3", "3"),  # too many data elements
        "too_short": ("4", "4"),  # data element too short
        "too_long": ("5", "5"),  # data element too long
        "invalid_character": ("6", "6"),  # invalid character in data element
        "invalid_code": ("7", "7"),  # invalid code value
        "invalid_date": ("8", "8"),  # invalid date
        "invalid_time": ("9", "9"),  # invalid time
        "value": ("6", "I12"),
    }
)

# AK502 (997) / IK502 (999) transaction set syntax error codes.
SET_NOT_SUPPORTED = "1"
SET_TRAILER_MISSING = "2"
SET_CONTROL_NUMBER_MISMATCH = "3"  # ST02 / SE02
SET_SEGMENT_COUNT = "4"  # SE01
SET_SEGMENTS_IN_ERROR = "5"
SET_IDENTIFIER_INVALID = "6"  # ST01
SET_CONTROL_NUMBER_INVALID = "7"  # ST02
SET_CONTROL_NUMBER_NOT_UNIQUE = "23"  # within the functional group

# AK905 functional group syntax error codes.
GROUP_CONTROL_NUMBER_MISMATCH = "4"  # GS06 / GE02
GROUP_SET_COUNT = "5"  # GE01

# TA105 interchange note codes (besides the ISA field codes in ISA_FIELDS).
TA1_CONTROL_NUMBER_MISMATCH = "001"  # ISA13 / IEA02
TA1_VERSION_NOT_SUPPORTED = "003"
TA1_SEGMENT_TERMINATOR = "004"
TA1_UNKNOWN_RECEIVER = "009"
TA1_GROUP_COUNT = "021"  # IEA01
TA1_CONTROL_STRUCTURE = "022"
TA1_END_OF_FILE = "023"  # improper (premature) end of file
TA1_CONTENT = "024"  # invalid interchange content, e.g. an invalid GS
TA1_ELEMENT_SEPARATOR = "026"
TA1_COMPONENT_SEPARATOR = "027"
