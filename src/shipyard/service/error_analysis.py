"""``shipyard monitor errors``: where an endpoint's errors fall, by slice of its logged rows.

    result = endpoint_errors("fraud", log_dir, span=7 * 86400)
    result.analysis.singles[0].name     # 'country=br', the slice holding the most errors
    result.to_dict()                    # what --json prints

The rows are the prediction log's in the window with a feedback label, joined as the monitor
joins them (``windows.LogFrames``). An error is a prediction that is not the label
(classifiers), or an absolute error above a threshold (regressors: ``threshold``, else the
``ERROR_QUANTILE`` quantile of the window's absolute errors, so about a tenth of the rows are
errors by construction). The task is the package's, else read from the outputs (class
probabilities or a text label: classification; a float value: regression).

Slices are cut as the monitor cuts them (``monitoring/slicing``): categories as they are,
numbers between the reference's quantiles (quartiles unless ``monitor.slice_bins`` says
otherwise), missing its own slice. The columns are the ones asked for, else the monitor
config's ``slices``, else the model's inputs (at most
``MAX_COLUMNS``; text columns with more than ``MAX_CATEGORIES`` values in the window, such
as identifiers, are left out and named in the notes). Without a reference, numeric columns
are cut at the window's own quantiles (said in the notes). The ranking is
``monitoring/error_analysis``'s.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from shipyard.errors import ShipyardError
from shipyard.monitoring.error_analysis import ErrorAnalysis, Sort, analyse_errors
from shipyard.monitoring.performance import is_missing
from shipyard.monitoring.slicing import SliceBins, assign_slices, bins_of_values, reference_bins
from shipyard.service.config import MonitorConfig
from shipyard.service.references import Reference
from shipyard.service.windows import LogFrames, MonitoringFrame, Window, WindowData, iso
from shipyard.settings import Settings
from shipyard.stores.log_location import log_root
from shipyard.types import Array

Task = Literal["classification", "regression"]
DEFAULT_SPAN = 7 * 86400.0  # labels come late: a week of rows by default
ERROR_QUANTILE = 0.9
MAX_COLUMNS = 20
MAX_CATEGORIES = 50
_NOT_INPUTS = ("prediction", "target")
VERSION = "version"
"""A slice column beside the inputs (unless an input has its name): the model version that
answered, ``v2``; sliced by default when the window holds several versions."""


@dataclass(frozen=True)
class ErrorRule:
    """What counts as an error: a wrong label, or an absolute error above ``threshold``
    (``quantile``: the threshold is that quantile of the window's absolute errors)."""

    task: Task
    threshold: float | None = None
    quantile: float | None = None

    @property
    def text(self) -> str:
        if self.task == "classification":
            return "a predicted label that is not the true label"
        assert self.threshold is not None
        source = ("given" if self.quantile is None
                  else f"the {self.quantile * 100:g}th percentile of absolute error")
        return f"|prediction - target| > {self.threshold:.6g} ({source})"

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "threshold": self.threshold, "quantile": self.quantile,
                "text": self.text}


@dataclass(frozen=True)
class EndpointErrors:
    """The error analysis of one endpoint's window."""

    endpoint: str
    window: Window
    logged: int  # rows logged in the window
    labelled: int  # ... of them with a label: the rows analysed
    rule: ErrorRule
    bins: tuple[SliceBins, ...]  # how each slice column was cut
    reference: str | None  # where numeric cuts came from; None: the window itself
    analysis: ErrorAnalysis
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def period(self) -> str:
        return _period(self.window)

    def to_dict(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint,
                "window": {"kind": self.window.kind, "label": self.period,
                           "start_ts": self.window.start, "end_ts": self.window.end},
                "logged": self.logged, "labelled": self.labelled, "error": self.rule.to_dict(),
                "columns": [b.to_dict() for b in self.bins], "reference": self.reference,
                **self.analysis.to_dict(), "notes": list(self.notes)}


def _period(window: Window) -> str:
    """``2026-05-01T12:00:00Z .. 2026-05-08T12:00:00Z`` or ``last 500 rows (…)``."""
    if window.kind == "rows":
        return window.label
    return f"{iso(window.start)} .. {iso(window.end)}"


