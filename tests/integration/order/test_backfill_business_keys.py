"""Migration 003: the orders recorded before business keys existed get their key, so a re-sent old order
is a replay (any content: the fingerprint is BACKFILLED) instead of a new fact."""

import asyncpg
import pytest

from backbone.business_keys import BACKFILLED, first_applications
from backbone.contracts import new_envelope
from backbone.db import BACKBONE_MIGRATIONS, migrate, migration_files
from backbone.eventstore import EventStore
from services.order.app import SERVICE
from services.order.domain import order_stream_id
from services.order.events import ORDER_REGISTRY, LineReserved, OrderRecorded
from tests.integration.order.harness import order

pytestmark = pytest.mark.integration

BACKFILL = "order/003_backfill_business_keys.sql"


def test_backbone_migrations_come_before_the_service_s() -> None:
    # The order runtime.py and cli.py migrate in: business_keys exists before the backfill fills it.
    names = [name for name, _ in migration_files(BACKBONE_MIGRATIONS, SERVICE.migrations)]
    assert names.index("backbone/004_business_keys.sql") < names.index(BACKFILL)


async def test_the_backfill_records_the_key_of_every_order_already_recorded(database_url: str) -> None:
    files = migration_files(BACKBONE_MIGRATIONS, SERVICE.migrations)
    store = EventStore(ORDER_REGISTRY)
    own, checkout, known = (order(oid, ("1", "SKU-1", 2, "1.00")) for oid in ("OWN", "CHECKOUT", "KNOWN"))
    events = {
        "OWN": [new_envelope(own)],
        "CHECKOUT": [
            new_envelope(OrderRecorded(order=checkout)),
            new_envelope(LineReserved(order_id="CHECKOUT", line_id="1", sku="SKU-1", quantity=2)),
        ],
    }
    conn = await asyncpg.connect(database_url)
    try:
        assert BACKFILL not in await migrate(conn, [f for f in files if f[0] != BACKFILL])
        for order_id, envelopes in events.items():
            await store.append(conn, order_stream_id(order_id), 0, envelopes)
        # A key the consumer loop recorded already keeps its fingerprint.
        [known_key] = await first_applications(conn, [new_envelope(known)])
        known_row = await conn.fetchrow("SELECT * FROM business_keys")

        assert await migrate(conn, files) == [BACKFILL]

        rows = {
            r["business_key"]: (bytes(r["fingerprint"]), r["event_id"])
            for r in await conn.fetch("SELECT business_key, fingerprint, event_id FROM business_keys")
        }
        assert rows == {
            "OrderPlaced:OWN": (BACKFILLED, events["OWN"][0].event_id),
            "OrderPlaced:CHECKOUT": (BACKFILLED, events["CHECKOUT"][0].event_id),
            "OrderPlaced:KNOWN": (bytes(known_row["fingerprint"]), known_key.event_id),
        }
        # An old order re-sent under a new event id, even with other content, is now a replay.
        resent = own.model_copy(update={"urgent": not own.urgent})
        assert await first_applications(conn, [new_envelope(resent), new_envelope(checkout)]) == []
    finally:
        await conn.close()
