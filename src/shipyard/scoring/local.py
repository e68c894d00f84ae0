"""The local engine: record batches scored on every core, results handed back in input order.

``threads`` (the default) share one loaded model: ONNX Runtime releases the GIL while it
runs the graph, and so do Arrow's readers and writers. ``processes`` load the model once per
worker process and get batches and results as pickled Arrow buffers; on the bench model that
copying made them 3-4x slower than threads, so they are for runtimes that hold the GIL.
A reader thread reads ahead while the caller writes; at most ``2 * workers`` batches are
read ahead and ``2 * workers`` in flight, so memory stays flat whatever the input size.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Literal

from shipyard.scoring.columns import InputPlan
from shipyard.scoring.core import Scored, Scorer
from shipyard.scoring.models import ModelSource
from shipyard.stores.table_sources import Chunk

Mode = Literal["threads", "processes"]

_worker: Scorer | None = None  # the scorer of this worker process


def _start_worker(source: ModelSource, plan: InputPlan, passthrough: Sequence[str],
                  keep_log: bool) -> None:
    global _worker
    _worker = Scorer(source.load(threads=1), plan, passthrough, keep_log=keep_log)


def _score_in_worker(chunk: Chunk) -> Scored:
    assert _worker is not None, "worker process not started"
    return _worker.score(chunk.batch, chunk.first_row)


_END = object()


class ReadAhead:
    """``chunks``, read by a thread up to ``depth`` ahead of the caller (reading a Parquet
    row group or a CSV block overlaps loading the model, scoring and writing). The thread
    starts at once; an error reading is raised by the iteration; ``close`` stops the
    thread (call it whether or not the chunks were iterated)."""

    def __init__(self, chunks: Iterable[Chunk], depth: int) -> None:
        self._ahead: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, args=(chunks,),
                                        name="shipyard-read", daemon=True)
        self._reader.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self, chunks: Iterable[Chunk]) -> None:
        try:
            for chunk in chunks:
                if not self._put(chunk):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the caller
            self._put(exc)

    def __iter__(self) -> Iterator[Chunk]:
        while True:
            item = self._ahead.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]

    def close(self) -> None:
        self._stop.set()
        self._reader.join()


def score_local(chunks: Iterable[Chunk], source: ModelSource, plan: InputPlan,
                passthrough: Sequence[str], *, workers: int, mode: Mode = "threads",
                keep_log: bool = False) -> Iterator[tuple[Chunk, Scored]]:
    """Each chunk with its scores, in input order."""
    if workers <= 1:
        scorer = Scorer(source.load(), plan, passthrough, keep_log=keep_log)
        try:
            for chunk in chunks:
                yield chunk, scorer.score(chunk.batch, chunk.first_row)
        finally:
            scorer.model.close()
        return
    ahead = ReadAhead(chunks, 2 * workers)  # reads while the model loads
    try:
        yield from _score_ahead(ahead, source, plan, passthrough, workers=workers, mode=mode,
                                keep_log=keep_log)
    finally:
        ahead.close()


def _score_ahead(ahead: ReadAhead, source: ModelSource, plan: InputPlan,
                 passthrough: Sequence[str], *, workers: int, mode: Mode,
                 keep_log: bool) -> Iterator[tuple[Chunk, Scored]]:
    if mode == "processes":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        executor: Executor = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker, initargs=(source, plan, passthrough, keep_log))
        work = _score_in_worker
        shared = None
    else:
        shared = Scorer(source.load(threads=1), plan, passthrough, keep_log=keep_log)
        executor = ThreadPoolExecutor(workers, thread_name_prefix="shipyard-score")

        def work(chunk: Chunk) -> Scored:
            assert shared is not None
            return shared.score(chunk.batch, chunk.first_row)
    try:
        pending: deque[tuple[Chunk, Future[Scored]]] = deque()
        for chunk in ahead:
            pending.append((chunk, executor.submit(work, chunk)))
            if len(pending) >= 2 * workers:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        if shared is not None:
            shared.model.close()
