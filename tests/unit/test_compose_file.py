"""docker-compose.yml is valid Compose and wires the system as deploy/local does, checked without Docker."""

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from services.console.settings import ConsoleSettings
from tests.unit.local_scripts import load

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SCHEMA_FILE = ROOT.parent / "shared" / "schemas" / "compose-spec.json"
INIT_SQL = ROOT / "deploy" / "postgres" / "init" / "10-service-databases.sql"
SERVERS = {"kafka", "postgres"}  # what every service waits for
MAIL = "mail"  # the SMTP relay stand-in; the notifier retries while it is down
CONSOLE, CONSOLE_PORT = "console", 8005  # the operations board (python -m services.console)
# `${NAME:?message}`: compose refuses to start without the variable (from .env) instead of using "".
REQUIRED_VARIABLE = re.compile(r"\$\{([A-Z][A-Z0-9_]*):\?[^}]+\}")
# `${NAME:-default}`: only for settings that are no secret and have a safe default, exactly these.
OPTIONAL_VARIABLES = {"EDI_PARTNERS": "[]"}  # no trading partner: every interchange is rejected
DEFAULTED_VARIABLE = re.compile(r"\$\{([A-Z][A-Z0-9_]*):-([^}]*)\}")
EDI, EDI_FOLDER = "edi", "/var/lib/backorder/edi"  # the supplier EDI adapter and its volume's mount point


infra = load("infra")
credentials = load("credentials")
SERVICE_PORTS: dict[str, int] = infra.SERVICES
# The services whose APIs the board reads: its settings' CONSOLE_<NAME>_URL (not every service: not edi).
CONSOLE_SOURCES = sorted(
    name.removeprefix("console_").removesuffix("_url")
    for name in ConsoleSettings.model_fields
    if name.startswith("console_") and name.endswith("_url")
)


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
    assert set(compose["services"]) == SERVERS | {MAIL, CONSOLE} | set(SERVICE_PORTS)
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
    owner, runtime = infra.owner_role(name), infra.runtime_role(name)
    # The service runs as its runtime role (the event store append-only), migrates as the owner.
    assert env["DATABASE_URL"] == (
        f"postgresql://{runtime}:${{{credentials.password_key(runtime)}:?run make env}}@postgres:5432/{owner}"
    )
    assert env["DATABASE_MIGRATION_URL"] == (
        f"postgresql://{owner}:${{{credentials.password_key(owner)}:?run make env}}@postgres:5432/{owner}"
    )
    assert env["AUTH_TOKEN_SECRET"] == "${AUTH_TOKEN_SECRET:?run make env}"
    assert env["HTTP_HOST"] == "0.0.0.0"
    assert service["command"] == ["python", "-m", f"services.{name}"]
    assert service["ports"] == [f"127.0.0.1:{SERVICE_PORTS[name]}:{env['HTTP_PORT']}"]
    assert service["healthcheck"]["test"][-1].count(f":{env['HTTP_PORT']}/health") == 1


def test_the_console_reads_the_services_inside_the_network_and_listens_on_8005(
    compose: dict[str, Any],
) -> None:
    console = compose["services"][CONSOLE]
    env = console["environment"]
    assert console["command"] == ["python", "-m", "services.console"]
    assert console["ports"] == [f"127.0.0.1:{CONSOLE_PORT}:{env['HTTP_PORT']}"]
    assert CONSOLE_SOURCES and set(CONSOLE_SOURCES) <= set(SERVICE_PORTS)
    for name in CONSOLE_SOURCES:
        assert env[f"CONSOLE_{name.upper()}_URL"] == f"http://{name}:{env['HTTP_PORT']}"
        assert name in console["depends_on"]
    urls = {key for key in env if key.startswith("CONSOLE_") and key.endswith("_URL")}
    assert urls == {f"CONSOLE_{name.upper()}_URL" for name in CONSOLE_SOURCES}, (
        "a URL the console never reads"
    )
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092" and env["TOPIC_PREFIX"] == "backorder."
    assert env["AUTH_TOKEN_SECRET"] == "${AUTH_TOKEN_SECRET:?run make env}"
    assert "DATABASE_URL" not in env  # it reads the services' APIs, no database
    assert console["healthcheck"]["test"][-1].count(f":{env['HTTP_PORT']}/health") == 1


