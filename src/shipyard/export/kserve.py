"""``shipyard export kserve``: a KServe ``InferenceService`` running shipyard as a custom
predictor that speaks the Open Inference Protocol (KServe V2).

KServe reads a custom predictor's protocol from the ``PROTOCOL`` environment variable of its
first container (``v2``); the container listens on 8080, KServe's default. The model name in
``/v2/models/NAME/infer`` is the endpoint's name.

Traffic: KServe splits between the latest revision and the last one rolled out
(``canaryTrafficPercent`` on the predictor). A two-version weighted split of the endpoint's
policy maps onto it: ``inferenceservice-stable.yaml`` serves the stable version (apply it
first, unless the service already runs it), ``inferenceservice.yaml`` the canary with its
percent. Both versions are in the same image; a version is picked by its serve config
(``SHIPYARD_SERVE_CONFIG``). What KServe cannot express (a sticky A/B test, a shadow, a
split over three versions) is written in the README and exports the primary version only.
"""

from __future__ import annotations

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
    ExportedVersion,
    ExportError,
    ExportPlan,
    canary_split,
    docker_command,
    write_manifests,
)
from shipyard.export.docker import version_config
from shipyard.export.k8s import KEYS_DIR, Resources, k8s_name, labels, probe, secret_name

API_VERSION = "serving.kserve.io/v1beta1"
CONTAINER = "kserve-container"  # the name KServe gives a predictor's main container


