"""``predict_batch``: score a dataset with a package, Parquet in, Parquet out.

    input (Parquet/CSV file, folder, URL) -> record batches -> engine (local: threads or
    processes; Ray Data: actors) -> Scorer.score per batch -> output parts (staged) ->
    publish; bad rows -> rejects file; good rows -> prediction log (--log)
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from shipyard.errors import ShipyardError
from shipyard.scoring.columns import InputPlan, plan_inputs
from shipyard.scoring.core import Scored
from shipyard.scoring.models import ModelSource, resolve
from shipyard.scoring.progress import BatchProgress
from shipyard.scoring.publish import Destination
from shipyard.scoring.writers import ParquetOutput
from shipyard.stores.table_sources import PARQUET_SUFFIXES, InputError, Source, open_source

# rows per record batch: every batch in flight holds its Arrow columns and the model's input
# matrix (~8 MB per 16k rows of 30 floats). 64k-row batches doubled a run's peak memory
# (~600 MB against ~340 MB) and, as pages freed by one batch were not yet reused by the
# next, had the kernel zero ~0.4 GB of fresh pages per million rows (~20 % more CPU)
DEFAULT_BATCH_SIZE = 16_384
OUTPUT_COLUMNS_RESERVED = ("prediction",)


class RejectLimitError(ShipyardError):
    """More rows failed validation than ``max_rejects`` allows; nothing was published at the
    output (the rejects file was, so the reasons can be read)."""


@dataclass
class BatchSummary:
    """What a batch run did. ``reasons``: the most frequent reject reasons and their counts."""

    batch_id: str
    output: str
    rows: int = 0
    scored: int = 0
    rejected: int = 0
    seconds: float = 0.0
    rejects: str | None = None
    logged: int = 0
    engine: str = "local"
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"batch_id": self.batch_id, "output": self.output, "rows": self.rows,
                "scored": self.scored, "rejected": self.rejected, "rejects": self.rejects,
                "logged": self.logged, "engine": self.engine,
                "seconds": round(self.seconds, 3),
                "rows_per_second": round(self.rows_per_second, 1), "reasons": self.reasons}


def is_folder_output(location: str) -> bool:
    """A folder of part files unless the name ends in .parquet (or it is a folder now)."""
    if location.endswith("/"):
        return True
    if location.lower().endswith(PARQUET_SUFFIXES):
        return False
    return "://" in location or not Path(location).is_file()


def default_rejects(output: str) -> str:
    """``OUT.parquet`` -> ``OUT.rejects.parquet``; a folder ``OUT`` -> ``OUT.rejects.parquet``
    beside it (never inside the output)."""
    base = output.rstrip("/")
    for suffix in PARQUET_SUFFIXES:
        if base.lower().endswith(suffix):
            base = base[: -len(suffix)]
            break
    return f"{base}.rejects.parquet"


@dataclass
class Run:
    """One run's settings, resolved: what the engines need."""

    source: ModelSource
    input: Source
    plan: InputPlan
    passthrough: list[str]
    batch_size: int
    workers: int
    keep_log: bool
    reject_schema: pa.Schema


def predict_batch(model_uri_or_path: str | Path, input: str | Path, output: str | Path, *,
                  batch_size: int = DEFAULT_BATCH_SIZE,
                  engine: Literal["local", "ray"] = "local",
                  passthrough: Sequence[str] = (), log_endpoint: str | None = None,
                  log_dir: str | Path | None = None, rejects: str | Path | None = None,
                  max_rejects: float | None = None, workers: int | None = None,
                  ray_address: str | None = None, trust: bool = False,
                  registry: str | None = None, progress: bool = True,
                  parallel: Literal["threads", "processes"] = "threads") -> BatchSummary:
    """Score every row of ``input`` with the model; write predictions (and probabilities)
    with the ``passthrough`` columns to ``output``. Rows failing the signature go to the
    rejects file (``rejects``, default ``OUTPUT.rejects.parquet``) with their row number and
    reason; more than ``max_rejects`` (a share of the rows) fails the run. Output appears
    only when the run succeeds (written aside, then published)."""
    if batch_size < 1:
        raise ShipyardError("batch_size must be at least 1")
    if max_rejects is not None and not 0.0 <= max_rejects <= 1.0:
        raise ShipyardError(f"max_rejects is a share of the rows, 0 to 1; got {max_rejects}")
    started = time.perf_counter()
    run = _resolve(model_uri_or_path, str(input), passthrough, batch_size=batch_size,
                   workers=workers, trust=trust, registry=registry,
                   keep_log=log_endpoint is not None)
    out = str(output)
    summary = BatchSummary(batch_id=_batch_id(), output=out, engine=engine)
    rejects_at = str(rejects) if rejects is not None else default_rejects(out)
    if engine == "ray":
        from shipyard.scoring.ray_engine import log_settings, score_with_ray

        log = None if log_endpoint is None else log_settings(
            run, log_endpoint, _log_root(log_dir), summary.batch_id)
        score_with_ray(run, out, rejects_at, summary, max_rejects=max_rejects,
                       explicit_rejects=rejects is not None, ray_address=ray_address,
                       log=log, progress=progress)
    elif engine == "local":
        _score_locally(run, out, rejects_at, summary, max_rejects=max_rejects,
                       explicit_rejects=rejects is not None, log_endpoint=log_endpoint,
                       log_dir=log_dir, progress=progress, parallel=parallel)
    else:
        raise ShipyardError(f"unknown engine {engine!r}: local or ray")
    summary.seconds = time.perf_counter() - started
    return summary


def _batch_id() -> str:
    return f"batch-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"


