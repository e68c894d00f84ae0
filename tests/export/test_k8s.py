"""``shipyard export k8s``: every manifest valid for Kubernetes, wired to itself (selectors,
names, ports), probes on the Open Inference Protocol's health routes, keys from a Secret."""

from __future__ import annotations

import shlex
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from export.conftest import Zoo
from export.manifests import read, validate_k8s
from shipyard.cli.main import app
from shipyard.export import ExportError, Resources, Scaling, export_k8s, resolve
from shipyard.packaging import Manifest
from shipyard.registry import Registry
from shipyard.routing import Shadow, Weighted
from shipyard.service.config import ServeConfig

FILES = ["configmap.yaml", "deployment.yaml", "hpa.yaml", "pdb.yaml", "service.yaml"]


def test_the_cli_writes_valid_manifests_of_an_endpoint(registry: Registry,
                                                       tmp_path: Path) -> None:
    registry.deployments.set_policy("k8s-canary", Weighted.canary("iris/1", "iris/2", 10),
                                    reason="test")
    out = tmp_path / "k8s"
    result = CliRunner().invoke(app, ["export", "k8s", "k8s-canary", "-o", str(out),
                                      "--namespace", "ml", "--min-replicas", "3"])
    assert result.exit_code == 0, result.output
    assert "note:" in result.output and "canaryTrafficPercent" in result.output
    assert sorted(p.name for p in out.glob("*.yaml")) == FILES
    docs = {p.name: read(p) for p in out.glob("*.yaml")}
    for doc in docs.values():
        validate_k8s(doc)
        assert doc["metadata"]["namespace"] == "ml"
    pod = docs["deployment.yaml"]["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready",
                                                      "port": 8080}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8080}
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "8080"
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    assert docs["hpa.yaml"]["spec"]["minReplicas"] == 3
    assert docs["pdb.yaml"]["spec"] == {"minAvailable": 1, "selector": {
        "matchLabels": docs["deployment.yaml"]["spec"]["selector"]["matchLabels"]}}
    # the stable version serves (a Service cannot split by weight); the README says so
    assert "iris/1" in (out / "README.md").read_text()
    assert "canaryTrafficPercent" in (out / "README.md").read_text()


