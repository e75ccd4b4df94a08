#!/usr/bin/env python3
"""Run the servers backorder needs on this machine, without Docker.

    python deploy/local/infra.py up|down|status|env

`up` starts a single-node Apache Kafka (KRaft, broker and controller in one process) from jars that Maven
fetches, and a PostgreSQL server from the binaries of the pgserver package, both on 127.0.0.1; it then
creates per service a database, its owner role and the service's runtime role, and writes infra.json.
`down` stops exactly the processes that `up` started. All state lives in BACKORDER_STATE_DIR (default:
the git-ignored .state/ folder at the project root), the generated passwords and AUTH_TOKEN_SECRET too
(secrets.env, mode 600); the Kafka jars are cached for all of them in ~/.cache/backorder.
Linux only: a process is recognised as ours through /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import credentials  # deploy/local/credentials.py: this folder is on sys.path when infra.py runs
from aiokafka.admin import AIOKafkaAdminClient

ROOT = Path(__file__).resolve().parents[2]


def state_dir() -> Path:
    """BACKORDER_STATE_DIR (made absolute against the current folder), else .state at the project root."""
    raw = os.environ.get("BACKORDER_STATE_DIR", "").strip()
    return Path(raw).expanduser().absolute() if raw else ROOT / ".state"


def cache_dir() -> Path:
    """Downloads shared by every checkout and state folder of this user (the Kafka jars)."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".cache") / "backorder"


STATE_DIR = state_dir()
INFRA_JSON = STATE_DIR / "infra.json"
SECRETS_FILE = STATE_DIR / "secrets.env"  # generated once per state folder; `clean` deletes it
LOCK_FILE = STATE_DIR / "infra.lock"

KAFKA_POM = ROOT / "deploy" / "kafka" / "pom.xml"
KAFKA_JARS_CACHE = cache_dir() / "kafka-jars"
KAFKA_DIR = STATE_DIR / "kafka"
KAFKA_DATA = KAFKA_DIR / "data"
KAFKA_PROPERTIES = KAFKA_DIR / "server.properties"
KAFKA_LOG = KAFKA_DIR / "kafka.log"
KAFKA_PID = KAFKA_DIR / "kafka.pid"

# As root, PostgreSQL runs as an unprivileged user, who may be unable to enter the state folder (a clone
# in /root or in a `mktemp -d` folder). Its files then live in a folder of their own per state folder,
# named by a hash of the state folder's path, under this root-owned, world-traversable one.
PG_SYSTEM_ROOT = Path("/var/lib/backorder")


def state_key(state: Path) -> str:
    return hashlib.sha256(str(state).encode()).hexdigest()[:16]


def _pg_dir() -> Path:
    in_state = STATE_DIR / "postgres"  # as root, a symbolic link to the real folder (for people and tests)
    if os.geteuid() != 0:
        return in_state
    if in_state.is_symlink():
        target = Path(os.readlink(in_state))
        # Written by _prepare_pg_dir; followed so that a moved state folder keeps its cluster.
        if target.name == "postgres" and target.parent.parent == PG_SYSTEM_ROOT:
            return target
    # A cluster that an earlier version initialised in the state folder stays there: its user reached it.
    elif (in_state / "data" / "PG_VERSION").exists():
        return in_state
    return PG_SYSTEM_ROOT / state_key(STATE_DIR) / "postgres"


PG_DIR = _pg_dir()
PG_DATA = PG_DIR / "data"
PG_SOCKET_DIR = PG_DIR / "run"
PG_LOG = PG_DIR / "postgres.log"
# The same script the postgres:16 container runs on first start, so both setups create identical roles.
PG_INIT_SQL = ROOT / "deploy" / "postgres" / "init" / "10-service-databases.sql"
PG_SUPERUSER = "postgres"
# What clusters initialised by earlier versions have; `up` replaces it by the generated one.
PG_LEGACY_SUPERUSER_PASSWORD = "postgres"
PG_FALLBACK_USER = "backorder-pg"

HOST = "127.0.0.1"

# The one table of the processes with a database of their own: name -> HTTP port on the host. services.py,
# demo.py and the compose test read it too. The EDI adapter takes 8006: 8005 is the console's (services.py).
SERVICES: dict[str, int] = {
    "order": 8001,
    "inventory": 8002,
    "procurement": 8003,
    "notifier": 8004,
    "edi": 8006,
}

# The EDI adapter's folders: it watches the inbox (moving what it handled to processed/ or rejected/
# under it) and writes one outbox folder per supplier_id. It creates them itself.
EDI_DIR = STATE_DIR / "edi"
EDI_INBOX_DIR = EDI_DIR / "inbox"
EDI_OUTBOX_DIR = EDI_DIR / "outbox"
# The trading partners of a local run (EDI_PARTNERS), one per standard: services.py starts the
# adapter with them, demo.py plays their side.
DEMO_EDI_PARTNERS: tuple[dict[str, str], ...] = (
    {"supplier_id": "acme", "standard": "x12", "their_id": "ACMESUPPLY", "our_id": "BACKORDER"},
    {"supplier_id": "globex", "standard": "edifact", "their_id": "GLOBEX", "our_id": "BACKORDER"},
)

