"""The inventory service's business gauges for /metrics: what waits for stock, read at scrape time."""

from collections.abc import Sequence

import asyncpg

from backbone.metrics import Reading

# The partial index stock_waiting holds just the SKUs with a queue; the oldest line is a scan of the
# waiting lines only (the queue, not the history).
_WAITING = """
SELECT coalesce(sum(waiting_lines), 0) AS lines, coalesce(sum(backordered), 0) AS units,
       count(*) AS skus,
       (SELECT extract(epoch FROM now() - min(placed_at)) FROM backorder_queue) AS oldest
FROM stock WHERE waiting_lines > 0
"""


async def readings(pool: asyncpg.Pool) -> Sequence[Reading]:
    row = await pool.fetchrow(_WAITING)
    return [
        Reading("waiting_lines", "Order lines waiting for stock", row["lines"]),
        Reading("waiting_units", "Units backordered and waiting for stock", row["units"]),
        Reading("skus_with_waiting_lines", "SKUs with a backorder queue", row["skus"]),
        Reading(
            "oldest_waiting_line_age_seconds", "Age of the longest-waiting line", float(row["oldest"] or 0.0)
        ),
    ]
