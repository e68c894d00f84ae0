"""The progress bar of a batch run (rich, on stderr): rows done, rows/s and the time left.
A Parquet input's rows are known from its footers; a CSV input's progress is in bytes read.
Rich is imported only when a bar is drawn (``--quiet`` and ``--json`` runs start without it).
"""

from __future__ import annotations

from functools import cache
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


@cache
def _rows_per_second() -> Any:
    """The column that shows the rows done and their rate (a rich ProgressColumn)."""
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class RowsPerSecond(ProgressColumn):
        def render(self, task: Task) -> Text:
            rows = task.fields.get("rows", 0)
            elapsed = task.elapsed or 0.0
            rate = rows / elapsed if elapsed > 0 else 0.0
            return Text(f"{rows:,} rows {rate:,.0f}/s", style="progress.data.speed")

    return RowsPerSecond


class BatchProgress:
    """``update(rows, read_bytes)`` after each scored batch; ``total_rows`` (Parquet) or
    ``total_bytes`` (CSV) sizes the bar. ``show=False`` draws nothing."""

    def __init__(self, *, total_rows: int | None, total_bytes: int, show: bool,
                 console: Console | None = None) -> None:
        self.by_rows = total_rows is not None
        self.rows = 0
        self._progress: Progress | None = None
        if show:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("scoring"), BarColumn(bar_width=24), TaskProgressColumn(),
                _rows_per_second()(), TimeElapsedColumn(), TextColumn("eta"),
                TimeRemainingColumn(), console=console or Console(stderr=True),
                transient=False)
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
