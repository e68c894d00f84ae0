"""How monitor results read in a terminal: a table of windows, then the newest in detail.

Everything here draws stored records (plain dicts, as in ``history.jsonl``), so ``monitor
run`` and ``monitor status`` show the same thing the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from shipyard.cli.monitor_tables import (
    HEADERS,
    Col,
    fitted_table,
    number,
    pct,
    windows_table,
)
from shipyard.monitoring.alert_metrics import CLASSIFICATION, REGRESSION

if TYPE_CHECKING:
    from shipyard.service.monitor import MonitorRun

DRIFT_ROWS = 15
SLICE_ROWS = 3  # worst slices shown per slice column
TABLE_ROWS = 24  # windows listed by ``monitor run``
PERFORMANCE = CLASSIFICATION + REGRESSION


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
    from shipyard.service.monitor import firing_alerts, rule_names

    firing = firing_alerts(state)  # never a rule the last run no longer had
    rules = state.get("rules") or []
    if rules:
        console.print(f"[bold]alert rules[/]: {len(rules)}, "
                      f"{'[red]' + str(len(firing)) + ' firing[/]' if firing else 'none firing'}")
        for event in firing.values():
            detail = f": {escape(str(event['detail']))}" if event.get("detail") else ""
            console.print(f"  [red]FIRING[/] since {event['started_at']}: {event['rule']} "
                          f"(value {number(event.get('value'))}){detail}")
        names = rule_names(state)
        recent = [e for e in state.get("events") or [] if e.get("rule") in names][-5:]
        if recent:
            console.print("  recent changes:")
            for event in recent:
                show_event(console, event)
    if history > 0:
        windows_table(console, f"history (newest {min(history, len(records))})",
                      records[-history:])


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
    _slices(console, record)
    _extraction(console, record)
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
                  f"drifted (share {number(drift.get('drift_share'))}); {verdict_reason(drift)}")
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


def verdict_reason(drift: Mapping[str, Any]) -> str:
    """Which test decided the dataset verdict: the share of drifted input columns against
    its threshold, and the multivariate tests on the rows."""
    share, limit = drift.get("drift_share"), drift.get("share_threshold")
    by_share = share is not None and limit is not None and share >= limit
    tests = [t for t in drift.get("multivariate") or [] if isinstance(t, Mapping)]
    fired = [f"multivariate {t.get('method')} (p {number(t.get('p_value'))})"
             for t in tests if t.get("drifted")]
    share_text = f"drifted-column share {number(share)} {'≥' if by_share else '<'} " \
                 f"{number(limit)}"
    if drift.get("dataset_drift"):
        deciders = ([share_text] if by_share else []) + fired
        return "decided by " + " and ".join(deciders or ["the drift report"])
    return f"{share_text} and " + ("no multivariate test drifted" if tests
                                   else "no multivariate test ran")


def _drift_table(console: Console, columns: Mapping[str, Mapping[str, Any]]) -> None:
    """Drifted columns, largest effect first: the test, its p-values and the effect size."""
    ranked = sorted(columns.items(), key=lambda kv: -abs(kv[1].get("effect_size") or 0))
    rows = []
    for name, column in ranked[:DRIFT_ROWS]:
        effect = number(column.get("effect_size"))
        if column.get("effect_name"):
            effect += f" {column['effect_name']}"
        rows.append([f"[red]{name}[/]", str(column.get("kind", "")),
                     str(column.get("method", "")), number(column.get("statistic")),
                     number(column.get("p_value")), number(column.get("p_adjusted")),
                     effect, number(column.get("threshold"))])
    console.print(fitted_table(console, [
        Col("column", numeric=False), Col("kind", numeric=False, drop=3),
        Col("method", numeric=False), Col("statistic", drop=4), Col("p-value", drop=2),
        Col("p adj."), Col("effect", numeric=False), Col("threshold", drop=1)], rows,
        box=None))
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
        console.print(f"[bold]outliers[/] {pct(outliers['share_above'])} of rows beyond the "
                      f"reference's 99th percentile score (about 1% expected)")


def _performance(console: Console, record: dict[str, Any]) -> None:
    performance = record.get("performance") or {}
    realised = performance.get("realised") or {}
    estimated = performance.get("estimated") or {}
    reference = performance.get("reference") or {}
    names = [n for n in PERFORMANCE if realised.get(n) is not None
             or estimated.get(n) is not None]
    if not names:
        return
    title = "performance"
    if realised:
        title += f" ({realised.get('rows', 0)} labelled rows)"
    rows = []
    if reference:
        rows.append(["reference", *(number(reference.get(n)) for n in names)])
    if realised:
        rows.append(["realised", *(number(realised.get(n)) for n in names)])
    by_version = performance.get("by_version") or {}
    if len(by_version) > 1:
        rows += [[f"  {version}", *(number(metrics.get(n)) for n in names)]
                 for version, metrics in by_version.items()]
    if estimated:
        label = "estimated" if estimated.get("calibrated") else "estimated*"
        rows.append([label, *(number(estimated.get(n)) for n in names)])
    console.print(fitted_table(console, [Col("", numeric=False), *(
        Col(HEADERS.get(n, n), drop=PERFORMANCE.index(n)) for n in names)], rows,
        title=title))
    if reference:
        console.print(f"[dim]reference: the model on the reference's "
                      f"{reference.get('rows', 0)} sampled rows[/]")
    if estimated and not estimated.get("calibrated"):
        console.print("[dim]* from the model's raw confidence: the reference has no target "
                      "to calibrate it[/]")
    _concept(console, performance.get("concept") or {})


def _concept(console: Console, concept: Mapping[str, Any]) -> None:
    """A realised accuracy far from its label-free estimate, named for what it suggests."""
    if not concept.get("suspected"):
        return
    realised, estimated = concept.get("realised"), concept.get("estimated")
    side = "below" if (concept.get("gap") or 0) > 0 else "above"
    console.print(f"[red]possible concept drift[/]: realised accuracy {number(realised)} is "
                  f"{number(abs(concept.get('gap') or 0))} {side} the label-free estimate "
                  f"{number(estimated)} on the same {concept.get('rows')} labelled rows "
                  f"(more than the {number(concept.get('threshold'))} chance allows): the "
                  "relation between inputs and label has changed, even where the inputs "
                  "look alike; retrain on recent labels")


def _slices(console: Console, record: dict[str, Any]) -> None:
    """Each slice column's worst eligible slices on the headline metric (accuracy or MAE),
    with their intervals; how many slices were too small to judge."""
    section = record.get("slices") or {}
    columns: Mapping[str, Any] = section.get("columns") or {}
    for column, reason in (section.get("skipped") or {}).items():
        console.print(f"[dim]slices of {escape(column)}: not computed, {reason}[/]")
    if not columns:
        return
    rows, small = [], 0
    metric = "accuracy"
    for column, found in columns.items():
        slices = found.get("slices") or []
        metric = "accuracy" if any("accuracy" in s["metrics"] for s in slices) else "mae"
        higher = metric == "accuracy"
        judged = [s for s in slices if s.get("eligible") and s["metrics"].get(metric)]
        small += len(slices) - len(judged)
        judged.sort(key=lambda s: s["metrics"][metric]["high" if higher else "low"],
                    reverse=not higher)
        worst = (found.get("worst") or {}).get(metric) or {}
        for item in judged[:SLICE_ROWS]:
            interval = item["metrics"][metric]
            name = escape(str(item["slice"]))
            rows.append([escape(column), f"[red]{name}[/]" if item["slice"] == worst.get(
                "slice") else name, str(item["rows"]), str(item["labelled"]),
                number(interval["estimate"]),
                f"{number(interval['low'])} to {number(interval['high'])}",
                number((item.get("estimated") or {}).get("estimated_accuracy"))])
    if rows:
        title = (f"worst slices by {metric} (of slices with {section.get('min_labelled')}+ "
                 f"labelled rows; worst first, judged on the interval's "
                 f"{'upper' if metric == 'accuracy' else 'lower'} bound)")
        console.print(fitted_table(console, [
            Col("column", numeric=False), Col("slice", numeric=False), Col("rows", drop=2),
            Col("labelled", drop=3), Col(HEADERS.get(metric, metric)),
            Col(f"{number(section.get('level'))} interval", numeric=False),
            Col("estimated", drop=1)], rows, title=title))
    else:
        console.print(f"[bold]slices[/]: none has {section.get('min_labelled')} labelled rows "
                      "yet")
    if small:
        console.print(f"[dim]{small} slice(s) under {section.get('min_labelled')} labelled "
                      "rows: reported (--json) but never alarmed on[/]")


def _extraction(console: Console, record: dict[str, Any]) -> None:
    """Per API key: the model-extraction score and its parts (``monitoring/extraction``)."""
    extraction = record.get("extraction") or {}
    keys: Mapping[str, Any] = extraction.get("keys") or {}
    unscored: Mapping[str, Any] = extraction.get("unscored") or {}
    if not keys and not unscored:
        return
    flagged = extraction.get("flagged") or []
    title = (f"model extraction by API key ({len(flagged)} flagged at score >= "
             f"{number(extraction.get('threshold'))})")
    rows = [[f"[red]{escape(key)}[/]" if scored.get("flagged") else escape(key),
             str(scored.get("rows")), str(scored.get("distinct")),
             *(number((scored.get("parts") or {}).get(p))
               for p in ("volume", "uniformity", "boundary")),
             number(scored.get("score"))]
            for key, scored in sorted(keys.items(), key=lambda kv: -(kv[1].get("score") or 0))]
    if rows:
        console.print(fitted_table(console, [
            Col("key", numeric=False), Col("rows"), Col("distinct"), Col("volume"),
            Col("uniform"), Col("boundary"), Col("score")], rows, title=title))
    if unscored:
        small = ", ".join(f"{escape(k)} ({n})" for k, n in sorted(unscored.items()))
        console.print(f"[dim]not scored (under {extraction.get('min_rows')} rows): {small}[/]")


def show_event(console: Console, event: Mapping[str, Any]) -> None:
    colour = "red" if event.get("state") == "firing" else "green"
    detail = f": {escape(str(event['detail']))}" if event.get("detail") else ""
    console.print(f"  [{colour}]{str(event.get('state', '')).upper()}[/] {event.get('rule')} "
                  f"(value {number(event.get('value'))}, window ending {event.get('at')})"
                  f"{detail}")


def _models(record: dict[str, Any]) -> str:
    models = record.get("models") or {}
    return ", ".join(f"{k} ({v} rows)" for k, v in models.items()) or "-"
