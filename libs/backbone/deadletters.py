"""Dead letters and parked relay events as an operator tool: `python -m backbone.deadletters ...`.

    list    [--topic orders] [--service order] [--status open] [--limit N]
    show    <dlq-topic> <partition> <offset>          (or <dlq-topic> <partition>:<offset>)
    replay  <dlq-topic> <partition>:<offset>... | --all [filters] --actor NAME --note TEXT [--force]
    purge   <dlq-topic> <partition>:<offset>... | --all [filters] --actor NAME --note TEXT [--delete-records]
    audit   [--kind dead_letter|parked] [--limit N]
    parked  list | retry <position>... | discard <position>...   [--service order] --actor --note

A dead-letter topic is named `orders`, `orders.dlq` or `<prefix>orders.dlq`. Every command prints a table,
or JSON with `--json`. Exit codes: 0 done, 1 nothing matched (nothing was changed), 2 usage or bad input
(nothing was changed), 3 could not complete (Kafka or the database refused or is away; what was done
before is printed and audited).

How it works, and why:
- **The audit topic** `<prefix>deadletters.audit` (one partition, kept forever; created here when missing
  unless TOPIC_AUTO_CREATE=false) holds one JSON record per dead letter replayed or purged and per parked
  event retried or discarded: who (`--actor`), why (`--note`), when, which record and, for a replay,
  where the copy went. A letter's status (open, replayed, purged) is its latest audit record, so `list`
  reads this topic; every action is also logged as a JSON line (on stderr), like the services' parked
  routes do.
- **Replay** publishes the original message (key, value, headers; a reference letter's original is read
  back from its source topic and checked against its SHA-256) to its source topic, keyed as before, so it
  lands on its key's partition behind that key's newer events, with headers `replay_of`
  (`<dlq-topic>/<partition>:<offset>`), `replay_operation_id`, `replay_actor` and `replay_at`. Messages are
  sent in their original order and the audit is written only after Kafka acknowledged them: a crash in
  between leaves the letter open, and replaying it again is harmless, because every consumer's inbox
  drops an event id it applied before (backbone.inbox, in the effects' transaction). That is also why a
  replay reaches every consumer of the source topic without doubling anything, and why every dead letter
  of the same source message (several services may have refused it) is marked replayed together. A
  letter already replayed or purged is not replayed again unless `--force`.
- **Purge** marks letters handled in the audit topic; Kafka cannot delete single records. With
  `--delete-records` it also deletes each partition's records *before the first one still open*
  (AdminClient delete_records), i.e. only a prefix that is entirely replayed or purged; their audit
  records stay. `purge <dlq-topic> --delete-records` alone only deletes that prefix.
- **Parked events** (the outbox relay's, in a service's database: backbone.outbox) are retried or
  discarded as `POST /outbox/parked/{position}/retry|discard` does, audited in the same topic. The audit
  topic must be writable before the database is touched.
Two operators replaying the same letter at the same moment may both publish it: the inbox makes the
second copy a no-op, and both are audited.
"""

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TextIO, TypeVar
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic, RecordsToDelete
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.structs import ConsumerRecord
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from backbone import outbox
from backbone.contracts import Topic, dead_letter_topic
from backbone.kafka import client_options, reliable_producer
from backbone.log import configure_logging
from backbone.settings import KafkaSettings

log = structlog.get_logger(__name__)

Record = ConsumerRecord[bytes, bytes]
T = TypeVar("T")
Headers = Sequence[tuple[str, bytes]]
Status = Literal["open", "replayed", "purged"]

AUDIT_TOPIC = "deadletters.audit"  # after the prefix
DLQ_HEADER_PREFIX = "dlq_"  # every header backbone.deadletter adds
REPLAY_HEADER_PREFIX = "replay_"  # every header a replay adds
_STRIPPED_ON_REPLAY = (DLQ_HEADER_PREFIX, REPLAY_HEADER_PREFIX)
_REASON_COLUMN = 60
_SHOW_TEXT_LIMIT = 64 * 1024  # characters of a payload `show` prints without --full
_EXIT_OK, _EXIT_NOTHING, _EXIT_BAD_INPUT, _EXIT_FAILED = 0, 1, 2, 3


class BadInput(Exception):
    """The command line names something that does not exist or is malformed: exit 2, nothing changed."""


class Failure(Exception):
    """The command could not complete: exit 3."""


class ToolSettings(KafkaSettings):
    """The services' environment variables the tool needs (KAFKA_*, TOPIC_PREFIX, DATABASE_URL...)."""

    topic_auto_create: bool = True
    topic_replication_factor: int = Field(default=1, ge=1)
    database_url: str | None = None
    # `parked --service order` reads ORDER_DATABASE_URL (what `infra.py env` and `make deadletters` export),
    # so that no password has to go on a command line, where every user of the machine can read it.
    order_database_url: str | None = None
    inventory_database_url: str | None = None
    procurement_database_url: str | None = None
    notifier_database_url: str | None = None
    edi_database_url: str | None = None
    log_level: str = "INFO"

    def database_url_of(self, service: str | None) -> str | None:
        if service is not None:
            own: str | None = getattr(self, f"{service}_database_url", None)
            if own:
                return own
        return self.database_url


# --- what a dead letter says (pure) -------------------------------------------------------------------------


class Position(BaseModel):
    """A record in Kafka."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}:{self.offset}"

    @property
    def sort_key(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "replace")


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()  # isdigit alone takes "²", which int() refuses


def _int(raw: str | None) -> int | None:
    return int(raw) if raw is not None and _digits(raw) else None


def _body_ids(value: bytes | None) -> tuple[str | None, str | None]:
    """event_type and event_id from a JSON envelope, for a letter whose headers lack them."""
    if not value:
        return None, None
    try:
        body = json.loads(value)
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    kind, event_id = body.get("event_type"), body.get("event_id")
    return (kind if isinstance(kind, str) else None), (event_id if isinstance(event_id, str) else None)


@dataclass(frozen=True, slots=True)
class Letter:
    """One record of a dead-letter topic, read as backbone.deadletter writes it: the original message
    (or a reference to it) with `dlq_*` headers saying why, where from, who and when."""

    ref: Position
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int | None
    event_type: str | None
    event_id: str | None
    size: int  # of the value as read (a reference's is only its preview)

    @classmethod
    def of(cls, record: Record) -> "Letter":
        headers = tuple((name, content) for name, content in record.headers)
        first = {name: content for name, content in reversed(headers)}
        last = dict(headers)
        event_type, event_id = _text(first.get("event_type")), _text(first.get("event_id"))
        if (event_type is None or event_id is None) and last.get("dlq_truncated") != b"true":
            from_body = _body_ids(record.value)
            event_type, event_id = event_type or from_body[0], event_id or from_body[1]
        return cls(
            Position(topic=record.topic, partition=record.partition, offset=record.offset),
            record.key,
            record.value,
            headers,
            record.timestamp if record.timestamp is not None and record.timestamp >= 0 else None,
            event_type,
            event_id,
            len(record.value or b""),
        )

    def slim(self) -> "Letter":
        """Without its value, for listing: a dead-letter topic may hold many letters of up to 1 MB."""
        return dataclasses.replace(self, value=None)

    def header(self, name: str) -> str | None:
        """A header as text: of the original's, the first (as the consumer reads them); of the `dlq_*`
        ones, the last, which is the dead-letter writer's (it appends its own after the original's, and a
        producer may have sent a message with `dlq_*` headers of its own making)."""
        found = (_text(content) for key, content in self.headers if key == name)
        if name.startswith(DLQ_HEADER_PREFIX):
            *_, latest = (None, *found)
            return latest
        return next(found, None)

    @property
    def reason(self) -> str:
        return self.header("dlq_reason") or "(no reason given)"

    @property
    def service(self) -> str | None:
        return self.header("dlq_service")

    @property
    def failed_at(self) -> str | None:
        return self.header("dlq_failed_at")

    @property
    def source(self) -> Position | None:
        """Where the original message is, if the headers say so."""
        topic = self.header("dlq_source_topic")
        partition, offset = _int(self.header("dlq_source_partition")), _int(self.header("dlq_source_offset"))
        if not topic or partition is None or offset is None:
            return None
        return Position(topic=topic, partition=partition, offset=offset)

    @property
    def reference(self) -> bool:
        """Only a reference: the value is the original's first bytes (or nothing), see value_sha256."""
        return self.header("dlq_truncated") == "true"

    @property
    def value_bytes(self) -> int:
        declared = _int(self.header("dlq_value_bytes")) if self.reference else None
        return declared if declared is not None else self.size

    @property
    def value_sha256(self) -> str | None:
        return self.header("dlq_value_sha256")

    @property
    def replay_of(self) -> str | None:
        """The dead letter this message was a replay of: it failed again."""
        return self.header("replay_of")

    @property
    def original_headers(self) -> list[tuple[str, bytes]]:
        return [(k, v) for k, v in self.headers if not k.startswith(DLQ_HEADER_PREFIX)]


