"""Dead letters: a whole copy when it fits, a reference that always fits otherwise, and a sender that
never gives up."""

import asyncio
import hashlib
from typing import Any

from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from aiokafka.structs import ConsumerRecord

from backbone.deadletter import (
    MAX_COPY_BYTES,
    PREVIEW_BYTES,
    DeadLetter,
    full_copy,
    reference,
    send_dead_letters,
)
from backbone.health import HealthReport

FAILED_AT = b"2026-12-01T21:00:00+00:00"


def letter(value: bytes, headers: list[tuple[str, bytes]] | None = None, key: bytes = b"o-1") -> DeadLetter:
    record: ConsumerRecord[bytes, bytes] = ConsumerRecord(
        topic="backorder.orders",
        partition=3,
        offset=42,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key),
        serialized_value_size=len(value),
        headers=headers
        if headers is not None
        else [("event_type", b"OrderPlaced"), ("schema_version", b"1")],
    )
    return DeadLetter(record, "message too large: 10000000 bytes")


def test_a_full_copy_keeps_key_value_and_headers_and_adds_the_reason() -> None:
    copy = full_copy(letter(b'{"x": 1}'), "order", FAILED_AT)
    assert (copy.topic, copy.key, copy.value, copy.reference) == (
        "backorder.orders.dlq",
        b"o-1",
        b'{"x": 1}',
        False,
    )
    assert copy.headers == [
        ("event_type", b"OrderPlaced"),
        ("schema_version", b"1"),
        ("dlq_reason", b"message too large: 10000000 bytes"),
        ("dlq_source_topic", b"backorder.orders"),
        ("dlq_source_partition", b"3"),
        ("dlq_source_offset", b"42"),
        ("dlq_service", b"order"),
        ("dlq_failed_at", FAILED_AT),
    ]


def test_a_reference_names_the_original_and_carries_its_first_bytes() -> None:
    value = bytes(range(256)) * 40_000  # ~10 MB
    ref = reference(letter(value), "order", FAILED_AT)
    headers = dict(ref.headers)
    assert ref.reference and ref.key == b"o-1"
    assert ref.value == value[:PREVIEW_BYTES]
    assert headers["dlq_truncated"] == b"true"
    assert headers["dlq_value_bytes"] == str(len(value)).encode()
    assert headers["dlq_value_sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert headers["dlq_reason"] == b"message too large: 10000000 bytes"
    assert (headers["dlq_source_topic"], headers["dlq_source_partition"], headers["dlq_source_offset"]) == (
        b"backorder.orders",
        b"3",
        b"42",
    )
    assert (headers["event_type"], headers["schema_version"]) == (b"OrderPlaced", b"1")
    assert "dlq_headers_dropped" not in headers


def test_a_reference_fits_even_when_the_headers_and_key_are_huge() -> None:
    many = [(f"h{i}", b"v" * 10_000) for i in range(100)]  # 1 MB of headers
    huge = letter(b"{}", many, key=b"k" * 500_000)
    huge = DeadLetter(huge.record, "handler failed: " + "x" * 100_000)
    ref = reference(huge, "order", FAILED_AT)
    assert ref.size() < 64 * 1024
    headers = dict(ref.headers)
    assert 0 < int(headers["dlq_headers_dropped"]) < 100
    assert len(headers["dlq_reason"]) < 3000 and headers["dlq_reason"].startswith(b"handler failed: xxx")
    minimal = reference(huge, "order", FAILED_AT, minimal=True)
    assert minimal.value == b"" and minimal.size() < 6 * 1024
    assert dict(minimal.headers)["dlq_headers_dropped"] == b"100"


class FlakyProducer:
    """A producer whose broker is unreachable for the first `outage` sends, and which refuses messages
    above `max_bytes` as aiokafka does (MessageSizeTooLargeError from send)."""

    def __init__(self, outage: int, max_bytes: int) -> None:
        self.outage = outage
        self.max_bytes = max_bytes
        self.sent: list[dict[str, Any]] = []
        self.attempts = 0

    async def send(self, topic: str, *, value: bytes, key: bytes, headers: list[tuple[str, bytes]]) -> Any:
        self.attempts += 1
        if len(value) + sum(len(v) for _, v in headers) > self.max_bytes:
            raise MessageSizeTooLargeError("The message is too large")
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.outage > 0:
            self.outage -= 1
            ack.set_exception(KafkaConnectionError("Unable to bootstrap from 127.0.0.1:9092"))
        else:
            self.sent.append({"topic": topic, "value": value, "key": key, "headers": dict(headers)})
            ack.set_result(None)
        return ack


async def test_an_unreachable_broker_is_retried_until_the_letters_are_acked() -> None:
    producer = FlakyProducer(outage=3, max_bytes=2_000_000)
    health = HealthReport()
    seen: list[str] = []

    async def watch() -> None:
        while True:
            seen.append(health.current.status)
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    try:
        await send_dead_letters(producer, "order", [letter(b"{bad")], health=health)  # type: ignore[arg-type]
    finally:
        watcher.cancel()
    assert "degraded" in seen
    assert health.current.status == "ok"
    assert [m["value"] for m in producer.sent] == [b"{bad"]
    assert producer.attempts == 4


async def test_a_letter_refused_for_its_size_is_sent_as_a_reference_and_one_too_large_not_tried() -> None:
    producer = FlakyProducer(outage=0, max_bytes=100_000)
    fits_kafka = letter(b"x" * 200_000)  # within the copy limit, above this producer's
    too_large = letter(b"y" * (MAX_COPY_BYTES + 1))
    await send_dead_letters(producer, "order", [fits_kafka, too_large])  # type: ignore[arg-type]
    assert producer.attempts == 3  # the large one went out as a reference at once
    assert [(m["value"][:1], m["headers"]["dlq_truncated"]) for m in producer.sent] == [
        (b"y", b"true"),
        (b"x", b"true"),
    ]
    assert {m["headers"]["dlq_value_bytes"] for m in producer.sent} == {
        b"200000",
        str(MAX_COPY_BYTES + 1).encode(),
    }


async def test_a_dead_letter_topic_refusing_even_the_reference_gets_a_minimal_one() -> None:
    producer = FlakyProducer(outage=0, max_bytes=PREVIEW_BYTES)
    await send_dead_letters(producer, "order", [letter(b"z" * 50_000)])  # type: ignore[arg-type]
    [sent] = producer.sent
    assert sent["value"] == b"" and sent["headers"]["dlq_truncated"] == b"true"
