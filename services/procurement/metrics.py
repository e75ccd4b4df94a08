"""The procurement service's business gauges for /metrics, read at scrape time from partial indexes."""

from collections.abc import Sequence

import asyncpg

from backbone.metrics import Reading

_FIGURES = """
SELECT count(*) AS open_pos, coalesce(sum(outstanding), 0) AS on_order,
       count(*) FILTER (WHERE expected_complete < current_date) AS overdue,
       (SELECT count(*) FROM procurement_skus WHERE NOT sourced AND waiting_lines > 0) AS unsourced
FROM purchase_orders WHERE status = 'open'
"""


async def readings(pool: asyncpg.Pool) -> Sequence[Reading]:
    row = await pool.fetchrow(_FIGURES)
    return [
        Reading("open_purchase_orders", "Purchase orders not yet received or cancelled", row["open_pos"]),
        Reading("units_on_order", "Units outstanding on open purchase orders", row["on_order"]),
        Reading("overdue_purchase_orders", "Open purchase orders expected before today", row["overdue"]),
        Reading("unsourced_skus", "SKUs with waiting lines and no supplier", row["unsourced"]),
    ]
