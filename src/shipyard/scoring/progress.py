"""The progress bar of a batch run (rich, on stderr): rows done, rows/s and the time left.
A Parquet input's rows are known from its footers; a CSV input's progress is in bytes read."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _RowsPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        rows = task.fields.get("rows", 0)
        elapsed = task.elapsed or 0.0
        rate = rows / elapsed if elapsed > 0 else 0.0
        return Text(f"{rows:,} rows {rate:,.0f}/s", style="progress.data.speed")


class BatchProgress:
    """``update(rows, read_bytes)`` after each scored batch; ``total_rows`` (Parquet) or
    ``total_bytes`` (CSV) sizes the bar. ``show=False`` draws nothing."""

    def __init__(self, *, total_rows: int | None, total_bytes: int, show: bool,
                 console: Console | None = None) -> None:
        self.by_rows = total_rows is not None
        self.rows = 0
        self._progress: Progress | None = None
        if show:
            self._progress = Progress(
                TextColumn("scoring"), BarColumn(bar_width=24), TaskProgressColumn(),
                _RowsPerSecond(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                console=console or Console(stderr=True), transient=False)
            self._task = self._progress.add_task(
                "scoring", total=total_rows if total_rows is not None else total_bytes, rows=0)

    def __enter__(self) -> BatchProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, rows: int, read_bytes: int) -> None:
        self.rows += rows
        if self._progress is not None:
            self._progress.update(self._task, completed=self.rows if self.by_rows
                                  else read_bytes, rows=self.rows)
