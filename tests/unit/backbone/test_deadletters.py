"""The dead-letter tool's pure parts: reading what backbone.deadletter writes, choosing what to replay or
purge, the replay's headers, the deletable prefix, the audit records, the output; and bad input refused
before any server is asked."""

import dataclasses
import hashlib
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from backbone.deadletter import DeadLetter, full_copy, reference
from backbone.deadletters import (
    AUDIT_RECORD,
    BadInput,
    Criteria,
    DeadLetterAudit,
    Failure,
    Letter,
    Operation,
    ParkedAudit,
    Position,
    ReplayGroup,
    ToolSettings,
    _original,
    audit_key,
    database_label,
    dead_letter_audit,
    deletable_before,
    dlq_topic_name,
    history_of,
    letters_table,
    parse_ref,
    pretty_value,
    replay_groups,
    replay_headers,
    run,
    select,
    select_parked,
    short_time,
    show_text,
    status_of,
    summary,
    table,
)
from backbone.outbox import ParkedEvent

FAILED_AT = b"2026-12-01T21:00:00.123456+00:00"
SOURCE = "backorder.supplier"
DLQ = "backorder.supplier.dlq"
BODY = json.dumps(
    {
        "event_id": "5f0c8a4e-0000-4000-8000-000000000001",
        "event_type": "GoodsReceived",
        "payload": {"sku": "A"},
    }
).encode()
HEADERS = [("event_type", b"GoodsReceived"), ("schema_version", b"1"), ("event_id", b"e-1")]


def source_record(
    value: bytes | None = BODY, *, offset: int = 7, headers: list[tuple[str, bytes]] | None = None
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=SOURCE,
        partition=2,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"SKU-1",
        value=value,
        checksum=None,
        serialized_key_size=5,
        serialized_value_size=len(value or b""),
        headers=HEADERS if headers is None else headers,
    )


def as_read(outgoing: Any, offset: int, partition: int = 0) -> Letter:
    """The letter as the tool reads it back from the dead-letter topic."""
    return Letter.of(
        ConsumerRecord(
            topic=outgoing.topic,
            partition=partition,
            offset=offset,
            timestamp=1_764_622_800_000,
            timestamp_type=0,
            key=outgoing.key,
            value=outgoing.value,
            checksum=None,
            serialized_key_size=0,
            serialized_value_size=0,
            headers=outgoing.headers,
        )
    )


def copy_letter(
    offset: int,
    *,
    reason: str = "handler failed: ValueError: no bin",
    service: str = "inventory",
    source_offset: int = 7,
    value: bytes | None = BODY,
    headers: list[tuple[str, bytes]] | None = None,
) -> Letter:
    letter = DeadLetter(source_record(value, offset=source_offset, headers=headers), reason)
    return as_read(full_copy(letter, service, FAILED_AT), offset)


OPERATION = Operation(actor="alice", note="bin created", at=datetime(2026, 12, 2, 9, 0, tzinfo=UTC))


def audited(
    letter: Letter, action: str = "replayed", *, minutes: int = 0, actor: str = "alice"
) -> DeadLetterAudit:
    operation = Operation(actor=actor, note="n", at=OPERATION.at + timedelta(minutes=minutes))
    return dead_letter_audit(letter, operation, action)  # type: ignore[arg-type]


# --- reading what the writer wrote ------------------------------------------------------------------------


def test_a_whole_copy_reads_back_with_reason_source_service_and_the_original_headers() -> None:
    letter = copy_letter(3)
    assert letter.ref == Position(topic=DLQ, partition=0, offset=3)
    assert letter.reason == "handler failed: ValueError: no bin"
    assert letter.source == Position(topic=SOURCE, partition=2, offset=7)
    assert (letter.service, letter.failed_at) == ("inventory", FAILED_AT.decode())
    assert (letter.event_type, letter.event_id) == ("GoodsReceived", "e-1")  # the headers' first
    assert not letter.reference and letter.value_bytes == len(BODY) and letter.value_sha256 is None
    assert letter.original_headers == HEADERS
    assert letter.key == b"SKU-1" and letter.value == BODY


