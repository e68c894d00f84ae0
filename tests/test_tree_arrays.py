"""scikit-learn trees' ONNX node attributes built from the fitted arrays (tree_arrays) are the
ones skl2onnx's node-by-node loop writes, thresholds kept as fitted; outside the context,
and on other threads, skl2onnx's own function runs."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from skl2onnx.common import tree_ensemble
from skl2onnx.operator_converters import random_forest
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from shipyard.runtimes.adapters.tree_arrays import add_tree, arrays_from_trees

ORIGINAL = tree_ensemble.add_tree_to_attribute_pairs


def fitted_trees() -> list[tuple[str, Any, bool, bool]]:
    """(name, tree_, is_classifier, leaf weights are counts) for each family's trees."""
    x3, y3 = make_classification(300, n_features=5, n_informative=3, n_classes=3,
                                 random_state=0)
    x2, y2 = make_classification(300, n_features=5, random_state=1)
    xr, yr = make_regression(300, n_features=5, random_state=2)
    forest = RandomForestClassifier(3, max_depth=5, random_state=0).fit(x3, y3)
    boosted = GradientBoostingClassifier(n_estimators=2, random_state=0).fit(x3, y3)
    return [("forest-3-classes", forest.estimators_[0].tree_, True, True),
            ("tree-2-classes", DecisionTreeClassifier(max_depth=4).fit(x2, y2).tree_, True,
             True),
            ("boosting-stage", boosted.estimators_[1][2].tree_, True, False),
            ("extra-trees", ExtraTreesRegressor(2, max_depth=6, random_state=0)
             .fit(xr, yr).estimators_[1].tree_, False, False),
            ("tree-regressor", DecisionTreeRegressor(max_depth=6).fit(xr, yr).tree_, False,
             False)]


def empty(is_classifier: bool) -> dict[str, list[Any]]:
    return (tree_ensemble.get_default_tree_classifier_attribute_pairs() if is_classifier
            else tree_ensemble.get_default_tree_regressor_attribute_pairs())


@pytest.mark.parametrize("case", fitted_trees(), ids=lambda c: c[0])
def test_arrays_give_the_attributes_of_the_node_loop(case: tuple[str, Any, bool, bool]) -> None:
    _, tree, is_classifier, counts = case
    want, got = empty(is_classifier), empty(is_classifier)
    for attrs, build in ((want, ORIGINAL), (got, None)):
        for tree_id, bias in ((0, 0), (1, 2)):
            if build is None:
                add_tree(attrs, is_classifier, tree, tree_id, 0.1, bias, counts)
            else:  # no threshold adjustment: the fitted thresholds
                build(attrs, is_classifier, tree, tree_id, 0.1, bias, counts, False,
                      dtype=np.float64)
    assert set(got) == set(want)
    for key, values in want.items():
        assert np.array_equal(np.asarray(got[key]), np.asarray(values)), key
    internal = np.asarray(got["nodes_modes"][:tree.node_count]) != "LEAF"
    np.testing.assert_array_equal(np.asarray(got["nodes_values"][:tree.node_count])[internal],
                                  tree.threshold[internal])


def test_only_the_converting_thread_inside_the_context_is_rerouted() -> None:
    tree = fitted_trees()[1][1]
    calls: list[str] = []
    real = ORIGINAL

    def spy(*args: Any, **kwargs: Any) -> None:
        calls.append(threading.current_thread().name)
        real(*args, **kwargs)

    def convert_elsewhere() -> None:
        random_forest.add_tree_to_attribute_pairs(empty(True), True, tree, 0, 1.0, 0, True,
                                                  False, dtype=np.float64)

    import shipyard.runtimes.adapters.tree_arrays as module

    with arrays_from_trees():
        module._original[0] = spy
        try:
            random_forest.add_tree_to_attribute_pairs(empty(True), True, tree, 0, 1.0, 0,
                                                      True, False, dtype=np.float64)
            assert calls == []  # this thread: built from the arrays
            other = threading.Thread(target=convert_elsewhere, name="other")
            other.start()
            other.join()
            assert calls == ["other"]  # another thread: skl2onnx's own loop
        finally:
            module._original[0] = real
    module._original[0] = spy
    try:
        convert_elsewhere()  # this thread, the context closed: skl2onnx's own loop again
    finally:
        module._original[0] = real
    assert calls == ["other", threading.current_thread().name]
