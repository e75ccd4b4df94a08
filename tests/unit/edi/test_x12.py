"""The X12 codec: samples parsed to hand-written neutral values, malformed ones refused with where and
why, the 997/999/TA1 answering them, and our 850."""

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from services.edi import x12
from services.edi.documents import (
    ConfirmedLine,
    EdiError,
    Envelope,
    FunctionalGroup,
    Interchange,
    Message,
    Partner,
    PoAcknowledgement,
    PurchaseOrderDocument,
    ReceivedLine,
    ReceivingAdvice,
    ShipNotice,
    ShippedLine,
)

SAMPLES = Path(__file__).parent / "samples" / "x12"
NOW = datetime(2025, 3, 21, 12, 30, tzinfo=UTC)
PARTNER = Partner(supplier_id="acme", standard="x12", their_id="ACMESUPPLY", our_id="BACKORDER")
PARTNER_999 = Partner(
    supplier_id="acme",
    standard="x12",
    their_id="ACMESUPPLY",
    our_id="BACKORDER",
    x12_version="00501",
    acknowledgement="999",
)


def sample(name: str) -> str:
    return (SAMPLES / f"{name}.edi").read_bytes().decode("ascii")


def changed(name: str, old: str, new: str, *more: tuple[str, str]) -> str:
    """The sample with each `old` (found exactly once) replaced by its `new`."""
    text = sample(name)
    for before, after in ((old, new), *more):
        assert text.count(before) == 1, f"{before!r} is not once in {name}"
        text = text.replace(before, after)
    return text


def refusal(raw: bytes | str) -> x12.X12Error:
    with pytest.raises(x12.X12Error) as caught:
        x12.parse(raw)
    return caught.value


def segments(text: str) -> list[list[str]]:
    """A tiny reader of what we render: our separators are fixed (* elements, ~ and a line feed)."""
    assert text.endswith("~\n")
    return [line.split("*") for line in text[:-2].split("~\n")]


def tags(text: str) -> list[str]:
    return ["*".join(s) for s in segments(text)]


def checked_envelope(text: str, *, sets: int = 1) -> list[list[str]]:
    """Asserts the ISA layout and every count and control number pair; returns the segments."""
    rows = segments(text)
    isa = text.split("~\n", 1)[0] + "~"
    assert len(isa) == 106
    widths = [len(f) for f in rows[0][1:]]
    assert widths == [2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1]
    assert rows[-1] == ["IEA", "1" if rows[1][0] == "GS" else "0", rows[0][13]]
    if rows[1][0] == "GS":
        assert rows[-2] == ["GE", str(sets), rows[1][6]]
        starts = [i for i, r in enumerate(rows) if r[0] == "ST"]
        for start in starts:
            end = next(i for i in range(start, len(rows)) if rows[i][0] == "SE")
            assert rows[end] == ["SE", str(end - start + 1), rows[start][2]]
    return rows


# --- valid samples ----------------------------------------------------------------------------------


def test_an_855_with_an_accepted_line_and_a_line_changed_in_quantity_and_date() -> None:
    parsed = x12.parse((SAMPLES / "855_accepted_and_changed.edi").read_bytes())
    assert parsed == Interchange(
        standard="x12",
        sender_id="ACMESUPPLY",
        receiver_id="BACKORDER",
        control_number="000000101",
        prepared_at=datetime(2025, 3, 10, 14, 32, tzinfo=UTC),
        messages=(
            Message(
                control_number="0001",
                kind="855",
                group_control_number="101",
                document=PoAcknowledgement(
                    document_id="SO-77810",  # BAK08
                    lines=(
                        ConfirmedLine("PO-1001", "SKU-RED-M", 24, date(2025, 3, 18)),
                        # IQ 30 on 03-20 + IB 12 on 04-02: summed, the latest date; BP after VP found
                        ConfirmedLine("PO-1001", "SKU-BLUE-L", 42, date(2025, 4, 2)),
                    ),
                ),
            ),
        ),
        groups=(FunctionalGroup("PR", "101", "004010", (("855", "0001"),)),),
    )


