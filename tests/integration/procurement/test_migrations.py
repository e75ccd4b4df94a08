"""Migrations 002 and 003 on a database that already has waiting lines and purchase orders: the lines
keep their places, now as ranks; open POs get their due date and SKUs whether they have a supplier."""

from datetime import UTC, date, datetime

import asyncpg
import pytest

from backbone.db import BACKBONE_MIGRATIONS, migrate, migration_files
from services.procurement import api
from services.procurement.app import SERVICE

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
    later = ["procurement/002_line_ranks.sql", "procurement/003_truthful_promises.sql"]
    first = [(name, path) for name, path in files if name not in later]
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
