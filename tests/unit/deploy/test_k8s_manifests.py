"""deploy/k8s, offline: the base and the local overlay build with kustomize, every object is valid for
Kubernetes (strict) or for its operator's CRD (schemas/, checked in), and the invariants hold that keep
the system correct and safe on a cluster (tests/unit/deploy/manifests.py says which and why).

No cluster and no kubectl: kustomize comes from deploy/k8s/kustomize.sh (KUSTOMIZE, PATH, or built once
with Go). Without one these tests fail, saying how to get one; they never skip.
"""

import copy
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import kubernetes_validate
import pytest

from tests.unit.deploy import manifests as m

TARGETS = ("base", "overlays/local")
SCHEMA_FILES = sorted(p.name for p in m.SCHEMAS.glob("*.json"))


@pytest.fixture(scope="module", autouse=True)
def kustomize() -> str:
    try:
        return m.kustomize_binary()
    except m.KustomizeUnavailable as e:
        pytest.fail(str(e), pytrace=False)


@pytest.mark.parametrize("target", TARGETS)
def test_builds(target: str) -> None:
    built = m.build(target)
    kinds = {d["kind"] for d in built.docs}
    assert {"Deployment", "Kafka", "KafkaTopic", "KafkaUser", "Cluster", "ScaledObject"} <= kinds


