"""deploy/k8s rendered and checked: kustomize builds, schemas (Kubernetes' and the operators' CRDs), and the
invariants that keep the system correct and safe on a cluster.

Every check returns a list of problems (empty: fine), so that tests can show all of them at once and can
prove, on a broken copy of the manifests, that each check notices what it is there for.
"""

import copy
import functools
import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import jsonschema
import kubernetes_validate
import yaml
from pydantic import BaseModel
from pydantic_settings import BaseSettings

from backbone.cli import MigrationSettings
from backbone.contracts import Topic, dead_letter_topic
from backbone.deadletters import AUDIT_TOPIC, ToolSettings
from backbone.settings import ServiceSettings
from services.console.settings import ConsoleSettings

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
NAMESPACE = "backorder"

Doc = dict[str, Any]

# --- what the code and the brief say, independently of the manifests -----------------------------------

SERVICES = ("order", "inventory", "procurement", "notifier", "edi")
# Services that run as one instance, never scaled: the EDI adapter watches one folder (its volume's).
SINGLETONS = ("edi",)
# A singleton's settings that name folders: they must be on its PersistentVolumeClaim, not the pod's disk.
FOLDER_SETTINGS = {"edi": ("EDI_INBOX_DIR", "EDI_OUTBOX_DIR")}
CONSOLE = "console"
TOOLBOX = "deadletters"  # where an operator runs python -m backbone.deadletters
MIGRATE = "migrate"  # each service's initContainer and its command: python -m services.<name> migrate
# Who writes which topic (docs/contract.md): a service its own, the adapters theirs.
OWN_TOPICS: dict[str, set[Topic]] = {
    "order": {Topic.ORDERS},
    "inventory": {Topic.INVENTORY},
    "procurement": {Topic.PROCUREMENT},
    "notifier": {Topic.NOTIFIER},
    "edi": {Topic.SUPPLIER},  # what the suppliers' interchanges say, as supplier adapters do
}
OPERATOR = "backorder-operator"  # the dead-letter tool's Kafka identity


def other_writers(prefix: str) -> dict[str, set[str]]:
    """KafkaUsers that are not a service's, and the topics each may write (never a dead-letter topic: only
    the consumer that failed on a message puts it there). The operator's identity replays dead letters to
    their source topic and records that in the audit topic (backbone.deadletters); nothing else writes."""
    return {
        "backorder-checkout": {Topic.ORDERS.qualified(prefix)},
        "backorder-supplier-adapter": {Topic.SUPPLIER.qualified(prefix)},
        "backorder-warehouse-adapter": {Topic.FULFILMENT.qualified(prefix)},
        OPERATOR: {t.qualified(prefix) for t in Topic} | {prefix + AUDIT_TOPIC},
        "backorder-console": set(),
        "backorder-keda": set(),
    }


def deleters(prefix: str) -> dict[str, set[str]]:
    """Who may delete records (`purge --delete-records`): the operator, on dead-letter topics only."""
    return {OPERATOR: {dead_letter_topic(t.qualified(prefix)) for t in Topic}}


# Topic operations nobody needs: the topic operator (Strimzi) creates and configures topics.
FORBIDDEN_TOPIC_OPERATIONS = {"All", "Create", "Alter", "AlterConfigs", "IdempotentWrite", "ClusterAction"}
PROBES = {"readinessProbe": "/health/ready", "livenessProbe": "/health/live"}
HTTP_PORT = 8000
# Per instance: the pool, the relay's own connection, and the migrations' at start (backbone.runtime).
CONNECTIONS_BESIDE_POOL = 2
# Sessions beside the services' (the operator's, monitoring, superuser_reserved_connections, a person).
CONNECTION_RESERVE = 20
# Variables the Deployments set that are no setting of the code: parts the URLs are composed of, and the
# pod's identity for traces. Anything else must be a field of the process's settings (a typo is not).
COMPOSITION_VARIABLES = {
    "DATABASE_HOST",
    "DATABASE_PORT",
    "DATABASE_TLS",
    "DATABASE_APP_PASSWORD",
    "DATABASE_OWNER_PASSWORD",
    "POD_NAME",
    "POD_NAMESPACE",
    *(f"{service.upper()}_DATABASE_PASSWORD" for service in SERVICES),
}
SECRET_LIKE = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE|CREDENTIAL|API_?KEY", re.IGNORECASE)
URL_WITH_PASSWORD = re.compile(r"://[^/@:\s]+:[^/@\s]+@")


def console_sources() -> list[str]:
    """The services whose APIs the console reads: its settings' CONSOLE_<NAME>_URL."""
    fields = ConsoleSettings.model_fields
    return [
        n.removeprefix("console_").removesuffix("_url") for n in fields if re.fullmatch(r"console_\w+_url", n)
    ]


def toolbox_databases() -> list[str]:
    """The services whose databases the dead-letter tool's `parked` reaches: its <NAME>_DATABASE_URL."""
    fields = ToolSettings.model_fields
    return [n.removesuffix("_database_url") for n in fields if re.fullmatch(r"[a-z]+_database_url", n)]


def consumed_topics(service: str) -> list[Topic]:
    """What the service's code subscribes to (services/<name>/app.py SERVICE.consumes)."""
    return list(_service_definition(service).consumes)


def settings_type(service: str) -> type[ServiceSettings]:
    return _service_definition(service).settings_type


@functools.cache
def _service_definition(service: str) -> Any:
    module = __import__(f"services.{service}.app", fromlist=["SERVICE"])
    return module.SERVICE


# --- rendering --------------------------------------------------------------------------------------------


class KustomizeUnavailable(Exception):
    pass


@functools.cache
def kustomize_binary() -> str:
    """The binary deploy/k8s/kustomize.sh finds or builds (raises with its explanation when it cannot)."""
    result = subprocess.run(
        [str(K8S / "kustomize.sh")], capture_output=True, text=True, timeout=900, check=False
    )
    path = result.stdout.strip()
    if result.returncode != 0 or not path or not os.access(path, os.X_OK):
        raise KustomizeUnavailable(
            f"deploy/k8s/kustomize.sh found no kustomize (exit {result.returncode}): "
            f"{result.stderr.strip() or result.stdout.strip()}"
        )
    return path


