"""A Kafka broker and a PostgreSQL server of a test module's own, to break on purpose.

Outage tests kill and restart servers; doing that to the servers every other test uses would break those
tests. This runs a separate pair through deploy/local/infra.py, with its own state folder
(BACKORDER_STATE_DIR) and ports (BACKORDER_PRIVATE_KAFKA_PORT, BACKORDER_PRIVATE_KAFKA_CONTROLLER_PORT,
BACKORDER_PRIVATE_PG_PORT; defaults 19092, 19093, 56432), and offers the faults: SIGKILL of the postmaster,
a restart of PostgreSQL, a stop and a start of the broker. Works as root too (infra.py then runs
PostgreSQL as an unprivileged user, which root may signal). Processes are only ever found by the pid files
of this state folder, never by name.
"""

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from backbone.testing.servers import PROJECT_ROOT, Servers

INFRA = PROJECT_ROOT / "deploy" / "local" / "infra.py"
_STOP_SECONDS = 60.0


def _port(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def _alive(pid: int) -> bool:
    """A running process (a zombie has an empty command line and counts as gone)."""
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:
        return False


def _pids_in(folder: Path) -> list[int]:
    """Processes whose working directory is `folder`: the postmaster and every backend it forked."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(entry / "cwd") == str(folder):
                    found.append(int(entry.name))
    return found


async def _until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


@dataclass
class PrivateServers:
    state_dir: Path
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    pg_port: int = 56432

    @property
    def servers(self) -> Servers:
        info = json.loads((self.state_dir / "infra.json").read_text())
        return Servers(info["kafka_bootstrap_servers"], info["pg_admin_url"], "private local infrastructure")

    async def _infra(self, command: str, *, ok: tuple[int, ...] = (0,)) -> str:
        env = {
            **os.environ,
            "BACKORDER_STATE_DIR": str(self.state_dir),
            "BACKORDER_KAFKA_PORT": str(self.kafka_port),
            "BACKORDER_KAFKA_CONTROLLER_PORT": str(self.kafka_controller_port),
            "BACKORDER_PG_PORT": str(self.pg_port),
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(INFRA),
            command,
            cwd=PROJECT_ROOT,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await process.communicate()
        text = out.decode(errors="replace")
        if process.returncode not in ok:
            raise RuntimeError(f"infra.py {command} (state {self.state_dir}) failed:\n{text}")
        return text

    async def up(self) -> Servers:
        """Start whichever of the two is not running, wait until both answer."""
        await self._infra("up")
        return self.servers

    async def down(self) -> None:
        await self._infra("down")

    # --- PostgreSQL -------------------------------------------------------------------------------------

    async def pids(self) -> dict[str, int | None]:
        """The running servers' pids, as `infra.py status` finds them (through the state folder's files)."""
        found: dict[str, int | None] = {"kafka": None, "postgres": None}
        for line in (await self._infra("status", ok=(0, 3))).splitlines():
            words = line.split()
            if len(words) >= 4 and words[0] in found and words[1] == "running":
                found[words[0]] = int(words[3])
        return found

    async def postmaster_pid(self) -> int:
        pid = (await self.pids())["postgres"]
        assert pid is not None, f"the PostgreSQL server of {self.state_dir} is not running"
        return pid

    async def kill_postgres(self) -> int:
        """SIGKILL the postmaster, as a crash would; wait until its backends noticed and exited too (a new
        postmaster refuses to start while they still hold the old shared memory). Returns the pid."""
        pid = await self.postmaster_pid()
        data = Path(os.readlink(f"/proc/{pid}/cwd"))  # the postmaster runs in its data directory
        os.kill(pid, signal.SIGKILL)
        # Gone entirely, reaped too: PostgreSQL takes a zombie's pid in its lock files for a live server.
        await _until(
            lambda: not _pids_in(data) and not Path(f"/proc/{pid}").exists(), 30.0, "PostgreSQL to exit"
        )
        return pid

    async def start_postgres(self) -> None:
        await self.up()  # infra.py starts only what is down; crash recovery runs at start

    # --- Kafka ------------------------------------------------------------------------------------------

    async def kafka_pid(self) -> int:
        pid = (await self.pids())["kafka"]
        assert pid is not None, f"the broker of {self.state_dir} is not running"
        return pid

    async def stop_kafka(self) -> None:
        """A clean broker shutdown (SIGTERM); SIGKILL if it does not finish in time."""
        pid = await self.kafka_pid()
        os.kill(pid, signal.SIGTERM)
        try:
            await _until(lambda: not _alive(pid), _STOP_SECONDS, "the broker to stop")
        except AssertionError:
            os.kill(pid, signal.SIGKILL)
            await _until(lambda: not _alive(pid), 10.0, "the broker to die")

    async def start_kafka(self) -> None:
        await self.up()


@contextlib.asynccontextmanager
async def private_servers() -> AsyncIterator[PrivateServers]:
    """A fresh pair in a temporary state folder for the length of the block; stopped and deleted after."""
    with tempfile.TemporaryDirectory(prefix="backorder-private-") as folder:
        pair = PrivateServers(
            Path(folder),
            kafka_port=_port("BACKORDER_PRIVATE_KAFKA_PORT", 19092),
            kafka_controller_port=_port("BACKORDER_PRIVATE_KAFKA_CONTROLLER_PORT", 19093),
            pg_port=_port("BACKORDER_PRIVATE_PG_PORT", 56432),
        )
        try:
            await pair.up()
            yield pair
        finally:
            await pair.down()
