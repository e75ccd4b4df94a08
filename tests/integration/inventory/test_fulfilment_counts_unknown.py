"""Shipments (fulfilment topic), cycle counts (HTTP) and unknown SKUs, through Kafka and HTTP."""

import json
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from backbone.contracts import new_envelope
from backbone.testing.fixtures import publish, read_topic, unique_name
from backbone.testing.waiting import eventually
from services.inventory.domain import UNKNOWN_SKU_REASON
from tests.integration.inventory.harness import (
    order,
    serving,
    settings,
    shipment,
    sourcing,
    stock,
    stock_reaches,
)

pytestmark = pytest.mark.integration


async def count(
    http: httpx.AsyncClient, sku: str, count_id: str, counted: int, **extra: Any
) -> httpx.Response:
    body = {"count_id": count_id, "counted": counted, "reason": "cycle count", **extra}
    return await http.post(f"/skus/{sku}/counts", json=body)


async def published(database_url: str, sku: str) -> list[dict[str, Any]]:
    """The published events of the SKU's stream, oldest first: (type, payload)."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT event_type, body->'payload' AS payload FROM event_store"
            " WHERE stream_id = $1 AND topic IS NOT NULL ORDER BY stream_version",
            f"sku:{sku}",
        )
    finally:
        await conn.close()
    return [{"type": r["event_type"], **json.loads(r["payload"])} for r in rows]


async def test_a_shipment_takes_units_out_of_reserved_and_on_hand_and_an_oversized_one_is_dead_lettered(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    sku = unique_name("BOOTS")
    orders, fulfilment = f"{topic_prefix}orders", f"{topic_prefix}fulfilment"
    async with serving(settings(database_url, kafka_bootstrap, topic_prefix)) as http:
        assert (await count(http, sku, "opening", 10)).status_code == 200
        await publish(producer, orders, [order("A", sku, 6)])
        await stock_reaches(http, sku, on_hand=10, reserved=6)

        first = shipment("S-1", "A", sku, 4)
        await publish(producer, fulfilment, [first])
        view = await stock_reaches(http, sku, on_hand=6, reserved=2, available=4)
        conn = await asyncpg.connect(database_url)
        try:
            row = await conn.fetchrow("SELECT on_hand, reserved, available FROM stock WHERE sku = $1", sku)
        finally:
            await conn.close()
        assert dict(row) == {k: view[k] for k in ("on_hand", "reserved", "available")}

        # More than the line holds reserved (2): refused, dead-lettered with the reason; stock unchanged.
        # The same shipment re-sent under a new event id changes nothing (business key).
        again = new_envelope(first.payload)
        assert again.event_id != first.event_id
        await publish(producer, fulfilment, [shipment("S-2", "A", sku, 3), again])
        [letter] = await read_topic(kafka_bootstrap, f"{fulfilment}.dlq", 1)
        reason = dict(letter.headers)["dlq_reason"].decode()
        assert "shipment S-2" in reason and "line 1 of order A" in reason and "only 2 units" in reason

        await publish(producer, fulfilment, [shipment("S-3", "A", sku, 2)])  # the rest of the line
        view = await stock_reaches(http, sku, on_hand=4, reserved=0, available=4)
        assert (await http.get("/health")).json()["dead_lettered"] == 1

    events = await published(database_url, sku)
    shipped = [
        (e["shipment_id"], e["quantity"], e["on_hand_after"]) for e in events if e["type"] == "StockShipped"
    ]
    assert shipped == [("S-1", 4, 6), ("S-3", 2, 4)]
    levels = [(e["on_hand"], e["reserved"]) for e in events if e["type"] == "StockLevelChanged"]
    assert levels == [(10, 0), (6, 2), (4, 0)]  # count, S-1, S-3 (a reservation reports itself)


async def test_a_cycle_count_sets_stock_on_hand_is_idempotent_and_serves_the_queue(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    sku = unique_name("GLOVES")
    async with serving(settings(database_url, kafka_bootstrap, topic_prefix)) as http:
        opening = await count(http, sku, "cc-1", 0, counted_at="2026-03-01T09:00:00+00:00")
        assert opening.status_code == 200, opening.text
        assert opening.json()["events"] == ["StockCounted", "ReorderPointReached"]  # 0 -> 0: no level change
        assert opening.json()["stock"]["known"] is True

        await publish(producer, f"{topic_prefix}orders", [order("A", sku, 5)])
        await stock_reaches(http, sku, backordered=5)

        found = await count(http, sku, "cc-2", 3)
        assert found.status_code == 200, found.text
        assert found.json()["events"] == [
            "StockCounted",
            "BackorderFulfilled",
            "BackorderQueueChanged",
            "StockLevelChanged",
        ]
        assert {k: found.json()["stock"][k] for k in ("on_hand", "reserved", "backordered")} == {
            "on_hand": 3,
            "reserved": 3,
            "backordered": 2,
        }
        retried = await count(http, sku, "cc-2", 3)  # no counted_at: the same request
        assert (retried.status_code, retried.json()["events"]) == (200, [])
        assert retried.json()["stock"]["on_hand"] == 3
        reused = await count(http, sku, "cc-2", 4)
        assert reused.status_code == 409 and "another count" in reused.json()["detail"]
        retimed = await count(http, sku, "cc-1", 0, counted_at="2026-03-02T09:00:00+00:00")
        assert retimed.status_code == 409

        below = await count(http, sku, "cc-3", 2)
        assert below.status_code == 409
        assert "3 are reserved" in below.json()["detail"] and "ship or release" in below.json()["detail"]
        assert (await count(http, sku, "cc-4", -1)).status_code == 422
        assert (await stock(http, sku) or {})["on_hand"] == 3

    counted = [e for e in await published(database_url, sku) if e["type"] == "StockCounted"]
    assert [(e["count_id"], e["on_hand_before"], e["difference"]) for e in counted] == [
        ("cc-1", 0, 0),
        ("cc-2", 0, 3),
    ]


async def test_under_reject_an_unknown_sku_is_rejected_and_a_supplier_makes_it_known(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    unknown, sourced = unique_name("MYSTERY"), unique_name("SOURCED")
    orders, procurement = f"{topic_prefix}orders", f"{topic_prefix}procurement"
    async with serving(settings(database_url, kafka_bootstrap, topic_prefix)) as http:  # default: reject
        await publish(producer, procurement, [sourcing(sourced, "SUP-1")])
        view = await stock_reaches(http, sourced, on_hand=0)
        assert (view["known"], view["sourced"]) == (True, True)

        await publish(producer, orders, [order("A", unknown, 2), order("B", sourced, 2)])
        await stock_reaches(http, sourced, backordered=2)

        async def rejected() -> list[dict[str, Any]] | None:
            shorts = [e for e in await published(database_url, unknown) if e["type"] == "StockShort"]
            return shorts or None

        [short] = await eventually(rejected, what="the unknown SKU's line to be decided") or []
        assert (short["disposition"], short["reason"]) == ("rejected", UNKNOWN_SKU_REASON)
        view = await stock(http, unknown)
        assert view is not None
        assert (view["known"], view["sourced"], view["backordered"]) == (False, False, 0)

        # Staff carrying the SKU (a policy, even the default one) make it known too.
        carried = await http.put(f"/skus/{unknown}/policy", json={"backorder_policy": "allow"})
        assert carried.status_code == 200, carried.text
        assert carried.json()["events"][0] == "SkuPolicyChanged" and carried.json()["stock"]["known"] is True
        await publish(producer, orders, [order("C", unknown, 2)])
        await stock_reaches(http, unknown, backordered=2)

        # Losing its only supplier does not make a SKU unknown again.
        await publish(producer, procurement, [sourcing(sourced)])
        view = await stock_reaches(http, sourced, backordered=2)
        await eventually(lambda: _sourced_is(http, sourced, False), what=f"{sourced} to show no supplier")
        assert (await stock(http, sourced) or {})["known"] is True
        assert (await http.get("/health")).json()["dead_lettered"] == 0


async def _sourced_is(http: httpx.AsyncClient, sku: str, expected: bool) -> bool:
    view = await stock(http, sku)
    return view is not None and view["sourced"] is expected


async def test_under_backorder_an_unknown_sku_waits_like_any_other(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    sku = unique_name("MYSTERY")
    config = settings(database_url, kafka_bootstrap, topic_prefix, unknown_sku_policy="backorder")
    async with serving(config) as http:
        await publish(producer, f"{topic_prefix}orders", [order("A", sku, 2)])
        view = await stock_reaches(http, sku, backordered=2)
        assert (view["known"], view["sourced"]) == (False, False)
        assert view["queue"] == [{"position": 1, "order_id": "A", "line_id": "1", "quantity": 2}]
