"""deploy/k8s against the Kubernetes schemas (kubernetes-validate, offline) and the rules the cluster relies on."""

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.support.deploy import (
    K8S_DIR,
    ROOT,
    env_names_read_by_code,
    kustomizations,
    kustomize_references,
    load_yaml_documents,
    manifest_files,
)

# The oldest Kubernetes minor the manifests promise to work on, and the newest whose schemas
# kubernetes-validate 1.37.0 ships. Native preStop `sleep` needs 1.30 or later.
KUBERNETES_VERSIONS = ("1.33.0", kubernetes_validate.latest_version())

# Custom resources whose schemas kubernetes-validate does not ship; checked by their own tests.
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}

OVERLAYS = (K8S_DIR / "base", K8S_DIR / "overlays" / "dev", K8S_DIR / "overlays" / "prod")

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
CALLN_WORKLOADS = ("web", "gateway", "matcher", "moderation")
NATS_CLIENTS = ("gateway", "matcher", "moderation")

# Seconds a kustomize build may take; a build of these overlays takes well under one.
KUSTOMIZE_TIMEOUT_S = 60


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


@functools.cache
def all_documents() -> tuple[tuple[Path, dict[str, Any]], ...]:
    """Parse every manifest once per test run; tests read the documents and never change them."""
    return tuple((path, document) for path in manifest_files() for document in load_yaml_documents(path))


def documents_of_kind(kind: str) -> list[dict[str, Any]]:
    return [document for _, document in all_documents() if document["kind"] == kind]


def workload(name: str) -> dict[str, Any]:
    for _, document in all_documents():
        if document["kind"] in WORKLOAD_KINDS and document["metadata"]["name"] == name:
            return document
    raise AssertionError(f"no workload named {name!r} in deploy/k8s")


def pod_spec(document: dict[str, Any]) -> dict[str, Any]:
    return document["spec"]["template"]["spec"]


def container_env(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in pod_spec(document)["containers"][0].get("env", [])}


def kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def test_manifests_found() -> None:
    files = {relative(path) for path in manifest_files()}

    assert "deploy/k8s/base/gateway/deployment.yaml" in files
    assert "deploy/k8s/overlays/prod/secret.example.yaml" in files
    assert len(files) >= 20


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", manifest_files(), ids=relative)
def test_manifest_matches_kubernetes_schema(path: Path, version: str) -> None:
    for document in load_yaml_documents(path):
        if (document["apiVersion"], document["kind"]) in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            location = ".".join(str(item) for item in error.path)
            pytest.fail(f"{document['kind']}/{document['metadata']['name']}: {location}: {error.message}")


def test_schema_validation_rejects_misspelled_field() -> None:
    deployment = workload("gateway")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


@pytest.mark.parametrize("kustomization", kustomizations(), ids=relative)
def test_kustomization_files_exist(kustomization: Path) -> None:
    references = list(kustomize_references(kustomization))

    assert references, "lists nothing"
    for reference in references:
        assert reference.path.exists(), f"{reference.key} lists missing {reference.path}"
        if reference.path.is_dir():
            assert (reference.path / "kustomization.yaml").is_file(), f"{reference.path} has no kustomization.yaml"


@pytest.mark.parametrize("overlay", OVERLAYS, ids=relative)
def test_kustomize_build_matches_schema(overlay: Path, tmp_path: Path) -> None:
    command = kustomize_command()
    if command is None:
        pytest.skip("neither kustomize nor kubectl is installed; the per-file checks still ran")

    result = subprocess.run(
        [*command, str(overlay)], capture_output=True, text=True, timeout=KUSTOMIZE_TIMEOUT_S, check=False
    )
    assert result.returncode == 0, result.stderr
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(result.stdout, encoding="utf-8")

    documents = load_yaml_documents(rendered)
    kinds = {document["kind"] for document in documents}
    assert {"Deployment", "StatefulSet", "HorizontalPodAutoscaler", "Ingress", "NetworkPolicy", "ConfigMap"} <= kinds
    for document in documents:
        if (document["apiVersion"], document["kind"]) not in CUSTOM_KINDS:
            kubernetes_validate.validate(document, KUBERNETES_VERSIONS[0], strict=True)


