"""The UN/EDIFACT codec: sample interchanges parse to exact documents, faulty ones are refused where and
why they fail, CONTRL answers name what they must, and the ORDERS we render is a valid interchange."""

import dataclasses
import warnings
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from pydifact.parser import Parser

from services.edi.documents import (
    ConfirmedLine,
    EdiError,
    Envelope,
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
from services.edi.edifact import EdifactError, acknowledge, parse, render_purchase_order

SAMPLES = Path(__file__).parent / "samples" / "edifact"
PARTNER = Partner(
    supplier_id="acme",
    standard="edifact",
    their_id="ACMESUPPLY",
    our_id="BACKORDER",
    their_qualifier="ZZZ",
    our_qualifier="ZZZ",
    acknowledgement="CONTRL",
)
NOW = datetime(2030, 1, 7, 9, 31, tzinfo=UTC)


def sample(name: str) -> bytes:
    return (SAMPLES / f"{name}.edi").read_bytes()


def refusal(raw: bytes | str) -> EdifactError:
    with pytest.raises(EdifactError) as caught:
        parse(raw)
    return caught.value


def message(kind: str, *body: str, reference: str = "1") -> list[str]:
    """UNH, the body and a UNT that counts them: the interchange's position 2 is the UNH."""
    segments = [f"UNH+{reference}+{kind}:D:96A:UN'", *body]
    return [*segments, f"UNT+{len(segments) + 1}+{reference}'"]


def interchange(*messages: list[str], head: str = "UNOC:3", control: str = "AC0000301") -> str:
    body = "".join(segment for m in messages for segment in m)
    return (
        f"UNB+{head}+ACMESUPPLY:ZZZ+BACKORDER:ZZZ+300110:1615+{control}'{body}UNZ+{len(messages)}+{control}'"
    )


DESADV_BODY = ("BGM+351+ASN-1+9'", "DTM+17:20300114:102'", "RFF+ON:PO-1'", "LIN+1++JACKET:IN'", "QTY+12:3'")


def desadv(*lines: str, header: tuple[str, ...] = ("DTM+17:20300114:102'", "RFF+ON:PO-1'")) -> str:
    return interchange(message("DESADV", "BGM+351+ASN-1+9'", *header, *lines))


def ordrsp(*body: str, header: tuple[str, ...] = ("DTM+2:20300115:102'", "RFF+ON:PO-1'")) -> str:
    return interchange(message("ORDRSP", "BGM+231+ACK-1+9'", "DTM+137:20300107:102'", *header, *body))


def only_document(raw: bytes | str) -> object:
    (only,) = parse(raw).messages
    return only.document


def wire(text: str) -> list[tuple[str, list[object]]]:
    """The text as pydifact's own parser reads it (it warns for each segment it cannot validate)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [(s.tag, list(s.elements)) for s in Parser().parse(text)]


def assert_counts_match(text: str, control_number: str) -> None:
    segments = wire(text)
    tags = [tag for tag, _ in segments]
    assert tags[:2] == ["UNA", "UNB"] and tags[-1] == "UNZ"
    unh, unt = tags.index("UNH"), tags.index("UNT")
    assert segments[unt][1] == [str(unt - unh + 1), control_number]
    assert segments[1][1][4] == control_number == segments[-1][1][1]
    assert segments[-1][1][0] == "1"


# --- valid samples -------------------------------------------------------------------------------


def test_an_order_response_confirms_a_line_as_ordered_and_one_changed() -> None:
    assert parse(sample("ordrsp_accepted")) == Interchange(
        standard="edifact",
        sender_id="ACMESUPPLY",
        receiver_id="BACKORDER",
        control_number="AC0000101",
        prepared_at=datetime(2030, 1, 7, 9, 30, tzinfo=UTC),
        messages=(
            Message(
                "ORSP0001",
                "ORDRSP",
                PoAcknowledgement(
                    "ACK-77",
                    (
                        # 1229 5, QTY+21 and the header's requested date (DTM+171 is the RFF's date)
                        ConfirmedLine("PO-1", "JACKET", 25, date(2030, 1, 15)),
                        # 1229 3: QTY+113 (to be delivered) over QTY+21, the line's estimated date
                        ConfirmedLine("PO-1", "JACKET", 15, date(2030, 1, 21)),
                    ),
                ),
            ),
        ),
    )


def test_a_line_not_accepted_is_confirmed_with_nothing_on_the_response_date() -> None:
    assert parse(sample("ordrsp_rejected_line")).messages == (
        Message(
            "ORSP0002",
            "ORDRSP",
            PoAcknowledgement("ACK-78", (ConfirmedLine("PO-2", "BOOT", 0, date(2030, 1, 8)),)),
        ),
    )


def test_a_despatch_advice_takes_each_order_from_its_line_or_packing_level_and_sums_lines() -> None:
    interchange = parse(sample("desadv_packing_levels"))
    assert interchange.prepared_at == datetime(2030, 1, 10, 16, 15, tzinfo=UTC)
    assert interchange.messages == (
        Message(
            "DES1",
            "DESADV",
            ShipNotice(
                "ASN-5001",
                date(2030, 1, 14),  # DTM+17 (estimated delivery), not the DTM+11 despatch date
                (
                    ShippedLine("PO-1", "JACKET", 25),  # RFF+ON of CPS 2, two lines summed
                    ShippedLine("PO-2", "BOOT", 12),  # the LIN has a GTIN, the PIA our SKU
                    ShippedLine("PO-2", "SCARF", 7),
                ),
            ),
        ),
    )


def test_a_receiving_advice_counts_what_was_accepted_and_goods_without_an_order() -> None:
    assert only_document(sample("recadv_two_orders")) == ReceivingAdvice(
        "GR+2030/7",  # released ?+ in BGM 1004; the FTX's ?' ?+ ?: do not end anything
        datetime(2030, 1, 15, 7, 45, tzinfo=UTC),
        (
            ReceivedLine("PO-1", "JACKET", 25),
            ReceivedLine("PO-2", "BOOT", 10),  # QTY+194 received and accepted, not QTY+48
            ReceivedLine(None, "GLOVES", 3),
        ),
    )


def test_an_interchange_of_several_messages_with_its_own_decimal_mark() -> None:
    assert parse(sample("several_messages")).messages == (
        Message(
            "1", "ORDRSP", PoAcknowledgement("ACK-79", (ConfirmedLine("PO-3", "HAT", 10, date(2030, 1, 25)),))
        ),
        Message("2", "DESADV", ShipNotice("ASN-5002", date(2030, 1, 24), (ShippedLine("PO-3", "HAT", 10),))),
        Message(
            "3",
            "RECADV",
            ReceivingAdvice(
                "GR-2030-9", datetime(2030, 1, 25, tzinfo=UTC), (ReceivedLine("PO-3", "HAT", 10),)
            ),
        ),
    )


def test_text_parses_as_its_bytes_do_and_padding_around_them_is_ignored() -> None:
    raw = sample("ordrsp_accepted")
    assert parse(raw.decode("latin-1")) == parse(raw) == parse(b"\xef\xbb\xbf\r\n" + raw + b"\r\n\x1a")


def test_a_released_una_inside_free_text_is_only_text() -> None:
    raw = desadv("LIN+1++JACKET:IN'", "QTY+12:3'", "FTX+AAI+++see ?'UNA|^.! ~?' below'")
    assert only_document(raw) == ShipNotice("ASN-1", date(2030, 1, 14), (ShippedLine("PO-1", "JACKET", 3),))


def test_the_una_names_the_service_characters() -> None:
    body = (
        "UNA|^.! ~UNB^UNOC|3^ACMESUPPLY|ZZZ^BACKORDER|ZZZ^300110|1615^X1~\n"
        "UNH^1^DESADV|D|96A|UN~\nBGM^351^ASN!~7^9~\nDTM^17|20300114|102~\nRFF^ON|PO!^1~\n"
        "LIN^1^^JACKET|IN~\nQTY^12|4~\nUNT^7^1~\nUNZ^1^X1~\n"
    )
    assert only_document(body) == ShipNotice("ASN~7", date(2030, 1, 14), (ShippedLine("PO^1", "JACKET", 4),))


def test_a_una_without_release_character_and_level_b_separators() -> None:
    no_release = "UNA:+.  '" + desadv("LIN+1++JACK?T:IN'", "QTY+12:3'")
    assert only_document(no_release) == ShipNotice(
        "ASN-1", date(2030, 1, 14), (ShippedLine("PO-1", "JACK?T", 3),)
    )
    level_b = (
        desadv("LIN+1++JACKET:IN'", "QTY+12:3'")
        .replace("'", "\x1c")
        .replace("+", "\x1d")
        .replace(":", "\x1f")
    )
    assert only_document(level_b) == ShipNotice(
        "ASN-1", date(2030, 1, 14), (ShippedLine("PO-1", "JACKET", 3),)
    )


def test_values_are_decoded_in_the_character_set_unb_names() -> None:
    utf8 = desadv("LIN+1++MÜTZE:IN'", "QTY+12:3'").replace("UNOC", "UNOW").encode("utf-8")
    assert only_document(utf8) == ShipNotice("ASN-1", date(2030, 1, 14), (ShippedLine("PO-1", "MÜTZE", 3),))
    latin = desadv("LIN+1++MÜTZE:IN'", "QTY+12:3'").encode("latin-1")
    assert only_document(latin) == ShipNotice("ASN-1", date(2030, 1, 14), (ShippedLine("PO-1", "MÜTZE", 3),))
    error = refusal(latin.replace(b"UNOC", b"UNOA"))
    assert (error.segment, error.position, error.element, error.syntax_error) == ("LIN", 6, 3, "21")
    assert "not ascii" in error.reason


# --- malformed samples ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "segment", "position", "element", "code", "reason"),
    [
        ("unt_count_wrong", "UNT", 8, 1, "29", "UNT counts 6 segments, the message has 7"),
        ("unz_count_wrong", "UNZ", 9, 1, "29", "UNZ counts 2 messages, the interchange has 1"),
        ("unz_reference_mismatch", "UNZ", 9, 2, "28", "'AC0000299' does not match UNB's 'AC0000201'"),
        ("unt_reference_mismatch", "UNT", 8, 2, "28", "UNT message reference '2' does not match UNH '1'"),
        ("qty_without_quantity", "QTY", 7, 1, "13", "QTY 6060 (quantity) is missing"),
        ("unknown_message_type", "UNH", 2, 2, "14", "INVOIC messages are not accepted"),
        ("quantity_not_numeric", "QTY", 7, 1, "37", "quantity 'TWENTY' is not a number"),
        ("bad_date", "DTM", 4, 1, "12", "DTM+17 '20300231' is not a calendar date"),
        ("bad_datetime", "DTM", 4, 1, "12", "DTM+50 '2030011507' is not CCYYMMDDHHMM (format 203)"),
        ("truncated", "UNZ", 9, 0, "13", "ends without UNZ: it is truncated"),
    ],
)
def test_a_malformed_sample_is_refused_where_it_fails(
    name: str, segment: str, position: int, element: int, code: str, reason: str
) -> None:
    error = refusal(sample(name))
    assert (error.segment, error.position, error.element, error.syntax_error) == (
        segment,
        position,
        element,
        code,
    )
    assert reason in error.reason
    assert error.header is not None and (error.header.sender_id, error.header.control_number) == (
        "ACMESUPPLY",
        "AC0000201" if name != "bad_datetime" else "AC0000202",
    )


def test_a_fault_inside_a_message_names_the_message_and_where_in_it() -> None:
    error = refusal(sample("qty_without_quantity"))
    assert (error.message_control_number, error.message_kind) == ("1", "DESADV")
    assert (error.message_position, error.component) == (6, 2)
    assert error.message_identifier == ("DESADV", "D", "96A", "UN")
    assert error.header == Envelope(
        standard="edifact",
        sender_id="ACMESUPPLY",
        receiver_id="BACKORDER",
        control_number="AC0000201",
        sender_qualifier="ZZZ",
        receiver_qualifier="ZZZ",
        version="3",
    )
    envelope_fault = refusal(sample("unz_count_wrong"))
    assert (envelope_fault.message_control_number, envelope_fault.message_position) == ("", 0)


@pytest.mark.parametrize(
    ("raw", "segment", "position", "code", "reason"),
    [
        ("", "UNB", 1, "13", "UNB is missing: the interchange is empty"),
        ("UNH+1+DESADV:D:96A:UN'", "UNB", 1, "13", "the interchange starts with UNH"),
        ("UNA:+", "UNA", 0, "13", "UNA is cut short"),
        ("UNA::.? 'UNB'", "UNA", 0, "20", "separators and release character must differ"),
        (desadv("LIN+1++JACKET:IN'", "QTY+12:3'")[:-1], "UNZ", 9, "13", "ends inside segment UNZ"),
        (desadv("LIN+1++JACKET:IN'", "QTY+12:3'")[:-12], "UNZ", 9, "13", "without a segment terminator"),
        (desadv("LIN+1++JACKET:IN'", "QTY+12:3?\n'"), "QTY", 7, "22", "cannot be read"),
        (desadv("LIN+1++JACKET:IN'", "qty+12:3'"), "qty", 7, "12", "'qty' is not a segment tag"),
        (desadv("LIN+1++JACKET:IN'", "QTY+12:3'") + "UNB'", "UNB", 10, "33", "UNB follows UNZ"),
        (
            desadv("LIN+1++JACKET:IN'", "QTY+12:3'").replace("UNH", "BGM+1'UNH"),
            "BGM",
            2,
            "33",
            "outside a message",
        ),
        (desadv("LIN+1++JACKET:IN'", "QTY+12:3'").replace("UNH", "UNG+DESADV'UNH"), "UNG", 2, "47", "groups"),
        (interchange(), "UNZ", 2, "32", "holds no message"),
    ],
)
def test_a_broken_envelope_is_refused_where_it_fails(
    raw: str, segment: str, position: int, code: str, reason: str
) -> None:
    error = refusal(raw)
    assert (error.segment, error.position, error.syntax_error) == (segment, position, code)
    assert reason in error.reason


@pytest.mark.parametrize(
    ("head", "element", "code", "reason"),
    [
        ("UNOX:3", 1, "46", "syntax identifier 'UNOX' is not supported"),
        ("UNOC:5", 1, "2", "syntax version '5' is not supported"),
        ("UNOC", 1, "13", "UNB 0002 (syntax version number) is missing"),
    ],
)
def test_a_unb_that_cannot_be_read_is_refused(head: str, element: int, code: str, reason: str) -> None:
    error = refusal(interchange(message("DESADV"), head=head))
    assert (error.segment, error.position, error.element, error.syntax_error) == ("UNB", 1, element, code)
    assert reason in error.reason


def test_the_preparation_time_is_checked_and_read_as_utc() -> None:
    bad = interchange(message("DESADV")).replace("300110:1615", "301310:1615")
    assert (refusal(bad).element, refusal(bad).syntax_error) == (4, "12")
    syntax_4 = (
        desadv("LIN+1++JACKET:IN'", "QTY+12:3'").replace("UNOC:3", "UNOC:4").replace("300110", "20300110")
    )
    assert parse(syntax_4).prepared_at == datetime(2030, 1, 10, 16, 15, tzinfo=UTC)


def test_messages_must_be_closed_and_known_once() -> None:
    unclosed = interchange(message("DESADV")[:-1], message("DESADV", reference="2"))
    assert (refusal(unclosed).segment, refusal(unclosed).position, refusal(unclosed).syntax_error) == (
        "UNT",
        3,
        "13",
    )
    twice = interchange(message("DESADV", *DESADV_BODY), message("DESADV", *DESADV_BODY))
    error = refusal(twice)
    assert (error.segment, error.position, error.element, error.syntax_error) == ("UNH", 9, 1, "26")
    not_un = interchange(message("DESADV")).replace("DESADV:D:96A:UN", "DESADV:S:93A:UN")
    assert (refusal(not_un).element, refusal(not_un).component, refusal(not_un).syntax_error) == (2, 2, "14")
    bgm_later = interchange(message("DESADV", "DTM+17:20300114:102'", "BGM+351+ASN-1+9'"))
    assert (refusal(bgm_later).segment, refusal(bgm_later).position, refusal(bgm_later).syntax_error) == (
        "BGM",
        3,
        "13",
    )


# --- mapping details ---------------------------------------------------------------------------------


def test_a_response_that_rejects_the_order_confirms_every_line_with_nothing() -> None:
    raw = interchange(
        message("ORDRSP", "BGM+231+ACK-9+27'", "DTM+137:20300107:102'", "RFF+ON:PO-1'", "LIN+1++JACKET:IN'")
    )
    assert only_document(raw) == PoAcknowledgement(
        "ACK-9", (ConfirmedLine("PO-1", "JACKET", 0, date(2030, 1, 7)),)
    )


def test_a_line_names_its_own_order_and_is_dated_by_the_most_telling_qualifier() -> None:
    raw = ordrsp(
        "LIN+1++JACKET:IN'",
        "QTY+21:12.000'",
        "DTM+2:20300116:102'",
        "DTM+69:20300118:102'",
        "RFF+ON:PO-7'",
        "DTM+17:20300199:102'",  # the RFF's date (its group), not the line's: not even read
    )
    assert only_document(raw) == PoAcknowledgement(
        "ACK-1", (ConfirmedLine("PO-7", "JACKET", 12, date(2030, 1, 18)),)
    )


def test_dates_and_quantities_of_segment_groups_are_not_the_documents() -> None:
    located = ordrsp("LIN+1++JACKET:IN'", "QTY+21:5'", "LOC+7+DC1'", "QTY+113:2'")  # a location's (SG34)
    assert only_document(located) == PoAcknowledgement(
        "ACK-1", (ConfirmedLine("PO-1", "JACKET", 5, date(2030, 1, 15)),)
    )
    # The DTM+2 after the RFF dates the reference (SG1), not the order response.
    referenced = ordrsp("LIN+1++JACKET:IN'", "QTY+21:5'", header=("RFF+ON:PO-1'", "DTM+2:20300115:102'"))
    error = refusal(referenced)
    assert (error.segment, error.position, error.syntax_error) == ("LIN", 7, "13")
    assert (
        "LIN 1 (JACKET) has no delivery date: DTM+69, DTM+17, DTM+2 in the line or the header" in error.reason
    )


@pytest.mark.parametrize(
    ("lines", "segment", "position", "element", "code", "reason"),
    [
        (("LIN+1++4006381333931:EN'", "QTY+21:5'"), "LIN", 7, 3, "13", "has no buyer's item number"),
        (("LIN+1++JACKET:IN'", "PIA+5+BOOT:IN'", "QTY+21:5'"), "PIA", 8, 0, "12", "its PIA 'BOOT'"),
        (
            ("LIN+1+1+JACKET:IN'", "QTY+21:5'"),
            "LIN",
            7,
            2,
            "14",
            "action 1229 (action request/notification) '1'",
        ),
        (("LIN+1+5+JACKET:IN'",), "LIN", 7, 0, "13", "has no QTY+113 or QTY+21"),
        (("LIN+1++JACKET:IN'", "QTY+21:2.5'"), "QTY", 8, 1, "12", "'2.5' is not a whole number of units"),
        (("LIN+1++JACKET:IN'", "QTY+21:-2'"), "QTY", 8, 1, "12", "'-2' is not a whole number of units"),
        (
            ("LIN+1++JACKET:IN'", "QTY+21:2'", "QTY+21:3'"),
            "QTY",
            9,
            1,
            "12",
            "QTY+21 is given twice in LIN 1",
        ),
        (("LIN+1++JACKET:IN'", "QTY+21:1234567890123456'"), "QTY", 8, 1, "39", "more than 15 digits"),
        (("LIN+1++JACKET:IN'", "QTY+21:5'", "DTM+17:20300120'"), "DTM", 9, 1, "13", "2379 (date/time/period"),
        (("LIN+1++JACKET:IN'", "QTY+21:5'", "DTM+17:2030W03:718'"), "DTM", 9, 1, "14", "format '718' is not"),
        (("LIN+1++JACKET:IN'", "QTY+21:5'", "RFF+ON:PO-2'", "RFF+ON:PO-3'"), "RFF", 10, 1, "12", "two order"),
        (("QTY+21:5'",), "LIN", 8, 0, "13", "ORDRSP ACK-1 has no line (LIN)"),
    ],
)
def test_an_order_response_line_that_cannot_be_confirmed_is_refused(
    lines: tuple[str, ...], segment: str, position: int, element: int, code: str, reason: str
) -> None:
    error = refusal(ordrsp(*lines))
    assert (error.segment, error.position, error.element, error.syntax_error) == (
        segment,
        position,
        element,
        code,
    )
    assert reason in error.reason


def test_an_order_response_line_needs_an_order_number() -> None:
    error = refusal(ordrsp("LIN+1++JACKET:IN'", "QTY+21:5'", header=("DTM+2:20300115:102'",)))
    assert (error.segment, error.position, error.syntax_error) == ("LIN", 6, "13")
    assert "LIN 1 (JACKET) has no order number" in error.reason


def test_the_sku_may_come_from_a_pia_and_bgm_codes_are_checked() -> None:
    raw = ordrsp("LIN+1++4006381333931:EN'", "PIA+1+X-1:SA+JACKET:IN'", "QTY+21:5'")
    assert only_document(raw) == PoAcknowledgement(
        "ACK-1", (ConfirmedLine("PO-1", "JACKET", 5, date(2030, 1, 15)),)
    )
    wrong_document = interchange(message("DESADV", "BGM+220+ASN-1+9'"))
    assert (refusal(wrong_document).element, refusal(wrong_document).syntax_error) == (1, "14")
    cancellation = interchange(message("DESADV", "BGM+351+ASN-1+1'"))
    error = refusal(cancellation)
    assert (error.segment, error.element, error.syntax_error) == ("BGM", 3, "14")
    assert "1225 (message function) '1' is not handled in a DESADV" in error.reason


def test_a_despatch_advice_falls_back_on_the_despatch_date_and_checks_its_levels() -> None:
    despatched = desadv(
        "CPS+1'", "LIN+1++JACKET:IN'", "QTY+12:3'", header=("DTM+11:20300110:102'", "RFF+ON:PO-1'")
    )
    assert only_document(despatched) == ShipNotice(
        "ASN-1", date(2030, 1, 10), (ShippedLine("PO-1", "JACKET", 3),)
    )
    undated = refusal(desadv("LIN+1++JACKET:IN'", "QTY+12:3'", header=("RFF+ON:PO-1'",)))
    assert (undated.segment, undated.position, undated.syntax_error) == ("DTM", 7, "13")
    assert "has no DTM+17, DTM+132, DTM+69, DTM+2, DTM+11 in its header" in undated.reason
    orphan = refusal(desadv("CPS+1'", "CPS+3+2'", "LIN+1++JACKET:IN'", "QTY+12:3'"))
    assert (orphan.segment, orphan.position, orphan.element, orphan.syntax_error) == ("CPS", 7, 2, "12")
    twice = refusal(desadv("CPS+1'", "CPS+1'"))
    assert (twice.position, twice.element, twice.syntax_error) == (7, 1, "12")
    no_quantity = refusal(desadv("LIN+1++JACKET:IN'", "QTY+21:3'"))
    assert (no_quantity.segment, no_quantity.position, no_quantity.syntax_error) == ("LIN", 6, "13")
    assert "has no QTY+12" in no_quantity.reason


def test_a_receiving_advice_needs_its_receipt_time() -> None:
    received = interchange(
        message("RECADV", "BGM+632+GR-1+9'", "DTM+50:20300115:102'", "LIN+1++HAT:IN'", "QTY+48:2'")
    )
    assert only_document(received) == ReceivingAdvice(
        "GR-1", datetime(2030, 1, 15, tzinfo=UTC), (ReceivedLine(None, "HAT", 2),)
    )
    undated = refusal(interchange(message("RECADV", "BGM+632+GR-1+9'", "LIN+1++HAT:IN'", "QTY+48:2'")))
    assert (undated.segment, undated.position, undated.syntax_error) == ("DTM", 6, "13")


# --- CONTRL ------------------------------------------------------------------------------------------


def contrl_body(outgoing_text: str) -> str:
    """The CONTRL's segments between its UNH and UNT."""
    segments = outgoing_text.split("'")
    return "'".join(segments[3:-3]) + "'"


def test_an_accepted_interchange_is_acknowledged_by_its_uci_alone() -> None:
    outgoing = acknowledge(parse(sample("several_messages")), PARTNER, control_number="5", now=NOW)
    assert outgoing.kinds == ("CONTRL",) and outgoing.control_number == "5"
    assert outgoing.text == (
        "UNA:+.? 'UNB+UNOC:3+BACKORDER:ZZZ+ACMESUPPLY:ZZZ+300107:0931+5'UNH+5+CONTRL:D:3:UN'"
        "UCI+AC0000105+ACMESUPPLY:ZZZ+BACKORDER:ZZZ+7'UNT+3+5'UNZ+1+5'"
    )
    assert_counts_match(outgoing.text, "5")


@pytest.mark.parametrize(
    ("name", "body"),
    [
        (
            "qty_without_quantity",
            "UCI+AC0000201+ACMESUPPLY:ZZZ+BACKORDER:ZZZ+4'UCM+1+DESADV:D:96A:UN+4+13'UCS+6+13'UCD+13+1:2'",
        ),
        (
            "bad_date",
            "UCI+AC0000201+ACMESUPPLY:ZZZ+BACKORDER:ZZZ+4'UCM+1+DESADV:D:96A:UN+4+12'UCS+3+12'UCD+12+1:2'",
        ),
        ("unt_count_wrong", "UCI+AC0000201+ACMESUPPLY:ZZZ+BACKORDER:ZZZ+4'UCM+1+DESADV:D:96A:UN+4+29+UNT+1'"),
        (
            "unt_reference_mismatch",
            "UCI+AC0000201+ACMESUPPLY:ZZZ+BACKORDER:ZZZ+4'UCM+1+DESADV:D:96A:UN+4+28+UNT+2'",
        ),
        (
            "unknown_message_type",
            "UCI+AC0000201+ACMESUPPLY:ZZZ+BACKORDER:ZZZ+4'UCM+1+INVOIC:D:96A:UN+4+14+UNH+2:1'",
        ),
        ("unz_count_wrong", "UCI+AC0000201+ACMESUPPLY:ZZZ+BACKORDER:ZZZ+4+29+UNZ+1'"),
        ("unz_reference_mismatch", "UCI+AC0000201+ACMESUPPLY:ZZZ+BACKORDER:ZZZ+4+28+UNZ+2'"),
        ("truncated", "UCI+AC0000201+ACMESUPPLY:ZZZ+BACKORDER:ZZZ+4+13+UNZ'"),
    ],
)
def test_a_rejected_interchange_is_answered_with_what_failed_and_where(name: str, body: str) -> None:
    with pytest.raises(EdiError) as caught:
        parse(sample(name))
    outgoing = acknowledge(caught.value, PARTNER, control_number="6", now=NOW)
    assert contrl_body(outgoing.text) == body
    assert outgoing.text.startswith(
        "UNA:+.? 'UNB+UNOC:3+BACKORDER:ZZZ+ACMESUPPLY:ZZZ+300107:0931+6'UNH+6+CONTRL"
    )
    assert_counts_match(outgoing.text, "6")


def test_the_adapters_own_refusals_are_answered_too() -> None:
    header = Envelope("edifact", "ACMESUPPLY", "SOMEONE", "AC0000401")
    not_ours = EdiError("addressed to someone else", segment="UNB", position=1, element=3, header=header)
    assert contrl_body(acknowledge(not_ours, PARTNER, control_number="7", now=NOW).text) == (
        "UCI+AC0000401+ACMESUPPLY:ZZZ+SOMEONE:ZZZ+4+7+UNB+3'"
    )
    unknown_po = EdiError(
        "ORDRSP 0001: purchase order 'PO-9' was never sent to supplier 'acme'",
        segment="UNH",
        header=header,
        message_control_number="0001",
        message_kind="ORDRSP",
    )
    assert contrl_body(acknowledge(unknown_po, PARTNER, control_number="8", now=NOW).text) == (
        "UCI+AC0000401+ACMESUPPLY:ZZZ+SOMEONE:ZZZ+4'UCM+0001+ORDRSP:D:96A:UN+4+18'"
    )


def test_a_contrl_to_a_test_partner_is_marked_as_test_and_needs_an_unambiguous_time() -> None:
    test_partner = dataclasses.replace(PARTNER, test=True)
    text = acknowledge(parse(sample("ordrsp_accepted")), test_partner, control_number="9", now=NOW).text
    assert text.startswith("UNA:+.? 'UNB+UNOC:3+BACKORDER:ZZZ+ACMESUPPLY:ZZZ+300107:0931+9++++++1'UNH+9+")
    with pytest.raises(ValueError, match="no time zone"):
        acknowledge(parse(sample("ordrsp_accepted")), PARTNER, control_number="9", now=datetime(2030, 1, 7))


# --- ORDERS ------------------------------------------------------------------------------------------


def purchase_order(**changes: object) -> PurchaseOrderDocument:
    fields: dict[str, object] = {
        "po_id": "PO-17",
        "revision": 2,
        "purpose": "replace",
        "supplier_id": "acme",
        "sku": "JACKET",
        "quantity": 40,
        "unit_cost": Decimal("9.50"),
        "currency": "EUR",
        "requested_date": date(2030, 1, 17),
        "issued_on": date(2030, 1, 7),
    }
    return PurchaseOrderDocument(**{**fields, **changes})  # type: ignore[arg-type]


def test_a_purchase_order_is_rendered_as_an_orders_interchange() -> None:
    eastern = datetime(2030, 1, 7, 4, 31, tzinfo=timezone(timedelta(hours=-5)))  # 09:31 UTC
    outgoing = render_purchase_order(purchase_order(), PARTNER, control_number="42", now=eastern)
    assert (outgoing.control_number, outgoing.kinds) == ("42", ("ORDERS",))
    assert outgoing.text == (
        "UNA:+.? 'UNB+UNOC:3+BACKORDER:ZZZ+ACMESUPPLY:ZZZ+300107:0931+42'UNH+42+ORDERS:D:96A:UN'"
        "BGM+220+PO-17+5'DTM+137:20300107:102'DTM+2:20300117:102'RFF+PP:2'NAD+SU+acme::92'CUX+2:EUR:9'"
        "LIN+1++JACKET:IN'QTY+21:40'PRI+AAA:9.50'UNS+S'UNT+12+42'UNZ+1+42'"
    )
    assert_counts_match(outgoing.text, "42")


def test_an_original_or_a_cancellation_carries_only_what_it_has() -> None:
    original = render_purchase_order(
        purchase_order(revision=1, purpose="original", unit_cost=None, currency=None, requested_date=None),
        PARTNER,
        control_number="43",
        now=NOW,
    ).text
    assert (
        "BGM+220+PO-17+9'DTM+137:20300107:102'RFF+PP:1'NAD+SU+acme::92'LIN+1++JACKET:IN'QTY+21:40'UNS+S'"
        in original
    )
    assert_counts_match(original, "43")
    cancel = render_purchase_order(
        purchase_order(purpose="cancel"), PARTNER, control_number="44", now=NOW
    ).text
    assert "BGM+220+PO-17+1'" in cancel


def test_service_characters_in_values_are_released_and_read_back() -> None:
    po = purchase_order(po_id="PO:17+A'", sku="JACKET?")
    text = render_purchase_order(po, PARTNER, control_number="45", now=NOW).text
    assert "BGM+220+PO?:17?+A?'+5'" in text and "LIN+1++JACKET??:IN'" in text
    assert_counts_match(text, "45")
    segments = dict(wire(text))
    assert segments["BGM"] == ["220", "PO:17+A'", "5"]
    assert segments["LIN"] == ["1", "", ["JACKET?", "IN"]]


@pytest.mark.parametrize(
    ("changes", "control_number", "message"),
    [
        ({"po_id": "P" * 36}, "46", "po_id"),
        ({"sku": "JACKET\nRED"}, "46", "control character"),
        ({"currency": "euro"}, "46", "ISO 4217"),
        ({"unit_cost": Decimal("-1")}, "46", "unit_cost"),
        ({}, "4-6", "control number"),
        ({}, "123456789012345", "control number"),
    ],
)
def test_a_value_no_orders_can_carry_is_refused(
    changes: dict[str, object], control_number: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        render_purchase_order(purchase_order(**changes), PARTNER, control_number=control_number, now=NOW)
