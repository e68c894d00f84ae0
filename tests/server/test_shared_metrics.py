"""SharedMetrics: with ``--workers N`` every worker's ``/metrics`` answers for the whole server.

Three "workers" here are three ServingMetrics sharing a directory, two alive (this process's
pid, and its parent's) and one that has exited (a finished child's pid): counters and
histograms add up over all three, gauges only over the live ones.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from shipyard.service.metrics import ServingMetrics, SharedMetrics
from shipyard.stores.predictions import LogStats

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
KEY = ("ep", "m", "1", "200", "json")


def _parse(text: bytes) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text.decode()) for s in family.samples}


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def _worker(directory: Path, pid: int, *, requests: list[float], batch_rows: list[int],
            depth: int, load_s: float, written: int) -> SharedMetrics:
    metrics = ServingMetrics()
    for seconds in requests:
        metrics.requests.observe(KEY, seconds)
    for rows in batch_rows:
        metrics.batch_size.labels(endpoint="ep", model="m", version="1").observe(rows)
    metrics.load_seconds.labels(endpoint="ep", model="m", version="1").set(load_s)
    metrics.watch(lambda: {"ep": depth}, lambda: LogStats(written_rows=written))
    return SharedMetrics(metrics.registry, directory, pid=pid)


def test_counters_and_histograms_add_up_gauges_come_from_live_workers(tmp_path: Path) -> None:
    me = _worker(tmp_path, os.getpid(), requests=[0.001, 0.003], batch_rows=[4],
                 depth=3, load_s=0.5, written=10)
    other = _worker(tmp_path, os.getppid(), requests=[0.03], batch_rows=[1, 32],
                    depth=2, load_s=1.5, written=7)
    gone = _worker(tmp_path, _dead_pid(), requests=[0.3, 0.3, 0.3], batch_rows=[64],
                   depth=50, load_s=9.0, written=100)
    other.publish()
    gone.publish()
    got = _parse(me.render())  # publishes its own snapshot first
    lab = (("endpoint", "ep"), ("model", "m"), ("version", "1"))

    assert got[("shipyard_requests_total", tuple(sorted(
        (*lab, ("protocol", "json"), ("status", "200")))))] == 6
    latency = {le: got[("shipyard_request_latency_seconds_bucket",
                        tuple(sorted((*lab, ("status", "200"), ("le", le)))))]
               for le in ("0.001", "0.005", "0.05", "0.5", "+Inf")}
    assert latency == {"0.001": 1, "0.005": 2, "0.05": 3, "0.5": 6, "+Inf": 6}
    assert abs(got[("shipyard_request_latency_seconds_sum", tuple(sorted(
        (*lab, ("status", "200")))))] - 0.934) < 1e-9
    assert got[("shipyard_batch_size_rows_count", lab)] == 4
    assert got[("shipyard_batch_size_rows_sum", lab)] == 4 + 1 + 32 + 64
    assert got[("shipyard_prediction_log_rows_total", (("outcome", "written"),))] == 117
    # gauges: the exited worker's queue and load time are gone; load time is the highest
    assert got[("shipyard_queue_depth", (("endpoint", "ep"),))] == 5
    assert got[("shipyard_model_load_seconds", lab)] == 1.5
    assert not any(name.endswith("_created") for name, _ in got)


def test_a_worker_that_stopped_keeps_its_counts_but_not_its_gauges(tmp_path: Path) -> None:
    me = _worker(tmp_path, os.getpid(), requests=[0.001], batch_rows=[1], depth=1,
                 load_s=0.5, written=1)
    stopped = _worker(tmp_path, os.getppid(), requests=[0.001] * 4, batch_rows=[4], depth=9,
                      load_s=2.0, written=4)
    stopped.publish(live=False)  # what a worker writes on its way out
    got = _parse(me.render())
    lab = (("endpoint", "ep"), ("model", "m"), ("version", "1"))
    assert got[("shipyard_requests_total", tuple(sorted(
        (*lab, ("protocol", "json"), ("status", "200")))))] == 5
    assert got[("shipyard_queue_depth", (("endpoint", "ep"),))] == 1
    assert got[("shipyard_model_load_seconds", lab)] == 0.5


def test_a_scrape_sees_its_own_worker_now_and_skips_unreadable_files(tmp_path: Path) -> None:
    metrics = ServingMetrics()
    me = SharedMetrics(metrics.registry, tmp_path)
    (tmp_path / "123.metrics.json").write_text("{not json")  # torn or foreign: skipped
    (tmp_path / "notes.txt").write_text("not a snapshot")
    key = ("shipyard_requests_total", tuple(sorted(
        (("endpoint", "ep"), ("model", "m"), ("version", "1"), ("protocol", "json"),
         ("status", "200")))))
    metrics.requests.observe(KEY, 0.001)
    assert _parse(me.render())[key] == 1
    metrics.requests.observe(KEY, 0.001)  # no waiting for the next periodic snapshot
    assert _parse(me.render())[key] == 2
    assert {p.name for p in tmp_path.iterdir()} == {
        "123.metrics.json", f"{os.getpid()}.metrics.json", "notes.txt"}


def test_run_publishes_every_interval(tmp_path: Path) -> None:
    metrics = ServingMetrics()
    shared = SharedMetrics(metrics.registry, tmp_path, interval=0.02)
    reader = SharedMetrics(ServingMetrics().registry, tmp_path, pid=os.getppid())

    def seen() -> float:
        return sum(v for (name, labels), v in _parse(reader.render()).items()
                   if name == "shipyard_requests_total")

    async def main() -> list[float]:
        task = asyncio.get_running_loop().create_task(shared.run())
        counts = []
        for _ in range(2):
            metrics.requests.observe(KEY, 0.001)
            await asyncio.sleep(0.2)  # ten intervals: published without a scrape here
            counts.append(seen())
        task.cancel()
        return counts

    assert asyncio.run(main()) == [1, 2]