# --- the audit records (the boundary: JSON on the audit topic) ----------------------------------------------


class Operation(BaseModel):
    """One command an operator ran: every audit record it writes carries these."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    operation_id: UUID = Field(default_factory=uuid4)
    actor: str = Field(min_length=1, max_length=200)
    note: str = Field(min_length=1, max_length=2000)
    at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))


class _Audit(BaseModel):
    # extra="ignore": a newer tool's records stay readable by this one
    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = 1
    audit_id: UUID = Field(default_factory=uuid4)
    operation_id: UUID
    actor: str = Field(min_length=1, max_length=200)
    note: str = Field(min_length=1, max_length=2000)
    at: AwareDatetime


class DeadLetterAudit(_Audit):
    kind: Literal["dead_letter"] = "dead_letter"
    action: Literal["replayed", "purged"]
    letter: Position
    source: Position | None
    event_type: str | None
    event_id: str | None
    service: str | None
    reason: str
    replayed_to: Position | None = None  # where the replayed copy went
    forced: bool = False


class ParkedAudit(_Audit):
    kind: Literal["parked"] = "parked"
    action: Literal["retried", "discarded"]
    database: str  # host:port/name, never credentials
    service: str | None
    position: int
    event_id: str
    event_type: str
    topic: str
    partition_key: str
    reason: str


AuditRecord = Annotated[DeadLetterAudit | ParkedAudit, Field(discriminator="kind")]
AUDIT_RECORD: TypeAdapter[DeadLetterAudit | ParkedAudit] = TypeAdapter(AuditRecord)


def dead_letter_audit(
    letter: Letter,
    operation: Operation,
    action: Literal["replayed", "purged"],
    *,
    replayed_to: Position | None = None,
    forced: bool = False,
) -> DeadLetterAudit:
    return DeadLetterAudit(
        operation_id=operation.operation_id,
        actor=operation.actor,
        note=operation.note,
        at=operation.at,
        action=action,
        letter=letter.ref,
        source=letter.source,
        event_type=letter.event_type,
        event_id=letter.event_id,
        service=letter.service,
        reason=letter.reason[:2000],
        replayed_to=replayed_to,
        forced=forced,
    )


def audit_key(record: DeadLetterAudit | ParkedAudit) -> bytes:
    """The Kafka key: what the record is about."""
    if isinstance(record, DeadLetterAudit):
        return str(record.letter).encode()
    return f"parked/{record.database}/{record.position}".encode()


History = Mapping[Position, Sequence[DeadLetterAudit]]


def history_of(records: Iterable[DeadLetterAudit | ParkedAudit]) -> dict[Position, list[DeadLetterAudit]]:
    """Each letter's audit records, oldest first."""
    out: dict[Position, list[DeadLetterAudit]] = defaultdict(list)
    for r in sorted((r for r in records if isinstance(r, DeadLetterAudit)), key=lambda r: r.at):
        out[r.letter].append(r)
    return dict(out)


def status_of(history: Sequence[DeadLetterAudit]) -> Status:
    return history[-1].action if history else "open"


# --- choosing what to act on (pure) -------------------------------------------------------------------------


def parse_ref(text: str) -> tuple[int, int]:
    """`<partition>:<offset>`."""
    partition, sep, offset = text.strip().partition(":")
    if not (sep and _digits(partition) and _digits(offset)):
        raise BadInput(f"not a dead letter's place: {text!r} (write <partition>:<offset>, e.g. 0:17)")
    return int(partition), int(offset)


def dlq_topic_name(name: str, prefix: str) -> str:
    """The qualified dead-letter topic for `orders`, `orders.dlq` or `<prefix>orders.dlq`."""
    base = name.strip().removesuffix(".dlq")
    if prefix and base.startswith(prefix):
        base = base[len(prefix) :]
    known = [t.value for t in Topic]
    if base not in known:
        raise BadInput(f"no dead-letter topic {name!r}: one of {', '.join(known)} (prefix {prefix!r})")
    return dead_letter_topic(Topic(base).qualified(prefix))


@dataclass(frozen=True)
class Criteria:
    refs: tuple[tuple[int, int], ...] = ()  # () = every letter (--all)
    reason_contains: str | None = None
    event_type: str | None = None
    service: str | None = None
    force: bool = False  # act on letters already replayed or purged too

    def matches(self, letter: Letter) -> bool:
        if (
            self.reason_contains is not None
            and self.reason_contains.casefold() not in letter.reason.casefold()
        ):
            return False
        if self.event_type is not None and letter.event_type != self.event_type:
            return False
        return self.service is None or letter.service == self.service


@dataclass(frozen=True)
class Selection:
    chosen: list[Letter]
    skipped: list[tuple[Letter, str]]  # matched, but left alone: why
    missing: list[tuple[int, int]]  # named refs that are not in the topic


def _handled(history: Sequence[DeadLetterAudit]) -> str:
    last = history[-1]
    when = last.at.isoformat(timespec="seconds")
    return f"already {last.action} by {last.actor} at {when}; --force to act again"


def select(letters: Sequence[Letter], history: History, criteria: Criteria) -> Selection:
    """The letters to act on, in offset order: the named ones (or all) that match the filters and are still
    open (or any status, with force)."""
    by_place = {(letter.ref.partition, letter.ref.offset): letter for letter in letters}
    if criteria.refs:
        named = list(dict.fromkeys(criteria.refs))
        missing = [ref for ref in named if ref not in by_place]
        candidates = [by_place[ref] for ref in named if ref in by_place]
    else:
        missing, candidates = [], list(letters)
    chosen, skipped = [], []
    for letter in sorted(candidates, key=lambda x: x.ref.sort_key):
        if not criteria.matches(letter):
            continue
        past = history.get(letter.ref, ())
        if past and not criteria.force:
            skipped.append((letter, _handled(past)))
        else:
            chosen.append(letter)
    return Selection(chosen, skipped, missing)


