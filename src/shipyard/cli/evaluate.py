"""``shipyard evaluate``: a model on labelled rows, offline, with intervals, slices and a
paired comparison against another model (``service/evaluation.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from shipyard.cli.output import console, print_json, table


def evaluate(
    candidate: Annotated[str, typer.Argument(help="models:/NAME/V, models:/NAME@ALIAS or a "
                                                  "package directory")],
    data: Annotated[str, typer.Option(help="labelled rows: a .parquet or .csv file, a folder "
                                           "of them, or an s3:// URL")],
    target: Annotated[str, typer.Option(help="the column holding the true label or value")],
    against: Annotated[str | None, typer.Option(
        help="the model it would replace: compared on the same rows")] = None,
    slices: Annotated[str | None, typer.Option(
        help="columns to slice by, comma-separated (numbers: quartile bins)")] = None,
    level: Annotated[float, typer.Option(help="the intervals' level")] = 0.95,
    resamples: Annotated[int, typer.Option(help="bootstrap resamples")] = 500,
    min_slice_rows: Annotated[int, typer.Option(
        help="a smaller slice is shown but is never a column's worst (gates, spread)")] = 30,
    trust: Annotated[bool, typer.Option("--trust", help="let native packages run their "
                                                         "code (pickles)")] = False,
    gate: Annotated[Path | None, typer.Option(
        help="a gate file (YAML rules): exit 1 when a rule fails")] = None,
    markdown_path: Annotated[Path | None, typer.Option(
        "--markdown", help="also write the result as markdown (a pull request comment)")]
    = None,
    record: Annotated[bool | None, typer.Option(
        "--record/--no-record", help="keep the evaluation in the registry with the "
                                     "candidate's content (default: when the candidate is a "
                                     "models:/ URI)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Evaluate a model on labelled rows: metrics with intervals, per slice, calibration,
    latency, size, and a paired comparison with --against; --gate exits 1 on a failed rule."""
    from contextlib import ExitStack

    from shipyard.registry import Registry
    from shipyard.service.evaluation import check_gate, read_gate
    from shipyard.service.evaluation import evaluate as run
    from shipyard.service.evaluation_records import record as record_in

    rules = () if gate is None else read_gate(gate)  # a bad rule fails before any work
    columns = [c.strip() for c in (slices or "").split(",") if c.strip()]
    keep = record if record is not None else candidate.startswith("models:/")
    with ExitStack() as stack:
        # the registry the evaluation is kept in is opened first: one that cannot be
        # reached fails before the work, not after it
        reg = stack.enter_context(Registry()) if keep else None
        with console.status("evaluating…"):
            result = run(candidate, data, target, against=against, slices=columns,
                         trust=trust, level=level, resamples=resamples, registry=reg,
                         min_slice_rows=min_slice_rows)
        verdicts = check_gate(result, rules)
        kept = None if reg is None else record_in(result, verdicts, reg)
    _show(result, verdicts, kept, rules, markdown_path, level, target, as_json)


def _show(result: Any, verdicts: Any, kept: Any, rules: Any, markdown_path: Path | None,
          level: float, target: str, as_json: bool) -> None:
    from shipyard.errors import MonitoringError
    from shipyard.service.evaluation_report import markdown

    if markdown_path is not None:
        try:
            markdown_path.write_text(markdown(result, verdicts), encoding="utf-8")
        except OSError as exc:
            raise MonitoringError(f"cannot write the markdown to {markdown_path}: "
                                  f"{exc.strerror or exc}") from None
    failed = [v for v in verdicts if not v.passed]
    if as_json:
        print_json({**result.to_dict(), **({"gate": {
            "passed": not failed, "rules": [v.to_dict() for v in verdicts]}} if rules else {}),
            "recorded": None if kept is None else kept.id})
        if failed:
            raise typer.Exit(1)
        return
    c, other = result.candidate, result.against
    table(f"{c.source} on {c.rows} rows ({c.task})",
          ["metric", "candidate", f"{level:.0%} interval",
           *(["against"] if other is not None else [])],
          [(name, f"{i.estimate:.4f}", f"[{i.low:.4f}, {i.high:.4f}]",
            *([] if other is None else [
                "" if (o := other.metrics.get(name)) is None else f"{o.estimate:.4f}"]))
           for name, i in c.metrics.items() if i is not None])
    if result.data.get("unlabelled"):
        console.print(f"{result.data['unlabelled']} row(s) without a {target!r} label left "
                      "out", highlight=False)
    for role, model in (("candidate", c), ("against", other)):
        if model is not None and model.unknown_labels:
            console.print(f"{model.unknown_labels} row(s) with a label that is none of the "
                          f"{role}'s classes: counted wrong in accuracy, left out of roc_auc, "
                          "log_loss and calibration_error", highlight=False)
    if result.comparison is not None:
        cmp_ = result.comparison
        shown = "" if cmp_.interval is None else \
            f" [{cmp_.interval.low:+.4f}, {cmp_.interval.high:+.4f}]"
        console.print(f"candidate - against ({c.headline}): {cmp_.difference:+.4f}{shown}, "
                      f"p = {cmp_.p_value:.3g} ({cmp_.method})")
    for column in sorted({s.column for s in c.slices}):
        table(f"{c.headline} by {column}", ["slice", "rows", c.headline, "interval"],
              [(s.value + c.mark(s),
                s.rows, "" if s.metric is None else f"{s.metric.estimate:.4f}",
                "" if s.metric is None else f"[{s.metric.low:.4f}, {s.metric.high:.4f}]")
               for s in c.slices if s.column == column])
    console.print(f"latency (one row): p50 {c.latency_ms['p50']:.2f} ms, p99 "
                  f"{c.latency_ms['p99']:.2f} ms; size {c.size_bytes / 1e6:.2f} MB")
    for v in verdicts:
        shown = "" if v.value is None else f": {v.value:.4g}"
        console.print(f"{'[green]✓ pass[/]' if v.passed else '[red]✗ FAIL[/]'} {v.rule.text}"
                      f"{shown}{'' if v.passed else ' (' + v.reason + ')'}", highlight=False)
    if c.calibration:
        table("calibration (reliability by confidence)",
              ["confidence", "rows", "mean confidence", "accuracy"],
              [(f"({b['from']:.1f}, {b['to']:.1f}]", f"{b['rows']:.0f}",
                f"{b['confidence']:.3f}", f"{b['accuracy']:.3f}") for b in c.calibration])
    if rules:
        console.print("[green]gate passed[/]" if not failed else
                      f"[red]gate failed: {len(failed)} of {len(verdicts)} rules[/]")
    if kept is not None:
        console.print(f"recorded in the registry as evaluation #{kept.id} ({kept.verdict}) of "
                      f"content {kept.fingerprint[:12]}…: `shipyard models show` and "
                      "`models lineage` show it on every version of these bytes",
                      highlight=False)
    if failed:
        raise typer.Exit(1)

