"""The HTTP admin API under ``/v1/deployments``: deployments and their rollouts, as the CLI's
``shipyard deploy`` / ``rollout ...`` / ``rollback`` do them (``Registry.rollouts``).

- ``GET /v1/deployments``: every endpoint with a policy (revision, policy, traffic shares,
  running rollout);
- ``GET /v1/deployments/{endpoint}``: its status (what ``shipyard rollout status --json``
  prints); ``GET .../history``: its rollouts with their decisions, and its policy revisions;
- ``POST /v1/deployments/{endpoint}`` ``{"model": URI, "reason"?}``: deploy one version;
- ``POST .../rollouts`` ``{"kind": "canary" | "ab" | "shadow" | "bluegreen", "to" | "a" +
  "b" | "candidate": URI, "reason"?, ...plan fields}``: start a rollout (201);
- ``POST .../promote`` | ``abort`` | ``switch`` | ``rollback`` ``{"reason"?, "winner"?}``.

Auth: when any API key or admin key is configured, these routes need a key from
``admin_api_keys`` (401 without a valid key, 403 with a valid key that is not an admin key),
and the audit log names the change's actor ``api:<key name>``. With no keys configured at all
they are open, like every other route, and changes are the server's own actor's. Registry
calls run in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shipyard.protocol import codec
from shipyard.registry import Registry
from shipyard.routing.plans import ABPlan, CanaryPlan, ShadowPlan, plan_from_dict
from shipyard.server.asgi import header_map, read_body
from shipyard.service.dataplane import DataPlane
from shipyard.service.deployment_status import (
    deployment_history,
    deployment_status,
    deployments_overview,
    rollout_doc,
)
from shipyard.service.keyring import KeyRing

Handler = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")

PREFIX = "/v1/deployments"
# the body fields naming each kind of rollout's versions (the rest describe its plan)
VERSION_FIELDS = {"canary": ("to",), "ab": ("a", "b"), "shadow": ("candidate",),
                  "bluegreen": ("to",)}
MAX_HISTORY = 1000


def _json(doc: Any, status: int = 200) -> Response:
    return Response(codec.dumps(doc), status_code=status, media_type="application/json")


def _text(body: Mapping[str, Any], name: str, what: str = "") -> str:
    """The body's field ``name``: a non-empty string (``what`` says what it holds)."""
    value = body.get(name)
    if name not in body:
        raise codec.BadRequestError(f"the body needs '{name}'{what}")
    if not isinstance(value, str) or not value:
        raise codec.BadRequestError(f"'{name}' must be a non-empty string{what}, not "
                                    f"{value!r}")
    return value


