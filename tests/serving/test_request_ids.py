"""Request ids are unique within a process and across processes (forked or spawned)."""

import multiprocessing
import os

from shipyard.service.dataplane import new_request_id


def _ids_in_child(queue: "multiprocessing.Queue[list[str]]") -> None:
    queue.put([new_request_id() for _ in range(1000)])


def test_request_ids_are_unique_in_and_across_processes() -> None:
    mine = [new_request_id() for _ in range(10_000)]
    assert len(set(mine)) == len(mine)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in mine)
    for method in ("fork", "spawn"):
        ctx = multiprocessing.get_context(method)
        queue = ctx.Queue()
        child = ctx.Process(target=_ids_in_child, args=(queue,))
        child.start()
        theirs = queue.get(timeout=60)
        child.join(timeout=60)
        assert child.exitcode == 0
        assert not set(theirs) & set(mine), method
        assert theirs[0][:16] != mine[0][:16], f"{method}: same prefix as pid {os.getpid()}"
