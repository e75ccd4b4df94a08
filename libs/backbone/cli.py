"""The command line every service has: `python -m services.<name> [migrate|rebuild]`.

Without arguments the service runs (settings from the environment); it migrates at start as
DATABASE_MIGRATION_URL (the owner) or, given only DATABASE_URL (the runtime role), verifies that nothing
is pending and refuses to start otherwise. `migrate` applies the pending migrations as the owner and ends
(a Kubernetes initContainer runs it, so that the service's own container never holds the owner's
password). `rebuild` applies the migrations, then truncates the service's read models and re-derives
them from its event log in one transaction (a live instance's writers wait for it, then write over the
rebuilt rows with their newer state).
"""

import asyncio
import gc
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Self, TypeVar

import asyncpg
from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from backbone.db import BACKBONE_MIGRATIONS, MigrationsPending, migrate, migration_files
from backbone.eventstore import EventStore
from backbone.log import configure_logging
from backbone.runtime import Service, migrate_service, run_service, until_ready
from backbone.settings import ServiceSettings

S = TypeVar("S", bound=BaseSettings)
T = TypeVar("T")

# Rebuilds the read models inside the given transaction; returns a one-line summary for the operator.
Rebuild = Callable[[asyncpg.Connection, EventStore, Any], Awaitable[str]]


async def rebuild(service: Service, settings: ServiceSettings, rebuild_read_models: Rebuild) -> None:
    conn = await asyncpg.connect(settings.migration_url)  # the owner: migrations, then truncating read models
    try:
        await migrate(conn, migration_files(BACKBONE_MIGRATIONS, service.migrations))
        async with conn.transaction():
            summary = await rebuild_read_models(conn, EventStore(service.registry), settings)
        print(summary)
    finally:
        await conn.close()


class MigrationSettings(BaseSettings):
    """All `migrate` reads: the container that runs it needs the owner's URL and no other secret (no
    token secret, no Kafka password, no runtime role)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True, hide_input_in_errors=True)

    database_url: str | None = Field(default=None, description="Used when DATABASE_MIGRATION_URL is unset")
    database_migration_url: str | None = Field(
        default=None, description="The role that owns the database and runs the migrations"
    )
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _has_a_database(self) -> Self:
        if not (self.database_migration_url or self.database_url):
            raise ValueError("set DATABASE_MIGRATION_URL (the database's owner)")
        return self

    @property
    def migration_url(self) -> str:
        url = self.database_migration_url or self.database_url
        assert url is not None  # _has_a_database
        return url


async def apply_migrations(service: Service, settings: MigrationSettings) -> list[str]:
    """`migrate`: apply what is pending as the owner, waiting for the database like a service at start
    (an initContainer may start before PostgreSQL answers). Prints the names applied."""
    configure_logging(service.name, settings.log_level)
    applied = await until_ready(
        "the database (migrations)", lambda: migrate_service(settings.migration_url, service)
    )
    for name in applied:
        print(f"applied {name}")
    files = migration_files(BACKBONE_MIGRATIONS, service.migrations)
    print(f"migrations: {len(applied)} applied now, {len(files) - len(applied)} before")
    return applied


def settings_or_exit(name: str, settings_type: type[S]) -> S:
    """The settings from the environment, or exit with what is wrong (no traceback: it is configuration,
    and the values are left out because they may be secrets)."""
    try:
        return settings_type()
    except ValidationError as e:
        problems = "\n".join(
            f"  {'.'.join(map(str, err['loc'])).upper() or '(settings)'}: {err['msg']}" for err in e.errors()
        )
        sys.exit(f"the {name} service's settings are invalid:\n{problems}")


# Objects allocated between two young collections of the cyclic GC (CPython's default: 700). A service
# allocates a few hundred objects per event (models, states, rows), nearly all freed by reference counting
# at once, and holds many long-lived ones (cached states): at the default, collections run every few
# events and the older generations, re-walking the cached states, often (make bench's 400/s step: 267
# orders/s sustained before, 308/s after). Cycles are still collected, only in larger steps.
GC_YOUNG_THRESHOLD = 50_000


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on uvloop where it is installed (a service spends much of its CPU in the event loop's
    socket work, Kafka and PostgreSQL, which uvloop does in C), with the GC tuned for a service."""
    gc.freeze()  # what start-up made (modules, classes, schemas) lives as long as the process
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def main(service: Service, rebuild_read_models: Rebuild, usage: str | None) -> None:
    try:
        match sys.argv[1:]:
            case []:
                run(run_service(service, settings_or_exit(service.name, service.settings_type)))
            case ["migrate"]:
                run(apply_migrations(service, settings_or_exit(service.name, MigrationSettings)))
            case ["rebuild"]:
                run(
                    rebuild(
                        service, settings_or_exit(service.name, service.settings_type), rebuild_read_models
                    )
                )
            case _:
                sys.exit(usage)
    except MigrationsPending as e:  # configuration, not a bug: the message says what to run
        sys.exit(f"the {service.name} service: {e}")
