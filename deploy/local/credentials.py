#!/usr/bin/env python3
"""The generated passwords and secrets of one installation, kept in an env file (KEY=value, mode 600).

    python3 deploy/local/credentials.py [PATH]    (default: .env at the project root; `make env`)

Which keys: the PostgreSQL superuser's password (POSTGRES_PASSWORD), one per role that
deploy/postgres/init/10-service-databases.sql reads from the environment (BACKORDER_<SVC>_PASSWORD for a
database's owner, BACKORDER_<SVC>_APP_PASSWORD for the service's runtime role) and the services' token
secret (AUTH_TOKEN_SECRET). A missing file is created, a key it lacks is appended; values it has are kept,
because the database was initialised with them. docker compose reads .env; deploy/local/infra.py keeps
its own file in the state folder. Standard library only, so that it runs before `make install`.

Named credentials.py rather than secrets.py: scripts in this folder would import it instead of the
standard library's `secrets`.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOTENV = ROOT / ".env"
INIT_SQL = ROOT / "deploy" / "postgres" / "init" / "10-service-databases.sql"

SUPERUSER_PASSWORD = "POSTGRES_PASSWORD"
AUTH_TOKEN_SECRET = "AUTH_TOKEN_SECRET"
MIN_LENGTH = 32  # AUTH_TOKEN_SECRET's minimum (HS256); the init script accepts passwords of 16 and more

_GETENV = re.compile(r"^\\getenv\s+\w+\s+(\w+)\s*$", re.MULTILINE)
_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_HEADER = """\
# Generated passwords and secrets of this installation (deploy/local/credentials.py). Keep it private.
# The databases were created with these passwords: change one only together with its role
# (ALTER ROLE ... PASSWORD), and delete this file only together with the data (docker compose down -v).
"""


def password_key(role: str) -> str:
    """The variable that holds a role's password: backorder_order_app -> BACKORDER_ORDER_APP_PASSWORD."""
    return f"{role.upper()}_PASSWORD"


def role_keys() -> list[str]:
    """The role passwords the init script reads (its \\getenv lines): the one list of roles to provision."""
    return _GETENV.findall(INIT_SQL.read_text())


def required_keys() -> list[str]:
    return [SUPERUSER_PASSWORD, *role_keys(), AUTH_TOKEN_SECRET]


def _role_names() -> set[str]:
    return {"postgres", *(key.removesuffix("_PASSWORD").lower() for key in role_keys())}


def weakness(key: str, value: str) -> str | None:
    """Why `value` must not be used for `key`, or None."""
    if len(value) < MIN_LENGTH:
        return f"shorter than {MIN_LENGTH} characters"
    if value.lower() in _role_names():
        return "a role name"
    if not re.fullmatch(r"[A-Za-z0-9_-]+", value):
        # They end up in database URLs and compose interpolation: no quoting anywhere, by construction.
        return "characters other than letters, digits, '-' and '_'"
    return None


def read(path: Path) -> dict[str, str]:
    """KEY=value lines (`export` and surrounding quotes allowed, # comments skipped); {} without a file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match and not line.lstrip().startswith("#"):
            values[match[1]] = match[2].strip().strip("'\"")
    return values


def ensure(path: Path, keys: Sequence[str] | None = None) -> dict[str, str]:
    """The file's values for `keys` (default: every required key), generating and appending those it
    lacks; the file is made private (mode 600). Raises ValueError for a weak value already in it."""
    wanted = list(required_keys() if keys is None else keys)
    existing = read(path)
    weak = [f"{key} is {why}" for key in wanted if key in existing and (why := weakness(key, existing[key]))]
    if weak:
        raise ValueError(f"{path}: {'; '.join(weak)}; remove the line and run this again to generate it")
    missing = {key: secrets.token_urlsafe(32) for key in wanted if key not in existing}
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created private: never readable by others, not even for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as handle:
        os.fchmod(handle.fileno(), 0o600)
        if missing:
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                handle.write(_HEADER)
            elif not path.read_text().endswith("\n"):
                handle.write("\n")
            handle.writelines(f"{key}={value}\n" for key, value in missing.items())
    return {key: existing[key] if key in existing else missing[key] for key in wanted}


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) > 1 or (args and args[0].startswith("-")):
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(args[0]) if args else DOTENV
    before = read(path)
    try:
        values = ensure(path)
    except ValueError as exc:
        print(f"credentials: {exc}", file=sys.stderr)
        return 1
    added = [key for key in values if key not in before]
    print(f"{path}: generated {', '.join(added)}" if added else f"{path}: complete, nothing generated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