def test_overlays_namespace_and_secrets() -> None:
    dev = load_yaml_documents(K8S_DIR / "overlays" / "dev" / "kustomization.yaml")[0]
    prod = load_yaml_documents(K8S_DIR / "overlays" / "prod" / "kustomization.yaml")[0]

    assert dev["namespace"] == "calln-dev"
    assert prod["namespace"] == "calln"
    assert [generator["name"] for generator in dev["secretGenerator"]] == ["calln-secrets"]
    # Production reads a Secret created out of band, so an apply never overwrites real values.
    assert "secretGenerator" not in prod
    assert "secret.example.yaml" not in prod["resources"]


@pytest.mark.parametrize("name", [*CALLN_WORKLOADS, "nats"])
def test_workload_is_hardened(name: str) -> None:
    spec = pod_spec(workload(name))

    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["automountServiceAccountToken"] is False
    for container in spec["containers"]:
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False, container["name"]
        assert security["readOnlyRootFilesystem"] is True, container["name"]
        assert security["capabilities"]["drop"] == ["ALL"], container["name"]
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys(), container["name"]
        assert {"cpu", "memory"} <= container["resources"]["limits"].keys(), container["name"]


def test_coturn_is_hardened() -> None:
    spec = pod_spec(workload("coturn"))
    security = spec["containers"][0]["securityContext"]

    assert spec["hostNetwork"] is True
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]


@pytest.mark.parametrize("name", CALLN_WORKLOADS)
def test_workload_probes_healthz_and_readyz(name: str) -> None:
    container = pod_spec(workload(name))["containers"][0]
    port_names = {port["name"] for port in container["ports"]}

    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["port"] in port_names
    assert container["livenessProbe"]["httpGet"]["port"] in port_names


@pytest.mark.parametrize("name", [*CALLN_WORKLOADS, "nats"])
def test_workload_spreads_across_nodes(name: str) -> None:
    document = workload(name)
    constraints = pod_spec(document)["topologySpreadConstraints"]
    pod_labels = document["spec"]["template"]["metadata"]["labels"]

    assert "kubernetes.io/hostname" in {constraint["topologyKey"] for constraint in constraints}
    for constraint in constraints:
        assert constraint["labelSelector"]["matchLabels"].items() <= pod_labels.items()


@pytest.mark.parametrize("name", CALLN_WORKLOADS)
def test_workload_env_names_are_read_by_code(name: str) -> None:
    known = env_names_read_by_code()
    config_keys = {
        line.split("=", 1)[0]
        for line in (K8S_DIR / "base" / "config.env").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    }

    assert sorted(config_keys - known) == [], "config.env sets variables no service reads"
    assert sorted(container_env(workload(name)).keys() - known) == []


