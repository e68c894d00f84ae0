"""``shipyard export kserve``: an InferenceService valid against shipyard's schema of the
fields it writes (schemas/inferenceservice.schema.json) and KServe's admission rules,
running shipyard as a custom Open Inference Protocol predictor; a two-version canary becomes
canaryTrafficPercent, what KServe cannot express is said in the README."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
from typer.testing import CliRunner

from export.conftest import Zoo
from export.manifests import AdmissionError, read, validate_inference_service
from shipyard.cli.main import app
from shipyard.export import ExportError, export_kserve, resolve
from shipyard.registry import Registry
from shipyard.routing import StickyAB, Weighted


def env_of(doc: dict) -> dict[str, str]:  # type: ignore[type-arg]
    container = doc["spec"]["predictor"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"]}


def test_a_canary_maps_to_canary_traffic_percent(registry: Registry, tmp_path: Path) -> None:
    registry.deployments.set_policy("ks-canary", Weighted.canary("iris/1", "iris/2", 15),
                                    reason="test")
    out = tmp_path / "ks"
    result = CliRunner().invoke(app, ["export", "kserve", "ks-canary", "-o", str(out)])
    assert result.exit_code == 0, result.output
    stable = read(out / "inferenceservice-stable.yaml")
    final = read(out / "inferenceservice.yaml")
    for doc in (stable, final):
        validate_inference_service(doc)
        assert doc["apiVersion"] == "serving.kserve.io/v1beta1"
        assert doc["kind"] == "InferenceService"
        assert doc["metadata"]["name"] == "ks-canary"
        assert env_of(doc)["PROTOCOL"] == "v2"
        # the same image holds both versions; each revision picks its serve config
        assert doc["spec"]["predictor"]["containers"][0]["image"] == \
            "shipyard-ks-canary:iris-1.iris-2"
    assert "canaryTrafficPercent" not in stable["spec"]["predictor"]
    assert env_of(stable)["SHIPYARD_SERVE_CONFIG"] == "versions/iris-1.yaml"
    assert final["spec"]["predictor"]["canaryTrafficPercent"] == 15
    assert env_of(final)["SHIPYARD_SERVE_CONFIG"] == "versions/iris-2.yaml"
    annotations = final["metadata"]["annotations"]
    assert annotations["serving.kserve.io/enable-prometheus-scraping"] == "true"
    assert annotations["prometheus.kserve.io/path"] == "/metrics"
    readme = (out / "README.md").read_text()
    assert "kubectl apply -f inferenceservice-stable.yaml" in readme


def test_a_sticky_ab_test_is_not_mapped_and_the_readme_says_so(registry: Registry,
                                                               tmp_path: Path) -> None:
    registry.deployments.set_policy("ks-ab", StickyAB("iris/2", "iris/3", 30), reason="test")
    export_kserve(resolve("ks-ab", registry=registry), tmp_path / "ks")
    assert sorted(p.name for p in (tmp_path / "ks").glob("*.yaml")) == \
        ["inferenceservice.yaml"]
    doc = read(tmp_path / "ks" / "inferenceservice.yaml")
    validate_inference_service(doc)
    assert "canaryTrafficPercent" not in doc["spec"]["predictor"]
    assert env_of(doc)["SHIPYARD_SERVE_CONFIG"] == "versions/iris-2.yaml"  # A only
    readme = (tmp_path / "ks" / "README.md").read_text()
    assert "sticky A/B test" in readme and "not expressible" in readme


def test_a_split_over_three_versions_serves_the_stable_one(registry: Registry,
                                                           tmp_path: Path) -> None:
    registry.deployments.set_policy(
        "ks-three", Weighted((("iris/1", 80), ("iris/2", 10), ("iris/3", 10))), reason="t")
    export_kserve(resolve("ks-three", registry=registry), tmp_path / "ks", api_keys=False)
    doc = read(tmp_path / "ks" / "inferenceservice.yaml")
    validate_inference_service(doc)
    assert "canaryTrafficPercent" not in doc["spec"]["predictor"]
    assert "volumes" not in doc["spec"]["predictor"]
    assert "more than two versions" in (tmp_path / "ks" / "README.md").read_text()


def test_the_schema_rejects_what_kserve_would(zoo: Zoo, tmp_path: Path) -> None:
    """The schema is not vacuous: an unknown field, a wrong type, a value out of KServe's
    range and a name KServe refuses fail; so does a replica range the webhook refuses."""
    export_kserve(resolve(str(zoo.packages[1])), tmp_path / "ks", namespace="ml")
    doc = read(tmp_path / "ks" / "inferenceservice.yaml")
    validate_inference_service(doc)

    def changed(where: str, key: str, value: object) -> dict:  # type: ignore[type-arg]
        bad = copy.deepcopy(doc)
        node = bad
        for part in filter(None, where.split("/")):
            node = node[part]
        node[key] = value
        return bad

    for bad in (changed("spec/predictor", "canaryTraficPercent", 10),  # a typo
                changed("spec", "transformer", {}),  # a field shipyard never writes
                changed("metadata", "finalizers", []),
                changed("spec/predictor", "minReplicas", "one"),  # a wrong type
                changed("spec/predictor", "canaryTrafficPercent", 12.5),
                changed("spec/predictor", "canaryTrafficPercent", 101),  # out of range
                changed("spec/predictor", "maxReplicas", -1),
                changed("metadata", "name", "3-iris"),  # not a DNS-1035 label
                changed("", "kind", "Deployment"),
                changed("metadata/labels", "app.kubernetes.io/version", "x" * 64)):
        with pytest.raises(jsonschema.ValidationError):
            validate_inference_service(bad)
    inverted = changed("spec/predictor", "minReplicas", 3)
    inverted["spec"]["predictor"]["maxReplicas"] = 2
    with pytest.raises(AdmissionError, match="minReplicas 3 > maxReplicas 2"):
        validate_inference_service(inverted)
    unlimited = changed("spec/predictor", "maxReplicas", 0)  # 0: no upper limit
    validate_inference_service(unlimited)
    with pytest.raises(kubernetes_validate.ValidationError):  # as a core Pod's, strictly
        validate_inference_service(changed("spec/predictor", "containers", [
            {**doc["spec"]["predictor"]["containers"][0], "imagePullPolcy": "Always"}]))


def test_a_name_kserve_would_refuse_is_not_exported(zoo: Zoo, tmp_path: Path) -> None:
    plan = resolve(str(zoo.packages[1]), endpoint="3d-iris")
    with pytest.raises(ExportError, match=r"letter first.*--name"):
        export_kserve(plan, tmp_path / "ks")
    export_kserve(plan, tmp_path / "named", name="iris-3d")
    validate_inference_service(read(tmp_path / "named" / "inferenceservice.yaml"))
