"""A service running inside the test's event loop, for one-service integration tests."""

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import httpx

from backbone.runtime import Service, run_service
from backbone.settings import ServiceSettings
from backbone.testing.background import running
from backbone.testing.waiting import eventually

Settings = TypeVar("Settings", bound=ServiceSettings)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_settings(
    settings_type: type[Settings],
    *,
    service_name: str,
    database_url: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    **overrides: Any,
) -> Settings:
    """Settings for a test instance: its own database, topics and a free HTTP port."""
    values: dict[str, Any] = {
        "service_name": service_name,
        "database_url": database_url,
        "kafka_bootstrap_servers": kafka_bootstrap,
        "topic_prefix": topic_prefix,
        "http_host": "127.0.0.1",
        "http_port": free_port(),
        "consumer_batch_size": 50,
        **overrides,
    }
    return settings_type(**values)


@contextlib.asynccontextmanager
async def serving(service: Service, config: ServiceSettings) -> AsyncIterator[httpx.AsyncClient]:
    """Run the service until the block ends; yields an HTTP client once /health answers."""
    base_url = f"http://{config.http_host}:{config.http_port}"
    async with running(run_service(service, config)) as task, httpx.AsyncClient(base_url=base_url) as http:

        async def healthy() -> bool:
            if task.done():
                task.result()  # raises what made the service fail
            try:
                return (await http.get("/health")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(healthy, what=f"the {service.name} service to answer /health")
        yield http


async def run_rebuild(service_name: str, database_url: str) -> bytes:
    """`python -m services.<name> rebuild`, as an operator runs it; returns what it printed."""
    env = {**os.environ, "SERVICE_NAME": service_name, "DATABASE_URL": database_url}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", f"services.{service_name}", "rebuild", env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, out
    return out
