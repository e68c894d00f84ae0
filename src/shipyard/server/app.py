"""The ASGI app: simple JSON API, Open Inference Protocol (REST), metrics, OpenAPI, docs.

Routes translate HTTP to data-plane calls; errors become statuses in ``http_errors``.
Nothing else. Bad input of any kind is a 4xx naming the problem, never a 5xx. The two hot
routes (predict, infer) are raw ASGI in ``hotpath``; the rest are Starlette routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route

from shipyard._version import __version__
from shipyard.errors import NotFoundError
from shipyard.protocol import codec
from shipyard.protocol.http_errors import error_parts
from shipyard.server.admin_routes import AdminApi
from shipyard.server.asgi import header_map, read_body
from shipyard.server.docs_page import POLICY, DocsPage
from shipyard.server.hotpath import HotPaths, RequestMetrics, hot_route, parse_version
from shipyard.server.openapi import openapi_document
from shipyard.service.dataplane import DataPlane
from shipyard.service.feedback import FeedbackItem
from shipyard.service.metrics import SharedMetrics
from shipyard.service.rate_limiter import RateLimiter
from shipyard.ui import Access, DashboardSource, create_dashboard

JSON = "application/json"
META = ("predict", "read")  # model metadata: what an inference client reads first
Handler = Callable[[Request], Awaitable[Response]]


def _json(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type=JSON, headers=headers)


def _error(exc: Exception) -> Response:
    status, body, extra = error_parts(exc)
    return _json(body, status, {k.decode(): v.decode() for k, v in extra})


def create_app(plane: DataPlane, *, metrics_dir: Path | None = None) -> HotPaths:
    """The ASGI app serving ``plane``; its lifespan loads models and flushes logs. With
    ``metrics_dir`` (one of several worker processes), ``/metrics`` answers for every
    worker that shares that directory (``SharedMetrics``)."""
    config = plane.config
    shared = None if metrics_dir is None else SharedMetrics(
        plane.metrics.registry, metrics_dir, shared=plane.metrics.shared_sources)
    keys = plane.keys  # serve.yaml's and the registry's (service/keyring.py)
    opened = frozenset(config.open_routes)
    admin = AdminApi(plane, keys)
    # inference processes run the raw child, which answers simple-JSON predict requests
    # whole (parse, validate, predict, encode): the event loop only moves their bytes
    plane.raw_answers = True

    def guarded(handler: Handler, scope: str | tuple[str, ...] | None,
                route: str | None = None) -> Handler:
        """``handler`` behind a key allowing ``scope`` (None: open; ``route``: open when
        serve.yaml's ``open_routes`` names it), for the endpoint the path names."""
        check = scope is not None and (route is None or route not in opened)

        async def run(request: Request) -> Response:
            try:
                # the key's name, for handlers that log or limit by it (hashed once)
                request.state.key_name = None
                if check:
                    assert scope is not None
                    request.state.key_name = keys.authorize(
                        header_map(request.scope["headers"]), scope,
                        request.path_params.get("name"))
                return await handler(request)
            except Exception as exc:
                return _error(exc)
        return run

    async def hot_route_answer(request: Request) -> Response:
        """The hot routes through the router: only reached if ``HotPaths`` did not take the
        request first; the same handler, so the same answer."""
        kind, name, version = hot_route(request.url.path) or ("", "", None)
        status, headers, body = await hot.answer(request.scope, request.receive, kind, name,
                                                 version)
        return Response(body, status_code=status,
                        headers={k.decode("latin-1"): v.decode("latin-1") for k, v in headers})

    # -- simple JSON API ---------------------------------------------------------------------

    async def feedback(request: Request) -> Response:
        endpoint = plane.endpoint(request.path_params["name"])
        headers = header_map(request.scope["headers"])
        await hot.rate_limit(endpoint.name, headers, request.scope, request.state.key_name)
        payload = codec.loads(await read_body(request.receive,
                                              request.headers.get("content-length"),
                                              config.max_body_bytes))
        items = _feedback_items(payload)
        accepted = await plane.feedback(endpoint, items)
        return _json(codec.dumps({"accepted": accepted, "requests": len(items)}))

    async def list_endpoints(request: Request) -> Response:
        out = []
        for ep in plane.endpoints.values():
            d = ep.current
            out.append({"name": ep.name, "source": ep.config.model, "ready": d is not None,
                        "model": d.model_name if d else None,
                        "version": d.version if d else None, "last_error": ep.last_error})
        return _json(codec.dumps({"endpoints": out}))

    # -- Open Inference Protocol ---------------------------------------------------------------

    async def live(request: Request) -> Response:
        return _json(codec.dumps({"live": True}))

    async def ready(request: Request) -> Response:
        if plane.ready:
            return _json(codec.dumps({"ready": True}))
        # open to probes: the load error itself only to a caller the API keys let in
        detailed = not keys or keys.identify(header_map(request.scope["headers"])) is not None
        return _json(codec.dumps({"ready": False, "not_ready": _not_ready(plane, detailed)}),
                     503)

    async def server_metadata(request: Request) -> Response:
        return _json(codec.dumps({"name": "shipyard", "version": __version__,
                                  "extensions": ["binary_tensor_data"]}))

    async def model_metadata(request: Request) -> Response:
        endpoint = plane.endpoint(request.path_params["name"])
        d = endpoint.deployment(parse_version(request.path_params.get("version")))
        body = codec.model_metadata(endpoint.name, [str(d.version)], d.model.signature,
                                    f"shipyard_{d.model.runtime_name}")
        if endpoint.config.labels_only:  # its answers carry no probabilities
            body["outputs"] = [o for o in body["outputs"] if o["name"] != "probabilities"]
        return _json(codec.dumps(body))

    async def model_ready(request: Request) -> Response:
        endpoint = plane.endpoint(request.path_params["name"])
        version = parse_version(request.path_params.get("version"))
        table = endpoint.table
        try:  # the deployment a pinned request would get
            loaded = None if table is None else table.primary if version is None else \
                table.pinned(version, endpoint.name).deployment
        except NotFoundError:
            loaded = None
        ok = loaded is not None and loaded.ready
        return _json(codec.dumps({"name": endpoint.name, "ready": ok}), 200 if ok else 400)

    # -- operations ----------------------------------------------------------------------------

    async def metrics(request: Request) -> Response:
        body = generate_latest(plane.metrics.registry) if shared is None else shared.render()
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def openapi(request: Request) -> Response:
        return _json(codec.dumps(openapi_document(sorted(plane.endpoints),
                                                  api_keys=bool(keys), open_routes=opened)))

    page = DocsPage()
    docs_headers = {"content-security-policy": POLICY}

    async def docs(request: Request) -> Response:
        return HTMLResponse(page.html, headers=docs_headers)

    async def docs_asset(request: Request) -> Response:
        found = page.asset(request.path_params["asset"])
        if found is None:
            return await _not_found(request, LookupError())
        return Response(found[0], media_type=found[1],
                        headers={**docs_headers, "cache-control": "public, max-age=86400"})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await plane.start()
        _tune_gc()
        sharing = None if shared is None else asyncio.get_running_loop().create_task(
            shared.run())
        try:
            yield
        finally:
            await plane.close()
            if limiter:
                await limiter.close()
            if shared is not None and sharing is not None:
                sharing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sharing
                shared.publish(live=False)  # the last counts stay in the server's totals

    async def predict_in_process(name: str, body: bytes, key: dict[bytes, bytes],
                                 ) -> tuple[int, bytes]:
        """The dashboard's Try it: the predict route itself, called without a socket."""
        scope = {"type": "http", "method": "POST", "path": f"/v1/endpoints/{name}/predict",
                 "query_string": b"", "client": ("127.0.0.1", 0),
                 "headers": [(b"content-type", JSON.encode()),
                             (b"content-length", str(len(body)).encode()), *key.items()]}
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            return messages.pop() if messages else {"type": "http.disconnect"}

        status, _, answer = await hot.answer(scope, receive, "predict", name, None)
        return status, answer

    dashboard = create_dashboard(
        DashboardSource(plane.log.root, plane=plane),
        Access(keys, open_view="ui" in opened), predict=predict_in_process)

    v2 = "/v2/models/{name}"
    routes = [
        Route("/v1/endpoints", guarded(list_endpoints, "read"), methods=["GET"]),
        Route("/v1/endpoints/{name}/predict", hot_route_answer, methods=["POST"]),
        Route("/v1/endpoints/{name}/feedback", guarded(feedback, "feedback"),
              methods=["POST"]),
        Route("/v2/health/live", guarded(live, None), methods=["GET"]),
        Route("/v2/health/ready", guarded(ready, None), methods=["GET"]),
        Route("/v2", guarded(server_metadata, ("predict", "read")), methods=["GET"]),
        # what an inference client reads first: a predict key may too
        Route(v2, guarded(model_metadata, META), methods=["GET"]),
        Route(v2 + "/versions/{version}", guarded(model_metadata, META), methods=["GET"]),
        Route(v2 + "/ready", guarded(model_ready, META), methods=["GET"]),
        Route(v2 + "/versions/{version}/ready", guarded(model_ready, META), methods=["GET"]),
        Route(v2 + "/infer", hot_route_answer, methods=["POST"]),
        Route(v2 + "/versions/{version}/infer", hot_route_answer, methods=["POST"]),
        Route("/metrics", guarded(metrics, "read", "metrics"), methods=["GET"]),
        Route("/openapi.json", guarded(openapi, "read", "openapi"), methods=["GET"]),
        Route("/docs", guarded(docs, "read", "docs"), methods=["GET"]),
        Route("/docs/{asset}", guarded(docs_asset, "read", "docs"), methods=["GET"]),
        # the admin API checks its own key (the admin scope) and names it as the actor
        *admin.routes(lambda handler: guarded(handler, None)),
        # the dashboard checks its own keys (read to see, an admin key to act)
        Mount("/ui", app=dashboard),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={404: _not_found, 405: _not_allowed})
    app.state.plane = plane
    hot = HotPaths(app, plane, keys, RequestMetrics(plane))
    limiter = RateLimiter(config, plane.metrics.registry)
    hot.limiter = limiter if limiter else None
    return hot


def _not_ready(plane: DataPlane, detailed: bool) -> dict[str, str]:
    """Each endpoint without a model to serve, and why: still loading, or its load error."""
    return {ep.name: "loading" if ep.last_error is None else
            f"could not load: {ep.last_error}" if detailed else "could not load"
            for ep in plane.endpoints.values() if ep.current is None}


async def _not_found(request: Request, exc: Exception) -> Response:
    return _json(codec.error_body(f"no route {request.method} {request.url.path}"), 404)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return _json(codec.error_body(f"method {request.method} not allowed on "
                                  f"{request.url.path}"), 405)


def _tune_gc() -> None:
    """Serving allocates many short-lived objects per request; with CPython's default
    gen-0 threshold (700) the collector ran for about a quarter of the GIL time under load.
    Freeze what start-up built (models, modules) so collections skip it, and collect the
    young generation less often."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(50_000, gen1, gen2)
    # CPython's default switch interval, 5 ms, set explicitly: an interleaved A/B of 1, 2 and
    # 5 ms under bench/serving.py's load (bench/README.md) gave 5 ms the best median req/s
    # and the lowest p99; shorter intervals only add GIL hand-offs between the event loop,
    # the inference thread and the log writer
    sys.setswitchinterval(0.005)


def _feedback_items(payload: Any) -> list[FeedbackItem]:
    """``{"request_id", "label" | "labels", "replace"?}`` or ``{"feedback": [...those...]}``."""
    entries = payload.get("feedback") if isinstance(payload, dict) and "feedback" in payload \
        else [payload]
    if not isinstance(entries, list) or not entries:
        raise codec.BadRequestError("send {'request_id': ..., 'label': ...} or "
                               "{'feedback': [{'request_id': ..., 'labels': [...]}, ...]}")
    items = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("request_id"), str) \
                or not entry["request_id"]:
            raise codec.BadRequestError(f"feedback[{i}] needs a non-empty string 'request_id'")
        codec.check_request_id(entry["request_id"], f"feedback[{i}].request_id")
        if ("label" in entry) == ("labels" in entry):
            raise codec.BadRequestError(f"feedback[{i}] needs exactly one of 'label' or 'labels'")
        labels = entry["labels"] if "labels" in entry else [entry["label"]]
        if not isinstance(labels, list) or not labels or not all(
                v is None or isinstance(v, (str, int, float, bool)) for v in labels):
            raise codec.BadRequestError(f"feedback[{i}]: labels must be a non-empty list of "
                                   "numbers, strings, booleans or nulls")
        replace = entry.get("replace", False)
        if not isinstance(replace, bool):
            raise codec.BadRequestError(f"feedback[{i}]: 'replace' must be true or false")
        items.append(FeedbackItem(entry["request_id"], labels, replace))
    return items
