"""The command line every service has: `python -m services.<name> [rebuild]`.

Without arguments the service runs (settings from the environment). `rebuild` applies the migrations,
then truncates the service's read models and re-derives them from its event log in one transaction (a
live instance's writers wait for it, then write over the rebuilt rows with their newer state).
"""

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from backbone.db import BACKBONE_MIGRATIONS, migrate, migration_files
from backbone.eventstore import EventStore
from backbone.runtime import Service, run_service
from backbone.settings import ServiceSettings

# Rebuilds the read models inside the given transaction; returns a one-line summary for the operator.
Rebuild = Callable[[asyncpg.Connection, EventStore, Any], Awaitable[str]]


async def rebuild(service: Service, settings: ServiceSettings, rebuild_read_models: Rebuild) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        await migrate(conn, migration_files(BACKBONE_MIGRATIONS, service.migrations))
        async with conn.transaction():
            summary = await rebuild_read_models(conn, EventStore(service.registry), settings)
        print(summary)
    finally:
        await conn.close()


def main(service: Service, rebuild_read_models: Rebuild, usage: str | None) -> None:
    match sys.argv[1:]:
        case []:
            asyncio.run(run_service(service, service.settings_type()))
        case ["rebuild"]:
            asyncio.run(rebuild(service, service.settings_type(), rebuild_read_models))
        case _:
            sys.exit(usage)
