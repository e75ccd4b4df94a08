#!/usr/bin/env python3
"""Run the five services (the supplier EDI adapter among them) and the console (the operations board) on
this machine against the servers of `infra.py up`, under a supervisor.

    python deploy/local/services.py start|stop|status|rebuild <service>

`start` launches a detached supervisor (`services.py supervise`, pid in <state>/services/supervisor.pid)
and waits until every service answers /health. The supervisor runs each service as
`<venv python> -m services.<name>`, logging to <state>/services/<name>.log with its pid in <name>.pid,
and restarts one that exits with a backoff (1 s, doubling up to 30 s; back to 1 s once it stayed up for
60 s). Every exit and restart goes to <state>/services/supervisor.log, and the counts to supervisor.json,
which `status` shows. `stop` stops the supervisor, which stops the services; whatever is left (say, after
the supervisor was SIGKILLed) is stopped by its pid. A mail sink (a real SMTP server on 127.0.0.1:1025
keeping messages in <state>/mail, listed at http://127.0.0.1:8025/messages) stands in for the shop's mail
relay, so the notifier's e-mails can be read; it is supervised like the services. So is the console
(`python -m services.console` on 127.0.0.1:8005), which reads the services' APIs: once everything answers,
`start` prints the board's address with a development token in its fragment, and the token itself.
The EDI adapter (`python -m services.edi`, 127.0.0.1:8006) watches <state>/edi/inbox and writes to
<state>/edi/outbox/<supplier_id>, trading with the two demo partners of DEMO_EDI_PARTNERS.
Every process gets the infrastructure's AUTH_TOKEN_SECRET (infra.json), so the services accept the
tokens the console and the development token are signed with.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

# Run as a script, this folder is on sys.path; infra.py holds the service table and the state layout.
import infra
from infra import (
    DEMO_EDI_PARTNERS,
    EDI_INBOX_DIR,
    EDI_OUTBOX_DIR,
    HOST,
    ROOT,
    SERVICES,
    STATE_DIR,
    InfraError,
    InfraInfo,
)

SERVICES_DIR = STATE_DIR / "services"
SUPERVISOR_PID = SERVICES_DIR / "supervisor.pid"
SUPERVISOR_LOG = SERVICES_DIR / "supervisor.log"
SUPERVISOR_STATE = SERVICES_DIR / "supervisor.json"
SCRIPT = Path(__file__).resolve()

STOP_GRACE_SECONDS = 15.0
DEFAULT_TIMEOUT = 60.0
RESTART_FIRST_DELAY = 1.0
RESTART_MAX_DELAY = 30.0
# A service that stayed up this long crashed for a new reason: restart it quickly again.
RESTART_RESET_AFTER = 60.0
POLL_SECONDS = 0.5

MAIL_SMTP_PORT = 1025
MAIL_HTTP_PORT = 8025
MAILDIR = STATE_DIR / "mail"
CONSOLE_PORT = 8005
# The services whose APIs the board reads (services/console/settings.py: CONSOLE_<NAME>_URL); the EDI
# adapter is not one of them, and a variable the console has no setting for would only mislead.
CONSOLE_SOURCES = ("order", "inventory", "procurement", "notifier")
DEV_TOKEN_TTL_SECONDS = 12 * 3600


@dataclasses.dataclass(frozen=True)
class Service:
    name: str
    port: int  # HTTP, answers /health
    module: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()

    @property
    def built(self) -> bool:
        package = ROOT / "services" / self.name
        return not self.module.startswith("services.") or (package / "__main__.py").is_file()

    @property
    def log(self) -> Path:
        return SERVICES_DIR / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return SERVICES_DIR / f"{self.name}.pid"

    @property
    def health_url(self) -> str:
        return f"http://{HOST}:{self.port}/health"

    def is_ours(self, pid: int) -> bool:
        args = infra.cmdline(pid)
        return "-m" in args and self.module in args

    def pid(self) -> int | None:
        pid = infra.read_pid(self.pid_file)
        return pid if pid is not None and self.is_ours(pid) else None


MAIL_SINK = Service(
    "mailsink",
    MAIL_HTTP_PORT,
    "backbone.testing.mailsink",
    ("--smtp-port", str(MAIL_SMTP_PORT), "--http-port", str(MAIL_HTTP_PORT), "--maildir", str(MAILDIR)),
)
# Settings a service needs on this machine beyond its database and Kafka.
_LOCAL_ENV = {
    "notifier": (("SMTP_HOST", HOST), ("SMTP_PORT", str(MAIL_SMTP_PORT))),
    "edi": (
        ("EDI_INBOX_DIR", str(EDI_INBOX_DIR)),
        ("EDI_OUTBOX_DIR", str(EDI_OUTBOX_DIR)),
        ("EDI_PARTNERS", json.dumps(list(DEMO_EDI_PARTNERS))),
    ),
}
CONSOLE = Service(
    "console",
    CONSOLE_PORT,
    "services.console",
    env=tuple((f"CONSOLE_{name.upper()}_URL", f"http://{HOST}:{SERVICES[name]}") for name in CONSOLE_SOURCES),
)
ALL = [
    MAIL_SINK,
    *(
        Service(name, port, f"services.{name}", env=_LOCAL_ENV.get(name, ()))
        for name, port in SERVICES.items()
    ),
    CONSOLE,
]


def _python() -> str:
    venv_python = ROOT / ".venv" / "bin" / "python"
    return str(venv_python) if venv_python.exists() else sys.executable


def _healthy(service: Service) -> bool:
    try:
        with urllib.request.urlopen(service.health_url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _now() -> str:
    return _timestamp(time.time())


def _is_supervisor(pid: int) -> bool:
    args = infra.cmdline(pid)
    return str(SCRIPT) in args and "supervise" in args


def supervisor_pid() -> int | None:
    pid = infra.read_pid(SUPERVISOR_PID)
    return pid if pid is not None and _is_supervisor(pid) else None


def _read_supervisor_state() -> dict[str, Any]:
    try:
        data = json.loads(SUPERVISOR_STATE.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# ---------------------------------------------------------------- the supervisor process


def environment(service: Service, info: InfraInfo) -> dict[str, str]:
    """What a process of ours runs with: ours on top of the caller's environment."""
    return {
        **os.environ,
        "SERVICE_NAME": service.name,
        "HTTP_HOST": HOST,
        "HTTP_PORT": str(service.port),
        "PYTHONUNBUFFERED": "1",  # so the log shows what happened right before a crash
        # Kafka, AUTH_TOKEN_SECRET and (for a service) its two database URLs.
        **info.service_env(service.name),
        **dict(service.env),
    }