@dataclass(frozen=True)
class ReplayGroup:
    """One source message to publish again, and every dead letter of it that the replay settles."""

    source: Position
    letters: tuple[Letter, ...]  # the chosen first, then open siblings (other services' letters of it)

    @property
    def carrier(self) -> Letter:
        """The letter whose copy is published: a whole copy if any has one."""
        return next((x for x in self.letters if not x.reference), self.letters[0])


def replay_groups(
    chosen: Sequence[Letter], letters: Sequence[Letter], history: History
) -> tuple[list[ReplayGroup], list[tuple[Letter, str]]]:
    """Group the chosen letters by source message, in source order (so a key's events go out in their
    original order); add the other open letters of the same message. Letters without a source: skipped."""
    siblings: dict[Position, list[Letter]] = defaultdict(list)
    for letter in letters:
        if (source := letter.source) is not None:
            siblings[source].append(letter)
    groups: dict[Position, list[Letter]] = {}
    unreplayable = []
    for letter in chosen:
        source = letter.source
        if source is None:
            unreplayable.append((letter, "its headers do not say where it came from (dlq_source_*)"))
            continue
        if dead_letter_topic(source.topic) != letter.ref.topic:  # a replay goes only where letters come from
            unreplayable.append((letter, f"its source {source.topic} is not this dead-letter topic's"))
            continue
        groups.setdefault(source, []).append(letter)
    out = []
    for source in sorted(groups, key=lambda p: p.sort_key):
        members = groups[source]
        taken = {x.ref for x in members}
        extra = [x for x in siblings[source] if x.ref not in taken and not history.get(x.ref)]
        out.append(ReplayGroup(source, tuple([*members, *sorted(extra, key=lambda x: x.ref.sort_key)])))
    return out, unreplayable


def replay_headers(original: Headers, of: Position, operation: Operation) -> list[tuple[str, bytes]]:
    """The original headers (without the dead letter's or an earlier replay's) plus the replay's."""
    kept = [(k, v) for k, v in original if not k.startswith(_STRIPPED_ON_REPLAY)]
    return [
        *kept,
        ("replay_of", str(of).encode()),
        ("replay_operation_id", str(operation.operation_id).encode()),
        ("replay_actor", operation.actor.encode()),
        ("replay_at", operation.at.isoformat().encode()),
    ]


def deletable_before(letters: Sequence[Letter], low: int, high: int, history: History) -> int:
    """The offset before which a partition's records may be deleted: its first letter still open (or the
    end, when every letter is handled). Never below `low`."""
    open_offsets = [
        x.ref.offset
        for x in letters
        if low <= x.ref.offset < high and status_of(history.get(x.ref, ())) == "open"
    ]
    return max(low, min(open_offsets, default=high))


# --- output (pure) ------------------------------------------------------------------------------------------


class HistoryItem(BaseModel):
    action: str
    actor: str
    note: str
    at: datetime
    operation_id: UUID
    replayed_to: Position | None = None
    forced: bool = False


class LetterSummary(BaseModel):
    dlq_topic: str
    partition: int
    offset: int
    status: Status
    source: Position | None
    event_type: str | None
    event_id: str | None
    service: str | None
    failed_at: str | None
    reason: str
    reference: bool
    replay_of: str | None
    history: list[HistoryItem]


def summary(letter: Letter, history: Sequence[DeadLetterAudit]) -> LetterSummary:
    return LetterSummary(
        dlq_topic=letter.ref.topic,
        partition=letter.ref.partition,
        offset=letter.ref.offset,
        status=status_of(history),
        source=letter.source,
        event_type=letter.event_type,
        event_id=letter.event_id,
        service=letter.service,
        failed_at=letter.failed_at,
        reason=letter.reason,
        reference=letter.reference,
        replay_of=letter.replay_of,
        history=[
            HistoryItem(
                action=h.action,
                actor=h.actor,
                note=h.note,
                at=h.at,
                operation_id=h.operation_id,
                replayed_to=h.replayed_to,
                forced=h.forced,
            )
            for h in history
        ],
    )


def _cell(value: object, width: int | None = None) -> str:
    text = "" if value is None else " ".join(str(value).split())  # a reason may hold newlines
    if width is not None and len(text) > width:
        return text[: width - 1] + "…"
    return text


