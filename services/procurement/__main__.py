"""The procurement service.

python -m services.procurement           run it (settings from the environment, see app.ProcurementSettings)
python -m services.procurement migrate   apply the pending migrations as DATABASE_MIGRATION_URL (the
                                         database's owner) and end
python -m services.procurement rebuild   truncate the read models (procurement_skus, supplier_catalogues,
                                         supplier_terms, purchase_orders, line_etas) and re-derive them
                                         from the event log
"""

import asyncpg

from backbone.cli import main
from backbone.eventstore import EventStore
from services.procurement import projections
from services.procurement.app import SERVICE


async def rebuild(conn: asyncpg.Connection, store: EventStore, settings: object) -> str:
    skus = await projections.rebuild(conn, store)
    return f"rebuilt the read models of {skus} SKUs from the event log"


if __name__ == "__main__":
    main(SERVICE, rebuild, __doc__)