@functools.cache
def _build(target: str) -> tuple[Doc, ...]:
    result = subprocess.run(
        [kustomize_binary(), "build", str(K8S / target)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"kustomize build deploy/k8s/{target} failed:\n{result.stderr}")
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def build(target: str) -> "Manifests":
    """deploy/k8s/<target> rendered by kustomize (a fresh copy each time: checks may mutate it)."""
    return Manifests(copy.deepcopy(list(_build(target))), production=target == "base")


@functools.cache
def _generated_secrets() -> tuple[Doc, ...]:
    result = subprocess.run(
        [sys.executable, str(K8S / "generate_secrets.py"), "--namespace", NAMESPACE],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    listing = json.loads(result.stdout)
    assert listing["kind"] == "List"
    return tuple(listing["items"])


def generated_secrets() -> list[Doc]:
    """What deploy/k8s/generate_secrets.py prints (fresh random values each call of the script)."""
    return copy.deepcopy(list(_generated_secrets()))


@dataclass
class Manifests:
    docs: list[Doc]
    production: bool  # the base: high-availability minimums apply

    def of(self, kind: str) -> list[Doc]:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> Doc | None:
        return next((d for d in self.of(kind) if d["metadata"]["name"] == name), None)

    def names(self, kind: str) -> set[str]:
        return {d["metadata"]["name"] for d in self.of(kind)}

    @property
    def kafka(self) -> Doc:
        (kafka,) = self.of("Kafka")
        return kafka

    @property
    def postgres(self) -> Doc:
        (cluster,) = self.of("Cluster")
        return cluster

    def deployment(self, name: str) -> Doc:
        found = self.get("Deployment", name)
        assert found is not None, f"no Deployment {name}"
        return found

    def ours(self) -> list[Doc]:
        """The Deployments of the services and the console (not, say, a local overlay's mail sink)."""
        return [d for d in self.of("Deployment") if d["metadata"]["name"] in (*SERVICES, CONSOLE)]

    def kafka_clients(self) -> list[Doc]:
        """Our Deployments and the dead-letter toolbox: whatever logs in to Kafka."""
        return [d for d in self.of("Deployment") if d["metadata"]["name"] in (*SERVICES, CONSOLE, TOOLBOX)]

    def shared_setting(self, name: str) -> str:
        (config,) = [
            c for c in self.of("ConfigMap") if c["metadata"]["name"].startswith("backorder-settings")
        ]
        return str(config["data"][name])


# --- schemas ------------------------------------------------------------------------------------------------

KUBERNETES_VERSIONS = ("1.32", "1.37")  # the oldest the operators' releases support, and the newest known


def crd_schema_path(doc: Doc) -> Path:
    group, _, version = doc["apiVersion"].rpartition("/")
    return SCHEMAS / f"{group}_{version}_{doc['kind']}.json"


@functools.cache
def _crd_validator(path: Path) -> jsonschema.protocols.Validator:
    schema = strict_schema(json.loads(path.read_text()))
    return jsonschema.Draft7Validator(schema)


def strict_schema(schema: Any) -> Any:
    """The schema as the API server applies it with strict field validation (kubectl's default): a field
    the schema does not know is an error, except where it preserves unknown fields."""
    if isinstance(schema, list):
        return [strict_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key in ("properties", "patternProperties"):
            out[key] = {name: strict_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            out[key] = strict_schema(value)
        else:
            out[key] = value
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def _errors(validator: jsonschema.protocols.Validator, doc: Doc) -> Iterator[str]:
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        where = "/".join(map(str, error.absolute_path)) or "(root)"
        yield f"{where}: {error.message[:300]}"


def schema_problems(manifests: Manifests, kubernetes_version: str) -> list[str]:
    """Built-in kinds against Kubernetes' schemas (strict), custom resources against their CRDs' (and
    their metadata against ObjectMeta's)."""
    problems = []
    for doc in manifests.docs:
        label = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        path = crd_schema_path(doc)
        if path.exists():
            problems += [f"{label}: {e}" for e in _errors(_crd_validator(path), doc)]
            # ObjectMeta is the same for every kind: a ConfigMap carrying these metadata checks them.
            meta = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc["metadata"]}
            problems += [f"{label} metadata: {e}" for e in _kubernetes_errors(meta, kubernetes_version)]
        else:
            problems += [f"{label}: {e}" for e in _kubernetes_errors(doc, kubernetes_version)]
    return problems


def _kubernetes_errors(doc: Doc, version: str) -> list[str]:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError as e:
        return [f"neither a Kubernetes kind nor one of the CRDs in {SCHEMAS.name}/: {e.message}"]
    except kubernetes_validate.ValidationError as e:
        where = "/".join(map(str, e.absolute_path)) or "(root)"
        return [f"{where}: {e.message[:300]} (Kubernetes {e.version})"]
    return []


# --- the containers' environment ---------------------------------------------------------------------------

_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)|\$\$")


def stand_in(secret: str, key: str) -> str:
    """What a secret's value is replaced by when a container's environment is resolved: URL-safe, long
    enough for any minimum length, and traceable back (secret_of)."""
    return "secret" + hashlib.sha256(f"{secret}/{key}".encode()).hexdigest()


@dataclass
class Environment:
    values: dict[str, str]  # as the process would see them, secrets as their stand-ins
    secrets: dict[str, tuple[str, str]]  # stand-in -> (Secret name, key)
    from_secret: set[str]  # variables whose value is a Secret's
    literal: set[str]  # variables whose value is written in the manifests (env value or ConfigMap)
    optional_secret_sources: list[str]  # envFrom Secrets (their keys are not known here)

    def secret_of(self, value: str) -> tuple[str, str] | None:
        return self.secrets.get(value)


def environment(manifests: Manifests, container: Doc) -> Environment:
    """The container's variables as the kubelet makes them: envFrom in order, then env, each `$(NAME)`
    replaced by an earlier variable's value (left as is when there is none; `$$` is a `$`)."""
    env = Environment({}, {}, set(), set(), [])
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            config = manifests.get("ConfigMap", source["configMapRef"]["name"])
            if config is None:
                continue  # check_references reports it
            for key, value in config.get("data", {}).items():
                env.values[source.get("prefix", "") + key] = str(value)
                env.literal.add(source.get("prefix", "") + key)
        elif "secretRef" in source:
            env.optional_secret_sources.append(source["secretRef"]["name"])
    for variable in container.get("env", []):
        name = variable["name"]
        env.literal.discard(name)
        env.from_secret.discard(name)
        if "value" in variable:
            env.values[name] = _expand(variable["value"], env.values)
            env.literal.add(name)
        elif "secretKeyRef" in variable.get("valueFrom", {}):
            ref = variable["valueFrom"]["secretKeyRef"]
            value = stand_in(ref["name"], ref["key"])
            env.secrets[value] = (ref["name"], ref["key"])
            env.values[name] = value
            env.from_secret.add(name)
        elif "configMapKeyRef" in variable.get("valueFrom", {}):
            ref = variable["valueFrom"]["configMapKeyRef"]
            config = manifests.get("ConfigMap", ref["name"]) or {}
            env.values[name] = str(config.get("data", {}).get(ref["key"], ""))
            env.literal.add(name)
        elif "fieldRef" in variable.get("valueFrom", {}):
            env.values[name] = "field-" + variable["valueFrom"]["fieldRef"]["fieldPath"].replace(".", "-")
    return env


def _expand(text: str, values: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return values.get(match.group(1), match.group(0))

    return _REFERENCE.sub(replace, text)


def env_names(model: type[BaseSettings]) -> set[str]:
    """The variables a settings class reads (pydantic-settings: the field name, or its alias)."""
    names = set()
    for name, field in model.model_fields.items():
        alias = field.validation_alias if isinstance(field.validation_alias, str) else field.alias
        names.add((alias or name).upper())
    return names


def load_settings(model: type[BaseModel], values: dict[str, str]) -> BaseModel:
    """The settings class reading exactly these variables (none of the test process's own)."""
    with mock.patch.dict(os.environ, values, clear=True):
        return model()


def mounted_file(container: Doc, pod: Doc, path: str) -> tuple[str, str] | None:
    """(Secret name, key) of the secret volume item mounted at `path`, if one is."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        prefix = mount["mountPath"].rstrip("/") + "/"
        volume = volumes.get(mount["name"], {})
        if not path.startswith(prefix) or "secret" not in volume:
            continue
        relative = path[len(prefix) :]
        for item in volume["secret"].get("items", []):
            if item["path"] == relative:
                return volume["secret"]["secretName"], item["key"]
        if not volume["secret"].get("items"):
            return volume["secret"]["secretName"], relative
    return None


def all_containers(pod: Doc) -> list[Doc]:
    """The pod's init containers and containers."""
    return [*pod.get("initContainers", []), *pod["containers"]]


def migrate_container(deployment: Doc) -> Doc | None:
    """A service's initContainer `migrate`, if it has one."""
    pod = deployment["spec"]["template"]["spec"]
    return next((c for c in pod.get("initContainers", []) if c["name"] == MIGRATE), None)


def owner_secrets() -> dict[str, str]:
    """Secret -> the database owner role whose password it holds (generate_secrets.py)."""
    owners = {f"backorder_{service}" for service in SERVICES}
    return {
        s["metadata"]["name"]: s["stringData"]["username"]
        for s in generated_secrets()
        if s.get("stringData", {}).get("username") in owners
    }


def _container_secrets(manifests: Manifests, container: Doc, pod: Doc) -> set[str]:
    """The Secrets a container can read: from its environment and from the volumes it mounts."""
    used = {
        v["valueFrom"]["secretKeyRef"]["name"]
        for v in container.get("env", [])
        if "secretKeyRef" in v.get("valueFrom", {})
    }
    used |= {s["secretRef"]["name"] for s in container.get("envFrom", []) if "secretRef" in s}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})
        if "secret" in volume:
            used.add(volume["secret"]["secretName"])
        for source in volume.get("projected", {}).get("sources", []):
            if "secret" in source:
                used.add(source["secret"]["name"])
    return used


# --- the checks ---------------------------------------------------------------------------------------------

Check = Callable[[Manifests], list[str]]


def check_namespace(manifests: Manifests) -> list[str]:
    problems = []
    namespaces = manifests.names("Namespace")
    if namespaces != {NAMESPACE}:
        problems.append(f"expected the one Namespace {NAMESPACE}, got {sorted(namespaces)}")
    for doc in manifests.docs:
        if doc["kind"] != "Namespace" and doc["metadata"].get("namespace") != NAMESPACE:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']} is not in namespace {NAMESPACE}")
    return problems


def check_deployments(manifests: Manifests) -> list[str]:
    """Every Deployment: resources and a restricted security context. The services' and the console's
    also: probes on the right paths, the one image and its command, the http port."""
    problems = []
    names = {d["metadata"]["name"] for d in manifests.ours()}
    if names != {*SERVICES, CONSOLE}:
        problems.append(
            f"Deployments of the services and the console: expected {sorted([*SERVICES, CONSOLE])}"
        )
    if manifests.get("Deployment", TOOLBOX) is None:
        problems.append(f"no Deployment {TOOLBOX} (the dead-letter tool's toolbox)")
    ours = {d["metadata"]["name"] for d in manifests.kafka_clients()}
    for deployment in manifests.of("Deployment"):
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"].get("labels", {})
        if not selector.items() <= labels.items():
            problems.append(f"Deployment/{name}: its selector does not select its own pods")
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"Deployment/{name}: mounts a service account token it never uses")
        if len(pod["containers"]) != 1:
            problems.append(f"Deployment/{name}: expected one container")
        for container in all_containers(pod):
            where = f"Deployment/{name} container {container['name']}"
            problems += _container_security(where, container, pod.get("securityContext", {}))
            if name in ours and not str(container.get("image", "")).startswith("backorder:"):
                problems.append(f"{where}: image {container.get('image')!r} is not the backorder image")
    for deployment in manifests.ours():
        name = deployment["metadata"]["name"]
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            where = f"Deployment/{name} container {container['name']}"
            if container.get("command") != ["python", "-m", f"services.{name}"]:
                problems.append(
                    f"{where}: command {container.get('command')} is not python -m services.{name}"
                )
            ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
            if ports.get("http") != HTTP_PORT:
                problems.append(f"{where}: no port `http` = {HTTP_PORT}")
            for probe, path in PROBES.items():
                get = container.get(probe, {}).get("httpGet", {})
                if get.get("path") != path or get.get("port") not in ("http", HTTP_PORT):
                    problems.append(f"{where}: {probe} must be GET {path} on the http port, is {get or None}")
            if "httpGet" not in container.get("startupProbe", {}):
                problems.append(f"{where}: no startupProbe")
    return problems