@dataclass(frozen=True)
class ErrorOptions:
    """How to analyse: the slice columns (None: the defaults), the task (None: the
    package's), the regression threshold, and ``analyse_errors``'s options."""

    columns: Sequence[str] | None = None
    task: Task | None = None
    threshold: float | None = None
    min_rows: int = 20
    level: float = 0.95
    sort: Sort = "share"
    pair_columns: int = 5


def endpoint_errors(endpoint: str, log_dir: str | Path, config: MonitorConfig | None = None,
                    *, options: ErrorOptions | None = None, model_source: str | None = None,
                    settings: Settings | None = None, since: float | None = None,
                    until: float | None = None, span: float | None = None,
                    last: int | None = None, clock: Callable[[], float] = time.time,
                    ) -> EndpointErrors:
    """Rank the slices of ``endpoint``'s labelled rows by their errors.

    The window: the newest ``last`` rows (before ``until``), else ``[since, until)`` with
    ``until`` defaulting to now and ``since`` to ``span`` (default a week) before it.
    """
    options = options or ErrorOptions()
    config = config or MonitorConfig()
    data = _window(endpoint, log_dir, since, until, span, last, clock)
    frame = _labelled_frame(endpoint, data)
    notes: list[str] = []
    reference = _reference(endpoint, log_dir, config, data, model_source, settings, notes)
    rule, errors = _errors(frame, options, reference)
    columns = _columns(frame, options.columns, config, reference, notes,
                       own_version=VERSION not in data.frame)
    bins = _bins(frame, columns, reference, config.slice_bins, notes)
    labels = assign_slices({c: frame[c] for c in columns}, bins)
    analysis = analyse_errors(labels, errors, min_rows=options.min_rows, level=options.level,
                              sort=options.sort, pair_columns=options.pair_columns)
    return EndpointErrors(endpoint, data.window, data.rows, len(errors), rule,
                          tuple(bins.values()), None if reference is None
                          else reference.source, analysis, tuple(notes))


def _window(endpoint: str, log_dir: str | Path, since: float | None, until: float | None,
            span: float | None, last: int | None, clock: Callable[[], float]) -> WindowData:
    root = log_root(log_dir)
    if last is not None:
        if since is not None or span is not None:
            raise ShipyardError("--rows takes the newest rows; it does not combine with "
                                "--since or --window")
        if last < 1:
            raise ShipyardError("--rows must be a positive number of rows")
        frames = LogFrames(root, endpoint, last=last, until=until)
        return frames.data(frames.rows_window(last))
    if since is not None and span is not None:
        raise ShipyardError("give --since or --window, not both")
    if span is not None and span <= 0:
        raise ShipyardError("--window must be a positive duration")
    now = clock()
    end = math.ceil(now) if until is None else until  # whole seconds read better
    start = since if since is not None else math.floor(end - (span or DEFAULT_SPAN))
    if end <= start:
        raise ShipyardError("--until must be later than --since")
    frames = LogFrames(root, endpoint, since=start, until=end)
    return frames.data(Window(start, end, "time"))


def _labelled_frame(endpoint: str, data: WindowData) -> MonitoringFrame:
    if "prediction" not in data.frame:
        raise ShipyardError(f"endpoint {endpoint!r} logs no label or value output in "
                            f"{_period(data.window)}: error analysis compares a prediction "
                            "with its label")
    labelled = (~is_missing(data.frame["target"]) if "target" in data.frame
                else np.zeros(data.rows, dtype=bool))
    if not labelled.any():
        raise ShipyardError(
            f"no labelled rows for endpoint {endpoint!r} in {_period(data.window)}: "
            f"{data.rows} prediction row(s) logged, none with a feedback label. Send labels "
            f"(POST /v1/endpoints/{endpoint}/feedback) or widen the window (--window 30d)")
    frame = data.select(labelled)
    frame.setdefault(VERSION, np.array([f"v{v}" for v in data.versions[labelled].tolist()],
                                       dtype=object))
    return frame


def _reference(endpoint: str, log_dir: str | Path, config: MonitorConfig, data: WindowData,
               model_source: str | None, settings: Settings | None,
               notes: list[str]) -> Reference | None:
    """The monitor's reference for the window (None, with a note, when the model's cannot
    be found; one named with ``--reference`` must be there)."""
    from shipyard.service.monitor import Monitor

    monitor = Monitor(endpoint, log_dir, config, model_source=model_source,
                      settings=settings)
    try:
        return monitor.reference_of(data)
    except ShipyardError as exc:
        if config.reference is not None:
            raise
        notes.append(f"no reference ({str(exc).splitlines()[0]}); numbers are cut at this "
                     "window's own quantiles")
        return None


