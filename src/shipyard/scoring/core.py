"""Scoring one record batch: validate against the signature, find the rows that fail, predict
on the others. Both engines (local and Ray) call ``Scorer.score`` on every batch.

A batch that passes validation as a whole (the usual case) costs one ``prepare`` and one
model call. A batch that fails is split in halves until each failing row stands alone
(validation checks every row on its own, so a part passes exactly when all its rows do): k
bad rows among n cost about k·log2(n) extra checks, and each bad row gets the reason that
validating it alone gives.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from shipyard.errors import InputValidationError
from shipyard.runtimes.model import LoadedModel
from shipyard.scoring.columns import InputPlan, model_input, output_columns, rows_of
from shipyard.types import Array, Columns


@dataclass
class Scored:
    """One batch scored. ``table``: the good rows' passthrough columns then output columns
    (input order); ``rejects``: one row per bad row (``row``, ``reason``, passthrough);
    ``inputs`` / ``outputs``: the good rows as validated and as the model answered (kept
    only for the prediction log)."""

    table: pa.Table
    rejects: pa.Table | None
    rows: int
    seconds: float
    inputs: Columns | None = None
    outputs: Columns | None = None
    first_row: int | None = 0  # None: not known (Ray)
    ts: float = field(default_factory=time.time)

    @property
    def rejected(self) -> int:
        return 0 if self.rejects is None else self.rejects.num_rows


def reason(exc: Exception) -> str:
    if isinstance(exc, InputValidationError):
        return "; ".join(str(p) for p in exc.problems)
    return f"the input values do not form columns: {exc}"


class Scorer:
    """Scores record batches with one loaded model (one per worker process, thread or Ray
    actor; ONNX Runtime sessions may be shared by threads)."""

    def __init__(self, model: LoadedModel, plan: InputPlan, passthrough: Sequence[str] = (),
                 *, keep_log: bool = False) -> None:
        self.model = model
        self.plan = plan
        self.passthrough = list(passthrough)
        self.keep_log = keep_log

    def score(self, batch: pa.RecordBatch, first_row: int | None = 0) -> Scored:
        """Score ``batch``, whose first row is input row ``first_row`` (None: unknown, as
        on Ray; rejects then have a null row number)."""
        start = time.perf_counter()
        data = model_input(self.plan, batch)
        n = batch.num_rows
        bad: dict[int, str] = {}
        columns = self._check(data, 0, n, bad) if n else None
        keep: Array | None = None
        if bad:
            keep = np.setdiff1d(np.arange(n), np.fromiter(bad, dtype=np.int64))
            columns = self._prepare(rows_of(data, keep)) if len(keep) else None
        outputs = self.model.runtime.predict(columns) if columns is not None else None
        table = self._table(batch, keep, outputs)
        rejects = self._rejects(batch, bad, first_row) if bad else None
        return Scored(table, rejects, n, time.perf_counter() - start,
                      inputs=columns if self.keep_log else None,
                      outputs=outputs if self.keep_log else None,
                      first_row=first_row)

    def _prepare(self, data: Any) -> Columns:
        return self.model.prepare(data)

    def _check(self, data: Any, lo: int, hi: int, bad: dict[int, str]) -> Columns | None:
        """The rows lo..hi prepared if they all pass; else their bad rows noted in ``bad``
        (row -> reason) and None."""
        try:
            return self._prepare(rows_of(data, slice(lo, hi)))
        except (InputValidationError, ValueError) as exc:
            if hi - lo == 1:
                bad[lo] = reason(exc)
                return None
        mid = (lo + hi) // 2
        self._check(data, lo, mid, bad)
        self._check(data, mid, hi, bad)
        return None

    def _table(self, batch: pa.RecordBatch, keep: Array | None,
               outputs: Columns | None) -> pa.Table:
        kept = batch if keep is None else batch.take(pa.array(keep))
        cols: dict[str, pa.Array] = {name: kept.column(name) for name in self.passthrough}
        if outputs is not None:
            cols.update(output_columns(outputs, self.model.signature))
        return pa.table(cols) if cols else pa.table({}).slice(0, 0)

    def _rejects(self, batch: pa.RecordBatch, bad: dict[int, str],
                 first_row: int | None) -> pa.Table:
        rows = np.fromiter(sorted(bad), dtype=np.int64)
        numbers = (pa.nulls(len(rows), pa.int64()) if first_row is None
                   else pa.array(rows + first_row))
        cols: dict[str, pa.Array] = {"row": numbers,
                                     "reason": pa.array([bad[int(r)] for r in rows],
                                                        type=pa.string())}
        taken = batch.take(pa.array(rows))
        for name in self.passthrough:
            cols[name] = taken.column(name)
        return pa.table(cols)
