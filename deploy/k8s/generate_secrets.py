"""Prints, as a Kubernetes List (JSON), the Secrets deploy/k8s expects someone to create, with fresh random
values: the token secret and the passwords of the ten database roles.

    python deploy/k8s/generate_secrets.py | kubectl create -f -

`kubectl create` (not apply) makes only the Secrets that do not exist yet and refuses to replace the
others, so running it again never changes a password under a running system. The operators make the rest:
Strimzi a Secret per KafkaUser (its SCRAM password) and the cluster CA, CloudNativePG the server CA. The
notifier's optional `backorder-notifier-secrets` (SMTP login, webhooks) is the shop's to fill in. See
docs/operations/kubernetes.md. Standard library only: it runs wherever kubectl does.
"""

import argparse
import json
import secrets
import sys
from typing import Any

SERVICES = ("order", "inventory", "procurement", "notifier", "edi")
AUTH_SECRET = "backorder-auth"


def database_roles() -> list[tuple[str, str]]:
    """(Secret name, role name) for each service's owner and runtime role (postgres/cluster.yaml)."""
    roles = []
    for service in SERVICES:
        roles.append((f"backorder-db-{service}-owner", f"backorder_{service}"))
        roles.append((f"backorder-db-{service}-app", f"backorder_{service}_app"))
    return roles


def _secret(name: str, namespace: str, data: dict[str, str], **extra: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {"app.kubernetes.io/part-of": "backorder"},
    }
    metadata["labels"].update(extra.pop("labels", {}))
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "stringData": data, **extra}


def generate(namespace: str) -> dict[str, Any]:
    items = [
        # HS256 needs at least 32 bytes of key; 48 random bytes, URL-safe so that it survives any shell.
        _secret(AUTH_SECRET, namespace, {"AUTH_TOKEN_SECRET": secrets.token_urlsafe(48)}, type="Opaque")
    ]
    for name, role in database_roles():
        items.append(
            _secret(
                name,
                namespace,
                # Hex: the password goes into a postgresql:// URL unescaped (the Deployments compose it).
                {"username": role, "password": secrets.token_hex(24)},
                type="kubernetes.io/basic-auth",
                # CloudNativePG applies a changed password to its role when the Secret carries this.
                labels={"cnpg.io/reload": "true"},
            )
        )
    return {"apiVersion": "v1", "kind": "List", "items": items}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--namespace", default="backorder", help="where deploy/k8s runs (default: backorder)")
    args = parser.parse_args(argv)
    json.dump(generate(args.namespace), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