def test_an_855_rejecting_a_line_confirms_it_at_zero() -> None:
    parsed = x12.parse(sample("855_rejected_line"))
    assert parsed.messages[0].document == PoAcknowledgement(
        document_id="0042",  # no BAK08: the set's control number
        lines=(
            # IR without a date: the acknowledgement date BAK09; SK when there is no BP
            ConfirmedLine("PO-1002", "SKU-GRN-S", 0, date(2025, 3, 11)),
            ConfirmedLine("PO-1002", "SKU-YEL-S", 5, date(2025, 3, 25)),  # the PO1 loop's DTM
        ),
    )


def test_an_856_pick_and_pack_structure_attaches_items_under_packs_to_their_order() -> None:
    parsed = x12.parse(sample("856_pick_pack"))
    assert parsed.messages[0].document == ShipNotice(
        asn_id="ASN-55012",
        expected_date=date(2025, 3, 17),  # DTM 017 preferred over DTM 011
        lines=(
            ShippedLine("PO-1001", "SKU-RED-M", 24),  # two packs of 12, summed
            ShippedLine("PO-1001", "SKU-BLUE-L", 20),
            ShippedLine("PO-1003", "SKU-GRY-XL", 6),  # SK when there is no BP
        ),
    )


def test_an_861_with_crlf_line_ends_covers_two_orders_and_goods_without_one() -> None:
    raw = (SAMPLES / "861_two_orders.edi").read_bytes()
    assert b"~\r\n" in raw
    parsed = x12.parse(raw)
    assert parsed.groups == (FunctionalGroup("RC", "104", "004010", (("861", "0001"),)),)
    assert parsed.messages[0].document == ReceivingAdvice(
        receipt_id="RCV-88001",
        received_at=datetime(2025, 3, 17, 19, 45, tzinfo=UTC),  # 15:45 Eastern daylight time
        lines=(
            ReceivedLine("PO-1001", "SKU-RED-M", 24),
            ReceivedLine("PO-1001", "SKU-BLUE-L", 18),  # the 2 rejected (RCD04) are not received
            ReceivedLine("PO-1003", "SKU-GRY-XL", 6),
            # RCD 4 received 0 of SKU-BLK-S (3 rejected): no line
            ReceivedLine(None, "SKU-WHT-M", 4),
        ),
    )


def test_an_interchange_with_two_functional_groups_and_three_sets() -> None:
    parsed = x12.parse(sample("two_groups"))
    assert parsed.groups == (
        FunctionalGroup("PR", "201", "004010", (("855", "0001"), ("855", "0002"))),
        FunctionalGroup("SH", "202", "004010", (("856", "0001"),)),
    )
    assert [(m.kind, m.control_number, m.group_control_number) for m in parsed.messages] == [
        ("855", "0001", "201"),
        ("855", "0002", "201"),
        ("856", "0001", "202"),
    ]
    assert [m.document for m in parsed.messages] == [
        # BAK02 AD and no ACK: confirmed as ordered on the header's estimated delivery
        PoAcknowledgement("SO-77900", (ConfirmedLine("PO-1004", "SKU-ORG-M", 8, date(2025, 3, 21)),)),
        PoAcknowledgement("0002", (ConfirmedLine("PO-1005", "SKU-PNK-S", 16, date(2025, 3, 19)),)),
        ShipNotice("ASN-55020", date(2025, 3, 14), (ShippedLine("PO-1004", "SKU-ORG-M", 8),)),  # DTM 011
    ]


def test_a_005010_interchange_with_its_repetition_separator() -> None:
    parsed = x12.parse(sample("856_005010"))
    assert parsed.control_number == "000000106"
    assert parsed.groups == (FunctionalGroup("SH", "301", "005010", (("856", "1001"),)),)
    assert parsed.messages[0].document == ShipNotice(
        "ASN-56001", date(2025, 3, 24), (ShippedLine("PO-1006", "SKU-TEA-L", 30),)
    )