def _container_security(where: str, container: Doc, pod_security: Doc) -> list[str]:
    """Requests and limits, and the restricted Pod Security profile (and a read-only root)."""
    problems = []
    resources = container.get("resources", {})
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in resources.get(kind, {}):
                problems.append(f"{where}: no {kind}.{resource}")
    security = container.get("securityContext", {})
    if security.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{where}: root file system not read-only")
    if security.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{where}: allowPrivilegeEscalation is not false")
    if security.get("capabilities", {}).get("drop") != ["ALL"]:
        problems.append(f"{where}: capabilities not dropped (drop: [ALL])")
    if True not in (security.get("runAsNonRoot"), pod_security.get("runAsNonRoot")):
        problems.append(f"{where}: runAsNonRoot is not set")
    if (security.get("runAsUser") or pod_security.get("runAsUser") or 0) == 0:
        problems.append(f"{where}: no non-zero runAsUser (the kubelet checks a stated uid, not the image)")
    seccomp = security.get("seccompProfile") or pod_security.get("seccompProfile") or {}
    if seccomp.get("type") != "RuntimeDefault":
        problems.append(f"{where}: seccompProfile is not RuntimeDefault")
    mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
    if "/tmp" not in mounts:
        problems.append(f"{where}: read-only root but no writable /tmp")
    return problems


