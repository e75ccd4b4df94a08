"""Throwaway databases on a real PostgreSQL server, for tests and benchmarks."""

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import asyncpg

from backbone.db import BACKBONE_MIGRATIONS, migrate, migration_files


def with_database(admin_url: str, name: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


@contextlib.asynccontextmanager
async def fresh_database(admin_url: str, name: str) -> AsyncIterator[str]:
    """Create database `name` with the backbone's tables; yield its URL; drop it afterwards."""
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = with_database(admin_url, name)
            conn = await asyncpg.connect(url)
            try:
                await migrate(conn, migration_files(BACKBONE_MIGRATIONS))
            finally:
                await conn.close()
            yield url
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


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
