"""PostgreSQL connection pool, the migration runner, and what counts as "the database is away"."""

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from asyncpg.exceptions import _base as asyncpg_base

log = structlog.get_logger(__name__)

BACKBONE_MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 7_401_001  # advisory lock id: two instances starting together migrate one at a time

# The server is down, restarting, refusing connections or cut the connection: the same statement works
# again once it is back, so callers wait and retry instead of failing the work. Includes the
# protocol-state errors of a connection that broke mid-operation.
DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # class 08, ConnectionDoesNotExistError among them
    asyncpg.CannotConnectNowError,  # "the database system is starting up" / "shutting down"
    asyncpg.AdminShutdownError,  # "terminating connection due to administrator command"
    asyncpg.CrashShutdownError,
    asyncpg.IdleSessionTimeoutError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,  # "connection is closed", "another operation is in progress"
    asyncpg.InternalClientError,  # "cannot switch to state 15; another operation (2) is in progress"
    OSError,  # connection refused, reset, unreachable, DNS
    TimeoutError,
)
# InterfaceErrors about what the code asked for, not about the connection: retrying would not help.
_CODE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg_base.DataError,  # an argument of the wrong type
    asyncpg_base.ClientConfigurationError,
    asyncpg_base.UnsupportedClientFeatureError,
    asyncpg_base.UnsupportedServerFeatureError,
)


def is_database_unavailable(error: BaseException) -> bool:
    """True if `error`, or an error it was explicitly raised from, says the database is unreachable (and
    not that the code asked for something wrong)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DATABASE_UNAVAILABLE) and not isinstance(current, _CODE_ERRORS):
            return True
        current = current.__cause__
    return False


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size)
    assert pool is not None
    return pool


def migration_files(*folders: Path) -> list[tuple[str, Path]]:
    """(`folder/file.sql`, path) in apply order: folders in the order given, files by name."""
    return [
        (f"{folder.parent.name}/{path.name}", path)
        for folder in folders
        for path in sorted(folder.glob("*.sql"))
    ]


class MigrationsPending(Exception):
    """Migrations wait to be applied, and the connected role may not apply them: a service running as its
    runtime role where the owner migrates beforehand (`python -m services.<name> migrate`)."""

    def __init__(self, pending: Sequence[str], service: str | None = None) -> None:
        self.pending = list(pending)
        command = f"python -m services.{service or '<name>'} migrate"
        super().__init__(
            f"migrations pending ({', '.join(self.pending)}); run `{command}` with DATABASE_MIGRATION_URL"
            f" (the owner) first"
        )


async def migrate(
    conn: asyncpg.Connection, files: Sequence[tuple[str, Path]], *, service: str | None = None
) -> list[str]:
    """Apply, each in its own transaction, the files not applied before. Returns the names applied.

    With nothing pending it changes nothing, so the runtime role (no CREATE on the schema, SELECT only
    on schema_migrations) may call it to verify that the owner has migrated; with something pending
    and a role that may not apply it, it raises MigrationsPending (`service` names the command to run).
    """
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)  # waits for a migrating owner
    try:
        recorded = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
        done = (
            {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")} if recorded else set()
        )
        pending = [(name, path) for name, path in files if name not in done]
        if not pending:
            return applied
        if not await _may_migrate(conn, recorded):
            raise MigrationsPending([name for name, _ in pending], service)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for name, path in pending:
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
            log.info("migration applied", migration=name)
            applied.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied


async def _may_migrate(conn: asyncpg.Connection, recorded: bool) -> bool:
    """Whether the connected role may create tables and record what it applied: the owner may, the
    runtime role may not (deploy/postgres/init/include/service-privileges.sql)."""
    creates = await conn.fetchval("SELECT has_schema_privilege(current_schema(), 'CREATE')")
    records = not recorded or await conn.fetchval("SELECT has_table_privilege('schema_migrations', 'INSERT')")
    return bool(creates and records)


def row_of(record: Any) -> tuple[Any, ...]:
    """A dataclass instance's field values in order, as they are (dataclasses.astuple deep-copies each)."""
    return tuple(getattr(record, f.name) for f in dataclasses.fields(record))


def columns(rows: Iterable[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows -> one list per column: the arrays of an `INSERT ... SELECT * FROM unnest($1::t[], ...)`,
    which writes any number of rows in one statement."""
    result: list[list[Any]] = [[] for _ in range(width)]
    for row in rows:
        for column, value in zip(result, row, strict=True):
            column.append(value)
    return result
