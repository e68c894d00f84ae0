"""The two hot routes, JSON predict and OIP infer, served as raw ASGI.

Everything else goes to the Starlette app. These two skip the router, the middleware stack
and Starlette's Request/Response objects: for a fast model that machinery was most of the
per-request CPU. They answer exactly as the Starlette routes would (same bodies, statuses
and headers; errors through ``http_errors.error_parts``).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.types import Receive

from shipyard.defences import OutputPolicy, defend
from shipyard.errors import NotFoundError, ServingError
from shipyard.protocol import codec
from shipyard.protocol.http_errors import ClientGoneError, RawHeaders, error_parts
from shipyard.routing import KeySpec
from shipyard.server.asgi import (
    MAX_DIGITS,
    Headers,
    header_map,
    is_digits,
    read_body,
)
from shipyard.server.forwarded import ForwardedClient
from shipyard.service.batch_calls import RawServed
from shipyard.service.dataplane import DataPlane, Served
from shipyard.service.deployment import Deployment
from shipyard.service.keyring import KeyRing
from shipyard.service.rate_limiter import RateLimiter
from shipyard.service.request_ids import new_request_id
from shipyard.service.routes import Endpoint, Pick
from shipyard.service.routes import routing_key as routing_key_of
from shipyard.types import Columns

Answer = tuple[int, RawHeaders, bytes]
ROUTE_CACHE = 1024  # hot-route paths remembered (matches only: endpoint names are few)
JSON_TYPE = (b"content-type", b"application/json")


class RequestMetrics:
    """Counts and times each hot-route request (``ServingMetrics.requests``: a plain
    per-label-set list update, no prometheus_client lock per value)."""

    def __init__(self, plane: DataPlane) -> None:
        self._stats = plane.metrics.requests

    def observe(self, endpoint: str, model: str, version: str, status: str, protocol: str,
                seconds: float) -> None:
        self._stats.observe((endpoint, model, version, status, protocol), seconds)


class HotPaths:
    """The ASGI app ``create_app`` returns: hot routes here, the rest to ``app``."""

    def __init__(self, app: Starlette, plane: DataPlane, keys: KeyRing,
                 metrics: RequestMetrics) -> None:
        self.app: Any = app  # the other routes (run.py wraps them in proxy headers)
        self.state = app.state
        self.router = app.router
        self.routes = app.routes
        self.plane = plane
        self.keys = keys
        self.metrics = metrics
        self.limit = plane.config.max_body_bytes
        self.read_timeout_s = plane.config.read_timeout_s  # connections.DeadlineHttpProtocol
        # a ``client`` routing key behind a trusted proxy (run.py sets it; see forwarded.py)
        self.forwarded: ForwardedClient | None = None
        self._routes: dict[str, tuple[str, str, str | None]] = {}  # path -> hot_route(path)
        self.limiter: RateLimiter | None = None  # the rate limits (create_app sets them)
        # what answers of in-process models show (raw answers: the inference process's job)
        self._shown = {name: ep.config.output_policy for name, ep in plane.endpoints.items()
                       if ep.config.output_policy.active}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            match = self._routes.get(path)
            if match is None and (match := hot_route(path)) is not None \
                    and len(self._routes) < ROUTE_CACHE:
                self._routes[path] = match
            if match is not None:
                try:
                    status, headers, body = await self.answer(scope, receive, *match)
                except ClientGoneError:
                    return  # nobody to answer; nothing was predicted or logged
                headers.append((b"content-length", b"%d" % len(body)))
                await send({"type": "http.response.start", "status": status,
                            "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    async def _client(self, scope: Any, spec: KeySpec) -> Any:
        """The request's client address as a ``client`` key spec reads it: through the
        trusted proxy's X-Forwarded-For when there is one (only for such specs)."""
        if spec.source != "client" or self.forwarded is None:
            return scope.get("client")
        return await self.forwarded(scope)

    async def answer(self, scope: Any, receive: Receive, kind: str, name: str,
                      version: str | None) -> Answer:
        """One hot-route request: its answer, counted and timed once the endpoint is known
        (an unknown endpoint, a bad key or a bad version are answered but not counted).
        A routed request answered with an error leaves an error record in the log."""
        started = time.perf_counter()
        headers = header_map(scope["headers"])
        try:
            # the key's name (None: no keys) is logged with the request, per key
            key_name = self.keys.authorize(headers, "predict", name)
            if (given := headers.get(b"x-request-id")) is not None:  # echoed and logged
                codec.check_request_id(given, "X-Request-Id")
            endpoint = self.plane.endpoint(name)
            wanted = None if version is None else parse_version(version)
        except Exception as exc:
            return _error(exc)
        try:
            if self.limiter is not None:  # 429 before the body is read
                await self.rate_limit(endpoint.name, headers, scope, key_name)
            if kind == "predict":
                routed = await self._predict(endpoint, headers, scope, receive, key_name)
            else:
                routed = await self._infer(endpoint, wanted, headers, scope, receive, key_name)
            pick, answer = routed.pick, routed.answer
        except ClientGoneError:
            raise
        except _RoutedError as exc:
            routed, answer = exc.routed, _error(exc.error)
            pick = routed.pick
        except Exception as exc:
            routed, pick, answer = None, None, _error(exc)
        deployment = endpoint.current if pick is None else pick.deployment
        model, version_label = deployment.labels if deployment is not None else ("", "")
        status = answer[0]
        seconds = time.perf_counter() - started
        if status != 200 and routed is not None:
            self.plane.failed(endpoint, routed.pick, routed.request_id, routed.key, status,
                              seconds * 1000.0)
        self.metrics.observe(endpoint.name, model, version_label,
                             "200" if status == 200 else str(status),
                             "json" if kind == "predict" else "oip", seconds)
        return answer

    async def rate_limit(self, endpoint: str, headers: Headers, scope: Any,
                         key: str | None) -> None:
        """Raise ``RateLimitedError`` when a rate limit refuses this request: by its API
        key's name (``key``, as the key check found it), or without one its client address
        (behind a trusted proxy, the one the proxy names)."""
        limiter = self.limiter
        if limiter is None or not limiter.limits(endpoint):
            return
        client = None
        if key is None:
            peer = await self.forwarded(scope) if self.forwarded is not None \
                and b"x-forwarded-for" in headers else scope.get("client")
            client = None if not peer else str(peer[0])
        await limiter.check(endpoint, key, client)

    def _shown_outputs(self, endpoint: Endpoint, served: Served) -> Columns:
        """An in-process model's outputs as the endpoint's policy lets the answer show
        them (the log has the true ones)."""
        policy: OutputPolicy | None = self._shown.get(endpoint.name)
        if policy is None:
            return served.outputs
        return defend(served.outputs, policy, self.plane.builder.output_secret)

    async def _predict(self, endpoint: Endpoint, headers: Headers, scope: Any,
                       receive: Receive, key_name: str | None) -> Routed:
        raw_id = headers.get(b"x-request-id")
        request_id = raw_id.decode("latin-1") if raw_id else new_request_id()
        routing = headers.get(b"x-routing-key")
        routing_key = None if routing is None else routing.decode("latin-1")
        raw = await read_body(receive, headers.get(b"content-length"), self.limit)
        table = endpoint.routes()
        pick, payload = table.fixed, None
        if pick is None:  # the policy splits traffic: by the key its spec reads
            spec = table.key
            payload = codec.loads(raw) if table.needs_body else None
            routing_key = None if spec is None else routing_key_of(
                spec, headers, await self._client(scope, spec), payload)
            pick = table.pick(routing_key)
        routed = Routed(pick, request_id, routing_key)
        try:
            deployment = pick.deployment
            if deployment.raw is not None:  # the inference process parses, validates, answers
                answered = await self.plane.predict_raw(endpoint, pick, raw,
                                                        request_id=request_id,
                                                        routing_key=routing_key,
                                                        key_name=key_name)
                routed.answer = _answered(answered, request_id, deployment)
                return routed
            if payload is None:
                payload = codec.loads(raw)
            # strict JSON holds no NaN: a float array parsed from it needs no NaN scan
            request = codec.simple_request(payload)
            unknown = endpoint.config.unknown_categories
            columns = codec.prepare(deployment.model, request, unknown, finite=True)
            served = await self.plane.predict(
                endpoint, columns, request_id=request_id, routing_key=routing_key, pick=pick,
                copy=_copy(pick, columns, request, unknown, finite=True), key_name=key_name)
        except ClientGoneError:
            raise
        except Exception as exc:
            raise _RoutedError(exc, routed) from exc
        routed.answer = _ok(served.request_id, codec.simple_response(
            self._shown_outputs(endpoint, served), deployment.model.signature,
            model=deployment.model_name, version=deployment.version,
            request_id=served.request_id), deployment)
        return routed

    async def _infer(self, endpoint: Endpoint, wanted: int | None, headers: Headers,
                     scope: Any, receive: Receive, key_name: str | None) -> Routed:
        raw = await read_body(receive, headers.get(b"content-length"), self.limit)
        cut = _header_cut(len(raw), headers.get(b"inference-header-content-length"))
        table = endpoint.routes()
        raw_id = headers.get(b"x-request-id")
        given = raw_id.decode("latin-1") if raw_id else None
        parsed: tuple[Any, bytes] | None = None
        routing_key = None
        fixed = table.fixed
        if wanted is not None:  # the caller named the version: no policy applies
            pick = table.pinned(wanted, endpoint.name)
        elif fixed is not None:
            pick = fixed
        else:  # the policy splits traffic: by the key its spec reads
            spec = table.key
            if table.needs_body:
                parsed = codec.split_binary(raw, cut)
            routing_key = None if spec is None else routing_key_of(
                spec, headers, await self._client(scope, spec),
                None if parsed is None else parsed[0])
            pick = table.pick(routing_key)
        deployment = pick.deployment
        if deployment.raw is not None:  # the inference process parses, validates, answers
            routed = Routed(pick, given or new_request_id(), routing_key)
            try:
                answered = await self.plane.predict_raw(
                    endpoint, pick, raw, request_id=routed.request_id,
                    routing_key=routing_key, infer=True, header_cut=cut, key_name=key_name)
            except Exception as exc:
                raise _RoutedError(exc, routed) from exc
            routed.request_id = answered.request_id or routed.request_id
            routed.answer = _answered(answered, answered.request_id, deployment)
            return routed
        header, binary = parsed or codec.split_binary(raw, cut)
        routed = Routed(pick, codec.oip_id(header, given) or new_request_id(), routing_key)
        try:
            columns, requested = codec.oip_request(header, binary, deployment.model.signature)
            unknown = endpoint.config.unknown_categories
            prepared = codec.prepare(deployment.model, columns, unknown)
            served = await self.plane.predict(
                endpoint, prepared, request_id=routed.request_id, routing_key=routing_key,
                pick=pick, copy=_copy(pick, prepared, columns, unknown), key_name=key_name)
        except Exception as exc:
            raise _RoutedError(exc, routed) from exc
        routed.answer = _ok(served.request_id, codec.oip_response(
            self._shown_outputs(endpoint, served), model=endpoint.name, version=deployment.version,
            request_id=served.request_id, requested=requested), deployment)
        return routed


