"""compare(): the statistics against scipy, method choice and overrides, inputs and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from shipyard.errors import MonitoringError
from shipyard.monitoring import DEFAULT_THRESHOLDS, DriftReport, compare
from shipyard.monitoring.correction import adjust as _adjust
from shipyard.monitoring.multivariate import encode
from shipyard.monitoring.statistics import (
    Counts,
    NumericValues,
    _exact_distances,
    binary_outcome,
    categorical_outcome,
)
from shipyard.profiles import profile


def numbers(values: np.ndarray) -> NumericValues:
    return NumericValues(values.size, float(values.mean()), float(values.std()), values=values)


def mixed(seed: int = 0, rows: int = 2000, shift: float = 0.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.normal(shift, 1, rows),
        "n": rng.integers(0, 5, rows),
        "c": np.array(["a", "b", "c"], dtype=object)[rng.choice(3, rows, p=[0.5, 0.3, 0.2])],
        "b": rng.random(rows) < 0.4,
    }


# ---------------------------------------------------------------- statistics vs scipy


@pytest.mark.parametrize("case", ["continuous", "ties", "zeros", "sizes", "tiny"])
def test_exact_ks_and_wasserstein_match_scipy(case: str) -> None:
    rng = np.random.default_rng(3)
    a, b = {
        "continuous": (rng.normal(size=3000), rng.normal(0.1, 1.2, size=2500)),
        "ties": (rng.integers(0, 6, 4000).astype(float), rng.integers(0, 7, 3000) * 1.0),
        "zeros": (np.array([0.0, -0.0, 1, 1, 2, -3]), np.array([-0.0, 0.0, 2, 2, 5])),
        "sizes": (rng.exponential(size=50), rng.exponential(size=5000)),
        "tiny": (np.array([1.0]), np.array([2.0, 3.0])),
    }[case]
    d, w1 = _exact_distances(a.copy(), b.copy())
    assert d == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)
    assert w1 == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9, abs=1e-12)


def test_exact_distances_leave_the_inputs_alone() -> None:
    a, b = np.array([3.0, 1.0, 2.0]), np.array([0.5, 4.0])
    _exact_distances(a, b)
    assert a.tolist() == [3.0, 1.0, 2.0] and b.tolist() == [0.5, 4.0]


def test_ks_p_value_matches_scipy() -> None:
    rng = np.random.default_rng(4)
    # exact; scipy's asymptotic; Kolmogorov's limit with Stephens' correction (within a few %)
    for n, m, rel in [(40, 60, 1e-9), (600, 500, 1e-3), (3000, 2000, 0.05)]:
        a, b = rng.normal(size=n), rng.normal(0.15, 1, size=m)
        report = compare({"x": a}, {"x": b}, multivariate=False)
        expected = stats.ks_2samp(a, b, method="exact" if n * m <= 10_000 else "asymp")
        assert report.columns["x"].statistic == pytest.approx(expected.statistic)
        assert report.columns["x"].p_value == pytest.approx(expected.pvalue, rel=rel)


def test_chi2_and_jensenshannon_match_scipy() -> None:
    ref = Counts({"a": 500, "b": 300, "c": 200}, 1000)
    cur = Counts({"a": 400, "b": 350, "c": 230, "d": 20}, 1000)
    out = categorical_outcome("chi2", ref, cur)
    table = np.array([[500, 300, 200, 0], [400, 350, 230, 20]])
    chi2 = stats.chi2_contingency(table, correction=False)
    assert out.statistic == pytest.approx(chi2.statistic)
    assert out.p_value == pytest.approx(chi2.pvalue)
    js = distance.jensenshannon(table[0] / 1000, table[1] / 1000, base=2)
    assert out.effect_size == pytest.approx(js)
    assert out.detail["new_categories"] == ["d"]
    assert out.detail["new_share"] == pytest.approx(0.02)


def test_chi2_pools_rare_categories() -> None:
    ref = Counts({"a": 60, "b": 35, "r1": 2, "r2": 3}, 100)
    cur = Counts({"a": 55, "b": 40, "r1": 1, "r3": 4}, 100)
    out = categorical_outcome("chi2", ref, cur)
    assert out.detail["dof"] == 2  # a, b, and one pooled cell of the rare values


def test_binary_z_test_and_cohens_h() -> None:
    out = binary_outcome(Counts({"0": 600, "1": 400}, 1000), Counts({"0": 500, "1": 500}, 1000))
    pooled = 0.45
    z = 0.1 / np.sqrt(pooled * (1 - pooled) * (2 / 1000))
    assert out.statistic == pytest.approx(z)
    # the p-value is Fisher's exact test's at every size (the normal tail is too thin for
    # rare flags); here, with 900 of each value, it lies near the z-test's
    assert out.p_value == pytest.approx(stats.fisher_exact([[400, 600], [500, 500]]).pvalue)
    assert out.p_value == pytest.approx(2 * stats.norm.sf(z), rel=0.3)
    h = 2 * np.arcsin(np.sqrt(0.5)) - 2 * np.arcsin(np.sqrt(0.4))
    assert out.effect_size == pytest.approx(h)
    small = binary_outcome(Counts({"n": 19, "y": 1}, 20), Counts({"n": 15, "y": 5}, 20))
    assert small.detail["p_method"] == "fisher_exact"  # 3 expected "y" a side: too few for z
    assert small.p_value == pytest.approx(stats.fisher_exact([[1, 19], [5, 15]]).pvalue)


def test_benjamini_hochberg_matches_scipy() -> None:
    p = np.array([0.001, 0.2, 0.03, 0.04, 0.5, 0.011])
    adjusted = _adjust({str(i): float(v) for i, v in enumerate(p)}, "bh")
    assert [adjusted[str(i)] for i in range(len(p))] == pytest.approx(
        stats.false_discovery_control(p, method="bh"))
    bonferroni = _adjust({"a": 0.02, "b": 0.5, "c": None}, "bonferroni")
    assert bonferroni == {"a": pytest.approx(0.04), "b": 1.0, "c": None}


def test_psi_of_identical_halves_is_zero_and_grows_with_shift() -> None:
    rng = np.random.default_rng(6)
    a = rng.normal(size=20_000)
    same = compare({"x": a}, {"x": a.copy()}, methods={"x": "psi"}, multivariate=False)
    moved = compare({"x": a}, {"x": a + 0.5}, methods={"x": "psi"}, multivariate=False)
    assert same.columns["x"].effect_size == pytest.approx(0.0, abs=1e-12)
    assert same.columns["x"].p_value == pytest.approx(1.0)
    assert moved.columns["x"].effect_size > 0.2 and moved.columns["x"].drifted
    assert moved.columns["x"].detail["bins"] == 10


# ---------------------------------------------------------------- choice and overrides


def test_methods_chosen_by_kind() -> None:
    report = compare(mixed(0), mixed(1), multivariate=False)
    methods = {n: (c.kind, c.method, c.effect_name) for n, c in report.columns.items()}
    assert methods == {
        "x": ("numeric", "ks", "wasserstein_norm"),
        "n": ("numeric", "ks", "wasserstein_norm"),
        "c": ("categorical", "chi2", "jensenshannon"),
        "b": ("binary", "ztest", "cohens_h"),
    }
    assert all(c.detail.get("threshold_set", c.threshold) == DEFAULT_THRESHOLDS[c.effect_name]
               for c in report.columns.values())


def test_per_column_and_per_kind_method_override() -> None:
    report = compare(mixed(0), mixed(1, shift=0.5), multivariate=False,
                     methods={"x": "psi", "c": "jensenshannon", "b": "chi2",
                              "numeric": "wasserstein"})
    cols = report.columns
    assert (cols["x"].method, cols["x"].effect_name) == ("psi", "psi")
    assert cols["n"].method == "wasserstein"
    assert cols["n"].statistic == cols["n"].effect_size  # the distance is the statistic
    assert (cols["c"].method, cols["c"].effect_name) == ("jensenshannon", "jensenshannon")
    assert cols["b"].method == "chi2"
    assert cols["x"].drifted


def test_thresholds_by_column_and_by_effect() -> None:
    ref, cur = mixed(0), mixed(1, shift=0.3)
    default = compare(ref, cur, multivariate=False)
    assert default.columns["x"].drifted
    strict = compare(ref, cur, multivariate=False, thresholds={"x": 0.5})
    assert strict.columns["x"].threshold == 0.5 and not strict.columns["x"].drifted
    by_effect = compare(ref, cur, multivariate=False, thresholds={"wasserstein_norm": 0.5})
    assert by_effect.columns["n"].threshold == 0.5 and not by_effect.columns["x"].drifted


def test_binary_meeting_a_third_value_is_compared_as_numbers() -> None:
    ref = {"flag": np.array([0, 1] * 500)}
    cur = {"flag": np.array([0, 1, 2, 2] * 250)}
    col = compare(ref, cur, multivariate=False).columns["flag"]
    assert (col.kind, col.method) == ("binary", "ks")
    assert "compared as numbers" in col.detail["note"]
    assert col.drifted


def test_outputs_are_columns_and_all_null_columns_are_skipped() -> None:
    rng = np.random.default_rng(2)
    ref = {"prediction": rng.integers(0, 2, 500), "proba.1": rng.random(500),
           "target": np.full(500, np.nan)}
    cur = {"prediction": rng.integers(0, 2, 500), "proba.1": rng.random(500),
           "target": rng.integers(0, 2, 500).astype(float)}
    report = compare(ref, cur)
    assert report.columns["prediction"].method == "ztest"
    assert report.columns["proba.1"].method == "ks"
    target = report.columns["target"]
    assert target.p_value is None and not target.drifted
    assert "no non-null values in the reference" in target.detail["skipped"]
    assert not report.dataset_drift


def test_nulls_are_left_out_of_the_tests() -> None:
    a = np.random.default_rng(1).normal(size=1000)
    b = a.copy()
    b[::3] = np.nan
    col = compare({"x": a}, {"x": b}, multivariate=False).columns["x"]
    assert col.detail["n_current"] == np.count_nonzero(~np.isnan(b))
    assert not col.drifted


# ---------------------------------------------------------------- inputs


def test_profiles_and_dataframes_on_either_side() -> None:
    pd = pytest.importorskip("pandas")
    ref, cur = mixed(0), mixed(1)
    frame = pd.DataFrame(cur)
    for left, right in [(profile(ref), frame), (ref, profile(cur)),
                        (profile(ref), profile(cur))]:
        report = compare(left, right)
        assert set(report.columns) == set(ref)
        assert not report.dataset_drift
    exact = compare(ref, frame).columns["x"].detail["computation"]
    assert exact == "exact"
    # a profile whose row sample holds every row is still exact; a smaller sample is not
    assert compare(profile(ref), cur).columns["x"].detail["computation"] == "exact"
    sketched = compare(profile(ref, sample_size=500), cur).columns["x"]
    assert sketched.detail["computation"] == "sketch"


def test_columns_only_on_one_side_are_listed_not_compared() -> None:
    ref, cur = mixed(0), mixed(1)
    ref["old"] = np.zeros(2000)
    cur["new"] = np.ones(2000)
    report = compare(ref, cur, multivariate=False)
    assert report.only_reference == ("old",) and report.only_current == ("new",)
    assert set(report.columns) == {"x", "n", "c", "b"}
    subset = compare(ref, cur, columns=["x", "c"], multivariate=False)
    assert list(subset.columns) == ["x", "c"]


def test_report_is_json_and_prints_a_table() -> None:
    report = compare(mixed(0), mixed(1, shift=1.0))
    assert isinstance(report, DriftReport)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["drifted_columns"] == ["x"]
    assert {m["method"] for m in data["multivariate"]} == {
        "mmd", "domain_classifier", "pca_reconstruction"}
    text = str(report)
    assert "x" in text and "wasserstein_norm" in text and "domain_classifier" in text
    assert len(report.rows()) == 4 + 3


def test_same_seed_same_report() -> None:
    ref, cur = mixed(0, 5000), mixed(1, 5000, shift=0.1)
    assert compare(ref, cur, seed=3).to_dict() == compare(ref, cur, seed=3).to_dict()


def test_multivariate_catches_a_correlation_flip_the_columns_miss() -> None:
    rng = np.random.default_rng(9)
    n = 5000
    a = rng.normal(size=(n, 2)) @ np.array([[1, 0.9], [0, np.sqrt(1 - 0.81)]])
    b = rng.normal(size=(n, 2)) @ np.array([[1, -0.9], [0, np.sqrt(1 - 0.81)]])
    report = compare({"u": a[:, 0], "v": a[:, 1]}, {"u": b[:, 0], "v": b[:, 1]})
    assert not report.drifted_columns
    assert {m.method for m in report.multivariate if m.drifted} >= {"mmd"}
    assert report.dataset_drift


def test_encoding_standardises_numbers_and_one_hots_text() -> None:
    ref = {"x": np.array([1.0, 3.0, np.nan]), "c": np.array(["a", "b", None], dtype=object)}
    cur = {"x": np.array([5.0, 1.0, 3.0]), "c": np.array(["b", "b", "z"], dtype=object)}
    x, y, numeric, used = encode(ref, cur, {"x": (2.0, 1.0)})
    assert (numeric, used) == (1, 2)
    assert x[:, 0].tolist() == [-1.0, 1.0, 0.0]  # a null sits at the reference mean
    assert y[:, 0].tolist() == [3.0, -1.0, 1.0]
    assert x.shape[1] == y.shape[1] == 1 + 3  # b, a, z


# ---------------------------------------------------------------- errors


def test_no_shared_columns() -> None:
    with pytest.raises(MonitoringError, match="share no column"):
        compare({"a": np.zeros(5)}, {"b": np.zeros(5)})


def test_empty_data() -> None:
    with pytest.raises(MonitoringError, match="current data"):
        compare({"a": np.zeros(5)}, {"a": np.zeros(0)})
    with pytest.raises(MonitoringError, match="reference data"):
        compare({}, {"a": np.zeros(3)})


def test_unknown_method_and_inapplicable_method() -> None:
    ref, cur = mixed(0), mixed(1)
    with pytest.raises(MonitoringError, match="unknown method 'anderson'"):
        compare(ref, cur, methods={"x": "anderson"})
    with pytest.raises(MonitoringError, match="'chi2' does not apply to numeric column 'x'"):
        compare(ref, cur, methods={"x": "chi2"})
    with pytest.raises(MonitoringError, match="neither a compared column nor a kind"):
        compare(ref, cur, methods={"nope": "ks"})


def test_kind_mismatch() -> None:
    ref = {"age": np.arange(100.0)}
    cur = {"age": np.array([f"{i} years" for i in range(100)], dtype=object)}
    with pytest.raises(MonitoringError, match=r"'age' is numeric in the reference data but "
                                              r"categorical \(text\) in the current data"):
        compare(ref, cur)
    with pytest.raises(MonitoringError, match="numeric in the reference"):
        compare(profile(ref), profile(cur))


def test_bad_settings() -> None:
    ref, cur = mixed(0), mixed(1)
    with pytest.raises(MonitoringError, match="unknown correction"):
        compare(ref, cur, correction="holm")  # type: ignore[arg-type]
    with pytest.raises(MonitoringError, match="thresholds names 'nope'"):
        compare(ref, cur, thresholds={"wasserstein": 0.2, "nope": 1})
    with pytest.raises(MonitoringError, match="not on both sides"):
        compare(ref, cur, columns=["x", "missing"])
    with pytest.raises(MonitoringError, match="alpha"):
        compare(ref, cur, alpha=1.5)


def test_class_labels_profiled_as_categories_meet_raw_numbers() -> None:
    rng = np.random.default_rng(12)
    ref = {"label": rng.integers(0, 4, 3000), "x": rng.normal(size=3000)}
    cur = {"label": rng.integers(0, 4, 3000).astype(float), "x": rng.normal(size=3000)}
    report = compare(profile(ref, kinds={"label": "categorical"}), cur)
    label = report.columns["label"]
    assert (label.kind, label.method) == ("categorical", "chi2")
    assert label.detail["categories"] == 4 and not label.drifted
    assert report.multivariate[0].detail["columns_used"] == 2
    assert not report.dataset_drift


def test_nothing_usable_for_multivariate_is_skipped_with_a_reason() -> None:
    report = compare({"a": np.full(100, np.nan)}, {"a": np.arange(50.0)})
    assert report.columns["a"].detail["skipped"] == "no non-null values in the reference data"
    assert all(m.detail["skipped"] == "no column usable for multivariate tests"
               for m in report.multivariate)
    assert report.drift_share == 0.0 and not report.dataset_drift


@pytest.mark.parametrize("form", ["object", "string", "string[pyarrow]", "category", "arrow"])
def test_text_read_as_codes_or_as_objects_gives_the_same_report(
        form: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pd = pytest.importorskip("pandas")
    pa = pytest.importorskip("pyarrow")
    from shipyard.monitoring import sides
    from shipyard.profiles.frame import to_columns

    def frame(seed: int, p: list[float]) -> object:
        rng = np.random.default_rng(seed)
        values = np.array(["a", "b", "c", "d", None, np.nan, pd.NA], dtype=object)
        text = values[rng.choice(len(values), 3000, p=p)]
        plain = [None if v is None or v is pd.NA or v != v else v for v in text.tolist()]
        column = {"object": text,
                  "string": pd.array(plain, dtype=pd.StringDtype("python")),
                  "string[pyarrow]": pd.array(plain, dtype="string[pyarrow]"),
                  "category": pd.Categorical(plain),
                  "arrow": pd.arrays.ArrowExtensionArray(pa.array(plain))}[form]
        return pd.DataFrame({"t": column, "x": rng.normal(0, 1, 3000),
                             "f": pd.array(plain[::-1], dtype=object)})

    ref = frame(0, [0.4, 0.3, 0.2, 0.04, 0.02, 0.02, 0.02])
    cur = frame(1, [0.2, 0.3, 0.4, 0.04, 0.02, 0.02, 0.02])
    coded = compare(ref, cur).to_dict()
    monkeypatch.setattr(sides, "to_columns", lambda data, coded: to_columns(data))
    assert compare(ref, cur).to_dict() == coded
    assert coded["drifted_columns"] == ["t", "f"]
