"""Dead letters: a message that cannot be applied goes to `<topic>.dlq` with its bytes and the reason.

A dead letter that would not fit in a Kafka message (the message was refused for its size, or the
broker refuses the copy) is written as a *reference* instead: the first bytes of the value, its size
and SHA-256, and the original headers, so an operator can find and verify the original on the source
topic. Sending never gives up: a broker that is unreachable is retried with capped backoff, and the
caller commits its offsets only once every letter is acknowledged.

The producer should not be idempotent: aiokafka's idempotent producer does not recover from a batch the
broker refused for its size (the next batch of that partition fails with OutOfOrderSequenceNumber).
"""

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError
from aiokafka.structs import ConsumerRecord

from backbone.backoff import Backoff
from backbone.contracts import dead_letter_topic
from backbone.contracts.limits import MAX_EVENT_BYTES
from backbone.health import HealthReport

log = structlog.get_logger(__name__)

Headers = list[tuple[str, bytes]]

PREVIEW_BYTES = 4096  # of the value, in a reference
# A whole copy larger than this (value, key and headers) is not attempted: Kafka's default limits are
# 1 MiB per message, and the record batch around it needs some room.
MAX_COPY_BYTES = MAX_EVENT_BYTES + 64 * 1024
_REFERENCE_HEADER_BYTES = 32 * 1024  # original headers kept in a reference; the rest are dropped
_REFERENCE_KEY_BYTES = 1024
_REASON_CHARS = 2000  # a handler's error message can be arbitrarily long
_FIRST_DELAY, _MAX_DELAY = 0.2, 5.0
_SIZE_ERRORS = (MessageSizeTooLargeError, RecordListTooLargeError)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: ConsumerRecord[bytes, bytes]
    reason: str


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message for the dead-letter topic."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    reference: bool

    def size(self) -> int:
        return _size(self.key, self.value, self.headers)


def _size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    return len(key or b"") + len(value or b"") + sum(len(k) + len(v) for k, v in headers)


def _dlq_headers(letter: DeadLetter, service: str, failed_at: bytes) -> Headers:
    r = letter.record
    reason = letter.reason if len(letter.reason) <= _REASON_CHARS else f"{letter.reason[:_REASON_CHARS]}…"
    return [
        ("dlq_reason", reason.encode()),
        ("dlq_source_topic", r.topic.encode()),
        ("dlq_source_partition", str(r.partition).encode()),
        ("dlq_source_offset", str(r.offset).encode()),
        ("dlq_service", service.encode()),
        ("dlq_failed_at", failed_at),
    ]


def full_copy(letter: DeadLetter, service: str, failed_at: bytes) -> Outgoing:
    """The message unchanged (key, value, headers) plus the dlq_ headers."""
    r = letter.record
    headers = [*r.headers, *_dlq_headers(letter, service, failed_at)]
    return Outgoing(dead_letter_topic(r.topic), r.key, r.value, list(headers), reference=False)


def reference(letter: DeadLetter, service: str, failed_at: bytes, *, minimal: bool = False) -> Outgoing:
    """A letter that always fits: the value's first PREVIEW_BYTES, the original headers (up to a budget),
    the dlq_ headers, and `dlq_truncated: true` with the value's size and SHA-256. `minimal`: no preview
    and no original headers, for a dead-letter topic whose size limit is lower still."""
    r = letter.record
    value = r.value or b""
    kept: Headers = []
    budget = 0 if minimal else _REFERENCE_HEADER_BYTES
    for name, content in r.headers:
        budget -= len(name) + len(content)
        if budget < 0:
            break
        kept.append((name, content))
    marks: Headers = [
        ("dlq_truncated", b"true"),
        ("dlq_value_bytes", str(len(value)).encode()),
        ("dlq_value_sha256", hashlib.sha256(value).hexdigest().encode()),
    ]
    if len(kept) < len(r.headers):
        marks.append(("dlq_headers_dropped", str(len(r.headers) - len(kept)).encode()))
    key = r.key if r.key is None or len(r.key) <= _REFERENCE_KEY_BYTES else r.key[:_REFERENCE_KEY_BYTES]
    return Outgoing(
        dead_letter_topic(r.topic),
        key,
        b"" if minimal else value[:PREVIEW_BYTES],
        [*kept, *_dlq_headers(letter, service, failed_at), *marks],
        reference=True,
    )


