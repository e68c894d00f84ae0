"""Rollouts for people: the policy's traffic shares, a rollout's plan and step, and its
decisions with the numbers behind them, as rich tables (the documents come from
``service.deployment_status``; ``--json`` prints them as they are)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.table import Table

from shipyard.cli.output import console, table

if TYPE_CHECKING:
    from shipyard.monitoring.experiments import SamplePlan
    from shipyard.routing.plans import ABPlan

MAX_NUMBERS = 6  # figures shown per check or decision in a table (--json has them all)
_COLOURS = {"pass": "green", "advance": "green", "promote": "green", "start": "cyan",
            "switch": "cyan", "fail": "red", "abort": "red", "wait": "yellow"}


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ",".join(_number(v) for v in value)
    return str(value)


def _pairs(values: Any, limit: int) -> str:
    """``name=value`` for the scalars of a mapping (and of the mappings inside it, one level
    down), at most ``limit`` of them and how many more there are."""
    if not isinstance(values, Mapping):
        return ""
    flat = []
    for key, value in values.items():
        if key == "plan":  # a start's: the plan table shows it
            continue
        inner = value.items() if isinstance(value, Mapping) else [("", value)]
        for sub, item in inner:
            if item is not None and not isinstance(item, Mapping) and (
                    not isinstance(item, list | tuple)
                    or all(isinstance(v, int | float) for v in item)):
                flat.append(f"{key}.{sub}={_number(item)}" if sub else
                            f"{key}={_number(item)}")
    more = len(flat) - limit
    return " ".join(flat[:limit]) + (f" (+{more} more)" if more > 0 else "")


def key_numbers(numbers: Any, limit: int = MAX_NUMBERS) -> str:
    """A decision's numbers in a line: each check (``numbers["checks"]``, as a canary
    analysis stores them) as ``name outcome (figures)``, else the figures themselves."""
    checks = numbers.get("checks") if isinstance(numbers, Mapping) else None
    if isinstance(checks, list) and checks and all(isinstance(c, Mapping) for c in checks):
        parts = []
        for check in checks:
            figures = _pairs(check.get("numbers"), limit)
            parts.append(f"{check.get('name')} {_outcome(check.get('outcome'))}"
                         + (f" ({figures})" if figures else ""))
        return "; ".join(parts)
    return _pairs(numbers, limit)


def _outcome(outcome: Any) -> str:
    colour = _COLOURS.get(str(outcome))
    return f"[{colour}]{outcome}[/]" if colour else str(outcome)


def _percent(value: Any) -> str:
    return "" if value is None else f"{float(value):g}%"


def _time(value: Any) -> str:
    """An ISO 8601 time as ``YYYY-MM-DD HH:MM:SS`` in local time."""
    try:
        return datetime.fromisoformat(str(value)).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return str(value or "")


def print_rollout(doc: Mapping[str, Any], *, started: bool = False) -> None:
    """One rollout: what moves to what, its state and step, its plan."""
    head = "[green]✓[/] started " if started else ""
    head += (f"{doc.get('kind')} rollout #{doc.get('id')} on {doc.get('endpoint')}: "
             f"{doc.get('stable')} → {doc.get('candidate')}, {doc.get('state')}")
    if doc.get("steps") and doc.get("state") == "running":
        head += (f", step {int(doc.get('step') or 0) + 1} of {doc['steps']} "
                 f"({_percent(doc.get('percent'))} to the candidate)")
    console.print(head, highlight=False)
    plan = doc.get("plan") or {}
    if plan:
        table("plan", ["setting", "value"],
              [(k, "-" if v is None else _number(v)) for k, v in plan.items()])
    sample = doc.get("sample_plan")
    if sample and not started:  # `rollout ab` printed it before starting
        console.print(f"planned sample: {sample['n_a']:,} requests for a, {sample['n_b']:,} "
                      f"for b", highlight=False)


def print_sample_plan(plan: ABPlan, sample: SamplePlan) -> None:
    test = "always-valid sequential (mSPRT)" if sample.sequential else "fixed horizon"
    console.print(f"planned sample: [bold]{sample.n_a:,}[/] requests for a, "
                  f"[bold]{sample.n_b:,}[/] for b, to detect a difference of {plan.mde:g} in "
                  f"{plan.metric} from a baseline of {sample.baseline:g} at alpha "
                  f"{plan.alpha:g} with power {plan.power:g} ({test} test)", highlight=False)


def decisions_table(title: str, decisions: Sequence[Mapping[str, Any]]) -> None:
    out = Table(title=title)
    for name in ("at", "step", "share", "outcome"):
        out.add_column(name, no_wrap=True)
    out.add_column("reason", ratio=2)
    out.add_column("numbers", ratio=3, overflow="fold")
    out.add_column("by")
    for d in decisions:
        out.add_row(_time(d.get("at")), str(d.get("step", "")), _percent(d.get("percent")),
                    _outcome(d.get("outcome")), str(d.get("reason") or ""),
                    key_numbers(d.get("numbers")), str(d.get("actor") or ""))
    console.print(out)


def print_status(doc: Mapping[str, Any]) -> None:
    """A deployment: its policy's traffic shares, the running rollout, latest decisions."""
    policy = doc["policy"]
    console.print(f"[bold]{doc['endpoint']}[/]: {policy.get('kind')} policy, revision "
                  f"{doc['revision']}", highlight=False)
    table("traffic", ["version", "variant", "share", "copies"],
          [(t["version"], t["variant"], _percent(t["percent"]),
            _percent(t.get("copied_percent"))) for t in doc["traffic"]])
    rollout = doc.get("rollout")
    if rollout is None:
        console.print("no rollout running")
        return
    print_rollout(rollout)
    decisions_table("latest decisions (newest first)", rollout.get("decisions") or [])


def print_history(doc: Mapping[str, Any]) -> None:
    """Past rollouts, each with its decisions, then the policy revisions."""
    rollouts = doc.get("rollouts") or []
    if not rollouts:
        console.print(f"{doc['endpoint']}: no rollouts yet", highlight=False)
    for rollout in rollouts:
        finished = f", {rollout.get('reason')}" if rollout.get("reason") else ""
        console.print(f"[bold]#{rollout.get('id')}[/] {rollout.get('kind')} "
                      f"{rollout.get('stable')} → {rollout.get('candidate')}: "
                      f"{rollout.get('state')}{finished}", highlight=False)
        decisions_table(f"rollout #{rollout.get('id')} decisions (newest first)",
                        rollout.get("decisions") or [])
    table("policy revisions (newest first)", ["revision", "at", "policy", "by", "reason"],
          [(r["revision"], _time(r["at"]), _policy_text(r["policy"]), r["actor"], r["reason"])
           for r in doc.get("revisions") or []])


def _policy_text(policy: Mapping[str, Any]) -> str:
    versions = [v for k, v in policy.items() if k in ("version", "a", "b", "primary",
                                                        "candidate", "blue", "green")]
    splits = policy.get("splits") or []
    versions += [f"{s.get('version')} {_percent(s.get('weight'))}"
                 for s in splits if isinstance(s, Mapping)]
    return f"{policy.get('kind')}: {', '.join(map(str, versions))}"
