"""``shipyard export k8s``: Kubernetes manifests for an endpoint served by the exported image.

One file per object, so ``kubectl apply -f DIR`` applies them all: ``configmap.yaml`` (the
serve config), ``deployment.yaml`` (probes on the Open Inference Protocol's health routes,
Prometheus scrape annotations, resources, the config and API keys mounted, non-root with a
read-only root filesystem), ``service.yaml``, ``hpa.yaml`` (CPU) and ``pdb.yaml``. API keys
come from a Secret that the manifests only name: no secret value is ever written.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard._version import __version__
from shipyard.export.common import (
    HOME,
    LIVE,
    METRICS,
    PORT,
    READY,
    UID,
    ExportError,
    ExportPlan,
    docker_command,
    write_manifests,
)
from shipyard.export.docker import serve_yaml

CONFIG_DIR = "/etc/shipyard/config"
KEYS_DIR = "/etc/shipyard/api-keys"
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|Mi|Gi|Ki|M|G|K)?$")


@dataclass(frozen=True)
class Resources:
    """A container's requests and limits (Kubernetes quantities)."""

    cpu_request: str = "500m"
    cpu_limit: str = "2"
    memory_request: str = "512Mi"
    memory_limit: str = "2Gi"

    def __post_init__(self) -> None:
        for name in ("cpu_request", "cpu_limit", "memory_request", "memory_limit"):
            if not _QUANTITY.match(getattr(self, name)):
                raise ExportError(f"{name.replace('_', ' ')} {getattr(self, name)!r} is not a "
                                  "Kubernetes quantity (e.g. 500m, 2, 512Mi, 2Gi)")

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {"requests": {"cpu": self.cpu_request, "memory": self.memory_request},
                "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit}}

    @property
    def threads(self) -> int:
        """ONNX Runtime threads for the CPU limit: whole cores, at least one."""
        match = _QUANTITY.match(self.cpu_limit)
        assert match is not None  # checked in __post_init__
        cores = float(match.group(1)) / (1000 if match.group(2) == "m" else 1)
        return max(1, int(cores))


@dataclass(frozen=True)
class Scaling:
    """Replicas the HorizontalPodAutoscaler keeps between, and its CPU target (%)."""

    min_replicas: int = 2
    max_replicas: int = 10
    cpu_target: int = 70

    def __post_init__(self) -> None:
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ExportError("replicas: 1 <= min <= max")
        if not 1 <= self.cpu_target <= 100:
            raise ExportError("the CPU target is a percentage of the request, 1 to 100")


def k8s_name(endpoint: str) -> str:
    """An endpoint name as a Kubernetes object name (DNS-1123 label: lower case, digits,
    '-', at most 63 characters)."""
    name = re.sub(r"[^a-z0-9-]+", "-", endpoint.lower()).strip("-")[:63].strip("-")
    if not name:
        raise ExportError(f"cannot make a Kubernetes name of endpoint {endpoint!r}; pass "
                          "--name")
    return name


def labels(plan: ExportPlan, name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "shipyard", "app.kubernetes.io/instance": name,
            "app.kubernetes.io/version": f"{plan.primary.model}-{plan.primary.version}",
            "app.kubernetes.io/managed-by": "shipyard-export"}


def selector(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "shipyard", "app.kubernetes.io/instance": name}


def probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": PORT}, "periodSeconds": period,
            "timeoutSeconds": 3, "failureThreshold": failures}


def scrape_annotations() -> dict[str, str]:
    """Where Prometheus scrapes a pod (the ``kubernetes-pods`` convention)."""
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(PORT),
            "prometheus.io/path": METRICS}


def secret_name(name: str) -> str:
    return f"{name}-api-keys"


def config_map(plan: ExportPlan, name: str, meta: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {**meta, "name": f"{name}-config"},
            "data": {"serve.yaml": serve_yaml(plan, plan.primary)}}


def deployment(plan: ExportPlan, name: str, meta: dict[str, Any], *, image: str,
               resources: Resources, api_keys: bool, config_sha: str) -> dict[str, Any]:
    env = [{"name": "SHIPYARD_HOME", "value": HOME},
           {"name": "SHIPYARD_SERVE_CONFIG", "value": f"{CONFIG_DIR}/serve.yaml"},
           {"name": "SHIPYARD_ORT_THREADS", "value": str(resources.threads)}]
    mounts = [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
              {"name": "home", "mountPath": HOME}, {"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": f"{name}-config"}},
        {"name": "home", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]
    if api_keys:
        env.append({"name": "SHIPYARD_API_KEYS_DIR", "value": KEYS_DIR})
        mounts.append({"name": "api-keys", "mountPath": KEYS_DIR, "readOnly": True})
        volumes.append({"name": "api-keys", "secret": {"secretName": secret_name(name),
                                                       "defaultMode": 0o440}})
    container = {
        "name": "shipyard", "image": image, "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "env": env, "resources": resources.to_dict(),
        "readinessProbe": probe(READY, period=5, failures=2),
        "livenessProbe": {**probe(LIVE, period=10, failures=3), "initialDelaySeconds": 10},
        "startupProbe": probe(READY, period=2, failures=90),
        "volumeMounts": mounts,
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {**meta, "name": name},
        # no replicas: the HorizontalPodAutoscaler owns the count (a re-apply keeps it)
        "spec": {
            "selector": {"matchLabels": selector(name)},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": meta["labels"], "annotations": {
                    **scrape_annotations(), "shipyard.dev/config-sha256": config_sha}},
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": UID,
                                        "runAsGroup": UID, "fsGroup": UID,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "terminationGracePeriodSeconds": 30,
                    "containers": [container], "volumes": volumes}}}}


