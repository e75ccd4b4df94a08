"""`make run` (deploy/local/services.py) supervises the console like the services and prints the board's
address with a development token; no servers."""

import re
from typing import Any

from backbone.auth import ALL_ROLES, Verifier, generate_secret
from services.console.settings import ConsoleSettings
from tests.unit.local_scripts import load

local = load("services")


def info(secret: str) -> Any:  # an InfraInfo of the module loaded above
    urls = {
        name: f"postgresql://backorder_{name}_app:pw@127.0.0.1:55432/backorder_{name}"
        for name in local.SERVICES
    }
    owners = {name: url.replace("_app:", ":") for name, url in urls.items()}
    return local.InfraInfo(
        "127.0.0.1:9092", "postgresql://postgres:pw@127.0.0.1:55432/postgres", urls, owners, secret
    )


def test_the_console_runs_on_8005_pointed_at_the_four_services_with_the_shared_secret() -> None:
    secret = generate_secret()
    assert local.CONSOLE in local.ALL and local.CONSOLE.built
    env = local.environment(local.CONSOLE, info(secret))
    assert (env["HTTP_HOST"], env["HTTP_PORT"]) == ("127.0.0.1", "8005")
    assert {k: v for k, v in env.items() if k.startswith("CONSOLE_") and k.endswith("_URL")} == {
        "CONSOLE_ORDER_URL": "http://127.0.0.1:8001",
        "CONSOLE_INVENTORY_URL": "http://127.0.0.1:8002",
        "CONSOLE_PROCUREMENT_URL": "http://127.0.0.1:8003",
        "CONSOLE_NOTIFIER_URL": "http://127.0.0.1:8004",
    }
    # Exactly the URLs the console has settings for: the EDI adapter, a service too, is none of them.
    assert {f"console_{name}_url" for name in local.CONSOLE_SOURCES} == {
        name for name in ConsoleSettings.model_fields if name.startswith("console_") and name.endswith("_url")
    }
    assert (env["AUTH_TOKEN_SECRET"], env["KAFKA_BOOTSTRAP_SERVERS"]) == (secret, "127.0.0.1:9092")
    assert not {"DATABASE_URL", "DATABASE_MIGRATION_URL"} & set(info(secret).service_env("console"))
    # The services get the same secret, so they accept the console's tokens.
    order = local.environment(next(s for s in local.ALL if s.name == "order"), info(secret))
    assert order["AUTH_TOKEN_SECRET"] == secret and order["DATABASE_URL"].startswith(
        "postgresql://backorder_order_app"
    )


async def test_start_prints_the_board_with_a_development_token_the_services_accept() -> None:
    secret = generate_secret()
    printed = local.board_address(info(secret))
    found = re.search(r"^board\s+http://127\.0\.0\.1:8005/#token=(\S+)$", printed, re.MULTILINE)
    assert found, printed
    token = found.group(1)
    assert re.search(rf"^token\s+{re.escape(token)}$", printed, re.MULTILINE)
    principal = await Verifier(secret=secret, jwks_url=None).verify(token)
    assert principal.roles == ALL_ROLES
    # With the console down, the token is still printed (the services take it), the board's address not.
    without = local.board_address(info(secret), board_up=False)
    assert "#token=" not in without and re.search(r"^token\s+\S+$", without, re.MULTILINE)
