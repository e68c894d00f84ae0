"""Reading exports back and validating them: Kubernetes objects with kubernetes-validate,
the InferenceService with shipyard's own schema of the fields it writes
(``schemas/inferenceservice.schema.json``) and KServe's admission rules."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

K8S_VERSION = kubernetes_validate.utils.latest_version()
KSERVE_SCHEMA = Path(__file__).parent / "schemas" / "inferenceservice.schema.json"


class AdmissionError(AssertionError):
    """What KServe's admission webhook would refuse and a schema cannot say."""


def read(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict), path
    return doc


def validate_k8s(doc: dict[str, Any]) -> None:
    """Strict: a field the schema lacks fails, as ``kubectl apply --validate=strict``."""
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@functools.cache
def inference_service_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(KSERVE_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate_inference_service(doc: dict[str, Any]) -> None:
    """Shipyard's schema of the InferenceService (``jsonschema.ValidationError``), then
    KServe's admission rules for a custom predictor (`AdmissionError`), then the predictor's
    containers and volumes as a core Pod's (strict)."""
    inference_service_validator().validate(doc)
    predictor = doc["spec"]["predictor"]
    container = predictor["containers"][0]
    if container["name"] != "kserve-container":
        raise AdmissionError(f"the predictor's container is {container['name']!r}")
    protocol = [e["value"] for e in container.get("env", []) if e["name"] == "PROTOCOL"]
    if protocol not in ([], ["v1"], ["v2"]):
        raise AdmissionError(f"PROTOCOL {protocol}: KServe takes v1 or v2")
    low, high = predictor.get("minReplicas", 1), predictor.get("maxReplicas", 0)
    if high != 0 and low > high:  # maxReplicas 0: no limit
        raise AdmissionError(f"minReplicas {low} > maxReplicas {high}")
    validate_k8s({"apiVersion": "v1", "kind": "Pod", "metadata": doc["metadata"],
                  "spec": {"containers": predictor["containers"],
                           "volumes": predictor.get("volumes", [])}})
