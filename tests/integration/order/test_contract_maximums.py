"""The contract's largest order (500 lines of 1e9 units) through the domain into the read models and the
report: every quantity column is bigint, and the sums the report reads do not overflow."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from backbone.db import migrate, migration_files
from backbone.decider import Input
from backbone.eventstore import EventStore
from services.order import reports
from services.order.app import SERVICE
from services.order.domain import PlaceOrder, order_stream_id
from services.order.events import ORDER_REGISTRY
from services.order.handlers import Incoming, apply, new_repository
from tests.integration.order.harness import dispatched, order, reserved, short, stock_shipped

pytestmark = pytest.mark.integration

UNITS = 1_000_000_000  # the contract's largest quantity per line
LINES = 500  # and its largest number of lines per order


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    conn = await asyncpg.connect(database_url)
    await migrate(conn, migration_files(SERVICE.migrations))
    await conn.close()
    created = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    assert created is not None
    yield created
    await created.close()


async def test_the_largest_order_fits_the_read_models_and_the_report(pool: asyncpg.Pool) -> None:
    store = EventStore(ORDER_REGISTRY)
    placed = order("MAX", *((str(i), f"SKU-{i}", UNITS, "0.01") for i in range(LINES)))
    stream = order_stream_id("MAX")
    # Half the lines wait whole, the other half is reserved whole and then shipped.
    answers = [
        short("MAX", str(i), f"SKU-{i}", UNITS, 0) if i % 2 else reserved("MAX", str(i), f"SKU-{i}", UNITS)
        for i in range(LINES)
    ]
    inputs: list[Input[Incoming]] = [Input(stream, PlaceOrder(placed)), *(Input(stream, a) for a in answers)]
    shipped = range(0, LINES, 2)
    shipment: list[Input[Incoming]] = [
        Input(stream, dispatched("SH-MAX", "MAX", *((str(i), f"SKU-{i}", UNITS) for i in shipped))),
        *(Input(stream, stock_shipped("SH-MAX", "MAX", str(i), f"SKU-{i}", UNITS)) for i in shipped),
    ]
    async with pool.acquire() as conn, conn.transaction():
        await apply(conn, new_repository(store), inputs)
    async with pool.acquire() as conn, conn.transaction():
        await apply(conn, new_repository(store), shipment)

    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT status, waiting, shipped, closed FROM orders WHERE order_id = 'MAX'"
        )
        assert dict(row or {}) == {
            "status": "partially_shipped",
            "waiting": UNITS * LINES // 2,
            "shipped": UNITS * LINES // 2,
            "closed": False,
        }
        report = await reports.report(conn, datetime.now(UTC))
    assert report.backorder_rate.demanded_units == UNITS * LINES
    assert report.backorder_rate.backordered_units == UNITS * LINES // 2
    assert report.backorder_rate.percent == 50.0
    assert report.open_backorders_by_age[0].waiting_units == UNITS * LINES // 2
    assert sum(row.shipped for row in report.demand_by_sku) == UNITS * LINES // 2