def test_other_separators_line_feed_terminators_and_a_byte_order_mark_read_the_same() -> None:
    text = sample("two_groups")
    other = "\ufeff" + text.replace("*", "|").replace("~\n", "\n").replace("|>\n", "|^\n", 1)
    assert x12.parse(other.encode("utf-8")) == x12.parse(text)


def test_the_shipment_date_falls_back_on_bsn03_and_several_acks_need_their_own_quantities() -> None:
    without_dates = changed("856_005010", "DTM*017*20250324~\n", "", ("SE*10*", "SE*9*"))
    assert x12.parse(without_dates).messages[0].document.expected_date == date(2025, 3, 20)  # type: ignore[union-attr]
    single_ack_without_quantity = changed("855_rejected_line", "ACK*IA*5*EA~", "ACK*IA~")
    line = x12.parse(single_ack_without_quantity).messages[0].document.lines[1]
    assert (line.sku, line.confirmed_quantity) == ("SKU-YEL-S", 5)  # PO102, the one ACK's quantity


def test_the_buyers_part_number_is_our_sku_before_the_sku_qualifier() -> None:
    both = changed(
        "855_accepted_and_changed", "**BP*SKU-RED-M*VP*ACME-4411", "**SK*ACME-STOCK-1*BP*SKU-RED-M"
    )
    assert x12.parse(both).messages[0].document.lines[0].sku == "SKU-RED-M"
    shipped = changed("856_005010", "LIN**BP*SKU-TEA-L", "LIN**SK*ACME-STOCK-9*BP*SKU-TEA-L")
    assert x12.parse(shipped).messages[0].document.lines[0].sku == "SKU-TEA-L"


def test_held_lines_say_nothing_and_a_rejecting_bak02_rejects_lines_without_ack() -> None:
    held = changed("855_rejected_line", "ACK*IR*10*EA~", "ACK*IH*10*EA~")
    assert [line.sku for line in x12.parse(held).messages[0].document.lines] == ["SKU-YEL-S"]
    rejected = changed("two_groups", "BAK*00*AD*PO-1004", "BAK*00*RJ*PO-1004")
    assert x12.parse(rejected).messages[0].document.lines == (
        ConfirmedLine("PO-1004", "SKU-ORG-M", 0, date(2025, 3, 21)),
    )


def test_a_receipt_takes_the_header_prf_and_without_dtm_050_bra02_at_midnight_utc() -> None:
    text = sample("856_005010")  # reuse its envelope for a small 861
    body = (
        "ST*861*1001~\nBRA*RCV-9*20250322*00~\nPRF*PO-1006~\nRCD*1*30*EA~\nLIN**BP*SKU-TEA-L~\nSE*6*1001~\n"
    )
    start, end = text.index("ST*856"), text.index("GE*")
    receipt = (text[:start] + body + text[end:]).replace("GS*SH", "GS*RC")
    assert x12.parse(receipt).messages[0].document == ReceivingAdvice(
        "RCV-9", datetime(2025, 3, 22, tzinfo=UTC), (ReceivedLine("PO-1006", "SKU-TEA-L", 30),)
    )


# --- malformed samples ------------------------------------------------------------------------------

