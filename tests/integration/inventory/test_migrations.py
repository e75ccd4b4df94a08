"""Migration 005 on a log written before business keys were recorded: the receipts and orders it holds
get their keys, so re-sent under new event ids after the upgrade they change nothing."""

import json
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from backbone import business_keys
from backbone.contracts import new_envelope
from backbone.contracts.events import GoodsReceived
from backbone.db import BACKBONE_MIGRATIONS, migrate, migration_files
from services.inventory.app import SERVICE

pytestmark = pytest.mark.integration

_EVENT = """
INSERT INTO event_store (stream_id, stream_version, event_id, event_type, schema_version, correlation_id,
                         topic, partition_key, body)
VALUES ($1, $2, $3, $4, 1, 'c', NULL, $5, $6::jsonb)
"""


async def test_the_backfill_gives_earlier_receipts_and_orders_their_business_keys(database_url: str) -> None:
    files = migration_files(BACKBONE_MIGRATIONS, SERVICE.migrations)
    later = "inventory/005_backfill_business_keys.sql"
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, [(name, path) for name, path in files if name != later])
        earlier = [
            ("StockReceived", {"sku": "SKU-1", "receipt_id": "GRN-1", "quantity": 5, "on_hand_after": 5}),
            ("StockReserved", {"order_id": "o-1", "line_id": "1", "sku": "SKU-1", "quantity": 2}),
            ("StockShort", {"order_id": "o-1", "line_id": "2", "sku": "SKU-1"}),  # the same order again
            ("StockShort", {"order_id": "o-2", "line_id": "1", "sku": "SKU-1"}),
        ]
        for version, (kind, payload) in enumerate(earlier, start=1):
            body = json.dumps({"payload": payload})
            await conn.execute(_EVENT, "sku:SKU-1", version, uuid.uuid4(), kind, "SKU-1", body)
        assert await migrate(conn, files) == [later]
        keys = {r["business_key"] for r in await conn.fetch("SELECT business_key FROM business_keys")}
        assert keys == {"GoodsReceived:GRN-1\x1fSKU-1", "OrderPlaced:o-1", "OrderPlaced:o-2"}
        # The receipt re-sent after the upgrade, whatever its content now, is a replay.
        resent = GoodsReceived(receipt_id="GRN-1", sku="SKU-1", quantity=5, received_at=datetime.now(UTC))
        other = GoodsReceived(receipt_id="GRN-2", sku="SKU-1", quantity=1, received_at=datetime.now(UTC))
        async with conn.transaction():
            fresh = await business_keys.first_applications(conn, [new_envelope(resent), new_envelope(other)])
        assert [e.payload.receipt_id for e in fresh] == ["GRN-2"]
    finally:
        await conn.close()
