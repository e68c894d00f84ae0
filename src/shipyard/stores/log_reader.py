"""Reading the prediction log (``predictions.py`` writes it): the rows of one endpoint's
segments of one kind, across every segment and schema, in a time range."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from shipyard.errors import ShipyardError
from shipyard.names import check_endpoint_name
from shipyard.stores.feedback import read_feedback, segment_files, segments_between
from shipyard.stores.log_location import readable


class NothingLoggedError(ShipyardError):
    """The endpoint has nothing logged (yet): a fresh server before its first request."""


def read_log(root: str | Path, endpoint: str, *, kind: str = "predictions",
             since: datetime | None = None, until: datetime | None = None,
             limit: int | None = None, inputs: bool = True) -> pa.Table:
    """The logged rows of ``endpoint`` in ``[since, until)`` (oldest first; ``limit`` keeps
    the newest), across every segment and schema. ``kind``: ``predictions``, ``shadow``,
    ``errors`` or ``feedback``; ``inputs=False``: without the ``input.*`` columns. Rows of
    segments older than the ``variant`` and ``policy_revision`` columns read as ``""`` and
    0, and with a null ``api_key`` (the key name) when older than it; only the segments of
    the hours around ``[since, until)`` are opened."""
    if kind not in _KINDS:
        raise ShipyardError(f"no log kind {kind!r}; one of {', '.join(_KINDS)}")
    every = segment_files(root, kind, check_endpoint_name(endpoint))
    if not every:
        raise NothingLoggedError(f"no {kind} logged for endpoint {endpoint!r} under {root}")
    # only the hours of the range (the newest segment alone gives an empty range its columns)
    files = segments_between(every, since, until) or every[-1:]
    if kind == "feedback":  # segments of older versions may disagree on the label type
        table = read_feedback(files, since=since).table
        if until is not None:
            table = table.filter(pc.less(table["ts"], _moment(until)))
        return table if limit is None else table.slice(max(0, table.num_rows - limit))
    fs, paths = readable(files)  # local paths, or one object store's
    schema = pa.unify_schemas([pq.read_schema(f, filesystem=fs) for f in paths],
                              promote_options="permissive")
    dataset = pads.dataset(paths, schema=schema, format="parquet", filesystem=fs)
    flt = None
    for bound in ([] if since is None else [pads.field("ts") >= _moment(since)]) + (
            [] if until is None else [pads.field("ts") < _moment(until)]):
        flt = bound if flt is None else flt & bound
    order = [("ts", "ascending")] + ([("row", "ascending")] if "row" in schema.names else [])
    columns = None if inputs else [n for n in schema.names if not n.startswith("input.")]
    table = _fill_policy(dataset.to_table(columns=columns, filter=flt).sort_by(order), kind)
    if limit is not None:  # the newest ``limit`` rows, still oldest first
        return table.slice(max(0, table.num_rows - limit))
    return table


_KINDS = ("predictions", "shadow", "errors", "feedback")
_POLICY_COLUMNS = (("variant", pa.string(), ""), ("policy_revision", pa.int32(), 0))


def _moment(stamp: datetime) -> pa.Scalar:
    return pa.scalar(stamp.astimezone(UTC), type=pa.timestamp("us", tz="UTC"))


def _fill_policy(table: pa.Table, kind: str) -> pa.Table:
    """``variant`` / ``policy_revision`` of rows written before they existed: "" and 0;
    ``api_key``: null."""
    if kind == "errors":
        return table
    if "api_key" not in table.column_names:
        table = table.append_column("api_key", pa.nulls(table.num_rows, type=pa.string()))
    for name, kind_, default in _POLICY_COLUMNS:
        if name not in table.column_names:
            table = table.append_column(name, pa.repeat(pa.scalar(default, type=kind_),
                                                         table.num_rows))
        elif table[name].null_count:
            index = table.column_names.index(name)
            table = table.set_column(index, name, pc.fill_null(
                table[name].cast(kind_), pa.scalar(default, type=kind_)))
    return table
