"""Admin actions from the dashboard: promote, abort, switch, rollback an endpoint's rollout,
and move a model's alias. Each is a confirmation page first (what will change, a reason, the
admin key), then a form POST that makes the same registry call the admin API and the CLI make
(``Registry.rollouts.<verb>``, ``Registry.set_alias``) as ``registry.acting_as("api:<key
name>")``, so the audit log records it like theirs."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from shipyard.errors import NotFoundError
from shipyard.protocol.codec import BadRequestError
from shipyard.registry import Registry
from shipyard.ui.layout import page, url

VERBS = ("promote", "abort", "switch", "rollback")
WHAT = {"promote": "send all traffic to the rollout's candidate and end the rollout",
        "abort": "send all traffic back to the stable version and end the rollout",
        "switch": "switch a blue-green deployment's live colour",
        "rollback": "put back the endpoint's previous traffic policy"}


def check_verb(verb: str) -> str:
    if verb not in VERBS:
        raise NotFoundError(f"no action {verb!r}; one of {', '.join(VERBS)}")
    return verb


def _key_fields(default_reason: str) -> str:
    return (f'<div class="field"><label for="reason">Reason (audited)</label>'
            f'<input id="reason" name="reason" size="50" value="{escape(default_reason)}">'
            f'</div><div class="field"><label for="admin_key">Admin key</label>'
            f'<input id="admin_key" name="admin_key" type="password" autocomplete="off"></div>'
            f'<div class="field"><input id="confirm" name="confirm" type="checkbox" '
            f'value="yes" required> <label for="confirm">I confirm this change</label></div>')


def confirm_rollout_action(endpoint: str, verb: str, status: Mapping[str, Any]) -> str:
    winner = ('<div class="field"><label for="winner">Winner (A/B)</label><select '
              'id="winner" name="winner"><option value="">as analysed</option>'
              '<option value="a">a</option><option value="b">b</option></select></div>'
              if verb == "promote" else "")
    rollout = status.get("rollout") or {}
    current = (f"<p>Running rollout: {escape(str(rollout.get('kind')))} of "
               f"{escape(str(rollout.get('candidate')))}.</p>" if rollout else
               "<p>No rollout is running.</p>")
    body = (f"<p>This will <b>{escape(WHAT[verb])}</b> on endpoint "
            f"<b>{escape(endpoint)}</b>.</p>{current}"
            f'<form class="card" method="post" action="{url("actions", endpoint, verb)}">'
            f"{winner}{_key_fields(f'{verb} from the dashboard')}"
            f'<button class="danger" type="submit">Confirm {escape(verb)}</button> '
            f'<a href="{url("rollouts", endpoint)}">Cancel</a></form>')
    return page(f"{verb.capitalize()} {endpoint}?", body, active="rollouts")


def run_rollout_action(registry: Registry, endpoint: str, verb: str,
                       form: Mapping[str, str]) -> None:
    """The registry call the admin API's ``POST /v1/deployments/{endpoint}/{verb}`` makes."""
    reason = (form.get("reason") or "").strip() or f"{verb} (dashboard)"
    extra: dict[str, str] = {}
    winner = form.get("winner") or ""
    if verb == "promote" and winner:
        if winner not in ("a", "b"):
            raise BadRequestError(f"'winner' must be 'a' or 'b', not {winner!r}")
        extra["winner"] = winner
    getattr(registry.rollouts, verb)(endpoint, reason=reason, **extra)


def confirm_alias_move(registry: Registry, name: str, alias: str, version: int) -> str:
    model = registry.get_model(name)
    registry.get_version(f"{name}/{version}")  # a NotFoundError for a missing version
    now = model.aliases.get(alias)
    body = (f"<p>This will point <b>@{escape(alias)}</b> of <b>{escape(name)}</b> at "
            f"<b>v{version}</b> (now {'v' + str(now) if now is not None else 'unset'}). "
            "Endpoints serving the alias follow it.</p>"
            f'<form class="card" method="post" action="{url("models", name, "alias")}">'
            f'<input type="hidden" name="alias" value="{escape(alias)}">'
            f'<input type="hidden" name="version" value="{version}">'
            f"{_key_fields(f'move @{alias} to v{version} from the dashboard')}"
            f'<button class="danger" type="submit">Confirm alias move</button> '
            f'<a href="{url("models", name)}">Cancel</a></form>')
    return page(f"Move @{alias} of {name}?", body, active="models")


def alias_form(form: Mapping[str, str]) -> tuple[str, int]:
    alias = (form.get("alias") or "").strip()
    text = (form.get("version") or "").strip()
    if not alias or not text.isascii() or not text.isdigit():
        raise BadRequestError("an alias move needs 'alias' and a whole-number 'version'")
    return alias, int(text)


def confirmed(form: Mapping[str, str]) -> None:
    if form.get("confirm") != "yes":
        raise BadRequestError("tick 'I confirm this change' to make it")