def service(name: str, meta: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {**meta, "name": name},
            "spec": {"type": "ClusterIP", "selector": selector(name), "ports": [
                {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}}


def autoscaler(name: str, meta: dict[str, Any], scaling: Scaling) -> dict[str, Any]:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {**meta, "name": name},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": name},
                     "minReplicas": scaling.min_replicas,
                     "maxReplicas": scaling.max_replicas,
                     "metrics": [{"type": "Resource", "resource": {
                         "name": "cpu", "target": {
                             "type": "Utilization",
                             "averageUtilization": scaling.cpu_target}}}]}}


def disruption_budget(name: str, meta: dict[str, Any], scaling: Scaling) -> dict[str, Any]:
    # one replica kept through a drain; with a single one, a drain may take it (else a
    # node holding it could never be drained)
    budget = {"minAvailable": 1} if scaling.min_replicas >= 2 else {"maxUnavailable": 1}
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {**meta, "name": name},
            "spec": {**budget, "selector": {"matchLabels": selector(name)}}}


def manifests(plan: ExportPlan, *, image: str | None = None, name: str | None = None,
              namespace: str | None = None, resources: Resources | None = None,
              scaling: Scaling | None = None,
              api_keys: bool = True) -> dict[str, dict[str, Any]]:
    """File name -> object, for every manifest of the export."""
    name = k8s_name(name or plan.endpoint)
    resources, scaling = resources or Resources(), scaling or Scaling()
    meta: dict[str, Any] = {"labels": labels(plan, name)}
    if namespace:
        meta["namespace"] = k8s_name(namespace)
    config = config_map(plan, name, meta)
    sha = hashlib.sha256(config["data"]["serve.yaml"].encode()).hexdigest()
    return {
        "configmap.yaml": config,
        "deployment.yaml": deployment(plan, name, meta, image=plan.image(image),
                                      resources=resources, api_keys=api_keys,
                                      config_sha=sha),
        "service.yaml": service(name, meta),
        "hpa.yaml": autoscaler(name, meta, scaling),
        "pdb.yaml": disruption_budget(name, meta, scaling),
    }


def readme(plan: ExportPlan, docs: dict[str, dict[str, Any]], api_keys: bool) -> str:
    deploy = docs["deployment.yaml"]
    name = deploy["metadata"]["name"]
    image = deploy["spec"]["template"]["spec"]["containers"][0]["image"]
    namespace = deploy["metadata"].get("namespace")
    ns = f" -n {namespace}" if namespace else ""
    keys = (f"""
API keys come from the Secret `{secret_name(name)}` (one key per entry: its name, its
secret), mounted at `{KEYS_DIR}`; the pods do not start without it:

    kubectl{ns} create secret generic {secret_name(name)} \\
        --from-literal=client="$(openssl rand -hex 32)"
""" if api_keys else "\nNo API keys (exported with --no-api-keys): anyone reaching the "
        "Service may call it.\n")
    notes = "".join(f"- {n}\n" for n in plan.notes) or "- none: the policy is served whole\n"
    return f"""# {plan.endpoint} on Kubernetes (shipyard export {__version__})

Serves `{plan.primary.ref}` from the image `{image}`. Build and push it first:

    {docker_command(plan, image)}
{keys}
Then apply every manifest here:

    kubectl apply -f .

Probes: readiness and startup on `{READY}`, liveness on `{LIVE}`; Prometheus scrapes
`{METRICS}` on port {PORT} (pod annotations). The serve config is the ConfigMap
`{name}-config` (editing it rolls the pods only when re-exported: the pod template carries
its SHA-256).

## Notes on the policy

{notes}"""


def export_k8s(plan: ExportPlan, output: Path, *, force: bool = False,
               **options: Any) -> list[Path]:
    """Write the manifests and a README into ``output``; returns the manifest paths."""
    docs = manifests(plan, **options)
    return write_manifests(output, docs, readme(plan, docs, options.get("api_keys", True)),
                           force=force)