@pytest.mark.parametrize("version", m.KUBERNETES_VERSIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_every_object_matches_its_schema(target: str, version: str) -> None:
    problems = m.schema_problems(m.build(target), version)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("check", m.CHECKS, ids=lambda c: c.__name__)
def test_invariant(target: str, check: m.Check) -> None:
    problems = check(m.build(target))
    assert not problems, "\n".join(problems)


def test_every_custom_resource_kind_has_its_schema_checked_in() -> None:
    used = {
        m.crd_schema_path(d).name
        for t in TARGETS
        for d in m.build(t).docs
        if "." in d["apiVersion"].split("/")[0]
    }
    builtin_groups = {
        "apps",
        "policy",
        "rbac.authorization.k8s.io",
        "networking.k8s.io",
        "autoscaling",
        "batch",
    }
    custom = {name for name in used if name.split("_")[0] not in builtin_groups}
    assert custom <= set(SCHEMA_FILES), (
        f"CRD schemas missing from {m.SCHEMAS}: {sorted(custom - set(SCHEMA_FILES))}"
    )
    assert set(SCHEMA_FILES) <= custom, (
        f"schemas nothing uses (remove them): {sorted(set(SCHEMA_FILES) - custom)}"
    )


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_checked_in_schemas_are_valid_json_schemas(name: str) -> None:
    import jsonschema

    schema = json.loads((m.SCHEMAS / name).read_text())
    jsonschema.Draft7Validator.check_schema(m.strict_schema(schema))
    assert schema["type"] == "object" and "spec" in schema["properties"]


# --- the checks notice what they are for: each breaks a copy of the manifests the way a careless edit would


def _deployment(name: str) -> Callable[[m.Manifests], dict]:
    return lambda ms: ms.deployment(name)["spec"]["template"]["spec"]["containers"][0]


def _set_env(container: dict, name: str, value: str) -> None:
    container["env"] = [v for v in container["env"] if v["name"] != name] + [{"name": name, "value": value}]


def _migrator(name: str) -> Callable[[m.Manifests], dict]:
    def found(ms: m.Manifests) -> dict:
        container = m.migrate_container(ms.deployment(name))
        assert container is not None
        return container

    return found


def _add_secret_env(container: dict, name: str, secret: str, key: str) -> None:
    container["env"].append({"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})


def _topic(ms: m.Manifests, name: str) -> dict:
    found = ms.get("KafkaTopic", name)
    assert found is not None
    return found


def _user(ms: m.Manifests, name: str) -> dict:
    found = ms.get("KafkaUser", name)
    assert found is not None
    return found


def _scaled(ms: m.Manifests, name: str) -> dict:
    found = ms.get("ScaledObject", name)
    assert found is not None
    return found


def _config(ms: m.Manifests, prefix: str) -> dict:
    return next(c for c in ms.of("ConfigMap") if c["metadata"]["name"].startswith(prefix))


BREAKAGES: dict[str, tuple[Callable[[m.Manifests], object], str]] = {
    "readiness on /health": (
        lambda ms: _deployment("order")(ms)["readinessProbe"]["httpGet"].update(path="/health"),
        "readinessProbe must be GET /health/ready",
    ),
    "no liveness probe": (
        lambda ms: _deployment("notifier")(ms).pop("livenessProbe"),
        "livenessProbe must be GET /health/live",
    ),
    "no memory limit": (
        lambda ms: _deployment("inventory")(ms)["resources"]["limits"].pop("memory"),
        "no limits.memory",
    ),
    "writable root": (
        lambda ms: _deployment("console")(ms)["securityContext"].update(readOnlyRootFilesystem=False),
        "root file system not read-only",
    ),
    "two replicas of a topic": (
        lambda ms: _topic(ms, "backorder.inventory")["spec"].update(replicas=2),
        "replicas 2, must be 3",
    ),
    "min.insync.replicas 1": (
        lambda ms: _topic(ms, "backorder.orders.dlq")["spec"]["config"].update({"min.insync.replicas": 1}),
        "min.insync.replicas must be 2",
    ),
    "fewer partitions than instances": (
        lambda ms: _topic(ms, "backorder.supplier")["spec"].update(partitions=6),
        "has 6 partitions < procurement's 12 instances",
    ),
    "more instances than partitions": (
        lambda ms: _scaled(ms, "order")["spec"].update(maxReplicaCount=24),
        "maxReplicaCount 24 must equal the partitions",
    ),
    "a dead-letter topic missing": (
        lambda ms: ms.docs.remove(_topic(ms, "backorder.fulfilment.dlq")),
        "missing ['backorder.fulfilment.dlq']",
    ),
    "a consumer without ScaledObject": (
        lambda ms: ms.docs.remove(_scaled(ms, "notifier")),
        "consumer notifier has no ScaledObject",
    ),
    "a service writing another's topic": (
        lambda ms: _user(ms, "backorder-procurement")["spec"]["authorization"]["acls"].append(
            {"resource": {"type": "topic", "name": "backorder.inventory"}, "operations": ["Write"]}
        ),
        "backorder-procurement topic 'backorder.inventory' (literal): may write a topic that is not its own",
    ),
    "writes by prefix": (
        lambda ms: _user(ms, "backorder-checkout")["spec"]["authorization"]["acls"].append(
            {
                "resource": {"type": "topic", "name": "backorder.", "patternType": "prefix"},
                "operations": ["Write"],
            }
        ),
        "writes by pattern",
    ),
    "a service that cannot read what it consumes": (
        lambda ms: _user(ms, "backorder-inventory")["spec"]["authorization"]["acls"].pop(1),
        "backorder-inventory: cannot read",
    ),
    "a listener without SCRAM": (
        lambda ms: ms.kafka["spec"]["kafka"]["listeners"][0].pop("authentication"),
        "must be TLS with scram-sha-512",
    ),
    "no PodDisruptionBudget": (
        lambda ms: ms.docs.remove(ms.get("PodDisruptionBudget", "procurement")),
        "Deployment/procurement has no PodDisruptionBudget",
    ),
    "no ServiceMonitor": (
        lambda ms: ms.docs.remove(ms.get("ServiceMonitor", "console")),
        "Deployment/console has no ServiceMonitor",
    ),
    "no Service": (
        lambda ms: ms.docs.remove(ms.get("Service", "order")),
        "Deployment/order has no Service",
    ),
    "a password in a ConfigMap": (
        lambda ms: _config(ms, "backorder-settings")["data"].update(SMTP_PASSWORD="hunter2"),
        "SMTP_PASSWORD looks like a secret",
    ),
    "a database URL with its password in a ConfigMap": (
        lambda ms: _config(ms, "order-settings")["data"].update(
            DATABASE_URL="postgresql://backorder_order_app:pw@backorder-db-rw/backorder_order"
        ),
        "holds a URL with a password",
    ),
    "a Secret written into the manifests": (
        lambda ms: ms.docs.append(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x", "namespace": "backorder"}}
        ),
        "Secret/x is written in the manifests",
    ),
    "topics created by the services": (
        lambda ms: _config(ms, "backorder-settings")["data"].update(TOPIC_AUTO_CREATE="true"),
        "TOPIC_AUTO_CREATE is 'true'",
    ),
    "a mistyped setting": (
        lambda ms: _config(ms, "inventory-settings")["data"].update(PRIORITY_MOD="weighted"),
        "variables no setting reads (a typo?): ['PRIORITY_MOD']",
    ),
    "a value the service refuses": (
        lambda ms: _config(ms, "inventory-settings")["data"].update(PRIORITY_MODE="random"),
        "refuses its environment",
    ),
    "the service running as the owner": (
        lambda ms: _set_env(
            _deployment("order")(ms),
            "DATABASE_URL",
            "postgresql://backorder_order:$(DATABASE_OWNER_PASSWORD)@backorder-db-rw:5432/backorder_order",
        ),
        "DATABASE_URL: must connect as backorder_order_app",
    ),
    "unverified database TLS": (
        lambda ms: _config(ms, "backorder-settings")["data"].update(DATABASE_TLS="sslmode=require"),
        "sslmode must be verify-full",
    ),
    "a Secret nobody makes": (
        lambda ms: _deployment("notifier")(ms)["env"][0]["valueFrom"]["secretKeyRef"].update(name="typo"),
        "Secret typo is made by nobody",
    ),
    "too few connections": (
        lambda ms: ms.postgres["spec"]["postgresql"]["parameters"].update(max_connections="200"),
        "max_connections 200 <",
    ),
    "the console writing": (
        lambda ms: _user(ms, "backorder-console")["spec"]["authorization"]["acls"].append(
            {"resource": {"type": "topic", "name": "backorder.orders.dlq"}, "operations": ["Write"]}
        ),
        "backorder-console topic 'backorder.orders.dlq' (literal): may write a topic that is not its own",
    ),
    "deleting records of a source topic": (
        lambda ms: _user(ms, "backorder-operator")["spec"]["authorization"]["acls"].append(
            {"resource": {"type": "topic", "name": "backorder.orders"}, "operations": ["Delete"]}
        ),
        "may delete records it has no business deleting",
    ),
    "creating topics": (
        lambda ms: _user(ms, "backorder-order")["spec"]["authorization"]["acls"][0]["operations"].append(
            "Create"
        ),
        "['Create'] is nobody's to do",
    ),
    "the toolbox as a database owner": (
        lambda ms: _set_env(
            ms.deployment("deadletters")["spec"]["template"]["spec"]["containers"][0],
            "ORDER_DATABASE_URL",
            "postgresql://backorder_order:$(ORDER_DATABASE_PASSWORD)@backorder-db-rw:5432/backorder_order",
        ),
        "ORDER_DATABASE_URL: must connect as backorder_order_app",
    ),
    "no audit topic": (
        lambda ms: ms.docs.remove(_topic(ms, "backorder.deadletters.audit")),
        "missing ['backorder.deadletters.audit']",
    ),
    "KEDA given a name it cannot resolve": (
        lambda ms: _scaled(ms, "inventory")["spec"]["triggers"][0]["metadata"].update(
            bootstrapServers="backorder-kafka-bootstrap:9093"
        ),
        "ScaledObject/inventory: bootstrapServers must be backorder-kafka-bootstrap.backorder.svc:9093",
    ),
    "a secret written into a Deployment": (
        lambda ms: _set_env(_deployment("procurement")(ms), "AUTH_TOKEN_SECRET", "x" * 40),
        "AUTH_TOKEN_SECRET must come from a Secret",
    ),
    "the owner's password in a service's container": (
        lambda ms: _add_secret_env(
            _deployment("order")(ms), "DATABASE_OWNER_PASSWORD", "backorder-db-order-owner", "password"
        ),
        "Deployment/order container order: holds the owner's password (['backorder-db-order-owner'])",
    ),
    "the owner's URL in a service's container": (
        lambda ms: _set_env(
            _deployment("notifier")(ms),
            "DATABASE_MIGRATION_URL",
            "postgresql://backorder_notifier:$(DATABASE_APP_PASSWORD)@backorder-db-rw:5432/backorder_notifier",
        ),
        "Deployment/notifier container notifier: has DATABASE_MIGRATION_URL",
    ),
    "another service's owner password in the console": (
        lambda ms: _add_secret_env(
            _deployment("console")(ms), "DATABASE_OWNER_PASSWORD", "backorder-db-inventory-owner", "password"
        ),
        "Deployment/console container console: holds the owner's password",
    ),
    "a service without its migrate initContainer": (
        lambda ms: ms.deployment("inventory")["spec"]["template"]["spec"].pop("initContainers"),
        "Deployment/inventory: needs exactly one initContainer migrate",
    ),
    "the migrations run from another image": (
        lambda ms: _migrator("procurement")(ms).update(image="postgres:17"),
        "initContainer migrate: image 'postgres:17' is not the same image as the service's",
    ),
    "the migrations of another service": (
        lambda ms: _migrator("order")(ms).update(command=["python", "-m", "services.inventory", "migrate"]),
        "is not python -m services.order migrate",
    ),
    "the migrate initContainer given the token secret": (
        lambda ms: _add_secret_env(
            _migrator("notifier")(ms), "AUTH_TOKEN_SECRET", "backorder-auth", "AUTH_TOKEN_SECRET"
        ),
        "needs only the owner's password and the server CA, has ['backorder-auth']",
    ),
    "the migrations run as the runtime role": (
        lambda ms: _set_env(
            _migrator("order")(ms),
            "DATABASE_MIGRATION_URL",
            "postgresql://backorder_order_app:$(DATABASE_OWNER_PASSWORD)@backorder-db-rw:5432/backorder_order",
        ),
        "Deployment/order container migrate DATABASE_MIGRATION_URL: must connect as backorder_order to",
    ),
    "a database without its runtime role": (
        lambda ms: ms.postgres["spec"]["managed"]["roles"].pop(1),
        "managed role backorder_order_app: missing",
    ),
    "two EDI adapters": (
        lambda ms: ms.deployment("edi")["spec"].update(replicas=2),
        "Deployment/edi: a singleton must state replicas 1, has 2",
    ),
    "the EDI adapter rolled out pod by pod": (
        lambda ms: ms.deployment("edi")["spec"].update(strategy={"type": "RollingUpdate"}),
        "Deployment/edi: a singleton must use strategy Recreate",
    ),
    "the EDI adapter scaled on lag": (
        lambda ms: ms.docs.append(_scaled_copy(ms, "procurement", "edi")),
        "ScaledObject for edi, a singleton",
    ),
    "the EDI folders on the pod's own disk": (
        lambda ms: _on_the_pods_disk(_volume(ms, "edi", "folders")),
        "Deployment/edi: EDI_INBOX_DIR='/var/lib/backorder/edi/inbox' is not on a PersistentVolumeClaim",
    ),
    "the EDI folders on a claim nobody makes": (
        lambda ms: ms.docs.remove(ms.get("PersistentVolumeClaim", "edi-folders")),
        "on PersistentVolumeClaim edi-folders, which does not exist",
    ),
    "the EDI adapter without its database": (
        lambda ms: ms.docs.remove(ms.get("Database", "backorder-edi")),
        "database backorder_edi owned by backorder_edi: missing",
    ),
    "the EDI adapter writing procurement's topic": (
        lambda ms: _user(ms, "backorder-edi")["spec"]["authorization"]["acls"][1]["operations"].append(
            "Write"
        ),
        "backorder-edi topic 'backorder.procurement' (literal): may write a topic that is not its own",
    ),
    "the EDI adapter unable to join its group": (
        lambda ms: _user(ms, "backorder-edi")["spec"]["authorization"]["acls"].pop(),
        "KafkaUser/backorder-edi: cannot join its consumer group backorder.edi",
    ),
    "the console given a URL it has no setting for": (
        lambda ms: _config(ms, "console-settings")["data"].update(CONSOLE_EDI_URL="http://edi:8000"),
        "Deployment/console: variables no setting reads (a typo?): ['CONSOLE_EDI_URL']",
    ),
}


def _scaled_copy(ms: m.Manifests, source: str, target: str) -> dict:
    scaled = copy.deepcopy(_scaled(ms, source))
    scaled["metadata"]["name"] = target
    scaled["spec"]["scaleTargetRef"]["name"] = target
    return scaled


def _volume(ms: m.Manifests, deployment: str, name: str) -> dict:
    volumes = ms.deployment(deployment)["spec"]["template"]["spec"]["volumes"]
    return next(v for v in volumes if v["name"] == name)


def _on_the_pods_disk(volume: dict) -> None:
    volume.pop("persistentVolumeClaim")
    volume["emptyDir"] = {}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_checks_notice(breakage: str) -> None:
    built = m.build("base")
    assert not m.all_problems(built)
    breaks, expected = BREAKAGES[breakage]
    breaks(built)
    problems = m.all_problems(built)
    assert any(expected in p for p in problems), f"no problem says {expected!r}; got {problems}"


def test_schema_checks_notice_an_unknown_field() -> None:
    built = m.build("base")
    built.kafka["spec"]["kafka"]["listners"] = []
    built.deployment("order")["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    problems = m.schema_problems(built, m.KUBERNETES_VERSIONS[-1])
    assert any("listners" in p for p in problems), problems
    assert any("resource" in p and "Deployment/order" in p for p in problems), problems


def test_schema_checks_notice_an_invalid_value() -> None:
    built = m.build("base")
    next(u for u in built.of("KafkaUser"))["spec"]["authentication"]["type"] = "scram-sha-256"
    built.deployment("console")["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = (
        "http"
    )
    problems = m.schema_problems(built, m.KUBERNETES_VERSIONS[0])
    assert any("scram-sha-256" in p for p in problems), problems
    assert any("Deployment/console" in p for p in problems), problems


# --- deploy/k8s/generate_secrets.py -------------------------------------------------------------------------


def test_generated_secrets_are_valid_and_fresh() -> None:
    first, second = m.generated_secrets(), m.generated_secrets()
    m._generated_secrets.cache_clear()
    third = m.generated_secrets()
    assert first == second  # the helper's cache
    for secret in first:
        kubernetes_validate.validate(secret, m.KUBERNETES_VERSIONS[-1], strict=True)
        assert secret["metadata"]["namespace"] == m.NAMESPACE
    values = {s["metadata"]["name"]: s["stringData"] for s in first}
    fresh = {s["metadata"]["name"]: s["stringData"] for s in third}
    assert len(values["backorder-auth"]["AUTH_TOKEN_SECRET"]) >= 32
    for name, data in values.items():
        assert data != fresh[name], f"{name}: the same value twice"
        if "password" in data:
            assert re.fullmatch(r"[0-9a-f]{48}", data["password"]), "a password goes into a URL unescaped"
            assert data["password"] != data["username"]


# --- deploy/k8s/kustomize.sh --------------------------------------------------------------------------------

SCRIPT = m.K8S / "kustomize.sh"


def _run_script(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60, check=False)


def test_kustomize_script_prefers_the_given_binary(kustomize: str) -> None:
    result = _run_script({**os.environ, "KUSTOMIZE": kustomize})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == kustomize


def test_kustomize_script_refuses_what_is_not_a_binary(tmp_path: Path) -> None:
    result = _run_script({**os.environ, "KUSTOMIZE": str(tmp_path / "nothing")})
    assert result.returncode != 0
    assert "not an executable file" in result.stderr


def test_kustomize_script_says_why_when_there_is_no_way_to_get_one(tmp_path: Path) -> None:
    # A PATH with the tools the script uses, and neither kustomize nor Go; an empty cache.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "env", "grep", "head", "mkdir", "mktemp", "mv", "rm"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    result = _run_script(env)
    assert result.returncode != 0
    assert result.stdout == ""
    assert "no kustomize found" in result.stderr and "install Go" in result.stderr
