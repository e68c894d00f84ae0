"""Observations for rollouts: what each model version answered over ``[since, until)``, read
from every replica's prediction log, as the ``VersionTraffic`` the analyses take
(``monitoring/canary.py``, ``monitoring/shadow.py``).

One read per kind: the answered rows (``predictions``, or ``shadow`` for a shadow version's
answers to copied requests), the failed answers (``errors``) and the feedback labels, joined by
``(request_id, row)`` with the monitor's join (``stores.feedback.joined_labels``). Rows are
grouped by ``model/version`` (``NAME/V``, as policies name versions) with Arrow compute, never
a Python loop per row, so an interval of 100k rows reads in well under a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.monitoring.traffic import VersionTraffic
from shipyard.names import check_endpoint_name
from shipyard.service.windows import to_numpy
from shipyard.types import Array

if TYPE_CHECKING:
    import pyarrow as pa

_PREDICTIONS = ("output.label", "output.value")  # the log's names for a model's answer


def traffic(log_root: str | Path, endpoint: str, since: float, until: float,
            versions: Sequence[str], *, class_labels: Sequence[Any] | None,
            variants: Sequence[str] | None = None, keyed_only: bool = False,
            shadow: bool = False,
            revisions: Sequence[int] | None = None) -> dict[str, VersionTraffic]:
    """Each of ``versions`` (``NAME/V``)'s traffic to ``endpoint`` in ``[since, until)``
    (seconds since the epoch); a version with none gets an empty one (requests 0).

    ``variants``: only rows the policy routed as one of these; ``keyed_only``: only requests
    that had a routing key (an A/B test's); ``shadow``: the shadow version's answers and
    failures instead of those the callers got; ``revisions``: only requests routed by these
    policy revisions (a canary step's, not the previous step's still arriving from servers
    that had not yet seen the new policy). ``class_labels``: the classes, in the order
    ``probabilities`` has its columns (None: no probabilities)."""
    check_endpoint_name(endpoint)
    start, end = (datetime.fromtimestamp(t, UTC) for t in (since, until))
    labels = None if class_labels is None else tuple(str(c) for c in class_labels)
    answered = read_rows(log_root, endpoint, "shadow" if shadow else "predictions", start, end)
    if answered is not None:
        answered = with_labels(log_root, endpoint, answered, start)
        answered = _chosen(answered, variants, keyed_only, revisions=revisions)
    failed = read_rows(log_root, endpoint, "errors", start, end)
    if failed is not None:
        failed = _chosen(failed, variants, keyed_only, shadow=shadow, revisions=revisions)
    by_answered = _by_version(answered, versions)
    by_failed = _by_version(failed, versions)
    return {v: _version_traffic(v, by_answered.get(v), by_failed.get(v), labels)
            for v in versions}


def read_rows(root: str | Path, endpoint: str, kind: str, start: datetime,
              end: datetime) -> pa.Table | None:
    """The endpoint's ``kind`` rows in ``[start, end)`` without their inputs; None if none."""
    from shipyard.stores.predictions import NothingLoggedError, read_log

    try:
        table = read_log(root, endpoint, kind=kind, since=start, until=end, inputs=False)
    except NothingLoggedError:
        return None
    return table if table.num_rows else None


def with_labels(root: str | Path, endpoint: str, table: pa.Table,
                start: datetime) -> pa.Table:
    """``table`` with a ``target`` column: the feedback label of each row, if any."""
    from shipyard.stores.feedback import joined_labels, segment_files, segments_between

    files = segments_between(segment_files(root, "feedback", endpoint), start, None)
    return joined_labels(table, files, since=start).table


def _chosen(table: pa.Table, variants: Sequence[str] | None, keyed_only: bool, *,
            shadow: bool | None = None,
            revisions: Sequence[int] | None = None) -> pa.Table | None:
    """The rows of ``variants`` / with a routing key / of shadow copies (errors) or not /
    routed by one of ``revisions``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    keep = []
    if variants is not None:
        keep.append(pc.is_in(table["variant"], value_set=pa.array(list(variants),
                                                                    pa.string())))
    if keyed_only:
        keep.append(pc.not_equal(pc.fill_null(table["routing_key"], ""), ""))
    if shadow is not None:
        keep.append(pc.equal(pc.fill_null(table["shadow"], False), shadow))
    if revisions is not None:
        keep.append(pc.is_in(pc.fill_null(table["policy_revision"], 0),
                             value_set=pa.array(list(revisions), pa.int64())))
    if keep:
        mask = keep[0]
        for more in keep[1:]:
            mask = pc.and_(mask, more)
        table = table.filter(mask)
    return table if table.num_rows else None


def _by_version(table: pa.Table | None, versions: Sequence[str]) -> dict[str, pa.Table]:
    """The rows of each of ``versions`` (``NAME/V``) that ``table`` has."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if table is None:
        return {}
    keys = pc.binary_join_element_wise(table["model"].cast(pa.string()),
                                       table["version"].cast(pa.string()), "/")
    out = {}
    for version in dict.fromkeys(versions):
        rows = table.filter(pc.equal(keys, version))
        if rows.num_rows:
            out[version] = rows
    return out


def _version_traffic(version: str, answered: pa.Table | None, failed: pa.Table | None,
                     labels: tuple[str, ...] | None) -> VersionTraffic:
    import pyarrow.compute as pc

    requests = errors = 0
    if failed is not None:
        requests += failed.num_rows
        errors = int(pc.sum(pc.greater_equal(failed["status"], 500)).as_py() or 0)
    if answered is None:
        return VersionTraffic(version, requests, errors, class_labels=labels)
    requests += int(pc.count_distinct(answered["request_id"]).as_py())
    first = answered.filter(pc.equal(answered["row"], 0))  # one row per request
    latencies = np.asarray(first["latency_ms"].to_numpy(), dtype=np.float64)
    predictions = _predictions(answered)
    truth = labelled = None
    if "target" in answered.column_names:
        known = np.asarray(answered["target"].is_valid().to_numpy(zero_copy_only=False),
                           dtype=bool)
        truth = _values(answered["target"].filter(known))
        labelled = predictions[known]
    return VersionTraffic(version, requests, errors, latencies, predictions,
                          _probabilities(answered, labels), labels, truth, labelled)


def _predictions(table: pa.Table) -> Array:
    """The model's answer per row: its label or value, else its first named output."""
    names = [n for n in _PREDICTIONS if n in table.column_names] or [
        n for n in table.column_names
        if n.startswith("output.") and not n.startswith("output.proba.")]
    return _values(table[names[0]]) if names else np.full(table.num_rows, None, dtype=object)


def _probabilities(table: pa.Table, labels: tuple[str, ...] | None) -> Array | None:
    """rows x classes, columns in ``labels`` order; None unless every class has one."""
    if not labels:
        return None
    names = [f"output.proba.{label}" for label in labels]
    if not all(n in table.column_names for n in names):
        return None
    return np.column_stack([np.asarray(table[n].to_numpy(), dtype=np.float64)
                            for n in names])


def _values(column: pa.ChunkedArray) -> Array:
    """A column as numpy, the monitor's way (NaN / None for nulls)."""
    values = to_numpy(column)
    if values is None:  # lists or other shapes: as Python objects
        return np.asarray(column.to_pylist(), dtype=object)
    return values
