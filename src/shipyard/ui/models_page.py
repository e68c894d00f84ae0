"""The registry's models: every model with its aliases; one model's versions (signature,
metrics, lineage) and its audit trail, with the alias-move form (an admin action)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from html import escape
from typing import Any

from shipyard.registry import Registry
from shipyard.ui.layout import cell, page, table, text_cell, url

AUDIT_SHOWN = 50


def models_page(registry: Registry) -> str:
    rows = [f'<tr><th scope="row"><a href="{url("models", m.name)}">{escape(m.name)}</a></th>'
            + cell(m.latest_version, name="latest_version") + cell(m.versions, name="versions")
            + text_cell(", ".join(f"@{a} → v{v}" for a, v in sorted(m.aliases.items()))
                        or "none")
            + text_cell(m.description or "") + "</tr>" for m in registry.list_models()]
    body = (table("Registered models", ["model", "latest", "versions", "aliases",
                                        "description"], rows)
            if rows else "<p>No model is registered yet.</p>")
    return page("Models", body, active="models")


def model_page(registry: Registry, name: str) -> str:
    model = registry.get_model(name)
    versions = registry.search_versions(name, include_archived=True)
    parts = [f'<p class="meta">{escape(model.description or "")} {model.versions} versions; '
             f"aliases: {escape(_aliases(model.aliases)) or 'none'}.</p>",
             _alias_form(name, model.aliases, [v.version for v in versions]),
             "<h2>Versions</h2>"]
    for v in sorted(versions, key=lambda v: -v.version):
        lineage = registry.lineage(f"{name}/{v.version}").to_dict()
        signature = (v.manifest or {}).get("signature") or {}
        parts.append(
            f'<details id="v{v.version}"{" open" if v.version == model.latest_version else ""}>'
            f"<summary>v{v.version} · {escape(v.status)} · {escape(v.runtime)}"
            f"{' · @' + ', @'.join(v.aliases) if v.aliases else ''}</summary>"
            f'<p class="meta">created {escape(v.created_at.isoformat())} by '
            f"{escape(v.created_by)}; {escape(v.description or '')}</p>"
            + _signature(signature)
            + table(f"Metrics of v{v.version}", ["metric", "value"],
                    [f'<tr><th scope="row">{escape(k)}</th>{cell(val, name=k)}</tr>'
                     for k, val in sorted(v.metrics.items())])
            + _lineage(lineage) + "</details>")
    audit = registry.audit(model=name, limit=AUDIT_SHOWN)
    parts.append("<h2>Audit trail</h2>" + table(
        f"The newest {AUDIT_SHOWN} changes to {name}", ["at", "actor", "action", "version",
                                                        "alias", "before → after"],
        [f"<tr><td>{escape(a.at.isoformat())}</td>{text_cell(a.actor)}{text_cell(a.action)}"
         f"{cell(a.version)}{text_cell(a.alias or '')}"
         f"{text_cell(_short(a.before) + ' → ' + _short(a.after))}</tr>" for a in audit]))
    return page(f"Model {name}", "".join(parts), active="models")


def _aliases(aliases: Mapping[str, int]) -> str:
    return ", ".join(f"@{a} → v{v}" for a, v in sorted(aliases.items()))


def _signature(signature: Mapping[str, Any]) -> str:
    inputs = [f"<tr><td>{escape(str(c.get('name')))}</td>{text_cell(str(c.get('dtype')))}"
              f"{text_cell(json.dumps(c.get('range')) if c.get('range') else '')}"
              f"{text_cell(', '.join(map(str, c.get('categories') or [])))}"
              f"{text_cell('yes' if c.get('nullable') else 'no')}</tr>"
              for c in signature.get("inputs") or ()]
    outputs = ", ".join(f"{o.get('name')} ({o.get('dtype')})"
                        for o in signature.get("outputs") or ())
    classes = signature.get("class_labels")
    return (f"<p>Task: {escape(str(signature.get('task', 'n/a')))}; outputs: "
            f"{escape(outputs or 'n/a')}"
            f"{'; classes: ' + escape(', '.join(map(str, classes))) if classes else ''}.</p>"
            + table("Signature inputs", ["input", "dtype", "range", "categories", "nullable"],
                    inputs))


def _lineage(lineage: Mapping[str, Any]) -> str:
    up, down = lineage.get("upstream") or {}, lineage.get("downstream") or {}
    data = up.get("data") or {}
    code = up.get("code") or {}
    deployments = ", ".join(f"{d.get('endpoint')}" + (" (ended)" if d.get("ended_at") else "")
                            for d in down.get("deployments") or ()) or "none"
    return (f"<p><b>Lineage.</b> data: {escape(_short(data))}; code: {escape(_short(code))}; "
            f"parents: {escape(', '.join(up.get('parents') or []) or 'none')}; "
            f"children: {escape(', '.join(down.get('versions') or []) or 'none')}; "
            f"deployments: {escape(deployments)}.</p>")


def _short(value: Any) -> str:
    if value is None:
        return "—"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:119] + "…"


def _alias_form(name: str, aliases: Mapping[str, int], versions: list[int]) -> str:
    options = "".join(f'<option value="{v}">v{v}</option>' for v in sorted(versions,
                                                                             reverse=True))
    known = "".join(f'<option value="{escape(a)}">' for a in sorted(aliases))
    return (f'<form class="card" method="get" action="{url("models", name, "alias")}">'
            f"<h2>Move an alias</h2>"
            f'<div class="field"><label for="alias">Alias</label><input id="alias" '
            f'name="alias" list="aliases" required value="production">'
            f'<datalist id="aliases">{known}</datalist></div>'
            f'<div class="field"><label for="version">To version</label><select id="version" '
            f'name="version">{options}</select></div>'
            f"<button type=\"submit\">Review the move…</button> "
            f'<span class="meta">(needs an admin key on the next page)</span></form>')


