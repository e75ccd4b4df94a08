"""The inventory service.

python -m services.inventory           run it (settings from the environment, see app.InventorySettings)
python -m services.inventory migrate   apply the pending migrations as DATABASE_MIGRATION_URL (the
                                       database's owner) and end
python -m services.inventory rebuild   truncate the read models (stock, backorder_queue,
                                       allocation_audit) and re-derive them from the event log
"""

import asyncpg

from backbone.cli import main
from backbone.eventstore import EventStore
from services.inventory import projections
from services.inventory.app import SERVICE, InventorySettings


async def rebuild(conn: asyncpg.Connection, store: EventStore, settings: InventorySettings) -> str:
    skus = await projections.rebuild(conn, store)
    return f"rebuilt the read models of {skus} SKUs from the event log"


if __name__ == "__main__":
    main(SERVICE, rebuild, __doc__)
