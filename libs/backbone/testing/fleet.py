"""The four services as separate processes against real servers, driven only from outside.

For the end-to-end tests and `make bench`: every fleet gets its own databases, topic prefix (so its
consumer groups too) and free HTTP ports, so fleets never see each other's data. A service's output goes
to `<log_dir>/<name>.log`; when one dies or does not become healthy, the error carries its log's tail.
"""

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from backbone.auth import ALL_ROLES, Role, development_token, generate_secret, mint_token
from backbone.contracts import Topic
from backbone.testing.databases import fresh_database
from backbone.testing.servers import PROJECT_ROOT, Servers
from backbone.testing.service import bearer, free_port
from backbone.testing.waiting import eventually

SERVICE_NAMES = ("order", "inventory", "procurement", "notifier")
STOP_GRACE_SECONDS = 20.0


@dataclass
class ServiceProcess:
    name: str
    env: dict[str, str]
    log: Path
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['HTTP_PORT']}"

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                f"services.{self.name}",
                cwd=PROJECT_ROOT,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )

    async def stop(self) -> None:
        """SIGTERM (a graceful stop), SIGKILL if it ignores that."""
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    async def healthy(self, http: httpx.AsyncClient) -> bool:
        if self.process is None or self.process.returncode is not None:
            raise AssertionError(f"{self.name} is not running; its log ends with:\n{self.log_tail()}")
        try:
            return (await http.get(f"{self.url}/health")).status_code == 200
        except httpx.TransportError:
            return False


@dataclass
class Fleet:
    """`http` sends a development token (all the roles) the services accept; `token` mints others."""

    kafka_bootstrap: str
    topic_prefix: str
    services: dict[str, ServiceProcess]
    auth_token_secret: str = field(default_factory=generate_secret)
    http: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.AsyncClient(timeout=10.0, headers=bearer(development_token(self.auth_token_secret)))

    def token(self, *roles: Role, subject: str = "test", shop: str | None = None) -> str:
        return mint_token(self.auth_token_secret, subject, roles or ALL_ROLES, shop=shop)

    def url(self, name: str) -> str:
        return self.services[name].url

    def topic(self, topic: Topic) -> str:
        return topic.qualified(self.topic_prefix)

    async def wait_healthy(self, names: Sequence[str] | None = None, timeout: float = 90.0) -> None:
        waiting = [self.services[n] for n in names or self.services]

        async def all_healthy() -> bool:
            return all([await s.healthy(self.http) for s in waiting])

        await eventually(all_healthy, timeout=timeout, interval=0.2, what="the services to answer /health")

    async def restart(self, name: str) -> None:
        service = self.services[name]
        await service.stop()
        await service.start()
        await self.wait_healthy([name])


@contextlib.asynccontextmanager
async def running_fleet(
    servers: Servers,
    run_name: str,
    log_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    service_env: Mapping[str, Mapping[str, str]] | None = None,
    names: Sequence[str] = SERVICE_NAMES,
) -> AsyncIterator[Fleet]:
    """Start the services (in parallel), wait for /health, stop them and drop their databases at the end.
    `env` goes to every service, `service_env[name]` to one; the fleet's AUTH_TOKEN_SECRET is generated
    unless `env` gives one."""
    log_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 -- once, before anything runs
    async with contextlib.AsyncExitStack() as stack:
        secret = (env or {}).get("AUTH_TOKEN_SECRET") or generate_secret()
        fleet = Fleet(servers.kafka_bootstrap_servers, f"{run_name}.", {}, secret)
        stack.push_async_callback(fleet.http.aclose)
        for name in names:
            # Crash-proof: an outage test may restart the server under the fleet.
            database_url = await stack.enter_async_context(
                fresh_database(servers.pg_admin_url, f"{run_name}_{name}")
            )
            fleet.services[name] = ServiceProcess(
                name,
                {
                    **os.environ,
                    "SERVICE_NAME": name,
                    "HTTP_HOST": "127.0.0.1",
                    "HTTP_PORT": str(free_port()),
                    "DATABASE_URL": database_url,
                    "KAFKA_BOOTSTRAP_SERVERS": servers.kafka_bootstrap_servers,
                    "TOPIC_PREFIX": fleet.topic_prefix,
                    "PYTHONUNBUFFERED": "1",
                    "AUTH_TOKEN_SECRET": secret,
                    **(env or {}),
                    **(service_env or {}).get(name, {}),
                },
                log_dir / f"{name}.log",
            )
        for service in fleet.services.values():
            stack.push_async_callback(service.stop)  # stopped before their databases are dropped
            await service.start()
        await fleet.wait_healthy()
        yield fleet
