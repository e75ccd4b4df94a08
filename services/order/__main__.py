"""The order service.

python -m services.order           run it (settings from the environment, see app.OrderSettings)
python -m services.order rebuild   truncate the read models (orders, order_lines) and re-derive them
                                   from the event log
"""

import asyncio
import sys

import asyncpg

from backbone.db import BACKBONE_MIGRATIONS, migrate, migration_files
from backbone.eventstore import EventStore
from backbone.runtime import run_service
from services.order import projections
from services.order.app import SERVICE, OrderSettings


async def rebuild(settings: OrderSettings) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        await migrate(conn, migration_files(BACKBONE_MIGRATIONS, SERVICE.migrations))
        async with conn.transaction():
            orders = await projections.rebuild(conn, EventStore(SERVICE.registry))
        print(f"rebuilt the read models of {orders} orders from the event log")
    finally:
        await conn.close()


def main(argv: list[str]) -> None:
    match argv:
        case []:
            asyncio.run(run_service(SERVICE, OrderSettings()))
        case ["rebuild"]:
            asyncio.run(rebuild(OrderSettings()))
        case _:
            sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
