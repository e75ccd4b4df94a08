"""The HTTP APIs of the four services and the EDI adapter as OpenAPI documents in docs/openapi/, generated
from the code.

    python -m services.openapi           write docs/openapi/<service>.json
    python -m services.openapi --check   exit 1 if the committed documents differ from the code

A running service also serves its own at /openapi.json (and a browsable version at /docs).
"""

import importlib
import json
import sys
from pathlib import Path
from typing import Any, cast

from backbone.auth import generate_secret
from backbone.eventstore import EventStore
from backbone.runtime import Service, ServiceContext, http_app

DOCS = Path(__file__).resolve().parents[1] / "docs" / "openapi"
NAMES = ("order", "inventory", "procurement", "notifier", "edi")


def service(name: str) -> Service:
    return cast(Service, importlib.import_module(f"services.{name}.app").SERVICE)


def document(svc: Service) -> dict[str, Any]:
    # Routes are only built here, never called: no database, broker or real settings behind them.
    settings = svc.settings_type.model_construct(
        service_name=svc.name, database_url="postgresql://unused", auth_token_secret=generate_secret()
    )
    ctx = ServiceContext(settings, cast(Any, None), EventStore(svc.registry), cast(Any, None))
    return http_app(svc, ctx).openapi()


def documents() -> dict[str, str]:
    return {f"{n}.json": json.dumps(document(service(n)), indent=2, sort_keys=True) + "\n" for n in NAMES}


def drift() -> list[str]:
    return [
        name
        for name, text in documents().items()
        if not (DOCS / name).is_file() or (DOCS / name).read_text() != text
    ]


def main(argv: list[str]) -> int:
    if "--check" in argv:
        stale = drift()
        for name in stale:
            print(f"out of date: docs/openapi/{name} (run `make docs`)")
        return 1 if stale else 0
    DOCS.mkdir(parents=True, exist_ok=True)
    for name, text in documents().items():
        (DOCS / name).write_text(text)
    print(f"wrote {len(NAMES)} OpenAPI documents under {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
