"""PostgreSQL connection pool and the migration runner shared by all services."""

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import structlog

log = structlog.get_logger(__name__)

BACKBONE_MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 7_401_001  # advisory lock id: two instances starting together migrate one at a time


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


async def migrate(conn: asyncpg.Connection, files: Sequence[tuple[str, Path]]) -> list[str]:
    """Apply, each in its own transaction, the files not applied before. Returns the names applied."""
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        for name, path in files:
            if name in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
            log.info("migration applied", migration=name)
            applied.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied


def columns(rows: Iterable[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows -> one list per column: the arrays of an `INSERT ... SELECT * FROM unnest($1::t[], ...)`,
    which writes any number of rows in one statement."""
    result: list[list[Any]] = [[] for _ in range(width)]
    for row in rows:
        for column, value in zip(result, row, strict=True):
            column.append(value)
    return result
