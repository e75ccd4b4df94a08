"""The order service.

python -m services.order           run it (settings from the environment, see app.OrderSettings)
python -m services.order migrate   apply the pending migrations as DATABASE_MIGRATION_URL (the
                                   database's owner) and end
python -m services.order rebuild   truncate the read models (orders, order_lines) and re-derive them
                                   from the event log
"""

import asyncpg

from backbone.cli import main
from backbone.eventstore import EventStore
from services.order import projections
from services.order.app import SERVICE


async def rebuild(conn: asyncpg.Connection, store: EventStore, settings: object) -> str:
    orders = await projections.rebuild(conn, store)
    return f"rebuilt the read models of {orders} orders from the event log"


if __name__ == "__main__":
    main(SERVICE, rebuild, __doc__)
