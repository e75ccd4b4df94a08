"""The inventory service.

python -m services.inventory           run it (settings from the environment, see app.InventorySettings)
python -m services.inventory rebuild   truncate the read models (stock, backorder_queue,
                                       allocation_audit) and re-derive them from the event log
"""

import asyncio
import sys

import asyncpg

from backbone.db import BACKBONE_MIGRATIONS, migrate, migration_files
from backbone.eventstore import EventStore
from backbone.runtime import run_service
from services.inventory import projections
from services.inventory.app import SERVICE, InventorySettings


async def rebuild(settings: InventorySettings) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        await migrate(conn, migration_files(BACKBONE_MIGRATIONS, SERVICE.migrations))
        async with conn.transaction():
            skus = await projections.rebuild(conn, EventStore(SERVICE.registry), settings.priority)
        print(f"rebuilt the read models of {skus} SKUs from the event log")
    finally:
        await conn.close()


def main(argv: list[str]) -> None:
    match argv:
        case []:
            asyncio.run(run_service(SERVICE, InventorySettings()))
        case ["rebuild"]:
            asyncio.run(rebuild(InventorySettings()))
        case _:
            sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