def check_settings(manifests: Manifests) -> list[str]:
    """The environment each process gets: known variables only, the settings the brief fixes for a
    cluster, and accepted by the process's own settings class."""
    problems = []
    for deployment in manifests.kafka_clients():
        name = deployment["metadata"]["name"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = environment(manifests, container)
        where = f"Deployment/{name}"
        fixed = {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"}
        if name != TOOLBOX:
            fixed |= {"HTTP_HOST": "0.0.0.0", "HTTP_PORT": str(HTTP_PORT)}
        if name != CONSOLE:
            fixed |= {"TOPIC_AUTO_CREATE": "false"}
        if name in SERVICES:
            fixed |= {"SERVICE_NAME": name}
        for variable, value in fixed.items():
            if env.values.get(variable) != value:
                problems.append(f"{where}: {variable} is {env.values.get(variable)!r}, must be {value!r}")
        secret = ["KAFKA_SASL_PASSWORD"] + (["AUTH_TOKEN_SECRET"] if name != TOOLBOX else [])
        for variable in secret:
            if variable not in env.from_secret:
                problems.append(f"{where}: {variable} must come from a Secret")
        model: type[BaseSettings]
        if name in SERVICES:
            model = settings_type(name)
            names = set(env.values)  # the shared settings are theirs too
            if "DATABASE_URL" not in env.values:
                problems.append(f"{where}: DATABASE_URL must be set")
        else:
            # The console and the tool take the shared ConfigMap for its Kafka settings and ignore the
            # rest of it; what is theirs alone must be known to them.
            model = ConsoleSettings if name == CONSOLE else ToolSettings
            own = [
                c for c in manifests.of("ConfigMap") if c["metadata"]["name"].startswith(f"{name}-settings")
            ]
            names = {k for c in own for k in c.get("data", {})} | {
                v["name"] for v in container.get("env", [])
            }
        unknown = {n for n in names - env_names(model) - COMPOSITION_VARIABLES if not n.startswith("OTEL_")}
        if unknown:
            problems.append(f"{where}: variables no setting reads (a typo?): {sorted(unknown)}")
        try:
            load_settings(model, env.values)
        except Exception as e:
            problems.append(f"{where}: {model.__name__} refuses its environment: {e}")
        for variable in names & env.literal:
            if SECRET_LIKE.search(variable):
                problems.append(f"{where}: {variable} is written in the manifests, not taken from a Secret")
    return problems


def check_companions(manifests: Manifests) -> list[str]:
    """Every process has a Service (port 8000 -> http), a PodDisruptionBudget and a ServiceMonitor
    scraping /metrics, each selecting its pods."""
    problems = []
    for deployment in manifests.ours():
        name = deployment["metadata"]["name"]
        pod_labels = deployment["spec"]["template"]["metadata"].get("labels", {})
        service = manifests.get("Service", name)
        if service is None:
            problems.append(f"Deployment/{name} has no Service")
        else:
            selector = service["spec"].get("selector") or {}
            if not selector or not selector.items() <= pod_labels.items():
                problems.append(f"Service/{name} does not select the pods of Deployment/{name}")
            ports = [
                p for p in service["spec"].get("ports", []) if p.get("targetPort") in ("http", HTTP_PORT)
            ]
            if not ports or ports[0].get("port") != HTTP_PORT or ports[0].get("name") != "http":
                problems.append(f"Service/{name}: needs port http {HTTP_PORT} -> the container's http")
        pdbs = [
            p
            for p in manifests.of("PodDisruptionBudget")
            if (p["spec"].get("selector", {}).get("matchLabels") or {"": ""}).items() <= pod_labels.items()
        ]
        if not pdbs:
            problems.append(f"Deployment/{name} has no PodDisruptionBudget")
        monitors = [
            m
            for m in manifests.of("ServiceMonitor")
            if service is not None
            and m["spec"]["selector"].get("matchLabels", {"": ""}).items()
            <= service["metadata"].get("labels", {}).items()
        ]
        if not monitors:
            problems.append(f"Deployment/{name} has no ServiceMonitor selecting Service/{name}")
        for monitor in monitors:
            endpoints = monitor["spec"].get("endpoints", [])
            if not any(e.get("port") == "http" and e.get("path") == "/metrics" for e in endpoints):
                problems.append(f"ServiceMonitor/{monitor['metadata']['name']}: must scrape http /metrics")
    return problems


def _partitions(manifests: Manifests) -> dict[str, int]:
    return {
        t.get("spec", {}).get("topicName") or t["metadata"]["name"]: t["spec"].get("partitions", 0)
        for t in manifests.of("KafkaTopic")
    }


def bootstrap_servers(manifests: Manifests) -> str:
    """The TLS listener of the cluster's bootstrap Service, by its fully qualified name (its certificate
    names it so too)."""
    (listener,) = [x for x in manifests.kafka["spec"]["kafka"]["listeners"] if x.get("tls")]
    return f"{manifests.kafka['metadata']['name']}-kafka-bootstrap.{NAMESPACE}.svc:{listener['port']}"


def check_kafka(manifests: Manifests) -> list[str]:
    """KRaft with enough nodes; TLS + SCRAM-SHA-512 on every listener; ACLs enforced; no auto-creation."""
    problems = []
    kafka = manifests.kafka
    spec = kafka["spec"]["kafka"]
    for listener in spec["listeners"]:
        if (
            listener.get("authentication", {}).get("type") != "scram-sha-512"
            or listener.get("tls") is not True
        ):
            problems.append(
                f"Kafka listener {listener['name']}: must be TLS with scram-sha-512 authentication"
            )
    if spec.get("authorization", {}).get("type") != "simple":
        problems.append("Kafka: authorization must be simple (ACLs enforced)")
    if spec.get("authorization", {}).get("superUsers"):
        problems.append("Kafka: no super users (every identity is a KafkaUser with ACLs)")
    config = spec.get("config", {})
    expected = {
        "auto.create.topics.enable": "false",
        "min.insync.replicas": "2",
        "default.replication.factor": "3",
        "offsets.topic.replication.factor": "3",
    }
    for key, value in expected.items():
        if str(config.get(key)).lower() != value:
            problems.append(f"Kafka config {key} is {config.get(key)!r}, must be {value}")
    pools = manifests.of("KafkaNodePool")
    for pool in pools:
        if pool["metadata"].get("labels", {}).get("strimzi.io/cluster") != kafka["metadata"]["name"]:
            problems.append(f"KafkaNodePool/{pool['metadata']['name']} is not labelled for the cluster")
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    controllers = sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"])
    if brokers < 3:
        problems.append(f"Kafka: {brokers} brokers cannot hold 3 replicas")
    if controllers < 3 or controllers % 2 == 0:
        problems.append(f"Kafka: {controllers} controllers (need an odd number, at least 3)")
    for doc in (*manifests.of("KafkaTopic"), *manifests.of("KafkaUser")):
        if doc["metadata"].get("labels", {}).get("strimzi.io/cluster") != kafka["metadata"]["name"]:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']} is not labelled strimzi.io/cluster")
    return problems


def check_topics(manifests: Manifests) -> list[str]:
    """Each topic of the contract, its dead-letter topic and the dead-letter tool's audit topic:
    partitions stated, 3 replicas, min.insync.replicas 2."""
    problems = []
    prefix = manifests.shared_setting("TOPIC_PREFIX")
    expected = {t.qualified(prefix) for t in Topic} | {dead_letter_topic(t.qualified(prefix)) for t in Topic}
    expected.add(prefix + AUDIT_TOPIC)
    partitions = _partitions(manifests)
    if set(partitions) != expected:
        problems.append(
            f"KafkaTopics: missing {sorted(expected - set(partitions))}, "
            f"unexpected {sorted(set(partitions) - expected)}"
        )
    for topic in manifests.of("KafkaTopic"):
        name = topic["metadata"]["name"]
        spec = topic["spec"]
        if not isinstance(spec.get("partitions"), int) or spec["partitions"] < 1:
            problems.append(f"KafkaTopic/{name}: partitions must be stated")
        if spec.get("replicas") != 3:
            problems.append(f"KafkaTopic/{name}: replicas {spec.get('replicas')}, must be 3")
        if str(spec.get("config", {}).get("min.insync.replicas")) != "2":
            problems.append(f"KafkaTopic/{name}: min.insync.replicas must be 2")
    return problems


def check_scaling(manifests: Manifests) -> list[str]:
    """A ScaledObject per consumer on its group's lag; maxReplicaCount = the partitions of what it
    consumes (one instance per partition); the Deployment leaves the count to it."""
    problems = []
    prefix = manifests.shared_setting("TOPIC_PREFIX")
    partitions = _partitions(manifests)
    objects = {s["spec"]["scaleTargetRef"]["name"]: s for s in manifests.of("ScaledObject")}
    for service in SERVICES:
        consumed = consumed_topics(service)
        if not consumed or service in SINGLETONS:
            continue
        scaled = objects.pop(service, None)
        if scaled is None:
            problems.append(f"consumer {service} has no ScaledObject")
            continue
        spec = scaled["spec"]
        counts = [partitions.get(t.qualified(prefix), 0) for t in consumed]
        maximum = spec.get("maxReplicaCount")
        if maximum != min(counts):
            problems.append(
                f"ScaledObject/{service}: maxReplicaCount {maximum} must equal the partitions of the topics "
                f"it consumes ({dict(zip(consumed, counts, strict=True))})"
            )
        for topic, count in zip(consumed, counts, strict=True):
            if maximum is not None and count < maximum:
                problems.append(
                    f"topic {topic.qualified(prefix)} has {count} partitions "
                    f"< {service}'s {maximum} instances"
                )
        minimum = spec.get("minReplicaCount", 0)
        if minimum < (2 if manifests.production else 1):
            problems.append(f"ScaledObject/{service}: minReplicaCount {minimum} is too low")
        if "replicas" in manifests.deployment(service)["spec"]:
            problems.append(f"Deployment/{service} sets replicas, which KEDA's ScaledObject owns")
        triggers = [t for t in spec["triggers"] if t["type"] == "kafka"]
        if len(triggers) != 1:
            problems.append(f"ScaledObject/{service}: expected one kafka trigger")
            continue
        metadata = triggers[0]["metadata"]
        if metadata.get("consumerGroup") != f"{prefix}{service}":
            problems.append(f"ScaledObject/{service}: consumerGroup must be {prefix}{service}")
        if metadata.get("bootstrapServers") != bootstrap_servers(manifests):
            # KEDA asks from its own namespace: a short name would not resolve there.
            problems.append(
                f"ScaledObject/{service}: bootstrapServers must be {bootstrap_servers(manifests)}"
            )
        if metadata.get("sasl") != "scram_sha512" or metadata.get("tls") != "enable":
            problems.append(f"ScaledObject/{service}: must use SASL scram_sha512 over TLS")
        if metadata.get("allowIdleConsumers", "false") != "false":
            problems.append(f"ScaledObject/{service}: idle consumers beyond the partitions make no sense")
        auth = triggers[0].get("authenticationRef", {}).get("name")
        if manifests.get("TriggerAuthentication", auth or "") is None:
            problems.append(f"ScaledObject/{service}: TriggerAuthentication {auth!r} does not exist")
    for name in objects:
        if name in SINGLETONS:
            problems.append(f"ScaledObject for {name}, a singleton: it must never run twice")
        else:
            problems.append(f"ScaledObject for {name}, which consumes nothing")
    console = manifests.deployment(CONSOLE)
    if console["spec"].get("replicas", 1) < (2 if manifests.production else 1):
        problems.append("Deployment/console: too few replicas")
    return problems


def check_singletons(manifests: Manifests) -> list[str]:
    """A singleton runs one pod, never two at once: replicas 1, Recreate (the old pod ends before the new
    one starts), no ScaledObject (check_scaling); the folders it keeps are on its PersistentVolumeClaim."""
    problems = []
    claims = manifests.names("PersistentVolumeClaim")
    for service in SINGLETONS:
        deployment = manifests.deployment(service)
        spec = deployment["spec"]
        where = f"Deployment/{service}"
        if spec.get("replicas") != 1:
            problems.append(f"{where}: a singleton must state replicas 1, has {spec.get('replicas')}")
        if spec.get("strategy", {}).get("type") != "Recreate":
            problems.append(f"{where}: a singleton must use strategy Recreate (a rollout would run two)")
        pod = spec["template"]["spec"]
        (container,) = pod["containers"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        env = environment(manifests, container)
        for variable in FOLDER_SETTINGS.get(service, ()):
            folder = env.values.get(variable, "")
            # The deepest mount holding the folder is where its files go.
            holding = [
                m
                for m in container.get("volumeMounts", [])
                if folder.startswith(m["mountPath"].rstrip("/") + "/")
            ]
            mount = max(holding, key=lambda m: len(m["mountPath"]), default=None)
            volume = volumes.get(mount["name"], {}) if mount else {}
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if mount is None or claim is None:
                problems.append(f"{where}: {variable}={folder!r} is not on a PersistentVolumeClaim")
            elif mount.get("readOnly"):
                problems.append(f"{where}: {variable} is on a read-only mount")
            elif claim not in claims:
                problems.append(
                    f"{where}: {variable} is on PersistentVolumeClaim {claim}, which does not exist"
                )
    for claim in manifests.of("PersistentVolumeClaim"):
        if claim["spec"].get("accessModes") != ["ReadWriteOnce"]:
            # Two pods writing one folder is what the singleton avoids; the volume need not allow it.
            problems.append(f"PersistentVolumeClaim/{claim['metadata']['name']}: must be ReadWriteOnce")
    return problems


def _acls(user: Doc) -> list[tuple[str, str, str, set[str]]]:
    """(resource type, name, pattern type, operations) of a KafkaUser's allow rules."""
    rules = []
    for acl in user["spec"].get("authorization", {}).get("acls", []):
        if acl.get("type", "allow") != "allow":
            continue
        resource = acl["resource"]
        rules.append(
            (
                resource["type"],
                resource.get("name", ""),
                resource.get("patternType", "literal"),
                set(acl["operations"]),
            )
        )
    return rules


def check_acls(manifests: Manifests) -> list[str]:
    """SCRAM users; each may write only its own topics; each service may do what its code needs."""
    problems = []
    prefix = manifests.shared_setting("TOPIC_PREFIX")
    users = {u["metadata"]["name"]: u for u in manifests.of("KafkaUser")}
    writes = other_writers(prefix)
    deletes = deleters(prefix)
    for service in SERVICES:
        (container,) = manifests.deployment(service)["spec"]["template"]["spec"]["containers"]
        user = environment(manifests, container).values.get("KAFKA_SASL_USERNAME", "")
        consumed = [t.qualified(prefix) for t in consumed_topics(service)]
        own = {t.qualified(prefix) for t in OWN_TOPICS[service]}
        writes[user] = own | {dead_letter_topic(t) for t in consumed}
        if user not in users:
            problems.append(f"Deployment/{service}: KAFKA_SASL_USERNAME {user!r} is no KafkaUser")
            continue
        rules = _acls(users[user])
        literal = {(kind, name): ops for kind, name, pattern, ops in rules if pattern == "literal"}
        for topic in consumed:
            if not {"Read", "Describe"} <= literal.get(("topic", topic), set()):
                problems.append(f"KafkaUser/{user}: cannot read {topic}, which {service} consumes")
        for topic in writes[user]:
            if "Write" not in literal.get(("topic", topic), set()):
                problems.append(f"KafkaUser/{user}: cannot write {topic}")
        if "Read" not in literal.get(("group", f"{prefix}{service}"), set()):
            problems.append(f"KafkaUser/{user}: cannot join its consumer group {prefix}{service}")
    for name, user in users.items():
        if user["spec"].get("authentication", {}).get("type") != "scram-sha-512":
            problems.append(f"KafkaUser/{name}: authentication must be scram-sha-512")
        if user["spec"].get("authorization", {}).get("type") != "simple":
            problems.append(f"KafkaUser/{name}: needs simple authorization (its ACLs)")
        if name not in writes:
            problems.append(
                f"KafkaUser/{name}: unknown identity; state what it may write (tests/unit/deploy)"
            )
            continue
        for kind, resource, pattern, operations in _acls(user):
            where = f"KafkaUser/{name} {kind} {resource!r} ({pattern})"
            if resource in ("*", "") or kind in ("cluster", "transactionalId"):
                problems.append(f"{where}: too broad ({sorted(operations)})")
            if kind == "topic" and operations & FORBIDDEN_TOPIC_OPERATIONS:
                problems.append(
                    f"{where}: {sorted(operations & FORBIDDEN_TOPIC_OPERATIONS)} is nobody's to do"
                )
            if kind == "topic" and operations & {"Write", "Delete"} and pattern != "literal":
                problems.append(f"{where}: writes by pattern; name each topic")
            elif kind == "topic" and "Write" in operations and resource not in writes[name]:
                problems.append(f"{where}: may write a topic that is not its own")
            elif kind == "topic" and "Delete" in operations and resource not in deletes.get(name, set()):
                problems.append(f"{where}: may delete records it has no business deleting")
            if kind == "group" and pattern != "literal" and not resource.startswith(prefix):
                problems.append(f"{where}: group pattern outside {prefix}")
    return problems


def check_database(manifests: Manifests) -> list[str]:
    """One database and an owner + a runtime role per service; each Deployment connects as its runtime
    role (migrations as the owner) over verified TLS; max_connections covers every instance."""
    problems = []
    cluster = manifests.postgres
    cluster_name = cluster["metadata"]["name"]
    roles = {r["name"]: r for r in cluster["spec"].get("managed", {}).get("roles", [])}
    databases = {d["spec"]["name"]: d for d in manifests.of("Database")}
    hba = cluster["spec"].get("postgresql", {}).get("pg_hba", [])
    secrets = {s["metadata"]["name"]: s for s in generated_secrets()}
    pool = int(manifests.shared_setting("DB_POOL_SIZE"))
    instances = 0
    for service in SERVICES:
        owner, runtime, database = f"backorder_{service}", f"backorder_{service}_app", f"backorder_{service}"
        found = databases.get(database)
        if found is None or found["spec"].get("owner") != owner:
            problems.append(f"database {database} owned by {owner}: missing")
        elif found["spec"]["cluster"]["name"] != cluster_name:
            problems.append(f"Database {database} is not in Cluster {cluster_name}")
        for role in (owner, runtime):
            spec = roles.get(role)
            if spec is None or not spec.get("login") or "passwordSecret" not in spec:
                problems.append(f"managed role {role}: missing, without login or without a password Secret")
            elif spec.get("superuser") or spec.get("createrole") or spec.get("createdb"):
                problems.append(f"managed role {role}: more privileges than it needs")
            elif (secrets.get(spec["passwordSecret"]["name"], {}).get("stringData", {})).get(
                "username"
            ) != role:
                problems.append(
                    f"managed role {role}: its Secret is not made by generate_secrets.py for this role"
                )
        rule = f"hostssl {database} {owner},{runtime} all scram-sha-256"
        if rule not in hba:
            problems.append(f"pg_hba: missing {rule!r}")
        deployment = manifests.deployment(service)
        connections = [
            (deployment, deployment["spec"]["template"]["spec"]["containers"][0], "DATABASE_URL", runtime)
        ]
        if (migrator := migrate_container(deployment)) is not None:  # check_migrations reports its absence
            connections.append((deployment, migrator, "DATABASE_MIGRATION_URL", owner))
        # The toolbox's `parked` acts as the service would (POST /outbox/parked/...): as its runtime role.
        toolbox = manifests.get("Deployment", TOOLBOX) if service in toolbox_databases() else None
        if toolbox is not None:
            toolbox_container = toolbox["spec"]["template"]["spec"]["containers"][0]
            connections.append((toolbox, toolbox_container, f"{service.upper()}_DATABASE_URL", runtime))
        for holder, container, variable, role in connections:
            where = f"Deployment/{holder['metadata']['name']} container {container['name']} {variable}"
            problems += _connection_problems(manifests, where, holder, container, variable, role, database)
        scaled = next(
            (s for s in manifests.of("ScaledObject") if s["spec"]["scaleTargetRef"]["name"] == service), None
        )
        most = (
            scaled["spec"]["maxReplicaCount"]
            if scaled
            else manifests.deployment(service)["spec"].get("replicas", 1)
        )
        instances += most * (pool + CONNECTIONS_BESIDE_POOL)
    if hba and hba[-1] != "host all all all reject":
        problems.append("pg_hba: must end refusing everything the rules above do not allow")
    max_connections = int(
        cluster["spec"].get("postgresql", {}).get("parameters", {}).get("max_connections", 100)
    )
    if instances + CONNECTION_RESERVE > max_connections:
        problems.append(
            f"max_connections {max_connections} < {instances} (every instance KEDA may start) "
            f"+ {CONNECTION_RESERVE}"
        )
    if manifests.production and cluster["spec"]["instances"] < 3:
        problems.append("Cluster: fewer than 3 PostgreSQL instances")
    return problems


def _connection_problems(
    manifests: Manifests,
    where: str,
    deployment: Doc,
    container: Doc,
    variable: str,
    role: str,
    database: str,
) -> list[str]:
    """The URL in the container's `variable` connects as `role` to `database` on the primary, with that
    role's password (a Secret generate_secrets.py makes) and TLS verified against CloudNativePG's CA."""
    problems = []
    pod = deployment["spec"]["template"]["spec"]
    env = environment(manifests, container)
    cluster = manifests.postgres["metadata"]["name"]
    url = urlsplit(env.values.get(variable, ""))
    query = parse_qs(url.query)
    if url.scheme != "postgresql" or url.username != role or url.path != f"/{database}":
        problems.append(f"{where}: must connect as {role} to {database}")
    if url.hostname != f"{cluster}-rw":
        problems.append(f"{where}: must reach the primary, {cluster}-rw (is {url.hostname})")
    if url.port != 5432:
        problems.append(f"{where}: port {url.port}")
    secrets = {s["metadata"]["name"]: s for s in generated_secrets()}
    password = env.secret_of(url.password or "")
    if password is None or secrets.get(password[0], {}).get("stringData", {}).get("username") != role:
        problems.append(f"{where}: the password must be the Secret of role {role}")
    if query.get("sslmode") != ["verify-full"]:
        problems.append(f"{where}: sslmode must be verify-full")
    if mounted_file(container, pod, query.get("sslrootcert", [""])[0]) != (f"{cluster}-ca", "ca.crt"):
        problems.append(f"{where}: sslrootcert must be CloudNativePG's server CA ({cluster}-ca)")
    return problems


def _operator_secrets(manifests: Manifests) -> dict[str, set[str]]:
    """Secrets the operators make, with their keys: Strimzi a Secret per KafkaUser and the cluster CA's
    certificate, CloudNativePG its server CA."""
    made = {u["metadata"]["name"]: {"password", "sasl.jaas.config"} for u in manifests.of("KafkaUser")}
    made[f"{manifests.kafka['metadata']['name']}-cluster-ca-cert"] = {"ca.crt", "ca.p12", "ca.password"}
    made[f"{manifests.postgres['metadata']['name']}-ca"] = {"ca.crt", "ca.key"}
    return made


def _secret_references(manifests: Manifests) -> Iterator[tuple[str, str, str | None, bool]]:
    """(who, Secret, key or None for the whole Secret, optional) for every Secret the manifests use."""
    for deployment in manifests.of("Deployment"):
        who = f"Deployment/{deployment['metadata']['name']}"
        pod = deployment["spec"]["template"]["spec"]
        for container in all_containers(pod):
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    yield who, source["secretRef"]["name"], None, source["secretRef"].get("optional", False)
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    yield who, ref["name"], ref["key"], ref.get("optional", False)
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                items = volume["secret"].get("items") or [{"key": None}]
                for item in items:
                    yield (
                        who,
                        volume["secret"]["secretName"],
                        item["key"],
                        volume["secret"].get("optional", False),
                    )
    cluster = manifests.postgres
    for role in cluster["spec"].get("managed", {}).get("roles", []):
        if "passwordSecret" in role:
            yield f"Cluster role {role['name']}", role["passwordSecret"]["name"], "password", False
    initdb = cluster["spec"].get("bootstrap", {}).get("initdb", {})
    if "secret" in initdb:
        yield "Cluster bootstrap", initdb["secret"]["name"], "password", False
    for auth in manifests.of("TriggerAuthentication"):
        for ref in auth["spec"].get("secretTargetRef", []):
            yield f"TriggerAuthentication/{auth['metadata']['name']}", ref["name"], ref["key"], False


def check_references(manifests: Manifests) -> list[str]:
    """Every Secret used is made by generate_secrets.py or an operator (with that key); every ConfigMap
    used exists."""
    problems = []
    available = _operator_secrets(manifests)
    for secret in generated_secrets():
        available[secret["metadata"]["name"]] = set(secret.get("stringData", {}))
    for who, name, key, optional in _secret_references(manifests):
        if name not in available:
            if not optional:
                problems.append(
                    f"{who}: Secret {name} is made by nobody (generate_secrets.py or an operator)"
                )
        elif key is not None and key not in available[name]:
            problems.append(f"{who}: Secret {name} has no key {key} (it has {sorted(available[name])})")
    configmaps = {c["metadata"]["name"]: c.get("data", {}) for c in manifests.of("ConfigMap")}
    for deployment in manifests.of("Deployment"):
        for container in all_containers(deployment["spec"]["template"]["spec"]):
            for source in container.get("envFrom", []):
                name = source.get("configMapRef", {}).get("name")
                if name is not None and name not in configmaps:
                    problems.append(f"Deployment/{deployment['metadata']['name']}: no ConfigMap {name}")
    for auth in manifests.of("TriggerAuthentication"):
        for ref in auth["spec"].get("configMapTargetRef", []):
            if ref["key"] not in configmaps.get(ref["name"], {}):
                problems.append(f"TriggerAuthentication: no ConfigMap {ref['name']} with key {ref['key']}")
        spec = auth["spec"]
        parameters = {
            r["parameter"]: r for r in (*spec.get("secretTargetRef", []), *spec.get("configMapTargetRef", []))
        }
        username = configmaps.get(parameters.get("username", {}).get("name", ""), {}).get("username")
        if username not in manifests.names("KafkaUser"):
            problems.append(f"TriggerAuthentication: username {username!r} is no KafkaUser")
        elif parameters.get("password", {}).get("name") != username:
            problems.append("TriggerAuthentication: the password is not that user's Secret")
    for deployment in manifests.kafka_clients():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        pod = deployment["spec"]["template"]["spec"]
        env = environment(manifests, container)
        who = f"Deployment/{deployment['metadata']['name']}"
        user = env.values.get("KAFKA_SASL_USERNAME")
        if env.secret_of(env.values.get("KAFKA_SASL_PASSWORD", "")) != (user, "password"):
            problems.append(f"{who}: KAFKA_SASL_PASSWORD is not the password of KafkaUser {user}")
        ca = mounted_file(container, pod, env.values.get("KAFKA_SSL_CAFILE", ""))
        if ca != (f"{manifests.kafka['metadata']['name']}-cluster-ca-cert", "ca.crt"):
            problems.append(f"{who}: KAFKA_SSL_CAFILE is not Strimzi's cluster CA certificate (is {ca})")
        if env.values.get("KAFKA_BOOTSTRAP_SERVERS") != bootstrap_servers(manifests):
            problems.append(f"{who}: KAFKA_BOOTSTRAP_SERVERS must be {bootstrap_servers(manifests)}")
    console = environment(
        manifests, manifests.deployment(CONSOLE)["spec"]["template"]["spec"]["containers"][0]
    )
    for service in console_sources():
        url = urlsplit(console.values.get(f"CONSOLE_{service.upper()}_URL", ""))
        if url.hostname not in manifests.names("Service") or url.port != HTTP_PORT or url.hostname != service:
            problems.append(
                f"console: CONSOLE_{service.upper()}_URL does not reach Service/{service}:{HTTP_PORT}"
            )
    return problems


def check_migrations(manifests: Manifests) -> list[str]:
    """The owner's password (which may disable the event store's trigger and rewrite history) is in no
    long-running container: each service migrates in an initContainer `migrate` of the service's image
    (`python -m services.<name> migrate`, DATABASE_MIGRATION_URL and no other secret), and the service's
    container runs as the runtime role only, verifying at start that nothing is pending."""
    problems = []
    owners = owner_secrets()
    for deployment in manifests.of("Deployment"):
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        for container in pod["containers"]:
            where = f"Deployment/{name} container {container['name']}"
            held = _container_secrets(manifests, container, pod) & set(owners)
            if held:
                problems.append(f"{where}: holds the owner's password ({sorted(held)}); only `migrate` may")
            if "DATABASE_MIGRATION_URL" in environment(manifests, container).values:
                problems.append(
                    f"{where}: has DATABASE_MIGRATION_URL (the owner); migrate in an initContainer"
                )
        if name not in SERVICES:
            if pod.get("initContainers"):
                problems.append(f"Deployment/{name}: initContainers only migrate the services")
            continue
        migrator = migrate_container(deployment)
        if migrator is None or len(pod.get("initContainers", [])) != 1:
            problems.append(f"Deployment/{name}: needs exactly one initContainer {MIGRATE}")
            continue
        where = f"Deployment/{name} initContainer {MIGRATE}"
        if migrator.get("image") != pod["containers"][0].get("image"):
            problems.append(
                f"{where}: image {migrator.get('image')!r} is not the same image as the service's"
            )
        if migrator.get("command") != ["python", "-m", f"services.{name}", MIGRATE]:
            problems.append(
                f"{where}: command {migrator.get('command')} is not python -m services.{name} migrate"
            )
        own = f"backorder-db-{name}-owner"
        if owners.get(own) != f"backorder_{name}":
            problems.append(f"{where}: generate_secrets.py makes no {own} for backorder_{name}")
        extra = _container_secrets(manifests, migrator, pod) - {
            own,
            f"{manifests.postgres['metadata']['name']}-ca",
        }
        if extra:
            problems.append(
                f"{where}: needs only the owner's password and the server CA, has {sorted(extra)}"
            )
        env = environment(manifests, migrator)
        unknown = (
            {v["name"] for v in migrator.get("env", [])}
            - env_names(MigrationSettings)
            - COMPOSITION_VARIABLES
        )
        if unknown:
            problems.append(f"{where}: variables no setting reads (a typo?): {sorted(unknown)}")
        try:
            settings = load_settings(MigrationSettings, env.values)
        except Exception as e:
            problems.append(f"{where}: MigrationSettings refuses its environment: {e}")
        else:
            assert isinstance(settings, MigrationSettings)
            if settings.database_migration_url is None:
                problems.append(f"{where}: DATABASE_MIGRATION_URL is not set")
    return problems


def check_no_inline_secrets(manifests: Manifests) -> list[str]:
    """No Secret objects in the manifests (their values would be in the repository), no secret-looking
    key or credential in a ConfigMap."""
    problems = []
    for doc in manifests.of("Secret"):
        problems.append(f"Secret/{doc['metadata']['name']} is written in the manifests")
    for config in manifests.of("ConfigMap"):
        for key, value in config.get("data", {}).items():
            if SECRET_LIKE.search(key):
                problems.append(f"ConfigMap/{config['metadata']['name']}: {key} looks like a secret")
            if URL_WITH_PASSWORD.search(str(value)):
                problems.append(f"ConfigMap/{config['metadata']['name']}: {key} holds a URL with a password")
    return problems


CHECKS: tuple[Check, ...] = (
    check_namespace,
    check_deployments,
    check_settings,
    check_companions,
    check_kafka,
    check_topics,
    check_scaling,
    check_singletons,
    check_acls,
    check_database,
    check_migrations,
    check_references,
    check_no_inline_secrets,
)


def all_problems(manifests: Manifests, checks: Iterable[Check] = CHECKS) -> list[str]:
    return [problem for check in checks for problem in check(manifests)]