def inference_service(plan: ExportPlan, version: ExportedVersion, *, name: str, image: str,
                      namespace: str | None, resources: Resources, min_replicas: int,
                      max_replicas: int, api_keys: bool,
                      canary_percent: float | None = None) -> dict[str, Any]:
    """The InferenceService serving ``version`` (with ``canaryTrafficPercent`` when given)."""
    env = [{"name": "PROTOCOL", "value": "v2"},
           {"name": "SHIPYARD_SERVE_CONFIG", "value": version_config(version)},
           {"name": "SHIPYARD_HOME", "value": HOME},
           {"name": "SHIPYARD_ORT_THREADS", "value": str(resources.threads)}]
    container: dict[str, Any] = {
        "name": CONTAINER, "image": image,
        "ports": [{"containerPort": PORT, "protocol": "TCP"}],
        "env": env, "resources": resources.to_dict(),
        "readinessProbe": probe(READY, period=5, failures=2),
        "livenessProbe": {**probe(LIVE, period=10, failures=3), "initialDelaySeconds": 10},
        "securityContext": {"runAsNonRoot": True, "runAsUser": UID,
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
    }
    predictor: dict[str, Any] = {"minReplicas": min_replicas, "maxReplicas": max_replicas}
    if canary_percent is not None:
        # KServe's percent is a whole number; shipyard's has 0.01 % resolution
        predictor["canaryTrafficPercent"] = max(1, min(99, round(canary_percent)))
    if api_keys:
        env.append({"name": "SHIPYARD_API_KEYS_DIR", "value": KEYS_DIR})
        container["volumeMounts"] = [{"name": "api-keys", "mountPath": KEYS_DIR,
                                      "readOnly": True}]
        predictor["volumes"] = [{"name": "api-keys",
                                 "secret": {"secretName": secret_name(name)}}]
    predictor["containers"] = [container]
    meta: dict[str, Any] = {
        "name": name, "labels": labels(plan, name),
        "annotations": {"serving.kserve.io/enable-prometheus-scraping": "true",
                        "prometheus.kserve.io/port": str(PORT),
                        "prometheus.kserve.io/path": METRICS}}
    meta["labels"]["app.kubernetes.io/version"] = f"{version.model}-{version.version}"
    if namespace:
        meta["namespace"] = k8s_name(namespace)
    return {"apiVersion": API_VERSION, "kind": "InferenceService", "metadata": meta,
            "spec": {"predictor": predictor}}


def service_name(name: str) -> str:
    """``name`` as an InferenceService's name: KServe takes a DNS-1035 label (a letter
    first), stricter than other objects' names."""
    service = k8s_name(name)
    if not service[0].isalpha():
        raise ExportError(f"KServe names an InferenceService with a letter first, not "
                          f"{service!r}; pass --name")
    return service


def manifests(plan: ExportPlan, *, image: str | None = None, name: str | None = None,
              namespace: str | None = None, resources: Resources | None = None,
              min_replicas: int = 1, max_replicas: int = 5,
              api_keys: bool = True) -> dict[str, dict[str, Any]]:
    """File name -> InferenceService: ``inferenceservice.yaml`` (the target state), and
    ``inferenceservice-stable.yaml`` before it for a canary."""
    common: dict[str, Any] = {
        "name": service_name(name or plan.endpoint), "image": plan.image(image),
        "namespace": namespace, "resources": resources or Resources(),
        "min_replicas": min_replicas, "max_replicas": max_replicas, "api_keys": api_keys}
    split = canary_split(plan.policy)
    if split is None:
        return {"inferenceservice.yaml": inference_service(plan, plan.primary, **common)}
    stable, canary, percent = split
    return {"inferenceservice-stable.yaml":
            inference_service(plan, plan.versions[stable], **common),
            "inferenceservice.yaml":
            inference_service(plan, plan.versions[canary], canary_percent=percent, **common)}


def readme(plan: ExportPlan, docs: dict[str, dict[str, Any]], api_keys: bool) -> str:
    final = docs["inferenceservice.yaml"]
    name = final["metadata"]["name"]
    image = final["spec"]["predictor"]["containers"][0]["image"]
    split = canary_split(plan.policy)
    if split is None:
        traffic = (f"`inferenceservice.yaml` serves `{plan.primary.ref}` (all traffic):\n\n"
                   "    kubectl apply -f inferenceservice.yaml\n")
    else:
        stable, canary, percent = split
        whole = final["spec"]["predictor"]["canaryTrafficPercent"]
        traffic = f"""The policy's canary maps to KServe's `canaryTrafficPercent`: `{canary}` takes
{whole}% (shipyard: {percent:g}%), the previously rolled-out revision (`{stable}`) the rest.
Apply the stable service first (skip it if the service already runs `{stable}`), wait until
it is ready, then the canary:

    kubectl apply -f inferenceservice-stable.yaml
    kubectl wait --for=condition=Ready inferenceservice/{name}
    kubectl apply -f inferenceservice.yaml

Promote: set `canaryTrafficPercent` to 100 (or remove it); roll back: set it to 0.
"""
    keys = (f"API keys: the Secret `{secret_name(name)}` (create it before applying, e.g. "
            f"`kubectl create secret generic {secret_name(name)} "
            "--from-literal=client=\"$(openssl rand -hex 32)\"`), mounted at "
            f"`{KEYS_DIR}`.\n" if api_keys else
            "No API keys (exported with --no-api-keys).\n")
    notes = "".join(f"- {n}\n" for n in plan.notes) or "- none: the policy is served whole\n"
    return f"""# {plan.endpoint} on KServe (shipyard export {__version__})

A custom predictor (`{CONTAINER}`, image `{image}`) speaking the Open Inference Protocol
(`PROTOCOL=v2`): `POST /v2/models/{plan.endpoint}/infer`. Build the image with

    {docker_command(plan, image)}

{traffic}
{keys}
Probes on `{READY}` and `{LIVE}`; Prometheus scraping through KServe's annotations
(`{METRICS}` on {PORT}).

## Notes on the policy

{notes}"""


def export_kserve(plan: ExportPlan, output: Path, *, force: bool = False,
                  **options: Any) -> list[Path]:
    """Write the InferenceService(s) and a README into ``output``."""
    docs = manifests(plan, **options)
    return write_manifests(output, docs, readme(plan, docs, options.get("api_keys", True)),
                           force=force)
