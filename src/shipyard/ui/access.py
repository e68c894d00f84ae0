"""Who may see the dashboard and who may act through it.

Seeing needs a key with the ``read`` scope (serve.yaml's API keys have it; an admin key has
every scope) when the server has keys, presented as ``Authorization: Bearer KEY`` /
``X-API-Key`` or, from a browser, by the key form once (``/ui/login`` sets an HttpOnly,
SameSite=Strict cookie for ``/ui`` holding a token that stands for the key: its name, an
expiry and an HMAC under the key's hash, never the key itself; see ``service/keyring.py``).
Sending feedback needs the ``feedback`` scope. Acting (promote, abort, rollback, switch,
alias moves) needs an admin key typed into the action's confirmation form, and is audited as
the admin API audits it: actor ``api:<key name>``. With no keys configured at all, like the
rest of the server, all of it is open."""

from __future__ import annotations

from starlette.requests import Request

from shipyard.errors import RequestError
from shipyard.protocol.http_errors import ForbiddenError
from shipyard.service.keyring import TOKEN, KeyRing

COOKIE = "shipyard_ui_key"


class Access:
    """The server's keys, as the dashboard asks them."""

    def __init__(self, keys: KeyRing, *, open_view: bool = False) -> None:
        self.keys = keys
        self.open_view = open_view  # serve.yaml's open_routes names ui: seeing needs no key

    @property
    def open(self) -> bool:
        return not self.keys

    def presented(self, request: Request) -> dict[bytes, bytes]:
        """The request's key headers; when it has none, its cookie's token as ``X-API-Key``
        (the ring accepts a valid token wherever its key is accepted; anything else in the
        cookie, a raw key included, is dropped)."""
        headers = {k: v for k, v in request.scope["headers"]
                   if k in (b"authorization", b"x-api-key")}
        cookie = request.cookies.get(COOKIE)
        if not headers and cookie and cookie.isascii() and cookie.encode().startswith(TOKEN):
            headers[b"x-api-key"] = cookie.encode()
        return headers

    def token(self, key: str) -> str | None:
        """The sign-in cookie's token for ``key`` (None: not a valid key)."""
        return self.keys.token({b"x-api-key": key.encode("utf-8", "replace")})

    def allowed(self, request: Request, scope: str, endpoint: str | None = None) -> bool:
        try:
            self.require(request, scope, endpoint)
        except RequestError:
            return False
        return True

    def require(self, request: Request, scope: str, endpoint: str | None = None) -> None:
        """401 / 403 unless the request's key (or token) allows ``scope``."""
        self.keys.authorize(self.presented(request), scope, endpoint)

    def may_view(self, request: Request) -> bool:
        return self.open_view or self.allowed(request, "read")

    def actor(self, admin_key: str) -> str | None:
        """The actor of an action confirmed with ``admin_key``: ``api:<name>``; None when no
        keys are configured (the registry's own actor). 401 for an unknown key, 403 for a
        valid key that is not an admin key."""
        try:
            name = self.keys.authorize({b"x-api-key": admin_key.encode("utf-8", "replace")},
                                       "admin")
        except ForbiddenError as exc:
            raise ForbiddenError(f"this action needs an admin key: {exc}") from None
        return None if name is None else f"api:{name}"
