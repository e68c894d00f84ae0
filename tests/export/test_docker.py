"""``shipyard export docker``: the build context holds exactly the verified packages, a
pinned install and a non-root server with a health check."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import pytest
from typer.testing import CliRunner

from export.conftest import Zoo
from serving.helpers import serve_in_process
from shipyard._version import __version__
from shipyard.cli.main import app
from shipyard.export import ExportError, export_docker, pins, resolve
from shipyard.packaging import MANIFEST_FILE, Manifest
from shipyard.registry import Registry
from shipyard.routing import Weighted
from shipyard.service.config import ServeConfig
from shipyard.stores.predictions import read_log


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    return [(line.split(None, 1)[0], line.split(None, 1)[1]) for line in text.splitlines()
            if line.strip() and not line.startswith("#")]


def test_a_model_uri_becomes_a_pinned_non_root_image(registry: Registry,
                                                     tmp_path: Path) -> None:
    out = tmp_path / "ctx"
    result = CliRunner().invoke(app, ["export", "docker", "models:/iris@production", "-o",
                                      str(out)])
    assert result.exit_code == 0, result.output
    steps = instructions(out / "Dockerfile")
    kinds = [k for k, _ in steps]
    assert kinds[0] == "FROM" and "USER" in kinds and "HEALTHCHECK" in kinds
    user = dict(steps)["USER"]
    assert not user.startswith(("0", "root"))
    assert "/v2/health/ready" in dict(steps)["HEALTHCHECK"]
    assert kinds.index("USER") < kinds.index("CMD")
    assert "entrypoint.sh" in dict(steps)["CMD"]
    # the alias resolved now: version 3, served by path as iris/3, no registry
    config = ServeConfig.from_file(out / "app" / "serve.yaml")
    assert [(e.name, e.model, e.model_name, e.model_version) for e in config.endpoints] == \
        [("iris", "models/iris-3", "iris", 3)]
    assert config.rollout_controller is False
    assert sorted(p.name for p in (out / "app" / "models").iterdir()) == ["iris-3"]
    # pinned: shipyard's version and extras, every dependency at the version installed here
    assert (out / "install" / "requirements.txt").read_text() == \
        f"shipyard-ml[server]=={__version__}\n"
    pins = [line for line in (out / "install" / "constraints.txt").read_text().splitlines()
            if not line.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+==[^=\s+]+", p) for p in pins), pins
    pinned = {p.split("==")[0].lower(): p.split("==")[1] for p in pins}
    for dist in ("onnxruntime", "numpy", "starlette", "uvicorn", "pyarrow"):
        assert pinned[dist] == metadata.version(dist).split("+")[0]
    assert "shipyard-ml" not in pinned
    wheels = list((out / "install" / "wheels").glob("*.whl"))
    assert [w.name.split("-")[:2] for w in wheels] == [["shipyard_ml", __version__]]


def test_the_image_answers_and_logs_the_registry_version(registry: Registry, zoo: Zoo,
                                                         tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The exported serve config, served from the app directory as the image does (in
    process, no install): the canary's stable version answers as iris/3, and the
    prediction log says iris, version 3 (not the folder's name, nor version 1)."""
    registry.deployments.set_policy("img-version", Weighted.canary("iris/3", "iris/1", 20),
                                    reason="test")
    export_docker(resolve("img-version", registry=registry), tmp_path / "ctx", wheel=None)
    app_dir = tmp_path / "ctx" / "app"
    monkeypatch.chdir(app_dir)  # the image's WORKDIR: model paths are relative to it
    config = replace(ServeConfig.from_file(app_dir / "serve.yaml"),
                     log_dir=str(tmp_path / "logs"))
    x = zoo.x.iloc[:3]
    [answer], _ = serve_in_process(config, tmp_path / "home", [
        ("/v1/endpoints/img-version/predict", {"inputs": {c: x[c].tolist() for c in x}})])
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-model-version"] == "iris/3"
    table = read_log(tmp_path / "logs", "img-version")
    assert table.num_rows == 3
    assert set(zip(table.column("model").to_pylist(), table.column("version").to_pylist(),
                   strict=True)) == {("iris", 3)}


def test_only_files_the_manifest_lists_are_copied(zoo: Zoo, tmp_path: Path) -> None:
    package = shutil.copytree(zoo.packages[2], tmp_path / "iris")
    (package / "notes.txt").write_text("not part of the package")
    export_docker(resolve(str(package)), tmp_path / "ctx", wheel=None)
    copied = tmp_path / "ctx" / "app" / "models" / "iris-1"
    listed = {e.path for e in Manifest.read(package).files} | {MANIFEST_FILE}
    assert {str(p.relative_to(copied)) for p in copied.rglob("*") if p.is_file()} == listed


def test_a_tampered_package_is_not_exported(zoo: Zoo, tmp_path: Path) -> None:
    package = shutil.copytree(zoo.packages[2], tmp_path / "iris")
    model = package / "model.onnx"
    model.write_bytes(model.read_bytes()[:-1] + b"\0")
    with pytest.raises(ExportError, match=r"model\.onnx"):
        export_docker(resolve(str(package)), tmp_path / "ctx")


def test_an_endpoint_without_a_policy_is_a_clear_error(registry: Registry,
                                                       tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="models:/nowhere@production"):
        resolve("nowhere", registry=registry)


def test_an_output_that_is_not_an_export_is_never_replaced(zoo: Zoo, tmp_path: Path) -> None:
    out = tmp_path / "ctx"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    plan = resolve(str(zoo.packages[1]))
    for force in (False, True):
        with pytest.raises(ExportError):
            export_docker(plan, out, force=force)
    assert (out / "mine.txt").read_text() == "keep me"


@pytest.mark.parametrize("name", ["../etc", "two words", " "])
def test_an_unsafe_endpoint_name_is_refused(zoo: Zoo, name: str) -> None:
    with pytest.raises(ExportError, match="invalid endpoint name"):
        resolve(str(zoo.packages[1]), endpoint=name)


def test_a_native_sklearn_package_brings_the_sklearn_extra_pinned() -> None:
    extras = pins.extras_for(["sklearn", "onnx"])
    assert extras == ("server", "sklearn")
    pinned = dict(line.split("==") for line in pins.constraints(extras))
    assert pinned["scikit-learn"] == metadata.version("scikit-learn")
    assert "scikit-learn" not in dict(line.split("==") for line in
                                      pins.constraints(pins.extras_for(["onnx"])))