def test_a_reference_reads_back_as_one_with_the_originals_size_and_digest() -> None:
    large = b'{"x": "' + b"y" * 10_000 + b'"}'
    letter = as_read(reference(DeadLetter(source_record(large), "message too large"), "order", FAILED_AT), 0)
    assert letter.reference and letter.value_bytes == len(large)
    assert letter.value_sha256 == hashlib.sha256(large).hexdigest()
    assert letter.source == Position(topic=SOURCE, partition=2, offset=7)
    assert letter.original_headers == HEADERS
    minimal = as_read(
        reference(DeadLetter(source_record(large), "too large"), "order", FAILED_AT, minimal=True), 1
    )
    assert minimal.reference and minimal.value == b"" and minimal.value_bytes == len(large)
    assert minimal.original_headers == [] and minimal.event_type is None


def test_without_routing_headers_the_event_is_read_from_the_body_and_garbage_has_none() -> None:
    assert (copy_letter(0, headers=[]).event_type, copy_letter(0, headers=[]).event_id) == (
        "GoodsReceived",
        "5f0c8a4e-0000-4000-8000-000000000001",
    )
    for value in (b"{not json", b"[1, 2]", b'{"event_type": 3}', None):
        garbage = copy_letter(0, headers=[], value=value)
        assert (garbage.event_type, garbage.event_id) == (None, None)


def test_dlq_headers_a_producer_forged_do_not_count_the_writers_own_do() -> None:
    forged = [*HEADERS, ("dlq_source_topic", b"backorder.inventory"), ("dlq_reason", b"lies")]
    letter = copy_letter(0, headers=forged)
    assert letter.source == Position(topic=SOURCE, partition=2, offset=7)
    assert letter.reason == "handler failed: ValueError: no bin"
    assert letter.original_headers == HEADERS  # the forged ones do not travel on with a replay either


def test_a_slim_letter_keeps_everything_but_the_value() -> None:
    letter = copy_letter(0)
    slim = letter.slim()
    assert slim.value is None and slim.value_bytes == len(BODY)
    assert summary(slim, ()) == summary(letter, ())


def test_a_letter_without_source_headers_has_no_source_and_says_so() -> None:
    bare = Letter.of(source_record(BODY, headers=[]))
    assert bare.source is None and bare.reason == "(no reason given)" and bare.service is None


# --- names and places ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["orders", "orders.dlq", "backorder.orders.dlq", "backorder.orders", " orders "]
)
def test_a_dead_letter_topic_may_be_named_short_or_in_full(name: str) -> None:
    assert dlq_topic_name(name, "backorder.") == "backorder.orders.dlq"


@pytest.mark.parametrize("name", ["order", "other.orders.dlq", "", "deadletters.audit"])
def test_an_unknown_topic_is_bad_input(name: str) -> None:
    with pytest.raises(
        BadInput, match="one of orders, inventory, procurement, supplier, notifier, fulfilment"
    ):
        dlq_topic_name(name, "backorder.")


def test_refs_are_partition_colon_offset() -> None:
    assert parse_ref("0:17") == (0, 17) and parse_ref(" 3:0 ") == (3, 0)
    for bad in ("17", "0:", ":1", "a:b", "-1:2", "0:1:2"):
        with pytest.raises(BadInput, match="<partition>:<offset>"):
            parse_ref(bad)


# --- status and selection -----------------------------------------------------------------------------------


def test_a_letters_status_is_its_latest_audit_record() -> None:
    letter = copy_letter(0)
    other = copy_letter(1)
    purge, replay = audited(letter, "purged", minutes=5), audited(letter, "replayed", minutes=1)
    parked = ParkedAudit(
        operation_id=uuid4(),
        actor="a",
        note="n",
        at=OPERATION.at,
        action="retried",
        database="h:1/db",
        service="order",
        position=1,
        event_id="e",
        event_type="T",
        topic="orders",
        partition_key="k",
        reason="r",
    )
    history = history_of([purge, parked, replay])
    assert [h.action for h in history[letter.ref]] == ["replayed", "purged"]  # by time, not by arrival
    assert status_of(history[letter.ref]) == "purged"
    assert status_of(history.get(other.ref, ())) == "open"