STOP_GRACE_SECONDS = 30.0


class InfraError(Exception):
    """A failure with a message meant for the person at the terminal."""


@dataclasses.dataclass(frozen=True)
class Settings:
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    pg_port: int = 55432
    timeout: float = 90.0

    @classmethod
    def from_env(cls) -> Settings:
        def number(name: str, default: float) -> float:
            raw = os.environ.get(name, "").strip()
            try:
                return float(raw) if raw else default
            except ValueError:
                raise InfraError(f"{name}={raw!r} is not a number") from None

        return cls(
            kafka_port=int(number("BACKORDER_KAFKA_PORT", cls.kafka_port)),
            kafka_controller_port=int(number("BACKORDER_KAFKA_CONTROLLER_PORT", cls.kafka_controller_port)),
            pg_port=int(number("BACKORDER_PG_PORT", cls.pg_port)),
            timeout=number("BACKORDER_INFRA_TIMEOUT", cls.timeout),
        )


def owner_role(service: str) -> str:
    """Owns the service's database: runs its migrations and `rebuild` (DATABASE_MIGRATION_URL)."""
    return f"backorder_{service}"


def runtime_role(service: str) -> str:
    """What the service runs as (DATABASE_URL): DML on its tables, the event store append-only."""
    return f"backorder_{service}_app"


@dataclasses.dataclass(frozen=True)
class InfraInfo:
    """Where the running servers listen and with which credentials; the content of .state/infra.json."""

    kafka_bootstrap_servers: str
    pg_admin_url: str
    database_urls: dict[str, str]  # service -> its runtime role's URL (DATABASE_URL)
    migration_urls: dict[str, str]  # service -> its database owner's URL (DATABASE_MIGRATION_URL)
    auth_token_secret: str

    @classmethod
    def for_ports(cls, kafka_port: int, pg_port: int, generated: Mapping[str, str]) -> InfraInfo:
        """`generated`: the passwords and token secret of SECRETS_FILE (see load_secrets)."""

        def url(user: str, database: str) -> str:
            password = generated[credentials.password_key(user)]
            return f"postgresql://{user}:{password}@{HOST}:{pg_port}/{database}"

        return cls(
            kafka_bootstrap_servers=f"{HOST}:{kafka_port}",
            pg_admin_url=url(PG_SUPERUSER, "postgres"),
            database_urls={name: url(runtime_role(name), owner_role(name)) for name in SERVICES},
            migration_urls={name: url(owner_role(name), owner_role(name)) for name in SERVICES},
            auth_token_secret=generated[credentials.AUTH_TOKEN_SECRET],
        )

    @classmethod
    def load(cls, path: Path = INFRA_JSON) -> InfraInfo | None:
        """What `up` wrote; None when nothing runs (or an earlier version wrote it: `up` rewrites it)."""
        try:
            data = json.loads(path.read_text())
            return cls(
                data["kafka_bootstrap_servers"],
                data["pg_admin_url"],
                dict(data["database_urls"]),
                dict(data["migration_urls"]),
                data["auth_token_secret"],
            )
        except (FileNotFoundError, KeyError):
            return None

    def save(self, path: Path = INFRA_JSON) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        # It holds passwords: private from its first byte.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(dataclasses.asdict(self), indent=2) + "\n")
        tmp.replace(path)  # atomic, so a reader never sees half a file

    def service_env(self, service: str) -> dict[str, str]:
        """The settings a process of ours needs to run here: Kafka and the token secret for every one
        (the console too), the two database URLs for a service with a database."""
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "AUTH_TOKEN_SECRET": self.auth_token_secret,
        }
        if service in self.database_urls:
            env["DATABASE_URL"] = self.database_urls[service]
            env["DATABASE_MIGRATION_URL"] = self.migration_urls[service]
        return env

    def env(self) -> dict[str, str]:
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "BACKORDER_PG_ADMIN_URL": self.pg_admin_url,
            "AUTH_TOKEN_SECRET": self.auth_token_secret,
        }
        for name in self.database_urls:
            env[f"{name.upper()}_DATABASE_URL"] = self.database_urls[name]
            env[f"{name.upper()}_DATABASE_MIGRATION_URL"] = self.migration_urls[name]
        return env


def without_password(url: str) -> str:
    """A database URL as it may be shown or put on a command line (which every user can read)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[2]}" if netloc[1] else parts.netloc))


def load_secrets() -> dict[str, str]:
    """This state folder's generated passwords and AUTH_TOKEN_SECRET, created on first use (mode 600)."""
    try:
        return credentials.ensure(SECRETS_FILE)
    except ValueError as exc:
        raise InfraError(str(exc)) from None


@dataclasses.dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None
    address: str | None

    @property
    def running(self) -> bool:
        return self.pid is not None


