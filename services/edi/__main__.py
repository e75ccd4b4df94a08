"""The supplier EDI adapter.

python -m services.edi           run it (settings from the environment, see settings.EdiSettings)
python -m services.edi migrate   apply the pending migrations as DATABASE_MIGRATION_URL and end
python -m services.edi rebuild   truncate the read models (edi_purchase_orders, edi_interchanges,
                                 edi_rejections) and re-derive them from the event log
"""

import asyncpg

from backbone.cli import main
from backbone.eventstore import EventStore
from services.edi import projections
from services.edi.app import SERVICE


async def rebuild(conn: asyncpg.Connection, store: EventStore, settings: object) -> str:
    applied = await projections.rebuild(conn, store)
    return f"rebuilt the EDI read models from {applied} events of the log"


if __name__ == "__main__":
    main(SERVICE, rebuild, __doc__)
