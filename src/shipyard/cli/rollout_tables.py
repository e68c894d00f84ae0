"""Rollouts for people: the policy's traffic shares, a rollout's plan and step, and its
decisions with the numbers behind them, as rich tables (the documents come from
``service.deployment_status``; ``--json`` prints them as they are)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from shipyard.cli.output import console, table

if TYPE_CHECKING:
    from shipyard.monitoring.experiments import SamplePlan
    from shipyard.routing.plans import ABPlan

MAX_NUMBERS = 8  # figures shown per decision in a table (--json has them all)
_COLOURS = {"pass": "green", "advance": "green", "promote": "green", "start": "cyan",
            "switch": "cyan", "fail": "red", "abort": "red", "wait": "yellow"}


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def key_numbers(numbers: Any, limit: int = MAX_NUMBERS) -> str:
    """``name=value`` pairs from a decision's (nested) numbers, the scalars only, at most
    ``limit`` of them (and how many more there are)."""
    flat: list[str] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, Mapping):
            label = value.get("name") if isinstance(value.get("name"), str) else None
            for key, inner in value.items():
                if key != "name":
                    walk(inner, ".".join(p for p in (path, label or "", str(key)) if p))
        elif isinstance(value, Sequence) and not isinstance(value, str):
            if all(isinstance(v, Mapping) for v in value):
                for inner in value:
                    walk(inner, path)
        elif value is not None:
            flat.append(f"{path}={_number(value)}")

    walk(numbers, "")
    more = len(flat) - limit
    return ", ".join(flat[:limit]) + (f" (+{more} more)" if more > 0 else "")


def _outcome(outcome: Any) -> str:
    colour = _COLOURS.get(str(outcome))
    return f"[{colour}]{outcome}[/]" if colour else str(outcome)


def _percent(value: Any) -> str:
    return "" if value is None else f"{float(value):g}%"


def print_rollout(doc: Mapping[str, Any], *, title: str = "rollout") -> None:
    """One rollout: what moves to what, its state and step, its plan."""
    head = (f"[bold]{title}[/] {doc.get('kind')} rollout #{doc.get('id')} on "
            f"{doc.get('endpoint')}: {doc.get('stable')} → {doc.get('candidate')}, "
            f"{doc.get('state')}")
    if doc.get("steps"):
        head += (f", step {int(doc.get('step') or 0) + 1} of {doc['steps']} "
                 f"({_percent(doc.get('step_percent'))} to the candidate)")
    console.print(head, highlight=False)
    plan = doc.get("plan") or doc.get("spec") or {}
    if plan:
        table("plan", ["setting", "value"], [(k, v) for k, v in plan.items()])
    sample = doc.get("sample_plan")
    if sample:
        console.print(f"planned sample: {sample['n_a']:,} requests for a, {sample['n_b']:,} "
                      f"for b", highlight=False)


def print_sample_plan(plan: ABPlan, sample: SamplePlan | None) -> None:
    if sample is None:
        console.print(f"planned sample: {plan.metric} is a mean; its sample size needs the "
                      "spread of one request's value, measured once traffic flows",
                      highlight=False)
        return
    test = "always-valid sequential (mSPRT)" if sample.sequential else "fixed horizon"
    console.print(f"planned sample: [bold]{sample.n_a:,}[/] requests for a, "
                  f"[bold]{sample.n_b:,}[/] for b, to detect a {plan.metric} difference "
                  f"of {plan.mde:g} from a baseline of {sample.baseline:g} at alpha "
                  f"{plan.alpha:g} with power {plan.power:g} ({test} test)", highlight=False)


def decisions_table(title: str, decisions: Sequence[Mapping[str, Any]]) -> None:
    table(title, ["at", "step", "share", "outcome", "reason", "numbers", "by"],
          [(d.get("at"), d.get("step"), _percent(d.get("percent")), _outcome(d.get("outcome")),
            d.get("reason"), key_numbers(d.get("numbers")), d.get("actor"))
           for d in decisions])


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
          [(r["revision"], r["at"], _policy_text(r["policy"]), r["actor"], r["reason"])
           for r in doc.get("revisions") or []])


def _policy_text(policy: Mapping[str, Any]) -> str:
    versions = [v for k, v in policy.items() if k in ("version", "a", "b", "primary",
                                                        "candidate", "blue", "green")]
    splits = policy.get("splits") or []
    versions += [f"{s.get('version')} {_percent(s.get('weight'))}"
                 for s in splits if isinstance(s, Mapping)]
    return f"{policy.get('kind')}: {', '.join(map(str, versions))}"
