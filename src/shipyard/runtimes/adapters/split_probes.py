"""Rows that sit exactly on a tree model's split thresholds: the parity check's hard cases.

Training rows never lie near a split (a threshold sits halfway between two training values),
so a converted tree model that rounds thresholds or inputs differently from the native one
passes parity on them and then differs on new rows. ``threshold_probes`` reads every split
(feature, threshold) from the converted graph's tree nodes, finds a base row that reaches the
split (the trees are walked on the base rows), and moves one raw input column of that row
until the tree's input feature crosses the threshold: the two adjacent float64 raw values on
either side of the crossing become probe rows. The crossing is found by bisection through
the native preprocessing (``tree_input``: a Pipeline's transformers, a scaler included), for
four readings of a split (``z <= t``, ``z < t``, and both after rounding ``z`` to float32,
which is what scikit-learn's trees and XGBoost compare), so whichever rule the native model
uses, its decision flips between the two rows of a pair.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.types import Array, Columns

TREE_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")
_MODES = {"BRANCH_LEQ": 0, "BRANCH_LT": 1, "BRANCH_GTE": 2, "BRANCH_GT": 3,
          "BRANCH_EQ": 4, "BRANCH_NEQ": 5, "LEAF": 6}
_ORDER_MASK = np.int64(0x7FFF_FFFF_FFFF_FFFF)
TreeInput = Callable[[Columns], Array]


@dataclass
class Splits:
    """Every node of every tree node in a graph, as flat arrays (children as indices)."""

    feature: Array
    value: Array
    mode: Array
    true_child: Array
    false_child: Array
    missing_true: Array
    roots: Array

    @property
    def internal(self) -> Array:
        return np.flatnonzero(self.mode != _MODES["LEAF"])


def read_splits(onnx_bytes: bytes) -> Splits | None:
    """The splits of the graph's tree-ensemble nodes; None when it has none."""
    import onnx
    from onnx import helper, numpy_helper

    graph = onnx.load_from_string(onnx_bytes).graph
    parts: list[dict[str, Array]] = []
    offset = 0
    for node in graph.node:
        if node.op_type in TREE_OPS:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if "nodes_values_as_tensor" in attrs:
                attrs["nodes_values"] = numpy_helper.to_array(attrs["nodes_values_as_tensor"])
            parts.append(_tree_node(attrs, offset))
            offset += len(parts[-1]["mode"])
    if not parts:
        return None
    return Splits(**{k: np.concatenate([p[k] for p in parts]) for k in parts[0]})


def _tree_node(attrs: dict[str, Any], offset: int) -> dict[str, Array]:
    """One tree-ensemble node's nodes, numbered from ``offset``."""
    tree = np.asarray(attrs["nodes_treeids"], dtype=np.int64)
    ids = np.asarray(attrs["nodes_nodeids"], dtype=np.int64)
    span = int(ids.max()) + 1 if len(ids) else 1
    keys = tree * span + ids  # (tree, node id) -> one number; its position is the node
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    modes = np.array([_MODES.get(m.decode() if isinstance(m, bytes) else m, _MODES["LEAF"])
                      for m in attrs["nodes_modes"]], dtype=np.int64)
    leaf = modes == _MODES["LEAF"]
    children = []
    for key in ("nodes_truenodeids", "nodes_falsenodeids"):
        wanted = tree * span + np.asarray(attrs[key], dtype=np.int64)
        at = np.minimum(np.searchsorted(sorted_keys, wanted), max(len(keys) - 1, 0))
        found = (sorted_keys[at] == wanted) & ~leaf if len(keys) else leaf
        children.append(np.where(found, order[at] + offset, -1))
    is_child = np.zeros(len(ids), dtype=bool)
    for arr in children:
        is_child[arr[arr >= 0] - offset] = True
    missing = np.asarray(attrs.get("nodes_missing_value_tracks_true") or [0] * len(ids))
    return {"feature": np.asarray(attrs["nodes_featureids"], dtype=np.int64),
            "value": np.asarray(attrs["nodes_values"], dtype=np.float64), "mode": modes,
            "true_child": children[0], "false_child": children[1],
            "missing_true": missing.astype(bool), "roots": np.flatnonzero(~is_child) + offset}


def reaching_rows(splits: Splits, z: Array) -> Array:
    """For each node, one row of ``z`` (the trees' input) whose path passes it, else -1."""
    first = np.full(len(splits.mode), -1, dtype=np.int64)
    rows = np.repeat(np.arange(len(z)), len(splits.roots))
    pos = np.tile(splits.roots, len(z))
    while len(pos):
        first[pos] = rows
        internal = splits.mode[pos] != _MODES["LEAF"]
        rows, pos = rows[internal], pos[internal]
        x = z[rows, splits.feature[pos]]
        go_true = _decide(x, splits.value[pos], splits.mode[pos])
        go_true = np.where(np.isnan(x), splits.missing_true[pos], go_true)
        pos = np.where(go_true, splits.true_child[pos], splits.false_child[pos])
        keep = pos >= 0
        rows, pos = rows[keep], pos[keep]
    return first


def _decide(x: Array, t: Array, mode: Array) -> Array:
    with np.errstate(invalid="ignore"):
        table = np.stack([x <= t, x < t, x >= t, x > t, x == t, x != t, x != x])
    return table[mode, np.arange(len(x))]


