"""The monitor: an endpoint's prediction log, window by window, against its reference.

    monitor = Monitor("fraud", log_dir, MonitorConfig(every=900, window=3600,
                                                      rules=("drift_share > 0.3",)))
    run = monitor.run()          # the windows not stored yet, plus the one in progress
    scheduler = MonitorScheduler.from_config(serve_config, settings)
    scheduler.start(); ...; scheduler.stop()

Flow per run: take the endpoint's lock (``MonitorHistory.lock``) → read the log once
(``LogFrames``) → cut windows → per window: reference of the model version that served most
of its rows → ``analyse`` → alert rules (complete windows only, each window once, state
persisted) → one history line → deliver the alert events.

Which windows a run computes: with ``since``, every window ending after it, and with
``until`` at or before it (then none is in progress); otherwise it resumes after the newest
complete window stored for the same window shape (the first run starts at the oldest logged
row), keeping at most ``max_windows``. When there is nothing new
it recomputes the newest stored window (idempotently), so a run always shows something.
The window in progress is computed and shown (``complete: false``) but neither stored nor
counted for alerts: it is stored once it has closed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import ShipyardError
from shipyard.monitoring.alerts import (
    AlertEvaluator,
    AlertEvent,
    parse_rules,
    rule_from_config,
)
from shipyard.service.alerting import AlertNotifier, DeliveryResult
from shipyard.service.config import MonitorConfig, format_duration
from shipyard.service.monitor_analysis import analyse
from shipyard.service.monitor_history import HISTORY_FORMAT, MonitorHistory
from shipyard.service.monitor_rules import check_rules_task
from shipyard.service.monitor_slices import unknown_numeric_slices
from shipyard.service.references import Reference, ReferenceResolver
from shipyard.service.windows import LogFrames, Window, WindowData, iso, time_windows
from shipyard.settings import Settings
from shipyard.stores.log_location import log_root

log = logging.getLogger(__name__)
STATE_FORMAT = 1
RECENT_EVENTS = 100  # alert events kept in the state file for ``monitor status``


@dataclass
class MonitorRun:
    """What one run computed (oldest window first), stored and sent."""

    endpoint: str
    records: list[dict[str, Any]] = field(default_factory=list)
    stored: int = 0  # records new or changed in the history (complete windows only)
    events: list[AlertEvent] = field(default_factory=list)
    delivery: DeliveryResult = field(default_factory=DeliveryResult)
    busy: bool = False  # another process was monitoring this endpoint; nothing done
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class WindowShape:
    """Time windows ``window`` seconds long, one ending every ``every`` seconds; or the
    newest ``last`` rows after skipping the newest ``offset``."""

    every: float
    window: float
    last: int | None = None
    offset: int = 0

    @classmethod
    def of(cls, config: MonitorConfig, *, window: float | None = None,
           every: float | None = None, last: int | None = None,
           offset: int = 0) -> WindowShape:
        """Arguments override the config; ``window`` alone gives tumbling windows."""
        if offset < 0:
            raise ShipyardError("--offset must not be negative")
        if last is not None:
            if last < 1:
                raise ShipyardError("--last must be a positive number of rows")
            return cls(every if every is not None else config.every, 0.0, last, offset)
        if offset:
            raise ShipyardError("--offset skips rows of a --rows N window; give --rows")
        if window is None and every is None:
            if config.last is not None:
                return cls(config.every, 0.0, config.last)
            return cls(config.every, config.window_s)
        step = every if every is not None else window
        assert step is not None
        shape = cls(step, window if window is not None else step)
        if shape.window < shape.every:
            raise ShipyardError(f"--window ({format_duration(shape.window)}) must be at least "
                                f"--every ({format_duration(shape.every)}): windows would "
                                "leave rows out")
        return shape


class Monitor:
    """Monitors one endpoint. ``model_source`` is the endpoint's serve-config ``model``
    (used to find the reference); ``notifier`` defaults to one built from the config."""

    def __init__(self, endpoint: str, log_dir: str | Path, config: MonitorConfig | None = None,
                 *, model_source: str | None = None, settings: Settings | None = None,
                 notifier: AlertNotifier | None = None, clock: Callable[[], float] = time.time,
                 max_windows: int = 500) -> None:
        self.endpoint = endpoint
        self.log_dir = log_root(log_dir)  # a Path, or an object store's URL
        self.config = config or MonitorConfig()
        self.rules = parse_rules(self.config.rules)
        self.history = MonitorHistory(self.log_dir, endpoint,
                                      home=None if settings is None else settings.home)
        self.references = ReferenceResolver(self.config.reference, model_source=model_source,
                                            settings=settings)
        self.notifier = notifier
        self.clock = clock
        self.max_windows = max_windows

    def __repr__(self) -> str:
        return f"Monitor({self.endpoint!r}, {self.log_dir})"

    def run(self, *, window: float | None = None, every: float | None = None,
            last: int | None = None, since: float | None = None, until: float | None = None,
            offset: int = 0, partial: bool = True, wait: bool = True,
            max_windows: int | None = None,
            progress: Callable[[int, int], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> MonitorRun:
        """Compute, store and alert on the due windows (see the module docstring).

        ``until`` ends time windows at or before it, and a rows window before it; ``offset``
        skips the newest rows of a rows window (``last``). ``wait=False`` returns at once
        (``busy``) when another process holds the lock. ``progress(done, total)`` is called
        after each window; ``should_stop`` is polled between windows.
        """
        shape = WindowShape.of(self.config, window=window, every=every, last=last,
                               offset=offset)
        if since is not None and until is not None and until <= since:
            raise ShipyardError("--until must be later than --since")
        with self.history.lock(wait=wait) as held:
            if not held:
                return MonitorRun(self.endpoint, busy=True)
            run = MonitorRun(self.endpoint)
            frames, windows = self._plan(shape, since, until, partial,
                                         max_windows or self.max_windows, run)
            self._check_tasks(frames, run)
            self._process(frames, windows, shape, run, progress, should_stop)
            return run

    # -- which windows ---------------------------------------------------------------------

    def _plan(self, shape: WindowShape, since: float | None, until: float | None,
              partial: bool, cap: int, run: MonitorRun) -> tuple[LogFrames, list[Window]]:
        if shape.last is not None:
            frames = LogFrames(self.log_dir, self.endpoint, last=shape.last + shape.offset,
                               until=until)
            if frames.rows <= shape.offset:
                run.notes.append(f"{frames.rows} rows logged"
                                 f"{'' if until is None else ' before --until'}; "
                                 f"--offset {shape.offset} skips them all")
                return frames, []
            return frames, [frames.rows_window(shape.last, shape.offset)]
        now = self.clock()
        if until is not None and until < now:  # the range ends in the past: all complete
            now, partial = until, False
        resumed = self._resume_point(shape) if since is None and until is None else None
        low = since if since is not None else resumed
        oldest = now - (cap + 1) * shape.every - shape.window  # never read more than cap
        read_from = oldest if low is None else max(oldest, low - shape.window)
        frames = LogFrames(self.log_dir, self.endpoint, since=read_from)
        # resuming, every window since counts (a quiet one is news); otherwise start at the
        # first logged row rather than with empty windows before the log began
        first = resumed if resumed is not None else frames.first
        if since is not None:
            first = since if math.isnan(frames.first) else max(since, frames.first)
        if math.isnan(first):
            return frames, []
        windows = time_windows(window=shape.window, every=shape.every, first=first, now=now,
                               partial=partial, max_windows=cap)
        total = _complete_count(shape, first, now)
        if total > cap:
            run.notes.append(f"{total} windows are due; computed the newest {cap}")
        if not any(w.complete for w in windows) and resumed is not None:
            # nothing new: recompute the newest stored window so the run shows something
            windows.insert(0, Window(_round(resumed - shape.window), _round(resumed)))
            if resumed - shape.window < read_from:
                frames = LogFrames(self.log_dir, self.endpoint, since=resumed - shape.window)
        return frames, windows

    def _resume_point(self, shape: WindowShape) -> float | None:
        """End of the newest complete window of this shape in the history."""
        ends = [r["window"]["end_ts"] for r in self.history.records()
                if r.get("window", {}).get("kind") == "time" and r["window"].get("complete")
                and math.isclose(r["window"]["end_ts"] - r["window"]["start_ts"],
                                 shape.window)
                and math.isclose(r["window"].get("every", 0.0), shape.every)]
        return max(ends) if ends else None

    def _check_tasks(self, frames: LogFrames, run: MonitorRun) -> None:
        """Refuse rules that do not apply to the task of the models whose rows are about to
        be monitored (``accuracy`` of a regressor), before any window is computed; note
        those naming a numeric slice that is none of the reference's bins."""
        if not self.rules or not frames.rows:
            return
        served = frames.table.select(["model", "version"]).group_by(
            ["model", "version"], use_threads=False).aggregate([]).to_pylist()
        for pair in served:
            try:
                reference = self.references.get(str(pair["model"]), int(pair["version"]))
            except ShipyardError:
                continue  # the window that needs this reference says why
            check_rules_task(self.rules, reference.task,
                             f"{pair['model']} v{pair['version']} ({reference.source})",
                             reference.inputs)
            run.notes.extend(n for n in unknown_numeric_slices(self.rules, reference,
                                                               self.config)
                             if n not in run.notes)

    # -- per window ------------------------------------------------------------------------

    def _process(self, frames: LogFrames, windows: list[Window], shape: WindowShape,
                 run: MonitorRun, progress: Callable[[int, int], None] | None,
                 should_stop: Callable[[], bool] | None) -> None:
        state = self._load_state()
        forgot = _forget_removed(state, {rule.name for rule in self.rules})
        evaluator = AlertEvaluator(self.rules, state.get("evaluator"),
                                   endpoint=self.endpoint) if self.rules else None
        notifier = self.notifier or AlertNotifier(self.config.webhooks, self.config.on_alert,
                                                  command_env=self.config.on_alert_env)
        if frames.unconvertible_labels:  # from segments of older versions (stores.feedback)
            run.notes.append(f"{frames.unconvertible_labels} feedback label(s) do not fit the "
                             "predictions' type and were read as null")
        try:
            for done, window in enumerate(windows, start=1):
                if should_stop is not None and should_stop():
                    run.notes.append("stopped before every window was done")
                    break
                record = self._record(frames.data(window), shape)
                events = self._alerts(record, window, evaluator, state)
                if window.complete:
                    run.stored += self.history.put(record)
                run.records.append(record)
                if evaluator is not None and window.complete:
                    state["evaluator"] = evaluator.to_dict()
                if events:  # record, delivery, then state: a crash re-sends, never loses
                    run.events.extend(events)
                    run.delivery += notifier.deliver(events)
                    _remember(state, events)
                    self._save_state(state)
                if progress is not None:
                    progress(done, len(windows))
            if evaluator is not None or forgot:
                self._save_state(state)
        finally:
            if self.notifier is None:
                notifier.close()

    def _record(self, data: WindowData, shape: WindowShape) -> dict[str, Any]:
        window = data.window
        bounds: dict[str, Any] = {
            "kind": window.kind, "start": iso(window.start), "end": iso(window.end),
            "start_ts": window.start, "end_ts": window.end, "complete": window.complete}
        if window.kind == "rows":
            bounds["last"] = window.last
            if window.offset:
                bounds["offset"] = window.offset
        else:
            bounds["every"] = shape.every
        record: dict[str, Any] = {
            "format": HISTORY_FORMAT, "key": window.key, "endpoint": self.endpoint,
            "window": bounds, "computed_at": iso(time.time())}
        started = time.perf_counter()
        if data.rows:
            record.update(analyse(data, self.reference_of(data), self.config))
        else:
            record.update({"rows": 0, "requests": 0, "labelled": 0,
                           "metrics": {"rows": 0, "requests": 0, "labelled": 0},
                           "skipped": "no rows"})
        record["seconds"] = round(time.perf_counter() - started, 4)
        return record

    def reference_of(self, data: WindowData) -> Reference:
        """The reference of the version that logged most of ``data``'s rows."""
        versions, counts = np.unique(data.versions, return_counts=True)
        top = int(versions[int(np.argmax(counts))])
        model = str(data.models[int(np.argmax(data.versions == top))])
        return self.references.get(model, top)

    def record_of(self, data: WindowData, shape: WindowShape) -> dict[str, Any]:
        """What a run would store for ``data``'s window (not stored, no alert evaluated)."""
        return self._record(data, shape)

    def alert_state(self) -> dict[str, Any]:
        return self._load_state()

    def _alerts(self, record: dict[str, Any], window: Window,
                evaluator: AlertEvaluator | None, state: dict[str, Any]) -> list[AlertEvent]:
        record["alerts"] = []
        if evaluator is None or not window.complete:
            return []
        if window.end <= state.get("last_evaluated", -math.inf):
            stored = self.history.get(window.key)  # seen before: keep what it fired then
            record["alerts"] = (stored or {}).get("alerts", [])
            return []
        at = datetime.fromtimestamp(window.end, UTC)
        events = evaluator.evaluate(record["metrics"], at,
                                    details=record.get("metric_details"))
        state["last_evaluated"] = window.end
        record["alerts"] = [e.to_dict() for e in events]
        return events

    # -- alert state -----------------------------------------------------------------------

    def _load_state(self) -> dict[str, Any]:
        state = self.history.load_state() or {}
        if state.get("format") != STATE_FORMAT:
            state = {"format": STATE_FORMAT}
        return state

    def _save_state(self, state: dict[str, Any]) -> None:
        state["rules"] = [str(r) if isinstance(r, str) else dict(r) for r in self.config.rules]
        state["updated_at"] = iso(time.time())
        self.history.save_state(state)


