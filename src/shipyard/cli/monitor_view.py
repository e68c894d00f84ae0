"""How monitor results read in a terminal: a table of windows, then the newest in detail.

Everything here draws stored records (plain dicts, as in ``history.jsonl``), so ``monitor
run`` and ``monitor status`` show the same thing the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.table import Table

from shipyard.service.config import format_duration

if TYPE_CHECKING:
    from shipyard.service.monitor import MonitorRun

DRIFT_ROWS = 15
TABLE_ROWS = 24  # windows listed by ``monitor run``
WINDOWS_CAPTION = ("drift: share of input columns drifted (red: dataset drift), cols: how "
                   "many, pred: prediction drift, qual: quality issues, outl: outlier share, "
                   "acc / est: realised / estimated accuracy")
HEADERS = {"roc_auc": "ROC AUC", "log_loss": "log loss", "calibration_error": "ECE",
           "mae": "MAE", "rmse": "RMSE", "r2": "R²"}
PERFORMANCE = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss",
               "calibration_error", "mae", "rmse", "r2")


def show_run(console: Console, run: MonitorRun) -> None:
    records = run.records
    if not records:
        console.print(f"monitor {run.endpoint}: no window to compute")
        return
    if len(records) > 1:
        shown = records[-TABLE_ROWS:]
        more = len(records) - len(shown)
        windows_table(console, f"{run.endpoint}: {len(records)} windows"
                      + (f" (newest {len(shown)}; --json for all)" if more else ""), shown)
    detail = next((r for r in reversed(records) if "drift" in r), records[-1])
    show_window(console, detail)
    if run.events:
        console.print(f"[bold]alerts[/] ({len(run.events)} change"
                      f"{'s' if len(run.events) != 1 else ''} this run)")
        for event in run.events:
            show_event(console, event.to_dict())
    for failure in run.delivery.failures:
        console.print(f"[yellow]alert delivery failed:[/] {failure}")
    for note in run.notes:
        console.print(f"[dim]{note}[/]")
    console.print(f"[dim]{run.stored} window result(s) new or changed in the history; "
                  f"see [cyan]shipyard monitor status {run.endpoint}[/][/]")


def show_status(console: Console, endpoint: str, records: Sequence[dict[str, Any]],
                state: Mapping[str, Any], history: int) -> None:
    latest = records[-1]
    console.print(f"[bold]{endpoint}[/]: {len(records)} window(s) stored, newest "
                  f"computed {latest.get('computed_at', '?')}")
    detail = next((r for r in reversed(records) if "drift" in r), latest)
    show_window(console, detail)
    firing = state.get("firing") or {}
    rules = state.get("rules") or []
    if rules:
        console.print(f"[bold]alert rules[/]: {len(rules)}, "
                      f"{'[red]' + str(len(firing)) + ' firing[/]' if firing else 'none firing'}")
        for event in firing.values():
            console.print(f"  [red]FIRING[/] since {event['started_at']}: {event['rule']} "
                          f"(value {number(event.get('value'))})")
        recent = list(state.get("events") or [])[-5:]
        if recent:
            console.print("  recent changes:")
            for event in recent:
                show_event(console, event)
    if history > 0:
        windows_table(console, f"history (newest {min(history, len(records))})",
                      records[-history:])


def windows_table(console: Console, title: str, records: Sequence[dict[str, Any]]) -> None:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True, caption=WINDOWS_CAPTION, caption_justify="left")
    alerts = any(r.get("alerts") for r in records)
    for column in ("window (UTC)", "rows", "drift", "cols", "pred", "qual", "outl", "acc",
                   "est", "p99 ms"):
        first = column.startswith("window")
        table.add_column(column, justify="left" if first else "right", no_wrap=first,
                         min_width=17 if first else len(column))
    if alerts:
        table.add_column("alerts")
    for record in records:
        m = record.get("metrics", {})
        table.add_row(
            _when(record["window"]), str(record.get("rows", 0)),
            _share(m.get("drift_share"), flag=bool(m.get("dataset_drift"))),
            _int(m.get("drifted_columns")), _yes(m.get("prediction_drift")),
            _int(m.get("quality_issues")), _pct(m.get("outlier_share")),
            number(m.get("accuracy")), number(m.get("estimated_accuracy")),
            number(m.get("p99_latency_ms")),
            *([", ".join(f"{a['state']}: {a['rule']}" for a in record.get("alerts", []))]
              if alerts else []))
    console.print(table)


def _when(window: Mapping[str, Any]) -> str:
    """``05-01 14:00 +1h`` (``…`` while in progress), or ``last 500 rows``."""
    if window.get("kind") == "rows":
        return f"last {window.get('last')} rows"
    start = str(window["start"])[5:16].replace("T", " ")
    span = format_duration(float(window["end_ts"]) - float(window["start_ts"]))
    return f"{start} +{span}{'' if window.get('complete', True) else ' …'}"


def show_window(console: Console, record: dict[str, Any]) -> None:
    window = record["window"]
    span = (f"last {window['last']} rows" if window["kind"] == "rows"
            else f"{window['start']} → {window['end']}")
    state = "" if window.get("complete", True) else " [yellow](in progress)[/]"
    reference = record.get("reference") or {}
    console.print(f"\n[bold]window[/] {span}{state}: {record.get('rows', 0)} rows, "
                  f"{record.get('requests', 0)} requests, {record.get('labelled', 0)} "
                  f"labelled; models {_models(record)}")
    if reference:
        console.print(f"[bold]reference[/] {reference.get('source')} "
                      f"({reference.get('rows')} rows)")
    if record.get("skipped"):
        console.print(f"[dim]not analysed: {record['skipped']}[/]")
    _drift(console, record)
    _quality(console, record)
    _outliers(console, record)
    _performance(console, record)
    latency = record.get("latency") or {}
    if latency.get("p50_ms") is not None:
        console.print(f"[bold]latency[/] p50 {number(latency['p50_ms'])} ms, p99 "
                      f"{number(latency['p99_ms'])} ms, mean {number(latency['mean_ms'])} ms")


def _drift(console: Console, record: dict[str, Any]) -> None:
    drift = record.get("drift")
    if not drift:
        return
    columns = drift.get("columns", {})
    drifted = {n: c for n, c in columns.items() if c.get("drifted")}
    verdict = ("[red]DATASET DRIFT[/]" if drift.get("dataset_drift")
               else "[green]no dataset drift[/]")
    console.print(f"[bold]drift[/] {verdict}: {len(drifted)} of {len(columns)} input columns "
                  f"drifted (share {number(drift.get('drift_share'))})")
    for test in drift.get("multivariate") or []:
        if isinstance(test, Mapping) and test.get("method"):
            console.print(f"  multivariate {test['method']}: statistic "
                          f"{number(test.get('statistic'))}, p {number(test.get('p_value'))}"
                          f"{' [red]drifted[/]' if test.get('drifted') else ''}")
    output = (record.get("output_drift") or {}).get("columns", {})
    shown = {**drifted, **{n: c for n, c in output.items() if c.get("drifted")}}
    if shown:
        _drift_table(console, shown)
    for name in ("prediction", "target"):
        if name in output and not output[name].get("drifted"):
            console.print(f"  {name}: no drift ({output[name].get('method')} p "
                          f"{number(output[name].get('p_value'))})")


def _drift_table(console: Console, columns: Mapping[str, Mapping[str, Any]]) -> None:
    """Drifted columns, largest effect first: the test, its p-values and the effect size."""
    table = Table(title_justify="left", box=None, pad_edge=False)
    for header in ("column", "kind", "method", "statistic", "p-value", "p adjusted", "effect",
                   "threshold"):
        table.add_column(header, justify="left" if header in ("column", "kind", "method")
                         else "right")
    ranked = sorted(columns.items(), key=lambda kv: -abs(kv[1].get("effect_size") or 0))
    for name, column in ranked[:DRIFT_ROWS]:
        effect = number(column.get("effect_size"))
        if column.get("effect_name"):
            effect += f" {column['effect_name']}"
        table.add_row(f"[red]{name}[/]", str(column.get("kind", "")),
                      str(column.get("method", "")), number(column.get("statistic")),
                      number(column.get("p_value")), number(column.get("p_adjusted")),
                      effect, number(column.get("threshold")))
    console.print(table)
    if len(ranked) > DRIFT_ROWS:
        console.print(f"  … and {len(ranked) - DRIFT_ROWS} more (--json for all)")


def _quality(console: Console, record: dict[str, Any]) -> None:
    quality = record.get("quality")
    if not quality:
        return
    flagged = [f for f in quality.get("findings", []) if f.get("flagged")]
    if not flagged:
        console.print("[bold]quality[/] [green]no issue[/]")
        return
    console.print(f"[bold]quality[/] [red]{len(flagged)} issue(s)[/]")
    for finding in flagged[:DRIFT_ROWS]:
        console.print(f"  {finding['column']}: {finding['check']} {number(finding.get('value'))}"
                      f" (reference {number(finding.get('reference'))})")


def _outliers(console: Console, record: dict[str, Any]) -> None:
    outliers = record.get("outliers")
    if outliers and outliers.get("share_above") is not None:
        console.print(f"[bold]outliers[/] {_pct(outliers['share_above'])} of rows beyond the "
                      f"reference's 99th percentile score (about 1% expected)")


def _performance(console: Console, record: dict[str, Any]) -> None:
    performance = record.get("performance") or {}
    realised = performance.get("realised") or {}
    estimated = performance.get("estimated") or {}
    names = [n for n in PERFORMANCE if realised.get(n) is not None
             or estimated.get(n) is not None]
    if not names:
        return
    title = "performance"
    if realised:
        title += f" ({realised.get('rows', 0)} labelled rows)"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    table.add_column("", no_wrap=True, min_width=10)
    for name in names:
        table.add_column(HEADERS.get(name, name), justify="right", no_wrap=True)
    if realised:
        table.add_row("realised", *(number(realised.get(n)) for n in names))
    by_version = performance.get("by_version") or {}
    if len(by_version) > 1:
        for version, metrics in by_version.items():
            table.add_row(f"  {version}", *(number(metrics.get(n)) for n in names))
    if estimated:
        label = "estimated" if estimated.get("calibrated") else "estimated*"
        table.add_row(label, *(number(estimated.get(n)) for n in names))
    console.print(table)
    if estimated and not estimated.get("calibrated"):
        console.print("[dim]* from the model's raw confidence: the reference has no target "
                      "to calibrate it[/]")


def show_event(console: Console, event: Mapping[str, Any]) -> None:
    colour = "red" if event.get("state") == "firing" else "green"
    console.print(f"  [{colour}]{str(event.get('state', '')).upper()}[/] {event.get('rule')} "
                  f"(value {number(event.get('value'))}, window ending {event.get('at')})")


def _models(record: dict[str, Any]) -> str:
    models = record.get("models") or {}
    return ", ".join(f"{k} ({v} rows)" for k, v in models.items()) or "-"


def number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.2e}"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def _share(value: Any, *, flag: bool) -> str:
    text = number(value)
    return f"[red]{text}[/]" if flag else text


def _int(value: Any) -> str:
    return "-" if value is None else str(int(value))


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * float(value):.1f}%"


def _yes(value: Any) -> str:
    return "-" if value is None else ("[red]yes[/]" if value else "no")
