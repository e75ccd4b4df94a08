"""docker-compose.yml is valid Compose and wires the system as deploy/local does, checked without Docker."""

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SCHEMA_FILE = ROOT.parent / "shared" / "schemas" / "compose-spec.json"
INIT_SQL = ROOT / "deploy" / "postgres" / "init" / "10-service-databases.sql"
SERVERS = {"kafka", "postgres"}  # what every service waits for
MAIL = "mail"  # the SMTP relay stand-in; the notifier retries while it is down


def _load_infra() -> ModuleType:
    # deploy/local is not a package; infra.py holds the service table both setups must agree on.
    path = ROOT / "deploy" / "local" / "infra.py"
    spec = importlib.util.spec_from_file_location("backorder_local_infra", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


SERVICE_PORTS: dict[str, int] = _load_infra().SERVICES


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    # safe_load resolves the anchors and `<<` merges, so the checks below see each service in full.
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict)
    return document


def test_validates_against_the_compose_specification(compose: dict[str, Any]) -> None:
    assert SCHEMA_FILE.is_file(), f"the Compose Specification schema is missing: {SCHEMA_FILE}"
    schema = json.loads(SCHEMA_FILE.read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, "docker-compose.yml breaks the Compose Specification:\n" + "\n".join(sorted(errors))


def test_runs_the_servers_and_exactly_the_services_of_the_local_setup(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVERS | {MAIL} | set(SERVICE_PORTS)
    assert compose["services"]["kafka"]["image"] == "apache/kafka:4.1.1"
    assert compose["services"]["postgres"]["image"].startswith("postgres:16")


def test_every_container_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        test = service.get("healthcheck", {}).get("test")
        assert test, f"{name} has no healthcheck"
        assert not service["healthcheck"].get("disable"), f"{name} disables its healthcheck"
        assert test[0] in ("CMD", "CMD-SHELL"), f"{name}: healthcheck test must start with CMD or CMD-SHELL"


@pytest.mark.parametrize("name", sorted(SERVICE_PORTS))
def test_service_starts_only_after_kafka_and_postgres_are_healthy(compose: dict[str, Any], name: str) -> None:
    depends_on = compose["services"][name].get("depends_on")
    assert isinstance(depends_on, dict), f"{name}: depends_on must be the long form, to carry conditions"
    for server in SERVERS:
        assert depends_on.get(server, {}).get("condition") == "service_healthy", (
            f"{name} must wait until {server} is healthy"
        )


@pytest.mark.parametrize("name", sorted(SERVICE_PORTS))
def test_service_is_wired_to_its_own_database_and_port(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    env = service["environment"]
    assert isinstance(env, dict), f"{name}: environment must be a mapping"
    assert env["SERVICE_NAME"] == name
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    role = f"backorder_{name}"
    assert env["DATABASE_URL"] == f"postgresql://{role}:{role}@postgres:5432/{role}"
    assert env["HTTP_HOST"] == "0.0.0.0"
    assert service["command"] == ["python", "-m", f"services.{name}"]
    assert service["ports"] == [f"{SERVICE_PORTS[name]}:{env['HTTP_PORT']}"]
    assert service["healthcheck"]["test"][-1].count(f":{env['HTTP_PORT']}/health") == 1


def test_postgres_init_script_creates_every_service_database(compose: dict[str, Any]) -> None:
    mounts = compose["services"]["postgres"]["volumes"]
    assert "./deploy/postgres/init:/docker-entrypoint-initdb.d:ro" in mounts
    roles = set(re.findall(r"'(backorder_\w+)'", INIT_SQL.read_text()))
    assert roles == {f"backorder_{name}" for name in SERVICE_PORTS}
