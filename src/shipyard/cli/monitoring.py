"""``shipyard monitor run|status|errors``: windows of an endpoint's prediction log against
its reference, and where its labelled rows' errors fall, printed for people (rich) or as
JSON. The work is ``service.monitor``'s and ``service.error_analysis``'s; this module parses
arguments and draws. Heavy imports stay inside the commands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from shipyard.cli.monitor_options import moment, monitor_settings
from shipyard.cli.output import console, print_json
from shipyard.errors import ShipyardError

if TYPE_CHECKING:
    from shipyard.service.monitor import MonitorRun

app = typer.Typer(no_args_is_help=True, help="Drift, data quality, performance and alerts "
                  "from the prediction log.")
err_console = Console(stderr=True)
PROGRESS_FROM = 4  # windows; fewer finish before a bar is worth drawing

LogDir = Annotated[str | None, typer.Option("--log-dir", help="prediction log directory or "
                                            "URL, e.g. s3://bucket/logs (default: the "
                                            "config's, else $SHIPYARD_HOME/logs)")]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON")]


@app.command("run")
def run_cmd(
    endpoint: Annotated[str, typer.Argument(help="endpoint name (as served and logged)")],
    log_dir: LogDir = None,
    reference: Annotated[str | None, typer.Option(
        help="package dir, models:/ URI, saved profile, .parquet or .csv (default: the "
             "profile packaged with the model version logged)")] = None,
    window: Annotated[str | None, typer.Option(help="window length, e.g. 1h")] = None,
    every: Annotated[str | None, typer.Option(help="a window ends every …, e.g. 15m "
                                              "(default: --window, tumbling)")] = None,
    rows: Annotated[int | None, typer.Option(
        "--rows", "--last", help="one window of the newest N rows instead of time windows")
    ] = None,
    offset: Annotated[int, typer.Option(
        help="with --rows: skip the newest N rows first (--rows 500 --offset 500: the 500 "
             "before the newest 500)")] = 0,
    since: Annotated[str | None, typer.Option(
        help="windows ending after this ISO time, or a duration ago (2h, 7d)")] = None,
    until: Annotated[str | None, typer.Option(
        help="windows ending at or before this ISO time or duration ago (with --rows: the "
             "rows before it)")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="serve.yaml: its monitor section (rules, webhooks), log_dir and "
                         "the endpoint's model")] = None,
    slices: Annotated[str | None, typer.Option(
        help="performance per slice of these columns, e.g. cut,color (default: the "
             "config's monitor.slices)")] = None,
    as_json: AsJson = False,
) -> None:
    """Monitor ENDPOINT: drift, quality, outliers, performance (per slice too) and latency
    per window, stored in the monitor history; alert rules evaluated and delivered."""
    from dataclasses import replace

    from shipyard.service.config import parse_duration, slice_columns
    from shipyard.service.monitor import Monitor

    if rows is not None and (window is not None or every is not None or since is not None):
        raise ShipyardError("--rows (--last) takes the newest rows; it does not combine with "
                            "--window, --every or --since")
    monitor_config, source, root = monitor_settings(endpoint, config, log_dir, reference)
    if slices is not None:
        monitor_config = replace(monitor_config, slices=slice_columns(slices, "--slices"))
    monitor = Monitor(endpoint, root, monitor_config, model_source=source)
    options: dict[str, Any] = {
        "window": None if window is None else parse_duration(window, "--window"),
        "every": None if every is None else parse_duration(every, "--every"),
        "last": rows, "offset": offset, "since": moment(since, "--since"),
        "until": moment(until, "--until")}
    run = _run_with_progress(monitor, options, show=not as_json)
    if as_json:
        print_json({"endpoint": endpoint, "windows": run.records, "stored": run.stored,
                    "alerts": [e.to_dict() for e in run.events], "notes": run.notes,
                    "delivery": _delivery(run)})
        return
    from shipyard.cli.monitor_view import show_run

    show_run(console, run)


@app.command("status")
def status_cmd(
    endpoint: Annotated[str | None, typer.Argument(
        help="endpoint name (default: a line for every monitored endpoint)")] = None,
    log_dir: LogDir = None,
    config: Annotated[Path | None, typer.Option("--config", help="serve.yaml (for its "
                                                "log_dir)")] = None,
    history: Annotated[int, typer.Option(help="windows of history to show")] = 10,
    as_json: AsJson = False,
) -> None:
    """Show ENDPOINT's latest monitor results, its alerts and a short history; without
    ENDPOINT, one line for every endpoint with monitor results."""
    from shipyard.service.monitor_history import MonitorHistory

    if history < 0:
        raise ShipyardError("--history must not be negative")
    if endpoint is None:
        _status_all(monitor_settings(None, config, log_dir, None)[2], as_json)
        return
    _, _, root = monitor_settings(endpoint, config, log_dir, None)
    store = MonitorHistory(root, endpoint)
    records = store.records()
    if not records:
        raise ShipyardError(f"no monitor results for endpoint {endpoint!r} under {root}; run "
                            f"shipyard monitor run {endpoint}")
    state = store.load_state() or {}
    if as_json:
        from shipyard.service.monitor import firing_alerts

        print_json({"endpoint": endpoint, "latest": records[-1],
                    "alerts": {"firing": firing_alerts(state),
                               "events": state.get("events", [])[-20:],
                               "rules": state.get("rules", [])},
                    "history": [_brief(r) for r in records[-history:]] if history else [],
                    "windows_stored": len(records)})
        return
    from shipyard.cli.monitor_view import show_status

    show_status(console, endpoint, records, state, history)


@app.command("errors")
def errors_cmd(
    endpoint: Annotated[str, typer.Argument(help="endpoint name (as served and logged)")],
    log_dir: LogDir = None,
    window: Annotated[str | None, typer.Option(
        help="the labelled rows of this long before --until (or now), e.g. 30d "
             "(default 7d)")] = None,
    since: Annotated[str | None, typer.Option(
        help="rows from this ISO time, or a duration ago (instead of --window)")] = None,
    until: Annotated[str | None, typer.Option(
        help="rows before this ISO time or duration ago (default: now)")] = None,
    rows: Annotated[int | None, typer.Option(
        "--rows", "--last", help="the newest N rows instead of a time window")] = None,
    slices: Annotated[str | None, typer.Option(
        help="columns to slice by, comma-separated (default: the monitor config's slice "
             "columns, else the model's inputs)")] = None,
    sort: Annotated[str, typer.Option(
        help="rank by share (of all errors), rate (error rate in the slice) or traffic "
             "(share of rows)")] = "share",
    min_rows: Annotated[int, typer.Option(
        help="hide slices with fewer rows (counted, not shown)")] = 20,
    pairs: Annotated[int, typer.Option(
        help="cross the N columns where errors gather most into pairs (0: no pairs)")] = 5,
    threshold: Annotated[float | None, typer.Option(
        help="regressors: an error is |prediction - target| above this (default: the 90th "
             "percentile of absolute error)")] = None,
    task: Annotated[str | None, typer.Option(
        help="classification or regression (default: the package's)")] = None,
    top: Annotated[int, typer.Option(help="slices shown per table")] = 10,
    level: Annotated[float, typer.Option(help="the intervals' level")] = 0.95,
    reference: Annotated[str | None, typer.Option(
        help="where numeric columns' quartiles come from (default: the packaged "
             "profile)")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="serve.yaml: its log_dir, monitor slices and the endpoint's "
                         "model")] = None,
    as_json: AsJson = False,
) -> None:
    """Error analysis of ENDPOINT's labelled rows: which slices (columns and pairs of
    columns) hold the errors, how often the model errs there and how much traffic they
    carry, each with an exact interval."""
    from shipyard.service.config import parse_duration, slice_columns
    from shipyard.service.error_analysis import ErrorOptions, endpoint_errors

    options = ErrorOptions(
        columns=slice_columns(slices, "--slices") or None,
        task=_choice(task, ("classification", "regression"), "--task"),
        threshold=threshold, min_rows=min_rows, level=level,
        sort=_choice(sort, ("share", "rate", "traffic"), "--sort") or "share",
        pair_columns=pairs)
    if top < 1:
        raise ShipyardError("--top must be at least 1")
    monitor_config, source, root = monitor_settings(endpoint, config, log_dir, reference)
    result = endpoint_errors(
        endpoint, root, monitor_config, options=options, model_source=source,
        since=moment(since, "--since"), until=moment(until, "--until"), last=rows,
        span=None if window is None else parse_duration(window, "--window"))
    if as_json:
        print_json(result.to_dict())
        return
    from shipyard.cli.error_view import show_errors

    show_errors(console, result, top)


def _choice(value: str | None, choices: tuple[Any, ...], option: str) -> Any:
    if value is not None and value not in choices:
        raise ShipyardError(f"{option} takes {', '.join(choices)}, not {value!r}")
    return value


def _status_all(root: str | Path, as_json: bool) -> None:
    from shipyard.service.monitor import firing_alerts
    from shipyard.service.monitor_history import MonitorHistory, monitored_endpoints

    summaries = []
    for name in monitored_endpoints(root):
        store = MonitorHistory(root, name)
        records = store.records()
        summaries.append({"endpoint": name, "windows_stored": len(records),
                          "latest": _brief(records[-1]) if records else None,
                          "firing": sorted(firing_alerts(store.load_state() or {}))})
    if as_json:
        print_json({"endpoints": summaries})
        return
    if not summaries:
        raise ShipyardError(f"no monitor results under {root}; run shipyard monitor run "
                            "ENDPOINT")
    from shipyard.cli.monitor_tables import endpoints_table

    endpoints_table(console, f"monitored endpoints under {root}", summaries)


def _run_with_progress(monitor: Any, options: dict[str, Any], *, show: bool) -> MonitorRun:
    """``monitor.run`` with a progress bar on stderr once the run has several windows."""
    if not show:
        result: MonitorRun = monitor.run(**options)
        return result
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    progress = Progress("[progress.description]{task.description}", BarColumn(),
                        MofNCompleteColumn(), TimeRemainingColumn(), console=err_console,
                        transient=True)
    task: list[Any] = []

    def advance(done: int, total: int) -> None:
        if total < PROGRESS_FROM:
            return
        if not task:
            progress.start()
            task.append(progress.add_task(f"monitoring {monitor.endpoint}", total=total))
        progress.update(task[0], completed=done)

    try:
        result = monitor.run(progress=advance, **options)
    finally:
        progress.stop()
    return result


def _delivery(run: MonitorRun) -> dict[str, Any]:
    d = run.delivery
    return {"events": d.events, "delivered": d.delivered, "failed": d.failed,
            "failures": list(d.failures)}


def _brief(record: dict[str, Any]) -> dict[str, Any]:
    """A history line for charts: the window and its flat metrics."""
    return {"key": record["key"], "window": record["window"], "rows": record.get("rows"),
            "metrics": record.get("metrics", {}), "skipped": record.get("skipped"),
            "alerts": [(a["state"], a["rule"]) for a in record.get("alerts", [])]}
