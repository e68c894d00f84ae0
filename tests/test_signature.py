"""Signatures: what is inferred from a sample, how they serialise, and how input is coerced."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

import shipyard
from conftest import CITIES, Split
from models_for_tests import HoursSinceEpoch, LinearScorer
from shipyard import ConversionError, InputValidationError, ManifestError
from shipyard.packaging import ColumnSpec, OutputSpec, Signature, prepare
from shipyard.packaging.inference import MAX_CATEGORIES, infer_signature


def spec_of(sample: Any, name: str) -> ColumnSpec:
    return infer_signature(sample).input(name)


# ----------------------------------------------------------------------------------------------
# inference


def test_numeric_columns_keep_their_dtype_and_range() -> None:
    frame = pd.DataFrame({
        "i64": np.array([3, -1, 7], dtype=np.int64),
        "f64": np.array([0.5, 2.25, -4.0], dtype=np.float64),
        "i32": np.array([1, 2, 3], dtype=np.int32),
        "f32": np.array([1.5, 2.5, 3.5], dtype=np.float32),
        "u8": np.array([0, 255, 9], dtype=np.uint8),
    })
    sig = infer_signature(frame)
    assert sig.kind == "tabular"
    assert sig.input_names == ["i64", "f64", "i32", "f32", "u8"]
    assert [c.dtype for c in sig.inputs] == ["int64", "float64", "int32", "float32", "uint8"]
    assert all(c.shape == (-1,) and not c.nullable and c.categories is None for c in sig.inputs)
    assert (sig.input("i64").minimum, sig.input("i64").maximum) == (-1.0, 7.0)
    assert (sig.input("f64").minimum, sig.input("f64").maximum) == (-4.0, 2.25)
    assert (sig.input("u8").minimum, sig.input("u8").maximum) == (0.0, 255.0)


def test_python_ints_and_floats_from_records() -> None:
    sig = infer_signature([{"n": 1, "x": 1.5}, {"n": 2, "x": 2}])
    assert sig.input("n").dtype == "int64"
    assert sig.input("x").dtype == "float64"


def test_string_columns_record_their_categories() -> None:
    frame = pd.DataFrame({
        "city": ["nice", "paris", "lyon", "paris"],
        "tier": pd.Categorical(["gold", "silver", "gold", "gold"]),
        "many": [f"id-{i:03d}" for i in range(4)],
    })
    sig = infer_signature(frame)
    city = sig.input("city")
    assert (city.dtype, city.categories) == ("string", ("lyon", "nice", "paris"))
    assert (city.minimum, city.maximum) == (None, None)
    tier = sig.input("tier")
    assert (tier.dtype, tier.categories) == ("string", ("gold", "silver"))


def test_high_cardinality_strings_record_no_categories() -> None:
    at_limit = {"s": [f"v{i}" for i in range(MAX_CATEGORIES)]}
    over = {"s": [f"v{i}" for i in range(MAX_CATEGORIES + 1)]}
    limit_categories = infer_signature(at_limit).input("s").categories
    assert limit_categories is not None
    assert len(limit_categories) == MAX_CATEGORIES
    assert infer_signature(over).input("s").categories is None
    assert infer_signature(over).input("s").dtype == "string"


def test_bool_columns() -> None:
    spec = spec_of(pd.DataFrame({"flag": [True, False, True]}), "flag")
    assert (spec.dtype, spec.nullable, spec.categories) == ("bool", False, (False, True))
    assert spec_of({"flag": [True, True]}, "flag").categories == (True,)
    assert spec_of([{"flag": True}, {"flag": False}], "flag").dtype == "bool"


def test_datetime_columns() -> None:
    when = pd.to_datetime(["2024-03-01 08:30", "2023-12-31 23:00", "2024-01-15 00:00"])
    spec = spec_of(pd.DataFrame({"when": when}), "when")
    assert (spec.dtype, spec.shape, spec.nullable) == ("datetime", (-1,), False)
    assert isinstance(spec.minimum, str)
    assert isinstance(spec.maximum, str)
    assert np.datetime64(spec.minimum) == np.datetime64("2023-12-31T23:00")
    assert np.datetime64(spec.maximum) == np.datetime64("2024-03-01T08:30")


def test_timezone_aware_datetimes_are_recorded_in_utc() -> None:
    when = pd.date_range("2024-01-01 12:00", periods=3, freq="h", tz="Europe/Paris")  # UTC+1
    spec = spec_of(pd.DataFrame({"when": when}), "when")
    assert spec.dtype == "datetime"
    assert isinstance(spec.minimum, str)
    assert isinstance(spec.maximum, str)
    assert np.datetime64(spec.minimum) == np.datetime64("2024-01-01T11:00")
    assert np.datetime64(spec.maximum) == np.datetime64("2024-01-01T13:00")


@pytest.mark.parametrize(("column", "dtype"), [
    ([1.0, np.nan, 3.0], "float64"),
    (["a", None, "b"], "string"),
    (pd.array([1, None, 3], dtype="Int64"), "float64"),
    (pd.array([True, None, False], dtype="boolean"), "bool"),
    (pd.to_datetime(["2024-01-01", None, "2024-01-03"]), "datetime"),
], ids=["float-nan", "string-none", "Int64-NA", "boolean-NA", "datetime-NaT"])
def test_missing_values_make_a_column_nullable(column: Any, dtype: str) -> None:
    spec = spec_of(pd.DataFrame({"c": column, "full": [1, 2, 3]}), "c")
    assert spec.dtype == dtype
    assert spec.nullable is True
    assert spec_of(pd.DataFrame({"c": column, "full": [1, 2, 3]}), "full").nullable is False


def test_nullable_ints_without_missing_values_stay_ints() -> None:
    spec = spec_of(pd.DataFrame({"c": pd.array([1, 2, 3], dtype="Int64")}), "c")
    assert (spec.dtype, spec.nullable) == ("int64", False)


def test_none_in_records_makes_a_column_nullable() -> None:
    sig = infer_signature([{"n": 1, "s": "x"}, {"n": None, "s": None}, {"n": 3, "s": "y"}])
    assert (sig.input("n").dtype, sig.input("n").nullable) == ("int64", True)
    assert (sig.input("s").dtype, sig.input("s").nullable) == ("string", True)


@pytest.mark.parametrize(("array", "dtype", "shape"), [
    (np.zeros((10, 3)), "float64", (-1, 3)),
    (np.zeros((10, 3, 2), dtype=np.float32), "float32", (-1, 3, 2)),
    (np.zeros((10, 5), dtype=np.int64), "int64", (-1, 5)),
    (np.zeros(10), "float64", (-1, 1)),  # 1-D: one feature, one row per element
], ids=["2-D", "3-D", "int", "1-D"])
def test_numpy_samples_give_tensor_signatures(array: Any, dtype: str,
                                              shape: tuple[int, ...]) -> None:
    sig = infer_signature(array)
    assert sig.kind == "tensor"
    (spec,) = sig.inputs
    assert (spec.name, spec.dtype, spec.shape, spec.nullable) == ("input", dtype, shape, False)


def test_nan_in_a_tensor_sample_makes_it_nullable() -> None:
    array = np.ones((4, 2))
    array[1, 1] = np.nan
    assert infer_signature(array).inputs[0].nullable is True


def test_every_tabular_container_infers_the_same_signature() -> None:
    frame = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5], "c": ["x", "y", "x"]})
    expected = infer_signature(frame)
    assert infer_signature({c: frame[c].tolist() for c in frame.columns}) == expected
    assert infer_signature({c: frame[c].to_numpy() for c in frame.columns}) == expected
    assert infer_signature(frame.to_dict("records")) == expected


@pytest.mark.parametrize("sample", [
    {"mixed": [1, "a", 2.5]},
    {"obj": [object(), object()]},
    {"complex": np.array([1 + 2j, 3j])},
    pd.DataFrame(),
], ids=["mixed", "objects", "complex", "empty"])
def test_samples_without_a_signature(sample: Any) -> None:
    with pytest.raises(ConversionError):
        infer_signature(sample)


def test_package_records_the_inferred_signature(customer_model: tuple[Pipeline,
                                                                      shipyard.Package]) -> None:
    model, pkg = customer_model
    sig = pkg.signature
    assert sig.input("city").categories == tuple(sorted(CITIES))
    assert sig.task == "classification"
    assert sig.class_labels == tuple(model.classes_.tolist())
    assert [(o.name, o.dtype, o.shape) for o in sig.outputs] == [
        ("label", "int64", (-1,)), ("probabilities", "float64", (-1, len(model.classes_)))]


# ----------------------------------------------------------------------------------------------
# serialisation


def rich_signature() -> Signature:
    return Signature(
        kind="tabular",
        inputs=(
            ColumnSpec("age", "int64", minimum=18.0, maximum=80.0),
            ColumnSpec("income", "float64", nullable=True, minimum=-3.5, maximum=1e6),
            ColumnSpec("city", "string", categories=("lyon", "paris")),
            ColumnSpec("member", "bool", categories=(False, True)),
            ColumnSpec("joined", "datetime", nullable=True, minimum="2020-01-01T00:00:00",
                       maximum="2024-06-30T12:00:00"),
        ),
        outputs=(OutputSpec("label", "string"), OutputSpec("probabilities", "float64", (-1, 2))),
        task="classification",
        class_labels=("no", "yes"),
    )


def test_to_dict_from_dict_round_trip() -> None:
    sig = rich_signature()
    data = json.loads(json.dumps(sig.to_dict()))  # through real JSON
    again = Signature.from_dict(data)
    assert again == sig
    assert again.to_dict() == sig.to_dict()
    assert again.input("joined").maximum == "2024-06-30T12:00:00"
    assert again.input("city").categories == ("lyon", "paris")
    assert data["inputs"][1]["range"] == [-3.5, 1e6]
    assert "range" not in data["inputs"][2]


def test_tensor_signature_round_trip() -> None:
    sig = Signature("tensor", (ColumnSpec("pixels", "float32", (-1, 28, 28)),),
                    (OutputSpec("logits", "float32", (-1, 10)),))
    again = Signature.from_dict(json.loads(json.dumps(sig.to_dict())))
    assert again == sig
    assert again.inputs[0].shape == (-1, 28, 28)


def test_saved_manifest_keeps_the_signature(customer_model: tuple[Pipeline, shipyard.Package],
                                            tmp_path: Path) -> None:
    _, pkg = customer_model
    loaded = shipyard.load(pkg.save(tmp_path / "pkg"))
    assert loaded.signature == pkg.signature
    assert loaded.signature.class_labels == pkg.signature.class_labels


@pytest.mark.parametrize(("data", "message"), [
    ({"kind": "matrix", "inputs": []}, "kind"),
    ({"kind": "tabular", "task": "ranking", "inputs": []}, "unknown task"),
    ({"kind": "tabular", "inputs": [{"name": "a", "dtype": "decimal"}]}, "unknown dtype"),
    ({"kind": "tabular", "inputs": [{"name": "a", "dtype": "int64", "shape": [3]}]}, "-1"),
    ({"kind": "tabular", "inputs": [{"dtype": "int64"}]}, "malformed input spec"),
    ({"kind": "tabular", "inputs": {"a": "int64"}}, "must be a list"),
    ({"kind": "tabular", "inputs": [{"name": "a", "dtype": "int64"},
                                    {"name": "a", "dtype": "float64"}]}, "duplicate"),
], ids=["kind", "task", "dtype", "shape", "no-name", "not-a-list", "duplicate"])
def test_from_dict_rejects_malformed_signatures(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        Signature.from_dict(data)


# ----------------------------------------------------------------------------------------------
# explicit signatures


@pytest.fixture
def scorer_sample() -> pd.DataFrame:
    return pd.DataFrame({"a": [1, 2, 3, 4], "b": [0.5, -1.0, 2.0, 0.0]})


def test_explicit_signature_replaces_inference(scorer_sample: pd.DataFrame,
                                               tmp_path: Path) -> None:
    explicit = Signature("tabular", (ColumnSpec("a", "float64"),
                                     ColumnSpec("b", "float64", nullable=True)))
    assert infer_signature(scorer_sample).input("b").nullable is False  # would be inferred
    pkg = shipyard.package(LinearScorer(2.0, 1.0), scorer_sample, name="scorer",
                           signature=explicit, model_kwargs={"weight": 2.0, "bias": 1.0})
    assert pkg.signature.inputs == explicit.inputs
    assert [o.name for o in pkg.signature.outputs] == ["score", "flag"]

    loaded = shipyard.load(pkg.save(tmp_path / "scorer"), trust=True)
    assert loaded.signature.inputs == explicit.inputs
    pred = loaded.predict({"a": [1, 2], "b": [np.nan, 3.0]})  # NaN allowed: declared nullable
    assert np.isnan(pred.outputs["score"][0])
    assert pred.outputs["score"][1] == 2.0 * 2 + 3.0 + 1.0


def test_sample_must_satisfy_the_explicit_signature(scorer_sample: pd.DataFrame) -> None:
    explicit = Signature("tabular", (ColumnSpec("a", "float64"), ColumnSpec("b", "float64"),
                                     ColumnSpec("c", "string")))
    with pytest.raises(InputValidationError, match="'c'"):
        shipyard.package(LinearScorer(), scorer_sample, name="scorer", signature=explicit)


# ----------------------------------------------------------------------------------------------
# validation and coercion


def table(*specs: ColumnSpec) -> Signature:
    return Signature("tabular", specs)


def test_ints_are_accepted_in_float_columns() -> None:
    sig = table(ColumnSpec("x", "float64"), ColumnSpec("y", "float32"))
    columns = prepare({"x": [1, 2, 3], "y": np.array([4, 5, 6], dtype=np.int64)}, sig)
    assert columns["x"].dtype == np.float64
    assert columns["y"].dtype == np.float32
    np.testing.assert_array_equal(columns["x"], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(columns["y"], [4.0, 5.0, 6.0])


def test_whole_floats_are_accepted_in_int_columns() -> None:
    columns = prepare({"n": [1.0, 2.0, -3.0]}, table(ColumnSpec("n", "int64")))
    assert columns["n"].dtype == np.int64
    np.testing.assert_array_equal(columns["n"], [1, 2, -3])


def test_output_columns_follow_the_signature_order() -> None:
    sig = table(ColumnSpec("a", "int64"), ColumnSpec("b", "string"))
    columns = prepare({"b": ["x", "y"], "a": [1, 2]}, sig)
    assert list(columns) == ["a", "b"]


def test_iso_strings_are_accepted_in_datetime_columns() -> None:
    sig = table(ColumnSpec("when", "datetime"))
    from_strings = prepare({"when": ["2024-01-02T03:04:05", "2024-02-29"]}, sig)["when"]
    stamps = [pd.Timestamp("2024-01-02 03:04:05"), pd.Timestamp("2024-02-29")]
    from_values = prepare(pd.DataFrame({"when": stamps}), sig)["when"]
    assert from_strings.dtype == np.dtype("datetime64[ns]")
    np.testing.assert_array_equal(from_strings, from_values)
    np.testing.assert_array_equal(from_strings, np.array(["2024-01-02T03:04:05", "2024-02-29"],
                                                         dtype="datetime64[ns]"))


def test_non_dates_are_rejected_in_datetime_columns() -> None:
    with pytest.raises(InputValidationError) as info:
        prepare({"when": ["yesterday", "2024-01-01"]}, table(ColumnSpec("when", "datetime")))
    assert [p.field for p in info.value.problems] == ["when"]
    assert "ISO 8601" in info.value.problems[0].message


def test_datetime_model_answers_the_same_for_every_spelling_of_a_time(tmp_path: Path) -> None:
    when = pd.date_range("2024-01-01", periods=48, freq="h")
    pkg = shipyard.package(HoursSinceEpoch(), pd.DataFrame({"when": when}), name="hours")
    assert pkg.signature.input("when").dtype == "datetime"
    loaded = shipyard.load(pkg.save(tmp_path / "hours"), trust=True)

    naive = loaded.predict(pd.DataFrame({"when": pd.to_datetime(["2024-05-01 10:00"])}))
    expected = np.datetime64("2024-05-01T10:00", "h").astype(np.int64)
    assert naive.predictions.tolist() == [expected]
    iso = loaded.predict([{"when": "2024-05-01T10:00:00"}])
    aware = loaded.predict(pd.DataFrame({"when": pd.to_datetime(["2024-05-01 12:00"]).tz_localize(
        "Europe/Paris")}))  # 12:00 in Paris in May is 10:00 UTC
    assert iso.predictions.tolist() == [expected]
    assert aware.predictions.tolist() == [expected]


def test_unknown_categories_reject_or_pass() -> None:
    sig = table(ColumnSpec("city", "string", nullable=True, categories=("lyon", "paris")))
    data = {"city": ["paris", "atlantis", None, "lyon", "eldorado"]}
    with pytest.raises(InputValidationError) as info:
        prepare(data, sig, unknown_categories="reject")
    (problem,) = info.value.problems
    assert problem.field == "city"
    assert "'atlantis'" in problem.message
    assert "'eldorado'" in problem.message
    assert "None" not in problem.message.split("(known")[0]  # a missing value is not a category
    passed = prepare(data, sig, unknown_categories="pass")
    assert passed["city"].tolist() == ["paris", "atlantis", None, "lyon", "eldorado"]
    assert prepare(data, sig)["city"].tolist() == passed["city"].tolist()  # "pass" is the default
    known = prepare({"city": ["lyon", "paris"]}, sig, unknown_categories="reject")
    assert known["city"].tolist() == ["lyon", "paris"]


def test_unknown_categories_through_a_loaded_model(
        customers: Split, customer_model: tuple[Pipeline, shipyard.Package],
        tmp_path: Path) -> None:
    model, pkg = customer_model
    loaded = shipyard.load(pkg.save(tmp_path / "pkg"))
    rows = customers.x_test.head(5).assign(city=["marseille", "paris", "paris", "nice", "lyon"])
    with pytest.raises(InputValidationError, match="marseille"):
        loaded.predict(rows, unknown_categories="reject")
    passed = loaded.predict(rows, unknown_categories="pass")
    assert passed.predictions.tolist() == model.predict(rows).tolist()