class Routed:
    """A request once routed: where it went, its id and routing key, and its answer."""

    __slots__ = ("answer", "key", "pick", "request_id")

    def __init__(self, pick: Pick, request_id: str, key: str | None) -> None:
        self.pick = pick
        self.request_id = request_id
        self.key = key
        self.answer: Answer = _NO_ANSWER


class _RoutedError(ServingError):
    """A routed request failed with ``error`` (its answer is that error's)."""

    def __init__(self, error: Exception, routed: Routed) -> None:
        super().__init__(str(error))
        self.error = error
        self.routed = routed


_NO_ANSWER: Answer = (500, [], b"")


def _copy(pick: Pick, prepared: Columns, data: Any, unknown: Any, *,
          finite: bool = False) -> Columns | None:
    """The request's columns for the shadow's model: ``prepared`` (the primary's) when both
    take the same inputs, else ``data`` prepared for it (None: no shadow, or the request
    does not fit it: the copy is then not sent, and counted)."""
    shadow = pick.shadow
    if shadow is None:
        return None
    if shadow.model.signature == pick.deployment.model.signature:
        return prepared
    try:
        return codec.prepare(shadow.model, data, unknown, finite=finite)
    except Exception:
        return None


def _answered(answered: RawServed, request_id: str | None, deployment: Deployment) -> Answer:
    """The inference process's answer to a raw request: its error answer (400, 422, 500)
    as it is, a 200 with ``request_id`` (an infer answer's own id) in X-Request-Id."""
    if answered.status != 200:
        return answered.status, [JSON_TYPE], answered.body
    assert request_id is not None  # a simple request's id is known; an infer answer names its
    return _ok(request_id, answered.body, deployment)


