"""A service running inside the test's event loop, for one-service integration tests."""

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import httpx

from backbone.auth import Role, development_token, generate_secret, mint_token
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
    """Settings for a test instance: its own database, topics, a free HTTP port and a token secret of its
    own (mint tokens for it with `token_for`)."""
    values: dict[str, Any] = {
        "service_name": service_name,
        "database_url": database_url,
        "kafka_bootstrap_servers": kafka_bootstrap,
        "topic_prefix": topic_prefix,
        "http_host": "127.0.0.1",
        "http_port": free_port(),
        "consumer_batch_size": 50,
        "auth_token_secret": generate_secret(),
        **overrides,
    }
    return settings_type(**values)


def secret_of(config: ServiceSettings) -> str:
    secret = config.auth_token_secret
    assert secret is not None, "the test's settings have no AUTH_TOKEN_SECRET"
    return secret.get_secret_value()


def token_for(config: ServiceSettings, *roles: Role, subject: str = "test", shop: str | None = None) -> str:
    """A token the service configured by `config` accepts: with `roles` (default: all of them)."""
    if not roles:
        return development_token(secret_of(config), subject)
    return mint_token(secret_of(config), subject, roles, shop=shop)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def serving(service: Service, config: ServiceSettings) -> AsyncIterator[httpx.AsyncClient]:
    """Run the service until the block ends; yields an HTTP client once /health answers. The client
    sends a development token (all the roles, subject "test"); a request may send another."""
    base_url = f"http://{config.http_host}:{config.http_port}"
    headers = bearer(token_for(config))
    async with (
        running(run_service(service, config)) as task,
        httpx.AsyncClient(base_url=base_url, headers=headers) as http,
    ):

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
    env = {
        "AUTH_TOKEN_SECRET": generate_secret(),  # a service's settings need a verifier, also to rebuild
        **os.environ,
        "SERVICE_NAME": service_name,
        "DATABASE_URL": database_url,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", f"services.{service_name}", "rebuild", env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, out
    return out
