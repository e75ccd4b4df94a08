"""Background jobs that visit streams one by one: the auto-cancel, the overdue re-plan, catch-ups.

Each is the same three layers, written here once:
- `in_own_transaction`: one decision on one stream in a transaction of its own, retried when another
  writer appended to the stream meanwhile (ConcurrencyError);
- `for_each_candidate`: a round over the candidates a read model nominates, a keyset page at a time, so
  a round costs one query per page plus the candidates' own work. A candidate that fails is logged and
  the round goes on; an unreachable database ends the round (the others would fail alike);
- `run_rounds`: rounds until cancelled, `interval` apart, the outcome reported in `health` (GET /health).
The read model only nominates: the decision is taken on the stream's state under its lock, so a
lagging read model, a second instance or a restart never decides anything twice.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import asyncpg
import structlog

from backbone.db import DATABASE_UNAVAILABLE
from backbone.eventstore import ConcurrencyError
from backbone.health import HealthReport

log = structlog.get_logger(__name__)

T = TypeVar("T")
ATTEMPTS = 5  # per candidate and round, on ConcurrencyError
PAGE_SIZE = 100


async def in_own_transaction(
    pool: asyncpg.Pool, work: Callable[[asyncpg.Connection], Awaitable[T]], *, attempts: int = ATTEMPTS
) -> T:
    """`work` in a transaction of its own; a concurrent append to its stream retries it."""
    for attempt in range(1, attempts + 1):
        try:
            async with pool.acquire() as conn, conn.transaction():
                return await work(conn)
        except ConcurrencyError:
            if attempt == attempts:
                raise
            await asyncio.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


@dataclass
class Round:
    """What one round did: the candidates whose visit decided something, and those that failed."""

    changed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


async def for_each_candidate(
    page: Callable[[str, int], Awaitable[Sequence[str]]],
    visit: Callable[[str], Awaitable[bool]],
    *,
    what: str,
    page_size: int = PAGE_SIZE,
) -> Round:
    """Visit every candidate `page(after, limit)` lists (keys in ascending order), once. `visit` says
    whether it decided something. Raises what DATABASE_UNAVAILABLE covers."""
    done = Round()
    after = ""
    while True:
        keys = await page(after, page_size)
        for key in keys:
            try:
                if await visit(key):
                    done.changed.append(key)
                    log.info(f"{what}: done", key=key)
            except DATABASE_UNAVAILABLE:
                raise
            except Exception:
                log.exception(f"{what} failed; trying again next round", key=key)
                done.failed.append(key)
        if len(keys) < page_size:
            return done
        after = keys[-1]


async def run_rounds(
    one_round: Callable[[], Awaitable[bool]], *, interval_seconds: float, health: HealthReport, what: str
) -> None:
    """Run `one_round` every `interval_seconds` until cancelled, or until it returns True (done: the job
    then idles, since a background job that ends is restarted). A round that fails, or leaves failed
    candidates (it raises then), is reported in `health` and the next one tries again."""
    while True:
        try:
            finished = await one_round()
            health.ok()
            if finished:
                await asyncio.Event().wait()
        except DATABASE_UNAVAILABLE as e:
            if health.current.status == "ok":
                log.warning(f"{what} waits for the database", error=repr(e))
            health.degraded(f"database unreachable: {type(e).__name__}: {e}")
        except Exception as e:
            health.degraded(f"{what} failed: {type(e).__name__}: {e}")
            log.exception(f"{what} failed")
        await asyncio.sleep(interval_seconds)
