#!/usr/bin/env python3
"""Run the four services on this machine against the servers of `infra.py up`.

    python deploy/local/services.py start|stop|status

Each service runs detached as `<venv python> -m services.<name>`, logging to .state/services/<name>.log,
with its pid in .state/services/<name>.pid; `stop` signals exactly those pids. A mail sink (a real SMTP
server on 127.0.0.1:1025 keeping messages in .state/mail, listed at http://127.0.0.1:8025/messages)
stands in for the shop's mail relay, so the notifier's e-mails can be read.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

# Run as a script, this folder is on sys.path; infra.py holds the service table and the state layout.
import infra
from infra import HOST, ROOT, SERVICES, STATE_DIR, InfraError, InfraInfo

SERVICES_DIR = STATE_DIR / "services"
STOP_GRACE_SECONDS = 15.0
DEFAULT_TIMEOUT = 60.0


MAIL_SMTP_PORT = 1025
MAIL_HTTP_PORT = 8025
MAILDIR = STATE_DIR / "mail"


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
_LOCAL_ENV = {"notifier": (("SMTP_HOST", HOST), ("SMTP_PORT", str(MAIL_SMTP_PORT)))}
ALL = [
    MAIL_SINK,
    *(
        Service(name, port, f"services.{name}", env=_LOCAL_ENV.get(name, ()))
        for name, port in SERVICES.items()
    ),
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


def _spawn(service: Service, info: InfraInfo) -> int:
    if infra.port_in_use(service.port):
        raise InfraError(f"{HOST}:{service.port} is taken by another process; {service.name} needs it")
    env = {
        **os.environ,
        "SERVICE_NAME": service.name,
        "HTTP_HOST": HOST,
        "HTTP_PORT": str(service.port),
        "KAFKA_BOOTSTRAP_SERVERS": info.kafka_bootstrap_servers,
        "PYTHONUNBUFFERED": "1",  # so the log shows what happened right before a crash
        **dict(service.env),
    }
    if service.name in info.database_urls:
        env["DATABASE_URL"] = info.database_urls[service.name]
    if service.log.exists():
        service.log.replace(service.log.with_suffix(".log.1"))
    with service.log.open("wb") as log:
        process = subprocess.Popen(
            [_python(), "-m", service.module, *service.args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives this script, untouched by the terminal's Ctrl-C
        )
    service.pid_file.write_text(f"{process.pid}\n")
    return process.pid


def _wait_healthy(service: Service, pid: int, deadline: float) -> None:
    while not _healthy(service):
        infra.reap(pid)
        if not service.is_ours(pid):
            service.pid_file.unlink(missing_ok=True)
            raise InfraError(f"{service.name} (pid {pid}) exited\n{infra.log_tail(service.log)}")
        if time.monotonic() > deadline:
            raise InfraError(
                f"{service.name} (pid {pid}) did not answer 200 on {service.health_url} in time; "
                f"it is still running (`services.py stop` stops it)\n{infra.log_tail(service.log)}"
            )
        time.sleep(0.3)


def start(timeout: float = DEFAULT_TIMEOUT) -> list[str]:
    """Start every built service not running yet, wait until all answer /health; return the problems."""
    info = InfraInfo.load()
    if info is None:
        raise InfraError(f"{infra.INFRA_JSON} is missing: run `python deploy/local/infra.py up` first")
    SERVICES_DIR.mkdir(parents=True, exist_ok=True)
    started: dict[Service, int] = {}
    problems: list[str] = []
    for service in ALL:
        if not service.built:
            print(f"{service.name:<12} not built yet (no services/{service.name}/__main__.py), skipped")
            continue
        pid = service.pid()
        if pid is not None:
            print(f"{service.name:<12} already running, pid {pid}")
            started[service] = pid
            continue
        try:
            started[service] = _spawn(service, info)
        except InfraError as exc:
            problems.append(str(exc))

    # All are launched before any is awaited, so they boot in parallel.
    deadline = time.monotonic() + timeout
    for service, pid in started.items():
        try:
            _wait_healthy(service, pid, deadline)
            log = service.log.relative_to(ROOT)
            print(f"{service.name:<12} http://{HOST}:{service.port}  pid {pid}, log {log}")
        except InfraError as exc:
            problems.append(str(exc))
    return problems


def stop(grace: float = STOP_GRACE_SECONDS) -> list[str]:
    """SIGTERM every running service, then SIGKILL what is left after `grace`; return the names stopped."""
    running = {service: pid for service in ALL if (pid := service.pid()) is not None}
    for pid in running.values():
        os.kill(pid, signal.SIGTERM)  # all at once, so they shut down in parallel; a graceful stop
    deadline = time.monotonic() + grace
    for service, pid in running.items():
        while service.is_ours(pid) and time.monotonic() < deadline:
            infra.reap(pid)
            time.sleep(0.2)
        if service.is_ours(pid):
            print(f"{service.name} ignored SIGTERM for {grace:.0f} s; sending SIGKILL", file=sys.stderr)
            infra.stop_process(pid, service.is_ours, signal.SIGKILL, 5.0)
    for service in ALL:
        if service.pid() is None:
            service.pid_file.unlink(missing_ok=True)
    return [service.name for service in running]


def rebuild(name: str) -> int:
    """Run `python -m services.<name> rebuild` against the service's local database; its exit status."""
    info = InfraInfo.load()
    if info is None or name not in info.database_urls:
        raise InfraError(f"no database for {name!r}: run `python deploy/local/infra.py up` first")
    env = {**os.environ, "SERVICE_NAME": name, "DATABASE_URL": info.database_urls[name]}
    return subprocess.run([_python(), "-m", f"services.{name}", "rebuild"], cwd=ROOT, env=env).returncode


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    start_parser = commands.add_parser("start", help="start the built services and wait for /health")
    start_parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds to wait")
    commands.add_parser("stop", help="stop the services this script started")
    rebuild_parser = commands.add_parser("rebuild", help="rebuild a service's read models from its log")
    rebuild_parser.add_argument("service", choices=sorted(SERVICES))
    commands.add_parser("status", help="list the services (exit 3 unless every built one runs)")
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
        all_up = True
        for service in ALL:
            pid = service.pid()
            if pid is not None:
                health = "healthy" if _healthy(service) else "not answering /health"
                print(f"{service.name:<12} running  pid {pid:<7} http://{HOST}:{service.port}  {health}")
            else:
                print(f"{service.name:<12} {'stopped' if service.built else 'not built yet'}")
                all_up = all_up and not service.built
        return 0 if all_up else 3
    except InfraError as exc:
        print(f"services {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