class AdminApi:
    """The admin routes of one server, acting on its data plane's registry."""

    def __init__(self, plane: DataPlane, keys: KeyRing) -> None:
        self.plane = plane
        self.keys = keys

    def routes(self, guarded: Callable[[Handler], Handler]) -> list[Route]:
        """The routes, each wrapped by ``guarded`` (which answers errors)."""
        one = PREFIX + "/{endpoint}"
        routes = [Route(PREFIX, guarded(self.overview), methods=["GET"]),
                  Route(one, guarded(self.status), methods=["GET"]),
                  Route(one, guarded(self.deploy), methods=["POST"]),
                  Route(one + "/history", guarded(self.history), methods=["GET"]),
                  Route(one + "/rollouts", guarded(self.start), methods=["POST"])]
        for verb in ("promote", "abort", "switch", "rollback"):
            routes.append(Route(f"{one}/{verb}", guarded(self._verb(verb)), methods=["POST"]))
        return routes

    # -- auth and the registry -------------------------------------------------------------------

    def actor(self, request: Request) -> str | None:
        """Who acts: ``api:<admin key name>``; None when no keys are configured (the
        registry's own actor). 401 without a valid key, 403 with a non-admin one."""
        name = self.keys.authorize(header_map(request.scope["headers"]), "admin")
        return None if name is None else f"api:{name}"

    async def _call(self, actor: str | None, work: Callable[[Registry], T]) -> T:
        def run() -> T:
            registry = self.plane.registry
            return work(registry if actor is None else registry.acting_as(actor))

        return await asyncio.get_running_loop().run_in_executor(None, run)

    async def _body(self, request: Request, *, optional: bool = False) -> dict[str, Any]:
        raw = await read_body(request.receive, request.headers.get("content-length"),
                              self.plane.config.max_body_bytes)
        if optional and not raw.strip():
            return {}
        body = codec.loads(raw)
        if not isinstance(body, dict):
            raise codec.BadRequestError(f"the body must be a JSON object, not "
                                        f"{type(body).__name__}")
        return body

    @staticmethod
    def _reason(body: Mapping[str, Any], default: str, actor: str | None) -> str:
        if body.get("reason") is not None:
            return _text(body, "reason")
        return f"{default} (HTTP admin API{', ' + actor if actor else ''})"

    # -- routes --------------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        actor = self.actor(request)
        return _json({"deployments": await self._call(actor, deployments_overview)})

    async def status(self, request: Request) -> Response:
        actor, endpoint = self.actor(request), request.path_params["endpoint"]
        return _json(await self._call(actor, lambda reg: deployment_status(reg, endpoint)))

    async def history(self, request: Request) -> Response:
        actor, endpoint = self.actor(request), request.path_params["endpoint"]
        text = request.query_params.get("limit", "20")
        if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_HISTORY:
            raise codec.BadRequestError(f"'limit' must be a whole number from 1 to "
                                        f"{MAX_HISTORY}, not {text!r}")
        limit = int(text)
        return _json(await self._call(actor, lambda reg: deployment_history(
            reg, endpoint, limit=limit)))

    async def deploy(self, request: Request) -> Response:
        actor, endpoint = self.actor(request), request.path_params["endpoint"]
        body = await self._body(request)
        model = _text(body, "model", " (a model URI such as models:/iris/3)")
        reason = self._reason(body, f"deploy {model}", actor)
        required, override = _evaluation_fields(body)
        _no_other_fields(body, {"model", "reason", "require_evaluation", "override_evaluation"})
        revision = await self._call(actor, lambda reg: reg.rollouts.deploy(
            endpoint, model, reason=reason, require_evaluation=required,
            override_evaluation=override))
        return _json(revision.to_dict())

    async def start(self, request: Request) -> Response:
        actor, endpoint = self.actor(request), request.path_params["endpoint"]
        body = await self._body(request)
        kind = body.get("kind")
        if not isinstance(kind, str) or kind not in VERSION_FIELDS:  # a list is unhashable
            raise codec.BadRequestError(f"'kind' must be one of {', '.join(VERSION_FIELDS)}, "
                                        f"not {kind!r}")
        names = VERSION_FIELDS[kind]
        uris = [_text(body, n, " (a model URI)") for n in names]
        reason = self._reason(body, f"{kind} rollout of {' and '.join(uris)}", actor)
        required, override = _evaluation_fields(body)
        if (required or override is not None) and kind == "shadow":
            raise codec.BadRequestError("a shadow answers no request: 'require_evaluation' "
                                        "is for canary, ab and bluegreen")
        plan = plan_from_dict(kind, {k: v for k, v in body.items() if k not in {
            "kind", "reason", "require_evaluation", "override_evaluation", *names}})

        def begin(reg: Registry) -> dict[str, Any]:
            rollouts = reg.rollouts
            if isinstance(plan, CanaryPlan):
                found = rollouts.start_canary(endpoint, uris[0], plan, reason=reason,
                                              require_evaluation=required,
                                              override_evaluation=override)
            elif isinstance(plan, ABPlan):
                found = rollouts.start_ab(endpoint, uris[0], uris[1], plan, reason=reason,
                                          require_evaluation=required,
                                          override_evaluation=override)
            elif isinstance(plan, ShadowPlan):
                found = rollouts.start_shadow(endpoint, uris[0], plan, reason=reason)
            else:
                found = rollouts.start_bluegreen(endpoint, uris[0], reason=reason,
                                                 require_evaluation=required,
                                                 override_evaluation=override)
            return rollout_doc(found)

        return _json(await self._call(actor, begin), 201)

    def _verb(self, verb: str) -> Handler:
        async def act(request: Request) -> Response:
            actor, endpoint = self.actor(request), request.path_params["endpoint"]
            body = await self._body(request, optional=True)
            reason = self._reason(body, verb, actor)
            extra: dict[str, Any] = {}
            if verb == "promote" and body.get("winner") is not None:
                winner = body["winner"]
                if winner not in ("a", "b"):
                    raise codec.BadRequestError(f"'winner' must be 'a' or 'b', not {winner!r}")
                extra["winner"] = winner
            _no_other_fields(body, {"reason", "winner"} if verb == "promote" else {"reason"})

            def work(reg: Registry) -> dict[str, Any]:
                getattr(reg.rollouts, verb)(endpoint, reason=reason, **extra)
                return deployment_status(reg, endpoint)

            return _json(await self._call(actor, work))

        act.__name__ = verb
        return act


def _no_other_fields(body: Mapping[str, Any], known: set[str]) -> None:
    extra = sorted(set(body) - known)
    if extra:
        raise codec.BadRequestError(f"unknown field(s) {', '.join(map(repr, extra))}; "
                                    f"known: {', '.join(sorted(known))}")


def _evaluation_fields(body: dict[str, Any]) -> tuple[bool, str | None]:
    """A body's ``require_evaluation`` (true or false) and ``override_evaluation`` (a
    reason), checked."""
    required = body.get("require_evaluation", False)
    if not isinstance(required, bool):
        raise codec.BadRequestError(f"'require_evaluation' must be true or false, not "
                                    f"{required!r}")
    override = body.get("override_evaluation")
    if override is not None and (not isinstance(override, str) or not override.strip()):
        raise codec.BadRequestError("'override_evaluation' must be a non-empty reason")
    return required, override
