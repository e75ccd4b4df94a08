"""The inventory service end to end: Kafka in, HTTP and Kafka out, against the real servers."""

import asyncio
import random
from decimal import Decimal

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from backbone.contracts import new_envelope
from backbone.contracts.events import RefundRequested
from backbone.eventstore import EventStore
from backbone.kafka import ensure_topics
from backbone.testing.fixtures import publish, read_topic, unique_name
from backbone.testing.service import run_rebuild
from backbone.testing.waiting import eventually
from services.inventory.app import SERVICE
from services.inventory.domain import evolve, initial_state
from services.inventory.projections import stream_id
from tests.integration.inventory.harness import (
    cancellation,
    order,
    read_models,
    receipt,
    serving,
    settings,
    stock,
    stock_reaches,
)

pytestmark = pytest.mark.integration


async def adjust(http: httpx.AsyncClient, sku: str, delta: int, **extra: str) -> httpx.Response:
    return await http.post(f"/skus/{sku}/adjustments", json={"delta": delta, "reason": "count", **extra})


async def test_backorders_are_queued_filled_audited_and_rebuildable(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    sku = unique_name("JACKET")
    orders, supplier = f"{topic_prefix}orders", f"{topic_prefix}supplier"
    config = settings(database_url, kafka_bootstrap, topic_prefix)
    async with serving(config) as http:
        assert (await http.get(f"/stock/{sku}")).status_code == 404

        opening = await adjust(http, sku, 400, adjustment_id="opening")
        assert opening.status_code == 200, opening.text
        assert opening.json()["events"] == ["StockAdjusted", "StockLevelChanged"]
        assert opening.json()["stock"]["available"] == 400
        retried = await adjust(http, sku, 400, adjustment_id="opening")  # e.g. after a timeout
        assert retried.status_code == 200, retried.text
        assert retried.json()["events"] == []
        assert retried.json()["stock"]["on_hand"] == 400
        reused = await adjust(http, sku, 40, adjustment_id="opening")
        assert reused.status_code == 409
        assert "another adjustment" in reused.json()["detail"]

        refund = RefundRequested(
            order_id="elsewhere",
            line_id="1",
            sku=sku,
            quantity=1,
            amount=Decimal("1.00"),
            currency="EUR",
            reason="shop_request",
        )
        await publish(producer, orders, [new_envelope(refund), order("A", sku, 500)])
        view = await stock_reaches(http, sku, reserved=400, backordered=100)
        assert (view["on_hand"], view["available"]) == (400, 0)
        assert view["queue"] == [{"position": 1, "order_id": "A", "line_id": "1", "quantity": 100}]

        await publish(producer, supplier, [receipt(sku, 150, receipt_id="R1")])
        view = await stock_reaches(http, sku, on_hand=550, backordered=0)
        assert (view["reserved"], view["available"], view["queue"]) == (500, 50, [])

        await publish(producer, orders, [order("B", sku, 80)])
        await stock_reaches(http, sku, reserved=550, backordered=30)
        await publish(producer, orders, [cancellation("A", sku, 500)])  # releases 500, 30 of them fill B
        await stock_reaches(http, sku, reserved=80, backordered=0, available=470)
        await publish(producer, orders, [order("C", sku, 1000)])
        view = await stock_reaches(http, sku, on_hand=550, reserved=550, available=0, backordered=530)
        assert [(q["order_id"], q["quantity"]) for q in view["queue"]] == [("C", 530)]

        # The admin API refuses what contradicts itself (422) or the stock (409), changing nothing.
        no_cap = await http.put(f"/skus/{sku}/policy", json={"backorder_policy": "cap"})
        assert no_cap.status_code == 422
        assert "backorder_cap is required" in no_cap.json()["detail"]
        assert (await adjust(http, sku, 0)).status_code == 422
        too_many = await adjust(http, sku, -100)
        assert too_many.status_code == 409
        assert "reserved" in too_many.json()["detail"]
        named = await adjust(http, sku, 5, actor="tester")  # who acts is the token's subject
        assert named.status_code == 422 and "actor comes from the bearer token" in named.text
        policy = await http.put(
            f"/skus/{sku}/policy",
            json={"backorder_policy": "cap", "backorder_cap": 600, "reorder_point": 20},
        )
        assert policy.status_code == 200, policy.text
        assert policy.json()["events"] == ["SkuPolicyChanged"]
        assert (policy.json()["stock"]["backorder_policy"], policy.json()["stock"]["on_hand"]) == ("cap", 550)

        allocations = (await http.get(f"/skus/{sku}/allocations")).json()
        assert [(a["order_id"], a["quantity"], a["source"]) for a in allocations] == [
            ("A", 400, "order A"),
            ("A", 100, "R1"),
            ("B", 50, "order B"),
            ("B", 30, allocations[3]["source"]),  # the cancellation's event id
            ("C", 470, "order C"),
        ]
        assert allocations[1]["priority_reason"].startswith("1st in the backorder queue, first come first")

        # Every published event of the log reaches the inventory topic, and nothing was dead-lettered.
        conn = await asyncpg.connect(database_url)
        try:
            published = await conn.fetch(
                "SELECT event_type FROM event_store WHERE topic IS NOT NULL ORDER BY global_position"
            )
        finally:
            await conn.close()
        records = await read_topic(kafka_bootstrap, f"{topic_prefix}inventory", len(published))
        assert [r.key.decode() for r in records if r.key] == [sku] * len(published)
        assert [dict(r.headers)["event_type"].decode() for r in records] == [
            p["event_type"] for p in published
        ]
        types = [p["event_type"] for p in published]
        assert types[:7] == [
            "StockAdjusted",
            "StockLevelChanged",
            "StockReserved",
            "StockShort",
            "BackorderQueueChanged",
            "ReorderPointReached",  # a reservation's own events report it: no StockLevelChanged
            "BackorderFulfilled",
        ]
        assert "BackorderFulfilled" in types
        health = (await http.get("/health")).json()
        assert health["dead_lettered"] == 0

    # A projection rebuilt from the log equals the live one (the CLI, as an operator runs it).
    before = await read_models(database_url)
    assert [r["sku"] for r in before["stock"]] == [sku]
    conn = await asyncpg.connect(database_url)
    await conn.execute("UPDATE stock SET reserved = 0; DELETE FROM backorder_queue")  # damage them
    await conn.close()
    out = await run_rebuild("inventory", database_url)
    assert b"1 SKUs" in out
    assert await read_models(database_url) == before


async def test_two_instances_never_oversell(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    sku = unique_name("HOT")
    orders = f"{topic_prefix}orders"
    await ensure_topics(kafka_bootstrap, [orders], partitions=4, replication_factor=1)
    first = settings(database_url, kafka_bootstrap, topic_prefix, consumer_batch_size=5)
    second = settings(database_url, kafka_bootstrap, topic_prefix, consumer_batch_size=5)
    rng = random.Random(7)
    demanded, on_hand, waves = 0, 0, 0
    async with serving(first) as http1, serving(second) as http2:
        assert (await adjust(http1, sku, 100)).status_code == 200
        on_hand += 100

        async def wave() -> None:
            """20 orders (keys spread over the 4 partitions) racing admin adjustments on both instances."""
            nonlocal demanded, on_hand, waves
            waves += 1
            orders_ = [order(f"o{waves}-{i}", sku, rng.randint(1, 5)) for i in range(20)]
            demanded += sum(e.payload.lines[0].quantity for e in orders_)
            results = await asyncio.gather(
                publish(producer, orders, orders_[:10]),
                publish(producer, orders, orders_[10:]),
                adjust(http1, sku, 7),
                adjust(http2, sku, 3),
            )
            assert [r.status_code for r in results[2:]] == [200, 200]
            on_hand += 10

        async def both_consuming() -> bool:
            applied = [(await h.get("/health")).json()["events_applied"] for h in (http1, http2)]
            if all(applied):
                return True
            await wave()
            return False

        # Until the group has rebalanced and both instances consume orders, then some more.
        await eventually(both_consuming, interval=0.5, what="both instances to consume orders")
        for _ in range(3):
            await wave()

        view = await stock_reaches(http2, sku, demanded=demanded, on_hand=on_hand, reserved=on_hand)
        assert view["available"] == 0
        print(f"{waves} waves, {demanded} units demanded, {on_hand} on hand")
        assert demanded > on_hand  # there was a shortage to fight over
        audit = (await http1.get(f"/skus/{sku}/allocations")).json()
        assert sum(a["quantity"] for a in audit) == on_hand
        for http in (http1, http2):
            assert (await http.get("/health")).json()["dead_lettered"] == 0
        assert await stock(http1, sku) == await stock(http2, sku)

    # Reserved never exceeded on hand at any point of the SKU's history.
    conn = await asyncpg.connect(database_url)
    try:
        state = initial_state(sku)
        for stored in await EventStore(SERVICE.registry).read_stream(conn, stream_id(sku)):
            state = evolve(state, stored.envelope.payload)
            assert 0 <= state.reserved <= state.on_hand
    finally:
        await conn.close()
