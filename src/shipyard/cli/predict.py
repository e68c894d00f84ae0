"""``shipyard predict``: batch-score a dataset with a package (``scoring.predict_batch``).
This module parses arguments and prints the summary; the work is ``shipyard.scoring``'s."""

from __future__ import annotations

import os
from typing import Annotated, Any

# typer's Option and Argument, which a plain command line is read from without typer
from shipyard.cli.plain_args import Argument, Option
from shipyard.errors import ShipyardError


def predict(
    model: Annotated[str, Argument(
        help="package directory, models:/NAME/V or models:/NAME@ALIAS")],
    input: Annotated[str, Option(
        "--input", "-i", help="Parquet or CSV file, a folder of them, or a URL (s3://...)")],
    output: Annotated[str, Option(
        "--output", "-o", help="Parquet file (NAME.parquet) or folder of part files")],
    batch_size: Annotated[int, Option(help="rows per record batch")] = 16_384,
    engine: Annotated[str, Option(help="local (this machine's cores) or ray "
                                        "(Ray Data)")] = "local",
    passthrough: Annotated[str | None, Option(
        help="input columns copied beside the predictions, comma-separated (e.g. an id)")
    ] = None,
    log: Annotated[str | None, Option(
        "--log", help="log scored rows to the prediction log under this endpoint name "
                      "(then: shipyard monitor run ENDPOINT)")] = None,
    log_dir: Annotated[str | None, Option(
        help="prediction log directory or URL (s3://bucket/logs; default "
             "$SHIPYARD_HOME/logs)")] = None,
    rejects: Annotated[str | None, Option(
        help="Parquet file for rows failing the signature (default OUTPUT.rejects.parquet, "
             "written when a row is rejected)")] = None,
    max_rejects: Annotated[float | None, Option(
        help="fail the run when more than this share of rows is rejected (e.g. 0.01)")
    ] = None,
    workers: Annotated[int | None, Option(
        help="parallel scorers (default: the CPU count; Ray: actors)")] = None,
    ray_address: Annotated[str | None, Option(
        help="Ray cluster address (default: a local Ray started for the run)")] = None,
    trust: Annotated[bool, Option(
        "--trust", help="let the package unpickle its model or import the classes it names")
    ] = False,
    registry: Annotated[str | None, Option(
        help="registry database URL (default: the configured one)")] = None,
    quiet: Annotated[bool, Option("--quiet", "-q", help="no progress bar")] = False,
    as_json: Annotated[bool, Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Score every row of INPUT with MODEL; write predictions and probabilities to OUTPUT.

    Rows that fail the model's signature go to the rejects file with their row number and
    reason. OUTPUT appears only when the run succeeds."""
    _process_settings()
    try:
        from shipyard.scoring import predict_batch
    except ImportError as exc:
        raise ShipyardError(f"batch scoring needs pyarrow ({exc}): pip install "
                            "'shipyard-ml[batch]'") from exc
    if engine not in ("local", "ray"):
        raise ShipyardError(f"--engine must be local or ray, got {engine!r}")
    columns = [c.strip() for c in (passthrough or "").split(",") if c.strip()]
    summary = predict_batch(
        model, input, output, batch_size=batch_size, engine=engine,  # type: ignore[arg-type]
        passthrough=columns, log_endpoint=log, log_dir=log_dir, rejects=rejects,
        max_rejects=max_rejects, workers=workers, ray_address=ray_address, trust=trust,
        registry=registry, progress=not (quiet or as_json))
    if as_json:
        from shipyard.cli.output import print_json

        print_json(summary.to_dict())
        return
    _show(summary.to_dict())


def _process_settings() -> None:
    """Settings of this process's libraries, read when they load, so set before they do
    (they hold for any worker process the run starts too); a value already set is kept.

    Arrow's allocator (mimalloc) hands freed pages back to the system after 10 ms, and a
    batch run frees each batch's buffers and asks for as many again a little later: the
    system zeroed fresh pages for every batch (~0.5 s of CPU per million rows of 30 floats
    at 64k-row batches). Freed pages kept a second are reused.

    numpy's OpenBLAS starts a thread per core, which spins (~0.1 s of CPU, 5 % of a 1M-row
    run) although scoring calls no BLAS; the scorers are the parallelism, one BLAS thread
    each."""
    os.environ.setdefault("MIMALLOC_PURGE_DELAY", "1000")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _show(data: dict[str, Any]) -> None:
    from shipyard.cli.output import console, table

    rows: list[list[Any]] = [
        ["output", data["output"]], ["rows", f"{data['rows']:,}"],
        ["scored", f"{data['scored']:,}"], ["rejected", f"{data['rejected']:,}"],
        ["rows/s", f"{data['rows_per_second']:,.0f}"], ["engine", data["engine"]],
        ["batch id", data["batch_id"]]]
    if data["rejects"]:
        rows.append(["rejects", data["rejects"]])
    if data["logged"]:
        rows.append(["logged rows", f"{data['logged']:,}"])
    table("batch scoring", ["", ""], rows)
    if data["reasons"]:
        table("reject reasons", ["rows", "reason"],
              [[n, reason] for reason, n in data["reasons"].items()])
    console.print(f"[green]wrote[/] {data['output']}")
