"""An evaluation (``service/evaluation.py``) as markdown, for a pull request comment: the
gate's verdict first, then the metrics with their intervals, the paired comparison, each
slice column's table (the worst slice marked), the reliability table, latency and size."""

from __future__ import annotations

from collections.abc import Sequence

from shipyard.monitoring.evaluation_gate import GateResult
from shipyard.service.evaluation import Evaluation


def markdown(evaluation: Evaluation, gate: Sequence[GateResult] = ()) -> str:
    """The evaluation as a pull request comment."""
    c = evaluation.candidate
    verdict = [] if not gate else [
        "**Gate: " + ("passed**" if all(r.passed for r in gate) else "failed**"), "",
        *(f"- {'✅' if r.passed else '❌'} `{r.rule.text}`"
          + ("" if r.value is None else f": {r.value:.4g}")
          + ("" if r.passed else f" ({r.reason})") for r in gate), ""]
    left_out = evaluation.data.get("unlabelled")
    rows = f"{c.rows} rows" + (f" ({left_out} without a label left out)" if left_out else "")
    lines = [f"## Evaluation of `{c.source}`", "", *verdict, f"{rows}, {c.task}.", "",
             "| metric | candidate | interval |"
             + (" against |" if evaluation.against is not None else ""),
             "|---|---|---|" + ("---|" if evaluation.against is not None else "")]
    for name, interval in c.metrics.items():
        if interval is None:
            continue
        row = f"| {name} | {interval.estimate:.4f} | [{interval.low:.4f}, {interval.high:.4f}] |"
        if evaluation.against is not None:
            other = evaluation.against.metrics.get(name)
            row += f" {'' if other is None else f'{other.estimate:.4f}'} |"
        lines.append(row)
    if evaluation.comparison is not None:
        cmp_ = evaluation.comparison
        lines += ["", f"**Candidate - against ({c.headline}):** {cmp_.difference:+.4f}"
                  + ("" if cmp_.interval is None else
                     f" [{cmp_.interval.low:+.4f}, {cmp_.interval.high:+.4f}]")
                  + f", p = {cmp_.p_value:.3g} ({cmp_.method})"]
    columns = sorted({s.column for s in c.slices})
    for column in columns:
        lines += ["", f"### {c.headline} by `{column}`", "", "| slice | rows | "
                  f"{c.headline} | interval |", "|---|---|---|---|"]
        for s in (s for s in c.slices if s.column == column):
            if s.metric is None:
                lines.append(f"| {s.value} | {s.rows} | | |")
                continue
            lines.append(f"| {s.value}{c.mark(s)} | {s.rows} | {s.metric.estimate:.4f} | "
                         f"[{s.metric.low:.4f}, {s.metric.high:.4f}] |")
    if c.calibration:
        lines += ["", "### Calibration", "", "| confidence | rows | mean confidence | accuracy |",
                  "|---|---|---|---|"]
        lines += [f"| ({b['from']:.1f}, {b['to']:.1f}] | {b['rows']:.0f} | "
                  f"{b['confidence']:.3f} | {b['accuracy']:.3f} |" for b in c.calibration]
    lines += ["", f"Latency (one row): p50 {c.latency_ms['p50']:.2f} ms, p99 "
              f"{c.latency_ms['p99']:.2f} ms; size {c.size_bytes / 1e6:.2f} MB."]
    return "\n".join(lines) + "\n"
