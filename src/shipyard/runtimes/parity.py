"""Does a converted artifact answer as the native model does? Checked through the real load path.

Row sets, each with the native model's outputs on it: the training sample, the held-out rows
(``package(reference=...)``) and, for tree models, rows moved onto the model's own split
thresholds (``adapters/split_probes.py``): training rows never lie near a split, so they
alone cannot show a conversion that rounds a threshold.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import ConversionError
from shipyard.packaging import Manifest, Signature
from shipyard.runtimes.adapters import Artifact
from shipyard.runtimes.adapters.base import failure_text
from shipyard.runtimes.model import load, max_abs_diff
from shipyard.types import Columns

PROBA_TOLERANCE = 1e-4
VALUE_RTOL = 1e-4
RowSet = tuple[str, Any, Columns]  # (name, rows as the sample gives them, native outputs)


def check_parity(art: Artifact, sig: Signature, row_sets: list[RowSet],
                 write: Any) -> dict[str, Any]:
    """Load ``art`` (written by ``write(dir, manifest, files)``) and compare every row set.

    Returns the worst difference, the tolerance, the rows compared, whether labels agree,
    per set what was found (``checked``) and the first set that failed (``failed_on``).
    """
    checked: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="shipyard-parity-") as tmp:
        manifest = Manifest(name="parity-check", signature=sig, runtimes=(art.runtime,),
                            files=())
        write(Path(tmp), manifest, art.files)
        try:
            model = load(tmp)
        except Exception as exc:  # a graph the runtime refuses is a failed conversion
            raise ConversionError(f"the converted model does not load: "
                                  f"{failure_text(exc)}") from exc
        for name, rows, reference in row_sets:
            try:
                got = model.predict(rows).outputs
            except Exception as exc:  # a converted graph that cannot run is a failed conversion
                raise ConversionError(f"the converted model fails on the {name} rows: "
                                      f"{failure_text(exc)}") from exc
            checked[name] = compare(got, reference)
    failed = next((n for n, c in checked.items() if not c["ok"]), None)
    worst = checked[failed] if failed else max(checked.values(),
                                               key=lambda c: c["max_abs_diff"])
    return {"ok": failed is None, "max_abs_diff": max(c["max_abs_diff"] for c in checked.values()),
            "tolerance": worst["tolerance"], "rows": sum(c["rows"] for c in checked.values()),
            "labels_agree": all(c["labels_agree"] for c in checked.values()),
            "checked": checked, "failed_on": failed}


def compare(got: Columns, reference: Columns) -> dict[str, Any]:
    """Probabilities within 1e-4, values within 1e-4 x max(1, max |y|), labels equal."""
    diff = 0.0
    tolerance = PROBA_TOLERANCE
    labels_agree = True
    rows = len(next(iter(reference.values()))) if reference else 0
    for name, ref in reference.items():
        if name not in got:
            return {"ok": False, "max_abs_diff": float("inf"), "tolerance": tolerance,
                    "rows": rows, "labels_agree": False, "detail": f"output {name!r} missing"}
        if name == "label":
            labels_agree = _labels_agree(got, reference)
            continue
        if ref.dtype.kind in "iufb":
            if name != "probabilities":
                scale = float(np.max(np.abs(ref))) if ref.size else 1.0
                tolerance = max(tolerance, VALUE_RTOL * max(1.0, scale))
            diff = max(diff, max_abs_diff(got[name], ref))
    return {"ok": diff <= tolerance and labels_agree, "max_abs_diff": diff,
            "tolerance": tolerance, "rows": rows, "labels_agree": labels_agree}


def _labels_agree(got: Columns, ref: Columns) -> bool:
    """Labels match, except on rows the native model itself calls a near-tie."""
    same = np.asarray(got["label"] == ref["label"])
    if "probabilities" in ref and ref["probabilities"].shape[1] > 1:
        top2 = np.sort(ref["probabilities"], axis=1)[:, -2:]
        same = same | ((top2[:, 1] - top2[:, 0]) < 2 * PROBA_TOLERANCE)
    return bool(np.all(same))


def describe_mismatch(parity: dict[str, Any]) -> str:
    """Why a parity check failed, naming the row set."""
    name = parity.get("failed_on") or "sample"
    found = parity.get("checked", {}).get(name, parity)
    rows = {"sample": "training sample", "holdout": "held-out",
            "split_probes": "split-threshold probe"}.get(name, name)
    labels = "" if found.get("labels_agree", True) else "; labels differ"
    return (f"ONNX outputs differ from the native model's by {found['max_abs_diff']:.3g} "
            f"(tolerance {found['tolerance']:.3g}) on {found['rows']} {rows} rows{labels}")
