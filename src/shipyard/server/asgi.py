"""Raw ASGI request pieces shared by every route: headers, the body, the API-key check."""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping

from starlette.types import Receive

from shipyard.protocol.http_errors import ClientGoneError, PayloadTooLargeError, UnauthorizedError

Headers = dict[bytes, bytes]


def header_map(raw: list[tuple[bytes, bytes]]) -> Headers:
    """Lower-case names (as servers deliver them) to values; the first of a repeated header
    wins, as with Starlette's ``Headers.get``."""
    return dict(reversed(raw)) if len(raw) > 1 else dict(raw)


MAX_DIGITS = 18  # the most digits a number in a request may have: any 18 fit an int64


def is_digits(text: str | bytes) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts "²", which ``int()`` refuses."""
    return text.isascii() and text.isdigit()


async def read_body(receive: Receive, content_length: bytes | str | None, limit: int) -> bytes:
    """The whole request body, straight from ASGI ``receive``; 413 past ``limit`` bytes."""
    if content_length is not None and is_digits(content_length) and (
            len(content_length) > MAX_DIGITS or int(content_length) > limit):
        shown = content_length.decode() if isinstance(content_length, bytes) else content_length
        shown = shown if len(shown) <= MAX_DIGITS else "more than 10**18"
        raise PayloadTooLargeError(f"request body of {shown} bytes is over the "
                                   f"{limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body is over the {limit}-byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class ApiKeys:
    """The configured API keys; a request presents one as ``Authorization: Bearer KEY`` or
    ``X-API-Key: KEY``. With no keys configured every request passes."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        self._keys = [(name, secret.encode()) for name, secret in keys.items()]

    def __bool__(self) -> bool:
        return bool(self._keys)

    def allows(self, headers: Headers) -> bool:
        """Whether ``check`` passes (no keys configured, or a valid key presented)."""
        return not self._keys or self.name_of(headers) is not None

    def check(self, headers: Headers) -> None:
        if not self.allows(headers):
            raise UnauthorizedError("missing or invalid API key (Authorization: Bearer KEY)")

    def name_of(self, headers: Headers) -> str | None:
        """The name of the configured key the request presents, or None."""
        auth = headers.get(b"authorization", b"")
        # as bytes, the way the client sent them: compare_digest refuses non-ASCII str
        presented = auth[7:] if auth[:7].lower() == b"bearer " else headers.get(b"x-api-key",
                                                                                 b"")
        found = None
        for name, secret in self._keys:  # every key compared: the time says nothing
            if hmac.compare_digest(presented, secret):
                found = name
        return found

    # a browser's stand-in for a key (the dashboard's sign-in cookie): the key's name, an
    # expiry and an HMAC of both under the key, so the key itself never leaves the server
    # again; it stops working when it expires or the key is removed
    TOKEN_S = 12 * 3600

    def token(self, headers: Headers, now: float | None = None) -> str | None:
        """A token for the key the request presents (None: it presents none of these)."""
        name = self.name_of(headers)
        if name is None:
            return None
        secret = next(s for n, s in self._keys if n == name)
        expires = int((time.time() if now is None else now) + self.TOKEN_S)
        return f"{expires}.{_mac(secret, name, expires)}.{name}"

    def redeem(self, token: str, now: float | None = None) -> bytes | None:
        """The key a valid, unexpired ``token`` stands for, else None."""
        expires, _, rest = token.partition(".")
        mac, _, name = rest.partition(".")
        if not expires.isdigit() or len(expires) > 12 \
                or int(expires) < (time.time() if now is None else now):
            return None
        found = None
        for key_name, secret in self._keys:
            if key_name == name and hmac.compare_digest(
                    _mac(secret, name, int(expires)).encode(), mac.encode("utf-8", "replace")):
                found = secret
        return found


def _mac(secret: bytes, name: str, expires: int) -> str:
    return hmac.new(secret, f"shipyard-ui\0{name}\0{expires}".encode("utf-8", "surrogatepass"),
                    "sha256").hexdigest()
