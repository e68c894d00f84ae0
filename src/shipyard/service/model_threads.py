"""The threads that run in-thread models (``inference: thread``).

Daemon threads, unlike ``ThreadPoolExecutor``'s (which the interpreter joins at exit): a model
call that hangs cannot be stopped from outside, and a server shutting down must not wait for
it forever. The batcher stops waiting for such a call at its deadline (``batching.py``); this
pool makes sure the process can still exit.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

T = TypeVar("T")
_Job = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class ModelThreads(Executor):
    """A fixed number of daemon threads taking jobs from one queue, started on first use."""

    def __init__(self, max_workers: int, name: str = "infer") -> None:
        self.max_workers = max_workers
        self.name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._shutdown = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule a model call after shutdown")
            if not self._threads:
                for i in range(self.max_workers):
                    thread = threading.Thread(target=self._work, name=f"{self.name}_{i}",
                                              daemon=True)
                    thread.start()
                    self._threads.append(thread)
        future: Future[T] = Future()
        self._jobs.put((future, fn, args, kwargs))
        return future

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, fn, args, kwargs = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
            del job, future, fn, args, kwargs  # keep no result alive between jobs

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the threads once their jobs are done; ``wait`` joins each for at most a
        second (a thread stuck in a model call is left behind: it is a daemon)."""
        with self._lock:
            self._shutdown = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    job[0].cancel()
        for _ in threads:
            self._jobs.put(None)
        if wait:
            for thread in threads:
                thread.join(timeout=1.0)
