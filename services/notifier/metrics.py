"""The notifier's business gauges for /metrics: the delivery backlog, read at scrape time from the
partial index of pending notifications (sent and failed ones are counters the delivery job keeps)."""

from collections.abc import Sequence

import asyncpg

from backbone.metrics import Reading

_PENDING = """
SELECT count(*) AS pending, extract(epoch FROM now() - min(requested_at)) AS oldest
FROM notification_delivery WHERE status = 'pending'
"""


async def readings(pool: asyncpg.Pool) -> Sequence[Reading]:
    row = await pool.fetchrow(_PENDING)
    return [
        Reading("notifications_pending", "Notifications waiting to be delivered", row["pending"]),
        Reading(
            "oldest_pending_notification_age_seconds",
            "Age of the oldest notification not delivered yet",
            float(row["oldest"] or 0.0),
        ),
    ]
