"""The notifier service.

python -m services.notifier           run it (settings from the environment, see settings.NotifierSettings)
python -m services.notifier migrate   apply the pending migrations as DATABASE_MIGRATION_URL (the
                                      database's owner) and end
python -m services.notifier rebuild   truncate the read models (notification_delivery,
                                      backorder_announcement, sku_watch, back_in_stock_subscription)
                                      and re-derive them from the event log
"""

import asyncpg

from backbone.cli import main
from backbone.eventstore import EventStore
from services.notifier import projections
from services.notifier.app import SERVICE


async def rebuild(conn: asyncpg.Connection, store: EventStore, settings: object) -> str:
    events = await projections.rebuild(conn, store)
    queued = await conn.fetchval("SELECT count(*) FROM notification_delivery")
    return f"rebuilt the read models from {events} events of the log ({queued} notifications)"


if __name__ == "__main__":
    main(SERVICE, rebuild, __doc__)
