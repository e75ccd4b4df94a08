"""What the consumer checks before and while parsing: headers against the topic, headers against the body,
size before anything; and which database errors mean an outage."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from aiokafka.structs import ConsumerRecord
from asyncpg.exceptions import _base as asyncpg_base

from backbone.consumer import decode, first_headers, routing_headers, topic_of
from backbone.contracts import REGISTRY, DecodeError, Envelope, Topic, new_envelope
from backbone.contracts.events import Customer, OrderLine, OrderPlaced
from backbone.contracts.limits import MAX_EVENT_BYTES
from backbone.db import is_database_unavailable
from backbone.eventstore import ConcurrencyError


def placed() -> Envelope[Any]:
    return new_envelope(
        OrderPlaced(
            order_id="o-1",
            customer=Customer(customer_id="c-1", email="ana@example.com"),
            lines=[OrderLine(line_id="1", sku="A", quantity=1, unit_price=Decimal("1.00"))],
            placed_at=datetime(2026, 11, 25, tzinfo=UTC),
        )
    )


def record(
    value: bytes | None, headers: list[tuple[str, bytes]], topic: str = "backorder.orders"
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic,
        partition=0,
        offset=7,
        timestamp=0,
        timestamp_type=0,
        key=b"o-1",
        value=value,
        checksum=None,
        serialized_key_size=3,
        serialized_value_size=len(value or b""),
        headers=headers,
    )


def routed(event_type: bytes, version: bytes = b"1") -> list[tuple[str, bytes]]:
    return [("event_type", event_type), ("schema_version", version)]


def reason(value: bytes | None, headers: list[tuple[str, bytes]], topic: str = "backorder.orders") -> str:
    with pytest.raises(DecodeError) as refused:
        decode(record(value, headers, topic))
    return refused.value.reason


def test_prefixed_topic_names_map_to_contract_topics() -> None:
    assert topic_of("backorder.orders") is Topic.ORDERS
    assert topic_of("t1234_topics_7.supplier") is Topic.SUPPLIER
    assert topic_of("backorder.orders.dlq") is None
    assert topic_of("payments") is None


def test_routing_headers_are_parsed_or_refused() -> None:
    assert routing_headers(first_headers(record(b"", routed(b"OrderPlaced", b"2")))) == ("OrderPlaced", 2)
    assert routing_headers(first_headers(record(b"", [("event_type", b"OrderPlaced")]))) == (
        "OrderPlaced",
        None,
    )
    assert routing_headers(first_headers(record(b"", []))) == (None, None)
    for version in (b"", b"-1", b" 1", b"v1", b"\xd9\xa1", b"1" * 10):
        with pytest.raises(DecodeError, match="schema_version header is not a version number"):
            routing_headers(first_headers(record(b"", routed(b"OrderPlaced", version))))
    with pytest.raises(DecodeError, match="event_type header is not UTF-8"):
        routing_headers(first_headers(record(b"", routed(b"\xff"))))
    repeated = [("event_type", b"OrderPlaced"), ("event_type", b"OrderCancelled")]
    assert routing_headers(first_headers(record(b"", repeated))) == ("OrderPlaced", None)  # the first counts


def test_route_knows_each_event_and_its_topic() -> None:
    assert REGISTRY.route("OrderPlaced", 1, Topic.ORDERS) is OrderPlaced
    assert REGISTRY.route("OrderPlaced", None, None) is OrderPlaced  # a topic outside the contract
    with pytest.raises(DecodeError, match="unknown event type 'OrderShipped' version 1"):
        REGISTRY.route("OrderShipped", 1, Topic.ORDERS)
    with pytest.raises(DecodeError, match="unknown event type 'OrderPlaced' version 7"):
        REGISTRY.route("OrderPlaced", 7, Topic.ORDERS)
    with pytest.raises(DecodeError) as misplaced:
        REGISTRY.route("StockReserved", 1, Topic.ORDERS)
    assert misplaced.value.reason == "StockReserved does not belong on the orders topic (it is on inventory)"


def test_a_good_message_decodes_with_and_without_headers() -> None:
    event = placed()
    assert decode(record(event.to_json(), event.headers())) == event
    assert decode(record(event.to_json(), [])) == event


def test_a_header_naming_an_unknown_or_misplaced_type_is_refused_whatever_the_body() -> None:
    body = placed().to_json()
    assert reason(body, routed(b"OrderShipped")) == "unknown event type 'OrderShipped' version 1"
    assert "does not belong on the orders topic" in reason(body, routed(b"StockReserved"))
    assert "does not belong on the supplier topic" in reason(body, [], topic="backorder.supplier")


def test_headers_that_disagree_with_the_body_are_refused_with_both_sides() -> None:
    event = placed()
    body = event.to_json()
    assert reason(body, routed(b"OrderCancelled")) == (
        "invalid OrderCancelled v1: the headers say OrderCancelled v1 but the body is OrderPlaced v1"
    )
    assert reason(body, [("event_type", b"OrderCancelled")]) == (
        "event_type header 'OrderCancelled' disagrees with the body's 'OrderPlaced'"
    )
    other_id = [*routed(b"OrderPlaced"), ("event_id", b"6f1c6b7e-8f7a-4c5e-9d52-1b2a3c4d5e6f")]
    assert reason(body, other_id).startswith("event_id header b'6f1c6b7e-")
    not_an_id = [*routed(b"OrderPlaced"), ("event_id", b"\xff")]
    assert "disagrees with the body's" in reason(body, not_an_id)
    other_flow = [*routed(b"OrderPlaced"), ("correlation_id", b"order-2")]
    assert reason(body, other_flow).startswith("correlation_id header b'order-2' disagrees")
    # The same ids in another spelling agree.
    upper = [*routed(b"OrderPlaced"), ("event_id", str(event.event_id).upper().encode())]
    assert decode(record(body, upper)) == event


def test_the_size_is_checked_before_the_body_or_the_headers() -> None:
    too_large = b"{" * (MAX_EVENT_BYTES + 1)  # not JSON either: the size decides first
    assert reason(too_large, routed(b"OrderShipped")).startswith(f"message too large: {MAX_EVENT_BYTES + 1}")
    assert reason(None, []) == "message has no value"


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.InterfaceError("cannot perform operation: connection is closed"),
        ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 55432)"),
        ConnectionResetError("Connection reset by peer"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        TimeoutError(),
    ],
)
def test_what_postgresql_restarting_raises_is_an_outage(error: Exception) -> None:
    assert is_database_unavailable(error)


def test_an_outage_wrapped_by_the_code_is_still_one() -> None:
    try:
        try:
            raise asyncpg.AdminShutdownError("terminating connection due to administrator command")
        except asyncpg.PostgresError as e:
            raise RuntimeError("could not load the stream") from e
    except RuntimeError as wrapped:
        assert is_database_unavailable(wrapped)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("cannot apply r-bad"),
        asyncpg_base.DataError("invalid input for query argument $1: 'x' (an integer is required)"),
        asyncpg.exceptions.DataError("value out of int32 range"),
        asyncpg.UniqueViolationError("duplicate key value"),
        asyncpg.UndefinedTableError('relation "received" does not exist'),
        ConcurrencyError("stream order:1 is at version 3, not 2"),
    ],
)
def test_errors_of_the_message_or_the_code_are_no_outage(error: Exception) -> None:
    assert not is_database_unavailable(error)
