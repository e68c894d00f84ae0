"""Raw ASGI request pieces shared by every route: headers and the body (API keys:
``service/keyring.py``)."""

from __future__ import annotations

from starlette.types import Receive

from shipyard.protocol.http_errors import ClientGoneError, PayloadTooLargeError

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