def table(columns: Sequence[str], rows: Iterable[Sequence[object]], *, indent: str = "  ") -> str:
    """A plain text table: a header row and left-aligned columns two spaces apart."""
    cells = [list(columns), *([_cell(v) for v in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join(
        indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def short_time(iso: str | None) -> str:
    """`2026-12-01 21:00:00` of an ISO timestamp (UTC); the text as it is when it is not one."""
    if not iso:
        return ""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _status_cell(s: LetterSummary) -> str:
    if not s.history:
        return s.status
    return s.status if len(s.history) == 1 else f"{s.status} ({len(s.history)} actions)"


def letters_table(summaries: Sequence[LetterSummary]) -> str:
    def source(s: LetterSummary) -> str:
        return "" if s.source is None else f"{s.source.partition}@{s.source.offset}"

    def reason(s: LetterSummary) -> str:
        text = s.reason if s.replay_of is None else f"[replay of {s.replay_of}] {s.reason}"
        return _cell(text, _REASON_COLUMN)

    return table(
        [
            "P:OFFSET",
            "STATUS",
            "SOURCE P@OFFSET",
            "EVENT",
            "EVENT ID",
            "SERVICE",
            "FAILED AT (UTC)",
            "REASON",
        ],
        [
            (
                f"{s.partition}:{s.offset}",
                _status_cell(s),
                source(s),
                s.event_type or "?",
                s.event_id or "?",
                s.service or "?",
                short_time(s.failed_at),
                reason(s),
            )
            for s in summaries
        ],
    )


def counts_of(summaries: Iterable[LetterSummary]) -> dict[str, int]:
    by_status = Counter(s.status for s in summaries)
    return {"total": by_status.total(), **{k: by_status[k] for k in ("open", "replayed", "purged")}}


def pretty_value(value: bytes | None, *, limit: int | None = _SHOW_TEXT_LIMIT) -> tuple[str, bool]:
    """The value as indented JSON (else as text) and whether it was cut at `limit` characters."""
    if value is None:
        return "(no value)", False
    try:
        text = json.dumps(json.loads(value), indent=2, ensure_ascii=False)
    except ValueError:
        text = value.decode("utf-8", "replace")
    if limit is not None and len(text) > limit:
        return text[:limit], True
    return text, False


def _indented(text: str, by: str = "    ") -> str:
    """Continuation lines of a multi-line value indented, so that they do not pass for fields."""
    return text.replace("\n", "\n" + by)


def show_text(letter: Letter, history: Sequence[DeadLetterAudit], *, full: bool = False) -> str:
    s = summary(letter, history)
    source = "unknown (no dlq_source_* headers)" if s.source is None else f"{s.source}"
    kafka_time = (
        ""
        if letter.timestamp_ms is None
        else datetime.fromtimestamp(letter.timestamp_ms / 1000, UTC).isoformat(timespec="milliseconds")
    )
    lines = [
        f"dead letter {letter.ref}  status: {s.status}",
        f"  reason:     {_indented(s.reason)}",
        f"  service:    {s.service or '?'}",
        f"  failed at:  {s.failed_at or '?'}  (written {kafka_time})",
        f"  source:     {source}",
        f"  event:      {s.event_type or '?'} {s.event_id or ''}".rstrip(),
        f"  key:        {_text(letter.key)!r}" if letter.key is not None else "  key:        (none)",
    ]
    if s.replay_of:
        lines.append(f"  replay of:  {s.replay_of} (it failed again)")
    lines.append("headers:")
    lines.extend(f"  {name}: {_indented(_text(content) or '')}" for name, content in letter.headers)
    if s.history:
        lines.append("history:")
        for h in s.history:
            to = f" -> {h.replayed_to}" if h.replayed_to else ""
            forced = " (forced)" if h.forced else ""
            lines.append(
                f"  {h.at.isoformat(timespec='seconds')} {h.action}{forced} by {h.actor}{to}: {h.note}"
            )
    text, cut = pretty_value(letter.value, limit=None if full else _SHOW_TEXT_LIMIT)
    if letter.reference:
        lines.append(
            f"value: only a reference; the original has {letter.value_bytes} bytes"
            f" (sha256 {letter.value_sha256}) at {source}; its first {len(letter.value or b'')} bytes:"
        )
    else:
        lines.append(f"value ({letter.value_bytes} bytes):")
    lines.append(text)
    if cut:
        lines.append(f"… cut at {_SHOW_TEXT_LIMIT} characters; --full prints all of it")
    return "\n".join(lines)


def show_json(letter: Letter, history: Sequence[DeadLetterAudit]) -> dict[str, Any]:
    payload: Any = None
    text: str | None = None
    if letter.value is not None:
        try:
            payload = json.loads(letter.value)
        except ValueError:
            text = letter.value.decode("utf-8", "replace")
    return {
        **summary(letter, history).model_dump(mode="json"),
        "key": _text(letter.key),
        "headers": [[name, _text(content)] for name, content in letter.headers],
        "value_bytes": letter.value_bytes,
        "value_sha256": letter.value_sha256,
        "kafka_timestamp_ms": letter.timestamp_ms,
        "payload": payload,
        "value_text": text,
    }


def audit_rows(records: Sequence[DeadLetterAudit | ParkedAudit]) -> str:
    def what(r: DeadLetterAudit | ParkedAudit) -> str:
        if isinstance(r, DeadLetterAudit):
            to = f" -> {r.replayed_to}" if r.replayed_to else ""
            return f"{r.letter}{to}"
        return f"{r.database} position {r.position}"

    def event(r: DeadLetterAudit | ParkedAudit) -> str:
        return f"{r.event_type or '?'} {r.event_id or ''}".strip()

    return table(
        ["AT (UTC)", "ACTION", "ACTOR", "WHAT", "EVENT", "NOTE"],
        [
            (
                short_time(r.at.isoformat()),
                f"{r.kind}:{r.action}",
                r.actor,
                what(r),
                event(r),
                _cell(r.note, 60),
            )
            for r in records
        ],
    )


def database_label(url: str) -> str:
    """`host:port/database` of a PostgreSQL URL: names the database in the audit, without credentials."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = parts.port or 5432
    except ValueError:
        return "unknown"
    return f"{host}:{port}/{parts.path.lstrip('/') or '?'}"


# --- Kafka --------------------------------------------------------------------------------------------------


@dataclass
class TopicScan(Generic[T]):
    topic: str
    exists: bool
    watermarks: dict[int, tuple[int, int]] = field(default_factory=dict)  # partition -> (low, high)
    items: list[T] = field(default_factory=list)  # what `keep` made of each record, in offset order


class Kafka:
    """The tool's clients: a consumer without a group (reads by position, commits nothing), an admin client
    and, for writing, a reliable producer. Every read ends at the high watermarks seen when it began."""

    def __init__(self, settings: ToolSettings, *, timeout: float) -> None:
        self._settings = settings
        self._options = client_options(settings)
        self._timeout = timeout
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **self._options,
        )
        self._admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, **self._options)
        self._producer: AIOKafkaProducer | None = None
        self._topics: set[str] | None = None
        self.audit_topic = f"{settings.topic_prefix}{AUDIT_TOPIC}"

    async def __aenter__(self) -> "Kafka":
        try:
            async with asyncio.timeout(self._timeout):
                await self._admin.start()
                await self._consumer.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        for stop in (
            self._consumer.stop,
            self._admin.close,
            *([self._producer.stop] if self._producer else []),
        ):
            with contextlib.suppress(Exception):
                await stop()

    async def topics(self, *, refresh: bool = False) -> set[str]:
        # Listing (rather than describing by name) cannot make a broker with auto.create.topics.enable
        # create a topic that was only looked at.
        if self._topics is None or refresh:
            self._topics = set(await self._admin.list_topics())
        return self._topics

    async def partitions(self, topic: str) -> list[int]:
        described = await self._admin.describe_topics([topic])
        return sorted(p["partition"] for d in described if d["topic"] == topic for p in d["partitions"])

    async def scan(self, topic: str, keep: Callable[[Record], T]) -> TopicScan[T]:
        """Every record of the topic, from its first offset to the end as it was when the scan began, as
        `keep` makes it (at once, so that what it drops is not held)."""
        if topic not in await self.topics():
            return TopicScan(topic, exists=False)
        tps = [TopicPartition(topic, p) for p in await self.partitions(topic)]
        lows, highs = await self._consumer.beginning_offsets(tps), await self._consumer.end_offsets(tps)
        ranges = {tp: (lows[tp], highs[tp]) for tp in tps}
        found = await self._read(ranges, lambda r: ((r.partition, r.offset), keep(r)))
        return TopicScan(
            topic,
            exists=True,
            watermarks={tp.partition: r for tp, r in ranges.items()},
            items=[item for _, item in sorted(found, key=lambda x: x[0])],
        )

    async def letters(self, topic: str, *, values: bool = True) -> TopicScan[Letter]:
        return await self.scan(topic, Letter.of if values else lambda r: Letter.of(r).slim())

    async def fetch(self, where: Position) -> Record | None:
        """One record, or None if it is not (or no longer) there."""
        if where.topic not in await self.topics():
            return None
        tp = TopicPartition(where.topic, where.partition)
        if where.partition not in await self.partitions(where.topic):
            return None
        low, high = (
            (await self._consumer.beginning_offsets([tp]))[tp],
            (await self._consumer.end_offsets([tp]))[tp],
        )
        if not low <= where.offset < high:
            return None
        found = await self._read({tp: (where.offset, where.offset + 1)}, lambda r: r)
        return next((r for r in found if r.offset == where.offset), None)

    async def _read(
        self, ranges: Mapping[TopicPartition, tuple[int, int]], keep: Callable[[Record], T]
    ) -> list[T]:
        todo = {tp: high for tp, (low, high) in ranges.items() if low < high}
        if not todo:
            return []
        self._consumer.assign(list(todo))
        for tp, (low, _) in ranges.items():
            if tp in todo:
                self._consumer.seek(tp, low)
        items: list[T] = []
        deadline = time.monotonic() + self._timeout
        while todo:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure(f"reading {sorted({tp.topic for tp in todo})} took over {self._timeout} s")
            batches = await self._consumer.getmany(*todo, timeout_ms=int(min(left, 0.5) * 1000))
            for tp, batch in batches.items():
                items.extend(keep(r) for r in batch if r.offset < todo.get(tp, -1))
            for tp in list(todo):
                if await self._consumer.position(tp) >= todo[tp]:
                    del todo[tp]
                    self._consumer.pause(tp)
        return items

    async def audit_records(self) -> list[DeadLetterAudit | ParkedAudit]:
        """Every audit record, oldest first; one that cannot be read is reported and left out."""
        scan = await self.scan(self.audit_topic, lambda r: r)
        out = []
        for r in scan.items:
            try:
                out.append(AUDIT_RECORD.validate_json(r.value or b""))
            except ValidationError as e:
                log.warning(
                    "unreadable audit record ignored",
                    topic=r.topic,
                    partition=r.partition,
                    offset=r.offset,
                    error=str(e).splitlines()[0],
                )
        return sorted(out, key=lambda a: a.at)

    async def ensure_audit_topic(self) -> None:
        """One partition (the records' order is the audit's), kept forever: it must outlive the letters."""
        if self.audit_topic in await self.topics(refresh=True):
            return
        if not self._settings.topic_auto_create:
            raise Failure(f"the audit topic {self.audit_topic} does not exist (TOPIC_AUTO_CREATE=false)")
        topic = NewTopic(
            self.audit_topic,
            num_partitions=1,
            replication_factor=self._settings.topic_replication_factor,
            topic_configs={"retention.ms": "-1", "cleanup.policy": "delete"},
        )
        response = await self._admin.create_topics([topic])
        errors = [
            (name, code)
            for name, code, *_ in response.topic_errors
            if code not in (0, TopicAlreadyExistsError.errno)
        ]
        if errors:
            raise Failure(f"could not create the audit topic (name, Kafka error code): {errors}")
        log.info("audit topic created", topic=self.audit_topic)
        self._topics = None
        await self._until_led(self.audit_topic)

    async def _until_led(self, topic: str) -> None:
        """Until the new topic's partitions have a leader: a producer sending sooner only warns and waits."""
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            described = await self._admin.describe_topics([topic])
            partitions = [
                p for d in described if d["topic"] == topic and d["error_code"] == 0 for p in d["partitions"]
            ]
            if partitions and all(p["leader"] >= 0 for p in partitions):
                return
            await asyncio.sleep(0.1)
        raise Failure(f"the new topic {topic} has no leader after {self._timeout} s")

    async def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = reliable_producer(self._settings.kafka_bootstrap_servers, **self._options)
            async with asyncio.timeout(self._timeout):
                await producer.start()
            self._producer = producer
        return self._producer

    async def write_audit(self, records: Sequence[DeadLetterAudit | ParkedAudit]) -> None:
        """Publish the records and wait until Kafka acknowledged every one."""
        producer = await self.producer()
        acks = [
            await producer.send(
                self.audit_topic,
                value=r.model_dump_json().encode(),
                key=audit_key(r),
                headers=[("audit_kind", r.kind.encode()), ("audit_action", r.action.encode())],
            )
            for r in records
        ]
        async with asyncio.timeout(self._timeout):
            await asyncio.gather(*acks)

    async def delete_before(self, topic: str, offsets: Mapping[int, int]) -> dict[int, int]:
        """delete_records: each partition's records before the offset; returns the new low watermarks."""
        if not offsets:
            return {}
        done = await self._admin.delete_records(
            {TopicPartition(topic, p): RecordsToDelete(o) for p, o in offsets.items()}
        )
        return {tp.partition: low for tp, low in done.items()}


# --- commands -----------------------------------------------------------------------------------------------


@dataclass
class Output:
    out: TextIO
    err: TextIO
    as_json: bool

    def emit(self, data: Any, human: str | Callable[[], str]) -> None:
        if self.as_json:
            print(json.dumps(data, indent=2, default=str), file=self.out)
        else:
            print(human() if callable(human) else human, file=self.out)


def _kafka(args: argparse.Namespace, settings: ToolSettings) -> Kafka:
    return Kafka(settings, timeout=args.timeout)


def _operation(args: argparse.Namespace) -> Operation:
    try:
        return Operation(actor=args.actor.strip(), note=args.note.strip())
    except ValidationError as e:
        problems = "; ".join(f"--{err['loc'][0]}: {err['msg']}" for err in e.errors())
        raise BadInput(problems) from None


def _criteria(args: argparse.Namespace, *, refs_required: bool) -> Criteria:
    refs = tuple(parse_ref(r) for r in args.refs)
    if refs_required and refs and args.all:
        raise BadInput("name dead letters (<partition>:<offset>) or give --all, not both")
    if refs_required and not refs and not args.all:
        raise BadInput("name the dead letters (<partition>:<offset>...) or give --all")
    return Criteria(
        refs=refs,
        reason_contains=args.reason_contains,
        event_type=args.event_type,
        service=args.service,
        force=getattr(args, "force", False),
    )


_LISTED: dict[str, set[str]] = {
    "all": {"open", "replayed", "purged"},
    "handled": {"replayed", "purged"},
    **{status: {status} for status in ("open", "replayed", "purged")},
}


async def cmd_list(args: argparse.Namespace, settings: ToolSettings, output: Output) -> int:
    names = [dlq_topic_name(t, settings.topic_prefix) for t in args.topic] or [
        dead_letter_topic(t.qualified(settings.topic_prefix)) for t in Topic
    ]
    criteria = Criteria(
        reason_contains=args.reason_contains, event_type=args.event_type, service=args.service
    )
    wanted = _LISTED[args.status]
    async with _kafka(args, settings) as kafka:
        history = history_of(await kafka.audit_records())
        scans = [await kafka.letters(name, values=False) for name in dict.fromkeys(names)]
    report, human, matched = [], [], 0
    for scan in scans:
        summaries = [summary(x, history.get(x.ref, ())) for x in scan.items if criteria.matches(x)]
        listed = [s for s in summaries if s.status in wanted]
        shown = listed[: args.limit]
        matched += len(listed)
        counts = counts_of(summaries)
        report.append(
            {
                "topic": scan.topic,
                "exists": scan.exists,
                "partitions": [
                    {"partition": p, "low": lo, "high": hi} for p, (lo, hi) in scan.watermarks.items()
                ],
                "counts": counts,
                "matched": len(listed),
                "letters": [s.model_dump(mode="json") for s in shown],
            }
        )
        if not scan.exists:
            human.append(f"{scan.topic}: no such topic")
            continue
        deleted = ", ".join(f"partition {p} before {lo}" for p, (lo, _) in scan.watermarks.items() if lo > 0)
        head = (
            f"{scan.topic}: {counts['total']} dead letters ({counts['open']} open, "
            f"{counts['replayed']} replayed, {counts['purged']} purged)"
            + (f"; deleted: {deleted}" if deleted else "")
        )
        human.append(head)
        if shown:
            human.append(letters_table(shown))
        if len(listed) > len(shown):
            human.append(f"  … {len(listed) - len(shown)} more (--limit)")
    output.emit({"topics": report}, "\n".join(human))
    return _EXIT_OK if matched else _EXIT_NOTHING


async def cmd_show(args: argparse.Namespace, settings: ToolSettings, output: Output) -> int:
    topic = dlq_topic_name(args.topic, settings.topic_prefix)
    match args.where:
        case [ref]:
            partition, offset = parse_ref(ref)
        case [partition_text, offset_text] if _digits(partition_text) and _digits(offset_text):
            partition, offset = int(partition_text), int(offset_text)
        case _:
            raise BadInput(
                f"show {args.topic} <partition> <offset> (or <partition>:<offset>), not {args.where}"
            )
    where = Position(topic=topic, partition=partition, offset=offset)
    async with _kafka(args, settings) as kafka:
        record = await kafka.fetch(where)
        history = history_of(await kafka.audit_records()) if record is not None else {}
    if record is None:
        print(f"no dead letter at {where}", file=output.err)
        return _EXIT_NOTHING
    letter = Letter.of(record)
    past = history.get(letter.ref, ())
    output.emit(show_json(letter, past), lambda: show_text(letter, past, full=args.full))
    return _EXIT_OK


@dataclass
class _Outcome:
    done: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None  # what stopped the command after it began to change things

    def skip(self, letter: Letter, why: str) -> None:
        self.skipped.append({"letter": str(letter.ref), "why": why})

    def report(self, operation: Operation, action: str, **extra: Any) -> dict[str, Any]:
        return {
            "action": action,
            "operation_id": str(operation.operation_id),
            "actor": operation.actor,
            "note": operation.note,
            "at": operation.at.isoformat(),
            "done": self.done,
            "skipped": self.skipped,
            "failed": self.failed,
            "problem": self.problem,
            **extra,
        }

    def exit_code(self) -> int:
        if self.failed or self.problem:
            return _EXIT_FAILED
        return _EXIT_OK if self.done else _EXIT_NOTHING


def _outcome_text(
    title: str, outcome: _Outcome, done_columns: Sequence[str], done_keys: Sequence[str]
) -> str:
    lines = [
        f"{title}: {len(outcome.done)} done, {len(outcome.skipped)} skipped, {len(outcome.failed)} failed"
    ]
    if outcome.problem:
        lines.append(f"PROBLEM: {outcome.problem}")
    if outcome.done:
        lines.append(table(done_columns, [[d.get(k) for k in done_keys] for d in outcome.done]))
    if outcome.skipped:
        lines.append("skipped:")
        lines.append(
            table(
                ["WHAT", "WHY"], [[s.get("letter") or s.get("position"), s["why"]] for s in outcome.skipped]
            )
        )
    if outcome.failed:
        lines.append("failed:")
        lines.append(
            table(
                ["WHAT", "ERROR"],
                [[f.get("letter") or f.get("position"), f["error"]] for f in outcome.failed],
            )
        )
    return "\n".join(lines)


def _selection_or_bad_input(topic: str, selection: Selection) -> None:
    if selection.missing:
        places = ", ".join(f"{p}:{o}" for p, o in selection.missing)
        raise BadInput(f"no dead letter at {places} in {topic}: nothing was done")


async def _original(
    kafka: Kafka, group: ReplayGroup
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """Key, value and headers of the message to publish again. A reference's original is read back from
    its source topic and must have the SHA-256 the reference recorded."""
    carrier = group.carrier
    if not carrier.reference:
        return carrier.key, carrier.value, carrier.original_headers
    record = await kafka.fetch(group.source)
    if record is None:
        raise Failure(f"only a reference, and the original is no longer at {group.source} (retention?)")
    digest = hashlib.sha256(record.value or b"").hexdigest()
    if digest != carrier.value_sha256:
        raise Failure(f"the message at {group.source} is not the one the reference names (sha256 {digest})")
    return record.key, record.value, list(record.headers)


async def cmd_replay(args: argparse.Namespace, settings: ToolSettings, output: Output) -> int:
    topic = dlq_topic_name(args.topic, settings.topic_prefix)
    criteria = _criteria(args, refs_required=True)
    operation = _operation(args)
    outcome = _Outcome()
    async with _kafka(args, settings) as kafka:
        history = history_of(await kafka.audit_records())
        letters = (await kafka.letters(topic)).items
        selection = select(letters, history, criteria)
        _selection_or_bad_input(topic, selection)
        groups, unreplayable = replay_groups(selection.chosen, letters, history)
        for letter, why in [*selection.skipped, *unreplayable]:
            outcome.skip(letter, why)
        if groups and args.dry_run:
            outcome.done = [
                {"letter": str(x.ref), "source": str(g.source), "replayed_to": "(dry run)"}
                for g in groups
                for x in g.letters
            ]
        elif groups:
            await kafka.ensure_audit_topic()
            await _replay(kafka, groups, operation, criteria.force, outcome)
    title = f"replay from {topic}" + (" (dry run: nothing sent)" if args.dry_run else "")
    output.emit(
        outcome.report(operation, "replay", dry_run=args.dry_run),
        lambda: _outcome_text(
            title, outcome, ["LETTER", "SOURCE", "REPLAYED TO"], ["letter", "source", "replayed_to"]
        ),
    )
    return outcome.exit_code()


async def _replay(
    kafka: Kafka, groups: Sequence[ReplayGroup], operation: Operation, forced: bool, outcome: _Outcome
) -> None:
    producer = await kafka.producer()
    sent: list[tuple[ReplayGroup, asyncio.Future[Any]]] = []
    for group in groups:  # in source order; the idempotent producer keeps each partition's order
        try:
            key, value, headers = await _original(kafka, group)
            # Back to the partition it came from: the producer that wrote it may partition keys
            # differently from ours, and its key's order lives in that partition.
            ack = await producer.send(
                group.source.topic,
                value=value,
                key=key,
                partition=group.source.partition,
                headers=replay_headers(headers, group.letters[0].ref, operation),
            )
            sent.append((group, ack))
        except (Failure, KafkaError) as e:
            for x in group.letters:
                outcome.failed.append({"letter": str(x.ref), "error": f"{e}"})
    audit: list[DeadLetterAudit] = []
    results = await asyncio.gather(*(ack for _, ack in sent), return_exceptions=True)
    for (group, _), result in zip(sent, results, strict=True):
        if isinstance(result, BaseException):
            for x in group.letters:
                outcome.failed.append({"letter": str(x.ref), "error": f"{type(result).__name__}: {result}"})
            continue
        to = Position(topic=result.topic, partition=result.partition, offset=result.offset)
        for x in group.letters:
            audit.append(dead_letter_audit(x, operation, "replayed", replayed_to=to, forced=forced))
            outcome.done.append({"letter": str(x.ref), "source": str(group.source), "replayed_to": str(to)})
    if audit:
        try:
            await kafka.write_audit(audit)
        except (KafkaError, TimeoutError) as e:
            # Sent but not recorded: replaying them again is harmless (the consumers' inboxes drop them).
            outcome.problem = f"replayed (and logged) but not recorded in the audit topic: {e!r}"
        finally:
            for a in audit:
                log.warning(
                    "dead letter replayed",
                    letter=str(a.letter),
                    source=str(a.source),
                    replayed_to=str(a.replayed_to),
                    event_type=a.event_type,
                    event_id=a.event_id,
                    actor=a.actor,
                    note=a.note,
                    operation_id=str(a.operation_id),
                    forced=a.forced,
                )


async def cmd_purge(args: argparse.Namespace, settings: ToolSettings, output: Output) -> int:
    topic = dlq_topic_name(args.topic, settings.topic_prefix)
    trim_only = args.delete_records and not args.refs and not args.all
    criteria = Criteria() if trim_only else _criteria(args, refs_required=True)
    operation = _operation(args)
    outcome = _Outcome()
    deleted: dict[int, int] = {}
    async with _kafka(args, settings) as kafka:
        history = history_of(await kafka.audit_records())
        scan = await kafka.letters(topic, values=False)
        letters = scan.items
        if not trim_only:
            selection = select(letters, history, criteria)
            _selection_or_bad_input(topic, selection)
            for letter, why in selection.skipped:
                outcome.skip(letter, why)
            records = [
                dead_letter_audit(x, operation, "purged", forced=criteria.force) for x in selection.chosen
            ]
            outcome.done = [{"letter": str(x.ref), "reason": x.reason} for x in selection.chosen]
            if records and not args.dry_run:
                await kafka.ensure_audit_topic()
                await kafka.write_audit(records)
                for r in records:
                    log.warning(
                        "dead letter purged",
                        letter=str(r.letter),
                        source=str(r.source),
                        event_type=r.event_type,
                        event_id=r.event_id,
                        actor=r.actor,
                        note=r.note,
                        operation_id=str(r.operation_id),
                    )
                history = history_of([*(a for h in history.values() for a in h), *records])
        if args.delete_records and not args.dry_run:
            try:
                deleted = await _delete_handled(kafka, scan, letters, history, operation)
            except KafkaError as e:  # what was purged is recorded: only the deletion is left to do
                outcome.problem = f"could not delete the handled records: {type(e).__name__}: {e}"
    title = f"purge in {topic}" + (" (dry run: nothing recorded)" if args.dry_run else "")
    output.emit(
        outcome.report(
            operation, "purge", dry_run=args.dry_run, deleted_before={str(p): o for p, o in deleted.items()}
        ),
        lambda: (
            _outcome_text(title, outcome, ["LETTER", "REASON"], ["letter", "reason"])
            + "".join(f"\npartition {p}: records before offset {o} deleted" for p, o in deleted.items())
        ),
    )
    if outcome.problem:
        return _EXIT_FAILED
    return _EXIT_OK if outcome.done or deleted else _EXIT_NOTHING


async def _delete_handled(
    kafka: Kafka, scan: TopicScan[Letter], letters: Sequence[Letter], history: History, operation: Operation
) -> dict[int, int]:
    by_partition: dict[int, list[Letter]] = defaultdict(list)
    for x in letters:
        by_partition[x.ref.partition].append(x)
    bounds = {
        p: bound
        for p, (low, high) in scan.watermarks.items()
        if (bound := deletable_before(by_partition[p], low, high, history)) > low
    }
    deleted = await kafka.delete_before(scan.topic, bounds)
    for p, low in deleted.items():
        log.warning(
            "handled dead letters deleted",
            topic=scan.topic,
            partition=p,
            before_offset=low,
            actor=operation.actor,
            note=operation.note,
            operation_id=str(operation.operation_id),
        )
    return deleted


async def cmd_audit(args: argparse.Namespace, settings: ToolSettings, output: Output) -> int:
    async with _kafka(args, settings) as kafka:
        records = [r for r in await kafka.audit_records() if args.kind in (None, r.kind)]
    shown = records[-args.limit :]
    output.emit(
        {
            "topic": f"{settings.topic_prefix}{AUDIT_TOPIC}",
            "records": [r.model_dump(mode="json") for r in shown],
        },
        lambda: audit_rows(shown) if shown else "no audit records",
    )
    return _EXIT_OK if shown else _EXIT_NOTHING


# --- parked relay events ------------------------------------------------------------------------------------


def _parked_json(p: outbox.ParkedEvent) -> dict[str, Any]:
    return {
        "position": p.position,
        "event_id": p.event_id,
        "event_type": p.event_type,
        "topic": p.topic,
        "partition_key": p.partition_key,
        "reason": p.reason,
        "parked_at": p.parked_at.isoformat(),
        "waiting_behind": p.waiting_behind,
    }


def parked_table(events: Sequence[outbox.ParkedEvent]) -> str:
    return table(
        ["POSITION", "EVENT", "EVENT ID", "TOPIC", "KEY", "WAITING BEHIND", "PARKED AT (UTC)", "REASON"],
        [
            (
                p.position,
                p.event_type,
                p.event_id,
                p.topic,
                _cell(p.partition_key, 40),
                p.waiting_behind,
                short_time(p.parked_at.isoformat()),
                _cell(p.reason, _REASON_COLUMN),
            )
            for p in events
        ],
    )


def select_parked(
    events: Sequence[outbox.ParkedEvent], positions: Sequence[int], reason_contains: str | None
) -> tuple[list[outbox.ParkedEvent], list[int]]:
    """The parked events to act on (all if no positions are named) and the named positions not parked."""
    by_position = {p.position: p for p in events}
    missing = [n for n in dict.fromkeys(positions) if n not in by_position]
    chosen = (
        [by_position[n] for n in dict.fromkeys(positions) if n in by_position] if positions else list(events)
    )
    if reason_contains is not None:
        chosen = [p for p in chosen if reason_contains.casefold() in p.reason.casefold()]
    return sorted(chosen, key=lambda p: p.position), missing


@contextlib.asynccontextmanager
async def _database(
    args: argparse.Namespace, settings: ToolSettings
) -> AsyncIterator[tuple[asyncpg.Connection, str]]:
    url = args.database_url or settings.database_url_of(args.service)
    if not url:
        raise BadInput(
            "which service's database? give --service NAME (with NAME_DATABASE_URL set), set DATABASE_URL "
            "or give --database-url"
        )
    async with asyncio.timeout(args.timeout):
        conn = await asyncpg.connect(url)
    try:
        yield conn, database_label(url)
    finally:
        await conn.close()


async def cmd_parked_list(args: argparse.Namespace, settings: ToolSettings, output: Output) -> int:
    async with _database(args, settings) as (conn, label):
        events = await outbox.parked_events(conn)
    output.emit(
        {"database": label, "parked": [_parked_json(p) for p in events]},
        lambda: f"{label}: {len(events)} parked events" + (f"\n{parked_table(events)}" if events else ""),
    )
    return _EXIT_OK if events else _EXIT_NOTHING


async def cmd_parked_act(args: argparse.Namespace, settings: ToolSettings, output: Output) -> int:
    verb: Literal["retried", "discarded"] = "retried" if args.parked_command == "retry" else "discarded"
    if bool(args.positions) == bool(args.all):
        raise BadInput("name the parked events' positions or give --all (not both)")
    operation = _operation(args)
    outcome = _Outcome()
    async with _database(args, settings) as (conn, label):
        events = await outbox.parked_events(conn)
        chosen, missing = select_parked(events, args.positions, args.reason_contains)
        if missing:
            raise BadInput(f"not parked in {label}: {', '.join(map(str, missing))}: nothing was done")
        if chosen and args.dry_run:
            outcome.done = [
                {"position": p.position, "event_type": p.event_type, "topic": p.topic} for p in chosen
            ]
        elif chosen:
            async with _kafka(args, settings) as kafka:
                await kafka.ensure_audit_topic()  # before the database is touched: every action is audited
                await kafka.producer()
                service = args.service or label.rpartition("/")[2]
                await _act_on_parked(conn, kafka, chosen, verb, operation, label, service, outcome)
    title = f"parked events {verb} in {label}" + (" (dry run: nothing changed)" if args.dry_run else "")
    output.emit(
        outcome.report(operation, f"parked_{args.parked_command}", database=label, dry_run=args.dry_run),
        lambda: _outcome_text(
            title, outcome, ["POSITION", "EVENT", "TOPIC"], ["position", "event_type", "topic"]
        ),
    )
    return outcome.exit_code()


async def _act_on_parked(
    conn: asyncpg.Connection,
    kafka: Kafka,
    chosen: Sequence[outbox.ParkedEvent],
    verb: Literal["retried", "discarded"],
    operation: Operation,
    label: str,
    service: str,
    outcome: _Outcome,
) -> None:
    """Retry or discard each (one transaction each, as the HTTP route does), then audit what was done."""
    act = outbox.retry_parked if verb == "retried" else outbox.discard_parked
    records = []
    try:
        for p in chosen:
            if not await act(conn, p.position):
                outcome.skipped.append({"position": p.position, "why": "no longer parked"})
                continue
            records.append(
                ParkedAudit(
                    operation_id=operation.operation_id,
                    actor=operation.actor,
                    note=operation.note,
                    at=operation.at,
                    action=verb,
                    database=label,
                    service=service,
                    position=p.position,
                    event_id=p.event_id,
                    event_type=p.event_type,
                    topic=p.topic,
                    partition_key=p.partition_key,
                    reason=p.reason[:2000],
                )
            )
            # the line the service's HTTP route logs, plus which database and operation
            log.warning(
                f"parked event {verb}",
                position=p.position,
                event_id=p.event_id,
                database=label,
                actor=operation.actor,
                note=operation.note,
                operation_id=str(operation.operation_id),
            )
            outcome.done.append({"position": p.position, "event_type": p.event_type, "topic": p.topic})
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        outcome.problem = f"the database failed after {len(records)} parked events: {type(e).__name__}: {e}"
    if records:
        try:
            await kafka.write_audit(records)
        except (KafkaError, TimeoutError) as e:
            outcome.problem = f"{len(records)} parked events {verb} (and logged) but not audited: {e!r}"


# --- the command line ---------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # exit 2 through run(), with the usage
        raise BadInput(f"{message}\n{self.format_usage().rstrip()}")


def _positive(text: str) -> int:
    if not _digits(text) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a whole number from 1, not {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"seconds above 0, not {text!r}")
    return value


def _position(text: str) -> int:
    if not _digits(text):
        raise argparse.ArgumentTypeError(f"a parked event's position (a number), not {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="JSON on stdout instead of a table")
    common.add_argument(
        "--timeout", type=_seconds, default=60.0, help="seconds for each Kafka or database step"
    )
    filters = _Parser(add_help=False)
    filters.add_argument("--reason-contains", metavar="TEXT", help="only letters whose reason contains TEXT")
    filters.add_argument("--event-type", metavar="TYPE", help="only letters of this event type")
    filters.add_argument("--service", metavar="NAME", help="only letters this service dead-lettered")
    who = _Parser(add_help=False)
    who.add_argument("--actor", required=True, help="who does it (recorded in the audit)")
    who.add_argument("--note", required=True, help="why (recorded in the audit)")
    who.add_argument("--dry-run", action="store_true", help="say what would be done, do nothing")

    parser = _Parser(
        prog="python -m backbone.deadletters",
        description="Dead letters and parked relay events: list, show, replay, purge, audit.",
        epilog="Settings: KAFKA_BOOTSTRAP_SERVERS, KAFKA_SECURITY_PROTOCOL (+ KAFKA_SASL_*, "
        "KAFKA_SSL_CAFILE), TOPIC_PREFIX, TOPIC_AUTO_CREATE, TOPIC_REPLICATION_FACTOR, "
        "DATABASE_URL (parked). "
        "Exit codes: 0 done, 1 nothing matched, 2 bad input, 3 could not complete.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser(
        "list", parents=[common, filters], help="dead letters per topic, with status"
    )
    listing.add_argument(
        "--topic", action="append", default=[], help="orders, inventory, ... (repeatable; default all)"
    )
    listing.add_argument("--status", choices=sorted(_LISTED), default="all")
    listing.add_argument("--limit", type=_positive, default=100, help="letters shown per topic (default 100)")
    listing.set_defaults(run=cmd_list)

    show = commands.add_parser("show", parents=[common], help="one dead letter in full")
    show.add_argument("topic", help="the dead-letter topic: orders, orders.dlq or <prefix>orders.dlq")
    show.add_argument(
        "where", nargs="+", metavar="PARTITION OFFSET", help="<partition> <offset> or <partition>:<offset>"
    )
    show.add_argument(
        "--full", action="store_true", help=f"print a value longer than {_SHOW_TEXT_LIMIT} characters whole"
    )
    show.set_defaults(run=cmd_show)

    for name, run, about in (
        ("replay", cmd_replay, "publish dead letters' originals to their source topic again"),
        ("purge", cmd_purge, "mark dead letters handled (and delete the handled prefix)"),
    ):
        sub = commands.add_parser(name, parents=[common, filters, who], help=about)
        sub.add_argument("topic", help="the dead-letter topic: orders, orders.dlq or <prefix>orders.dlq")
        sub.add_argument(
            "refs", nargs="*", metavar="PARTITION:OFFSET", help="the letters, as `list` shows them"
        )
        sub.add_argument(
            "--all", action="store_true", help="every letter of the topic that matches the filters"
        )
        sub.add_argument("--force", action="store_true", help="also letters already replayed or purged")
        sub.set_defaults(run=run)
        if name == "purge":
            sub.add_argument(
                "--delete-records",
                action="store_true",
                help="then delete each partition's records before its first letter still open",
            )

    audit = commands.add_parser(
        "audit", parents=[common], help="what was replayed, purged, retried, discarded"
    )
    audit.add_argument("--kind", choices=["dead_letter", "parked"])
    audit.add_argument("--limit", type=_positive, default=100, help="the latest N records (default 100)")
    audit.set_defaults(run=cmd_audit)

    parked = commands.add_parser("parked", help="events a service's outbox relay could not publish")
    parked_commands = parked.add_subparsers(dest="parked_command", required=True, metavar="COMMAND")
    database = _Parser(add_help=False)
    database.add_argument(
        "--service",
        choices=["order", "inventory", "procurement", "notifier", "edi"],
        help="whose database: <SERVICE>_DATABASE_URL (else DATABASE_URL); named in the audit",
    )
    database.add_argument("--database-url", help="the database itself (visible to `ps`: prefer the env)")
    parked_list = parked_commands.add_parser("list", parents=[common, database], help="the parked events")
    parked_list.set_defaults(run=cmd_parked_list)
    for name, about in (
        ("retry", "put them back into the outbox (ahead of their key's waiting events)"),
        ("discard", "never publish them (they stay in the event store); their key's events flow"),
    ):
        sub = parked_commands.add_parser(name, parents=[common, database, who], help=about)
        sub.add_argument(
            "positions", nargs="*", type=_position, metavar="POSITION", help="as `parked list` shows them"
        )
        sub.add_argument(
            "--all", action="store_true", help="every parked event (that matches --reason-contains)"
        )
        sub.add_argument("--reason-contains", metavar="TEXT")
        sub.set_defaults(run=cmd_parked_act)
    return parser


async def run(
    argv: Sequence[str],
    *,
    settings: ToolSettings | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """The command line, as an exit code; settings from the environment unless given."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        args = build_parser().parse_args(list(argv))
    except BadInput as e:
        print(f"error: {e}", file=err)
        return _EXIT_BAD_INPUT
    except SystemExit as e:  # --help
        return int(e.code or 0) if not isinstance(e.code, str) else _EXIT_BAD_INPUT
    try:
        settings = settings or ToolSettings()
    except ValidationError as e:
        print(f"error: settings: {e}", file=err)
        return _EXIT_BAD_INPUT
    output = Output(out, err, args.json)
    try:
        return int(await args.run(args, settings, output))
    except BadInput as e:
        print(f"error: {e}", file=err)
        return _EXIT_BAD_INPUT
    except Failure as e:
        print(f"failed: {e}", file=err)
        return _EXIT_FAILED
    except (KafkaError, OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        print(f"failed: {type(e).__name__}: {e}", file=err)
        return _EXIT_FAILED


def _log_to_stderr(level: str) -> None:
    """The services' JSON log lines (and processors), on stderr: stdout carries the tool's output."""
    logging.basicConfig(stream=sys.stderr, format="%(message)s", level=logging.WARNING)
    configure_logging("deadletters", level)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))


def main(argv: Sequence[str] | None = None) -> None:
    _log_to_stderr(os.environ.get("LOG_LEVEL", "INFO"))
    sys.exit(asyncio.run(run(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    main()