MALFORMED = [
    # sample, segment, position (ISA = 1), element, reason names, fault level, code
    (
        "bad_isa_length",
        "ISA",
        1,
        6,
        "the ISA is 105 characters long, its fixed layout has 106",
        "interchange",
        "006",
    ),
    ("bad_se_count", "SE", 9, 1, "SE01 says 5 segments, transaction set 855 0001 has 7", "set", "4"),
    ("bad_ge_control", "GE", 13, 2, "GE02 190 does not match GS06 109", "group", "4"),
    ("bad_iea_control", "IEA", 14, 2, "IEA02 000000101 does not match ISA13 000000110", "interchange", "001"),
    ("bad_po1_missing_quantity", "PO1", 10, 2, "PO102 quantity ordered is required", "set", "5"),
    ("bad_unknown_set", "ST", 3, 1, "transaction set 810 is not one we receive", "set", "1"),
    ("bad_quantity", "SN1", 11, 2, "SN102 number of units shipped '1O' is not a number", "set", "5"),
    ("bad_date", "BAK", 4, 4, "BAK04 purchase order date '20250231' is not a date", "set", "5"),
    (
        "truncated",
        "IEA",
        6,
        0,
        "ends inside transaction set 855 0001 without SE: the file is truncated",
        "interchange",
        "023",
    ),
    ("bad_005010_date", "DTM", 6, 2, "DTM02 date '20251332' is not a date", "set", "5"),
]


@pytest.mark.parametrize(("name", "segment", "position", "element", "reason", "level", "code"), MALFORMED)
def test_malformed_samples_are_refused_naming_where_and_why(
    name: str, segment: str, position: int, element: int, reason: str, level: str, code: str
) -> None:
    error = refusal((SAMPLES / f"{name}.edi").read_bytes())
    assert (error.segment, error.position, error.element) == (segment, position, element)
    assert reason in error.reason
    assert (error.fault.level, error.fault.code) == (level, code)
    assert error.header is not None and error.header.sender_id == "ACMESUPPLY"  # a TA1/997 can be addressed


def test_a_refusal_keeps_the_envelope_and_every_group_and_set_found() -> None:
    error = refusal(sample("bad_po1_missing_quantity"))
    assert error.header == Envelope(
        standard="x12",
        sender_id="ACMESUPPLY",
        receiver_id="BACKORDER",
        control_number="000000111",
        sender_qualifier="ZZ",
        receiver_qualifier="ZZ",
        groups=(FunctionalGroup("PR", "111", "004010", (("855", "0001"), ("855", "0002"))),),
        version="00401",
    )
    assert (error.message_kind, error.message_control_number) == ("855", "0002")
    assert (error.fault.set_position, error.fault.loop, error.fault.element_reference) == (3, "PO1", "330")
    assert str(error) == "segment PO1 #10 element 2: 855 0002: PO102 quantity ordered is required"


