"""deploy/local: the state folder, copies of the PostgreSQL binaries, the generated credentials, the
supervisor's backoff; no servers."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from backbone.testing import servers
from services.edi.settings import EdiSettings
from tests.unit.local_scripts import load

ROOT = Path(__file__).resolve().parents[2]


infra = load("infra")
credentials = load("credentials")
local_services = load("services")


def test_the_state_folder_is_backorder_state_dir_made_absolute_else_dot_state(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("BACKORDER_STATE_DIR", raising=False)
    assert infra.state_dir() == servers.state_dir() == ROOT / ".state"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BACKORDER_STATE_DIR", "private")
    # Both sides resolve a relative folder the same way, though infra.py runs from the project root.
    assert infra.state_dir() == servers.state_dir() == tmp_path / "private"


def test_the_kafka_jars_are_cached_per_user_not_per_state_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere/cache")
    assert infra.cache_dir() == Path("/somewhere/cache/backorder")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert infra.cache_dir() == Path.home() / ".cache" / "backorder"


def test_each_state_folder_gets_its_own_postgres_folder_as_root() -> None:
    assert infra.state_key(Path("/a/.state")) != infra.state_key(Path("/b/.state"))
    assert infra.state_key(Path("/a/.state")) == infra.state_key(Path("/a/.state"))
    assert len(infra.state_key(Path("/a"))) == 16


def _tree(base: Path, *files: str) -> None:
    for name in files:
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))


def test_a_copy_of_pgserver_keeps_its_libraries_where_the_rpath_expects_them(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    _tree(site, "pgserver/pginstall/bin/postgres", "pgserver/pginstall/lib/x.so", "pgserver.libs/libpq.so")
    base, parts = infra._pg_installation(site / "pgserver" / "pginstall" / "bin")
    assert base == site
    assert parts == [site / "pgserver" / "pginstall", site / "pgserver.libs"]

    other = tmp_path / "usr" / "lib" / "postgresql"
    _tree(other, "bin/postgres", "share/postgresql.conf.sample")
    assert infra._pg_installation(other / "bin") == (other.parent, [other])


def test_the_same_build_in_two_checkouts_shares_one_copy(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    _tree(first, "pgserver/pginstall/bin/postgres", "pgserver.libs/libpq.so")
    shutil.copytree(first, second)  # copy2 keeps the modification times
    signature = infra._pg_tree_signature(first, [first / "pgserver" / "pginstall", first / "pgserver.libs"])
    same = infra._pg_tree_signature(second, [second / "pgserver" / "pginstall", second / "pgserver.libs"])
    assert signature == same
    (second / "pgserver.libs" / "libpq.so").write_text("another build")
    assert infra._pg_tree_signature(second, [second / "pgserver.libs"]) != signature


def test_clean_refuses_a_state_folder_that_holds_the_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(infra, "STATE_DIR", ROOT.parent)

    def down() -> list[str]:
        raise AssertionError("clean must refuse before it stops anything")

    monkeypatch.setattr(infra, "down", down)
    with pytest.raises(infra.InfraError, match="refusing"):
        infra.clean()


def test_restarts_back_off_from_1_s_doubling_to_30_s_and_reset_after_a_stable_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(local_services, "SERVICES_DIR", tmp_path)
    service = local_services.Service("fake", 1, "fake.module")
    supervisor = local_services._Supervisor([service])
    watched = supervisor.watched[0]
    clock = [1000.0]
    monkeypatch.setattr(local_services.time, "monotonic", lambda: clock[0])

    def crash_after(seconds: float) -> float:
        watched.started_at = clock[0]
        clock[0] += seconds
        supervisor.exited(watched, "signal 9 (SIGKILL)")
        assert watched.restart_at is not None
        return watched.restart_at - clock[0]

    assert [crash_after(0.5) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert crash_after(local_services.RESTART_RESET_AFTER) == 1
    assert crash_after(0.5) == 2
    assert watched.last_exit == "signal 9 (SIGKILL)"
    assert watched.as_json()["pid"] is None and watched.as_json()["restart_due_at"] is not None


def test_the_supervisor_reports_how_a_child_ended(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    service = local_services.Service("fake", 1, "fake.module")
    watched = local_services._Watched(service)
    watched.process = subprocess.Popen([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), 9)"])
    watched.pid = watched.process.pid
    watched.process.wait()
    assert watched.exit_status() == "signal 9 (SIGKILL)"
    watched.process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    watched.pid = watched.process.pid
    watched.process.wait()
    assert watched.exit_status() == "exit status 3"


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_credentials_are_generated_once_private_and_strong(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "secrets.env"
    values = credentials.ensure(path)
    assert list(values) == credentials.required_keys()
    assert "POSTGRES_PASSWORD" in values and "AUTH_TOKEN_SECRET" in values
    assert "BACKORDER_ORDER_PASSWORD" in values and "BACKORDER_ORDER_APP_PASSWORD" in values
    assert _mode(path) == 0o600
    assert len(set(values.values())) == len(values)  # every role its own
    roles = {
        "postgres",
        *(infra.owner_role(n) for n in infra.SERVICES),
        *(infra.runtime_role(n) for n in infra.SERVICES),
    }
    for key, value in values.items():
        assert len(value) >= 32 and value not in roles, key
        assert credentials.weakness(key, value) is None
    assert credentials.ensure(path) == values  # kept: the databases were created with them
    assert credentials.read(path) == values


def test_credentials_add_what_the_file_lacks_and_keep_the_rest(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    kept = "k" * 40
    path.write_text(f"# mine\nCOMPOSE_PROJECT_NAME=shop\nexport POSTGRES_PASSWORD='{kept}'")
    path.chmod(0o644)
    values = credentials.ensure(path)
    assert values["POSTGRES_PASSWORD"] == kept
    text = path.read_text()
    assert text.startswith("# mine\nCOMPOSE_PROJECT_NAME=shop\n") and text.count("AUTH_TOKEN_SECRET=") == 1
    assert credentials.read(path)["COMPOSE_PROJECT_NAME"] == "shop"
    assert _mode(path) == 0o600  # made private


@pytest.mark.parametrize("value", ["backorder_order", "short", "x" * 40 + " $weird"])
def test_a_weak_value_already_in_the_file_is_refused(tmp_path: Path, value: str) -> None:
    path = tmp_path / ".env"
    path.write_text(f"BACKORDER_ORDER_PASSWORD={value}\n")
    with pytest.raises(ValueError, match="BACKORDER_ORDER_PASSWORD"):
        credentials.ensure(path)
    assert credentials.main([str(path)]) == 1


def test_the_infrastructure_hands_each_service_its_runtime_and_owner_role(tmp_path: Path) -> None:
    secrets = credentials.ensure(tmp_path / "secrets.env")
    info = infra.InfraInfo.for_ports(29092, 57432, secrets)
    for name in infra.SERVICES:
        runtime = infra.urlsplit(info.database_urls[name])
        owner = infra.urlsplit(info.migration_urls[name])
        assert (runtime.username, owner.username) == (f"backorder_{name}_app", f"backorder_{name}")
        assert runtime.path == owner.path == f"/backorder_{name}"
        assert runtime.password == secrets[f"BACKORDER_{name.upper()}_APP_PASSWORD"]
        assert owner.password == secrets[f"BACKORDER_{name.upper()}_PASSWORD"]
        assert (runtime.hostname, runtime.port) == ("127.0.0.1", 57432)
    admin = infra.urlsplit(info.pg_admin_url)
    assert (admin.username, admin.password) == ("postgres", secrets["POSTGRES_PASSWORD"])
    for url in [info.pg_admin_url, *info.database_urls.values(), *info.migration_urls.values()]:
        parts = infra.urlsplit(url)
        assert parts.password != parts.username

    env = info.env()
    assert env["AUTH_TOKEN_SECRET"] == secrets["AUTH_TOKEN_SECRET"]
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:29092"
    assert env["ORDER_DATABASE_URL"] == info.database_urls["order"]
    assert env["ORDER_DATABASE_MIGRATION_URL"] == info.migration_urls["order"]
    assert info.service_env("inventory") == {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:29092",
        "AUTH_TOKEN_SECRET": secrets["AUTH_TOKEN_SECRET"],
        "DATABASE_URL": info.database_urls["inventory"],
        "DATABASE_MIGRATION_URL": info.migration_urls["inventory"],
    }
    assert set(info.service_env("console")) == {"KAFKA_BOOTSTRAP_SERVERS", "AUTH_TOKEN_SECRET"}


def test_infra_json_is_private_and_one_of_an_earlier_version_counts_as_absent(tmp_path: Path) -> None:
    info = infra.InfraInfo.for_ports(29092, 57432, credentials.ensure(tmp_path / "secrets.env"))
    path = tmp_path / "infra.json"
    info.save(path)
    assert _mode(path) == 0o600
    assert infra.InfraInfo.load(path) == info
    old = {"kafka_bootstrap_servers": "x:1", "pg_admin_url": "postgresql://a@b/c", "database_urls": {}}
    path.write_text(json.dumps(old))
    assert infra.InfraInfo.load(path) is None  # `up` writes it anew
    assert infra.InfraInfo.load(tmp_path / "missing.json") is None


def test_urls_are_shown_without_their_password() -> None:
    assert infra.without_password("postgresql://u:secret@127.0.0.1:5/db") == "postgresql://u@127.0.0.1:5/db"
    assert infra.without_password("postgresql://u@h/db") == "postgresql://u@h/db"
    assert infra.without_password("postgresql://h/db") == "postgresql://h/db"


def test_every_process_of_make_run_listens_on_a_port_of_its_own() -> None:
    ports = [service.port for service in local_services.ALL] + [local_services.MAIL_SMTP_PORT]
    assert len(ports) == len(set(ports)), sorted(ports)
    assert {service.name for service in local_services.ALL} >= {*infra.SERVICES, "console", "mailsink"}


def test_the_edi_adapter_runs_with_its_database_its_folders_in_the_state_folder_and_the_demo_partners(
    tmp_path: Path,
) -> None:
    secrets = credentials.ensure(tmp_path / "secrets.env")
    assert {"BACKORDER_EDI_PASSWORD", "BACKORDER_EDI_APP_PASSWORD"} <= set(secrets)
    info = infra.InfraInfo.for_ports(29092, 57432, secrets)
    edi = next(service for service in local_services.ALL if service.name == "edi")
    assert (edi.module, edi.port, edi.built) == ("services.edi", infra.SERVICES["edi"], True)
    with mock.patch.dict(os.environ, {}, clear=True):  # only what services.py gives it
        env = local_services.environment(edi, info)
    assert env["DATABASE_URL"] == info.database_urls["edi"]
    assert env["DATABASE_MIGRATION_URL"] == info.migration_urls["edi"]
    # Inside this state folder, so that `infra.py clean` takes them along.
    assert Path(env["EDI_INBOX_DIR"]) == infra.STATE_DIR / "edi" / "inbox"
    assert Path(env["EDI_OUTBOX_DIR"]) == infra.STATE_DIR / "edi" / "outbox"
    assert json.loads(env["EDI_PARTNERS"]) == list(local_services.DEMO_EDI_PARTNERS)
    # What the adapter itself makes of that environment.
    with mock.patch.dict(os.environ, env, clear=True):
        settings = EdiSettings()
    assert settings.http_port == edi.port and settings.service_name == "edi"
    assert [(p.supplier_id, p.standard) for p in settings.edi_partners] == [
        ("acme", "x12"),
        ("globex", "edifact"),
    ]
    assert settings.edi_inbox_dir == infra.STATE_DIR / "edi" / "inbox"
