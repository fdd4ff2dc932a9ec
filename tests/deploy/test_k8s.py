"""deploy/k8s/: YAML, kinds, the Kubernetes schemas, and the settings and probes the app really has.

The core objects are checked against Kubernetes v1.37.0's strict JSON schemas (committed, see
tests/data/schemas/README.md); the KEDA objects by their essential fields.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import yaml

from pivot_worker.settings import Settings

from .conftest import DEPLOY, SCHEMAS, listen_port, load_json

KINDS = {
    "configmap.yaml": [("v1", "ConfigMap")],
    "secret.yaml": [("v1", "Secret"), ("v1", "Secret")],
    "worker.yaml": [("apps/v1", "Deployment")],
    "collector.yaml": [("apps/v1", "Deployment"), ("v1", "Service")],
    "keda.yaml": [("keda.sh/v1alpha1", "TriggerAuthentication"), ("keda.sh/v1alpha1", "ScaledObject")],
}


def documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for name in sorted(KINDS):
        docs.extend(d for d in yaml.safe_load_all((DEPLOY / "k8s" / name).read_text()) if d)
    return docs


def find(kind: str, name: str) -> dict[str, Any]:
    return next(d for d in documents() if d["kind"] == kind and d["metadata"]["name"] == name)


def container(deployment: str) -> dict[str, Any]:
    containers = find("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def test_every_manifest_file_is_listed() -> None:
    assert {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} == set(KINDS)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_kinds_and_api_versions(name: str) -> None:
    docs = [d for d in yaml.safe_load_all((DEPLOY / "k8s" / name).read_text()) if d]
    assert [(d["apiVersion"], d["kind"]) for d in docs] == KINDS[name]


def core_objects() -> list[dict[str, Any]]:
    return [d for d in documents() if not d["apiVersion"].startswith("keda.sh/")]


@pytest.mark.parametrize("obj", core_objects(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_core_objects_pass_the_kubernetes_schemas(obj: dict[str, Any]) -> None:
    bundle = load_json(SCHEMAS / "kubernetes-v1.37.0-strict.json")
    schema = {"$defs": bundle["$defs"], **bundle["kinds"][f"{obj['apiVersion']} {obj['kind']}"]}
    validator = jsonschema.Draft202012Validator(schema)
    assert [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(obj)] == []
    broken = {**obj, "spec": {"no_such_field": 1}} if "spec" in obj else {**obj, "data": {"k": 1}}
    assert list(validator.iter_errors(broken))  # the schema is strict enough to notice


def config() -> dict[str, str]:
    data: dict[str, str] = find("ConfigMap", "pivot-worker-config")["data"]
    return data


def test_config_map_and_secret_hold_only_real_settings() -> None:
    names = set(Settings.env_names())
    assert set(config()) <= names
    assert set(find("Secret", "pivot-worker-secrets")["stringData"]) <= names
    # and every value parses as the settings would read it
    Settings.from_env({**config(), **find("Secret", "pivot-worker-secrets")["stringData"]})


@pytest.mark.parametrize("deployment", ["pivot-worker", "pivot-collector"])
def test_env_comes_from_the_config_map_and_the_secret(deployment: str) -> None:
    spec = container(deployment)
    refs = [next(iter(e.values()))["name"] for e in spec["envFrom"]]
    assert refs == ["pivot-worker-config", "pivot-worker-secrets"]
    assert {e["name"] for e in spec.get("env", [])} <= set(Settings.env_names())


@pytest.mark.parametrize("deployment", ["pivot-worker", "pivot-collector"])
def test_non_root(deployment: str) -> None:
    pod = find("Deployment", deployment)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    spec = container(deployment)
    assert spec["securityContext"]["allowPrivilegeEscalation"] is False
    assert spec["resources"]["requests"] and spec["resources"]["limits"]


def port_number(spec: dict[str, Any], port: str | int) -> int:
    if isinstance(port, int):
        return port
    return int(next(p["containerPort"] for p in spec["ports"] if p["name"] == port))


def test_worker_probes_match_the_metrics_listener() -> None:
    spec = container("pivot-worker")
    assert spec["args"] == ["run", "--no-collector"]
    port = listen_port(config()["PIVOT_METRICS_LISTEN"])
    assert [p["containerPort"] for p in spec["ports"]] == [port]
    assert spec["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert spec["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert port_number(spec, spec[probe]["httpGet"]["port"]) == port
    grace = find("Deployment", "pivot-worker")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= float(config()["PIVOT_SHUTDOWN_GRACE_S"]) + 4


def test_collector_probes_and_service_match_the_api_listener() -> None:
    spec = container("pivot-collector")
    assert [*spec["command"], *spec["args"]] == ["pivot-collector", "run"]
    port = listen_port(config()["PIVOT_API_LISTEN"])
    assert [p["containerPort"] for p in spec["ports"]] == [port]
    for probe in ("livenessProbe", "readinessProbe"):
        assert spec[probe]["httpGet"]["path"] == "/healthz"
        assert port_number(spec, spec[probe]["httpGet"]["port"]) == port
    service = find("Service", "pivot-collector")["spec"]
    labels = find("Deployment", "pivot-collector")["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()
    assert port_number(spec, service["ports"][0]["targetPort"]) == port
    tokens = next(e["value"] for e in spec["env"] if e["name"] == "PIVOT_API_TOKENS_FILE")
    mount = next(m for m in spec["volumeMounts"] if m["name"] == "api-tokens")
    assert tokens.startswith(mount["mountPath"] + "/")
    secret = find("Secret", "pivot-api-tokens")["stringData"]
    assert tokens.rsplit("/", 1)[1] in secret


def test_keda_scales_the_workers_on_the_work_queue() -> None:
    scaled = find("ScaledObject", "pivot-worker")["spec"]
    assert scaled["scaleTargetRef"]["name"] == find("Deployment", "pivot-worker")["metadata"]["name"]
    assert scaled["minReplicaCount"] >= 1
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["mode"] == "QueueLength"
    assert trigger["metadata"]["queueName"] == config()["PIVOT_QUEUE"] == Settings().queue
    auth = find("TriggerAuthentication", trigger["authenticationRef"]["name"])["spec"]["secretTargetRef"]
    (host,) = auth
    assert host["parameter"] == "host"
    assert host["key"] in find("Secret", host["name"])["stringData"]
