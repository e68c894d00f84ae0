"""`shadow_pairs`: the primary's and the shadow's answers to the same requests, side by side.

A shadow rollout logs the primary's answers as ``predictions`` and the candidate's answers to
the copied requests as ``shadow`` rows carrying the primary request's ``request_id`` (and the
same ``row``). Joining the two on (request_id, row) gives aligned arrays, the input of
``monitoring.shadow.shadow_report``; feedback labels join the same way. Copies the shadow
dropped or failed leave primary rows unpaired: they are counted, not compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shipyard.registry.uri import parse_ref
from shipyard.service.rollout_traffic import read_rows, with_labels
from shipyard.types import Array

KEYS = ["request_id", "row"]


@dataclass(frozen=True)
class ShadowPairs:
    """Aligned answers (one per paired row), the latencies of the paired requests (one per
    request), the label of each paired row (None when no row has one; NaN/None where a row
    has none), and how many primary rows had no shadow answer."""

    primary: Array
    shadow: Array
    latencies_primary: Array
    latencies_shadow: Array
    truth: Array | None
    classification: bool
    unpaired: int

    @property
    def rows(self) -> int:
        return int(self.primary.size)


def _rows(root: Path, endpoint: str, kind: str, version: str, since: float,
          until: float) -> pa.Table | None:
    table = read_rows(root, endpoint, kind, _moment(since), _moment(until))
    if table is None:
        return None
    ref = parse_ref(version)
    return table.filter(pc.and_(pc.equal(table["model"], ref.name),
                                pc.equal(table["version"], ref.version)))


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _answer_column(table: pa.Table) -> str | None:
    for name in ("output.label", "output.value"):
        if name in table.column_names:
            return name
    return None


def _empty(classification: bool, unpaired: int) -> ShadowPairs:
    nothing = np.empty(0)
    return ShadowPairs(nothing, nothing, nothing, nothing, None, classification, unpaired)


def shadow_pairs(root: str | Path, endpoint: str, since: float, until: float, *,
                 primary: str, shadow: str) -> ShadowPairs:
    """The rows of ``endpoint`` answered by ``primary`` (NAME/V) in [since, until) that
    ``shadow`` (NAME/V) also answered, with their labels (feedback up to now)."""
    root = Path(root)
    first = _rows(root, endpoint, "predictions", primary, since, until)
    copy = _rows(root, endpoint, "shadow", shadow, since, until)
    if first is None or first.num_rows == 0:
        return _empty(False, 0)
    column = _answer_column(first)
    classification = column == "output.label"
    if copy is None or column is None or column not in copy.column_names:
        return _empty(classification, first.num_rows)
    first = with_labels(root, endpoint, first, _moment(since))
    labelled = "target" in first.column_names
    left = first.select([*KEYS, "latency_ms", column, *(["target"] if labelled else [])])
    right = copy.select([*KEYS, "latency_ms", column]).rename_columns(
        [*KEYS, "latency_shadow", "answer_shadow"])
    joined = left.join(right, keys=KEYS, join_type="inner").sort_by(
        [("request_id", "ascending"), ("row", "ascending")])
    if joined.num_rows == 0:
        return _empty(classification, first.num_rows)
    firsts = joined.filter(pc.equal(joined["row"], 0))  # one latency per request
    truth = None
    if labelled and joined["target"].null_count < joined.num_rows:
        truth = joined["target"].to_numpy(zero_copy_only=False)
    return ShadowPairs(
        primary=joined[column].to_numpy(zero_copy_only=False),
        shadow=joined["answer_shadow"].to_numpy(zero_copy_only=False),
        latencies_primary=firsts["latency_ms"].to_numpy(zero_copy_only=False),
        latencies_shadow=firsts["latency_shadow"].to_numpy(zero_copy_only=False),
        truth=truth, classification=classification,
        unpaired=first.num_rows - joined.num_rows)
