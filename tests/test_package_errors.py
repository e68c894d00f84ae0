"""Every way a package or a request can be wrong gives its own clear error."""

import hashlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

import shipyard
from conftest import Split
from shipyard import (
    InputValidationError,
    ManifestError,
    MissingFileError,
    PackageError,
    TamperedFileError,
    UnsupportedFormatVersion,
    UntrustedPickleError,
)
from shipyard.packaging import check_name

# ----------------------------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture(scope="module")
def iris_package() -> shipyard.Package:
    x, y = load_iris(return_X_y=True, as_frame=True)
    return shipyard.package(LogisticRegression(max_iter=1000).fit(x, y), x, name="iris")


@pytest.fixture
def saved(iris_package: shipyard.Package, tmp_path: Path) -> Path:
    path = iris_package.save(tmp_path / "iris")
    shipyard.load(path)  # intact to begin with
    return path


@pytest.fixture(scope="module")
def pickled_package() -> shipyard.Package:
    """A package whose runtime unpickles: HistGradientBoosting's fallback (or format="native")."""
    x, y = load_iris(return_X_y=True)
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        pkg = shipyard.package(model, x, name="hgb")
    if pkg.manifest.runtime.name != "sklearn":  # it converted: ask for the pickle instead
        pkg = shipyard.package(model, x, name="hgb", format="native")
    assert pkg.manifest.runtime.files == ("model.joblib",)
    return pkg


def edit_manifest(path: Path, **changes: Any) -> dict[str, Any]:
    manifest_path = path / "shipyard.json"
    data: dict[str, Any] = json.loads(manifest_path.read_text())
    for key, value in changes.items():
        if value is DELETE:
            del data[key]
        else:
            data[key] = value
    manifest_path.write_text(json.dumps(data))
    return data


DELETE = object()


def rehash(path: Path, rel: str) -> None:
    """Make the manifest agree with the current bytes of ``rel`` (a forger's move)."""
    data = json.loads((path / "shipyard.json").read_text())
    content = (path / rel).read_bytes()
    for entry in data["files"]:
        if entry["path"] == rel:
            entry["size"] = len(content)
            entry["sha256"] = hashlib.sha256(content).hexdigest()
    (path / "shipyard.json").write_text(json.dumps(data))


# ----------------------------------------------------------------------------------------------
# integrity