class _Pending:
    """A letter on its way: whole copy first (unless too large), then a reference, then a minimal one."""

    def __init__(self, letter: DeadLetter, service: str, failed_at: bytes) -> None:
        self.letter = letter
        # Kafka refuses a whole record batch for its size: which letter of it was too large shows only when
        # each goes alone.
        self.alone = False
        copy = full_copy(letter, service, failed_at)
        self.forms = [
            reference(letter, service, failed_at),
            reference(letter, service, failed_at, minimal=True),
        ]
        if copy.size() <= MAX_COPY_BYTES:
            self.forms.insert(0, copy)

    @property
    def message(self) -> Outgoing:
        return self.forms[0]

    def shrink(self) -> bool:
        """Move on to the next smaller form; False if this was the smallest."""
        if len(self.forms) == 1:
            return False
        self.forms.pop(0)
        return True


class _RefusedAlone(Exception):
    """The producer refused this very message for its size, before batching it with any other."""


async def _send(producer: AIOKafkaProducer, message: Outgoing) -> None:
    try:
        ack = await producer.send(
            message.topic, value=message.value, key=message.key, headers=message.headers
        )
    except _SIZE_ERRORS as e:
        raise _RefusedAlone(str(e)) from e
    await ack


async def _send_round(producer: AIOKafkaProducer, pending: Sequence[_Pending]) -> list[BaseException | None]:
    """Send the letters, concurrently except those that must go alone; each one's error or None."""
    together = [p for p in pending if not p.alone]
    gathered = iter(
        await asyncio.gather(*(_send(producer, p.message) for p in together), return_exceptions=True)
    )
    results: list[BaseException | None] = []
    for p in pending:
        if not p.alone:
            results.append(next(gathered))
            continue
        try:
            await _send(producer, p.message)
            results.append(None)
        except Exception as e:
            results.append(e)
    return results


async def send_dead_letters(
    producer: AIOKafkaProducer,
    service: str,
    letters: Sequence[DeadLetter],
    *,
    health: HealthReport | None = None,
) -> None:
    """Publish every letter and wait for Kafka's acks; the caller commits offsets only afterwards.

    Returns only when all are acknowledged (or raises CancelledError): a letter refused for its size is
    re-sent as a reference at once, any other failure is retried with capped backoff, and `health` says
    degraded meanwhile."""
    failed_at = datetime.now(UTC).isoformat().encode()
    pending = [_Pending(letter, service, failed_at) for letter in letters]
    backoff = Backoff(first=_FIRST_DELAY, cap=_MAX_DELAY)
    while pending:
        results = await _send_round(producer, pending)
        retry, trouble = [], None
        for p, result in zip(pending, results, strict=True):
            r = p.letter.record
            where = {"topic": r.topic, "partition": r.partition, "offset": r.offset}
            if result is None:
                log.warning(
                    "message dead-lettered", **where, reason=p.letter.reason, reference=p.message.reference
                )
            elif isinstance(result, _SIZE_ERRORS) and not p.alone and len(pending) > 1:
                p.alone = True  # perhaps refused with a larger one: tried again on its own
                retry.append(p)
            elif isinstance(result, (_RefusedAlone, *_SIZE_ERRORS)) and p.shrink():
                log.warning(
                    "dead letter refused for its size; sending a reference",
                    **where,
                    error=repr(result.__cause__ or result),
                )
                p.alone = True
                retry.append(p)
            elif isinstance(result, Exception):
                trouble = result
                retry.append(p)
            else:
                raise result  # CancelledError and the like: not ours to swallow
        pending = retry
        if trouble is not None:
            delay = backoff.next_delay()
            if health is not None:
                health.degraded(f"dead letters cannot be sent: {type(trouble).__name__}: {trouble}")
            log.error(
                "dead letters cannot be sent; retrying",
                error=repr(trouble),
                letters=len(pending),
                attempt=backoff.attempt,
                delay=delay,
            )
            await asyncio.sleep(delay)
    if health is not None and backoff.attempt:
        health.ok()
