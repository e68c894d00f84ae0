"""Feedback segments of the prediction log: ground-truth labels by request id and row.

Writing: one label column per segment, typed as the labels are (the server checks them
against the model's task first, so one endpoint's labels share a type). A segment whose labels
do not fit one Arrow type is written as strings rather than failing.

Reading (``read_feedback``) never fails on types: segments written by older versions may hold
int labels in one file and booleans or strings in another. Each segment is read on its own and
its labels are cast to one type: the one asked for (the endpoint's prediction type, so labels
compare with predictions), else the narrowest type every segment fits. A value that does not
convert becomes null, is counted in ``FeedbackRead.unconvertible`` and is logged.

Several labels for one row: the first counts; a later one counts only if it was sent as a
replacement (``replace``), and then the newest replacement wins (``effective_labels``). Rows of
segments written before replacements were marked have ``replace`` null: they keep the meaning
they had when written (the newest label wins).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shipyard.stores.log_location import join, list_objects, log_root, readable

log = logging.getLogger(__name__)

KEYS = ["request_id", "row"]


@dataclass
class FeedbackRecord:
    """Ground truth for a logged request: one label per row of that request (rows 0..n-1);
    ``replace``: sent to replace labels given before."""

    request_id: str
    ts: float
    endpoint: str
    labels: Sequence[Any]
    replace: bool = False

    @property
    def rows(self) -> int:
        return len(self.labels)


def feedback_table(records: Sequence[FeedbackRecord]) -> pa.Table:
    """One segment's rows."""
    counts = [len(r.labels) for r in records]
    return pa.table({
        "request_id": pa.array(np.repeat([r.request_id for r in records], counts).tolist(),
                               type=pa.string()),
        "row": pa.array([i for n in counts for i in range(n)], type=pa.int32()),
        "ts": pa.array(np.repeat([int(r.ts * 1e6) for r in records], counts),
                       type=pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "endpoint": pa.array(np.repeat([r.endpoint for r in records], counts).tolist(),
                             type=pa.string()),
        "label": label_array([v for r in records for v in r.labels]),
        "replace": pa.array(np.repeat([r.replace for r in records], counts), type=pa.bool_()),
    })


def label_array(labels: list[Any]) -> pa.Array:
    """Labels as one Arrow array: their own type when they share one (booleans stay
    booleans, ints never become booleans), else strings."""
    kinds = {_kind(v) for v in labels if v is not None}
    if len(kinds) <= 1 or kinds == {"int", "float"}:
        try:
            return pa.array(labels)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            pass
    return pa.array([None if v is None else _text(v) for v in labels], type=pa.string())


def _kind(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, np.integer)):
        return "int"
    if isinstance(value, (float, np.floating)):
        return "float"
    return "str"


