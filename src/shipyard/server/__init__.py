"""The HTTP face: ASGI app (simple JSON + Open Inference Protocol), run with uvicorn.

``create_app`` is imported on first use: importing this package alone loads none of the
app's stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.server.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from shipyard.server.app import create_app

        return create_app
    raise AttributeError(f"module 'shipyard.server' has no attribute {name!r}")
