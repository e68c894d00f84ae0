"""The admin API's part of the OpenAPI document (``/v1/deployments``, see admin_routes.py)."""

from __future__ import annotations

from typing import Any

_ENDPOINT = {"name": "endpoint", "in": "path", "required": True,
             "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"}}
_REASON = {"reason": {"type": "string", "description": "Why (kept in the audit log)."}}
_KINDS = ["canary", "ab", "shadow", "bluegreen"]


def _errors(*codes: str) -> dict[str, Any]:
    text = {"400": "Malformed body or invalid value (named)",
            "401": "No valid key", "403": "A key that is not an admin key",
            "404": "Unknown endpoint, model, version or alias",
            "409": "Refused in the current state (a rollout runs, nothing to promote ...)"}
    return {code: {"description": text[code], "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}} for code in codes}


def _post(summary: str, properties: dict[str, Any], required: list[str] | None = None,
          created: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "object", "properties": {**properties, **_REASON}}
    if required:
        body["required"] = required
    return {"post": {
        "summary": summary, "parameters": [_ENDPOINT],
        "requestBody": {"required": bool(required), "content": {
            "application/json": {"schema": body}}},
        "responses": {"201" if created else "200": {"description": "Done: the new state"},
                      **_errors("400", "401", "403", "404", "409")}}}


def admin_paths() -> dict[str, Any]:
    """The admin routes' paths (an admin key is needed whenever keys are configured)."""
    one = "/v1/deployments/{endpoint}"
    get = {"parameters": [_ENDPOINT],
           "responses": {"200": {"description": "OK"}, **_errors("401", "403", "404")}}
    paths: dict[str, Any] = {
        "/v1/deployments": {"get": {"summary": "Every endpoint with a traffic policy",
                                    "responses": {"200": {"description": "OK"},
                                                  **_errors("401", "403")}}},
        one: {"get": {"summary": "An endpoint's policy and running rollout", **get},
              **_post("Deploy one version (all traffic)", {
                  "model": {"type": "string"}, "require_evaluation": {"type": "boolean"},
                  "override_evaluation": {"type": "string", "minLength": 1}},
                      ["model"])},
        one + "/history": {"get": {"summary": "Policy revisions and past rollouts", **get}},
        one + "/rollouts": _post(
            "Start a rollout (the plan's fields beside kind)",
            {"kind": {"type": "string", "enum": _KINDS}, "to": {"type": "string"},
             "a": {"type": "string"}, "b": {"type": "string"},
             "candidate": {"type": "string"}, "require_evaluation": {"type": "boolean"},
             "override_evaluation": {"type": "string", "minLength": 1}}, ["kind"],
            created=True),
    }
    for verb, summary in (("promote", "Promote the running rollout's candidate"),
                          ("abort", "Abort the running rollout: all traffic to stable"),
                          ("switch", "Flip a blue-green rollout's live version"),
                          ("rollback", "Back to the last stable version")):
        extra = {"winner": {"type": "string", "enum": ["a", "b"]}} if verb == "promote" \
            else {}
        paths[f"{one}/{verb}"] = _post(summary, extra)
    return paths
