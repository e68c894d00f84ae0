"""The ``/docs`` page: Swagger UI served from the installed ``swagger-ui-py`` package.

Nothing the page needs comes from the internet: the HTML, Swagger UI's script and style
(read from the package once, then kept in memory), a start script and ``/openapi.json`` all
come from this server, and a Content-Security-Policy tells the browser to load nothing from
anywhere else (Swagger UI's online validator is turned off too). Without the package the
page is plain HTML pointing at ``/openapi.json``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

# the Swagger UI files the page loads, with their content types
ASSETS = {"swagger-ui.css": "text/css; charset=utf-8",
          "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
          "start.js": "text/javascript; charset=utf-8"}
START_JS = b"""window.onload = () => {
  window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui", deepLinking: true,
                               validatorUrl: null});
};
"""
# same origin only; inline style attributes (Swagger UI's React sets them) and data: images
POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
          "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
SWAGGER_HTML = b"""<!doctype html>
<html><head><title>shipyard API</title><meta charset="utf-8">
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head><body><div id="ui"></div>
<noscript>The API description is at <a href="/openapi.json">/openapi.json</a>.</noscript>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/start.js"></script>
</body></html>
"""
PLAIN_HTML = b"""<!doctype html>
<html><head><title>shipyard API</title><meta charset="utf-8"></head><body>
<p>The API description is at <a href="/openapi.json">/openapi.json</a>. Install
<code>swagger-ui-py</code> (in shipyard's <code>server</code> extra) to browse it here.</p>
</body></html>
"""


def swagger_static() -> Path | None:
    """The installed Swagger UI files (swagger-ui-py's ``static`` folder), found without
    importing the package (its framework handlers are not needed), or None."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


class DocsPage:
    """The page and its files, each read once."""

    def __init__(self, static: Path | None = None) -> None:
        self.static = static if static is not None else swagger_static()
        self._files: dict[str, bytes] = {"start.js": START_JS}

    @property
    def html(self) -> bytes:
        return SWAGGER_HTML if self.static is not None else PLAIN_HTML

    def asset(self, name: str) -> tuple[bytes, str] | None:
        """``(bytes, content type)`` of one of :data:`ASSETS`, or None."""
        if name not in ASSETS or self.static is None:
            return None
        if name not in self._files:
            self._files[name] = (self.static / name).read_bytes()
        return self._files[name], ASSETS[name]
