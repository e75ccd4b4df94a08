"""Where the integration tests find real servers, in this order:

1. KAFKA_BOOTSTRAP_SERVERS and BACKORDER_PG_ADMIN_URL (a superuser URL) from the environment;
2. testcontainers, when a Docker daemon actually answers a ping;
3. the project's local infrastructure (deploy/local/infra.py up, state in BACKORDER_STATE_DIR, default
   .state): Kafka from Maven Central's jars and PostgreSQL from the pgserver package, started here when
   not running yet.
Never a silent skip: if none works, the tests fail and say why.
"""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Servers:
    kafka_bootstrap_servers: str
    pg_admin_url: str
    source: str


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@contextmanager
def _containers() -> Iterator[Servers]:
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.postgres import PostgresContainer

    with ExitStack() as stack:
        kafka = stack.enter_context(KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft())
        postgres = stack.enter_context(PostgresContainer("postgres:16", driver=None))
        yield Servers(kafka.get_bootstrap_server(), postgres.get_connection_url(), "testcontainers")


def state_dir() -> Path:
    """The local infrastructure's state folder, as deploy/local/infra.py resolves it."""
    raw = os.environ.get("BACKORDER_STATE_DIR", "").strip()
    return Path(raw).expanduser().absolute() if raw else PROJECT_ROOT / ".state"


def _local_infrastructure() -> Servers:
    state = state_dir()
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "deploy" / "local" / "infra.py"), "up"],
        cwd=PROJECT_ROOT,
        # Absolute, so that infra.py (run from the project root) means the same folder as we do.
        env={**os.environ, "BACKORDER_STATE_DIR": str(state)},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"local infrastructure did not start:\n{done.stdout}\n{done.stderr}")
    info = json.loads((state / "infra.json").read_text())
    return Servers(info["kafka_bootstrap_servers"], info["pg_admin_url"], "local infrastructure")


@contextmanager
def real_servers() -> Iterator[Servers]:
    kafka, pg = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("BACKORDER_PG_ADMIN_URL")
    if kafka and pg:
        yield Servers(kafka, pg, "environment")
    elif _docker_answers():
        with _containers() as servers:
            yield servers
    else:
        yield _local_infrastructure()