def test_select_takes_the_named_or_all_matching_open_letters_in_offset_order() -> None:
    a = copy_letter(0, reason="handler failed: ValueError: no bin")
    b = copy_letter(1, reason="Invalid JSON: expected value", service="order")
    c = copy_letter(2, reason="handler failed: KeyError: 'x'")
    history = history_of([audited(c)])
    everything = select([c, b, a], history, Criteria())
    assert [x.ref.offset for x in everything.chosen] == [0, 1]
    assert [(x.ref.offset, why.split(";")[0]) for x, why in everything.skipped] == [
        (2, "already replayed by alice at 2026-12-02T09:00:00+00:00")
    ]
    assert [x.ref.offset for x in select([a, b, c], history, Criteria(force=True)).chosen] == [0, 1, 2]
    assert [x.ref.offset for x in select([a, b, c], {}, Criteria(reason_contains="HANDLER")).chosen] == [0, 2]
    assert [x.ref.offset for x in select([a, b, c], {}, Criteria(service="order")).chosen] == [1]
    assert [x.ref.offset for x in select([a, b, c], {}, Criteria(event_type="OrderPlaced")).chosen] == []
    named = select([a, b, c], {}, Criteria(refs=((0, 2), (0, 0), (0, 2), (0, 9), (1, 0))))
    assert [x.ref.offset for x in named.chosen] == [0, 2] and named.missing == [(0, 9), (1, 0)]


def test_replays_are_grouped_by_source_message_in_source_order_with_their_open_siblings() -> None:
    first = copy_letter(5, source_offset=3, service="inventory")
    sibling = copy_letter(6, source_offset=3, service="notifier")
    handled_sibling = copy_letter(7, source_offset=3, service="order")
    later = copy_letter(0, source_offset=9)
    orphan = Letter.of(source_record(BODY, headers=[]))
    history = history_of([audited(handled_sibling, "purged")])
    groups, skipped = replay_groups([later, first, orphan], [first, sibling, handled_sibling, later], history)
    assert [(g.source.offset, [x.ref.offset for x in g.letters]) for g in groups] == [(3, [5, 6]), (9, [0])]
    assert [(x, why.split(" (")[0]) for x, why in skipped] == [
        (orphan, "its headers do not say where it came from")
    ]


def test_a_letter_whose_source_is_another_topic_is_not_replayed() -> None:
    letter = copy_letter(0)
    elsewhere = dataclasses.replace(letter, ref=Position(topic="backorder.orders.dlq", partition=0, offset=0))
    groups, skipped = replay_groups([elsewhere], [elsewhere], {})
    assert groups == [] and "is not this dead-letter topic's" in skipped[0][1]


def test_the_copy_published_is_a_whole_one_when_any_sibling_has_it() -> None:
    large = b'{"x": "' + b"y" * 10_000 + b'"}'
    ref = as_read(reference(DeadLetter(source_record(large), "too large"), "order", FAILED_AT), 0)
    whole = copy_letter(1, value=large)
    assert ReplayGroup(ref.source, (ref, whole)).carrier is whole  # type: ignore[arg-type]
    assert ReplayGroup(ref.source, (ref,)).carrier is ref  # type: ignore[arg-type]


def test_replay_headers_keep_the_originals_and_replace_dead_letter_and_earlier_replay_headers() -> None:
    earlier = [*HEADERS, ("replay_of", b"old/0:1"), ("replay_actor", b"bob"), ("dlq_reason", b"x")]
    where = Position(topic=DLQ, partition=0, offset=4)
    headers = replay_headers(earlier, where, OPERATION)
    assert headers == [
        *HEADERS,
        ("replay_of", f"{DLQ}/0:4".encode()),
        ("replay_operation_id", str(OPERATION.operation_id).encode()),
        ("replay_actor", b"alice"),
        ("replay_at", b"2026-12-02T09:00:00+00:00"),
    ]


def test_only_a_prefix_of_handled_letters_may_be_deleted() -> None:
    letters = [copy_letter(n) for n in range(4)]
    handled = history_of([audited(letters[0]), audited(letters[1], "purged"), audited(letters[3])])
    assert deletable_before(letters, 0, 4, handled) == 2  # 2 is open: it and everything after stay
    everything = history_of([*(a for h in handled.values() for a in h), audited(letters[2], "purged")])
    assert deletable_before(letters, 0, 4, everything) == 4
    assert deletable_before(letters, 0, 4, {}) == 0
    assert deletable_before(letters[3:], 3, 4, {}) == 3  # never below what is already deleted
    assert deletable_before([], 5, 5, {}) == 5


