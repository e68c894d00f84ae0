"""The few prediction-log columns the dashboard counts, read straight from the segments of
the hours asked for: per request (``predictions``, the first row of each request: ``ts``,
``version``, ``latency_ms``) and per failed answer (``errors``: ``ts``, ``version``,
``status``, ``shadow``). A segment is written whole and never changes (stage-then-rename), so
each is read once and kept (the newest ``MAX_SEGMENTS``)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

Columns = dict[str, np.ndarray]
MAX_SEGMENTS = 4096
REQUEST_COLUMNS = ("ts", "version", "latency_ms")
ERROR_COLUMNS = ("ts", "version", "status", "shadow")


class LogRows:
    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = log_dir
        self._segments: OrderedDict[str, Columns] = OrderedDict()

    def requests(self, endpoint: str, since: float, until: float) -> Columns:
        """One row per answered request in ``[since, until)``, oldest first."""
        return self._rows("predictions", endpoint, since, until)

    def errors(self, endpoint: str, since: float, until: float) -> Columns:
        """One row per failed answer in ``[since, until)``, oldest first."""
        return self._rows("errors", endpoint, since, until)

    def _rows(self, kind: str, endpoint: str, since: float, until: float) -> Columns:
        from shipyard.stores.feedback import segment_files, segments_between

        names = REQUEST_COLUMNS if kind == "predictions" else ERROR_COLUMNS
        files = segments_between(segment_files(self.log_dir, kind, endpoint),
                                 datetime.fromtimestamp(since, UTC),
                                 datetime.fromtimestamp(until, UTC))
        parts = [self._segment(kind, path) for path in files]
        if not parts:
            return {name: np.zeros(0) for name in names}
        rows = {name: np.concatenate([p[name] for p in parts]) for name in names}
        keep = (rows["ts"] >= since) & (rows["ts"] < until)
        order = np.argsort(rows["ts"][keep], kind="stable")
        return {name: values[keep][order] for name, values in rows.items()}

    def _segment(self, kind: str, path: str) -> Columns:
        found = self._segments.get(path)
        if found is None:
            found = self._segments[path] = _read(kind, path)
            while len(self._segments) > MAX_SEGMENTS:
                self._segments.popitem(last=False)
        return found


def _read(kind: str, path: str) -> Columns:
    import pyarrow.parquet as pq

    from shipyard.stores.log_location import readable

    fs, (where,) = readable([path])
    present = set(pq.read_schema(where, filesystem=fs).names)
    wanted = [*(REQUEST_COLUMNS if kind == "predictions" else ERROR_COLUMNS),
              *(("row",) if kind == "predictions" else ())]
    table = pq.read_table(where, filesystem=fs, columns=[c for c in wanted if c in present])
    rows = table.num_rows
    out = {"ts": table.column("ts").cast("int64").to_numpy() / 1e6,
           "version": table.column("version").to_numpy().astype(np.int64)}
    if kind == "predictions":
        first = table.column("row").to_numpy() == 0 if "row" in present else \
            np.ones(rows, dtype=bool)  # the log repeats a request's latency on each row
        out["latency_ms"] = table.column("latency_ms").to_numpy().astype(np.float64)
        return {name: values[first] for name, values in out.items()}
    out["status"] = table.column("status").to_numpy().astype(np.int64)
    out["shadow"] = table.column("shadow").to_numpy(zero_copy_only=False).astype(bool) \
        if "shadow" in present else np.zeros(rows, dtype=bool)
    return out


def error_counts(rows: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Server errors (status >= 500, as the Prometheus rules count them) per version among
    ``errors`` rows, shadow copies left out (the caller never saw them)."""
    server = (rows["status"] >= 500) & ~rows["shadow"].astype(bool)
    versions, counts = np.unique(rows["version"][server], return_counts=True)
    return {str(int(v)): int(n) for v, n in zip(versions, counts, strict=True)}