def _text(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    return str(value)


@dataclass
class FeedbackRead:
    """The feedback rows of an endpoint, with the labels that could not be cast."""

    table: pa.Table
    unconvertible: int = 0


def read_feedback(files: Sequence[str], *, label_type: pa.DataType | None = None,
                  since: datetime | None = None) -> FeedbackRead:
    """The rows of these feedback segments (oldest first), labels cast to ``label_type``
    (default: the narrowest type every segment's labels fit)."""
    fs, paths = readable(files)
    tables = [pq.read_table(f, filesystem=fs) for f in paths]
    if since is not None:
        moment = pa.scalar(since.astimezone(UTC), type=pa.timestamp("us", tz="UTC"))
        tables = [t.filter(pc.greater_equal(t["ts"], moment)) for t in tables]
    target = label_type or common_label_type([t.schema.field("label").type for t in tables])
    out, bad = [], 0
    for table, name in zip(tables, files, strict=True):
        labels, missed = cast_labels(table["label"], target)
        if missed:
            log.warning("feedback segment %s: %d label(s) do not convert to %s; read as null",
                        name, missed, target)
            bad += missed
        replace = (table["replace"] if "replace" in table.column_names
                   else pa.nulls(table.num_rows, pa.bool_()))
        out.append(pa.table({
            "request_id": table["request_id"].cast(pa.string()),
            "row": table["row"].cast(pa.int32()),
            "ts": table["ts"].cast(pa.timestamp("us", tz="UTC")),
            "endpoint": table["endpoint"].cast(pa.string()),
            "label": labels,
            "replace": replace.cast(pa.bool_())}))
    merged = pa.concat_tables(out).sort_by([("ts", "ascending"), ("row", "ascending")])
    return FeedbackRead(merged, bad)


def common_label_type(types: Sequence[pa.DataType]) -> pa.DataType:
    """The narrowest type labels of all these types fit: bool, int64, float64 or string."""
    plain = {_plain_type(t) for t in types if not pa.types.is_null(t)}
    if not plain:
        return pa.string()
    if plain == {"bool"}:
        return pa.bool_()
    if plain <= {"bool", "int"}:
        return pa.int64()
    if plain <= {"bool", "int", "float"}:
        return pa.float64()
    return pa.string()


def _plain_type(kind: pa.DataType) -> str:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_boolean(kind):
        return "bool"
    if pa.types.is_integer(kind):
        return "int"
    if pa.types.is_floating(kind):
        return "float"
    return "str"


def cast_labels(column: pa.ChunkedArray, target: pa.DataType) -> tuple[pa.Array, int]:
    """``column`` as ``target``, value by value where Arrow's cast would fail or change a
    value (1.5 -> 1); returns the values that did not convert (as nulls) too."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if column.type == target:
        return column.combine_chunks(), 0
    values, missed = [], 0
    for value in column.to_pylist():
        converted = None if value is None else _convert(value, target)
        missed += value is not None and converted is None
        values.append(converted)
    return pa.array(values, type=target), missed


def _convert(value: Any, target: pa.DataType) -> Any:
    """``value`` as a Python value of Arrow type ``target``, or None when it has none."""
    if pa.types.is_string(target) or pa.types.is_large_string(target):
        return _text(value)
    number = _number(value)
    if number is None:
        return None
    if pa.types.is_boolean(target):
        return bool(number) if number in (0, 1) else None
    if pa.types.is_integer(target):
        return int(number) if math.isfinite(number) and number == int(number) else None
    if pa.types.is_floating(target):
        return float(number)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return float(text == "true")
    try:
        return float(text)
    except ValueError:
        return None


def effective_labels(feedback: pa.Table) -> pa.Table:
    """``request_id, row, label``: one label per row (see the module docstring); ``feedback``
    is in time order."""
    indexed = feedback.append_column("__i", pa.array(np.arange(feedback.num_rows)))
    first = indexed.group_by(KEYS, use_threads=False).aggregate([("__i", "min")])
    counts = pc.is_in(indexed["__i"], value_set=first["__i_min"].combine_chunks())
    replace = indexed["replace"] if "replace" in indexed.column_names else None
    keep = counts if replace is None else pc.or_kleene(
        counts, pc.fill_null(replace, True))
    labels = (indexed.filter(keep).select([*KEYS, "label"])
              .group_by(KEYS, use_threads=False).aggregate([("label", "last")]))
    return labels.rename_columns([*KEYS, "label"])


def joined_labels(table: pa.Table, files: Sequence[str], *,
                  since: datetime | None = None) -> FeedbackRead:
    """``table`` (logged predictions, oldest first) with each row's label (``effective_labels``)
    joined by ``(request_id, row)`` as a ``target`` column (null: no label), labels cast to
    the predictions' type; ``files``: the feedback segments, read from ``since`` (and never
    before the first prediction: feedback comes after it)."""
    if not files or table.num_rows == 0:
        return FeedbackRead(table)
    first = table["ts"][0].as_py()
    read = read_feedback(files, label_type=_prediction_type(table),
                         since=first if since is None else max(first, since))
    if read.table.num_rows == 0:
        return FeedbackRead(table, read.unconvertible)
    labels = effective_labels(read.table)
    # only the keys go through the join (any column type may ride along the table)
    indexed = table.select(KEYS).append_column("__order", pa.array(np.arange(table.num_rows)))
    joined = indexed.join(labels, keys=KEYS, join_type="left outer").sort_by("__order")
    return FeedbackRead(table.append_column("target", joined["label"]), read.unconvertible)


def _prediction_type(table: pa.Table) -> pa.DataType | None:
    """The type labels compare with: the predictions' (ints as int64, floats as float64)."""
    for name in ("output.label", "output.value"):
        if name in table.column_names:
            kind = table.schema.field(name).type
            kind = kind.value_type if pa.types.is_dictionary(kind) else kind
            if pa.types.is_integer(kind):
                return pa.int64()
            if pa.types.is_floating(kind):
                return pa.float64()
            if pa.types.is_boolean(kind) or pa.types.is_string(kind):
                return kind
    return None


def segment_files(root: str | Path, kind: str, endpoint: str) -> list[str]:
    """The written segments of one endpoint's log of ``kind`` (not those being written):
    paths, or URLs for a log on an object store."""
    folder = join(log_root(root), kind, f"endpoint={endpoint}")
    if not isinstance(folder, Path):
        return list_objects(folder)
    return sorted(str(p) for p in folder.rglob("*.parquet") if not p.name.startswith("."))


def segments_between(files: Sequence[str], since: datetime | None,
                     until: datetime | None) -> list[str]:
    """Those of ``files`` whose hour can hold rows of ``[since, until)``: an hour's segments
    hold the batches that began in it, so an hour of margin on each side (a folder that is
    not an hour's is kept)."""
    if since is None and until is None:
        return list(files)
    low = -math.inf if since is None else since.timestamp() - 2 * _HOUR
    high = math.inf if until is None else until.timestamp() + _HOUR
    return [f for f in files
            if (start := hour_start(Path(f).parent)) is None or low < start < high]


_HOUR = 3600.0


def hour_start(folder: Path) -> float | None:
    """When the hour of a segments folder (``date=D/hour=H``) starts (None: not one)."""
    date, hour = folder.parent.name, folder.name
    try:
        stamp = datetime.strptime(f"{date[5:]} {hour[5:]}", "%Y-%m-%d %H")
    except ValueError:
        return None
    return stamp.replace(tzinfo=UTC).timestamp()
