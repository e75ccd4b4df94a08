"""Reports of the inventory for the operations board: the SKUs whose backorder queues hold the most units.

Read from the `stock` read model through its partial index on the SKUs with waiting lines (migration
006), so a page costs the same however many SKUs the shop has.
"""

import asyncpg
from pydantic import BaseModel, Field

MAX_WAITING_SKUS = 1000


class WaitingSku(BaseModel):
    sku: str
    waiting_units: int = Field(description="Units backordered and still waiting in the SKU's queue")
    waiting_lines: int = Field(description="Lines in the SKU's backorder queue")
    on_hand: int
    reserved: int
    available: int
    backorder_policy: str
    sourced: bool = Field(description="Procurement knows at least one supplier for the SKU")


_WAITING_SKUS = """
SELECT sku, backordered AS waiting_units, waiting_lines, on_hand, reserved, available, backorder_policy,
       sourced
FROM stock WHERE waiting_lines > 0
ORDER BY backordered DESC, sku
LIMIT $1 OFFSET $2
"""


async def waiting_skus(
    conn: asyncpg.Connection | asyncpg.Pool, limit: int, offset: int = 0
) -> list[WaitingSku]:
    """SKUs with lines waiting, the most units waiting first (then by SKU)."""
    return [WaitingSku(**dict(r)) for r in await conn.fetch(_WAITING_SKUS, limit, offset)]
