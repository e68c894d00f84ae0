"""Rollouts: every deployed endpoint with its policy and traffic split; one endpoint's
rollouts with every decision and its numbers, an A/B test's confidence intervals and a
shadow's agreement picked out of them, its policy revisions, and the admin actions (each
through a confirmation page)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from html import escape
from typing import Any

from shipyard.registry import Registry
from shipyard.service.deployment_status import (
    deployment_history,
    deployment_status,
    deployments_overview,
)
from shipyard.ui.layout import cell, page, table, text_cell, url
from shipyard.ui.overview import rollout_text, traffic_text

# the numbers a decision is read by: an A/B test's difference, its confidence interval,
# p-value and verdict; a shadow's agreement (with its interval); a check's verdict
HIGHLIGHT = frozenset({"difference", "interval", "p_value", "verdict", "agreement",
                       "confidence", "rate", "outcome"})
VERBS = {"canary": ("promote", "abort"), "ab": ("promote", "abort"),
         "shadow": ("promote", "abort"), "bluegreen": ("switch", "promote", "abort")}


def rollouts_page(registry: Registry) -> str:
    rows = [f'<tr><th scope="row"><a href="{url("rollouts", d["endpoint"])}">'
            f'{escape(d["endpoint"])}</a></th>{cell(d["revision"], name="revision")}'
            f'{text_cell(str(d["policy"].get("kind", "")))}'
            f'{text_cell(traffic_text(d["traffic"]))}{text_cell(rollout_text(d["rollout"]))}'
            "</tr>" for d in deployments_overview(registry)]
    body = (table("Deployments (as GET /v1/deployments answers)",
                  ["endpoint", "revision", "policy", "traffic", "rollout"], rows)
            if rows else "<p>No endpoint has a deployment in the registry.</p>")
    return page("Rollouts", body, active="rollouts")


def rollout_page(registry: Registry, endpoint: str) -> str:
    status = deployment_status(registry, endpoint)
    history = deployment_history(registry, endpoint)
    running = status.get("rollout")
    traffic = [f"<tr><td>{escape(str(t['version']))}</td>{text_cell(t['variant'])}"
               f"{cell(t['percent'], name='percent')}"
               f"{cell(t.get('copied_percent'), name='copied_percent')}</tr>"
               for t in status["traffic"]]
    parts = [f'<p><a href="{url("endpoints", endpoint)}">Endpoint {escape(endpoint)}</a></p>',
             f"<h2>Policy (revision {status['revision']})</h2>",
             f"<p><code>{escape(json.dumps(status['policy']))}</code></p>",
             table("Traffic split", ["version", "variant", "percent", "shadow copies %"],
                   traffic),
             "<h2>Actions</h2>", _actions(endpoint, running),
             "<h2>Rollouts</h2>"]
    for rollout in history["rollouts"]:
        parts.append(_rollout(rollout))
    if not history["rollouts"]:
        parts.append("<p>No rollout yet.</p>")
    parts.append("<h2>Policy revisions</h2>" + table(
        "Every policy this endpoint had, newest first", ["revision", "at", "actor", "reason",
                                                         "policy"],
        [f"<tr>{cell(r.get('revision'))}{text_cell(str(r.get('at', r.get('created_at', ''))))}"
         f"{text_cell(str(r.get('actor', '')))}{text_cell(str(r.get('reason', '')))}"
         f"{text_cell(json.dumps(r.get('policy'))[:160])}</tr>"
         for r in history["revisions"]]))
    return page(f"Rollouts of {endpoint}", "".join(parts), active="rollouts")


def _actions(endpoint: str, running: Mapping[str, Any] | None) -> str:
    verbs = list(VERBS.get(str(running.get("kind")), ())) if running else []
    verbs.append("rollback")
    links = " ".join(f'<a href="{url("actions", endpoint, verb)}">{verb}…</a>'
                     for verb in verbs)
    return (f"<p>{links} <span class=\"meta\">(each asks for confirmation and an admin "
            "key)</span></p>")


def _rollout(rollout: Mapping[str, Any]) -> str:
    plan = rollout.get("plan") or {}
    decisions = rollout.get("decisions") or []
    rows = []
    for d in decisions:
        numbers = dict(_flatten(d.get("numbers") or {}))
        key = {k: v for k, v in numbers.items() if not k.startswith("plan.")
               and k.rsplit(".", 1)[-1] in HIGHLIGHT}
        rows.append(
            f"<tr><td>{escape(str(d.get('at')))}</td>{cell(d.get('step'), name='step')}"
            f"{cell(d.get('percent'), name='percent')}"
            f"<td class=\"{'bad' if d.get('outcome') in ('fail', 'abort') else ''}\">"
            f"{escape(str(d.get('outcome')))}</td>{text_cell(str(d.get('reason', '')))}"
            f"<td>{_numbers(key)}<details><summary>all numbers ({len(numbers)})</summary>"
            f"{_numbers(numbers)}</details></td></tr>")
    sample = rollout.get("sample_plan")
    extra = (f"<p>Planned sample per variant: {escape(json.dumps(sample))}</p>"
             if sample else "")
    return (f"<details{' open' if rollout.get('state') == 'running' else ''}>"
            f"<summary>#{rollout.get('id')} {escape(str(rollout.get('kind')))} "
            f"{escape(str(rollout.get('stable')))} → {escape(str(rollout.get('candidate')))}"
            f" · {escape(str(rollout.get('state')))}</summary>"
            f"<p>Plan: <code>{escape(json.dumps(plan))}</code></p>{extra}"
            + table(f"Decisions of rollout {rollout.get('id')}, newest first",
                    ["at", "step", "percent", "outcome", "reason", "numbers"], rows)
            + "</details>")


def _flatten(numbers: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in numbers.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, name + ".")
        else:
            yield name, value


def _numbers(numbers: Mapping[str, Any]) -> str:
    if not numbers:
        return ""
    return "<dl>" + "".join(
        f"<dt>{escape(k)}</dt><dd>{escape(json.dumps(v, default=str))}</dd>"
        for k, v in numbers.items()) + "</dl>"
