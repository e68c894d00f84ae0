"""What a live-traffic test prints when traffic stalls: the answers so far, the data plane's
batchers and inference processes, every asyncio task's stack and every thread's stack.

A stall under CPU load is rare and slow to reproduce; the report says at once whether the
clients wait on a batcher (queue, free slots, calls in flight), on an inference process
(its lock, a restart) or on something else.
"""

from __future__ import annotations

import asyncio
import io
import sys
import threading
import traceback
from collections import Counter
from collections.abc import Sequence
from typing import Any

from shipyard.batching import AdaptiveBatcher
from shipyard.runtimes.process import InferenceProcess
from shipyard.service.dataplane import DataPlane


def _batcher(name: str, b: AdaptiveBatcher[Any, Any] | None) -> str:
    if b is None:
        return f"    {name}: none"
    task = b._loop_task
    loop = "none" if task is None else "done" if task.done() else "alive"
    return (f"    {name}: closed={b._closed} depth={b.depth} free={b._free}/{b.concurrency} "
            f"semaphore={b._slots._value} in_flight={len(b._in_flight)} "
            f"running={b.running} stuck={b._stuck} wake_set={b._wake.is_set()} "
            f"loop_task={loop} stats={b.stats.batches} batches/{b.stats.timeouts} timeouts/"
            f"{b.stats.past_deadline} past deadline")


def _process(p: InferenceProcess | None) -> str:
    if p is None:
        return "    process: none"
    lock = p._lock
    return (f"    process: alive={p.alive} sock={p._sock is not None} "
            f"poll={p.proc.poll()} closed={p._closed} "
            f"lock={'none' if lock is None else lock.locked()} restart={p._restart} "
            f"restarts={p.restarts} frame={p._frame} unsettled={len(p._unsettled)} "
            f"watcher={p._watcher}")


def plane_state(plane: DataPlane) -> str:
    lines = []
    for name, ep in plane.endpoints.items():
        d = ep.current
        table = ep.table
        lines.append(f"  endpoint {name}: version={d and d.version} "
                     f"revision={table and table.revision} failed={ep.failed} "
                     f"last_error={ep.last_error!r}")
        if d is not None:
            lines += [_batcher("batcher", d.batcher), _batcher("raw", d.raw),
                      _process(d.process)]
    swapper = plane.swapper
    lines.append(f"  closing={len(swapper.closing)} retiring={len(swapper.retiring)} "
                 f"checking={swapper.checking.locked()}")
    return "\n".join(lines)


def task_stacks() -> str:
    out = io.StringIO()
    for task in asyncio.all_tasks():
        print(f"--- {task.get_name()} {task.get_coro()!r}", file=out)
        task.print_stack(limit=12, file=out)
    return out.getvalue()


def thread_stacks() -> str:
    names = {t.ident: t.name for t in threading.enumerate()}
    out = []
    for ident, frame in sys._current_frames().items():
        out.append(f"--- thread {names.get(ident, ident)}\n"
                   + "".join(traceback.format_stack(frame, limit=12)))
    return "\n".join(out)


def stall_report(what: str, answers: Sequence[Any], plane: DataPlane | None) -> str:
    """The text of the AssertionError raised when ``what`` never came."""
    statuses = Counter(a.status for a in answers)
    last = [(a.request_id, a.status, a.version) for a in answers[-8:]]
    parts = [f"gave up waiting for {what}",
             f"answers: {len(answers)}, statuses {dict(statuses)}, last {last}"]
    if plane is not None:
        parts.append("data plane:\n" + plane_state(plane))
    parts += ["asyncio tasks:\n" + task_stacks(), "threads:\n" + thread_stacks()]
    return "\n".join(parts)
