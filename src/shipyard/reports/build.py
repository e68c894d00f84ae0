"""A report as data: the JSON a report file embeds (and ``--format json`` prints).

Two subjects: two datasets (``dataset_report``: the drift tests ``compare`` gives, in the
compact form the monitor stores), or an endpoint over a period (``endpoint_report``: exactly
the record ``monitor run`` computes for that period as one window, the stored windows of the
period as a timeline, and the alerts). Both add per-feature summaries (``features.py``):
summaries only, never rows.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from shipyard.monitoring import compare
from shipyard.monitoring.report import jsonable
from shipyard.profiles import Profile
from shipyard.profiles.frame import to_columns
from shipyard.service.monitor import Monitor
from shipyard.service.monitor_analysis import compact_drift
from shipyard.service.monitor_period import analyse_period
from shipyard.service.windows import iso
from shipyard.views.features import Side, feature_summaries, sides

FORMAT = "shipyard.report/1"
TIMELINE = ("drift_share", "dataset_drift", "accuracy", "estimated_accuracy", "rows",
            "p99_latency_ms")  # metrics a timeline plots, where the stored windows have them


def dataset_report(reference: Any, current: Any, *, reference_name: str = "reference",
                   current_name: str = "current", columns: Sequence[str] | None = None,
                   title: str | None = None) -> dict[str, Any]:
    """Drift of ``current`` against ``reference`` (anything ``compare`` takes: a pandas
    DataFrame, a pyarrow Table, a mapping of columns, a ``Profile``)."""
    # each side read into columns once: compare() and the summaries both use them
    reference, current = _columns(reference), _columns(current)
    drift = compare(reference, current, columns=columns)
    kinds = {name: str(col.kind) for name, col in drift.columns.items()}
    return _strict({
        "format": FORMAT, "title": title or f"{current_name} against {reference_name}",
        "generated_at": iso(time.time()),
        "subject": {"kind": "datasets", "reference": reference_name, "current": current_name},
        "rows": {"reference": drift.rows_reference, "current": drift.rows_current},
        "drift": compact_drift(drift.to_dict()),
        "features": feature_summaries(_sides(reference, kinds), _sides(current, kinds),
                                      kinds)})


def endpoint_report(monitor: Monitor, since: float, until: float, *,
                    title: str | None = None) -> dict[str, Any]:
    """``monitor``'s endpoint over ``[since, until)``: the monitor's record of the period,
    its timeline of stored windows, alerts, and feature summaries."""
    period = analyse_period(monitor, since, until)
    record = period.record
    features: dict[str, Any] = {}
    if period.reference is not None:
        kinds = period.tested
        features = feature_summaries(period.reference.columns, sides(period.current, kinds),
                                     kinds)
    return _strict({
        "format": FORMAT,
        "title": title or f"endpoint {monitor.endpoint}, {iso(since)} to {iso(until)}",
        "generated_at": iso(time.time()),
        "subject": {"kind": "endpoint", "endpoint": monitor.endpoint, "since": iso(since),
                    "until": iso(until)},
        "rows": {"reference": (record.get("reference") or {}).get("rows"),
                 "current": record.get("rows", 0)},
        "monitor": record,
        "drift": record.get("drift"),
        "features": features,
        "timeline": [_point(r) for r in period.history],
        "alerts": {"firing": period.firing,
                   "events": [e for r in period.history for e in r.get("alerts") or []]}})


def _columns(data: Any) -> Any:
    """A profile as it is; other data as a mapping of column arrays."""
    return data if isinstance(data, Profile) else to_columns(data)


def _sides(data: Any, kinds: dict[str, str]) -> dict[str, Side]:
    """A dataset's sides: a profile's columns, or the data's own values (exact)."""
    if isinstance(data, Profile):
        return dict(data.columns)
    return sides(data, kinds)


def _point(record: dict[str, Any]) -> dict[str, Any]:
    metrics = record.get("metrics") or {}
    return {"end": record["window"]["end"], "end_ts": record["window"]["end_ts"],
            **{k: metrics[k] for k in TIMELINE if metrics.get(k) is not None}}


def _strict(report: dict[str, Any]) -> dict[str, Any]:
    """The report as strict JSON values (NaN and infinities None, numpy scalars plain)."""
    out: dict[str, Any] = jsonable(report)
    return out