# --- the audit records --------------------------------------------------------------------------------------


def test_an_audit_record_round_trips_and_names_its_subject_in_the_key() -> None:
    letter = copy_letter(4)
    to = Position(topic=SOURCE, partition=2, offset=30)
    record = dead_letter_audit(letter, OPERATION, "replayed", replayed_to=to, forced=True)
    read = AUDIT_RECORD.validate_json(record.model_dump_json())
    assert read == record and isinstance(read, DeadLetterAudit)
    assert (read.letter, read.source, read.replayed_to, read.forced) == (letter.ref, letter.source, to, True)
    assert (read.actor, read.note, read.event_id, read.service) == (
        "alice",
        "bin created",
        "e-1",
        "inventory",
    )
    assert audit_key(record) == f"{DLQ}/0:4".encode()
    newer = {**json.loads(record.model_dump_json()), "approved_by": "carol"}  # a later tool's field
    assert AUDIT_RECORD.validate_python(newer) == record


def test_a_parked_audit_record_names_the_database_without_credentials() -> None:
    label = database_label(
        "postgresql://backorder_order:secret@db.internal:5433/backorder_order?sslmode=require"
    )
    assert label == "db.internal:5433/backorder_order"
    assert database_label("postgresql://u:p@/orders") == "localhost:5432/orders"
    record = ParkedAudit(
        operation_id=uuid4(),
        actor="erin",
        note="topic created",
        at=OPERATION.at,
        action="discarded",
        database=label,
        service="order",
        position=12,
        event_id="e",
        event_type="OrderCancelled",
        topic="orders",
        partition_key="o-1",
        reason="invalid topic",
    )
    assert AUDIT_RECORD.validate_json(record.model_dump_json()) == record
    assert audit_key(record) == b"parked/db.internal:5433/backorder_order/12"


def test_an_operation_needs_an_actor_and_a_note() -> None:
    for actor, note in (("", "n"), ("a", ""), ("a" * 201, "n")):
        with pytest.raises(ValidationError):
            Operation(actor=actor, note=note)


# --- output -------------------------------------------------------------------------------------------------


def test_tables_align_columns_and_keep_each_row_on_one_line() -> None:
    text = table(["A", "LONGER"], [("x", "multi\nline\treason"), ("wide value", None)], indent="")
    assert text.splitlines() == ["A           LONGER", "x           multi line reason", "wide value"]


def test_the_letters_table_shows_status_source_event_and_a_shortened_reason() -> None:
    first = copy_letter(0, reason="handler failed: " + "x" * 200)
    again = copy_letter(1, headers=[*HEADERS, ("replay_of", f"{DLQ}/0:0".encode())])
    history = history_of([audited(first), audited(first, minutes=1, actor="carol")])
    rows = letters_table([summary(first, history[first.ref]), summary(again, ())]).splitlines()
    assert rows[0].split()[:4] == ["P:OFFSET", "STATUS", "SOURCE", "P@OFFSET"]
    assert rows[0].endswith("SERVICE    FAILED AT (UTC)      REASON")
    assert rows[1].split()[:8] == [
        "0:0",
        "replayed",
        "(2",
        "actions)",
        "2@7",
        "GoodsReceived",
        "e-1",
        "inventory",
    ]
    assert "2026-12-01 21:00:00" in rows[1] and rows[1].endswith("…") and len(rows[1]) < 200
    assert f"[replay of {DLQ}/0:0] handler failed" in rows[2]


def test_show_prints_the_headers_history_and_the_payload_indented() -> None:
    letter = copy_letter(3, reason="first line\nsecond line")
    text = show_text(letter, [audited(letter)])
    assert f"dead letter {DLQ}/0:3  status: replayed" in text
    assert "  reason:     first line\n    second line" in text
    assert "  dlq_service: inventory" in text and "  event_id: e-1" in text
    assert "2026-12-02T09:00:00+00:00 replayed by alice: n" in text
    assert f'value ({len(BODY)} bytes):\n{{\n  "event_id"' in text


