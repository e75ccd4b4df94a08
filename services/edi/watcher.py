"""The watched inbox folder: every file dropped there is received once and then moved out of the way.

Each round lists the folder (oldest first) and receives every file that is complete: a name without a
leading dot or a .tmp/.part ending (a partner uploading under a temporary name renames it when done),
unchanged for `settle_seconds`. After receiving, a file moves to `processed/` (accepted, or a re-send
of one that was) or to `rejected/` with a `<name>.reason` beside it, under a name prefixed with the
time so that a re-sent file does not overwrite the earlier one. A crash between the database commit and
the move leaves the file in place: the next round receives it again, finds the interchange applied
and moves it then (nothing twice). While the database is away files stay where they are.
"""

import asyncio
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import structlog

from backbone.health import HealthReport
from backbone.jobs import run_rounds
from services.edi.receiving import Outcome, Receiver

log = structlog.get_logger(__name__)

PROCESSED, REJECTED = "processed", "rejected"
_INCOMPLETE_SUFFIXES = (".tmp", ".part", ".reason")


def complete_files(inbox: Path, *, settle_seconds: float, now: float) -> list[Path]:
    """The files of `inbox` ready to receive, oldest first (by modification time, then name)."""
    ready: list[tuple[float, str, Path]] = []
    with os.scandir(inbox) as entries:
        for entry in entries:
            if entry.name.startswith(".") or entry.name.endswith(_INCOMPLETE_SUFFIXES) or not entry.is_file():
                continue
            modified = entry.stat().st_mtime
            if now - modified >= settle_seconds:
                ready.append((modified, entry.name, Path(entry.path)))
    return [path for _, _, path in sorted(ready)]


def file_away(path: Path, outcome: Outcome, at: datetime) -> Path:
    """Move a received file to processed/ or rejected/ (with its .reason); returns where it went."""
    folder = path.parent / (REJECTED if outcome.status == "rejected" else PROCESSED)
    folder.mkdir(exist_ok=True)
    target = folder / f"{at:%Y%m%dT%H%M%S%fZ}-{path.name}"
    if outcome.status == "rejected":
        reason = target.with_name(target.name + ".reason")
        reason.write_text(
            outcome.model_dump_json(indent=2, exclude={"acknowledgement"}) + "\n", encoding="utf-8"
        )
    os.replace(path, target)
    return target


def _ready_files(inbox: Path, settle_seconds: float) -> list[Path]:
    inbox.mkdir(parents=True, exist_ok=True)
    return complete_files(inbox, settle_seconds=settle_seconds, now=time.time())


def _head(path: Path, size: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


async def receive_ready(
    receiver: Receiver, inbox: Path, *, settle_seconds: float, clock: Callable[[], datetime]
) -> int:
    """One round: receive and file away every complete file; returns how many were handled."""
    ready = await asyncio.to_thread(_ready_files, inbox, settle_seconds)
    handled = 0
    for path in ready:
        # One byte more than the limit says "too large" without reading a huge file whole.
        raw = await asyncio.to_thread(_head, path, receiver.max_bytes + 1)
        now = clock()
        outcome = await receiver.receive(raw, source=path.name, now=now)
        where = await asyncio.to_thread(file_away, path, outcome, now)
        log.info("inbox file handled", file=path.name, status=outcome.status, moved_to=str(where))
        handled += 1
    return handled


async def run(
    receiver: Receiver,
    inbox: Path,
    *,
    interval_seconds: float,
    health: HealthReport,
    settle_seconds: float = 1.0,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    async def one_round() -> bool:
        await receive_ready(receiver, inbox, settle_seconds=settle_seconds, clock=clock)
        return False

    await run_rounds(one_round, interval_seconds=interval_seconds, health=health, what="EDI inbox")
