"""Migrations on a database of an earlier release: waiting lines keep their places, now as ranks; open
POs get their due date and SKUs whether they have a supplier (002, 003); the receipts and shipment
notices already applied get their business keys (005)."""

from datetime import UTC, date, datetime

import asyncpg
import pytest

from backbone import business_keys
from backbone.contracts import Envelope, new_envelope
from backbone.contracts.events import GoodsReceived
from backbone.db import BACKBONE_MIGRATIONS, migrate, migration_files
from backbone.eventstore import EventStore
from services.procurement import api
from services.procurement.app import SERVICE
from services.procurement.events import ReceiptRecorded, ShipmentExpected

pytestmark = pytest.mark.integration

_OLD_SKU = """
INSERT INTO procurement_skus (sku, version, free_stock, backordered, reorder_point, safety_stock, on_order,
                              open_need, waiting_lines, updated_at)
VALUES ('SKU-1', 9, 0, 6, 0, 0, 6, 0, 3, $1)
"""
_OLD_PO = """
INSERT INTO purchase_orders (po_id, sku, sequence, supplier_id, revision, quantity, unit_cost, currency,
                             expected_arrival, confirmed_quantity, confirmed_date, shipments,
                             received_quantity, outstanding, expected_complete, status, issued_at, updated_at)
VALUES ('PO-1', 'SKU-1', 1, 'S1', 1, 6, 4.00, 'EUR', '2030-01-17', 6, '2030-01-18',
        '[{"asn_id": "ASN-1", "quantity": 2, "expected_date": "2030-01-15"}]', 0, 6, '2030-01-18', 'open',
        $1, $1)
"""
_OLD_LINE = """
INSERT INTO line_etas (sku, order_id, line_id, position, quantity, eta, po_id, reason, updated_at)
VALUES ('SKU-1', $1, '1', $2, $3, $4, 'PO-1', 'expected', $5)
"""


async def test_lines_stored_by_position_keep_their_order_as_ranks(database_url: str) -> None:
    files = migration_files(BACKBONE_MIGRATIONS, SERVICE.migrations)
    # The backbone's and procurement's first: the schema of the release the rows come from.
    first = files[: [name for name, _ in files].index("procurement/001_procurement.sql") + 1]
    later = [name for name, _ in files[len(first) :]]
    assert later[:2] == ["procurement/002_line_ranks.sql", "procurement/003_truthful_promises.sql"]
    at = datetime(2030, 1, 7, 9, tzinfo=UTC)
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, first)
        # Positions in another order than the ids, so that the order can only come from them.
        await conn.execute(_OLD_SKU, at)
        for order_id, position in (("c", 1), ("a", 2), ("b", 3)):
            await conn.execute(_OLD_LINE, order_id, position, position, date(2030, 1, 17), at)
        await conn.execute(_OLD_PO, at)
        assert await migrate(conn, files) == later
        view = await api.sku_view(conn, "SKU-1")
        assert view is not None
        assert [(b.order_id, b.position, b.quantity) for b in view.backorders] == [
            ("c", 1, 1),
            ("a", 2, 2),
            ("b", 3, 3),
        ]
        # The next line of the SKU (first come, first served: score 0, placed now) queues behind them.
        await conn.execute(
            "INSERT INTO line_etas (sku, order_id, line_id, priority_score, placed_at, sequence, quantity,"
            " eta, po_id, reason, updated_at) VALUES ('SKU-1', 'd', '1', 0, $1, 1, 5, NULL, NULL, 'x', $1)",
            at,
        )
        [d] = await api.order_lines(conn, "d")
        assert (d.position, d.quantity, d.eta) == (4, 5, None)
        quantity_type = await conn.fetchval(
            "SELECT data_type FROM information_schema.columns"
            " WHERE table_name = 'line_etas' AND column_name = 'quantity'"
        )
        assert quantity_type == "bigint"
        # 003: the open PO is due on its confirmed date or its earlier shipment's; SKU-1 has no supplier.
        assert await conn.fetchval("SELECT due_date FROM purchase_orders WHERE po_id = 'PO-1'") == date(
            2030, 1, 15
        )
        assert await conn.fetchval("SELECT sourced FROM procurement_skus WHERE sku = 'SKU-1'") is False
        term_types = await conn.fetch(
            "SELECT DISTINCT data_type FROM information_schema.columns WHERE table_name = 'supplier_terms'"
            " AND column_name IN ('minimum_order_quantity', 'pack_size')"
        )
        assert [r["data_type"] for r in term_types] == ["bigint"]
    finally:
        await conn.close()


