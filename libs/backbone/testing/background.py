"""Run a coroutine in the background for the length of a `with` block, cancelled at its end."""

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Coroutine
from typing import Any

STOP_TIMEOUT = 60.0  # seconds a cancelled service may take to stop before the test fails


@contextlib.asynccontextmanager
async def running(coro: Coroutine[Any, Any, Any]) -> AsyncIterator[asyncio.Task[Any]]:
    """A task that does not stop within STOP_TIMEOUT of its cancellation fails the test with the stacks
    of every task, instead of hanging the run."""
    task = asyncio.create_task(coro)
    try:
        yield task
    finally:
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=STOP_TIMEOUT)
        if not done:
            raise AssertionError(
                f"the task did not stop within {STOP_TIMEOUT} s of its cancellation:\n{_stacks()}"
            )
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _stacks() -> str:
    out = io.StringIO()
    for task in asyncio.all_tasks():
        task.print_stack(limit=12, file=out)
    return out.getvalue()