def test_tampered_model_file_is_named(saved: Path) -> None:
    model = saved / "model.onnx"
    content = bytearray(model.read_bytes())
    content[len(content) // 2] ^= 0xFF  # same size, one byte different
    model.write_bytes(bytes(content))
    with pytest.raises(TamperedFileError) as info:
        shipyard.load(saved)
    assert info.value.path == "model.onnx"
    assert "'model.onnx'" in str(info.value)
    assert "modified" in str(info.value)
    assert info.value.actual != info.value.expected


def test_tampered_file_with_a_new_size(saved: Path) -> None:
    with (saved / "model.onnx").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(TamperedFileError, match=r"model\.onnx"):
        shipyard.load(saved)


def test_tampered_input_example_is_caught_too(saved: Path) -> None:
    (saved / "input_example.json").write_text("[]")
    with pytest.raises(TamperedFileError) as info:
        shipyard.load(saved)
    assert info.value.path == "input_example.json"


def test_missing_file_is_named(saved: Path) -> None:
    (saved / "model.onnx").unlink()
    with pytest.raises(MissingFileError) as info:
        shipyard.load(saved)
    assert info.value.path == "model.onnx"
    assert "'model.onnx'" in str(info.value)
    assert "missing" in str(info.value)


def test_tampered_pickle_is_refused_before_unpickling_even_with_trust(
        pickled_package: shipyard.Package, tmp_path: Path) -> None:
    path = pickled_package.save(tmp_path / "hgb")
    with (path / "model.joblib").open("ab") as fh:
        fh.write(b"extra")
    with pytest.raises(TamperedFileError, match=r"model\.joblib"):
        shipyard.load(path, trust=True)


# ----------------------------------------------------------------------------------------------
# manifest


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_unknown_format_version(saved: Path, version: object) -> None:
    edit_manifest(saved, format_version=version)
    with pytest.raises(UnsupportedFormatVersion) as info:
        shipyard.load(saved)
    assert info.value.found == version
    assert isinstance(info.value, ManifestError)
    assert "Upgrade shipyard" in str(info.value)


def test_missing_format_version(saved: Path) -> None:
    edit_manifest(saved, format_version=DELETE)
    with pytest.raises(UnsupportedFormatVersion):
        shipyard.load(saved)


def test_malformed_manifest_json(saved: Path) -> None:
    text = (saved / "shipyard.json").read_text()
    (saved / "shipyard.json").write_text(text[: len(text) // 2])
    with pytest.raises(ManifestError, match="not valid JSON"):
        shipyard.load(saved)


def test_manifest_that_is_not_an_object(saved: Path) -> None:
    (saved / "shipyard.json").write_text("[1, 2, 3]")
    with pytest.raises(ManifestError, match="JSON object"):
        shipyard.load(saved)


def test_manifest_missing_a_field_names_it(saved: Path) -> None:
    edit_manifest(saved, runtimes=DELETE)
    with pytest.raises(ManifestError, match="'runtimes'"):
        shipyard.load(saved)


def test_missing_manifest(saved: Path) -> None:
    (saved / "shipyard.json").unlink()
    with pytest.raises(ManifestError, match="not a shipyard package"):
        shipyard.load(saved)


def test_load_of_a_path_that_is_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="not a package directory"):
        shipyard.load(tmp_path / "nowhere")


def test_runtime_reading_an_unlisted_file(saved: Path) -> None:
    data = json.loads((saved / "shipyard.json").read_text())
    data["runtimes"][0]["files"] = ["other.onnx"]
    (saved / "shipyard.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"other\.onnx"):
        shipyard.load(saved)


def test_asking_for_a_runtime_the_package_lacks(saved: Path) -> None:
    with pytest.raises(PackageError, match="cannot run on runtime 'torch'"):
        shipyard.load(saved, runtime="torch")


@pytest.mark.parametrize("bad", ["../x", "../../etc/passwd", "/etc/passwd", "a/../../x",
                                 "..\\x", ""])
def test_path_traversal_in_a_file_entry(saved: Path, bad: str) -> None:
    data = json.loads((saved / "shipyard.json").read_text())
    data["files"][0]["path"] = bad
    (saved / "shipyard.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="stay inside the package"):
        shipyard.load(saved)


def test_path_traversal_in_a_runtime_entry(saved: Path) -> None:
    (saved.parent / "model.onnx").write_bytes((saved / "model.onnx").read_bytes())
    data = json.loads((saved / "shipyard.json").read_text())
    data["runtimes"][0]["files"] = ["../model.onnx"]
    (saved / "shipyard.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="stay inside the package"):
        shipyard.load(saved)


def test_path_traversal_in_the_input_example(saved: Path) -> None:
    edit_manifest(saved, input_example="../input_example.json")
    with pytest.raises(ManifestError, match="stay inside the package"):
        shipyard.load(saved)


def test_invalid_name_in_a_manifest(saved: Path) -> None:
    edit_manifest(saved, name="../evil")
    with pytest.raises(ManifestError, match="invalid model name"):
        shipyard.load(saved)


# ----------------------------------------------------------------------------------------------
# trust


def test_untrusted_pickle_says_how_to_trust(pickled_package: shipyard.Package,
                                             tmp_path: Path) -> None:
    path = pickled_package.save(tmp_path / "hgb")
    with pytest.raises(UntrustedPickleError) as info:
        shipyard.load(path)
    assert info.value.path == "model.joblib"
    message = str(info.value)
    assert "'model.joblib'" in message
    assert "trust=True" in message
    assert "--trust" in message
    assert isinstance(info.value, PackageError)
    assert shipyard.load(path, trust=True).runtime.name == "sklearn"


class _Payload:
    """Unpickling this creates a directory: proof that the pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (str(self.marker),)


def test_untrusted_pickle_is_never_unpickled(pickled_package: shipyard.Package,
                                             tmp_path: Path) -> None:
    path = pickled_package.save(tmp_path / "hgb")
    marker = tmp_path / "pickle-ran"
    buf = io.BytesIO()
    joblib.dump(_Payload(marker), buf)
    (path / "model.joblib").write_bytes(buf.getvalue())
    rehash(path, "model.joblib")  # hashes match: only trust stands in the way

    with pytest.raises(UntrustedPickleError):
        shipyard.load(path)
    assert not marker.exists()

    shipyard.load(path, trust=True)  # the control: trusting it really does run it
    assert marker.is_dir()


# ----------------------------------------------------------------------------------------------
# names and saving


@pytest.mark.parametrize("name", [
    "", "a/b", "a\\b", "..", "a..b", "../up", "-dash-first", ".hidden", "has space",
    "nul\x00byte", "tab\tname", "trailing-newline\n", "bell\x07", "x" * 129, "y" * 200,
])
def test_invalid_model_names(name: str) -> None:
    with pytest.raises(PackageError, match="name"):
        check_name(name)
    x, y = load_iris(return_X_y=True)
    with pytest.raises(PackageError, match="name"):
        shipyard.package(LogisticRegression(max_iter=200).fit(x, y), x, name=name)


@pytest.mark.parametrize("name", ["iris", "iris-v1.2_final", "A", "9lives", "z" * 128])
def test_valid_model_names(name: str) -> None:
    assert check_name(name) == name


def test_non_string_name() -> None:
    with pytest.raises(PackageError, match="non-empty string"):
        check_name(42)


def test_save_refuses_a_non_empty_directory(iris_package: shipyard.Package,
                                             tmp_path: Path) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("precious")
    with pytest.raises(PackageError, match="overwrite=True"):
        iris_package.save(target)
    assert (target / "keep.txt").read_text() == "precious"
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".shipyard-")]

    iris_package.save(target, overwrite=True)
    assert not (target / "keep.txt").exists()
    assert shipyard.load(target).name == "iris"


def test_save_refuses_a_file_in_the_way(iris_package: shipyard.Package, tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("not a directory")
    with pytest.raises(PackageError, match="is a file"):
        iris_package.save(target)
    with pytest.raises(PackageError, match="is a file"):
        iris_package.save(target, overwrite=True)
    assert target.read_text() == "not a directory"


def test_save_into_an_empty_directory(iris_package: shipyard.Package, tmp_path: Path) -> None:
    target = tmp_path / "empty"
    target.mkdir()
    iris_package.save(target)
    assert shipyard.load(target).name == "iris"


# ----------------------------------------------------------------------------------------------
# prediction input


@pytest.fixture(scope="module")
def customers_loaded(customer_model: tuple[Pipeline, shipyard.Package],
                     tmp_path_factory: pytest.TempPathFactory) -> shipyard.LoadedModel:
    _, pkg = customer_model
    return shipyard.load(pkg.save(tmp_path_factory.mktemp("customers") / "pkg"))


@pytest.fixture
def rows(customers: Split) -> Any:
    return customers.x_test.head(6).reset_index(drop=True)


def problems_of(loaded: shipyard.LoadedModel, data: Any, **kwargs: Any) -> InputValidationError:
    with pytest.raises(InputValidationError) as info:
        loaded.predict(data, **kwargs)
    for problem in info.value.problems:  # the message lists every problem
        assert str(problem) in str(info.value)
    return info.value


def test_missing_columns_are_all_listed(customers_loaded: shipyard.LoadedModel, rows: Any) -> None:
    err = problems_of(customers_loaded, rows.drop(columns=["age", "city"]))
    assert len(err.problems) == 1
    assert "missing input columns" in err.problems[0].message
    assert "'age'" in err.problems[0].message
    assert "'city'" in err.problems[0].message


def test_extra_columns_are_refused(customers_loaded: shipyard.LoadedModel, rows: Any) -> None:
    err = problems_of(customers_loaded, rows.assign(surprise=1, other="x"))
    assert len(err.problems) == 1
    assert "unexpected input columns" in err.problems[0].message
    assert "'surprise'" in err.problems[0].message
    assert "'other'" in err.problems[0].message


def test_wrong_column_name_reports_missing_and_unexpected(
        customers_loaded: shipyard.LoadedModel, rows: Any) -> None:
    err = problems_of(customers_loaded, rows.rename(columns={"age": "Age"}))
    messages = [p.message for p in err.problems]
    assert len(messages) == 2
    assert any("missing" in m and "'age'" in m for m in messages)
    assert any("unexpected" in m and "'Age'" in m for m in messages)


def test_string_in_a_float_column(customers_loaded: shipyard.LoadedModel, rows: Any) -> None:
    err = problems_of(customers_loaded, rows.assign(income=["lots"] * len(rows)))
    assert [p.field for p in err.problems] == ["income"]
    assert "expected float64" in err.problems[0].message
    assert "str" in err.problems[0].message


def test_fractional_numbers_in_an_int_column(customers_loaded: shipyard.LoadedModel,
                                             rows: Any) -> None:
    err = problems_of(customers_loaded, rows.assign(age=rows["age"] + 0.5))
    assert [p.field for p in err.problems] == ["age"]
    assert "expected int64" in err.problems[0].message
    assert "non-integer" in err.problems[0].message


def test_bools_in_a_float_column(customers_loaded: shipyard.LoadedModel, rows: Any) -> None:
    err = problems_of(customers_loaded, rows.assign(income=True))
    assert [p.field for p in err.problems] == ["income"]
    assert "bool" in err.problems[0].message


@pytest.mark.parametrize("form", ["records", "dict of lists"])
@pytest.mark.parametrize("value", [75, 2.5, True], ids=["int", "float", "bool"])
def test_non_string_in_a_string_column(customers_loaded: shipyard.LoadedModel, rows: Any,
                                       form: str, value: object) -> None:
    # one stray number among strings must not be quietly turned into the string "75"
    records = rows.to_dict("records")
    records[0]["city"] = value
    data = records if form == "records" else {c: [r[c] for r in records] for c in rows.columns}
    err = problems_of(customers_loaded, data)
    assert [p.field for p in err.problems] == ["city"]
    assert "expected string" in err.problems[0].message
    assert type(value).__name__ in err.problems[0].message


def test_every_problem_is_reported_at_once(customers_loaded: shipyard.LoadedModel,
                                           rows: Any) -> None:
    bad = rows.assign(age=rows["age"] + 0.5, income=["?"] * len(rows)).drop(columns=["plan"])
    err = problems_of(customers_loaded, bad.assign(extra=0))
    assert len(err.problems) == 4
    fields = {p.field for p in err.problems}
    assert {"age", "income"} <= fields
    text = str(err)
    assert "missing input columns: ['plan']" in text
    assert "unexpected input columns: ['extra']" in text


def test_nan_in_a_non_nullable_column(customers_loaded: shipyard.LoadedModel, rows: Any) -> None:
    assert not customers_loaded.signature.input("income").nullable
    bad = rows.copy()
    bad.loc[1, "income"] = np.nan
    bad.loc[3, "income"] = np.nan
    err = problems_of(customers_loaded, bad)
    assert [p.field for p in err.problems] == ["income"]
    assert "2 missing value(s)" in err.problems[0].message
    assert "not nullable" in err.problems[0].message


def test_none_in_a_non_nullable_string_column(customers_loaded: shipyard.LoadedModel,
                                              rows: Any) -> None:
    records = rows.to_dict("records")
    records[2]["city"] = None
    err = problems_of(customers_loaded, records)
    assert [p.field for p in err.problems] == ["city"]
    assert "not nullable" in err.problems[0].message


def test_columns_of_different_lengths(customers_loaded: shipyard.LoadedModel, rows: Any) -> None:
    columns = {c: rows[c].tolist() for c in rows.columns}
    columns["age"] = columns["age"][:-1]
    err = problems_of(customers_loaded, columns)
    assert "different numbers of rows" in str(err)


@pytest.mark.parametrize("data", [[], "age=3", 42, None], ids=["empty", "str", "int", "none"])
def test_unusable_input(customers_loaded: shipyard.LoadedModel, data: Any) -> None:
    err = problems_of(customers_loaded, data)
    assert len(err.problems) == 1


def test_zero_rows(customers_loaded: shipyard.LoadedModel, rows: Any) -> None:
    err = problems_of(customers_loaded, rows.iloc[:0])
    assert "no rows" in str(err)


@pytest.fixture(scope="module")
def tensor_loaded(tmp_path_factory: pytest.TempPathFactory) -> shipyard.LoadedModel:
    x, y = load_iris(return_X_y=True)  # a bare numpy array: a tensor signature, shape (N, 4)
    pkg = shipyard.package(LogisticRegression(max_iter=1000).fit(x, y), x, name="tensor")
    assert pkg.signature.kind == "tensor"
    assert pkg.signature.inputs[0].shape == (-1, 4)
    return shipyard.load(pkg.save(tmp_path_factory.mktemp("tensor") / "pkg"))


@pytest.mark.parametrize(("data", "expected"), [
    (np.zeros((3, 5)), "expected shape (N, 4), got (3, 5)"),
    (np.zeros(4), "expected 2-D input with shape (N, 4), got shape (4,)"),
    (np.zeros((3, 4, 1)), "expected 2-D input"),
], ids=["too-wide", "one-dimensional", "three-dimensional"])
def test_wrong_tensor_shape(tensor_loaded: shipyard.LoadedModel, data: Any, expected: str) -> None:
    err = problems_of(tensor_loaded, data)
    assert [p.field for p in err.problems] == ["input"]
    assert expected in err.problems[0].message


def test_strings_in_a_tensor(tensor_loaded: shipyard.LoadedModel) -> None:
    err = problems_of(tensor_loaded, np.array([["a", "b", "c", "d"]]))
    assert [p.field for p in err.problems] == ["input"]
    assert "expected float64" in err.problems[0].message


def test_tensor_model_accepts_the_right_shape(tensor_loaded: shipyard.LoadedModel) -> None:
    assert len(tensor_loaded.predict(np.ones((3, 4)))) == 3
    assert len(tensor_loaded.predict([[1.0, 2.0, 3.0, 4.0]])) == 1


def test_ragged_nested_input_is_a_validation_error(tmp_path: Path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True, as_frame=True)
    path = shipyard.package(LogisticRegression(max_iter=500).fit(x, y), x,
                            name="iris").save(tmp_path / "p")
    data = {c: [1.0, 2.0] for c in x.columns}
    data["sepal length (cm)"] = [1.0, [2.0, 3.0]]
    with pytest.raises(shipyard.InputValidationError, match="ragged"):
        shipyard.load(path).predict(data)
