"""The Ray Data engine: the input's parts (Parquet row groups, CSV files) as a dataset ->
``map_batches`` with a pool of actors that load the package once each, read their parts and
call the same ``Scorer.score`` as the local engine -> Parquet parts written by the actors.

Order does not rest on Ray Data's block order (``preserve_order`` did not keep it in every
run): each part's output is written by its actor as ``part-INDEX.parquet`` into the staging
folder, so the names sort in input order, and the driver numbers rejected rows from the
parts' row counts, so rejects carry input row numbers as on the local engine. The output
equals the local engine's row for row. A folder output is published as staged; a single-file
output and the rejects are streamed through the driver into one file each.

The cluster is ``ray_address`` (or one already started in this process); else a local Ray
with ``workers`` CPUs is started for the run and shut down after it. Each actor holds one
CPU; one CPU of the cluster is left to Ray Data's own tasks. Actors read the input and write
the staging folder themselves, so on a cluster both must be on storage every node reaches
(S3, a shared filesystem); ``--log`` too.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

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
from shipyard.scoring.core import Scorer
from shipyard.scoring.publish import Destination
from shipyard.scoring.writers import ParquetOutput
from shipyard.stores.table_sources import Part, parts, read_part

if TYPE_CHECKING:
    from shipyard.scoring.prediction_log import BatchLog


class RayScorer:
    """A Ray Data actor: loads the package once, then scores the parts it is given, writing
    each part's output and rejects into the staging folders; returns one row of counts per
    part."""

    def __init__(self, run: Run, parts: list[Part], staging: str, rejects: str,
                 log: dict[str, Any] | None) -> None:
        self.run = run
        self.parts = {p.index: p for p in parts}
        self.staging, self.rejects = staging, rejects
        self.scorer = Scorer(run.source.load(threads=1), run.plan, run.passthrough,
                             keep_log=log is not None)
        self.log: BatchLog | None = None
        if log is not None:
            from shipyard.scoring.prediction_log import BatchLog

            self.log = BatchLog(**log)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        counts = [self._score(self.parts[int(i)]) for i in batch["index"]]
        return {name: [c[name] for c in counts]
                for name in ("index", "rows", "scored", "rejected")}

    def _score(self, part: Part) -> dict[str, int]:
        run, fs = self.run, self.run.input.fs
        out = rejected = None
        rows = scored_rows = rejected_rows = 0
        try:
            for batch, _ in read_part(fs, part.file, part.row_group, run.batch_size,
                                      columns=list(dict.fromkeys(
                                          [*run.plan.read_columns, *run.passthrough])),
                                      csv_strings=run.plan.numeric_columns()):
                scored = self.scorer.score(batch, rows)  # rows numbered within the part
                rows += scored.rows
                if scored.table.num_rows:
                    out = out or pq.ParquetWriter(f"{self.staging}/part-{part.index:06d}.parquet",
                                                  scored.table.schema, filesystem=fs,
                                                  compression="zstd")
                    out.write_table(scored.table)
                    scored_rows += scored.table.num_rows
                if scored.rejects is not None:
                    rejected = rejected or pq.ParquetWriter(
                        f"{self.rejects}/rejects-{part.index:06d}.parquet",
                        scored.rejects.schema, filesystem=fs)
                    rejected.write_table(scored.rejects)
                    rejected_rows += scored.rejects.num_rows
                if self.log is not None:
                    self.log.append(scored, key=f"{part.index}.{scored.first_row}")
        finally:
            for writer in (out, rejected):
                if writer is not None:
                    writer.close()
        return {"index": part.index, "rows": rows, "scored": scored_rows,
                "rejected": rejected_rows}


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
    """Scoring actors (one CPU each): ``workers``, leaving one of the cluster's CPUs to Ray
    Data's own tasks (with every CPU held by an actor, they would wait forever)."""
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]
    return max(1, min(workers, cpus - 1))


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

    pieces = parts(run.input)
    destination = Destination.of(out, folder=is_folder_output(out))
    staged = Destination.of(out, folder=True)  # the actors' parts, whatever the output
    aside = Destination.of(rejects_at, folder=True)
    try:
        staged.prepare()
        aside.prepare()
        counts = ray.data.from_items([{"index": p.index} for p in pieces]).map_batches(
            RayScorer, fn_constructor_kwargs={"run": run, "parts": pieces,
                                              "staging": staged.staging,
                                              "rejects": aside.staging, "log": log},
            batch_size=1, compute=ray.data.ActorPoolStrategy(size=_actors(run.workers)),
            num_cpus=1).to_arrow_refs()
        table = pa.concat_tables(ray.get(counts)).sort_by("index")
        rows = table.column("rows").to_numpy()
        summary.rows = int(rows.sum())
        summary.scored = int(pc.sum(table.column("scored")).as_py() or 0)
        summary.rejected = int(pc.sum(table.column("rejected")).as_py() or 0)
        if log is not None:
            summary.logged = summary.scored  # each actor's BatchLog flushed every batch
        offsets = dict(zip(table.column("index").to_pylist(),
                           (rows.cumsum() - rows).tolist(), strict=True))
        _publish(run, destination, staged, aside, offsets, summary, rejects_at,
                 max_rejects=max_rejects, explicit_rejects=explicit_rejects)
    finally:
        staged.discard()
        aside.discard()


def _publish(run: Run, destination: Destination, staged: Destination, aside: Destination,
             offsets: dict[int, int], summary: BatchSummary, rejects_at: str, *,
             max_rejects: float | None, explicit_rejects: bool) -> None:
    """Rejects renumbered into one file; then the output, unless past ``max_rejects``."""
    reasons: Counter[str] = Counter()
    rejected = ParquetOutput(Destination.of(rejects_at, folder=False),
                             empty_schema=run.reject_schema).start()
    for index, path in _staged_files(aside):
        table = pq.read_table(path, filesystem=aside.fs)
        reasons.update(table.column("reason").to_pylist())
        rows = pc.add(table.column("row"), offsets[index])
        rejected.write(table.set_column(0, "row", rows))
    try:
        check_limit(summary, max_rejects, summary.rows)
    except RejectLimitError:
        finish(summary, reasons, rejected, True)
        raise
    output = ParquetOutput(destination, empty_schema=passthrough_schema(run))
    try:
        if destination.folder:  # the actors' parts are the output: publish them as staged
            destination.staging = staged.staging
            output.rows = summary.scored
            if not summary.scored:
                output.start()
        else:
            output.start()
            for _, path in _staged_files(staged):
                for batch in pq.ParquetFile(path, filesystem=staged.fs).iter_batches():
                    output.write(pa.Table.from_batches([batch]))
        output.publish()
    except BaseException:
        output.discard()
        rejected.discard()
        raise
    finish(summary, reasons, rejected, explicit_rejects)


def _staged_files(staged: Destination) -> list[tuple[int, str]]:
    """The staged part files (``NAME-INDEX.parquet``) with their part index, in order."""
    found = staged.fs.get_file_info(pafs.FileSelector(staged.staging, allow_not_found=True))
    files = sorted(i.path for i in found if i.type == pafs.FileType.File)
    return [(int(Path(f).stem.rsplit("-", 1)[1]), f) for f in files]


def log_settings(run: Run, endpoint: str, log_dir: str | Path, batch_id: str) -> dict[str, Any]:
    """What each actor's ``BatchLog`` is built from."""
    signature = run.source.describe().signature
    return {"root": str(log_dir), "endpoint": endpoint, "model": run.source.model,
            "version": run.source.version, "batch_id": batch_id,
            "class_labels": signature.class_labels}