def _forget_removed(state: dict[str, Any], names: set[str]) -> bool:
    """Drop what the state holds about rules no longer configured (counts, firing, recent
    events): they must not show as firing, nor come back firing without a new event if
    re-added later. The history keeps the events each window caused."""
    firing: dict[str, Any] = state.get("firing") or {}
    saved: dict[str, Any] = (state.get("evaluator") or {}).get("rules") or {}
    events: list[dict[str, Any]] = state.get("events") or []
    gone = {str(n) for n in [*firing, *saved, *(e.get("rule") for e in events)]
            if n is not None and n not in names}
    for name in gone:
        firing.pop(name, None)
        saved.pop(name, None)
    events[:] = [e for e in events if e.get("rule") not in gone]
    return bool(gone) or (bool(state.get("rules")) and not names)


def rule_names(state: Mapping[str, Any]) -> set[str]:
    """Names of the rules a saved state's last run had."""
    names = set()
    for item in state.get("rules") or []:
        try:
            names.add(rule_from_config(item).name)
        except ShipyardError:
            continue
    return names


def firing_alerts(state: Mapping[str, Any]) -> dict[str, Any]:
    """What a saved state says is firing, for rules its last run still had (a state file
    written before removed rules were dropped may still list them)."""
    names = rule_names(state)
    return {n: e for n, e in (state.get("firing") or {}).items() if n in names}


def _remember(state: dict[str, Any], events: Sequence[AlertEvent]) -> None:
    firing: dict[str, Any] = state.setdefault("firing", {})
    recent: list[dict[str, Any]] = state.setdefault("events", [])
    for event in events:
        data = event.to_dict()
        if data["state"] == "firing":
            firing[event.rule] = data
        else:
            firing.pop(event.rule, None)
        recent.append(data)
    del recent[:-RECENT_EVENTS]


def _complete_count(shape: WindowShape, first: float, now: float) -> int:
    return max(0, math.floor(now / shape.every) - math.floor(first / shape.every))


def _round(seconds: float) -> float:
    return round(seconds, 6)
