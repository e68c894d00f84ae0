"""One window's traffic per API key, scored for model extraction
(``monitoring/extraction.py`` has the maths and what the score means).

The prediction log names the key that sent each request (``api_key``, the key's name; null
without keys and in segments older than the column), so a window without key names has no
extraction section. The metrics alert rules read:

- ``extraction_score``: the highest key score of the window (absent when no key sent enough
  rows to be scored), ``extraction_score(KEY)``: one key's;
- ``extraction_flagged_keys``: how many keys reach the flag score (0.8).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.monitoring.extraction import ExtractionBaseline, KeyTraffic, score_keys
from shipyard.service.references import Reference
from shipyard.service.windows import WindowData
from shipyard.types import Array


def key_extraction(data: WindowData, inputs: list[str], reference: Reference,
                   metrics: dict[str, float | None]) -> dict[str, Any] | None:
    """The window's extraction report (None: no row names a key); its numbers go to
    ``metrics``."""
    groups = _rows_by_key(data.key_names)
    if not groups or not inputs:
        return None
    frame = data.frame
    classes = [c for c in frame if c.startswith("proba.")]
    proba = np.column_stack([frame[c] for c in classes]) if len(classes) >= 2 else None
    first = data.first_rows
    traffic = [KeyTraffic(name, {c: frame[c][rows] for c in inputs},
                          requests=len(rows) if first is None else int(first[rows].sum()),
                          proba=None if proba is None else proba[rows])
               for name, rows in groups.items()]
    report = score_keys(traffic, ExtractionBaseline.from_profile(reference.profile, inputs))
    metrics["extraction_flagged_keys"] = float(len(report.flagged))
    if report.max_score is not None:
        metrics["extraction_score"] = report.max_score
    for name, scored in report.keys.items():
        metrics[f"extraction_score({name})"] = scored.score
    return report.to_dict()


def _rows_by_key(names: Array | None) -> dict[str, Array]:
    """Each key name's row indices (rows without a key left out), sorted once rather than
    one pass over the window per key: a server may have many keys."""
    if names is None:
        return {}
    keyed = np.flatnonzero(np.fromiter((n is not None for n in names), dtype=bool,
                                       count=len(names)))
    if not len(keyed):
        return {}
    found, codes = np.unique(names[keyed].astype(str), return_inverse=True)
    order = np.argsort(codes, kind="stable")
    cuts = np.flatnonzero(np.diff(codes[order])) + 1
    return {str(name): keyed[rows] for name, rows in zip(
        found, np.split(order, cuts), strict=True)}
