import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import jsonschema
import pytest

from backbone.contracts import REGISTRY, DecodeError, EventPayload, EventRegistry, Topic, new_envelope
from backbone.contracts.docs import DOCS, drift
from backbone.contracts.events import Customer, GoodsReceived, OrderLine, OrderPlaced, StockShort


def order(**overrides: Any) -> OrderPlaced:
    fields: dict[str, Any] = dict(
        order_id="o-1",
        customer=Customer(customer_id="c-1", email="ana@example.com", tier="gold"),
        lines=[OrderLine(line_id="1", sku="JACKET-M", quantity=500, unit_price=Decimal("89.90"))],
        placed_at=datetime(2026, 11, 25, 9, 0, tzinfo=UTC),
    )
    fields.update(overrides)
    return OrderPlaced(**fields)


def body(**payload_changes: Any) -> bytes:
    data = json.loads(new_envelope(order()).to_json())
    data["payload"].update(payload_changes)
    return json.dumps(data).encode()


def test_an_envelope_round_trips_and_keys_by_the_payload() -> None:
    envelope = new_envelope(order())
    assert envelope.key == "o-1"
    assert envelope.correlation_id == str(envelope.event_id)
    assert REGISTRY.decode(envelope.to_json()) == envelope
    assert REGISTRY.decode(envelope.to_json(), "OrderPlaced", 1) == envelope


def test_an_effect_inherits_the_correlation_and_names_its_cause() -> None:
    cause = new_envelope(order())
    effect = new_envelope(
        StockShort(
            order_id="o-1",
            line_id="1",
            sku="JACKET-M",
            demanded=500,
            available=400,
            short_quantity=100,
            disposition="backordered",
        ),
        cause=cause,
    )
    assert effect.correlation_id == cause.correlation_id
    assert effect.causation_id == str(cause.event_id)
    assert effect.key == "JACKET-M"


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"lines": [{"line_id": "1", "sku": "A", "quantity": "5", "unit_price": "1.00"}]}, "valid integer"),
        ({"lines": [{"line_id": "1", "sku": "A", "quantity": 5.0, "unit_price": "1.00"}]}, "valid integer"),
        ({"lines": [{"line_id": "1", "sku": "A", "quantity": 0, "unit_price": "1.00"}]}, "greater than 0"),
        (
            {"lines": [{"line_id": "1", "sku": "", "quantity": 1, "unit_price": "1.00"}]},
            "at least 1 character",
        ),
        (
            {"lines": [{"line_id": "1", "sku": " A", "quantity": 1, "unit_price": "1.00"}]},
            "should match pattern",
        ),
        ({"lines": []}, "at least 1 item"),
        ({"placed_at": "2026-11-25T09:00:00"}, "timezone"),
        ({"order_id": ""}, "at least 1 character"),
        ({"surprise": 1}, "Extra inputs"),
        ({"customer": {"customer_id": "c", "email": "not-an-email"}}, "should match pattern"),
    ],
)
def test_invalid_payloads_are_refused_with_the_reason(change: dict[str, Any], complaint: str) -> None:
    with pytest.raises(DecodeError) as refused:
        REGISTRY.decode(body(**change))
    assert complaint in refused.value.reason
    assert refused.value.reason.startswith("invalid OrderPlaced v1: payload.")


def test_duplicate_line_ids_are_refused() -> None:
    line = {"line_id": "1", "sku": "A", "quantity": 1, "unit_price": "1.00"}
    with pytest.raises(DecodeError, match="unique"):
        REGISTRY.decode(body(lines=[line, line]))


def test_envelope_metadata_must_agree_with_the_payload() -> None:
    data = json.loads(new_envelope(order()).to_json())
    with pytest.raises(DecodeError, match="key"):
        REGISTRY.decode(json.dumps({**data, "key": "other"}).encode())
    with pytest.raises(DecodeError, match="unknown event type"):
        REGISTRY.decode(json.dumps({**data, "event_type": "OrderShipped"}).encode())
    with pytest.raises(DecodeError, match="unknown event type"):
        REGISTRY.decode(json.dumps({**data, "schema_version": 9}).encode())
    with pytest.raises(DecodeError, match="not an event envelope"):
        REGISTRY.decode(b"[1, 2]")
    with pytest.raises(DecodeError, match="invalid GoodsReceived v1"):  # lying headers: the body is checked
        REGISTRY.decode(new_envelope(order()).to_json(), "GoodsReceived", 1)


class _ReceiptV1(EventPayload):
    """The first version named the quantity `qty` and had no receipt id."""

    event_type: ClassVar[str] = "GoodsReceived"
    schema_version: ClassVar[int] = 1
    topic: ClassVar[Topic] = Topic.SUPPLIER
    key_field: ClassVar[str] = "sku"
    sku: str
    qty: int
    received_at: datetime


class _ReceiptV2(GoodsReceived):
    schema_version: ClassVar[int] = 2


def test_older_versions_are_upcast_on_read() -> None:
    registry = EventRegistry([_ReceiptV1, _ReceiptV2])
    registry.register_upcaster(
        "GoodsReceived",
        1,
        lambda p: {
            "receipt_id": f"legacy-{p['sku']}",
            "sku": p["sku"],
            "quantity": p["qty"],
            "received_at": p["received_at"],
        },
    )
    old = new_envelope(_ReceiptV1(sku="A", qty=3, received_at=datetime(2026, 1, 1, tzinfo=UTC)))
    upcast = registry.decode(old.to_json())
    assert upcast.schema_version == 2
    assert upcast.payload == _ReceiptV2(
        receipt_id="legacy-A", sku="A", quantity=3, received_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert (upcast.event_id, upcast.correlation_id) == (old.event_id, old.correlation_id)


def test_an_old_version_without_an_upcaster_is_a_clear_error() -> None:
    registry = EventRegistry([_ReceiptV1, _ReceiptV2])
    old = new_envelope(_ReceiptV1(sku="A", qty=3, received_at=datetime(2026, 1, 1, tzinfo=UTC)))
    with pytest.raises(DecodeError, match="no upcaster for GoodsReceived v1"):
        registry.decode(old.to_json())


def test_published_schemas_match_the_code() -> None:
    assert drift() == [], "run `make docs` and commit docs/"


def test_published_schema_accepts_a_real_event_and_refuses_a_bad_one() -> None:
    schema = json.loads((DOCS / "events" / "OrderPlaced.v1.schema.json").read_text())
    jsonschema.validate(json.loads(new_envelope(order()).to_json()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(body(lines=[])), schema)


def test_asyncapi_lists_every_published_event() -> None:
    spec = json.loads((DOCS / "asyncapi.json").read_text())
    published = {m.event_type for m in REGISTRY.latest_models() if m.topic is not None}
    assert {name.split(":")[1] for name in spec["channels"]} == published
