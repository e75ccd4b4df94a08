"""The procurement service.

python -m services.procurement           run it (settings from the environment, see app.ProcurementSettings)
python -m services.procurement rebuild   truncate the read models (procurement_skus, supplier_catalogues,
                                         supplier_terms, purchase_orders, line_etas) and re-derive them
                                         from the event log
"""

import asyncio
import sys

import asyncpg

from backbone.db import BACKBONE_MIGRATIONS, migrate, migration_files
from backbone.eventstore import EventStore
from backbone.runtime import run_service
from services.procurement import projections
from services.procurement.app import SERVICE, ProcurementSettings


async def rebuild(settings: ProcurementSettings) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        await migrate(conn, migration_files(BACKBONE_MIGRATIONS, SERVICE.migrations))
        async with conn.transaction():
            skus = await projections.rebuild(conn, EventStore(SERVICE.registry))
        print(f"rebuilt the read models of {skus} SKUs from the event log")
    finally:
        await conn.close()


def main(argv: list[str]) -> None:
    match argv:
        case []:
            asyncio.run(run_service(SERVICE, ProcurementSettings()))
        case ["rebuild"]:
            asyncio.run(rebuild(ProcurementSettings()))
        case _:
            sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