def threshold_probes(onnx_bytes: bytes, base: Columns, float_columns: Sequence[str],
                     tree_input: TreeInput, *, max_splits: int = 512) -> Columns | None:
    """Probe rows (two per split crossing found) built from ``base``; None if no tree."""
    splits = read_splits(onnx_bytes)
    if splits is None or not float_columns:
        return None
    z = np.asarray(tree_input(base), dtype=np.float64)
    feature_column = _feature_columns(base, float_columns, tree_input, z)
    reach = reaching_rows(splits, z)
    nodes = splits.internal
    nodes = nodes[(reach[nodes] >= 0)
                  & np.isin(splits.feature[nodes], list(feature_column))]
    if len(nodes) > max_splits:
        nodes = nodes[np.linspace(0, len(nodes) - 1, max_splits).astype(int)]
    if not len(nodes):
        return _take(base, np.array([], dtype=np.int64))
    features = splits.feature[nodes]
    columns = np.array([feature_column[int(f)] for f in features], dtype=object)
    return _crossings(base, reach[nodes], columns, features, splits.value[nodes], tree_input)


def _feature_columns(base: Columns, float_columns: Sequence[str], tree_input: TreeInput,
                     z: Array) -> dict[int, str]:
    """Tree input feature -> the one raw float column that moves it (found by perturbing)."""
    batch = _take(base, np.zeros(len(float_columns), dtype=np.int64))
    for i, name in enumerate(float_columns):
        col = base[name]
        finite = col[np.isfinite(col)]
        centre = float(np.median(finite)) if len(finite) else 0.0
        spread = float(np.std(finite)) if len(finite) else 1.0
        batch[name][i] = centre + 3 * (spread or 1.0) + 1.0
    moved = np.asarray(tree_input(batch), dtype=np.float64)
    with np.errstate(invalid="ignore"):
        changed = ~((moved == z[:1]) | (np.isnan(moved) & np.isnan(z[:1])))
    owners: dict[int, str] = {}
    for feature in range(z.shape[1]):
        movers = np.flatnonzero(changed[:, feature])
        if len(movers) == 1:
            owners[feature] = float_columns[int(movers[0])]
    return owners


def _crossings(base: Columns, rows: Array, columns: Array, features: Array, values: Array,
               tree_input: TreeInput) -> Columns:
    n_rules = 4  # z <= t, z < t, f32(z) <= t, f32(z) < t
    rule = np.repeat(np.arange(n_rules), len(rows))
    rows, columns = np.tile(rows, n_rules), np.tile(columns, n_rules)
    features, values = np.tile(features, n_rules), np.tile(values, n_rules)
    lo, hi = _brackets(base, columns)

    def side(x: Array) -> Array:
        zs = np.asarray(tree_input(_with(base, rows, columns, x)), dtype=np.float64)
        zf = zs[np.arange(len(x)), features]
        z32 = zf.astype(np.float32).astype(np.float64)
        with np.errstate(invalid="ignore"):
            table = np.stack([zf <= values, zf < values, z32 <= values, z32 < values])
        return table[rule, np.arange(len(x))]

    lo_side = side(lo)
    ok = lo_side != side(hi)
    rows, columns, features, values = rows[ok], columns[ok], features[ok], values[ok]
    rule, lo_side, lo, hi = rule[ok], lo_side[ok], _key(lo[ok]), _key(hi[ok])
    for _ in range(70):  # 64 halvings reach adjacent floats
        mid = (lo >> 1) + (hi >> 1) + (lo & hi & 1)
        if np.all(mid == lo):
            break
        same = side(_float(mid)) == lo_side
        lo, hi = np.where(same, mid, lo), np.where(same, hi, mid)
    pairs = np.concatenate([_float(lo), _float(hi)])
    return _with(base, np.tile(rows, 2), np.tile(columns, 2), pairs)


def _brackets(base: Columns, columns: Array) -> tuple[Array, Array]:
    lo, hi = np.empty(len(columns)), np.empty(len(columns))
    for name in set(columns.tolist()):
        col = base[name]
        finite = col[np.isfinite(col)].astype(np.float64)
        a, b = (float(finite.min()), float(finite.max())) if len(finite) else (-1.0, 1.0)
        span = (b - a) or max(abs(a), 1.0)
        where = columns == name
        lo[where], hi[where] = a - span, b + span
    return lo, hi


def _key(x: Array) -> Array:
    """float64 -> int64 that orders like the floats (adjacent floats: adjacent ints)."""
    bits = np.ascontiguousarray(x, dtype=np.float64).view(np.int64)
    return bits ^ ((bits >> 63) & _ORDER_MASK)


def _float(key: Array) -> Array:
    bits = key ^ ((key >> 63) & _ORDER_MASK)
    return np.ascontiguousarray(bits).view(np.float64)


def _take(base: Columns, rows: Array) -> Columns:
    return {k: v[rows].copy() for k, v in base.items()}


def _with(base: Columns, rows: Array, columns: Array, values: Any) -> Columns:
    batch = _take(base, rows)
    for name in set(columns.tolist()):
        where = columns == name
        batch[name][where] = np.asarray(values)[where]
    return batch