EDITS = [
    # sample, (old, new) edits, segment, element, reason names, fault level, code
    ("bad_se_count", [("SE*5*0001", "SE*7*0002")], "SE", 2, "SE02 0002 does not match ST02 0001", "set", "3"),
    (
        "two_groups",
        [("IEA*2*", "IEA*3*")],
        "IEA",
        1,
        "IEA01 says 3 functional groups, the interchange has 2",
        "interchange",
        "021",
    ),
    (
        "bad_ge_control",
        [("GE*1*190", "GE*3*109")],
        "GE",
        1,
        "GE01 says 3 transaction sets, group 109 has 1",
        "group",
        "5",
    ),
    (
        "two_groups",
        [("ST*855*0002", "ST*855*0001")],
        "ST",
        2,
        "ST02 0001 is used by an earlier set",
        "set",
        "23",
    ),
    ("two_groups", [("SE*6*0002~\n", "")], "SE", 0, "transaction set 855 0002 has no SE: GE", "set", "2"),
    (
        "two_groups",
        [("IEA*2*000000105~\n", "IEA*2*000000105~\nGS*PR~\n")],
        "GS",
        0,
        "GS after IEA",
        "interchange",
        "022",
    ),
    (
        "two_groups",
        [("IEA*2*000000105~\n", "IEA*2*000000105~\nnoise")],
        "IEA",
        0,
        "text after IEA",
        "interchange",
        "022",
    ),
    (
        "two_groups",
        [("GS*SH*ACMESUPPLY*BACKORDER*20250314*2210*202", "GS*SH*ACMESUPPLY*BACKORDER*20250314*2210*X")],
        "GS",
        6,
        "unreadable GS: GS06",
        "interchange",
        "024",
    ),
    (
        "two_groups",
        [("*250314*2210*", "*250340*2210*")],
        "ISA",
        9,
        "ISA09 interchange date (YYMMDD): '250340' is not a date",
        "interchange",
        "014",
    ),
    (
        "two_groups",
        [("*00401*", "*00301*")],
        "ISA",
        12,
        "version 00301 is not supported",
        "interchange",
        "003",
    ),
    (
        "two_groups",
        [("CTT*1~\nSE*6*0001~", "CTT*1~\nZZZ*1~\nSE*7*0001~")],
        "ZZZ",
        0,
        "ZZZ is not a segment of the 855",
        "set",
        "5",
    ),
    (
        "two_groups",
        [("BAK*00*AD", "BAK*01*AD")],
        "BAK",
        1,
        "BAK01 transaction set purpose code '01' is not an accepted code",
        "set",
        "5",
    ),
    (
        "two_groups",
        [("DTM*017*20250321~\n", ""), ("SE*6*0001", "SE*5*0001")],
        "DTM",
        0,
        "PO1 #5 (SKU-ORG-M) has no ACK date and no DTM date",
        "set",
        "5",
    ),
    ("two_groups", [("*068*20250319", "")], "ACK", 5, "ACK IA of SKU-PNK-S has no date", "set", "5"),
    (
        "two_groups",
        [("PO1*1*8*EA*9.99**BP*SKU-ORG-M", "PO1*1*8*EA*9.99**UP*012345678905")],
        "PO1",
        6,
        "PO1 names no buyer's part number (BP) or SKU (SK): UP 012345678905",
        "set",
        "5",
    ),
    (
        "two_groups",
        [("PO1*1*16*EA", "PO1*1*1.5*EA")],
        "PO1",
        2,
        "PO102 quantity ordered 1.5 is not a whole number",
        "set",
        "5",
    ),
    ("two_groups", [("ACK*IA*16*", "ACK*IA*0*")], "ACK", 2, "ACK02 quantity 0 must be positive", "set", "5"),
    ("two_groups", [("HL*3*2*I", "HL*3*1*I")], "HL", 2, "a I level cannot be under a S level", "set", "5"),
    (
        "two_groups",
        [("PRF*PO-1004~\nHL*3", "HL*3"), ("SE*10*0001", "SE*9*0001")],
        "PRF",
        0,
        "order level HL 2 has no PRF",
        "set",
        "5",
    ),
    (
        "855_rejected_line",
        [("ACK*IA*5*EA~", "ACK*IA*3*EA~\nACK*IB**EA~"), ("SE*9*", "SE*10*")],
        "ACK",
        2,
        "ACK02 is required when PO1 #7 has several ACKs",
        "set",
        "5",
    ),
    (
        "861_two_orders",
        [("*1545*ED~", "*1545*ET~")],
        "DTM",
        4,
        "DTM04 time code ET has no fixed offset from UTC",
        "set",
        "5",
    ),
    (
        "861_two_orders",
        [("RCD*4*0*EA*3*EA~", "RCD*4*0*EA~")],
        "RCD",
        2,
        "RCD02 0 units received and none returned",
        "set",
        "5",
    ),
]


@pytest.mark.parametrize(("name", "edits", "segment", "element", "reason", "level", "code"), EDITS)
def test_faults_of_envelope_structure_and_content_are_named(
    name: str, edits: list[tuple[str, str]], segment: str, element: int, reason: str, level: str, code: str
) -> None:
    error = refusal(changed(name, *edits[0], *edits[1:]))
    assert (error.segment, error.element) == (segment, element)
    assert reason in error.reason
    assert (error.fault.level, error.fault.code) == (level, code)


