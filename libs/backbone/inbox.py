"""Idempotent consumption: an event id is recorded in the same transaction as the event's effects."""

from collections.abc import Sequence
from uuid import UUID

import asyncpg


async def claim(conn: asyncpg.Connection, event_ids: Sequence[UUID]) -> set[UUID]:
    """Record the ids; returns those seen for the first time. Call inside the effects' transaction."""
    if not event_ids:
        return set()
    rows = await conn.fetch(
        "INSERT INTO inbox (event_id) SELECT unnest($1::uuid[]) ON CONFLICT DO NOTHING RETURNING event_id",
        list(event_ids),
    )
    return {r["event_id"] for r in rows}
