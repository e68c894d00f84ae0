"""The dashboard's routes: a Starlette app that ``shipyard serve`` mounts at ``/ui`` (with its
data plane: health, Try it, feedback) and ``shipyard ui`` serves alone (registry and log
directory only). Pages are built in a worker thread (registry and file reads), never on the
event loop; every answer carries a Content-Security-Policy that allows no script at all."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from html import escape
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from shipyard.errors import NotFoundError, ShipyardError
from shipyard.protocol.codec import BadRequestError
from shipyard.protocol.http_errors import UnauthorizedError, error_parts
from shipyard.registry import Registry
from shipyard.service.feedback import FeedbackItem
from shipyard.ui import actions
from shipyard.ui.access import COOKIE, Access
from shipyard.ui.endpoint_page import DEFAULT_WINDOWS, MAX_WINDOWS, endpoint_page
from shipyard.ui.layout import CSS, POLICY, PREFIX, page, url
from shipyard.ui.models_page import model_page, models_page
from shipyard.ui.overview import overview_rows, render_overview
from shipyard.ui.rollouts_page import rollout_page, rollouts_page
from shipyard.ui.source import DashboardSource
from shipyard.ui.tryit import (
    Predict,
    answer_html,
    feedback_label,
    form_page,
    parse_form,
    served_signature,
)

Handler = Callable[[Request], Awaitable[Response]]
HEADERS = {"content-security-policy": POLICY, "x-content-type-options": "nosniff",
           "referrer-policy": "same-origin", "cache-control": "no-store"}
MAX_FORM_FIELDS = 2000
MAX_FORM_BYTES = 1 << 20


def _html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers=HEADERS)


def _login_page(notice: str = "") -> str:
    return page("Sign in", '<form class="card" method="post" action="/ui/login">'
                '<div class="field"><label for="key">API key</label>'
                '<input id="key" name="key" type="password" autocomplete="off" required>'
                '</div><button type="submit">Open the dashboard</button></form>'
                "<p class=\"meta\">Any valid key shows the dashboard; changes need an admin "
                "key, asked for on each change.</p>", notice=notice)


def create_dashboard(source: DashboardSource, access: Access, *,
                     predict: Predict | None = None) -> Starlette:
    """The dashboard app; mount it at ``/ui`` (its links start with it)."""

    def registry() -> Registry:
        found = source.registry
        if found is None:
            raise NotFoundError("this dashboard has no registry (shipyard ui --registry URL)")
        return found

    def view(build: Callable[[Request], Any], *, login: bool = True) -> Handler:
        async def run(request: Request) -> Response:
            try:
                if login and not access.may_view(request):  # a browser: to the key form
                    return RedirectResponse(f"{PREFIX}/login", 303)
                result = await run_in_threadpool(build, request)
                return result if isinstance(result, Response) else _html(result)
            except Exception as exc:
                return _failure(exc)
        return run

    def post(handler: Handler) -> Handler:
        """A form POST: the viewer's key checked, errors shown as a page."""
        async def run(request: Request) -> Response:
            try:
                if not access.may_view(request):
                    return _html(_login_page(), 401)
                return await handler(request)
            except Exception as exc:
                return _failure(exc)
        return run

    def _failure(exc: Exception) -> Response:
        status, _, _ = error_parts(exc)
        if not isinstance(exc, ShipyardError):
            status, text = 500, "internal error (see the server log)"
            import logging
            logging.getLogger(__name__).exception("dashboard page failed")
        else:
            text = str(exc)
        return _html(page(f"HTTP {status}", f"<p><a href=\"{PREFIX}/\">Overview</a></p>",
                          notice=text), status)

    async def form_of(request: Request) -> dict[str, str]:
        """An urlencoded form (what the pages post), the first value of each field."""
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise BadRequestError("post the page's form (application/x-www-form-urlencoded)")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise BadRequestError(f"a form over {MAX_FORM_BYTES} bytes")
        fields: dict[str, str] = {}
        for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True,
                                    max_num_fields=MAX_FORM_FIELDS):
            fields.setdefault(key, value)
        return fields

    # -- pages -------------------------------------------------------------------------------

    def overview(request: Request) -> str:
        rows, problem = overview_rows(source)
        return render_overview(rows, served=source.plane is not None, notice=problem)

    def endpoint(request: Request) -> str:
        name = source.check(request.path_params["name"])
        text = request.query_params.get("last", str(DEFAULT_WINDOWS))
        last = int(text) if text.isascii() and text.isdigit() else DEFAULT_WINDOWS
        return endpoint_page(source, name, max(1, min(last, MAX_WINDOWS)))

    def feature(request: Request) -> str:
        name = source.check(request.path_params["name"])
        query = request.query_params
        since, until = _float(query.get("since")), _float(query.get("until"))
        if query.get("window"):
            start, _, end = query["window"].partition("-")
            since, until = _float(start), _float(end)
        from shipyard.ui.feature_page import feature_page  # the monitoring stack, on demand

        return feature_page(source, name, request.path_params["feature"], since, until)

    def models(request: Request) -> str:
        return models_page(registry())

    def model(request: Request) -> str:
        return model_page(registry(), request.path_params["name"])

    def rollouts(request: Request) -> str:
        return rollouts_page(registry())

    def rollout(request: Request) -> str:
        return rollout_page(registry(), request.path_params["endpoint"])

    def confirm_action(request: Request) -> str:
        verb = actions.check_verb(request.path_params["verb"])
        endpoint = request.path_params["endpoint"]
        from shipyard.service.deployment_status import deployment_status

        return actions.confirm_rollout_action(endpoint, verb,
                                              deployment_status(registry(), endpoint))

    def confirm_alias(request: Request) -> str:
        alias, version = actions.alias_form(dict(request.query_params))
        return actions.confirm_alias_move(registry(), request.path_params["name"], alias,
                                          version)

    # -- actions (admin key in the form) -----------------------------------------------------

    async def act(request: Request) -> Response:
        verb = actions.check_verb(request.path_params["verb"])
        endpoint = request.path_params["endpoint"]
        form = await form_of(request)
        actor = access.actor(form.get("admin_key", ""))
        actions.confirmed(form)

        def work() -> None:
            reg = registry()
            actions.run_rollout_action(reg if actor is None else reg.acting_as(actor),
                                       endpoint, verb, form)
        await run_in_threadpool(work)
        return RedirectResponse(url("rollouts", endpoint), 303)

    async def move_alias(request: Request) -> Response:
        name = request.path_params["name"]
        form = await form_of(request)
        actor = access.actor(form.get("admin_key", ""))
        actions.confirmed(form)
        alias, version = actions.alias_form(form)

        def work() -> None:
            reg = registry()
            (reg if actor is None else reg.acting_as(actor)).set_alias(name, alias,
                                                                        version)
        await run_in_threadpool(work)
        return RedirectResponse(url("models", name), 303)

    # -- try it --------------------------------------------------------------------------------

    def try_form(request: Request) -> str:
        name = source.check(request.path_params["name"])
        signature, example = served_signature(source.plane, name)
        return form_page(name, signature, example)

    async def try_predict(request: Request) -> Response:
        name = source.check(request.path_params["name"])
        signature, _ = served_signature(source.plane, name)
        form = await form_of(request)
        try:
            row = parse_form(signature, form)
        except ShipyardError as exc:
            return _html(form_page(name, signature, form, notice=str(exc)), 400)
        if predict is None:
            raise NotFoundError("Try it needs the model server's predict route")
        status, body = await predict(name, json.dumps({"instances": [row]}).encode(),
                                     access.presented(request))
        return _html(form_page(name, signature, row, answer=answer_html(
            name, status, body, signature.class_labels)))

    async def feedback(request: Request) -> Response:
        name = source.check(request.path_params["name"])
        access.require(request, "feedback", name)
        plane = source.plane
        signature, example = served_signature(plane, name)
        assert plane is not None  # served_signature refuses without one
        form = await form_of(request)
        request_id = form.get("request_id", "")
        label = feedback_label(signature, form.get("label", ""))
        accepted = await plane.feedback(plane.endpoint(name),
                                        [FeedbackItem(request_id, [label])])
        verdict = "accepted" if accepted else \
            "not accepted (an unknown or already labelled request)"
        note = f"Feedback for request {request_id}: label {label!r} {verdict}."
        return _html(form_page(name, signature, example, answer=(
            f'<p class="card" role="status" data-metric="feedback" '
            f'data-value="{accepted}">{escape(note)}</p>')))

    # -- sign in -------------------------------------------------------------------------------

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return _html(_login_page())
        form = await form_of(request)
        token = access.token(form.get("key", ""))
        if token is None:
            return _failure(UnauthorizedError("that key is not valid here"))
        answer = RedirectResponse(f"{PREFIX}/", 303)
        answer.set_cookie(COOKIE, token, max_age=access.keys.TOKEN_S, httponly=True,
                          samesite="strict", path=PREFIX)
        return answer

    async def style(request: Request) -> Response:
        return Response(CSS, media_type="text/css",
                        headers={"cache-control": "public, max-age=3600"})

    routes = [
        Route("/", view(overview), methods=["GET"]),
        Route("/style.css", style, methods=["GET"]),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/endpoints/{name}", view(endpoint), methods=["GET"]),
        Route("/endpoints/{name}/features/{feature}", view(feature), methods=["GET"]),
        Route("/endpoints/{name}/try", view(try_form), methods=["GET"]),
        Route("/endpoints/{name}/try", post(try_predict), methods=["POST"]),
        Route("/endpoints/{name}/feedback", post(feedback), methods=["POST"]),
        Route("/models", view(models), methods=["GET"]),
        Route("/models/{name}", view(model), methods=["GET"]),
        Route("/models/{name}/alias", view(confirm_alias), methods=["GET"]),
        Route("/models/{name}/alias", post(move_alias), methods=["POST"]),
        Route("/rollouts", view(rollouts), methods=["GET"]),
        Route("/rollouts/{endpoint}", view(rollout), methods=["GET"]),
        Route("/actions/{endpoint}/{verb}", view(confirm_action), methods=["GET"]),
        Route("/actions/{endpoint}/{verb}", post(act), methods=["POST"]),
    ]
    return Starlette(routes=routes)


def _float(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        raise NotFoundError(f"not a time in Unix seconds: {text!r}") from None