def test_an_interchange_that_ends_inside_the_isa_is_truncated() -> None:
    error = refusal(sample("two_groups")[:60])
    assert (error.segment, error.position, error.fault.code) == ("ISA", 1, "023")
    assert "the ISA is incomplete" in error.reason
    assert refusal("GS*PR*X~").fault.code == "022"


# --- acknowledgements -------------------------------------------------------------------------------


def parsed_or_refused(name: str) -> Interchange | EdiError:
    try:
        return x12.parse(sample(name))
    except EdiError as e:
        return e


def test_a_997_accepts_every_set_and_group_of_an_accepted_interchange() -> None:
    ack = x12.acknowledge(x12.parse(sample("two_groups")), PARTNER, control_number="7", now=NOW)
    assert (ack.control_number, ack.kinds) == ("000000007", ("997",))
    rows = checked_envelope(ack.text)
    assert rows[0][5:9] == ["ZZ", "BACKORDER      ", "ZZ", "ACMESUPPLY     "]  # from us to them
    assert rows[0][9:13] == ["250321", "1230", "U", "00401"]
    assert tags(ack.text)[1:-2] == [
        "GS*FA*BACKORDER*ACMESUPPLY*20250321*1230*7*X*004010",
        "ST*997*0007",
        "AK1*PR*201",
        "AK2*855*0001",
        "AK5*A",
        "AK2*855*0002",
        "AK5*A",
        "AK9*A*2*2*2",
        "AK1*SH*202",
        "AK2*856*0001",
        "AK5*A",
        "AK9*A*1*1*1",
        "SE*12*0007",
    ]


def test_a_997_rejects_all_sets_and_names_the_faulty_segment_and_element() -> None:
    ack = x12.acknowledge(parsed_or_refused("bad_po1_missing_quantity"), PARTNER, control_number="8", now=NOW)
    checked_envelope(ack.text)
    assert tags(ack.text)[2:-2] == [
        "ST*997*0008",
        "AK1*PR*111",
        "AK2*855*0001",
        "AK5*R",  # no fault of its own, rejected with the interchange
        "AK2*855*0002",
        "AK3*PO1*3*PO1*8",  # segment has data element errors
        "AK4*2*330*1",  # PO102 (data element 330): mandatory data element missing
        "AK5*R*5",  # one or more segments in error
        "AK9*R*2*2*0",
        "SE*10*0008",
    ]


def test_a_997_names_set_and_group_faults_with_their_codes() -> None:
    unknown = x12.acknowledge(parsed_or_refused("bad_unknown_set"), PARTNER, control_number="9", now=NOW)
    assert tags(unknown.text)[3:7] == ["AK1*IN*112", "AK2*810*0001", "AK5*R*1", "AK9*R*1*1*0"]
    count = x12.acknowledge(parsed_or_refused("bad_se_count"), PARTNER, control_number="10", now=NOW)
    assert "AK5*R*4" in tags(count.text)
    group = x12.acknowledge(parsed_or_refused("bad_ge_control"), PARTNER, control_number="11", now=NOW)
    assert tags(group.text)[3:7] == ["AK1*SH*109", "AK2*856*0001", "AK5*R", "AK9*R*1*1*0*4"]
    declared = refusal(changed("bad_ge_control", "GE*1*190", "GE*3*109"))
    ack = x12.acknowledge(declared, PARTNER, control_number="12", now=NOW)
    assert "AK9*R*3*1*0*5" in tags(ack.text)  # GE01 said 3, one was received
    value = x12.acknowledge(parsed_or_refused("bad_quantity"), PARTNER, control_number="13", now=NOW)
    assert tags(value.text)[5:8] == ["AK3*SN1*9*HL*8", "AK4*2*382*6*1O", "AK5*R*5"]


