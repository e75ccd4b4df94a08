"""The maximum wait: overdue backorders are cancelled exactly once, whoever runs the check, and refunded
once inventory confirms the units it dropped."""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from backbone.contracts.events import BackorderQueueSnapshotV1
from backbone.db import migrate, migration_files
from backbone.decider import Input
from backbone.eventstore import EventStore
from backbone.testing.fixtures import publish, read_topic
from backbone.testing.waiting import eventually
from services.order import scheduler
from services.order.app import SERVICE
from services.order.domain import PlaceOrder, order_stream_id
from services.order.events import ORDER_REGISTRY
from services.order.handlers import Incoming, apply, new_repository
from tests.integration.order.harness import (
    envelope,
    line,
    order,
    order_json,
    order_when,
    released,
    serving,
    settings,
    short,
    stored_events,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """The order service's database without the service: its tables, and a pool on them."""
    conn = await asyncpg.connect(database_url)
    await migrate(conn, migration_files(SERVICE.migrations))
    await conn.close()
    created = await asyncpg.create_pool(database_url, min_size=1, max_size=6)
    assert created is not None
    yield created
    await created.close()


async def test_concurrent_checks_cancel_once_and_a_stale_read_model_changes_nothing(
    pool: asyncpg.Pool,
) -> None:
    store = EventStore(ORDER_REGISTRY)
    now = datetime.now(UTC)
    due = order("due", ("1", "SKU-A", 10, "5.00"), placed_at=now - timedelta(days=3), max_wait_days=2)
    later = order("later", ("1", "SKU-A", 10, "5.00"), placed_at=now - timedelta(days=3))  # default: 30
    inputs: list[Input[Incoming]] = [
        Input(order_stream_id(placed.order_id), message)
        for placed in (due, later)
        for message in (PlaceOrder(placed), short(placed.order_id, "1", "SKU-A", 10, 4))
    ]
    async with pool.acquire() as conn, conn.transaction():
        await apply(conn, new_repository(store), inputs)
        # A stream the scheduler cannot read (undecodable event) must not stop it from the others.
        await conn.execute(
            "INSERT INTO orders VALUES ('a-broken', 1, 'default', 'c', 'c@example.com', NULL, 'standard',"
            " 'EUR', 'backordered', $1, $1, false, 'ship_available', 1, 5)",
            now - timedelta(days=3),
        )
        await conn.execute(
            "INSERT INTO event_store (stream_id, stream_version, event_id, event_type, schema_version,"
            " correlation_id, partition_key, body) VALUES ('order:a-broken', 1, gen_random_uuid(),"
            " 'order.LineFilled', 1, 'x', 'a-broken', '{}')"
        )

    # Two instances' rounds at once: the stream lock and the domain let one of them cancel.
    rounds = await asyncio.gather(
        *(
            scheduler.cancel_overdue(pool, new_repository(store), now=now, default_max_wait_days=30)
            for _ in range(2)
        )
    )
    assert sorted(rounds) == [[], ["due"]]
    async with pool.acquire() as conn:
        counts = {
            (r["stream_id"], r["event_type"]): r["n"]
            for r in await conn.fetch(
                "SELECT stream_id, event_type, count(*) AS n FROM event_store"
                " WHERE event_type IN ('OrderCancelled', 'RefundRequested') GROUP BY 1, 2"
            )
        }
        assert counts == {("order:due", "OrderCancelled"): 1}  # the refund waits for inventory
        cancelled = json.loads(
            await conn.fetchval("SELECT body FROM event_store WHERE event_type = 'OrderCancelled'")
        )["payload"]
        assert (cancelled["only_waiting"], cancelled["cancellation_id"]) == (True, "due:cancel:1")
        assert await conn.fetchval("SELECT waiting FROM orders WHERE order_id = 'due'") == 6
    # Pending: a round before inventory answers cancels nothing more.
    assert (
        await scheduler.cancel_overdue(pool, new_repository(store), now=now, default_max_wait_days=30) == []
    )
    async with pool.acquire() as conn, conn.transaction():
        answer = released("due", "1", "SKU-A", dropped=6, reason="max_wait_exceeded")
        await apply(conn, new_repository(store), [Input(order_stream_id("due"), answer)])
    async with pool.acquire() as conn:
        body = json.loads(
            await conn.fetchval("SELECT body FROM event_store WHERE event_type = 'RefundRequested'")
        )
        assert (body["payload"]["quantity"], body["payload"]["amount"]) == (6, "30.00")
        assert body["payload"]["reason"] == "max_wait_exceeded"
        assert await conn.fetchval("SELECT waiting FROM orders WHERE order_id = 'due'") == 0

        # A read model that still shows units waiting (e.g. restored from a backup) nominates the order
        # again; its stream says nothing waits, so nothing is cancelled twice.
        await conn.execute("UPDATE orders SET waiting = 6 WHERE order_id = 'due'")
    assert (
        await scheduler.cancel_overdue(pool, new_repository(store), now=now, default_max_wait_days=30) == []
    )
    # With a shorter default, the order without its own maximum wait is overdue too.
    assert await scheduler.cancel_overdue(pool, new_repository(store), now=now, default_max_wait_days=2) == [
        "later"
    ]
    async with pool.acquire() as conn:
        assert (
            await conn.fetchval("SELECT count(*) FROM event_store WHERE event_type = 'OrderCancelled'") == 2
        )


async def both_consuming(producer: AIOKafkaProducer, topic: str, instances: list[httpx.AsyncClient]) -> None:
    """Wait until every instance has joined the consumer group and applied something: stopping an
    instance while it is still joining would leave its consumer in the group."""
    wave = 0

    async def consuming() -> bool:
        nonlocal wave
        health = [(await h.get("/health")).json() for h in instances]
        if all(h["events_applied"] + h["events_skipped"] for h in health):
            return True
        wave += 1  # events the order service skips, keyed to spread over the partitions
        await publish(
            producer,
            topic,
            [envelope(BackorderQueueSnapshotV1(sku=f"warm-{wave}-{i}", entries=[])) for i in range(8)],
        )
        return False

    await eventually(consuming, interval=0.5, what="every instance to consume")


async def test_the_running_service_cancels_overdue_backorders_once_across_instances_and_restarts(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, producer: AIOKafkaProducer
) -> None:
    orders, inventory = f"{topic_prefix}orders", f"{topic_prefix}inventory"
    three_days_ago = datetime.now(UTC) - timedelta(days=3)
    options = {"auto_cancel_interval_seconds": 0.1, "default_max_wait_days": 30}
    first = settings(database_url, kafka_bootstrap, topic_prefix, **options)
    second = settings(database_url, kafka_bootstrap, topic_prefix, **options)
    async with serving(first) as http, serving(second) as other:
        await both_consuming(producer, inventory, [http, other])
        placed = order("O1", ("1", "SKU-A", 10, "5.00"), placed_at=three_days_ago, max_wait_days=2)
        assert (await http.post("/orders", json=order_json(placed))).status_code == 202
        await publish(producer, inventory, [envelope(short("O1", "1", "SKU-A", 10, 4))])
        await order_when(
            other, "O1", lambda v: line(v, "1")["cancellation_pending"] == 6, "overdue units being cancelled"
        )
        listed = (await http.get("/backorders")).json()
        assert [(r["order_id"], r["waiting"], r["cancellation_pending"]) for r in listed] == [("O1", 6, 6)]
        await publish(producer, inventory, [envelope(released("O1", "1", "SKU-A", dropped=6))])
        view = await order_when(
            other, "O1", lambda v: line(v, "1")["cancelled"] > 0, "overdue units cancelled"
        )
        assert (view["status"], line(view, "1")["cancelled"], line(view, "1")["allocated"]) == (
            "ready_to_ship",
            6,
            4,
        )
        assert view["auto_cancel_at"] is None
        assert (await http.get("/backorders")).json() == []

    # Restarted with a 2-day default: the next overdue order proves the scheduler ran again.
    async with serving(
        settings(database_url, kafka_bootstrap, topic_prefix, **{**options, "default_max_wait_days": 2})
    ) as http:
        placed = order("O2", ("1", "SKU-A", 3, "5.00"), placed_at=three_days_ago)
        assert (await http.post("/orders", json=order_json(placed))).status_code == 202
        await publish(producer, inventory, [envelope(short("O2", "1", "SKU-A", 3, 0))])
        await order_when(
            http, "O2", lambda v: line(v, "1")["cancellation_pending"] == 3, "overdue units being cancelled"
        )
        await publish(producer, inventory, [envelope(released("O2", "1", "SKU-A", dropped=3))])
        view = await order_when(http, "O2", lambda v: v["status"] == "cancelled", "overdue units cancelled")
        summaries = {entry["event_type"]: entry["summary"] for entry in view["history"]}
        assert summaries["OrderCancelled"] == (
            "cancellation of waiting units requested (max_wait_exceeded): line 1 3 units"
        )
        assert line(view, "1")["refunded_amount"] == "15.00"  # reason: the pending request's

    for order_id in ("O1", "O2"):
        assert await stored_events(database_url, order_id, "OrderCancelled") == 1
        assert await stored_events(database_url, order_id, "RefundRequested") == 1
    records = await read_topic(kafka_bootstrap, orders, 7)  # O1 also published its pick list
    cancellations = [
        json.loads(r.value) for r in records if dict(r.headers)["event_type"] == b"OrderCancelled"
    ]
    assert sorted((c["key"], c["payload"]["reason"]) for c in cancellations) == [
        ("O1", "max_wait_exceeded"),
        ("O2", "max_wait_exceeded"),
    ]
