"""Every file a manifest names is listed with its hash: the input example (run through the
model at load) and the reference profile (the monitor's reference) too, so neither can be
swapped for a file no hash covers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import shipyard
from shipyard.errors import ManifestError
from shipyard.runtimes.model import describe


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    model = LogisticRegression().fit(x, [0, 0, 1, 1])
    return shipyard.package(model, x, name="listed").save(
        tmp_path_factory.mktemp("listed") / "pkg")


@pytest.mark.parametrize("field", ["input_example", "reference_profile"])
def test_a_named_file_missing_from_the_file_list_is_refused(made: Path, tmp_path: Path,
                                                            field: str) -> None:
    root = Path(shutil.copytree(made, tmp_path / "pkg"))
    manifest = json.loads((root / "shipyard.json").read_text())
    named = manifest[field]
    assert named is not None
    manifest["files"] = [f for f in manifest["files"] if f["path"] != named]
    (root / "shipyard.json").write_text(json.dumps(manifest))
    for read in (describe, shipyard.load):
        with pytest.raises(ManifestError, match=f"{field}.*{named}.*not listed"):
            read(root)


def test_a_package_that_lists_them_loads(made: Path) -> None:
    assert describe(made).reference_profile() is not None
    assert shipyard.load(made).name == "listed"
