"""Reading dashboard pages in tests: the number cells (``data-metric`` / ``data-value``)
and the charts of an HTML page, with the standard library's parser."""

from __future__ import annotations

from html.parser import HTMLParser


class Cells(HTMLParser):
    """Every element with ``data-metric``: metric -> list of ``data-value`` (or text)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.values: dict[str, list[str]] = {}
        self.svgs: list[dict[str, str]] = []
        self.rows: dict[str, dict[str, str]] = {}  # data-endpoint -> metric -> value
        self._row: str | None = None
        self._open: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "tr" and "data-endpoint" in found:
            self._row = found["data-endpoint"]
            self.rows[self._row] = {}
        if tag == "svg":
            self.svgs.append(found)
        metric = found.get("data-metric")
        if metric is not None:
            if "data-value" in found:
                self.values.setdefault(metric, []).append(found["data-value"])
                if self._row is not None:
                    self.rows[self._row][metric] = found["data-value"]
            else:
                self._open = metric

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self.values.setdefault(self._open, []).append(data.strip())
            self._open = None

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None