def test_a_999_for_a_005010_partner_names_the_fault_with_ik3_ik4_ik5() -> None:
    ack = x12.acknowledge(parsed_or_refused("bad_005010_date"), PARTNER_999, control_number="9", now=NOW)
    assert ack.kinds == ("999",)
    rows = checked_envelope(ack.text)
    assert rows[0][11:13] == ["^", "00501"]
    assert tags(ack.text)[1:-2] == [
        "GS*FA*BACKORDER*ACMESUPPLY*20250321*1230*9*X*005010X231A1",
        "ST*999*0009*005010X231A1",
        "AK1*SH*316*005010",
        "AK2*856*1001",
        "IK3*DTM*4*HL*8",
        "IK4*2*373*8*20251332",  # invalid date, with a copy of it
        "IK5*R*5",
        "AK9*R*1*1*0",
        "SE*8*0009",
    ]
    accepted = x12.acknowledge(x12.parse(sample("856_005010")), PARTNER_999, control_number="10", now=NOW)
    assert tags(accepted.text)[3:7] == ["AK1*SH*301*005010", "AK2*856*1001", "IK5*A", "AK9*A*1*1*1"]


def test_a_zero_quantity_is_a_pattern_failure_in_a_999() -> None:
    error = refusal(changed("856_005010", "SN1**30*EA", "SN1**0*EA"))
    ack = x12.acknowledge(error, PARTNER_999, control_number="3", now=NOW)
    assert "IK4*2*382*I12*0" in tags(ack.text)


@pytest.mark.parametrize(
    ("name", "note"), [("bad_isa_length", "006"), ("truncated", "023"), ("bad_iea_control", "001")]
)
def test_envelope_faults_get_a_ta1_echoing_the_interchange_header(name: str, note: str) -> None:
    error = parsed_or_refused(name)
    ack = x12.acknowledge(error, PARTNER, control_number="21", now=NOW)
    assert (ack.control_number, ack.kinds) == ("000000021", ("TA1",))
    isa = sample(name).split("~", 1)[0].split("*")
    rows = segments(ack.text)
    assert len(ack.text.split("~\n", 1)[0] + "~") == 106
    assert rows[1:] == [["TA1", isa[13], isa[9], isa[10], "R", note], ["IEA", "0", "000000021"]]


def test_the_adapters_own_refusals_are_acknowledged_too() -> None:
    parsed = x12.parse(sample("two_groups"))
    header = Envelope("x12", "ACMESUPPLY", "SOMEONE", parsed.control_number, groups=parsed.groups)
    misaddressed = EdiError("addressed to someone else", segment="ISA", position=1, element=8, header=header)
    ta1 = x12.acknowledge(misaddressed, PARTNER, control_number="30", now=NOW)
    # unknown receiver; the adapter's EdiError does not carry ISA09/ISA10, so the TA1 has our time
    assert segments(ta1.text)[1] == ["TA1", "000000105", "250321", "1230", "R", "009"]
    refused = EdiError(
        "855 0002: purchase order 'PO-1005' was never sent",
        segment="ST",
        header=header,
        message_control_number="0002",
        message_kind="855",
    )
    ack = x12.acknowledge(refused, PARTNER, control_number="31", now=NOW)
    lines = tags(ack.text)
    assert lines[3:11] == [
        "AK1*PR*201",
        "AK2*855*0001",
        "AK5*R",
        "AK2*855*0002",
        "AK5*R",
        "AK9*R*2*2*0",
        "AK1*SH*202",
        "AK2*856*0001",
    ]
    assert not any(line.startswith(("AK3", "AK4")) for line in lines)