def _resolve(model: str | Path, input: str, passthrough: Sequence[str], *, batch_size: int,
             workers: int | None, trust: bool, registry: str | None, keep_log: bool) -> Run:
    source = resolve(model, trust=trust, registry=registry)
    signature = source.describe().signature
    data = open_source(input)
    schema = data.schema()
    keep = list(passthrough)
    missing = [c for c in keep if c not in schema.names]
    if missing:
        raise InputError(f"passthrough columns {missing} are not in the input (it has "
                         f"{schema.names})")
    plan = plan_inputs(signature, schema.names, keep)
    outputs = {"prediction", *(f"proba_{c}" for c in signature.class_labels or ())}
    clash = sorted(outputs & set(keep))
    if clash:
        raise ShipyardError(f"passthrough columns {clash} would clash with output columns")
    reject_schema = pa.schema([pa.field("row", pa.int64()), pa.field("reason", pa.string()),
                               *(schema.field(c) for c in keep)])
    return Run(source, data, plan, keep, batch_size, workers or os.cpu_count() or 1,
               keep_log, reject_schema)


def _reject_output(run: Run, rejects_at: str) -> ParquetOutput:
    return ParquetOutput(Destination.of(rejects_at, folder=False),
                         empty_schema=run.reject_schema)


def note(summary: BatchSummary, scored: Scored, reasons: Counter[str]) -> None:
    """Count one scored batch into the summary."""
    summary.rows += scored.rows
    summary.scored += scored.rows - scored.rejected
    summary.rejected += scored.rejected
    if scored.rejects is not None:
        reasons.update(scored.rejects.column("reason").to_pylist())


def check_limit(summary: BatchSummary, max_rejects: float | None, total: int | None) -> None:
    """RejectLimitError once the rejects pass ``max_rejects`` of the input's ``total`` rows
    (None: of the rows seen, at the end of a run)."""
    if max_rejects is None or not summary.rejected:
        return
    rows = total if total is not None else summary.rows
    if summary.rejected > max_rejects * rows:
        raise RejectLimitError(
            f"{summary.rejected} of {rows} rows failed validation, more than --max-rejects "
            f"{max_rejects:g} allows; nothing was written to {summary.output}")


def finish(summary: BatchSummary, reasons: Counter[str], rejects: ParquetOutput,
           explicit: bool) -> None:
    """Publish the rejects file when a row was rejected or its path was asked for."""
    summary.reasons = dict(reasons.most_common(10))
    if summary.rejected or explicit:
        rejects.publish()
        summary.rejects = rejects.destination.location
    else:
        rejects.discard()


def _score_locally(run: Run, out: str, rejects_at: str, summary: BatchSummary, *,
                   max_rejects: float | None, explicit_rejects: bool,
                   log_endpoint: str | None, log_dir: str | Path | None, progress: bool,
                   parallel: Literal["threads", "processes"]) -> None:
    from shipyard.scoring.local import score_local
    from shipyard.stores.table_sources import read_chunks

    total = run.input.total_rows()
    log = _open_log(run, log_endpoint, log_dir, summary.batch_id)
    output = ParquetOutput(Destination.of(out, folder=is_folder_output(out)),
                           empty_schema=passthrough_schema(run))
    rejected = _reject_output(run, rejects_at)
    reasons: Counter[str] = Counter()
    try:
        output.start()
        rejected.start()
        chunks = read_chunks(run.input, run.batch_size, columns=_read_columns(run),
                             csv_strings=run.plan.numeric_columns())
        with BatchProgress(total_rows=total, total_bytes=run.input.total_bytes,
                           show=progress) as bar:
            for chunk, scored in score_local(chunks, run.source, run.plan, run.passthrough,
                                             workers=run.workers, mode=parallel,
                                             keep_log=run.keep_log):
                note(summary, scored, reasons)
                output.write(scored.table)
                if scored.rejects is not None:
                    rejected.write(scored.rejects)
                if total is not None:  # else only the end knows the share
                    check_limit(summary, max_rejects, total)
                if log is not None:
                    log.append(scored)
                bar.update(scored.rows, chunk.read_bytes)
        check_limit(summary, max_rejects, None)
    except RejectLimitError:
        output.discard()
        finish(summary, reasons, rejected, True)
        raise
    except BaseException:
        output.discard()
        rejected.discard()
        raise
    finally:
        if log is not None:
            log.close()
            summary.logged = log.rows
    try:
        output.publish()
    except BaseException:  # e.g. the destination changed under us: nothing half-staged left
        output.discard()
        rejected.discard()
        raise
    finish(summary, reasons, rejected, explicit_rejects)


def passthrough_schema(run: Run) -> pa.Schema:
    """The output's schema when no row was scored: the passthrough columns alone."""
    return pa.schema([f for f in run.reject_schema if f.name not in ("row", "reason")])


def _read_columns(run: Run) -> list[str]:
    """The input columns a run reads: the model's, then the passthrough ones."""
    return list(dict.fromkeys([*run.plan.read_columns, *run.passthrough]))


def _open_log(run: Run, endpoint: str | None, log_dir: str | Path | None,
              batch_id: str) -> Any:
    if endpoint is None:
        return None
    from shipyard.scoring.prediction_log import BatchLog

    signature = run.source.describe().signature
    return BatchLog(_log_root(log_dir), endpoint, model=run.source.model,
                    version=run.source.version, batch_id=batch_id,
                    class_labels=signature.class_labels)


def _log_root(log_dir: str | Path | None) -> str | Path:
    """The prediction log directory: ``log_dir`` (a path, or a URL such as
    ``s3://bucket/logs``), else ``$SHIPYARD_HOME/logs`` (where ``shipyard serve`` and
    ``shipyard monitor run`` look by default)."""
    from shipyard.settings import Settings
    from shipyard.stores.log_location import log_root

    return log_root(log_dir) if log_dir is not None else Settings.from_env().home / "logs"
