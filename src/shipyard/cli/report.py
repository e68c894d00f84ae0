"""``shipyard report``: a standalone HTML (or JSON) report of an endpoint over a period, or of
two datasets. Parses arguments and writes the file; ``shipyard.reports`` makes it."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from shipyard.cli.monitor_options import moment, monitor_settings
from shipyard.cli.output import console
from shipyard.errors import ShipyardError

DEFAULT_WINDOW = "24h"


def report(
    endpoint: Annotated[str | None, typer.Argument(
        help="endpoint name (as served and logged); leave out with --reference/--current")
    ] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="file to write (default: stdout for --format json)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="html or json")] = "html",
    window: Annotated[str | None, typer.Option(
        help=f"the period: this long before --until or now (default {DEFAULT_WINDOW})")
    ] = None,
    since: Annotated[str | None, typer.Option(
        help="period start: ISO time or a duration ago (2h, 7d)")] = None,
    until: Annotated[str | None, typer.Option(
        help="period end: ISO time or a duration ago (default now)")] = None,
    reference: Annotated[Path | None, typer.Option(
        help="with --current: the reference dataset (Parquet or CSV); with ENDPOINT: the "
             "monitor's reference (package dir, saved profile, .parquet or .csv; default "
             "the profile packaged with the version logged)")] = None,
    current: Annotated[Path | None, typer.Option(
        help="current dataset (Parquet or CSV), with --reference")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="serve.yaml: the endpoint's monitor settings, model and log_dir")
    ] = None,
    log_dir: Annotated[str | None, typer.Option(
        "--log-dir", help="prediction log directory or URL (default $SHIPYARD_HOME/logs)")
    ] = None,
    title: Annotated[str | None, typer.Option(help="the report's title")] = None,
) -> None:
    """Write a report: drift per feature with charts, data quality, performance, alerts and
    a timeline for ENDPOINT over a period, or drift between --reference and --current. One
    file, no network: summaries (histograms, quantiles, category shares), never rows."""
    from shipyard.reports import dataset_report, endpoint_report, render_html

    if fmt not in ("html", "json"):
        raise ShipyardError(f"--format is html or json, got {fmt!r}")
    if fmt == "html" and output is None:
        raise ShipyardError("an HTML report needs --output FILE (-o report.html)")
    data: dict[str, Any]
    if current is not None:
        if reference is None or endpoint is not None:
            raise ShipyardError("a dataset report takes both --reference and --current, "
                                "and no ENDPOINT")
        data = dataset_report(_read(reference), _read(current),
                              reference_name=reference.name, current_name=current.name,
                              title=title)
    elif endpoint is None:
        raise ShipyardError("name an ENDPOINT, or give --reference and --current")
    else:
        from shipyard.service.config import parse_duration
        from shipyard.service.monitor import Monitor

        monitor_config, source, root = monitor_settings(
            endpoint, config, log_dir, None if reference is None else str(reference))
        end = moment(until, "--until") or time.time()
        start = moment(since, "--since")
        if start is not None and window is not None:
            raise ShipyardError("give --since or --window, not both")
        if start is None:
            start = end - parse_duration(window or DEFAULT_WINDOW, "--window")
        start = max(start, 0.0)  # nothing is logged before 1970 (and older is no time)
        if start >= end:
            raise ShipyardError("the period is empty: --since must be before --until")
        data = endpoint_report(Monitor(endpoint, root, monitor_config, model_source=source),
                               start, end, title=title)
    text = render_html(data) if fmt == "html" else json.dumps(data, indent=1) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    _write(output, text)
    console.print(f"wrote {output} ({output.stat().st_size / 1024:,.0f} KiB)", highlight=False)


def _write(output: Path, text: str) -> None:
    """``text`` to ``output`` whole or not at all (a temporary file beside it, then renamed):
    a path that cannot be written is one clear error and leaves no temporary file behind."""
    if output.is_dir():
        raise ShipyardError(f"cannot write the report to {output}: it is a directory")
    tmp = output.with_name(f".{output.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(output)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ShipyardError(f"cannot write the report to {output}: "
                            f"{exc.strerror or exc}") from None


def _read(path: Path) -> Any:
    """A dataset file as an Arrow table (Parquet, or CSV by its suffix)."""
    if not path.exists():
        raise ShipyardError(f"{path} does not exist")
    try:
        if path.suffix.lower() in (".csv", ".txt"):
            import pyarrow.csv as pacsv

            return pacsv.read_csv(path)
        import pyarrow.parquet as pq

        return pq.read_table(path)
    except (OSError, ValueError) as exc:  # pyarrow's errors are OSError/ValueError kinds
        raise ShipyardError(f"cannot read {path} as "
                            f"{'CSV' if path.suffix.lower() == '.csv' else 'Parquet'}: "
                            f"{str(exc).splitlines()[0]}") from None