def test_every_published_port_is_bound_to_the_loopback_interface(compose: dict[str, Any]) -> None:
    published = {name: service.get("ports", []) for name, service in compose["services"].items()}
    assert "kafka" not in {name for name, ports in published.items() if ports}
    for name, ports in published.items():
        for port in ports:
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), (
                f"{name} publishes {port!r} on every interface of the host; bind it to 127.0.0.1"
            )


def test_no_two_containers_publish_the_same_host_port(compose: dict[str, Any]) -> None:
    published = [
        p.rsplit(":", 2)[1] for service in compose["services"].values() for p in service.get("ports", [])
    ]
    assert len(published) == len(set(published)), f"a host port published twice: {sorted(published)}"


def _environments(compose: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {name: service.get("environment", {}) for name, service in compose["services"].items()}


def test_no_password_or_secret_is_written_in_the_file(compose: dict[str, Any]) -> None:
    for name, env in _environments(compose).items():
        for key, value in env.items():
            value = str(value)
            if key.endswith(("PASSWORD", "SECRET")):
                assert REQUIRED_VARIABLE.fullmatch(value), (
                    f"{name}: {key} must be ${{{key}:?...}}, not {value!r}"
                )
            if "://" in value and "@" in value:
                userinfo = value.split("://", 1)[1].split("@", 1)[0]
                user, _, password = userinfo.partition(":")
                assert REQUIRED_VARIABLE.fullmatch(password), f"{name}: {key} has a literal password"
                assert password != user


def test_every_variable_is_one_that_make_env_generates_or_an_optional_setting(
    compose: dict[str, Any],
) -> None:
    # Interpolation happens anywhere in the file: every ${VAR} must come from the generated .env, except
    # the few settings that may be left out.
    text = COMPOSE_FILE.read_text()
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    assert used == set(credentials.required_keys()) | set(OPTIONAL_VARIABLES)
    assert dict(DEFAULTED_VARIABLE.findall(text)) == OPTIONAL_VARIABLES
    assert not set(OPTIONAL_VARIABLES) & set(credentials.required_keys())
    assert not any(name.endswith(("PASSWORD", "SECRET")) for name in OPTIONAL_VARIABLES)
    assert not re.search(r"\$\{[A-Z][A-Z0-9_]*(:?-|\})", DEFAULTED_VARIABLE.sub("", text)), (
        "a variable with a default or none: use ${VAR:?message}, so a missing .env stops compose"
    )


def test_the_edi_adapter_keeps_its_folders_in_a_named_volume(compose: dict[str, Any]) -> None:
    edi = compose["services"][EDI]
    env = edi["environment"]
    (mount,) = edi["volumes"]
    volume, _, target = mount.partition(":")
    assert target == EDI_FOLDER and volume in compose["volumes"], "the folders must outlive the container"
    assert env["EDI_INBOX_DIR"] == f"{EDI_FOLDER}/inbox" and env["EDI_OUTBOX_DIR"] == f"{EDI_FOLDER}/outbox"
    assert env["EDI_PARTNERS"] == "${EDI_PARTNERS:-[]}"
    # One adapter watches the folder: more would race for the same files.
    assert "deploy" not in edi and "scale" not in edi


def test_no_role_shares_a_password_variable_with_another(compose: dict[str, Any]) -> None:
    seen: dict[str, str] = {}
    for env in _environments(compose).values():
        for value in map(str, env.values()):
            if value.startswith("postgresql://"):
                user, _, password = value.split("://", 1)[1].split("@", 1)[0].partition(":")
                variable = REQUIRED_VARIABLE.fullmatch(password)
                assert variable is not None
                assert seen.setdefault(variable[1], user) == user, f"{user} and {seen[variable[1]]}"
                assert variable[1] == credentials.password_key(user)


def test_postgres_gets_every_password_the_init_script_reads(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    assert "./deploy/postgres/init:/docker-entrypoint-initdb.d:ro" in postgres["volumes"]
    assert postgres["ports"] == ["127.0.0.1:55432:5432"]
    env = postgres["environment"]
    wanted = credentials.role_keys()
    assert wanted == [
        credentials.password_key(role(name))
        for name in SERVICE_PORTS
        for role in (infra.owner_role, infra.runtime_role)
    ]
    for key in [*wanted, "POSTGRES_PASSWORD"]:
        assert env[key] == f"${{{key}:?run make env}}"
    # The image runs *.sql and *.sh of the folder itself; the include folder is only \ir'd.
    assert sorted(p.name for p in INIT_SQL.parent.iterdir() if p.is_file()) == [INIT_SQL.name]
