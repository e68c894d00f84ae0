"""The HTTP face: ASGI app (simple JSON + Open Inference Protocol), run with uvicorn."""

from shipyard.server.app import create_app

__all__ = ["create_app"]
