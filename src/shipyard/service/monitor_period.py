"""One period of an endpoint, as a report needs it: what the monitor computes for that period
as one window (the same record ``monitor run`` stores, computed here without storing it or
evaluating alerts), the reference profile and the period's values of the columns it tested
(for charts),
the stored monitor records whose windows end in the period, and the alerts firing now."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from shipyard.profiles import Profile
from shipyard.service.monitor import Monitor, WindowShape, firing_alerts
from shipyard.service.windows import LogFrames, Window


@dataclass(frozen=True)
class Period:
    since: float
    until: float
    record: dict[str, Any]
    reference: Profile | None  # None: nothing was tested (no rows, too few rows)
    current: dict[str, Any]  # the period's values of the tested columns
    history: list[dict[str, Any]]  # stored records ending in the period, oldest first
    firing: dict[str, Any]  # alert rule -> its firing event (now, not only in the period)

    @property
    def tested(self) -> dict[str, str]:
        return tested_kinds(self.record)


def tested_kinds(record: dict[str, Any]) -> dict[str, str]:
    """The columns a monitor record's drift tests cover (inputs, then outputs) and the kind
    each was tested as."""
    kinds: dict[str, str] = {}
    for part in ("drift", "output_drift"):
        for name, col in ((record.get(part) or {}).get("columns") or {}).items():
            kinds[name] = str(col.get("kind"))
    return kinds


def analyse_period(monitor: Monitor, since: float, until: float) -> Period:
    """``monitor``'s endpoint over ``[since, until)``."""
    frames = LogFrames(monitor.log_dir, monitor.endpoint, since=since, until=until)
    data = frames.data(Window(since, until, "time", complete=until <= time.time()))
    span = until - since
    record = monitor.record_of(data, WindowShape(every=span, window=span))
    reference = None
    current: dict[str, Any] = {}
    tested = tested_kinds(record)
    if tested:
        reference = monitor.reference_of(data).profile
        current = {n: data.frame[n] for n in tested if n in data.frame}
    history = [r for r in monitor.history.records()  # oldest window first
               if since < float(r.get("window", {}).get("end_ts", 0.0)) <= until]
    return Period(since, until, record, reference, current, history,
                  firing_alerts(monitor.alert_state()))
