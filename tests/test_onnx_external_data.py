"""An ONNX graph reads external data only from files its package lists (and so verified):
never from a file the manifest does not name, an absolute path or one outside the package."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import shipyard
from shipyard.errors import ManifestError

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

SIGNATURE = {"kind": "tabular", "task": "other",
             "inputs": [{"name": "x", "dtype": "float64", "shape": [-1], "nullable": False}],
             "outputs": [{"name": "prediction", "dtype": "float64", "shape": [-1]}]}


def package(root: Path, location: str, listed: dict[str, bytes]) -> Path:
    """A package whose graph adds a weight kept in ``location``; ``listed`` are the files
    its manifest and runtime entry name besides the graph."""
    weight = numpy_helper.from_array(np.array([0.0]), name="w")
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "8")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["prediction"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [None])],
        [helper.make_tensor_value_info("prediction", TensorProto.DOUBLE, [None])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    files = {"model.onnx": model.SerializeToString(), **listed}
    root.mkdir(parents=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    manifest = {"format_version": 1, "name": "ext", "signature": SIGNATURE,
                "runtimes": [{"name": "onnx", "files": list(files),
                              "options": {"feed": "tensors"}}],
                "metadata": {}, "conversion": {}, "input_example": None,
                "reference_profile": None,
                "files": [{"path": name, "size": len(data),
                           "sha256": hashlib.sha256(data).hexdigest()}
                          for name, data in files.items()]}
    (root / "shipyard.json").write_text(json.dumps(manifest))
    return root


SEVEN = np.array([7.0]).tobytes()


def test_a_listed_external_data_file_loads(tmp_path: Path) -> None:
    """The control: external data the package lists is read."""
    model = shipyard.load(package(tmp_path / "pkg", "w.bin", {"w.bin": SEVEN}))
    assert model.predict({"x": [1.0]}).predictions.tolist() == [8.0]


def test_an_unlisted_file_in_the_package_is_never_read(tmp_path: Path) -> None:
    root = package(tmp_path / "pkg", "w.bin", {})
    (root / "w.bin").write_bytes(SEVEN)  # there, but no hash covers it
    with pytest.raises(ManifestError, match=r"'w\.bin', which is not a file of this package"):
        shipyard.load(root)


@pytest.mark.parametrize("where", ["absolute", "parent"])
def test_a_file_outside_the_package_is_never_read(tmp_path: Path, where: str) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(SEVEN)
    location = str(secret) if where == "absolute" else "../secret.bin"
    with pytest.raises(ManifestError, match="must be relative and stay inside"):
        shipyard.load(package(tmp_path / "pkg", location, {}))
