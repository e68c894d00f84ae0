"""The Ray Data engine: ``read_parquet`` / ``read_csv`` -> ``map_batches`` with actors that load
the package once each and call the same ``Scorer.score`` as the local engine -> ``write_parquet``.

The cluster is ``ray_address`` (or one already started in this process); else a local Ray
with ``workers`` CPUs is started for the run and shut down after it. Order is preserved
(``preserve_order``), so the output equals the local engine's row for row. Each actor holds
one CPU; one CPU of the cluster is left to the read and write tasks. Ray Data does
not number rows, so a reject's ``row`` is null on this engine: pass an id column through
(``--passthrough``) to name rejected rows. A folder output is written by the cluster
(``write_parquet`` into the staging folder, then published); a single-file output and the
rejects are streamed through the driver into one file. ``--log`` is written by the actors
(so the log directory must be one every node reaches).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from shipyard.errors import RuntimeUnavailableError
from shipyard.scoring.batch import (
    BatchSummary,
    RejectLimitError,
    Run,
    check_limit,
    finish,
    is_folder_output,
    passthrough_schema,
)
from shipyard.scoring.core import Scored, Scorer
from shipyard.scoring.publish import Destination
from shipyard.scoring.writers import ParquetOutput

if TYPE_CHECKING:
    from shipyard.scoring.prediction_log import BatchLog

REASON = "__shipyard_reject_reason"


class RayScorer:
    """A Ray Data actor: loads the package once, scores each batch it is given. A batch
    comes back as one table, good rows then rejected ones (``REASON`` set, outputs null)."""

    def __init__(self, run: Run, schema: pa.Schema, log: dict[str, Any] | None) -> None:
        self.scorer = Scorer(run.source.load(threads=1), run.plan, run.passthrough,
                             keep_log=log is not None)
        self.schema = schema
        self.log: BatchLog | None = None
        if log is not None:
            from shipyard.scoring.prediction_log import BatchLog

            self.log = BatchLog(**log)

    def __call__(self, table: pa.Table) -> pa.Table:
        batches = table.combine_chunks().to_batches()
        batch = batches[0] if batches else pa.RecordBatch.from_pylist([], table.schema)
        scored = self.scorer.score(batch, None)
        if self.log is not None:
            self.log.append(scored)
        return combined(scored, self.schema)


def combined(scored: Scored, schema: pa.Schema) -> pa.Table:
    """Good rows and rejected rows of one batch in one table of ``schema`` (+ ``REASON``)."""
    good = scored.table.cast(schema) if scored.table.num_rows else schema.empty_table()
    good = good.append_column(REASON, pa.nulls(good.num_rows, pa.string()))
    if scored.rejects is None:
        return good
    bad = scored.rejects
    columns = {name: (bad.column(name) if name in bad.column_names
                      else pa.nulls(bad.num_rows, schema.field(name).type))
               for name in schema.names}
    columns[REASON] = bad.column("reason")
    return pa.concat_tables([good, pa.table(columns, schema=good.schema)])


def _good_rows(table: pa.Table) -> pa.Table:
    import pyarrow.compute as pc

    return table.filter(pc.is_null(table.column(REASON))).drop_columns([REASON])


def _rejected_rows(table: pa.Table, passthrough: list[str]) -> pa.Table:
    import pyarrow.compute as pc

    bad = table.filter(pc.is_valid(table.column(REASON)))
    return pa.table({"row": pa.nulls(bad.num_rows, pa.int64()),
                     "reason": bad.column(REASON),
                     **{name: bad.column(name) for name in passthrough}})


def output_schema(run: Run) -> pa.Schema:
    """The output's columns, learnt in the driver by scoring the input's first rows until one
    passes validation (all rejected: the passthrough columns alone)."""
    from shipyard.scoring.sources import read_chunks

    scorer = Scorer(run.source.load(threads=1), run.plan, run.passthrough)
    try:
        for chunk in read_chunks(run.input, min(run.batch_size, 1024),
                                 csv_strings=run.plan.numeric_columns()):
            table = scorer.score(chunk.batch, chunk.first_row).table
            if table.num_rows:
                return table.schema
    finally:
        scorer.model.close()
    return passthrough_schema(run)


def _dataset(run: Run) -> Any:
    """The input as one dataset, its files in path order: each file read on its own, then
    unioned (``union`` keeps the order of its inputs; Ray Data's reader may balance a list of
    files into a different order, which broke row-for-row equality)."""
    reads = [_read(run, f.path) for f in run.input.files]
    return reads[0] if len(reads) == 1 else reads[0].union(*reads[1:])


def _read(run: Run, path: str) -> Any:
    import ray.data

    if run.input.format == "parquet":
        columns = list(dict.fromkeys([*run.plan.read_columns, *run.passthrough]))
        return ray.data.read_parquet(path, filesystem=run.input.fs, columns=columns)
    import pyarrow.csv as pcsv

    return ray.data.read_csv(path, filesystem=run.input.fs, convert_options=pcsv.ConvertOptions(
        column_types=dict.fromkeys(run.plan.numeric_columns(), pa.string()),
        strings_can_be_null=True))


def _start_ray(address: str | None, workers: int) -> bool:
    """Connect to (or start) Ray; True when this run started it (and stops it)."""
    try:
        import ray
    except ImportError as exc:
        raise RuntimeUnavailableError("--engine ray needs Ray: pip install "
                                      "'shipyard-ml[ray]'") from exc
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    return True


def _actors(workers: int) -> int:
    """Scoring actors (one CPU each): ``workers``, leaving one of the cluster's CPUs to the
    read and write tasks (with every CPU held by an actor, reading would wait forever)."""
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]
    return max(1, min(workers, cpus - 1))


class _PartNames:
    """Part files named by write task, so their names sort in row order."""

    def get_filename_for_block(self, block: Any, write_uuid: str, task_index: int,
                               block_index: int) -> str:
        return f"part-{task_index:06d}-{block_index:06d}-{write_uuid}.parquet"

    def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
        return f"part-{task_index:06d}-{write_uuid}.parquet"


def score_with_ray(run: Run, out: str, rejects_at: str, summary: BatchSummary, *,
                   max_rejects: float | None, explicit_rejects: bool,
                   ray_address: str | None, log: dict[str, Any] | None = None,
                   progress: bool = True) -> None:
    """Score ``run`` on Ray; the summary is filled as ``predict_batch``'s local engine does
    (``progress``: Ray Data's own progress bars)."""
    started = _start_ray(ray_address, run.workers)
    try:
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = progress
        _score(run, out, rejects_at, summary, max_rejects=max_rejects,
               explicit_rejects=explicit_rejects, log=log)
    finally:
        if started:
            import ray

            ray.shutdown()


def _score(run: Run, out: str, rejects_at: str, summary: BatchSummary, *,
           max_rejects: float | None, explicit_rejects: bool,
           log: dict[str, Any] | None) -> None:
    import ray.data
    from ray.data.datasource import FilenameProvider

    ray.data.DataContext.get_current().execution_options.preserve_order = True
    schema = output_schema(run)
    scored = _dataset(run).map_batches(
        RayScorer, fn_constructor_kwargs={"run": run, "schema": schema, "log": log},
        batch_format="pyarrow", batch_size=run.batch_size,
        compute=ray.data.ActorPoolStrategy(size=_actors(run.workers)), num_cpus=1).materialize()
    rejects = scored.map_batches(_rejected_rows, fn_kwargs={"passthrough": run.passthrough},
                                 batch_format="pyarrow")
    summary.rows = scored.count()
    summary.rejected = rejects.count()
    summary.scored = summary.rows - summary.rejected
    reasons: Counter[str] = Counter()
    rejected = ParquetOutput(Destination.of(rejects_at, folder=False),
                             empty_schema=run.reject_schema).start()
    for table in rejects.iter_batches(batch_format="pyarrow"):
        reasons.update(table.column("reason").to_pylist())
        rejected.write(table)
    if log is not None:
        summary.logged = summary.scored  # each actor's BatchLog flushed every batch it scored
    try:
        check_limit(summary, max_rejects, summary.rows)
    except RejectLimitError:
        finish(summary, reasons, rejected, True)
        raise
    good = scored.map_batches(_good_rows, batch_format="pyarrow")
    folder = is_folder_output(out)
    destination = Destination.of(out, folder=folder)
    output = ParquetOutput(destination, empty_schema=schema).start()
    try:
        if folder:
            names: Any = type("PartNames", (_PartNames, FilenameProvider), {})()
            good.write_parquet(destination.staging, filesystem=destination.fs,
                               filename_provider=names)
            output.rows = summary.scored
        else:
            for table in good.iter_batches(batch_format="pyarrow"):
                output.write(table)
        output.publish()
    except BaseException:
        output.discard()
        rejected.discard()
        raise
    finish(summary, reasons, rejected, explicit_rejects)


def log_settings(run: Run, endpoint: str, log_dir: str | Path, batch_id: str) -> dict[str, Any]:
    """What each actor's ``BatchLog`` is built from."""
    signature = run.source.describe().signature
    return {"root": str(log_dir), "endpoint": endpoint, "model": run.source.model,
            "version": run.source.version, "batch_id": batch_id,
            "class_labels": signature.class_labels}