def _spawn(service: Service, restart: bool) -> subprocess.Popen[bytes]:
    """Start one service process; raise InfraError when it cannot be started right now."""
    info = InfraInfo.load()  # read again each time: the infrastructure may have been restarted since
    if info is None:
        raise InfraError(f"{infra.INFRA_JSON} is missing: run `python deploy/local/infra.py up`")
    if infra.port_in_use(service.port):
        raise InfraError(f"{HOST}:{service.port} is taken by another process; {service.name} needs it")
    env = environment(service, info)
    if restart:
        # Appended, so the lines that led to the crash stay right above the new start.
        with service.log.open("ab") as log:
            log.write(f"--- {_now()} restarted by the supervisor ---\n".encode())
    elif service.log.exists():
        service.log.replace(service.log.with_suffix(".log.1"))  # the previous `start`, for post-mortems
    with service.log.open("ab") as log:
        process = subprocess.Popen(
            [_python(), "-m", service.module, *service.args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # signals to the supervisor's group do not reach it unmanaged
        )
    service.pid_file.write_text(f"{process.pid}\n")
    return process


@dataclasses.dataclass
class _Watched:
    service: Service
    pid: int | None = None
    process: subprocess.Popen[bytes] | None = None  # None for a process adopted from an earlier supervisor
    started_at: float = 0.0  # monotonic
    delay: float = RESTART_FIRST_DELAY
    restart_at: float | None = None  # monotonic; set while waiting to restart
    restarts: int = 0
    last_exit: str | None = None
    last_exit_at: str | None = None

    def exit_status(self) -> str | None:
        """None while the process runs; otherwise how it ended."""
        if self.pid is None:
            return None
        if self.process is not None:
            code = self.process.poll()
            if code is None:
                return None
            return f"signal {-code} ({signal.Signals(-code).name})" if code < 0 else f"exit status {code}"
        return None if self.service.is_ours(self.pid) else "exit (status unknown: not our child)"

    def as_json(self) -> dict[str, Any]:
        waiting = self.restart_at is not None
        due = time.time() + max(0.0, (self.restart_at or 0.0) - time.monotonic()) if waiting else None
        return {
            "pid": self.pid,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "last_exit_at": self.last_exit_at,
            "restart_due_at": _timestamp(due) if due else None,
        }


class _Supervisor:
    def __init__(self, services: list[Service]) -> None:
        self.watched = [_Watched(service) for service in services]
        self.stopping = False

    def log(self, message: str) -> None:
        print(f"{_now()} {message}", flush=True)  # stdout is supervisor.log

    def save(self) -> None:
        data = {"pid": os.getpid(), "services": {w.service.name: w.as_json() for w in self.watched}}
        tmp = SUPERVISOR_STATE.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(SUPERVISOR_STATE)  # a reader never sees half a file

    def launch(self, watched: _Watched, restart: bool) -> None:
        now = time.monotonic()
        try:
            watched.process = _spawn(watched.service, restart)
        except (InfraError, OSError) as exc:
            # Counts as a crash at once: retried with the same backoff.
            watched.pid, watched.process, watched.started_at = None, None, now
            self.exited(watched, f"could not start: {exc}")
            return
        watched.pid, watched.started_at, watched.restart_at = watched.process.pid, now, None
        if restart:
            watched.restarts += 1
            self.log(f"{watched.service.name} restarted as pid {watched.pid} (restart {watched.restarts})")
        else:
            self.log(f"{watched.service.name} started as pid {watched.pid}")

    def exited(self, watched: _Watched, how: str) -> None:
        now = time.monotonic()
        uptime = now - watched.started_at
        if uptime >= RESTART_RESET_AFTER:
            watched.delay = RESTART_FIRST_DELAY
        watched.service.pid_file.unlink(missing_ok=True)
        watched.pid, watched.process = None, None
        watched.last_exit, watched.last_exit_at = how, _now()
        watched.restart_at = now + watched.delay
        self.log(
            f"{watched.service.name} ended after {uptime:.1f} s: {how}; restarting in {watched.delay:.0f} s"
        )
        watched.delay = min(watched.delay * 2, RESTART_MAX_DELAY)

    def run(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._request_stop)
        self.log(f"supervisor pid {os.getpid()} starting {', '.join(w.service.name for w in self.watched)}")
        for watched in self.watched:
            pid = watched.service.pid()
            if pid is not None:
                # Left by a supervisor that was killed: watch it rather than start a second one.
                watched.pid, watched.started_at = pid, time.monotonic()
                self.log(f"{watched.service.name} already runs as pid {pid}; supervising it")
            else:
                self.launch(watched, restart=False)
        self.save()
        while not self.stopping:
            try:
                self.check()
            except Exception as exc:  # say, a full disk: keep supervising, and say so
                self.log(f"error while supervising (continuing): {exc!r}")
            time.sleep(POLL_SECONDS)
        self.shutdown()

    def check(self) -> None:
        """One round: notice what ended, restart what is due."""
        changed = False
        for watched in self.watched:
            if self.stopping:
                break
            how = watched.exit_status()
            if how is not None:
                self.exited(watched, how)
                changed = True
            elif watched.restart_at is not None and time.monotonic() >= watched.restart_at:
                self.launch(watched, restart=True)
                changed = True
        if changed:
            self.save()

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def shutdown(self) -> None:
        running = [w for w in self.watched if w.pid is not None and w.exit_status() is None]
        self.log(f"stopping {', '.join(w.service.name for w in running) or 'nothing'}")
        _terminate({w.service: w.pid for w in running if w.pid is not None}, STOP_GRACE_SECONDS)
        for watched in self.watched:
            if watched.process is not None:
                watched.process.poll()  # reap
            watched.service.pid_file.unlink(missing_ok=True)
            watched.pid, watched.restart_at = None, None
        self.save()
        self.log("supervisor stopped")


def supervise() -> int:
    other = supervisor_pid()
    if other not in (None, os.getpid()):
        raise InfraError(f"another supervisor runs for {infra.shown(STATE_DIR)} (pid {other})")
    SERVICES_DIR.mkdir(parents=True, exist_ok=True)
    _Supervisor([service for service in ALL if service.built]).run()
    if infra.read_pid(SUPERVISOR_PID) == os.getpid():
        SUPERVISOR_PID.unlink()
    return 0


def _terminate(running: dict[Service, int], grace: float) -> None:
    """SIGTERM all at once (a graceful stop, in parallel), SIGKILL what is left after `grace`."""
    for service, pid in running.items():
        if service.is_ours(pid):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for service, pid in running.items():
        while service.is_ours(pid) and time.monotonic() < deadline:
            infra.reap(pid)
            time.sleep(0.2)
        if service.is_ours(pid):
            print(f"{service.name} ignored SIGTERM for {grace:.0f} s; sending SIGKILL", file=sys.stderr)
            infra.stop_process(pid, service.is_ours, signal.SIGKILL, 5.0)


# ---------------------------------------------------------------- commands


def _launch_supervisor() -> int:
    built = [service for service in ALL if service.built]
    for service in built:
        # Fail before anything starts, with the reason, rather than have the supervisor retry forever.
        if service.pid() is None and infra.port_in_use(service.port):
            raise InfraError(f"{HOST}:{service.port} is taken by another process; {service.name} needs it")
    SUPERVISOR_STATE.unlink(missing_ok=True)  # describes the previous supervisor
    with SUPERVISOR_LOG.open("ab") as log:
        process = subprocess.Popen(
            [_python(), str(SCRIPT), "supervise"],
            cwd=ROOT,
            # Absolute, so the supervisor uses this state folder whatever its working directory.
            env={**os.environ, "BACKORDER_STATE_DIR": str(STATE_DIR)},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives this script, untouched by the terminal's Ctrl-C
        )
    SUPERVISOR_PID.write_text(f"{process.pid}\n")
    return process.pid


def start(timeout: float = DEFAULT_TIMEOUT) -> list[str]:
    """Start the supervisor unless it runs, wait until every built service answers /health; return the
    problems (a service that exits meanwhile is one, though the supervisor keeps restarting it)."""
    if InfraInfo.load() is None:
        raise InfraError(f"{infra.INFRA_JSON} is missing: run `python deploy/local/infra.py up` first")
    SERVICES_DIR.mkdir(parents=True, exist_ok=True)
    for service in ALL:
        if not service.built:
            print(f"{service.name:<12} not built yet (no services/{service.name}/__main__.py), skipped")
    supervisor = supervisor_pid()
    if supervisor is None:
        supervisor = _launch_supervisor()
        print(f"{'supervisor':<12} pid {supervisor}, log {infra.shown(SUPERVISOR_LOG)}")
    else:
        print(f"{'supervisor':<12} already running, pid {supervisor}")
    # Its first supervisor.json comes once it adopted or started every service: wait for that, so that
    # a service that was running (adopted) and dies right now still counts as a crash below.
    while _read_supervisor_state().get("pid") != supervisor:
        infra.reap(supervisor)
        if not _is_supervisor(supervisor):
            raise InfraError(f"the supervisor (pid {supervisor}) exited\n{infra.log_tail(SUPERVISOR_LOG)}")
        time.sleep(0.2)
    baseline = _read_supervisor_state().get("services", {})

    deadline = time.monotonic() + timeout
    problems: list[str] = []
    for service in (service for service in ALL if service.built):
        while not _healthy(service):
            infra.reap(supervisor)
            if not _is_supervisor(supervisor):
                return [
                    *problems,
                    f"the supervisor (pid {supervisor}) exited\n{infra.log_tail(SUPERVISOR_LOG)}",
                ]
            entry = _read_supervisor_state().get("services", {}).get(service.name, {})
            restarted = int(entry.get("restarts", 0)) > int(baseline.get(service.name, {}).get("restarts", 0))
            if restarted or (entry.get("pid") is None and entry.get("restart_due_at")):
                problems.append(
                    f"{service.name} ended during startup ({entry.get('last_exit')}); the supervisor keeps "
                    f"restarting it with backoff (`services.py stop` stops it)\n{infra.log_tail(service.log)}"
                )
                break
            if time.monotonic() > deadline:
                problems.append(
                    f"{service.name} did not answer 200 on {service.health_url} in time; it is still "
                    f"running (`services.py stop` stops it)\n{infra.log_tail(service.log)}"
                )
                break
            time.sleep(0.3)
        else:
            log = infra.shown(service.log)
            print(f"{service.name:<12} http://{HOST}:{service.port}  pid {service.pid()}, log {log}")
    info = InfraInfo.load()
    if CONSOLE.built and info is not None:
        print()
        print(board_address(info, board_up=not any(p.startswith(f"{CONSOLE.name} ") for p in problems)))
    return problems


def development_token(info: InfraInfo) -> str:
    """A token with all the roles, signed with this installation's AUTH_TOKEN_SECRET."""
    from backbone.auth import development_token as mint  # the venv's; only `start` needs it

    return mint(info.auth_token_secret, ttl_seconds=DEV_TOKEN_TTL_SECONDS)


def board_address(info: InfraInfo, board_up: bool = True) -> str:
    """What `start` prints last: the board's address with a development token, and the token."""
    token = development_token(info)
    hours = DEV_TOKEN_TTL_SECONDS // 3600
    # In the fragment the token stays in the browser: no server ever receives it in a URL.
    board = f"{'board':<12} http://{HOST}:{CONSOLE_PORT}/#token={token}\n" if board_up else ""
    return (
        f"{board}{'token':<12} {token}\n"
        f"{'':<12} a development token (all the roles; valid {hours} h), sent as\n"
        f"{'':<12} `Authorization: Bearer <token>`. Others: AUTH_TOKEN_SECRET=... python -m backbone.auth\n"
        f"{'':<12} token --role reader (the secret is in {infra.shown(infra.SECRETS_FILE)})"
    )


def stop(grace: float = STOP_GRACE_SECONDS) -> list[str]:
    """Stop the supervisor and, through it, the services; return the names of those that were running."""
    running = [service.name for service in ALL if service.pid() is not None]
    supervisor = supervisor_pid()
    if supervisor is not None:
        # The supervisor needs up to `grace` for the services, then SIGKILLs them; allow it that and more.
        infra.stop_process(supervisor, _is_supervisor, signal.SIGTERM, grace + 15.0)
        running.insert(0, "supervisor")
    SUPERVISOR_PID.unlink(missing_ok=True)
    # Services without a supervisor: it was SIGKILLed, or they were started by an older services.py.
    _terminate({service: pid for service in ALL if (pid := service.pid()) is not None}, grace)
    for service in ALL:
        if service.pid() is None:
            service.pid_file.unlink(missing_ok=True)
    return running


def status() -> bool:
    """Print what runs, with the supervisor's restart counts; True when every built service runs."""
    supervisor = supervisor_pid()
    state = _read_supervisor_state().get("services", {}) if supervisor else {}
    if supervisor is not None:
        print(f"{'supervisor':<12} running  pid {supervisor:<7} log {infra.shown(SUPERVISOR_LOG)}")
    else:
        print(f"{'supervisor':<12} stopped  (crashed services are not restarted)")
    all_up = supervisor is not None
    for service in ALL:
        entry = state.get(service.name, {})
        restarts = int(entry.get("restarts", 0))
        history = f"  restarts {restarts}" if supervisor else ""
        if entry.get("last_exit"):
            history += f", last ended {entry['last_exit_at']}: {entry['last_exit']}"
        pid = service.pid()
        if pid is not None:
            health = "healthy" if _healthy(service) else "not answering /health"
            print(f"{service.name:<12} running  pid {pid:<7} http://{HOST}:{service.port}  {health}{history}")
        elif entry.get("restart_due_at"):
            print(f"{service.name:<12} restarting at {entry['restart_due_at']}{history}")
            all_up = False
        else:
            print(f"{service.name:<12} {'stopped' if service.built else 'not built yet'}{history}")
            all_up = all_up and not service.built
    return all_up


def rebuild(name: str) -> int:
    """Run `python -m services.<name> rebuild` against the service's local database; its exit status."""
    info = InfraInfo.load()
    if info is None or name not in info.database_urls:
        raise InfraError(f"no database for {name!r}: run `python deploy/local/infra.py up` first")
    # Its owner runs the migrations and the rebuild (DATABASE_MIGRATION_URL); settings need the secret too.
    env = {**os.environ, "SERVICE_NAME": name, **info.service_env(name)}
    return subprocess.run([_python(), "-m", f"services.{name}", "rebuild"], cwd=ROOT, env=env).returncode


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    start_parser = commands.add_parser("start", help="start the supervisor and wait for every /health")
    start_parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds to wait")
    commands.add_parser("stop", help="stop the supervisor and the services")
    rebuild_parser = commands.add_parser("rebuild", help="rebuild a service's read models from its log")
    rebuild_parser.add_argument("service", choices=sorted(SERVICES))
    commands.add_parser("status", help="list the services and restarts (exit 3 unless all run)")
    commands.add_parser("supervise", help="(what `start` runs in the background) the supervisor itself")
    args = parser.parse_args(argv)

    try:
        if args.command == "start":
            problems = start(args.timeout)
            for problem in problems:
                print(problem, file=sys.stderr)
            return 1 if problems else 0
        if args.command == "rebuild":
            return rebuild(args.service)
        if args.command == "stop":
            stopped = stop()
            print(f"stopped: {', '.join(stopped)}" if stopped else "no service was running")
            return 0
        if args.command == "supervise":
            return supervise()
        return 0 if status() else 3
    except InfraError as exc:
        print(f"services {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
