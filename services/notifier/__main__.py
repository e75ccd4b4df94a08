"""The notifier service.

python -m services.notifier           run it (settings from the environment, see settings.NotifierSettings)
python -m services.notifier rebuild   truncate the read models (notification_delivery,
                                      backorder_announcement, sku_watch, back_in_stock_subscription)
                                      and re-derive them from the event log
"""

import asyncio
import sys

import asyncpg

from backbone.db import BACKBONE_MIGRATIONS, migrate, migration_files
from backbone.eventstore import EventStore
from backbone.runtime import run_service
from services.notifier import projections
from services.notifier.app import SERVICE, NotifierSettings


async def rebuild(settings: NotifierSettings) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        await migrate(conn, migration_files(BACKBONE_MIGRATIONS, SERVICE.migrations))
        async with conn.transaction():
            events = await projections.rebuild(conn, EventStore(SERVICE.registry))
            queued = await conn.fetchval("SELECT count(*) FROM notification_delivery")
        print(f"rebuilt the read models from {events} events of the log ({queued} notifications)")
    finally:
        await conn.close()


def main(argv: list[str]) -> None:
    match argv:
        case []:
            asyncio.run(run_service(SERVICE, NotifierSettings()))
        case ["rebuild"]:
            asyncio.run(rebuild(NotifierSettings()))
        case _:
            sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