def _header_cut(body_size: int, header_length: bytes | None) -> int | None:
    """Where an infer request's JSON header ends (``Inference-Header-Content-Length``, the
    binary-data extension), or None without that header (the whole body is JSON)."""
    if header_length is None:
        return None
    # past MAX_DIGITS no length fits a body (and int() refuses 4,300+ digits)
    if not is_digits(header_length) or len(header_length) > MAX_DIGITS \
            or int(header_length) > body_size:
        raise codec.BadRequestError("Inference-Header-Content-Length does not fit the body")
    return int(header_length)


def _ok(request_id: str, body: bytes, deployment: Deployment) -> Answer:
    return 200, [JSON_TYPE, (b"x-request-id", header_value(request_id)),
                 (b"x-model-version", deployment.header)], body


def header_value(request_id: str) -> bytes:
    """A request id as an X-Request-Id value: as it is when a header can carry it, else
    percent-encoded (an infer body's ``id`` may be any string: "снег", or one with a line
    break, must not turn a good request into a 500 or a dropped connection)."""
    if request_id.isprintable():
        try:
            return request_id.encode("latin-1")
        except UnicodeEncodeError:
            pass
    return quote(request_id).encode("ascii")


def _error(exc: Exception) -> Answer:
    status, body, extra = error_parts(exc)
    return status, [JSON_TYPE, *extra], body


def parse_version(raw: str | None) -> int | None:
    """The ``{version}`` of a route as a positive integer (404 if it is not one)."""
    if raw is None:
        return None
    if not is_digits(raw) or len(raw) > MAX_DIGITS or int(raw) < 1:
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        raise NotFoundError(f"version {shown!r} is not a positive integer this server "
                            "can serve")
    return int(raw)


def hot_route(path: str) -> tuple[str, str, str | None] | None:
    """``(kind, endpoint, version)`` for the hot routes' paths, else None."""
    parts = path.split("/")
    # /v1/endpoints/{name}/predict
    if len(parts) == 5 and parts[1] == "v1" and parts[2] == "endpoints" \
            and parts[4] == "predict" and parts[3]:
        return "predict", parts[3], None
    # /v2/models/{name}/infer and /v2/models/{name}/versions/{version}/infer
    if parts[-1] == "infer" and len(parts) in (5, 7) and parts[1] == "v2" \
            and parts[2] == "models" and parts[3]:
        if len(parts) == 5:
            return "infer", parts[3], None
        if parts[4] == "versions" and parts[5]:
            return "infer", parts[3], parts[5]
    return None

