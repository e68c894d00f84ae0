"""Who may see the dashboard and who may act through it.

Seeing needs any valid key (an API key or an admin key) when the server has keys, presented
as ``Authorization: Bearer KEY`` / ``X-API-Key`` or, from a browser, by the key form once
(``/ui/login`` sets an HttpOnly, SameSite=Strict cookie for ``/ui`` holding a token that
stands for the key: its name, an expiry and an HMAC under the key, never the key itself).
Acting (promote, abort, rollback, switch, alias moves) needs an admin key typed into the
action's confirmation form, and is audited as the admin API audits it: actor ``api:<key name>``.
With no keys configured at all, like the rest of the server, both are open."""

from __future__ import annotations

from typing import Protocol

from starlette.requests import Request

from shipyard.protocol.http_errors import ForbiddenError, UnauthorizedError

COOKIE = "shipyard_ui_key"


class KeyCheck(Protocol):
    """What the server's ``ApiKeys`` answers (``server/asgi.py``)."""

    TOKEN_S: int  # how long a token stays valid

    def __bool__(self) -> bool: ...
    def name_of(self, headers: dict[bytes, bytes]) -> str | None: ...
    def token(self, headers: dict[bytes, bytes]) -> str | None: ...
    def redeem(self, token: str) -> bytes | None: ...


class Access:
    """``keys``: the keys that open the server's routes (admin keys among them);
    ``admin``: the admin keys."""

    def __init__(self, keys: KeyCheck, admin: KeyCheck) -> None:
        self.keys = keys
        self.admin = admin

    @property
    def open(self) -> bool:
        return not self.keys and not self.admin

    def presented(self, request: Request) -> dict[bytes, bytes]:
        """The request's key headers; when it has none, the key its cookie's token stands
        for, as ``X-API-Key`` (an expired or forged token: none)."""
        headers = {k: v for k, v in request.scope["headers"]
                   if k in (b"authorization", b"x-api-key")}
        cookie = request.cookies.get(COOKIE)
        if not headers and cookie:
            key = self.keys.redeem(cookie) or self.admin.redeem(cookie)
            if key is not None:
                headers[b"x-api-key"] = key
        return headers

    def token(self, key: str) -> str | None:
        """The sign-in cookie's token for ``key`` (None: not a valid key)."""
        headers = {b"x-api-key": key.encode("utf-8", "replace")}
        return self.keys.token(headers) or self.admin.token(headers)

    def valid(self, headers: dict[bytes, bytes]) -> bool:
        return self.keys.name_of(headers) is not None or self.admin.name_of(headers) is not None

    def may_view(self, request: Request) -> bool:
        return not self.keys or self.valid(self.presented(request))

    def actor(self, admin_key: str) -> str | None:
        """The actor of an action confirmed with ``admin_key``: ``api:<name>``; None when no
        keys are configured (the registry's own actor). 401 for an unknown key, 403 for a
        valid key that is not an admin key."""
        headers = {b"x-api-key": admin_key.encode("utf-8", "replace")}
        name = self.admin.name_of(headers) if admin_key else None
        if name is not None:
            return f"api:{name}"
        if self.open:
            return None
        if admin_key and self.keys.name_of(headers) is not None:
            raise ForbiddenError("this action needs an admin key (admin_api_keys); the key "
                                 "given is not one")
        raise UnauthorizedError("this action needs a valid admin key")