def _errors(frame: MonitoringFrame, options: ErrorOptions,
            reference: Reference | None) -> tuple[ErrorRule, Array]:
    predicted, truth = frame["prediction"], frame["target"]
    task = options.task or _task(frame, reference)
    if task == "classification":
        if options.threshold is not None:
            raise ShipyardError("--threshold is for regressors; a classifier's error is a "
                                "wrong label")
        return ErrorRule(task), np.asarray(predicted != truth, dtype=bool)
    try:
        gap = np.abs(np.asarray(predicted, dtype=np.float64)
                     - np.asarray(truth, dtype=np.float64))
    except (TypeError, ValueError):
        raise ShipyardError("the predictions or labels are not numbers: is the model a "
                            "classifier? (--task classification)") from None
    if options.threshold is not None:
        if not options.threshold >= 0:
            raise ShipyardError(f"--threshold must be a non-negative number, not "
                                f"{options.threshold}")
        return ErrorRule(task, float(options.threshold)), gap > options.threshold
    threshold = float(np.quantile(gap, ERROR_QUANTILE))
    return ErrorRule(task, threshold, ERROR_QUANTILE), gap > threshold


def _task(frame: MonitoringFrame, reference: Reference | None) -> Task:
    if reference is not None and reference.task in ("classification", "regression"):
        return "classification" if reference.task == "classification" else "regression"
    if any(c.startswith("proba.") for c in frame):
        return "classification"
    return "regression" if frame["prediction"].dtype.kind == "f" else "classification"


def _columns(frame: MonitoringFrame, asked: Sequence[str] | None, config: MonitorConfig,
             reference: Reference | None, notes: list[str], *, own_version: bool,
             ) -> list[str]:
    """The slice columns; ``own_version``: the frame's ``version`` is the answering model's
    (no input has the name), sliced by default when several versions answered."""
    if asked:
        unknown = [c for c in asked if c not in frame]
        if unknown:
            raise ShipyardError(f"slice column{'s' if len(unknown) > 1 else ''} "
                                f"{', '.join(map(repr, unknown))} not in the logged rows; they "
                                f"have {', '.join(frame)}")
        return list(dict.fromkeys(asked))
    configured = [c for c in config.slices if c in frame]
    if configured:
        absent = [c for c in config.slices if c not in frame]
        if absent:
            notes.append(f"monitor.slices {', '.join(absent)} not in the logged rows")
        return configured
    inputs = reference.inputs if reference is not None else None
    names = [c for c in (inputs or frame) if c in frame and c not in _NOT_INPUTS
             and not c.startswith(("proba.", "output.")) and not (own_version and c == VERSION)]
    if own_version and len(set(frame[VERSION].tolist())) > 1:
        names.insert(0, VERSION)
    wide = [c for c in names if frame[c].dtype.kind in "OUSb"
            and len(set(frame[c].tolist())) > MAX_CATEGORIES]
    if wide:
        notes.append(f"left out {', '.join(wide)}: more than {MAX_CATEGORIES} distinct values "
                     "(name them with --slices to include them)")
    chosen = [c for c in names if c not in wide]
    if len(chosen) > MAX_COLUMNS:
        notes.append(f"sliced by the first {MAX_COLUMNS} of {len(chosen)} columns "
                     "(--slices to choose)")
    if not chosen:
        raise ShipyardError("no column to slice by: the rows have no input column; name "
                            "some with --slices")
    return chosen[:MAX_COLUMNS]


def _bins(frame: MonitoringFrame, columns: list[str], reference: Reference | None,
          count: int, notes: list[str]) -> dict[str, SliceBins]:
    """Each column's cut: from the reference where it has the column, else from the window
    (``count`` bins of a numeric column)."""
    known = [] if reference is None else [c for c in columns
                                          if c in reference.profile.columns]
    bins = {} if reference is None else reference_bins(reference.profile, known,
                                                       bins=count)
    own = [c for c in columns if c not in bins]
    for name in own:
        bins[name] = bins_of_values(name, frame[name], bins=count)
    numeric = [c for c in own if bins[c].numeric]
    if numeric and reference is not None:
        notes.append(f"{', '.join(numeric)} not in the reference: cut at this window's own "
                     "quantiles")
    return {c: bins[c] for c in columns}