def test_acknowledging_needs_a_valid_control_number_an_aware_time_and_an_x12_partner() -> None:
    parsed = x12.parse(sample("two_groups"))
    for number in ("0", "abc", "1234567890", ""):
        with pytest.raises(ValueError, match="control_number"):
            x12.acknowledge(parsed, PARTNER, control_number=number, now=NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        x12.acknowledge(parsed, PARTNER, control_number="1", now=datetime(2025, 3, 21))
    edifact = Partner(supplier_id="acme", standard="edifact", their_id="ACME", our_id="US")
    with pytest.raises(ValueError, match="not X12"):
        x12.acknowledge(parsed, edifact, control_number="1", now=NOW)


# --- the 850 ------------------------------------------------------------------------------------------

PO = PurchaseOrderDocument(
    po_id="PO-17",
    revision=2,
    purpose="replace",
    supplier_id="acme",
    sku="SKU-RED-M",
    quantity=40,
    unit_cost=Decimal("3.15"),
    currency="USD",
    requested_date=date(2025, 4, 1),
    issued_on=date(2025, 3, 21),
)


def test_an_850_has_fixed_width_isa_counts_and_control_numbers() -> None:
    out = x12.render_purchase_order(PO, PARTNER, control_number="42", now=NOW)
    assert (out.control_number, out.kinds) == ("000000042", ("850",))
    rows = checked_envelope(out.text)
    assert rows[0][13] == "000000042"
    assert tags(out.text)[1:] == [
        "GS*PO*BACKORDER*ACMESUPPLY*20250321*1230*42*X*004010",
        "ST*850*0042",
        "BEG*05*SA*PO-17**20250321",
        "REF*PP*2",
        "CUR*BY*USD",
        "DTM*002*20250401",
        "PO1*1*40*EA*3.15**BP*SKU-RED-M",
        "CTT*1*40",
        "SE*8*0042",
        "GE*1*42",
        "IEA*1*000000042",
    ]


def test_an_850_original_or_cancellation_without_price_or_date() -> None:
    bare = PurchaseOrderDocument(
        po_id="PO-18",
        revision=1,
        purpose="original",
        supplier_id="acme",
        sku="SKU-X",
        quantity=5,
        unit_cost=None,
        currency=None,
        requested_date=None,
        issued_on=date(2025, 3, 21),
    )
    test_partner = Partner(
        supplier_id="acme", standard="x12", their_id="ACMESUPPLY", our_id="BACKORDER", test=True
    )
    out = x12.render_purchase_order(bare, test_partner, control_number="123456789", now=NOW)
    rows = checked_envelope(out.text)
    assert (rows[0][13], rows[0][15]) == ("123456789", "T")
    assert tags(out.text)[2:-3] == [
        "ST*850*123456789",
        "BEG*00*SA*PO-18**20250321",
        "REF*PP*1",
        "PO1*1*5*EA***BP*SKU-X",
        "CTT*1*5",
    ]
    cancel = x12.render_purchase_order(replace(bare, purpose="cancel"), PARTNER, control_number="5", now=NOW)
    assert "BEG*01*SA*PO-18**20250321" in tags(cancel.text)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("sku", "SKU*RED", "sku 'SKU\\*RED' contains '\\*'"),
        ("po_id", "PO~17", "po_id 'PO~17' contains '~'"),
        ("sku", "A>B", "sku 'A>B' contains '>'"),
        ("po_id", "PO-" + "9" * 20, "po_id .* must have 1 to 22 characters"),
        ("quantity", 0, "quantity must be a positive whole number"),
        ("currency", "usd", "currency must be an ISO 4217 code"),
        ("unit_cost", Decimal("-1"), "unit_cost must be a non-negative amount"),
        ("supplier_id", "other", "is for supplier 'other', not 'acme'"),
    ],
)
def test_an_850_refuses_values_that_would_break_it(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        x12.render_purchase_order(
            replace(PO, **{field: value}),  # type: ignore[arg-type]
            PARTNER,
            control_number="1",
            now=NOW,
        )


def test_partner_ids_with_separators_or_too_long_are_refused() -> None:
    for their_id in ("ACME*1", "A" * 16):
        partner = Partner(supplier_id="acme", standard="x12", their_id=their_id, our_id="BACKORDER")
        with pytest.raises(ValueError, match=r"partner\.their_id"):
            x12.render_purchase_order(PO, partner, control_number="1", now=NOW)
