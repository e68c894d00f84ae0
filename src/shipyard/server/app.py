"""The ASGI app: simple JSON API, Open Inference Protocol (REST), metrics, OpenAPI, docs.

Routes translate HTTP to data-plane calls and map shipyard errors to status codes; nothing
else. Bad input of any kind is a 4xx naming the problem, never a 5xx.
"""

from __future__ import annotations

import gc
import hmac
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from shipyard._version import __version__
from shipyard.batching import BatcherClosedError, BatchTimeoutError, QueueFullError
from shipyard.errors import InputValidationError, NotFoundError, ShipyardError
from shipyard.packaging.validation import UnknownCategories
from shipyard.runtimes.model import LoadedModel
from shipyard.server import codec
from shipyard.server.openapi import DOCS_HTML, openapi_document
from shipyard.service.dataplane import DataPlane, Endpoint, Served, new_request_id
from shipyard.types import Columns

log = logging.getLogger("shipyard.serve")
JSON = "application/json"
Handler = Callable[[Request], Awaitable[Response]]


class PayloadTooLargeError(ShipyardError):
    pass


class UnauthorizedError(ShipyardError):
    pass


def _json(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type=JSON, headers=headers)


def _error(exc: Exception) -> Response:
    """One place maps shipyard's errors to HTTP: core errors carry no status codes."""
    if isinstance(exc, InputValidationError):
        return _json(codec.error_body(str(exc), exc.problems), 422)
    if isinstance(exc, codec.BadRequestError):
        return _json(codec.error_body(str(exc)), 400)
    if isinstance(exc, PayloadTooLargeError):
        return _json(codec.error_body(str(exc)), 413)
    if isinstance(exc, UnauthorizedError):
        return _json(codec.error_body(str(exc)), 401, {"WWW-Authenticate": "Bearer"})
    if isinstance(exc, NotFoundError):
        return _json(codec.error_body(str(exc)), 404)
    if isinstance(exc, (QueueFullError, BatcherClosedError)):
        return _json(codec.error_body(f"overloaded: {exc}"), 503, {"Retry-After": "1"})
    if isinstance(exc, BatchTimeoutError):
        return _json(codec.error_body(f"timed out: {exc}"), 504)
    if isinstance(exc, ShipyardError):
        return _json(codec.error_body(str(exc)), 400)
    log.exception("internal error")
    return _json(codec.error_body(f"internal error: {type(exc).__name__}"), 500)


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and _is_digits(declared) and int(declared) > limit:
        raise PayloadTooLargeError(f"request body of {declared} bytes is over the "
                                   f"{limit}-byte limit")
    # straight from ASGI receive: request.stream() adds a generator and checks per chunk
    chunks, size = [], 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body is over the {limit}-byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _is_digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts "²", which ``int()`` refuses."""
    return text.isascii() and text.isdigit()


def _version(request: Request) -> int | None:
    raw = request.path_params.get("version")
    if raw is None:
        return None
    if not _is_digits(raw) or int(raw) < 1:
        raise NotFoundError(f"version {raw!r} is not a positive integer")
    return int(raw)


def create_app(plane: DataPlane) -> HotPaths:
    """The ASGI app serving ``plane``; its lifespan loads models and flushes logs."""
    config = plane.config
    keys = {secret.encode(): name for name, secret in config.api_keys.items()}

    def authorise(request: Request) -> None:
        if not keys:
            return
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else request.headers.get(
            "x-api-key", "")
        # as bytes: compare_digest raises TypeError on non-ASCII str; headers arrive
        # decoded as latin-1, so this gives back the bytes the client sent
        presented = token.encode("latin-1")
        if not any(hmac.compare_digest(presented, secret) for secret in keys):
            raise UnauthorizedError("missing or invalid API key (Authorization: Bearer KEY)")

    def guarded(handler: Handler, *, auth: bool = True) -> Handler:
        async def run(request: Request) -> Response:
            try:
                if auth:
                    authorise(request)
                return await handler(request)
            except Exception as exc:
                return _error(exc)
        return run

    async def observe(endpoint: Endpoint, request: Request, protocol: str,
                      call: Callable[[], Awaitable[tuple[Served, bytes]]]) -> Response:
        status = "200"
        current = endpoint.current
        model = current.model_name if current else ""
        version = str(current.version) if current else ""
        timer_start = time.perf_counter()
        try:
            served, body = await call()
            model, version = served.deployment.model_name, str(served.deployment.version)
            return _json(body, headers={"X-Request-Id": served.request_id})
        except Exception as exc:
            response = _error(exc)
            status = str(response.status_code)
            return response
        finally:
            counter, histogram = children(endpoint.name, model, version, status, protocol)
            counter.inc()
            histogram.observe(time.perf_counter() - timer_start)

    child_cache: dict[tuple[str, ...], tuple[Any, Any]] = {}

    def children(endpoint: str, model: str, version: str, status: str,
                 protocol: str) -> tuple[Any, Any]:
        # labels() takes a lock and builds a key on every call; the hot path reuses children
        key = (endpoint, model, version, status, protocol)
        found = child_cache.get(key)
        if found is None:
            labels = {"endpoint": endpoint, "model": model, "version": version,
                      "status": status}
            found = (plane.metrics.requests.labels(protocol=protocol, **labels),
                     plane.metrics.latency.labels(**labels))
            child_cache[key] = found
        return found

    # -- simple JSON API ---------------------------------------------------------------------

    async def predict(request: Request) -> Response:
        endpoint = plane.endpoint(request.path_params["name"])
        request_id = request.headers.get("x-request-id") or new_request_id()

        async def call() -> tuple[Served, bytes]:
            payload = codec.loads(await _body(request, config.max_body_bytes))
            deployment = endpoint.deployment()
            model = deployment.model
            columns = _prepare(model, codec.simple_request(payload),
                               endpoint.config.unknown_categories)
            served = await plane.predict(endpoint, columns, request_id=request_id,
                                         routing_key=request.headers.get("x-routing-key"))
            d = served.deployment
            return served, codec.simple_response(served.outputs, d.model.signature,
                                                 model=d.model_name, version=d.version,
                                                 request_id=served.request_id)

        return await observe(endpoint, request, "json", call)

    async def feedback(request: Request) -> Response:
        endpoint = plane.endpoint(request.path_params["name"])
        payload = codec.loads(await _body(request, config.max_body_bytes))
        items = _feedback_items(payload)
        accepted = plane.feedback(endpoint, items)
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
        ok = plane.ready
        return _json(codec.dumps({"ready": ok}), 200 if ok else 503)

    async def server_metadata(request: Request) -> Response:
        return _json(codec.dumps({"name": "shipyard", "version": __version__,
                                  "extensions": ["binary_tensor_data"]}))

    async def model_metadata(request: Request) -> Response:
        endpoint = plane.endpoint(request.path_params["name"])
        d = endpoint.deployment(_version(request))
        body = codec.model_metadata(endpoint.name, [str(d.version)], d.model.signature,
                                    f"shipyard_{d.model.runtime.name}")
        return _json(codec.dumps(body))

    async def model_ready(request: Request) -> Response:
        endpoint = plane.endpoint(request.path_params["name"])
        version = _version(request)
        current = endpoint.current
        ok = current is not None and (version is None or version == current.version)
        return _json(codec.dumps({"name": endpoint.name, "ready": ok}), 200 if ok else 400)

    async def infer(request: Request) -> Response:
        endpoint = plane.endpoint(request.path_params["name"])
        version = _version(request)

        async def call() -> tuple[Served, bytes]:
            raw = await _body(request, config.max_body_bytes)
            header_len = request.headers.get("inference-header-content-length")
            if header_len is not None:
                if not _is_digits(header_len) or int(header_len) > len(raw):
                    raise codec.BadRequestError("Inference-Header-Content-Length does not fit "
                                           "the body")
                header = codec.loads(raw[:int(header_len)])
                binary = raw[int(header_len):]
            else:
                header, binary = codec.loads(raw), b""
            deployment = endpoint.deployment(version)
            columns, requested = codec.oip_request(header, binary, deployment.model.signature)
            prepared = _prepare(deployment.model, columns, endpoint.config.unknown_categories)
            rid = header.get("id") if isinstance(header.get("id"), str) else None
            served = await plane.predict(endpoint, prepared, request_id=rid or
                                         request.headers.get("x-request-id"), version=version)
            d = served.deployment
            return served, codec.oip_response(served.outputs, model=endpoint.name,
                                              version=d.version, request_id=served.request_id,
                                              requested=requested)

        return await observe(endpoint, request, "oip", call)

    # -- operations ----------------------------------------------------------------------------

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(plane.metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)

    async def openapi(request: Request) -> Response:
        return _json(codec.dumps(openapi_document(sorted(plane.endpoints))))

    async def docs(request: Request) -> Response:
        return HTMLResponse(DOCS_HTML)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await plane.start()
        _tune_gc()
        try:
            yield
        finally:
            await plane.close()

    v2 = "/v2/models/{name}"
    routes = [
        Route("/v1/endpoints", guarded(list_endpoints), methods=["GET"]),
        Route("/v1/endpoints/{name}/predict", guarded(predict), methods=["POST"]),
        Route("/v1/endpoints/{name}/feedback", guarded(feedback), methods=["POST"]),
        Route("/v2/health/live", guarded(live, auth=False), methods=["GET"]),
        Route("/v2/health/ready", guarded(ready, auth=False), methods=["GET"]),
        Route("/v2", guarded(server_metadata), methods=["GET"]),
        Route(v2, guarded(model_metadata), methods=["GET"]),
        Route(v2 + "/versions/{version}", guarded(model_metadata), methods=["GET"]),
        Route(v2 + "/ready", guarded(model_ready), methods=["GET"]),
        Route(v2 + "/versions/{version}/ready", guarded(model_ready), methods=["GET"]),
        Route(v2 + "/infer", guarded(infer), methods=["POST"]),
        Route(v2 + "/versions/{version}/infer", guarded(infer), methods=["POST"]),
        Route("/metrics", guarded(metrics, auth=False), methods=["GET"]),
        Route("/openapi.json", guarded(openapi, auth=False), methods=["GET"]),
        Route("/docs", guarded(docs, auth=False), methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={404: _not_found, 405: _not_allowed})
    app.state.plane = plane
    return HotPaths(app, {"predict": guarded(predict), "infer": guarded(infer)})


class HotPaths:
    """Serves the two hot routes (JSON predict, OIP infer) straight from the ASGI scope and
    hands everything else to Starlette. Same handlers, minus the router and middleware
    stack, which is most of the per-request overhead for a fast model."""

    def __init__(self, app: Starlette, handlers: dict[str, Handler]) -> None:
        self.app = app
        self.state = app.state
        self.router = app.router
        self.routes = app.routes
        self.handlers = handlers

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = _hot_route(scope["path"])
            if match is not None:
                kind, params = match
                scope["path_params"] = params
                response = await self.handlers[kind](Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _hot_route(path: str) -> tuple[str, dict[str, str]] | None:
    parts = path.split("/")
    # /v1/endpoints/{name}/predict
    if len(parts) == 5 and parts[1] == "v1" and parts[2] == "endpoints" \
            and parts[4] == "predict" and parts[3]:
        return "predict", {"name": parts[3]}
    # /v2/models/{name}/infer and /v2/models/{name}/versions/{version}/infer
    if parts[-1] == "infer" and len(parts) in (5, 7) and parts[1] == "v2" \
            and parts[2] == "models" and parts[3]:
        if len(parts) == 5:
            return "infer", {"name": parts[3]}
        if parts[4] == "versions" and parts[5]:
            return "infer", {"name": parts[3], "version": parts[5]}
    return None


async def _not_found(request: Request, exc: Exception) -> Response:
    return _json(codec.error_body(f"no route {request.method} {request.url.path}"), 404)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return _json(codec.error_body(f"method {request.method} not allowed on "
                                  f"{request.url.path}"), 405)


def _prepare(model: LoadedModel, data: Any, unknown: UnknownCategories) -> Columns:
    """``model.prepare``; values numpy cannot hold as columns at all (ragged nested lists
    such as ``{"a": [1, [2, 3]]}``) are a bad request, not an internal error."""
    try:
        return model.prepare(data, unknown_categories=unknown)
    except ValueError as exc:
        raise codec.BadRequestError(f"the input values do not form columns: {exc}") from None


def _tune_gc() -> None:
    """Serving allocates many short-lived objects per request; with CPython's default
    gen-0 threshold (700) the collector ran for about a quarter of the GIL time under load.
    Freeze what start-up built (models, modules) so collections skip it, and collect the
    young generation less often."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(50_000, gen1, gen2)
    # the log writer and inference threads hold the GIL for up to the switch interval at a
    # time; a shorter one keeps the event loop's latency tail down
    sys.setswitchinterval(0.001)


def _feedback_items(payload: Any) -> list[tuple[str, list[Any]]]:
    """``{"request_id", "label" | "labels"}`` or ``{"feedback": [...those...]}``."""
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
        if ("label" in entry) == ("labels" in entry):
            raise codec.BadRequestError(f"feedback[{i}] needs exactly one of 'label' or 'labels'")
        labels = entry["labels"] if "labels" in entry else [entry["label"]]
        if not isinstance(labels, list) or not labels or not all(
                v is None or isinstance(v, (str, int, float, bool)) for v in labels):
            raise codec.BadRequestError(f"feedback[{i}]: labels must be a non-empty list of "
                                   "numbers, strings, booleans or nulls")
        items.append((entry["request_id"], labels))
    return items
