"""The UN/EDIFACT message maps of the supplier adapter, as data: which segments, data elements,
qualifiers and code values edifact.py reads and writes. No logic.

Written from the D.96A segment and code directories; the elements read are at the same place through
D.01B and later (BGM 1004 became a component of C106 in D.01A: still element 2, component 1), so any
D directory release is accepted.

Segments read in ORDRSP, DESADV and RECADV: BGM (document number and function), DTM (dates), RFF+ON
(our purchase order number), CPS (DESADV/RECADV packing levels), LIN (one line), PIA (additional item
ids), QTY (quantities), UNS/CNT (start of the summary, which ends the last line). Everything else is
skipped, but the mandatory data elements of every segment listed in REQUIRED are checked wherever it
appears.

Our SKU is the buyer's item number (7143 "IN"): LIN C212 7140 when the LIN gives it with 7143 "IN";
when the LIN carries the supplier's or a GTIN number instead (7143 "SA", "EN", "SRV"...), a PIA of the
line with 4347 "5" (product identification) or "1" (additional identification) whose C212 has 7143
"IN". The ORDERS we send put it in the LIN (LIN+1++<sku>:IN).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ElementRef:
    """One data element of a segment: its 1-based position, its 1-based component in a composite (0:
    a simple data element), and its directory tag, to read it and to name it in an error. BGM 1004 is
    simple in D.96A and the first component of C106 from D.01A: reading component 1 finds it in both."""

    element: int
    component: int
    tag: str
    name: str

    def __str__(self) -> str:
        return f"{self.tag} ({self.name})"


# --- service segments (ISO 9735 syntax version 3/4) ------------------------------------------------

UNB_SYNTAX_IDENTIFIER = ElementRef(1, 1, "0001", "syntax identifier")
UNB_SYNTAX_VERSION = ElementRef(1, 2, "0002", "syntax version number")
UNB_SENDER = ElementRef(2, 1, "0004", "interchange sender identification")
UNB_SENDER_QUALIFIER = ElementRef(2, 2, "0007", "sender identification code qualifier")
UNB_RECIPIENT = ElementRef(3, 1, "0010", "interchange recipient identification")
UNB_RECIPIENT_QUALIFIER = ElementRef(3, 2, "0007", "recipient identification code qualifier")
UNB_DATE = ElementRef(4, 1, "0017", "date of preparation")
UNB_TIME = ElementRef(4, 2, "0019", "time of preparation")
UNB_CONTROL_REFERENCE = ElementRef(5, 0, "0020", "interchange control reference")
UNB_TEST_INDICATOR_ELEMENT = 11  # 0035, "1" = test interchange

UNH_REFERENCE = ElementRef(1, 0, "0062", "message reference number")
UNH_TYPE = ElementRef(2, 1, "0065", "message type")
UNH_VERSION = ElementRef(2, 2, "0052", "message version number")
UNH_RELEASE = ElementRef(2, 3, "0054", "message release number")
UNH_AGENCY = ElementRef(2, 4, "0051", "controlling agency")

UNT_SEGMENT_COUNT = ElementRef(1, 0, "0074", "number of segments in the message")
UNT_REFERENCE = ElementRef(2, 0, "0062", "message reference number")

UNZ_CONTROL_COUNT = ElementRef(1, 0, "0036", "interchange control count")
UNZ_CONTROL_REFERENCE = ElementRef(2, 0, "0020", "interchange control reference")

# UNB 0001 -> the character set the interchange's bytes are in. Levels A and B are subsets of ASCII;
# UNOW (syntax 4) and UNOY are ISO 10646 / UTF-8.
CHARACTER_SETS: Mapping[str, str] = {
    "UNOA": "ascii",
    "UNOB": "ascii",
    "UNOC": "latin-1",
    "UNOD": "iso8859-2",
    "UNOE": "iso8859-5",
    "UNOF": "iso8859-7",
    "UNOW": "utf-8",
    "UNOY": "utf-8",
}
SYNTAX_VERSIONS = frozenset({"1", "2", "3", "4"})
MESSAGE_VERSION = "D"  # UNH 0052: a directory (draft) message
CONTROLLING_AGENCY = "UN"  # UNH 0051
SERVICE_SEGMENTS = frozenset({"UNA", "UNB", "UNG", "UNH", "UNT", "UNE", "UNZ"})
# Functional groups (UNG..UNE) are refused: CONTRL would then have to answer per group (UCF).
GROUP_SEGMENTS = frozenset({"UNG", "UNE"})

# --- the user segments read --------------------------------------------------------------------

BGM_DOCUMENT_NAME = ElementRef(1, 1, "1001", "document/message name")
BGM_DOCUMENT_NUMBER = ElementRef(2, 0, "1004", "document/message number")
BGM_MESSAGE_FUNCTION = ElementRef(3, 0, "1225", "message function")

DTM_QUALIFIER = ElementRef(1, 1, "2005", "date/time/period qualifier")
DTM_VALUE = ElementRef(1, 2, "2380", "date/time/period")
DTM_FORMAT = ElementRef(1, 3, "2379", "date/time/period format qualifier")

RFF_QUALIFIER = ElementRef(1, 1, "1153", "reference qualifier")
RFF_NUMBER = ElementRef(1, 2, "1154", "reference number")
ORDER_NUMBER = "ON"  # 1153: order number (purchase), our po_id

CPS_ID = ElementRef(1, 0, "7164", "hierarchical id number")
CPS_PARENT = ElementRef(2, 0, "7166", "hierarchical parent id")

LIN_ACTION = ElementRef(2, 0, "1229", "action request/notification")
LIN_ITEM_NUMBER = ElementRef(3, 1, "7140", "item number")
LIN_ITEM_TYPE = ElementRef(3, 2, "7143", "item number type")

PIA_FUNCTION = ElementRef(1, 0, "4347", "product id function qualifier")
PIA_ITEM_ELEMENTS = (2, 3, 4, 5, 6)  # C212 repeated: component 1 = 7140, component 2 = 7143
PIA_FUNCTIONS = frozenset({"1", "5"})  # additional identification, product identification

BUYERS_ITEM_NUMBER = "IN"  # 7143: our SKU

QTY_QUALIFIER = ElementRef(1, 1, "6063", "quantity qualifier")
QTY_QUANTITY = ElementRef(1, 2, "6060", "quantity")

# The mandatory data elements of segments (D.96A directory: mandatory in the segment and in its
# composite), checked wherever the segment appears; BGM 1004 is conditional in the directory but the
# documents are known by it.
REQUIRED: Mapping[str, tuple[ElementRef, ...]] = {
    "BGM": (BGM_DOCUMENT_NUMBER,),
    "DTM": (DTM_QUALIFIER,),
    "RFF": (RFF_QUALIFIER,),
    "CPS": (CPS_ID,),
    "PIA": (PIA_FUNCTION,),
    "QTY": (QTY_QUALIFIER, QTY_QUANTITY),
}

# DTM 2379 -> (what it looks like, strptime pattern, digits). Only these are read; a date the codec
# does not use may have any format.
DATE_FORMATS: Mapping[str, tuple[str, str, int]] = {
    "102": ("CCYYMMDD", "%Y%m%d", 8),
    "203": ("CCYYMMDDHHMM", "%Y%m%d%H%M", 12),
    "204": ("CCYYMMDDHHMMSS", "%Y%m%d%H%M%S", 14),
}

DATE_QUALIFIERS: Mapping[str, str] = {  # DTM 2005, the ones read
    "2": "delivery date/time, requested",
    "11": "despatch date/time",
    "17": "delivery date/time, estimated",
    "50": "goods receipt date/time",
    "69": "delivery date/time, promised for",
    "132": "arrival date/time, estimated",
    "137": "document/message date/time",
}

# Segments at a message's own header level and a LIN group's own level (before their segment groups):
# a DTM, QTY or PIA after the first segment-group start belongs to that group (a reference's date, a
# location's quantity...) and is not the document's or the line's.
HEADER_LEVEL = frozenset({"BGM", "DTM", "PAI", "ALI", "IMD", "FTX", "MEA", "MOA"})
LINE_LEVEL = frozenset(
    {
        "LIN",
        "PIA",
        "IMD",
        "MEA",
        "QTY",
        "PCD",
        "ALI",
        "DTM",
        "MOA",
        "GIN",
        "GIR",
        "DLM",
        "QVR",
        "DOC",
        "PAI",
        "FTX",
    }
)
DETAIL_STARTS = frozenset({"LIN", "CPS"})
SUMMARY_STARTS = frozenset({"UNS", "CNT"})


@dataclass(frozen=True, slots=True)
class MessageMap:
    """How one inbound message type maps to a neutral document."""

    kind: str  # UNH 0065
    document_names: Mapping[str, str]  # BGM 1001 codes accepted (an absent 1001 is accepted too)
    functions: Mapping[str, str]  # BGM 1225 codes accepted (absent: original)
    header_dates: tuple[str, ...]  # DTM 2005 read at header level, the most telling first
    quantities: tuple[str, ...]  # QTY 6063 read at line level, the most telling first
    order_required: bool  # every line must resolve to an RFF+ON (RECADV: goods may come without a PO)
    line_dates: tuple[str, ...] = ()  # DTM 2005 read at line level (ORDRSP), before the header's
    rejecting_functions: frozenset[str] = frozenset()  # BGM 1225: every line is refused
    line_actions: Mapping[str, str] = field(default_factory=dict)  # LIN 1229 codes accepted; {}: not read
    rejecting_line_actions: frozenset[str] = frozenset()  # LIN 1229: the line is refused (quantity 0)
    rejected_line_dates: tuple[str, ...] = ()  # header DTM 2005 dating a refused line that has no other


ORDRSP = MessageMap(
    kind="ORDRSP",
    document_names={"231": "purchase order response"},
    functions={
        "9": "original",
        "4": "change",
        "5": "replace",
        "27": "not accepted",
        "28": "accepted, with amendment in heading section",
        "29": "accepted without amendment",
        "30": "accepted, with amendment in detail section",
    },
    rejecting_functions=frozenset({"27"}),
    # Delivery dates: promised for > estimated > requested (a supplier often answers with the requested
    # qualifier and its own date); the line's before the header's.
    line_dates=("69", "17", "2"),
    header_dates=("69", "17", "2", "137"),
    rejected_line_dates=("137",),  # a refused line promises nothing: it is dated by the response
    # 113 (quantity to be delivered) is what the supplier commits to; 21 (ordered quantity) restates
    # the order, or carries the confirmed quantity when the supplier sends only that.
    quantities=("113", "21"),
    line_actions={
        "": "no action code: as confirmed",
        "3": "changed",
        "4": "no action",
        "5": "accepted without amendment",
        "6": "accepted with amendment",
        "2": "deleted",
        "7": "not accepted",
        "10": "not found",
    },
    rejecting_line_actions=frozenset({"2", "7", "10"}),
    order_required=True,
)

DESADV = MessageMap(
    kind="DESADV",
    document_names={"351": "despatch advice"},
    functions={"9": "original", "5": "replace"},
    # Estimated delivery first; the despatch date only when nothing says when the goods arrive.
    header_dates=("17", "132", "69", "2", "11"),
    quantities=("12",),  # despatch quantity
    order_required=True,
)

RECADV = MessageMap(
    kind="RECADV",
    document_names={"632": "goods receipt"},
    functions={"9": "original", "5": "replace"},
    header_dates=("50",),  # goods receipt date/time
    # 194 (received and accepted) is what went into stock; 48 (received) when that is all it says.
    quantities=("194", "48"),
    order_required=False,
)

INBOUND: Mapping[str, MessageMap] = {m.kind: m for m in (ORDRSP, DESADV, RECADV)}

# --- what we render ------------------------------------------------------------------------------

SERVICE_CHARACTERS = ":+.? '"  # UNA: component, data element, decimal mark, release, reserved, segment
RENDERED_SYNTAX = ("UNOC", "3")  # UNB S001: ISO 8859-1, syntax version 3 (6-digit dates in UNB)

ORDERS_IDENTIFIER = ("ORDERS", "D", "96A", "UN")  # UNH S009
ORDER_DOCUMENT_NAME = "220"  # BGM 1001: order
ORDER_FUNCTIONS: Mapping[str, str] = {"original": "9", "replace": "5", "cancel": "1"}  # BGM 1225
ISSUE_DATE = "137"  # DTM 2005: document/message date/time
REQUESTED_DELIVERY = "2"  # DTM 2005: delivery date/time, requested
CALENDAR_DATE = "102"  # DTM 2379: CCYYMMDD
# RFF 1153 PP, purchase order change number: the revision of the order (1 for the original).
REVISION_REFERENCE = "PP"
SUPPLIER_PARTY = "SU"  # NAD 3035
ASSIGNED_BY_BUYER = "92"  # NAD C082 3055: the party id is ours (procurement's supplier_id)
REFERENCE_CURRENCY = ("2", "9")  # CUX C504 6347 reference currency, 6343 order currency
ORDERED_QUANTITY = "21"  # QTY 6063
NET_PRICE = "AAA"  # PRI C509 5125: calculation net
DETAIL_SECTION_END = "S"  # UNS 0081: detail section ends, summary follows

CONTRL_IDENTIFIER = ("CONTRL", "D", "3", "UN")  # UNH S009 of the syntax and service report (syntax 3)
# UCM S009 of a message known only by its type (a refusal after parsing): our maps' directory.
DEFAULT_MESSAGE_IDENTIFIER = ("D", "96A", "UN")

# 0083 action, coded
ACKNOWLEDGED = "7"  # this level and all lower levels acknowledged if not explicitly rejected
REJECTED = "4"  # this level and all lower levels rejected

# 0085 syntax error, coded (ISO 9735 service code list)
SYNTAX_VERSION_NOT_SUPPORTED = "2"
NOT_ACTUAL_RECIPIENT = "7"
INVALID_VALUE = "12"
MISSING = "13"
VALUE_NOT_SUPPORTED = "14"
NOT_SUPPORTED_IN_POSITION = "15"
UNSPECIFIED = "18"
INVALID_AS_SERVICE_CHARACTER = "20"
INVALID_CHARACTERS = "21"
INVALID_SERVICE_CHARACTERS = "22"
UNKNOWN_SENDER = "23"
DUPLICATE_DETECTED = "26"
REFERENCES_DO_NOT_MATCH = "28"
CONTROL_COUNT_MISMATCH = "29"
LOWER_LEVEL_EMPTY = "32"
OUTSIDE_MESSAGE = "33"  # invalid occurrence outside message, package or group
INVALID_CHARACTER_TYPE = "37"
DATA_ELEMENT_TOO_LONG = "39"
CHARACTER_SET_NOT_SUPPORTED = "46"
ENVELOPE_FUNCTIONALITY_NOT_SUPPORTED = "47"

# Maximum lengths of what we render (an..n in the directories).
MAX_PARTY_ID = 35  # UNB 0004/0010, NAD 3039
MAX_QUALIFIER = 4  # UNB 0007
MAX_CONTROL_REFERENCE = 14  # UNB 0020, UNH 0062
MAX_DOCUMENT_NUMBER = 35  # BGM 1004, RFF 1154
MAX_ITEM_NUMBER = 35  # LIN 7140
MAX_NUMBER_DIGITS = 15  # QTY 6060, PRI 5118 n..15
