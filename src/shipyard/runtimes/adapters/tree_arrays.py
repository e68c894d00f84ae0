"""scikit-learn trees' ONNX node attributes built from the fitted arrays, in one numpy pass.

skl2onnx's tree converters (decision trees, forests, extra trees, gradient boosting) add
node by node in Python and, in a double graph, search each threshold's float32 switch point
by bisection (``sklearn_threshold``): 5 s of a 100-tree forest's 8 s packaging. Under
``exact_trees`` the graph compares ``float64(float32(x))`` with the threshold, which is the
comparison scikit-learn makes (``float32(x) <= threshold``), so the fitted float64 threshold
is already exact and no search is needed.

``arrays_from_trees()`` makes skl2onnx's ``add_tree_to_attribute_pairs`` write the same
attributes (same order, same leaf weights: ``tree_weight`` times the leaf value, divided by
its sum where the leaves hold counts, one weight for a binary classifier) from whole arrays,
keeping the fitted thresholds. It holds for the current thread while the context is open;
elsewhere (other threads, other conversions) skl2onnx's own function runs unchanged.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

_MODULES = ("skl2onnx.common.tree_ensemble", "skl2onnx.operator_converters.decision_tree",
            "skl2onnx.operator_converters.random_forest",
            "skl2onnx.operator_converters.gradient_boosting")
_active = threading.local()
_lock = threading.Lock()
_original: list[Callable[..., Any]] = []


@contextmanager
def arrays_from_trees() -> Iterator[None]:
    """While open, this thread's skl2onnx tree conversions build nodes from the arrays."""
    _install()
    previous = getattr(_active, "on", False)
    _active.on = True
    try:
        yield
    finally:
        _active.on = previous


def _install() -> None:
    import importlib

    with _lock:
        if _original:
            return
        base = importlib.import_module(_MODULES[0])
        _original.append(getattr(base, "add_tree_to_attribute_pairs"))  # noqa: B009
        for name in _MODULES:
            module = importlib.import_module(name)
            if getattr(module, "add_tree_to_attribute_pairs", None) is _original[0]:
                setattr(module, "add_tree_to_attribute_pairs", _dispatch)  # noqa: B010


def _dispatch(attr_pairs: dict[str, list[Any]], is_classifier: bool, tree: Any, tree_id: int,
              tree_weight: float, weight_id_bias: int, leaf_weights_are_counts: bool,
              adjust_threshold_for_sklearn: bool = False, dtype: Any = None) -> None:
    if not getattr(_active, "on", False):
        _original[0](attr_pairs, is_classifier, tree, tree_id, tree_weight, weight_id_bias,
                     leaf_weights_are_counts, adjust_threshold_for_sklearn, dtype=dtype)
        return
    add_tree(attr_pairs, is_classifier, tree, tree_id, tree_weight, weight_id_bias,
             leaf_weights_are_counts)


def add_tree(attr_pairs: dict[str, list[Any]], is_classifier: bool, tree: Any, tree_id: int,
             tree_weight: float, weight_id_bias: int, leaf_weights_are_counts: bool) -> None:
    """One fitted ``tree_``'s nodes and leaf weights appended to ``attr_pairs``."""
    n = int(tree.node_count)
    ids = np.arange(n)
    left = np.asarray(tree.children_left[:n], dtype=np.int64)
    right = np.asarray(tree.children_right[:n], dtype=np.int64)
    internal = (left > ids) | (right > ids)
    attr_pairs["nodes_treeids"].extend([tree_id] * n)
    attr_pairs["nodes_nodeids"].extend(ids.tolist())
    attr_pairs["nodes_featureids"].extend(
        np.where(internal, np.asarray(tree.feature[:n]), 0).tolist())
    attr_pairs["nodes_modes"].extend(np.where(internal, "BRANCH_LEQ", "LEAF").tolist())
    attr_pairs["nodes_values"].extend(
        np.where(internal, np.asarray(tree.threshold[:n], dtype=np.float64), 0.0).tolist())
    attr_pairs["nodes_truenodeids"].extend(np.where(internal, left, 0).tolist())
    attr_pairs["nodes_falsenodeids"].extend(np.where(internal, right, 0).tolist())
    attr_pairs["nodes_missing_value_tracks_true"].extend([0] * n)
    attr_pairs["nodes_hitrates"].extend([1.0] * n)

    leaves = np.flatnonzero(~internal)
    weights = np.asarray(tree.value, dtype=np.float64)[leaves].reshape(len(leaves), -1)
    factor = np.full(len(leaves), float(tree_weight))
    if leaf_weights_are_counts:
        sums = weights.sum(axis=1)
        factor = factor / np.where(sums != 0.0, sums, 1.0)
    weights = weights * factor[:, None]
    if weights.shape[1] == 2 and is_classifier:
        weights = weights[:, 1:]
    k = weights.shape[1]
    prefix = "class" if is_classifier else "target"
    attr_pairs[f"{prefix}_treeids"].extend([tree_id] * (len(leaves) * k))
    attr_pairs[f"{prefix}_nodeids"].extend(np.repeat(leaves, k).tolist())
    attr_pairs[f"{prefix}_ids"].extend(np.tile(np.arange(k) + weight_id_bias,
                                               len(leaves)).tolist())
    attr_pairs[f"{prefix}_weights"].extend(weights.ravel().tolist())
