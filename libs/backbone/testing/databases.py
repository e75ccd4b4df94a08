"""Throwaway databases on a real PostgreSQL server, for tests and benchmarks."""

import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from backbone.db import BACKBONE_MIGRATIONS, migrate, migration_files
from backbone.testing.servers import PROJECT_ROOT

# What a service's runtime role may do in its database; deploy/postgres/init runs the same file.
SERVICE_PRIVILEGES_SQL = PROJECT_ROOT / "deploy" / "postgres" / "init" / "include" / "service-privileges.sql"


def with_database(admin_url: str, name: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


def with_login(url: str, user: str, password: str) -> str:
    """`url` with another user and password (same server and database)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"))


@contextlib.asynccontextmanager
async def fresh_database(admin_url: str, name: str) -> AsyncIterator[str]:
    """Create database `name` with the backbone's tables; yield its URL; drop it afterwards. No admin
    connection is held across the block (a test may crash the server): it connects anew to drop it."""

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    await admin(f'CREATE DATABASE "{name}"')
    try:
        url = with_database(admin_url, name)
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn, migration_files(BACKBONE_MIGRATIONS))
        finally:
            await conn.close()
        yield url
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(frozen=True)
class ServiceDatabase:
    """A database set up as deploy/postgres/init sets up a service's: `owner` owns it and runs the
    migrations and rebuilds (DATABASE_MIGRATION_URL), the service runs as `runtime` (DATABASE_URL)."""

    url: str  # the runtime role's
    migration_url: str  # the owner's
    owner: str
    runtime: str


async def apply_service_privileges(admin_url: str, database: str, runtime: str) -> None:
    """Grant `runtime` what a service's runtime role may do in `database` (idempotent)."""
    conn = await asyncpg.connect(with_database(admin_url, database))
    try:
        await conn.execute("SELECT set_config('backorder.runtime_role', $1, false)", runtime)
        await conn.execute(SERVICE_PRIVILEGES_SQL.read_text())
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def service_database(
    admin_url: str, name: str, *, privileges: bool = True
) -> AsyncIterator[ServiceDatabase]:
    """Roles `name` (owner) and `name`_app (runtime) with generated passwords and database `name`, no
    tables yet (a service migrates it as the owner when it starts); dropped afterwards. `privileges=False`
    leaves out the runtime role's grants, as a database from before that role was (apply them later
    with `apply_service_privileges`)."""
    owner, runtime = name, f"{name}_app"
    passwords = {role: secrets.token_urlsafe(24) for role in (owner, runtime)}

    async def admin(*statements: str) -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    def login(role: str) -> str:
        # CREATE ROLE takes no parameters; the passwords are URL-safe and quoted by the server.
        return f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{passwords[role]}'"

    await admin(login(owner), login(runtime))
    try:
        await admin(
            f'CREATE DATABASE "{name}" OWNER "{owner}"',
            f'REVOKE ALL ON DATABASE "{name}" FROM PUBLIC',
            f'GRANT CONNECT ON DATABASE "{name}" TO "{runtime}"',
        )
        if privileges:
            await apply_service_privileges(admin_url, name, runtime)
        url = with_database(admin_url, name)
        yield ServiceDatabase(
            url=with_login(url, runtime, passwords[runtime]),
            migration_url=with_login(url, owner, passwords[owner]),
            owner=owner,
            runtime=runtime,
        )
    finally:
        await admin(
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
            f'DROP ROLE IF EXISTS "{runtime}"',
            f'DROP ROLE IF EXISTS "{owner}"',
        )


async def table_rows(database_url: str, tables: Mapping[str, str]) -> dict[str, list[dict[str, Any]]]:
    """Every row of each table (name -> ORDER BY), to compare read models before and after a rebuild."""
    conn = await asyncpg.connect(database_url)
    try:
        return {
            table: [dict(r) for r in await conn.fetch(f"SELECT * FROM {table} ORDER BY {order_by}")]
            for table, order_by in tables.items()
        }
    finally:
        await conn.close()


async def rows_written(conn: asyncpg.Connection) -> dict[str, int]:
    """Rows inserted, updated or deleted per table by the connection, as its statistics count them.
    Counts of earlier transactions may still be pending in them: compare two readings taken inside one
    transaction (see `writes_of`)."""
    rows = await conn.fetch(
        "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del AS written FROM pg_stat_xact_user_tables"
    )
    return {r["relname"]: r["written"] for r in rows if r["written"]}


def writes_between(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """Rows written per table between two readings of `rows_written` in the same transaction."""
    return {table: n - before.get(table, 0) for table, n in after.items() if n != before.get(table, 0)}


async def cost_of(
    conn: asyncpg.Connection, work: Callable[[asyncpg.Connection], Awaitable[Any]]
) -> dict[str, Any]:
    """What `work` does in one transaction, counted rather than timed: rows written per table (but
    snapshots, one row every so many events whatever the stream's length), the event types appended
    and those of them published."""
    async with conn.transaction():
        before = await rows_written(conn)
        last = await conn.fetchval("SELECT coalesce(max(global_position), 0) FROM event_store")
        await work(conn)
        written = writes_between(before, await rows_written(conn))
        appended = await conn.fetch(
            "SELECT e.event_type, o.global_position IS NOT NULL AS published FROM event_store e"
            " LEFT JOIN outbox o USING (global_position) WHERE e.global_position > $1"
            " ORDER BY e.global_position",
            last,
        )
    written.pop("snapshots", None)
    return {
        "rows": written,
        "appended": [r["event_type"] for r in appended],
        "published": [r["event_type"] for r in appended if r["published"]],
    }