def test_values_are_pretty_json_or_text_and_long_ones_are_cut() -> None:
    assert pretty_value(b'{"a": [1]}') == ('{\n  "a": [\n    1\n  ]\n}', False)
    assert pretty_value(b"{not json") == ("{not json", False)
    assert pretty_value(b"\xff\xfe") == ("\ufffd\ufffd", False)
    assert pretty_value(None) == ("(no value)", False)
    assert pretty_value(b"x" * 10, limit=4) == ("xxxx", True)


def test_times_are_shown_in_utc_to_the_second() -> None:
    assert short_time("2026-12-01T22:00:00.5+01:00") == "2026-12-01 21:00:00"
    assert short_time("yesterday") == "yesterday" and short_time(None) == ""


def test_parked_events_are_chosen_by_position_or_all_matching() -> None:
    at = datetime(2026, 12, 1, tzinfo=UTC)
    events = [
        ParkedEvent(n, f"e-{n}", "T", "orders", "k", r, at, 0)
        for n, r in ((3, "too large"), (1, "invalid topic"))
    ]
    assert [p.position for p in select_parked(events, [], None)[0]] == [1, 3]
    assert [p.position for p in select_parked(events, [], "TOO")[0]] == [3]
    assert select_parked(events, [3, 9, 3], None) == ([events[0]], [9])


# --- the source of a reference ------------------------------------------------------------------------------


class FakeKafka:
    def __init__(self, record: ConsumerRecord[bytes, bytes] | None) -> None:
        self.record = record

    async def fetch(self, where: Position) -> ConsumerRecord[bytes, bytes] | None:
        return self.record


async def test_a_references_original_is_read_back_and_must_match_its_digest() -> None:
    large = b'{"x": "' + b"y" * 10_000 + b'"}'
    ref = as_read(reference(DeadLetter(source_record(large), "too large"), "order", FAILED_AT), 0)
    group = ReplayGroup(ref.source, (ref,))  # type: ignore[arg-type]
    original = source_record(large, headers=[*HEADERS, ("replay_of", b"x")])
    assert await _original(FakeKafka(original), group) == (b"SKU-1", large, original.headers)  # type: ignore[arg-type]
    with pytest.raises(Failure, match="no longer at"):
        await _original(FakeKafka(None), group)  # type: ignore[arg-type]
    with pytest.raises(Failure, match="is not the one the reference names"):
        await _original(FakeKafka(source_record(b"{}")), group)  # type: ignore[arg-type]
    whole = copy_letter(1)
    assert await _original(FakeKafka(None), ReplayGroup(whole.source, (whole,))) == (  # type: ignore[arg-type]
        b"SKU-1",
        BODY,
        HEADERS,
    )


# --- the command line refuses bad input before asking any server ------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["list", "--topic", "nope"], "no dead-letter topic 'nope'"),
        (["list", "--limit", "0"], "a whole number from 1"),
        (["show", "orders"], "the following arguments are required"),
        (["replay", "orders", "0:1", "--actor", "a"], "--note"),
        (["replay", "orders", "--actor", "a", "--note", "n"], "or give --all"),
        (["purge", "orders", "x", "--actor", "a", "--note", "n"], "not a dead letter's place"),
        (
            ["parked", "retry", "--actor", "a", "--note", "n", "--database-url", "postgresql://x/y"],
            "or give --all",
        ),
        (["parked", "discard", "x", "--actor", "a", "--note", "n"], "a parked event's position"),
        (["list", "--timeout", "-1"], "seconds above 0"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
async def test_bad_input_exits_2_with_a_clear_message(argv: list[str], message: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    settings = ToolSettings(kafka_bootstrap_servers="127.0.0.1:1", database_url=None)
    assert await run(argv, settings=settings, out=out, err=err) == 2
    assert message in err.getvalue() and out.getvalue() == ""
    assert err.getvalue().startswith("error: ")


def test_a_services_database_is_found_by_its_name_then_database_url() -> None:
    settings = ToolSettings(
        database_url="postgresql://any/db",
        order_database_url="postgresql://o/order",
        inventory_database_url=None,
    )
    assert settings.database_url_of("order") == "postgresql://o/order"
    assert settings.database_url_of("inventory") == settings.database_url_of(None) == "postgresql://any/db"