def test_gateway_termination_outlasts_drain() -> None:
    document = workload("gateway")
    spec = pod_spec(document)
    container = spec["containers"][0]
    drain_s = float(container_env(document)["DRAIN_TIMEOUT_S"]["value"])
    pre_stop_s = container["lifecycle"]["preStop"]["sleep"]["seconds"]

    assert spec["terminationGracePeriodSeconds"] > pre_stop_s + drain_s
    assert document["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_gateway_autoscales_on_cpu() -> None:
    (autoscaler,) = documents_of_kind("HorizontalPodAutoscaler")

    assert autoscaler["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"}
    assert autoscaler["spec"]["minReplicas"] >= 2
    assert [metric["resource"]["name"] for metric in autoscaler["spec"]["metrics"]] == ["cpu"]


def test_disruption_budgets_select_workloads() -> None:
    budgets = {budget["metadata"]["name"]: budget for budget in documents_of_kind("PodDisruptionBudget")}

    assert {"gateway", "nats", "matcher", "web"} <= budgets.keys()
    for name, budget in budgets.items():
        pod_labels = workload(name)["spec"]["template"]["metadata"]["labels"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items(), name


def test_services_select_workload_ports() -> None:
    for service in documents_of_kind("Service"):
        name = service["metadata"]["name"].removesuffix("-headless")
        template = workload(name)["spec"]["template"]
        port_names = {port["name"] for port in template["spec"]["containers"][0]["ports"]}

        assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items(), name
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, f"{name} targets unknown port {port['targetPort']}"


def test_ingress_routes_socketio_to_gateways() -> None:
    ingresses = {ingress["metadata"]["name"]: ingress for ingress in documents_of_kind("Ingress")}
    socketio = ingresses["calln-socketio"]
    (path,) = socketio["spec"]["rules"][0]["http"]["paths"]
    annotations = socketio["metadata"]["annotations"]

    assert path["path"] == "/socket.io/"
    assert path["backend"]["service"]["name"] == "gateway"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600


def test_ingress_routes_root_to_web() -> None:
    ingresses = {ingress["metadata"]["name"]: ingress for ingress in documents_of_kind("Ingress")}
    (path,) = ingresses["calln-web"]["spec"]["rules"][0]["http"]["paths"]

    assert path["path"] == "/"
    assert path["pathType"] == "Prefix"
    assert path["backend"]["service"]["name"] == "web"


def test_only_services_reach_nats() -> None:
    policies = {policy["metadata"]["name"]: policy for policy in documents_of_kind("NetworkPolicy")}
    (rule,) = policies["allow-nats-from-services"]["spec"]["ingress"]

    assert policies["default-deny"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert rule["from"] == [{"podSelector": {"matchLabels": {"calln.io/nats-client": "true"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 4222}]
    for name in NATS_CLIENTS:
        assert workload(name)["spec"]["template"]["metadata"]["labels"]["calln.io/nats-client"] == "true", name
    assert "calln.io/nats-client" not in workload("web")["spec"]["template"]["metadata"]["labels"]


def test_admin_port_open_inside_namespace_only() -> None:
    policies = {policy["metadata"]["name"]: policy for policy in documents_of_kind("NetworkPolicy")}
    (rule,) = policies["allow-moderation-admin-in-namespace"]["spec"]["ingress"]

    # A bare podSelector matches pods of the policy's own namespace only.
    assert rule["from"] == [{"podSelector": {}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8095}]
    for name, policy in policies.items():
        for ingress in policy["spec"].get("ingress", []):
            ports = {port["port"] for port in ingress.get("ports", [])}
            if 8095 in ports:
                assert name == "allow-moderation-admin-in-namespace"


def test_secret_keys_referenced_exist() -> None:
    (example,) = load_yaml_documents(K8S_DIR / "overlays" / "prod" / "secret.example.yaml")
    dev = load_yaml_documents(K8S_DIR / "overlays" / "dev" / "kustomization.yaml")[0]
    dev_keys = {literal.split("=", 1)[0] for literal in dev["secretGenerator"][0]["literals"]}

    for name in [*CALLN_WORKLOADS, "coturn"]:
        for entry in container_env(workload(name)).values():
            reference = entry.get("valueFrom", {}).get("secretKeyRef")
            if reference is None:
                continue
            assert reference["name"] == "calln-secrets"
            assert reference["key"] in example["stringData"], reference["key"]
            assert reference.get("optional") or reference["key"] in dev_keys, reference["key"]


def test_nats_cluster_three_routed_servers() -> None:
    nats = workload("nats")
    conf = (K8S_DIR / "base" / "nats" / "nats.conf").read_text(encoding="utf-8")

    assert nats["spec"]["replicas"] == 3
    assert nats["spec"]["serviceName"] == "nats-headless"
    for index in range(3):
        assert f"nats://nats-{index}.nats-headless:6222" in conf


def test_servicemonitor_ports_exist() -> None:
    (monitor,) = documents_of_kind("ServiceMonitor")
    (expression,) = monitor["spec"]["selector"]["matchExpressions"]
    selected = [
        service
        for service in documents_of_kind("Service")
        if service["metadata"]["labels"]["app.kubernetes.io/name"] in expression["values"]
    ]
    port_names = {port["name"] for service in selected for port in service["spec"]["ports"]}

    assert expression["key"] == "app.kubernetes.io/name"
    assert {service["metadata"]["name"] for service in selected} == set(CALLN_WORKLOADS)
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in port_names
        assert endpoint["path"] == "/metrics"
