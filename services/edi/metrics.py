"""The EDI adapter's business gauges for /metrics: what it received, refused and sent in the last day
(range scans of the received_at / transmitted_at indexes)."""

from collections.abc import Sequence

import asyncpg

from backbone.metrics import Reading

_FIGURES = """
SELECT (SELECT count(*) FROM edi_interchanges WHERE received_at > now() - interval '1 day') AS accepted,
       (SELECT count(*) FROM edi_rejections WHERE received_at > now() - interval '1 day') AS rejected,
       (SELECT count(*) FROM edi_purchase_orders WHERE transmitted_at > now() - interval '1 day') AS sent
"""


async def readings(pool: asyncpg.Pool) -> Sequence[Reading]:
    row = await pool.fetchrow(_FIGURES)
    return [
        Reading(
            "interchanges_accepted_last_day", "Inbound interchanges applied in the last 24 h", row["accepted"]
        ),
        Reading(
            "interchanges_rejected_last_day", "Inbound interchanges refused in the last 24 h", row["rejected"]
        ),
        Reading(
            "purchase_orders_sent_last_day",
            "Purchase orders whose latest document went out in the last 24 h",
            row["sent"],
        ),
    ]
