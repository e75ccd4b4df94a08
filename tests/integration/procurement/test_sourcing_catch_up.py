"""The startup catch-up of sourcing (services/procurement/sourcing.py): a SKU whose catalogue an earlier
release recorded without publishing SkuSourcingChanged gets it (event store, outbox, Kafka) when the
service starts, once; SKUs told already, or without a supplier, get nothing."""

import json
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from backbone.contracts import new_envelope
from backbone.contracts.events import SkuSourcingChanged
from backbone.db import BACKBONE_MIGRATIONS, migrate, migration_files
from backbone.eventstore import EventStore
from backbone.testing.fixtures import unique_name
from backbone.testing.waiting import eventually
from services.procurement import projections, sourcing
from services.procurement.app import SERVICE
from services.procurement.events import SupplierTermsSet
from tests.integration.procurement.harness import FixedClock, serving, settings
from tests.unit.procurement.scenario import terms

pytestmark = pytest.mark.integration

_PUBLISHED = "SELECT count(*) FROM event_store WHERE stream_id = $1 AND event_type = 'SkuSourcingChanged'"


async def _legacy_stream(conn: asyncpg.Connection, sku: str, *events: Any) -> None:
    """A stream as an earlier release wrote it, and its read models as a rebuild derives them."""
    store = EventStore(SERVICE.registry)
    await store.append(conn, projections.stream_id(sku), 0, [new_envelope(e) for e in events])
    await projections.rebuild(conn, store)


async def test_a_catalogue_never_published_is_published_once_at_startup(
    database_url: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    lamp, desk, told, bare = (unique_name(k) for k in ("LAMP", "DESK", "TOLD", "BARE"))
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, migration_files(BACKBONE_MIGRATIONS, SERVICE.migrations))
        alternate = terms("A", role="alternate")
        await _legacy_stream(
            conn, lamp, SupplierTermsSet(sku=lamp, suppliers=[alternate, terms("P")], actor="a")
        )
        await _legacy_stream(
            conn,
            told,
            SupplierTermsSet(sku=told, suppliers=[terms("P")], actor="a"),
            SkuSourcingChanged(sku=told, supplier_ids=["P"]),
        )
        await _legacy_stream(conn, bare, SupplierTermsSet(sku=bare, suppliers=[], actor="a"))
        config = settings(database_url, kafka_bootstrap, topic_prefix)

        async def published(sku: str) -> bool:
            return bool(await conn.fetchval(_PUBLISHED, projections.stream_id(sku)))

        async with serving(config, FixedClock()):
            await eventually(lambda: published(lamp), what=f"{lamp}'s sourcing published")
        # Another SKU of the earlier release, found at the next startup; the first is not published again.
        await _legacy_stream(conn, desk, SupplierTermsSet(sku=desk, suppliers=[terms("Q")], actor="a"))
        async with serving(config, FixedClock()):
            await eventually(lambda: published(desk), what=f"{desk}'s sourcing published")
            # Through the outbox to inventory, read while the relay runs (at least once: by event id).
            topic = f"{topic_prefix}procurement"
            sent = await _distinct_events(kafka_bootstrap, topic, {lamp, desk})
        counts = {
            sku: await conn.fetchval(_PUBLISHED, projections.stream_id(sku))
            for sku in (lamp, desk, told, bare)
        }
        assert counts == {lamp: 1, desk: 1, told: 1, bare: 0}
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
        try:
            assert await sourcing.unpublished(pool) == []
        finally:
            await pool.close()
    finally:
        await conn.close()

    assert sent == {lamp: ["P", "A"], desk: ["Q"]}


async def _distinct_events(bootstrap: str, topic: str, skus: set[str]) -> dict[str, list[str]]:
    """The supplier ids of the SkuSourcingChanged of each of `skus` on the topic, once each of them
    arrived; fails if one is there twice under different event ids."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: dict[str, tuple[str, list[str]]] = {}  # event id -> (sku, supplier ids)
    try:

        async def arrived() -> bool:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    body = json.loads(record.value or b"{}")
                    if body.get("event_type") == "SkuSourcingChanged" and body["payload"]["sku"] in skus:
                        seen[body["event_id"]] = (body["payload"]["sku"], body["payload"]["supplier_ids"])
            return {sku for sku, _ in seen.values()} == skus

        await eventually(arrived, timeout=60, what=f"the sourcing of {sorted(skus)} on {topic}")
    finally:
        await consumer.stop()
    assert len(seen) == len(skus), seen
    return dict(seen.values())