async def test_the_business_keys_of_receipts_and_notices_applied_before_are_backfilled(
    database_url: str,
) -> None:
    files = migration_files(BACKBONE_MIGRATIONS, SERVICE.migrations)
    backfill = "procurement/005_backfill_business_keys.sql"
    names = [name for name, _ in files]
    # The table is the backbone's: its migration runs before every service migration.
    assert names.index("backbone/004_business_keys.sql") < names.index("procurement/001_procurement.sql")
    store = EventStore(SERVICE.registry)
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, [(name, path) for name, path in files if name != backfill])
        on = date(2030, 1, 7)
        sku_a, sku_b = "SKU-1", "SKU-2"
        await store.append(
            conn,
            "sku:SKU-1",
            0,
            [
                new_envelope(
                    ShipmentExpected(sku=sku_a, po_id="PO-1", asn_id="ASN-1", quantity=2, expected_date=on)
                ),
                # Notices get no key (below).
                new_envelope(
                    ShipmentExpected(sku=sku_a, po_id="PO-1", asn_id="ASN-1", quantity=3, expected_date=on)
                ),
                new_envelope(
                    ReceiptRecorded(sku=sku_a, receipt_id="R-1", po_id="PO-1", quantity=3, received_on=on)
                ),
                new_envelope(
                    ReceiptRecorded(sku=sku_a, receipt_id="R-2", po_id=None, quantity=1, received_on=on)
                ),
            ],
        )
        # The same receipt id for another SKU is another line of the receipt.
        await store.append(
            conn,
            "sku:SKU-2",
            0,
            [
                new_envelope(
                    ReceiptRecorded(sku=sku_b, receipt_id="R-1", po_id=None, quantity=4, received_on=on)
                )
            ],
        )
        # A key the consumer recorded already keeps its fingerprint.
        recorded = _goods(sku_b, "R-1", 4)
        assert await business_keys.first_applications(conn, [recorded]) == [recorded]
        assert await migrate(conn, files) == [backfill]
        rows = await conn.fetch("SELECT business_key, fingerprint FROM business_keys ORDER BY business_key")
        keys = {r["business_key"]: bytes(r["fingerprint"]) for r in rows}
        assert keys == {
            f"GoodsReceived:R-1{chr(31)}SKU-1": business_keys.BACKFILLED,
            f"GoodsReceived:R-1{chr(31)}SKU-2": business_keys.fingerprint(recorded),
            f"GoodsReceived:R-2{chr(31)}SKU-1": business_keys.BACKFILLED,
        }
        # The keys are the contract's: a receipt re-sent after the upgrade is a replay. (A shipment notice
        # has no key: re-sent under its asn_id, it replaces the earlier one.)
        resent = [_goods(sku_a, "R-1", 3), _goods(sku_a, "R-3", 1)]
        assert await business_keys.first_applications(conn, resent) == resent[1:]
    finally:
        await conn.close()


def _goods(sku: str, receipt_id: str, quantity: int) -> Envelope[GoodsReceived]:
    return new_envelope(
        GoodsReceived(
            receipt_id=receipt_id, sku=sku, quantity=quantity, received_at=datetime(2030, 1, 7, 9, tzinfo=UTC)
        )
    )
