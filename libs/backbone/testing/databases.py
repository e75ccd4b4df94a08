"""Throwaway databases on a real PostgreSQL server, for tests and benchmarks."""

import contextlib
from collections.abc import AsyncIterator

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
