"""Profiles: per-column statistics, mergeability, compactness, the binary layout, errors,
and the reference profile a package ships."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import shipyard
from shipyard.errors import ProfileError, ShipyardError
from shipyard.profiles import ColumnKind, ColumnProfile, Profile, profile, value_key


def table(n: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    x = rng.normal(10, 2, n)
    x[rng.random(n) < 0.05] = np.nan
    city = rng.choice(np.array(["paris", "rome", "oslo", None], dtype=object), n,
                      p=[0.5, 0.3, 0.15, 0.05])
    return {"x": x, "k": rng.integers(0, 50, n), "city": city,
            "flag": rng.random(n) < 0.3, "churn": rng.integers(0, 2, n).astype(float)}


# ----------------------------------------------------------------------------------------------
# one profile


def test_statistics_are_exact_where_they_can_be() -> None:
    data = table(5000)
    p = profile(data)
    assert p.rows == 5000 and list(p.columns) == ["x", "k", "city", "flag", "churn"]
    x = data["x"][~np.isnan(data["x"])]
    col = p["x"]
    assert col.kind == ColumnKind.NUMERIC and col.dtype == "float64"
    assert (col.count, col.nulls, col.non_null) == (5000, 5000 - x.size, x.size)
    assert col.min == x.min() and col.max == x.max()
    assert col.mean == pytest.approx(x.mean()) and col.variance == pytest.approx(x.var())
    city = p["city"]
    assert city.kind == ColumnKind.CATEGORICAL and city.exact and city.distinct == 3
    values, counts = np.unique(data["city"][data["city"] != None], return_counts=True)  # noqa: E711
    assert city.frequencies() == dict(zip(values.tolist(), counts.tolist(), strict=True))
    assert city.nulls == int(np.sum(data["city"] == None))  # noqa: E711
    assert p["flag"].kind == ColumnKind.BINARY
    assert p["flag"].frequencies() == {"True": int(data["flag"].sum()),
                                       "False": int((~data["flag"]).sum())}
    assert p["flag"].mean == pytest.approx(data["flag"].mean())
    assert p["churn"].kind == ColumnKind.BINARY and set(p["churn"].frequencies()) == {"0", "1"}


def test_cdf_and_quantiles_within_the_sketch_error() -> None:
    x = np.random.default_rng(1).exponential(3.0, 200_000)
    col = profile({"x": x})["x"]
    points = np.quantile(x, np.linspace(0.01, 0.99, 25))
    exact = np.searchsorted(np.sort(x), points, side="right") / x.size
    eps = col.rank_error
    assert 0 < eps < 0.01
    assert np.max(np.abs(col.cdf(points) - exact)) <= eps
    q = np.linspace(0.05, 0.95, 19)
    ranks = np.searchsorted(np.sort(x), col.quantiles(q), side="right") / x.size
    assert np.max(np.abs(ranks - q)) <= eps + 1 / x.size
    assert col.cdf([-np.inf, np.inf]).tolist() == [0.0, 1.0]
    assert col.cdf(np.array([[0.0, 1e9]])).shape == (1, 2)


def test_categories_past_the_cap_switch_to_a_frequent_items_sketch() -> None:
    rng = np.random.default_rng(2)
    heavy = np.array(["a"] * 3000 + ["b"] * 2000, dtype=object)
    tail = np.array([f"id{i}" for i in range(5000)], dtype=object)
    values = np.concatenate([heavy, tail])
    rng.shuffle(values)
    col = profile({"v": values}, category_cap=100)["v"]
    assert col.kind == ColumnKind.CATEGORICAL and not col.exact and col.distinct is None
    freq = col.frequencies()
    assert abs(freq["a"] - 3000) <= 0.01 * values.size
    assert abs(freq["b"] - 2000) <= 0.01 * values.size


def test_kinds_override_inference() -> None:
    data = {"n": np.array([0.0, 1.0, 0.0, 1.0]), "c": np.array([1, 2, 3, 4])}
    assert profile(data).kinds == {"n": ColumnKind.BINARY, "c": ColumnKind.NUMERIC}
    p = profile(data, kinds={"n": "numeric", "missing": "binary"})
    assert p.kinds["n"] == ColumnKind.NUMERIC
    with pytest.raises(ProfileError, match="binary"):
        profile(data, kinds={"c": ColumnKind.BINARY})
    with pytest.raises(ProfileError, match="unknown kind"):
        profile(data, kinds={"c": "ordinal"})


def test_numbers_profiled_as_categories_share_keys_with_text() -> None:
    # class labels: an int column in the reference, floats with NaN (or text) in a log window
    ref = profile({"label": np.array([0, 1, 2, 2])}, kinds={"label": "categorical"})
    window = profile({"label": np.array([2.0, np.nan, 1.0])}, kinds=ref.kinds)
    assert ref["label"].frequencies() == {"0": 1, "1": 1, "2": 2}
    assert window["label"].frequencies() == {"1": 1, "2": 1} and window["label"].nulls == 1
    assert window.sample["label"].tolist() == ["2", None, "1"]
    merged = ref.merge(window).merge(profile({"label": ["0", "3"]}, kinds=ref.kinds))
    assert merged["label"].frequencies() == {"0": 2, "1": 2, "2": 3, "3": 1}
    assert merged["label"].kind == ColumnKind.CATEGORICAL
    assert sorted(v for v in merged.sample["label"].tolist() if v) == ["0", "0", "1", "1", "2",
                                                                       "2", "2", "3"]


def test_dataframes_arrow_tables_and_lists_give_the_same_profile() -> None:
    data = table(2000)
    frame = pd.DataFrame(data)
    frame["city"] = frame["city"].astype("category")
    from_pandas = profile(frame)
    from_arrow = profile(pa.table(data))
    lists = profile({k: v.tolist() for k, v in data.items()})
    for other in (from_pandas, from_arrow, lists):
        assert other.columns == profile(data).columns
    assert profile({"v": [1, None, 3.5]})["v"].nulls == 1  # None among numbers is a null
    nullable = profile(pd.DataFrame({"i": pd.array([1, None, 3], dtype="Int64")}))
    assert nullable["i"].nulls == 1 and nullable["i"].kind == ColumnKind.BINARY


def test_coded_text_counts_like_plain_text() -> None:
    # pandas categoricals (unused categories too), Arrow strings and dictionaries, and
    # pandas' Arrow-backed strings are counted from their codes
    values = ["b", None, "a", "b", "b", None, "c"]
    want = profile({"v": np.array(values, dtype=object)}, sample_size=4, seed=5)
    categorical = pd.Series(pd.Categorical(values, categories=["a", "b", "c", "unused"]))
    candidates = [
        pd.DataFrame({"v": categorical}),
        pa.table({"v": pa.array(values)}),
        pa.table({"v": pa.chunked_array([pa.array(values[:3]), pa.array(values[3:])])}),
        pa.table({"v": pa.array(values).dictionary_encode()}),
        pd.DataFrame({"v": pd.array(values, dtype="string[pyarrow]")}),
    ]
    for data in candidates:
        got = profile(data, sample_size=4, seed=5)
        assert got.columns == want.columns, type(data)
        assert got.sample["v"].tolist() == want.sample["v"].tolist()
    with pytest.raises(ProfileError, match="text"):
        profile(pa.table({"v": pa.array(values)}), kinds={"v": "numeric"})


def _text_forms(values: list[Any]) -> dict[str, Any]:
    """One text column with nulls held every way pandas and Arrow hold text."""
    plain = [None if v is None or v is pd.NA or v != v else v for v in values]
    return {
        "object": pd.Series(np.array(values, dtype=object)),
        "string": pd.Series(plain, dtype=pd.StringDtype("python")),
        "string-nan": pd.Series(plain, dtype=pd.StringDtype("python", na_value=np.nan)),
        "string[pyarrow]": pd.Series(plain, dtype="string[pyarrow]"),
        "category": pd.Series(pd.Categorical(plain, categories=["z", "b", "a", "c", "unused"])),
        "arrow": pa.chunked_array([pa.array(plain[:4]), pa.array(plain[4:])]),
        "numpy-object": np.array([v if v is not pd.NA else None for v in values], dtype=object),
    }


TEXT_WITH_NULLS = ["b", None, "a", np.nan, "b", pd.NA, "c", "b", None, "a"]


@pytest.mark.parametrize("form", list(_text_forms(TEXT_WITH_NULLS)))
def test_coded_and_plain_readers_count_text_alike(form: str) -> None:
    from shipyard.profiles.build import column_profile
    from shipyard.profiles.frame import Coded, to_columns

    for container in (pd.DataFrame, dict):
        data = container({"v": _text_forms(TEXT_WITH_NULLS)[form], "n": np.arange(10)})
        if container is pd.DataFrame and form in ("arrow", "numpy-object"):
            continue  # a DataFrame holds these as the pandas forms above
        coded, plain = to_columns(data, coded=True)["v"], to_columns(data)["v"]
        assert isinstance(coded, Coded), form  # counted from codes, not Python strings
        assert isinstance(plain, np.ndarray) and plain.dtype == object
        assert [value_key(v) for v in coded.values().tolist()] == \
            [value_key(v) for v in plain.tolist()]
        # a Coded column and the object array of the same values profile identically
        got, want = (column_profile("v", col, None, kll_k=200, category_cap=1000)
                     for col in (coded, plain))
        assert got == want
        assert got.frequencies() == {"b": 3, "a": 2, "c": 1} and got.nulls == 4
        assert profile(data, seed=1).sample["v"].tolist() == \
            profile(to_columns(data), seed=1).sample["v"].tolist()


@pytest.mark.parametrize("distinct", [126, 127, 128, 40_000])
def test_coded_text_counts_at_the_edges_of_narrow_codes(distinct: int) -> None:
    from shipyard.profiles.build import column_profile
    from shipyard.profiles.frame import Coded, to_columns

    values = np.array([f"v{i}" for i in range(distinct)] + [None, "v0"], dtype=object)
    coded, plain = (to_columns(pd.DataFrame({"v": values}), coded=c)["v"] for c in (True, False))
    assert isinstance(coded, Coded) and coded.codes.max() == distinct - 1
    got, want = (column_profile("v", col, None, kll_k=200, category_cap=50_000)
                 for col in (coded, plain))
    assert got == want and got.frequencies()["v0"] == 2 and got.nulls == 1
    assert coded.values().tolist() == plain.tolist()


@pytest.mark.parametrize("values", [
    ["a", 1, None, 2.0],  # text mixed with numbers: keyed one by one, 2.0 as "2"
    [True, "a", None, "a"],  # booleans among text
    [1, 2.5, None, 3],  # numbers held as objects: a numeric column
    ["a", np.datetime64("NaT"), "b", "a"],  # a null to pandas, text to value_key
    [None, np.nan, None, None],  # nothing but nulls
])
def test_object_columns_that_are_not_plain_text_stay_plain(values: list[Any]) -> None:
    from shipyard.profiles.build import column_profile
    from shipyard.profiles.frame import Coded, to_columns

    data = {"v": np.array(values, dtype=object)}
    for source in (data, pd.DataFrame(data)):
        coded, plain = to_columns(source, coded=True)["v"], to_columns(source)["v"]
        if isinstance(source, dict):  # pandas has read NaT as a null already
            assert not isinstance(coded, Coded)
        got, want = (column_profile("v", col, None, kll_k=200, category_cap=1000)
                     for col in (coded, plain))
        assert got == want
    # pandas' NA among NumPy objects: not a null that profiles take, so not coded either
    assert not isinstance(to_columns({"v": np.array(["a", pd.NA], dtype=object)},
                                     coded=True)["v"], Coded)


def test_sample_is_a_uniform_reservoir_of_whole_rows() -> None:
    n = 10_000
    data = {"i": np.arange(n), "s": np.array([str(i) for i in range(n)], dtype=object)}
    p = profile(data, sample_size=500, seed=3)
    assert len(p.sample["i"]) == 500 and len(set(p.sample["i"].tolist())) == 500
    assert p.sample["s"].tolist() == [str(i) for i in p.sample["i"]]  # same rows everywhere
    assert profile(data, sample_size=500, seed=3).sample["i"].tolist() == p.sample["i"].tolist()
    assert len(profile({"i": np.arange(10)}, sample_size=500).sample["i"]) == 10


# ----------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize(("data", "message"), [
    ({"a": []}, "empty"),
    ({}, "no columns"),
    ({"a": [1, 2], "b": [1, 2, 3]}, "different lengths"),
    ({"a": np.zeros((3, 2))}, "1-D"),
    ({"a": np.array(["2024-01-01"], dtype="datetime64[D]")}, "datetime"),
    ({"a": [[1], [2, 3]]}, "one value per row"),
    ({"a": np.array([[1], [2, 3]], dtype=object)}, "not numbers"),
    ([1, 2, 3], "cannot profile a list"),
    (pd.DataFrame([[1, 2]], columns=["a", "a"]), "repeats column names"),
])
def test_bad_input_raises_a_clear_profile_error(data: Any, message: str) -> None:
    with pytest.raises(ProfileError, match=message) as info:
        profile(data)
    assert isinstance(info.value, ShipyardError)


def test_merging_incompatible_profiles_raises() -> None:
    a = profile({"x": [1.0, 2.0, 3.0]})
    with pytest.raises(ProfileError, match="different columns"):
        a.merge(profile({"y": [1.0, 2.0, 3.0]}))
    with pytest.raises(ProfileError, match="numeric"):
        a.merge(profile({"x": ["a", "b", "c"]}))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "header", "version", "sketch"])
def test_corrupt_bytes_raise_a_profile_error(damage: str) -> None:
    good = profile(table(300)).to_bytes()
    if damage == "truncate":
        bad = good[: len(good) // 2]
    elif damage == "garbage":
        bad = b"not a profile at all"
    else:
        bad = _rewrite(good, damage)
    with pytest.raises(ProfileError):
        Profile.from_bytes(bad)


def _rewrite(blob: bytes, damage: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(blob)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "profile.json":
                header = json.loads(data)
                if damage == "header":
                    header["columns"][0]["count"] = "many"
                if damage == "version":
                    header["version"] = 99
                data = json.dumps(header).encode()
            if damage == "sketch" and info.filename.endswith(".kll"):
                data = data[:20]
            dst.writestr(info, data)
    return out.getvalue()


# ----------------------------------------------------------------------------------------------
# round trip and compactness


def test_bytes_round_trip_without_pickle(tmp_path: Path) -> None:
    p = profile(table(3000), category_cap=2)
    blob = p.to_bytes()
    q = Profile.from_bytes(blob)
    assert q.to_bytes() == blob  # deterministic: fixed timestamps, ordered members
    assert q.columns == p.columns and q.rows == p.rows and q.kinds == p.kinds
    for name in p.sample:
        assert q.sample[name].tolist() == pytest.approx(p.sample[name].tolist(), nan_ok=True) \
            if p.sample[name].dtype.kind == "f" else q.sample[name].tolist() == \
            p.sample[name].tolist()
    pts = np.array([8.0, 10.0, 12.0])
    assert q["x"].cdf(pts).tolist() == p["x"].cdf(pts).tolist()
    assert q["city"].frequencies() == p["city"].frequencies()
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        for name in archive.namelist():
            if name.endswith(".npy"):
                np.load(io.BytesIO(archive.read(name)), allow_pickle=False)
    p.save(tmp_path / "p.bin")
    assert Profile.load(tmp_path / "p.bin").summary() == p.summary()
    json.dumps(p.summary())


def test_serialized_size_is_bounded_whatever_the_row_count() -> None:
    small = len(profile(table(10_000)).to_bytes())
    large = len(profile(table(1_000_000, seed=1)).to_bytes())
    assert large < 1.25 * small
    assert large < 200_000  # 5 columns: 2000 sampled rows + sketches, well under 40 KiB/column


# ----------------------------------------------------------------------------------------------
# merge

KINDS = {"id": "numeric", "x": "numeric", "c": "categorical", "b": "binary"}
CITIES = ["paris", "rome", "oslo", "lima", "kyiv", None]


@st.composite
def tables(draw: Any, min_rows: int = 1) -> dict[str, Any]:
    n = draw(st.integers(min_rows, 600))
    floats = st.floats(-1e6, 1e6) | st.just(float("nan"))
    x = draw(hnp.arrays(np.float64, n, elements=floats))
    c = draw(st.lists(st.sampled_from(CITIES), min_size=n, max_size=n))
    b = draw(st.lists(st.sampled_from([True, False]), min_size=n, max_size=n))
    return {"x": x, "c": np.array(c, dtype=object), "b": np.array(b)}


def _with_ids(data: dict[str, Any], start: int) -> dict[str, Any]:
    n = len(data["x"])
    return {"id": np.arange(start, start + n, dtype=np.float64), **data}


@settings(max_examples=60, deadline=None)
@given(tables(), tables(), st.integers(1, 300), st.sampled_from([2, 3, 1000]))
def test_merged_profiles_match_the_profile_of_the_union(
        a: dict[str, Any], b: dict[str, Any], sample_size: int, cap: int) -> None:
    a, b = _with_ids(a, 0), _with_ids(b, len(a["x"]))
    union = {k: np.concatenate([a[k], b[k]]) for k in a}
    opts: dict[str, Any] = {"sample_size": sample_size, "category_cap": cap, "kll_k": 16,
                            "kinds": KINDS}
    merged = profile(a, **opts).merge(profile(b, **opts))
    whole = profile(union, **opts)
    assert merged.rows == whole.rows and merged.kinds == whole.kinds
    for name in whole.columns:
        _assert_column_matches(merged[name], whole[name], union[name])
    ids = merged.sample["id"]
    assert len(ids) == min(sample_size, whole.rows) == len(merged.sample["c"])
    assert len(set(ids.tolist())) == len(ids) and set(ids.tolist()) <= set(union["id"].tolist())
    rows = ids.astype(int)  # the same rows in every column
    assert merged.sample["c"].tolist() == [None if v is None else str(v)
                                           for v in union["c"][rows]]
    np.testing.assert_array_equal(merged.sample["x"], union["x"][rows])


def _assert_column_matches(got: ColumnProfile, want: ColumnProfile, values: Any) -> None:
    assert (got.count, got.nulls, got.kind, got.dtype) == (want.count, want.nulls, want.kind,
                                                           want.dtype)
    assert (got.min, got.max) == (want.min, want.max)
    if want.mean is not None:
        scale = max(1.0, abs(want.min or 0), abs(want.max or 0))
        assert got.mean == pytest.approx(want.mean, rel=1e-9, abs=1e-9 * scale)
        assert got.variance == pytest.approx(want.variance, rel=1e-7, abs=1e-9 * scale**2)
    if want.kind != ColumnKind.NUMERIC:
        assert got.exact == want.exact
        if want.exact:
            assert got.frequencies() == want.frequencies()
        else:  # both sketches: the truth lies within each estimate's guaranteed bounds
            sketch = got.items_sketch
            for key, n in _exact_counts(values).items():
                assert sketch.get_lower_bound(key) <= n <= sketch.get_upper_bound(key)
    if want.kind == ColumnKind.NUMERIC and got.non_null:
        present = np.sort(values[~np.isnan(values)])
        points = np.quantile(present, np.linspace(0, 1, 21))
        exact = np.searchsorted(present, points, side="right") / present.size
        # the sketch's 99%-confidence bound (measured: worst of 1500 merges was 0.49 of it)
        assert np.max(np.abs(got.cdf(points) - exact)) <= got.rank_error + 1e-12
        q = np.linspace(0, 1, 11)
        ranks = np.searchsorted(present, got.quantiles(q), side="right") / present.size
        assert np.all(ranks >= q - got.rank_error - 1e-12)


def _exact_counts(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values.tolist():
        if v is not None:
            out[str(v)] = out.get(str(v), 0) + 1
    return out


def test_merged_reservoir_is_uniform_over_the_union() -> None:
    # A has 1000 rows, B 3000: a uniform sample of 100 takes a quarter of its rows from A,
    # and every row of the union is equally likely to be kept
    hits = np.zeros(4000)
    from_a = []
    for seed in range(400):
        a = profile({"id": np.arange(1000)}, sample_size=100, seed=seed)
        b = profile({"id": np.arange(1000, 4000)}, sample_size=100, seed=seed + 1000)
        ids = a.merge(b, seed=seed).sample["id"]
        hits[ids] += 1
        from_a.append(np.mean(ids < 1000))
    assert np.mean(from_a) == pytest.approx(0.25, abs=0.01)
    per_block = hits.reshape(40, 100).sum(axis=1)  # 1000 expected per block of 100 rows
    assert per_block.min() > 850 and per_block.max() < 1150


def test_binary_columns_widen_when_a_merge_sees_a_third_value() -> None:
    a = profile({"n": [0, 1, 0, 1], "s": ["x", "y", "x", "y"]})
    b = profile({"n": [1, 2, 2, 2], "s": ["y", "z", "z", "z"]})
    assert a.kinds == b.kinds == {"n": ColumnKind.BINARY, "s": ColumnKind.BINARY}
    merged = a.merge(b)
    assert merged.kinds == {"n": ColumnKind.NUMERIC, "s": ColumnKind.CATEGORICAL}
    assert merged["n"].quantiles([0.0, 1.0]).tolist() == [0.0, 2.0]
    assert merged["s"].frequencies() == {"x": 2, "y": 3, "z": 3}
    assert a.merge(a).kinds == a.kinds


def test_a_side_with_only_nulls_takes_the_other_sides_kind() -> None:
    window = profile({"target": np.array([None, None], dtype=object)})
    labelled = profile({"target": [0.5, 1.5, 2.5]})
    for merged in (window.merge(labelled), labelled.merge(window)):
        col = merged["target"]
        assert (col.kind, col.count, col.nulls, col.mean) == (ColumnKind.NUMERIC, 5, 2, 1.5)
        assert len(merged.sample["target"]) == 5


def test_public_names() -> None:
    assert shipyard.profile is profile and shipyard.Profile is Profile


# ----------------------------------------------------------------------------------------------
# the package's reference profile


@pytest.fixture(scope="module")
def packaged_classifier(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Path]:
    from sklearn.preprocessing import OneHotEncoder

    from conftest import column_pipeline, make_customers

    frame = make_customers(400)
    x, y = frame.drop(columns="target"), frame["target"]
    model = column_pipeline(OneHotEncoder(handle_unknown="ignore")).fit(x, y)
    path = tmp_path_factory.mktemp("pkg") / "customers"
    shipyard.package(model, x, name="customers", target=y).save(path)
    return x, y, path


def test_package_ships_the_profile_of_its_sample_and_outputs(
        packaged_classifier: tuple[Any, Any, Path]) -> None:
    x, y, path = packaged_classifier
    manifest = json.loads((path / "shipyard.json").read_text())
    assert manifest["reference_profile"] == "profile.bin"
    entry = next(f for f in manifest["files"] if f["path"] == "profile.bin")
    assert entry["size"] == (path / "profile.bin").stat().st_size
    model = shipyard.load(path)
    ref = model.reference_profile()
    assert isinstance(ref, Profile) and ref.rows == len(x)
    assert list(ref.columns) == [*x.columns, "prediction", "proba.0", "proba.1", "proba.2",
                                 "target"]
    assert ref.kinds["prediction"] == ref.kinds["target"] == ColumnKind.CATEGORICAL
    assert ref["target"].frequencies() == {str(k): int(v) for k, v in y.value_counts().items()}
    predicted = model.predict(x).predictions
    assert ref["prediction"].frequencies() == {str(k): int(v) for k, v in
                                               zip(*np.unique(predicted, return_counts=True),
                                                   strict=True)}
    assert ref["proba.0"].mean == pytest.approx(model.predict(x).probabilities[:, 0].mean(),
                                                abs=1e-4)
    assert ref["city"].frequencies() == x["city"].value_counts().to_dict()
    assert ref["age"].min == x["age"].min() and ref["age"].max == x["age"].max()


def test_a_damaged_profile_fails_the_package_check(
        packaged_classifier: tuple[Any, Any, Path], tmp_path: Path) -> None:
    import shutil

    _, _, path = packaged_classifier
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    (copy / "profile.bin").write_bytes(b"x" + (copy / "profile.bin").read_bytes()[1:])
    with pytest.raises(shipyard.TamperedFileError):
        shipyard.load(copy)


def test_a_package_without_a_profile_has_none(
        packaged_classifier: tuple[Any, Any, Path], tmp_path: Path) -> None:
    import shutil

    _, _, path = packaged_classifier
    old = tmp_path / "old"
    shutil.copytree(path, old)
    manifest = json.loads((old / "shipyard.json").read_text())
    manifest["reference_profile"] = None
    manifest["files"] = [f for f in manifest["files"] if f["path"] != "profile.bin"]
    (old / "shipyard.json").write_text(json.dumps(manifest))
    (old / "profile.bin").unlink()
    assert shipyard.load(old).reference_profile() is None


def test_regressor_profile_has_numeric_prediction_and_target() -> None:
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=200), "b": rng.integers(0, 2, 200)})
    y = 3 * x["a"] + x["b"]
    pkg = shipyard.package(LinearRegression().fit(x, y), x, name="reg", target=y.to_numpy()[:50])
    ref = Profile.from_bytes(pkg.files["profile.bin"])
    assert list(ref.columns) == ["a", "b", "prediction"]  # a target of the wrong length is left out
    assert pkg.manifest.metadata["reference"] == {"source": "sample", "rows": 200, "target": False}
    assert ref.kinds == {"a": ColumnKind.NUMERIC, "b": ColumnKind.BINARY,
                         "prediction": ColumnKind.NUMERIC}
    assert ref["prediction"].mean == pytest.approx(y.mean(), abs=1e-4)
    with_target = shipyard.package(LinearRegression().fit(x, y), x, name="reg", target=y)
    assert Profile.from_bytes(with_target.files["profile.bin"]).kinds["target"] == \
        ColumnKind.NUMERIC
