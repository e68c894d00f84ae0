"""Windows of the prediction log, turned into monitoring frames.

A window is either a half-open time range ``[start, end)`` of logged rows or the newest N
rows. Time windows end on multiples of ``every`` counted from the epoch, so one window has
the same bounds on every run, in every worker and after a restart: that is what makes a
stored result idempotent (its key is its bounds) and lets the scheduler know which windows
it has already done. ``window == every`` gives tumbling windows, ``window > every`` sliding
ones.

The log is read once per run (``LogFrames``) and sliced per window by binary search on the
sorted timestamps. Feedback is joined to predictions by ``(request_id, row)`` once, over the
whole read, labels cast to the predictions' type; of several labels for one row the first
counts unless a later one replaces it (``stores.feedback.effective_labels``).

Column naming (the monitoring frame, shared with the reference profile): ``input.X`` -> ``X``,
``output.label`` / ``output.value`` -> ``prediction``, ``output.proba.C`` -> ``proba.C``,
feedback ``label`` -> ``target``; other named outputs keep their ``output.`` prefix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from shipyard.errors import ShipyardError
from shipyard.names import check_endpoint_name
from shipyard.service.config import format_duration
from shipyard.stores.log_location import log_root
from shipyard.types import Array

if TYPE_CHECKING:
    import pyarrow as pa

MonitoringFrame = dict[str, Array]


def iso(seconds: float) -> str:
    """UTC time as ISO 8601 with a ``Z`` (microseconds only when there are any)."""
    stamp = datetime.fromtimestamp(seconds, UTC)
    text = stamp.isoformat(timespec="microseconds" if stamp.microsecond else "seconds")
    return text.replace("+00:00", "Z")


@dataclass(frozen=True)
class Window:
    """``[start, end)`` in seconds since the epoch. ``complete`` is False for the window
    still in progress (its end is in the future); ``last`` is N for a newest-N-rows window,
    ``offset`` how many newer rows it skips."""

    start: float
    end: float
    kind: Literal["time", "rows"] = "time"
    complete: bool = True
    last: int | None = None
    offset: int = 0

    @property
    def key(self) -> str:
        """Identity of the window in the history: same bounds, same key."""
        if self.kind == "rows":
            return f"rows:{self.last}:{iso(self.start)}/{iso(self.end)}"
        return f"time:{iso(self.start)}/{iso(self.end)}"

    @property
    def label(self) -> str:
        if self.kind == "rows":
            return f"last {self.last} rows ({iso(self.start)} .. {iso(self.end)})"
        span = format_duration(self.end - self.start)
        return f"{iso(self.start)} +{span}{'' if self.complete else ' (in progress)'}"


def time_windows(*, window: float, every: float, first: float, now: float,
                 since: float | None = None, partial: bool = True,
                 max_windows: int | None = None) -> list[Window]:
    """The windows that end after ``max(first, since)`` and start before ``now``, oldest first.

    Complete windows end at or before ``now``; with ``partial`` the one in progress (the
    soonest to end, which holds the most rows of the in-progress ones) comes last.
    ``max_windows`` keeps the newest.
    """
    if window <= 0 or every <= 0:
        raise ShipyardError("window and every must be positive durations")
    low = first if since is None else max(first, since)
    k = math.floor(low / every) + 1  # the first window end after ``low``
    last_k = math.floor(now / every)  # the last complete window end
    if max_windows is not None:
        k = max(k, last_k - max_windows + 1)
    out = [Window(_round(i * every - window), _round(i * every))
           for i in range(k, last_k + 1)]
    if partial and (last_k + 1) * every > now and (last_k + 1) * every - window < now:
        end = (last_k + 1) * every
        if end > low:
            out.append(Window(_round(end - window), _round(end), complete=False))
    return out if max_windows is None else out[-max_windows:]


def count_time_windows(*, every: float, first: float, now: float,
                       since: float | None = None) -> int:
    """How many complete windows ``time_windows`` would return without a cap."""
    low = first if since is None else max(first, since)
    return max(0, math.floor(now / every) - math.floor(low / every))


def _round(seconds: float) -> float:
    return round(seconds, 6)


@dataclass(frozen=True)
class WindowData:
    """The rows of one window: the monitoring frame plus what the log knows beside it."""

    window: Window
    frame: MonitoringFrame
    versions: Array  # model version per row
    models: Array  # model name per row (object)
    latency_ms: Array  # one value per request (the log repeats it on every row)
    labelled: int  # rows with a feedback label
    key_names: Array | None = None  # API key name per row (object, None: no key)
    first_rows: Array | None = None  # True on each request's first row

    @property
    def rows(self) -> int:
        return len(self.versions)

    @property
    def requests(self) -> int:
        return len(self.latency_ms)

    def select(self, mask: Array) -> MonitoringFrame:
        return {name: values[mask] for name, values in self.frame.items()}


class LogFrames:
    """The prediction log of one endpoint (``since`` on, or the newest ``last`` rows; only
    rows before ``until``), read once with its feedback joined, and cut into windows."""

    def __init__(self, root: str | Path, endpoint: str, *, since: float | None = None,
                 last: int | None = None, until: float | None = None) -> None:
        from shipyard.stores.predictions import NothingLoggedError, read_log

        self.root = log_root(root)
        self.endpoint = check_endpoint_name(endpoint)  # it names folders
        moment = None if since is None else datetime.fromtimestamp(since, UTC)
        if isinstance(self.root, Path) and not (  # an object store has no folders
                self.root / "predictions" / f"endpoint={endpoint}").is_dir():
            raise NothingLoggedError(f"no predictions logged for endpoint {endpoint!r} under "
                                     f"{self.root} (is --log-dir right?)")
        table = read_log(self.root, endpoint, since=moment,
                         limit=last if until is None else None)
        if until is not None:
            table = _before(table, until, last)
        self.unconvertible_labels = 0  # feedback labels read as null (see stores.feedback)
        self.table = self._join_feedback(table, since)
        self.ts = _micros(self.table)

    def _join_feedback(self, table: pa.Table, since: float | None) -> pa.Table:
        from shipyard.stores.feedback import joined_labels, segment_files

        files = segment_files(self.root, "feedback", self.endpoint)
        read = joined_labels(table, files, since=None if since is None
                             else datetime.fromtimestamp(since, UTC))
        self.unconvertible_labels = read.unconvertible
        return read.table

    @property
    def rows(self) -> int:
        return int(self.table.num_rows)

    @property
    def first(self) -> float:
        """Time of the oldest row read (seconds)."""
        return float(self.ts[0]) / 1e6 if len(self.ts) else math.nan

    @property
    def newest(self) -> float:
        return float(self.ts[-1]) / 1e6 if len(self.ts) else math.nan

    def rows_window(self, last: int, offset: int = 0) -> Window:
        """The window of the newest ``last`` rows read, after skipping the newest
        ``offset``."""
        end = len(self.ts) - offset
        start = max(0, end - last)
        if start >= end:
            raise ShipyardError(f"no predictions logged for endpoint {self.endpoint!r}"
                                + (f" before the newest {offset} rows" if offset else ""))
        return Window(float(self.ts[start]) / 1e6, float(self.ts[end - 1] + 1) / 1e6, "rows",
                      last=last, offset=offset)

    def data(self, window: Window) -> WindowData:
        if window.kind == "rows":
            assert window.last is not None
            hi = len(self.ts) - window.offset
            lo = max(0, hi - window.last)
        else:
            lo, hi = np.searchsorted(self.ts, [round(window.start * 1e6),
                                               round(window.end * 1e6)], side="left")
        return window_data(window, self.table.slice(int(lo), int(hi - lo)))


def window_data(window: Window, table: pa.Table) -> WindowData:
    """Log rows (with an optional joined ``target`` column) as a ``WindowData``."""
    frame: MonitoringFrame = {}
    for name in table.column_names:
        column = _frame_name(name)
        if column is None:
            continue
        values = to_numpy(table[name])
        if values is not None:
            frame[column] = values
    rows = np.asarray(table["row"].to_numpy()) if table.num_rows else np.zeros(0, np.int32)
    latency = np.asarray(table["latency_ms"].to_numpy(), dtype=np.float64)
    keys = None
    if "api_key" in table.column_names and table["api_key"].null_count < table.num_rows:
        keys = np.asarray(table["api_key"].to_numpy(zero_copy_only=False), dtype=object)
    labelled = 0
    if "target" in frame:
        labelled = int(table.num_rows - table["target"].null_count)
    return WindowData(
        window=window, frame=frame,
        versions=np.asarray(table["version"].to_numpy(), dtype=np.int64),
        models=np.asarray(table["model"].to_numpy(zero_copy_only=False), dtype=object),
        latency_ms=latency[rows == 0], labelled=labelled, key_names=keys,
        first_rows=rows == 0)


def _frame_name(log_column: str) -> str | None:
    if log_column.startswith("input."):
        return log_column[len("input."):]
    if log_column in ("output.label", "output.value"):
        return "prediction"
    if log_column.startswith("output.proba."):
        return "proba." + log_column[len("output.proba."):]
    if log_column.startswith("output."):
        return log_column
    if log_column == "target":
        return "target"
    return None


def to_numpy(column: pa.ChunkedArray | pa.Array) -> Array | None:
    """Arrow -> numpy with the monitoring null conventions: NaN in numeric columns, None in
    object ones. Columns with no monitoring meaning (lists, timestamps) give None."""
    import pyarrow as pa

    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)
    if pa.types.is_boolean(kind):
        if column.null_count:
            return np.asarray(column.to_pylist(), dtype=object)
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        if column.null_count:
            return np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False),
                              dtype=np.float64)
        return np.asarray(column.to_numpy(zero_copy_only=False))
    return None


def _before(table: pa.Table, until: float, last: int | None) -> pa.Table:
    """The rows logged before ``until`` (the newest ``last`` of them); the table is sorted."""
    stop = int(np.searchsorted(_micros(table), round(until * 1e6), side="left"))
    start = 0 if last is None else max(0, stop - last)
    return table.slice(start, stop - start)


def _micros(table: pa.Table) -> Array:
    import pyarrow as pa

    if table.num_rows == 0:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(table["ts"].cast(pa.int64()).to_numpy(), dtype=np.int64)


def split_by_version(data: WindowData) -> Mapping[int, Array]:
    """Row masks per model version, newest version first."""
    return {int(v): data.versions == v for v in sorted(set(data.versions.tolist()),
                                                        reverse=True)}
