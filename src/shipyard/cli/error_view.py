"""How ``shipyard monitor errors`` reads in a terminal: what an error is, then the single
slices and the pairs, each ranked, with their intervals; then what was hidden."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from shipyard.cli.monitor_tables import Col, fitted_table, number, pct

if TYPE_CHECKING:
    from shipyard.monitoring.error_analysis import ErrorSlice
    from shipyard.monitoring.evaluation_stats import Interval
    from shipyard.service.error_analysis import EndpointErrors

_SORTED_BY = {"share": "share of errors", "rate": "error rate", "traffic": "share of traffic"}


def show_errors(console: Console, result: EndpointErrors, top: int) -> None:
    analysis = result.analysis
    overall = analysis.error_rate
    console.print(f"[bold]{escape(result.endpoint)}[/] {escape(result.period)}: "
                  f"{result.labelled} labelled of {result.logged} logged rows")
    console.print(f"[bold]error[/]: {escape(result.rule.text)}")
    console.print(f"[bold]errors[/] {analysis.errors} of {analysis.rows}: rate "
                  f"{_interval(overall)}")
    if not analysis.errors:
        console.print("[green]no errors in this window[/]: nothing to rank")
    level = f"{analysis.level:.0%}".rstrip("%")
    for title, slices in (("slices", analysis.singles), ("pairs of slices", analysis.pairs)):
        if slices:
            _table(console, f"{title} by {_SORTED_BY[analysis.sort]} (top {min(top, len(slices))}"
                   f" of {len(slices)}; intervals {level}% exact)", slices[:top])
    if analysis.hidden:
        console.print(f"[dim]{analysis.hidden} slice(s) under --min-rows {analysis.min_rows} "
                      f"hidden ({analysis.hidden_singles} single, {analysis.hidden_pairs} "
                      "pairs)[/]")
    if len(analysis.pair_columns) > 1:  # one column crosses with none
        console.print(f"[dim]pairs crossed among: {escape(', '.join(analysis.pair_columns))}[/]")
    for note in result.notes:
        console.print(f"[dim]{escape(note)}[/]")


def _table(console: Console, title: str, slices: Sequence[ErrorSlice]) -> None:
    rows = [[escape(s.name), str(s.rows), str(s.errors), _interval(s.share_of_errors),
             _interval(s.error_rate), _interval(s.share_of_traffic), number(s.lift)]
            for s in slices]
    console.print(fitted_table(console, [
        Col("slice", numeric=False), Col("rows", drop=2), Col("errors", drop=1),
        Col("share of errors"), Col("error rate"), Col("traffic", drop=3),
        Col("lift")], rows, title=title))


def _interval(interval: Interval | None) -> str:
    if interval is None:
        return "-"
    return (f"{pct(interval.estimate)} [{100 * interval.low:.1f}, "
            f"{100 * interval.high:.1f}]")