def test_objects_refer_to_each_other(registry: Registry, tmp_path: Path) -> None:
    registry.deployments.set_policy("k8s.Wired_1", Shadow("iris/2", "iris/3"), reason="t")
    plan = resolve("k8s.Wired_1", registry=registry)
    export_k8s(plan, tmp_path / "out", image="registry.example/iris:1",
               resources=Resources(cpu_limit="3500m"), scaling=Scaling(1, 4, 60))
    docs = {p.name: read(p) for p in (tmp_path / "out").glob("*.yaml")}
    name = "k8s-wired-1"  # the endpoint's name made DNS-1123
    assert {d["metadata"]["name"] for f, d in docs.items() if f != "configmap.yaml"} == {name}
    deploy = docs["deployment.yaml"]
    pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
    for selector in (deploy["spec"]["selector"]["matchLabels"],
                     docs["service.yaml"]["spec"]["selector"],
                     docs["pdb.yaml"]["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= pod_labels.items()
    assert docs["hpa.yaml"]["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    assert docs["pdb.yaml"]["spec"]["maxUnavailable"] == 1  # one replica may be drained
    pod = deploy["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "registry.example/iris:1"
    assert docs["service.yaml"]["spec"]["ports"][0]["targetPort"] == \
        container["ports"][0]["name"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["SHIPYARD_ORT_THREADS"] == "3"  # whole cores of the CPU limit
    # the serve config comes from the ConfigMap, mounted where the env points
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert volumes["config"]["configMap"]["name"] == docs["configmap.yaml"]["metadata"]["name"]
    assert env["SHIPYARD_SERVE_CONFIG"] == mounts["config"] + "/serve.yaml"
    config = ServeConfig.from_dict(yaml.safe_load(
        docs["configmap.yaml"]["data"]["serve.yaml"]))
    assert [(e.name, e.model, e.model_name, e.model_version) for e in config.endpoints] == \
        [("k8s.Wired_1", "models/iris-2", "iris", 2)]  # served as the registry's iris/2
    assert config.rollout_controller is False
    # API keys: a Secret named, mounted where the env points, never a value
    assert volumes["api-keys"]["secret"]["secretName"] == f"{name}-api-keys"
    assert env["SHIPYARD_API_KEYS_DIR"] == mounts["api-keys"]
    assert not any(d["kind"] == "Secret" for d in docs.values())
    # non-root, no privilege escalation, read-only root with writable home and /tmp
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"home", "tmp"} <= mounts.keys()
    assert "shadow" in (tmp_path / "out" / "README.md").read_text()


def test_without_api_keys_no_secret_is_mounted(zoo: Zoo, tmp_path: Path) -> None:
    plan = resolve(str(zoo.packages[1]), endpoint="open")
    export_k8s(plan, tmp_path / "out", api_keys=False)
    container = read(tmp_path / "out" / "deployment.yaml")["spec"]["template"]["spec"][
        "containers"][0]
    assert "SHIPYARD_API_KEYS_DIR" not in {e["name"] for e in container["env"]}
    assert "api-keys" not in {m["name"] for m in container["volumeMounts"]}


def test_the_validator_catches_a_broken_manifest(zoo: Zoo, tmp_path: Path) -> None:
    """The validation the tests rely on does fail on a wrong field."""
    export_k8s(resolve(str(zoo.packages[1])), tmp_path / "out")
    deploy = read(tmp_path / "out" / "deployment.yaml")
    deploy["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"][
        "pathh"] = "/x"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_k8s(deploy)


@pytest.mark.parametrize("bad", [["--cpu-limit", "two"],
                                 ["--min-replicas", "3", "--max-replicas", "2"]],
                         ids=["quantity", "replicas"])
def test_bad_options_are_refused_before_writing(zoo: Zoo, tmp_path: Path,
                                                bad: list[str]) -> None:
    result = CliRunner().invoke(app, ["export", "k8s", str(zoo.packages[1]), "-o",
                                      str(tmp_path / "out"), *bad])
    assert isinstance(result.exception, ExportError), result.output
    assert not (tmp_path / "out").exists()


def test_the_readme_builds_the_image_the_manifests_run(registry: Registry,
                                                       tmp_path: Path) -> None:
    """The README's `shipyard export docker` command makes an image holding the package
    path the ConfigMap serves, under the name the Deployment runs."""
    registry.deployments.set_policy("k8s-readme", Weighted.canary("iris/2", "iris/3", 50),
                                    reason="test")
    export_k8s(resolve("k8s-readme", registry=registry, trust=True), tmp_path / "k8s")
    line = next(line for line in (tmp_path / "k8s" / "README.md").read_text().splitlines()
                if "shipyard export docker" in line)
    words = shlex.split(line.split("&&")[0])
    assert words[:3] == ["shipyard", "export", "docker"]
    out = words.index("-o")
    words[out + 1] = str(tmp_path / "image")
    result = CliRunner().invoke(app, words[1:])
    assert result.exit_code == 0, result.output
    deploy = read(tmp_path / "k8s" / "deployment.yaml")
    image = deploy["spec"]["template"]["spec"]["containers"][0]["image"]
    assert f"docker build -t {image} " in line
    served = yaml.safe_load(read(tmp_path / "k8s" / "configmap.yaml")["data"]["serve.yaml"])
    assert served == yaml.safe_load((tmp_path / "image" / "app" / "serve.yaml").read_text())
    assert served["endpoints"][0]["trust"] is True
    model = tmp_path / "image" / "app" / served["endpoints"][0]["model"]
    assert Manifest.read(model).name == "iris"