# ---------------------------------------------------------------- processes


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    # A zombie has an empty command line, so it counts as gone.
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def reap(pid: int) -> None:
    # When up() and down() run in one process the server is our child; collect it so it is not a zombie.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_process(pid: int, is_ours: Callable[[int], bool], sig: int, grace: float) -> None:
    """Send `sig`, wait up to `grace` seconds, then SIGKILL; re-check identity before each signal."""
    for signum, wait in ((sig, grace), (signal.SIGKILL, 10.0)):
        if not is_ours(pid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            reap(pid)
            if not is_ours(pid):
                return
            time.sleep(0.2)
    raise InfraError(f"pid {pid} is still alive after SIGKILL")


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def _require_free(ports: dict[int, str], component: str) -> None:
    for port, env_name in ports.items():
        if port_in_use(port):
            raise InfraError(
                f"{HOST}:{port} is already taken by another process, so {component} cannot listen there; "
                f"stop that process or pick another port with {env_name}=<port>"
            )


def _run(
    cmd: Sequence[object],
    what: str,
    timeout: float | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    args = [str(part) for part in cmd]
    try:
        done = subprocess.run(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise InfraError(f"{what} did not finish within {timeout:.0f} s: {shlex.join(args)}") from exc
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()
        raise InfraError(f"{what} failed (exit {done.returncode}): {shlex.join(args)}\n{_last_lines(output)}")
    return done.stdout


def _last_lines(text: str, count: int = 30) -> str:
    return "\n".join(text.splitlines()[-count:])


def log_tail(path: Path, count: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return f"--- last lines of {path} ---\n{_last_lines(text, count)}"


def shown(path: Path) -> str:
    """A path as the person at the terminal reads it best: relative to the project root when inside it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _describe(exc: BaseException) -> str:
    text = str(exc) or "no details"
    return text if text.startswith(type(exc).__name__) else f"{type(exc).__name__}: {text}"


def _require_tool(name: str, why: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise InfraError(f"`{name}` is not on PATH; {why}")
    return found


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    # Two concurrent `up`s (say, parallel test sessions) would otherwise both start a server.
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with LOCK_FILE.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def _quiet_aiokafka() -> Iterator[None]:
    # Refused connections while the broker boots are expected; aiokafka would log each as an error.
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


# ---------------------------------------------------------------- Kafka


def _is_kafka(pid: int) -> bool:
    args = cmdline(pid)
    return "kafka.Kafka" in args and str(KAFKA_PROPERTIES) in args


def _kafka_pid() -> int | None:
    pid = read_pid(KAFKA_PID)
    return pid if pid is not None and _is_kafka(pid) else None


def _kafka_address() -> str | None:
    """The address the broker was configured with, read back from the properties it runs with."""
    try:
        lines = KAFKA_PROPERTIES.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() == "advertised.listeners":
            return value.strip().removeprefix("PLAINTEXT://")
    return None


def _kafka_cluster_id() -> str | None:
    try:
        lines = (KAFKA_DATA / "meta.properties").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() == "cluster.id":
            return value.strip()
    return None


def _new_cluster_id() -> str:
    # Kafka's Uuid text form: 16 random bytes, base64url without padding. Kafka's own generator also
    # avoids a leading '-', which command-line parsers would take for an option.
    while True:
        cluster_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _kafka_properties(settings: Settings) -> str:
    port, ctrl = settings.kafka_port, settings.kafka_controller_port
    return "\n".join(
        [
            "# Written by deploy/local/infra.py on every start; edit that file instead.",
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{HOST}:{ctrl}",
            f"listeners=PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{ctrl}",
            f"advertised.listeners=PLAINTEXT://{HOST}:{port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={KAFKA_DATA}",
            "num.partitions=4",
            # One broker: internal topics cannot have more than one replica.
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            # Tests start and stop consumers constantly; don't make each join wait 3 s for more members.
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true",
            "",
        ]
    )


def _ensure_kafka_jars() -> Path:
    """The folder with the broker's jars: fetched by Maven once per content of the pom, into a cache that
    every checkout and state folder of this user shares, so a new state folder does not fetch them again."""
    digest = hashlib.sha256(KAFKA_POM.read_bytes()).hexdigest()[:16]
    lib = KAFKA_JARS_CACHE / digest  # a changed pom gets its own folder: never old jars next to new ones
    if any(lib.glob("*.jar")):
        return lib
    KAFKA_JARS_CACHE.mkdir(parents=True, exist_ok=True)
    # Infrastructures with different state folders may start at once; one fetches, the others wait.
    with (KAFKA_JARS_CACHE / f"{digest}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        if any(lib.glob("*.jar")):
            return lib
        mvn = _require_tool(
            "mvn", "Maven 3 is needed once to download the Kafka broker's jars (e.g. apt-get install maven)"
        )
        partial = lib.with_name(f"{digest}.partial")
        shutil.rmtree(partial, ignore_errors=True)  # an interrupted earlier fetch
        print(f"fetching Kafka jars with Maven into {lib} (once) ...", flush=True)
        goal = ["dependency:copy-dependencies", f"-DoutputDirectory={partial}", "-DincludeScope=runtime"]
        _run([mvn, "-q", "-B", "-f", KAFKA_POM, *goal], what="downloading the Kafka jars", cwd=ROOT)
        partial.rename(lib)  # atomic: the folder has jars only once it has all of them
    return lib


def _start_kafka(settings: Settings) -> int:
    java = _require_tool(
        "java", "the Kafka broker needs a Java 17+ runtime (e.g. apt-get install openjdk-17-jre-headless)"
    )
    kafka_lib = _ensure_kafka_jars()
    ports = {settings.kafka_port: "BACKORDER_KAFKA_PORT"}
    ports[settings.kafka_controller_port] = "BACKORDER_KAFKA_CONTROLLER_PORT"
    _require_free(ports, "Kafka")
    KAFKA_DATA.mkdir(parents=True, exist_ok=True)
    # Rewritten each start so port changes apply; the data directory keeps cluster id and topics.
    KAFKA_PROPERTIES.write_text(_kafka_properties(settings))
    java_cp = [java, "-cp", f"{kafka_lib}/*"]  # java expands the wildcard itself
    if not (KAFKA_DATA / "meta.properties").exists():
        format_args = ["format", "-t", _new_cluster_id(), "-c", KAFKA_PROPERTIES]
        _run([*java_cp, "kafka.tools.StorageTool", *format_args], what="formatting the Kafka storage")
    if KAFKA_LOG.exists():
        KAFKA_LOG.replace(KAFKA_LOG.with_suffix(".log.1"))  # keep the previous run's log for post-mortems
    with KAFKA_LOG.open("wb") as log:
        process = subprocess.Popen(
            [*java_cp, "-Xmx768m", "kafka.Kafka", str(KAFKA_PROPERTIES)],
            cwd=KAFKA_DIR,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session: the broker outlives this script and ignores the terminal's Ctrl-C.
            start_new_session=True,
        )
    KAFKA_PID.write_text(f"{process.pid}\n")
    return process.pid


async def _kafka_metadata(bootstrap: str) -> dict[str, Any]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
        return await admin.describe_cluster()
    finally:
        await admin.close()


def _wait_for_kafka(pid: int, bootstrap: str, deadline: float) -> None:
    """Wait until the broker answers a metadata request, and make sure it is ours that answers."""
    expected_cluster = _kafka_cluster_id()
    last_error = "no answer yet"
    with _quiet_aiokafka():
        while True:
            reap(pid)
            if not _is_kafka(pid):
                KAFKA_PID.unlink(missing_ok=True)
                raise InfraError(f"Kafka (pid {pid}) exited during startup\n{log_tail(KAFKA_LOG)}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise InfraError(
                    f"Kafka did not answer a metadata request on {bootstrap} in time ({last_error}); "
                    f"it still runs as pid {pid}: `infra.py down` stops it, "
                    f"BACKORDER_INFRA_TIMEOUT allows more time\n{log_tail(KAFKA_LOG)}"
                )
            try:
                cluster = asyncio.run(
                    asyncio.wait_for(_kafka_metadata(bootstrap), timeout=min(10.0, remaining))
                )
            except Exception as exc:  # any failure here just means "not ready yet"
                last_error = _describe(exc)
                time.sleep(0.5)
                continue
            if expected_cluster and cluster.get("cluster_id") not in (None, expected_cluster):
                raise InfraError(
                    f"the broker on {bootstrap} belongs to cluster {cluster.get('cluster_id')}, "
                    f"not to ours ({expected_cluster}): another Kafka answers on that port"
                )
            if cluster.get("brokers"):
                return
            last_error = "metadata lists no brokers yet"
            time.sleep(0.5)


def _stop_kafka() -> bool:
    pid = _kafka_pid()
    if pid is not None:
        # SIGTERM makes the broker shut down cleanly (flush logs, leave the quorum); give it time.
        stop_process(pid, _is_kafka, signal.SIGTERM, STOP_GRACE_SECONDS)
    KAFKA_PID.unlink(missing_ok=True)
    return pid is not None


# ---------------------------------------------------------------- PostgreSQL


def _pg_bin() -> Path:
    override = os.environ.get("BACKORDER_PG_BIN")
    if override:
        bin_dir = Path(override)
    else:
        # find_spec locates the package without importing it (its import has side effects we don't need).
        spec = importlib.util.find_spec("pgserver")
        if spec is None or spec.origin is None:
            raise InfraError(
                "PostgreSQL binaries not found: install the dev dependencies (make install, which brings "
                "pgserver) or point BACKORDER_PG_BIN at a directory with initdb, pg_ctl, postgres and psql"
            )
        bin_dir = Path(spec.origin).parent / "pginstall" / "bin"
    for tool in ("initdb", "pg_ctl", "postgres", "psql"):
        if not (bin_dir / tool).is_file():
            raise InfraError(f"{bin_dir / tool} is missing (BACKORDER_PG_BIN={override or '(unset)'})")
    return bin_dir


def _pg_user() -> str | None:
    """The user to run PostgreSQL as, or None to run it as ourselves.

    PostgreSQL refuses to run as root, so as root we pick an unprivileged system user: the owner of an
    existing cluster, else `postgres`, else a `backorder-pg` user that we create.
    """
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(OSError, KeyError):
        owner = PG_DATA.stat().st_uid
        if owner != 0:
            return pwd.getpwuid(owner).pw_name
    for name in (PG_SUPERUSER, PG_FALLBACK_USER):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    _run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_FALLBACK_USER],
        what=f"creating the system user {PG_FALLBACK_USER}",
    )
    return PG_FALLBACK_USER


def _pg_installation(bin_dir: Path) -> tuple[Path, list[Path]]:
    """(base, parts): the folders under `base` a copy of the binaries needs, in the same relative places.

    pgserver's wheel keeps its shared libraries beside the package (pgserver.libs/, found through the
    RPATH $ORIGIN/../../../pgserver.libs); any other installation is bin/, lib/ and share/ of one folder.
    """
    install = bin_dir.parent
    if install.name == "pginstall" and install.parent.name == "pgserver":
        base = install.parent.parent
        return base, [p for p in (base / "pgserver" / "pginstall", base / "pgserver.libs") if p.exists()]
    return install.parent, [install]


def _pg_tree_signature(base: Path, parts: list[Path]) -> str:
    # Relative names, sizes and modification times: the same build in any checkout has the same signature,
    # another build or version a different one.
    entries = sorted(
        f"{path.relative_to(base)}:{stat.st_size}:{stat.st_mtime_ns}"
        for part in parts
        for path in part.rglob("*")
        if path.is_file() and (stat := path.stat())
    )
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()[:16]


def _user_can_run(user: str, postgres: Path) -> bool:
    # Asking the user's own process is the only reliable test (modes, groups, ACLs, mount options).
    done = subprocess.run(
        ["runuser", "-u", user, "--", str(postgres), "--version"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def _make_system_dir(path: Path, owner: str | None = None, mode: int = 0o755) -> None:
    """Create `path` (owned by root, or by `owner`), or check that an existing one is safe to use."""
    try:
        path.mkdir(mode=mode)
        os.chown(path, *_uid_gid(owner))
        path.chmod(mode)  # mkdir's mode is filtered by the umask
    except FileExistsError:
        pass
    except OSError as exc:
        raise InfraError(f"cannot create {path} for PostgreSQL: {exc}") from None
    info = path.lstat()
    expected_uid = _uid_gid(owner)[0]
    # Anyone else able to write into (or to have swapped in) the folder could plant files root later uses.
    if not path.is_dir() or path.is_symlink() or info.st_uid != expected_uid or info.st_mode & 0o022:
        raise InfraError(
            f"{path} must be a folder owned by {owner or 'root'} and writable by no one else "
            f"(it is uid {info.st_uid}, mode {info.st_mode & 0o7777:o}); remove it or fix it"
        )


def _uid_gid(user: str | None) -> tuple[int, int]:
    if user is None:
        return 0, 0
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def _server_bin(user: str | None) -> Path:
    """The bin folder that the server's user runs the binaries from.

    The pgserver binaries sit in the virtual environment, which a root-only checkout hides from the
    server's user; they are then copied once per build into a shared folder under PG_SYSTEM_ROOT.
    """
    bin_dir = _pg_bin()
    if user is None:
        return bin_dir
    _require_tool("runuser", "it runs PostgreSQL as an unprivileged user (util-linux)")
    if _user_can_run(user, bin_dir / "postgres"):
        return bin_dir
    base, parts = _pg_installation(bin_dir)
    _make_system_dir(PG_SYSTEM_ROOT)
    copy = PG_SYSTEM_ROOT / f"pginstall-{_pg_tree_signature(base, parts)}"
    copied_bin = copy / bin_dir.relative_to(base)
    if not (copied_bin / "postgres").is_file():
        with (PG_SYSTEM_ROOT / "pginstall.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # parallel `up`s of other checkouts copy it only once
            if not (copied_bin / "postgres").is_file():
                partial = copy.with_name(copy.name + ".partial")
                shutil.rmtree(partial, ignore_errors=True)
                for part in parts:
                    shutil.copytree(part, partial / part.relative_to(base), symlinks=True)
                for path in [partial, *partial.rglob("*")]:
                    if not path.is_symlink():
                        mode = path.stat().st_mode
                        # Readable by all, executable by all where the owner could execute; writable by root.
                        path.chmod((mode | 0o444 | (0o111 if mode & 0o100 else 0)) & ~0o022)
                partial.rename(copy)
    if not _user_can_run(user, copied_bin / "postgres"):
        raise InfraError(
            f"the PostgreSQL user {user!r} can run neither {bin_dir / 'postgres'} nor its copy in {copy}; "
            f"check the modes of {PG_SYSTEM_ROOT} and its mount options (noexec?)"
        )
    return copied_bin


def _prepare_pg_dir(user: str | None) -> None:
    """Create PG_DIR such that the server's user can write there, and only it."""
    if user is None or PG_DIR.parent == STATE_DIR:
        PG_DIR.mkdir(parents=True, exist_ok=True)
        return
    _make_system_dir(PG_SYSTEM_ROOT)
    _collect_orphans()
    _make_system_dir(PG_DIR.parent)
    # Says whose files these are, for whoever finds the folder, and for _collect_orphans.
    (PG_DIR.parent / "state-dir").write_text(f"{STATE_DIR}\n")
    _make_system_dir(PG_DIR, owner=user, mode=0o700)
    link = STATE_DIR / "postgres"
    if link.is_symlink() and Path(os.readlink(link)) == PG_DIR:
        return
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)  # what a failed start of an earlier version left (no cluster: see _pg_dir)
    link.symlink_to(PG_DIR, target_is_directory=True)


def _collect_orphans() -> None:
    """Delete the PostgreSQL folders of state folders that no longer exist (say, a test's temporary one).

    They live outside the state folder, so deleting that one alone leaves them behind, a cluster each.
    """
    for folder in PG_SYSTEM_ROOT.iterdir():
        try:
            owner = Path((folder / "state-dir").read_text().strip())
        except OSError:
            continue  # not one of ours (or being created right now)
        data = folder / "postgres" / "data"
        if owner.exists() or folder == PG_DIR.parent or _postmaster(data) is not None:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        print(f"note: deleted {folder}, PostgreSQL's files of the deleted state folder {owner}", flush=True)


def _as_pg(user: str | None, *cmd: object) -> list[str]:
    args = [str(part) for part in cmd]
    return ["runuser", "-u", user, "--", *args] if user else args


def _chown(user: str | None, *paths: Path) -> None:
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for path in paths:
        if path.exists():
            os.chown(path, entry.pw_uid, entry.pw_gid)


def _is_postmaster(pid: int, data: Path = PG_DATA) -> bool:
    args = cmdline(pid)
    if not args or Path(args[0]).name != "postgres":
        return False
    # The postmaster runs with our data directory as its working directory (and names it in its arguments).
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/cwd").resolve() == data.resolve():
            return True
    return str(data) in args


def _postmaster(data: Path = PG_DATA) -> tuple[int, int] | None:
    """(pid, port) of the server running on `data`, from the lock file PostgreSQL writes there."""
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    return (pid, port) if _is_postmaster(pid, data) else None


def _remove_stale_postmaster_pid() -> None:
    # After a crash or reboot the lock file may name a pid that now belongs to an unrelated process;
    # PostgreSQL would then refuse to start. We only call this when no server of ours runs.
    if _postmaster() is None:
        (PG_DATA / "postmaster.pid").unlink(missing_ok=True)


def _initdb(bin_dir: Path, user: str | None, password: str) -> None:
    if PG_DATA.exists():
        shutil.rmtree(PG_DATA)  # leftovers of an initdb that did not finish (PG_VERSION is written last)
    pwfile = PG_DIR / "superuser.pw"
    pwfile.unlink(missing_ok=True)
    os.close(os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # private before it has content
    pwfile.write_text(password + "\n")
    _chown(user, pwfile)
    try:
        # C locale: byte-order collation, independent of the locales installed on this machine.
        options = ["-A", "scram-sha-256", "-E", "UTF8", "--locale=C"]
        initdb = [bin_dir / "initdb", "-D", PG_DATA, "-U", PG_SUPERUSER, f"--pwfile={pwfile}", *options]
        _run(_as_pg(user, *initdb), what="initdb", cwd=PG_DIR, timeout=120)
    finally:
        pwfile.unlink(missing_ok=True)


def _postgres_preflight(settings: Settings) -> tuple[str | None, Path]:
    """Fail before anything starts if PostgreSQL cannot: return its user and the bin folder it runs."""
    user = _pg_user()
    bin_dir = _server_bin(user)
    _require_free({settings.pg_port: "BACKORDER_PG_PORT"}, "PostgreSQL")
    return user, bin_dir


# The local server's settings for this workload: many small write transactions (every consumed batch, every
# relay round), each waiting for its WAL flush. Durability is unchanged (fsync, synchronous_commit and
# full_page_writes stay on). Buffers above the 128 MB default, so the services' working sets (logs' tails,
# inboxes, read models) stay cached and backends seldom write out dirty pages themselves; checkpoints by
# time rather than by WAL volume, since after each checkpoint the first write of every page logs the whole
# page. make bench at 1,000/s offered: PostgreSQL's CPU per order 0.60 -> 0.51 ms (in the machine's noise).
PG_WORKLOAD_SETTINGS = {
    "shared_buffers": "512MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
    "checkpoint_completion_target": "0.9",
}


def _start_postgres(
    settings: Settings, user: str | None, bin_dir: Path, superuser_password: str, deadline: float
) -> None:
    _prepare_pg_dir(user)
    PG_SOCKET_DIR.mkdir(parents=True, exist_ok=True)
    # The server user writes its log, socket and data here.
    _chown(user, PG_DIR, PG_SOCKET_DIR, PG_LOG)
    if not (PG_DATA / "PG_VERSION").exists():
        _initdb(bin_dir, user, superuser_password)
    _remove_stale_postmaster_pid()
    # A Unix socket path longer than 107 bytes cannot be bound; then go TCP-only rather than fail.
    socket_dir = str(PG_SOCKET_DIR) if len(f"{PG_SOCKET_DIR}/.s.PGSQL.{settings.pg_port}") <= 107 else ""
    # Five services, each with a connection pool, plus test sessions: the default 100 connections run out.
    options = f"-p {settings.pg_port} -c listen_addresses={HOST} -c max_connections=300"
    options += "".join(f" -c {name}={value}" for name, value in PG_WORKLOAD_SETTINGS.items())
    options += f" -k {shlex.quote(socket_dir)}"
    wait = max(1, int(deadline - time.monotonic()))
    pg_ctl = [bin_dir / "pg_ctl", "-D", PG_DATA]
    try:
        start = [*pg_ctl, "-l", PG_LOG, "-o", options, "-w", "-t", wait, "start"]
        _run(_as_pg(user, *start), what="pg_ctl start", cwd=PG_DIR, timeout=wait + 10)
    except InfraError as exc:
        raise InfraError(f"{exc}\n{log_tail(PG_LOG)}") from None


def _wait_for_postgres(url: str, deadline: float) -> None:
    """Wait until the superuser can connect with `url`; asyncpg.InvalidPasswordError if it never will."""

    async def probe() -> None:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()

    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if _postmaster() is None:
            raise InfraError(f"PostgreSQL exited during startup\n{log_tail(PG_LOG)}")
        try:
            asyncio.run(probe())
            return
        except asyncpg.InvalidPasswordError:
            raise  # the server answers; waiting would not change its mind
        except Exception as exc:  # not accepting connections yet
            last_error = _describe(exc)
            time.sleep(0.3)
    raise InfraError(
        f"PostgreSQL did not accept a connection in time (last error: {last_error})\n{log_tail(PG_LOG)}"
    )


def _adopt_superuser_password(info: InfraInfo) -> None:
    """The cluster rejected the generated superuser password: one that an earlier version initialised
    (password "postgres") gets the generated one; any other cluster is not ours to change."""
    password = urlsplit(info.pg_admin_url).password or ""
    legacy = info.pg_admin_url.replace(f":{password}@", f":{PG_LEGACY_SUPERUSER_PASSWORD}@", 1)

    async def adopt() -> None:
        conn = await asyncpg.connect(legacy, timeout=10)
        try:
            statement = await conn.fetchval(
                "SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)", PG_SUPERUSER, password
            )
            await conn.execute(statement)
        finally:
            await conn.close()

    try:
        asyncio.run(adopt())
    except asyncpg.InvalidPasswordError:
        raise InfraError(
            f"PostgreSQL on {urlsplit(info.pg_admin_url).netloc.rpartition('@')[2]} refuses the superuser "
            f"password of {shown(SECRETS_FILE)}: the cluster in {PG_DATA} has another "
            f"one. Put that one back in the file, or `infra.py clean` to start afresh (deletes the data)"
        ) from None
    print(f"note: the PostgreSQL superuser's password is now the generated one of {shown(SECRETS_FILE)}")


def _provision_databases(info: InfraInfo, generated: Mapping[str, str]) -> None:
    """Create the per-service roles and databases and set their passwords (idempotent), then prove that
    each role logs in."""
    psql = _pg_bin() / "psql"
    # Passwords go through the environment (the init script's \getenv), never the command line.
    env = {
        **os.environ,
        **{key: generated[key] for key in credentials.role_keys()},
        "PGPASSWORD": generated[credentials.SUPERUSER_PASSWORD],
    }
    admin = without_password(info.pg_admin_url)
    _run(
        [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", admin, "-f", PG_INIT_SQL],
        what="creating the service databases",
        env=env,
    )

    async def check() -> None:
        for name in info.database_urls:
            for url in (info.database_urls[name], info.migration_urls[name]):
                try:
                    conn = await asyncpg.connect(url, timeout=10)
                except Exception as exc:
                    raise InfraError(
                        f"the {name} service cannot connect with {without_password(url)}: {exc} "
                        f"(does {shown(PG_INIT_SQL)} create that role?)"
                    ) from None
                await conn.close()

    asyncio.run(check())


def _stop_postgres() -> bool:
    running = _postmaster()
    if running is not None:
        pid = running[0]
        grace = int(STOP_GRACE_SECONDS)
        # Fast shutdown: roll back open transactions, checkpoint, exit; no waiting for clients to leave.
        user = _pg_user()
        try:
            stop = [_server_bin(user) / "pg_ctl", "-D", PG_DATA, "-m", "fast", "-w", "-t", grace, "stop"]
            _run(_as_pg(user, *stop), what="pg_ctl stop", cwd=PG_DIR, timeout=grace + 10)
        except InfraError as exc:
            print(f"warning: {exc}", file=sys.stderr)
        # Normally gone by now; otherwise SIGQUIT (immediate shutdown), then SIGKILL.
        stop_process(pid, _is_postmaster, signal.SIGQUIT, 10.0)
    _remove_stale_postmaster_pid()
    return running is not None


# ---------------------------------------------------------------- commands


def status() -> dict[str, ComponentStatus]:
    kafka_pid = _kafka_pid()
    pg = _postmaster()
    return {
        "kafka": ComponentStatus("kafka", kafka_pid, _kafka_address() if kafka_pid else None),
        "postgres": ComponentStatus("postgres", pg[0] if pg else None, f"{HOST}:{pg[1]}" if pg else None),
    }


def up(timeout: float | None = None, settings: Settings | None = None) -> InfraInfo:
    """Start whatever is not running yet, wait until both servers answer, write .state/infra.json."""
    settings = settings or Settings.from_env()
    timeout = settings.timeout if timeout is None else timeout
    with _lock():
        generated = load_secrets()
        kafka_pid, pg_running = _kafka_pid(), _postmaster() is not None
        if kafka_pid is None or not pg_running:
            INFRA_JSON.unlink(missing_ok=True)  # it describes servers that run again only once this succeeds
        # Check PostgreSQL's prerequisites before Kafka starts (which checks its own), so that a missing
        # tool or a taken port leaves nothing half-started.
        pg_launch = None if pg_running else _postgres_preflight(settings)
        if kafka_pid is None:
            kafka_pid = _start_kafka(settings)  # boots in the background while PostgreSQL starts
        # Wait clocks start once the processes are launched: the one-off Maven download is not counted.
        deadline = time.monotonic() + timeout
        if pg_launch is not None:
            _start_postgres(settings, *pg_launch, generated[credentials.SUPERUSER_PASSWORD], deadline)
        running_pg = _postmaster()
        pg_port = running_pg[1] if running_pg else settings.pg_port
        kafka_address = _kafka_address() or f"{HOST}:{settings.kafka_port}"
        info = InfraInfo.for_ports(int(kafka_address.rsplit(":", 1)[1]), pg_port, generated)
        for what, actual, wanted in (
            ("Kafka", kafka_address, f"{HOST}:{settings.kafka_port}"),
            ("PostgreSQL", f"{HOST}:{pg_port}", f"{HOST}:{settings.pg_port}"),
        ):
            if actual != wanted:
                print(
                    f"note: {what} was already running on {actual}, not {wanted}; `down` first to move it",
                    file=sys.stderr,
                )
        try:
            _wait_for_postgres(info.pg_admin_url, deadline)
        except asyncpg.InvalidPasswordError:
            _adopt_superuser_password(info)
        _provision_databases(info, generated)
        _wait_for_kafka(kafka_pid, info.kafka_bootstrap_servers, deadline)
        info.save()
        return info


def down() -> list[str]:
    """Stop the servers `up` started (by pid, never by name); return the names of those that were running."""
    with _lock():
        stopped = [name for name, stop in (("kafka", _stop_kafka), ("postgres", _stop_postgres)) if stop()]
        INFRA_JSON.unlink(missing_ok=True)
        return stopped


def clean() -> list[Path]:
    """`down`, then delete the state folder and PostgreSQL's folder outside it; return what was deleted."""
    # A mistyped BACKORDER_STATE_DIR must not take the checkout or a home folder with it.
    if STATE_DIR in (Path("/"), Path.home()) or ROOT.is_relative_to(STATE_DIR):
        raise InfraError(
            f"refusing to delete {STATE_DIR}: BACKORDER_STATE_DIR should name a folder of its own"
        )
    down()
    deleted: list[Path] = []
    for folder in (STATE_DIR, PG_DIR.parent if PG_DIR.parent != STATE_DIR else None):
        if folder is not None and folder.exists():
            shutil.rmtree(folder)
            deleted.append(folder)
    return deleted


def _print_status(states: dict[str, ComponentStatus]) -> None:
    for state in states.values():
        if state.running:
            print(f"{state.name:<9} running  pid {state.pid:<7} {state.address}")
        else:
            print(f"{state.name:<9} stopped")


def _print_summary(info: InfraInfo, seconds: float) -> None:
    kafka, postgres = status().values()
    print(f"infrastructure ready in {seconds:.1f} s")
    print(f"  Kafka       {kafka.address}  pid {kafka.pid}, log {shown(KAFKA_LOG)}")
    print(f"  PostgreSQL  {postgres.address}  pid {postgres.pid}, log {shown(PG_LOG)}")
    print(f"    admin        {without_password(info.pg_admin_url)}")
    for name, url in info.database_urls.items():
        print(f"    {name:<12} {without_password(url)}  (migrations, rebuild: {owner_role(name)})")
    print(f"  passwords and AUTH_TOKEN_SECRET in {shown(SECRETS_FILE)} (mode 600)")
    print(f"  written to {shown(INFRA_JSON)}; `infra.py env` prints them as export lines")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="start Kafka and PostgreSQL unless running; wait for them")
    up_parser.add_argument(
        "--timeout", type=float, help="seconds to wait (default BACKORDER_INFRA_TIMEOUT, 90)"
    )
    commands.add_parser("down", help="stop the servers that `up` started")
    commands.add_parser("clean", help="`down`, then delete all state (the cached Kafka jars stay)")
    commands.add_parser("status", help="show what runs where (exit 3 unless both run)")
    commands.add_parser("env", help="print `export` lines for the service settings")
    args = parser.parse_args(argv)

    try:
        if args.command == "up":
            started = time.monotonic()
            info = up(args.timeout)
            _print_summary(info, time.monotonic() - started)
        elif args.command == "down":
            stopped = down()
            print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
        elif args.command == "clean":
            deleted = clean()
            print(f"deleted: {', '.join(map(str, deleted))}" if deleted else "nothing to delete")
        elif args.command == "status":
            states = status()
            _print_status(states)
            return 0 if all(state.running for state in states.values()) else 3
        elif args.command == "env":
            settings = Settings.from_env()
            info = InfraInfo.load() or InfraInfo.for_ports(
                settings.kafka_port, settings.pg_port, load_secrets()
            )
            for key, value in info.env().items():
                print(f"export {key}={shlex.quote(value)}")
    except InfraError as exc:
        print(f"infra {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
