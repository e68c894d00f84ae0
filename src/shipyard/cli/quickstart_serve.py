"""The serving part of the quickstart: serve ``models:/NAME@production``, send traffic
(some of it drifted), then run the monitor over the prediction log."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from shipyard.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_and_call(console: Console, settings: Settings, uri: str, rows: Any,
                   labels: Any, *, keep_serving: bool | None = False) -> None:
    """Steps 8 to 11; ``keep_serving``: see `until_stopped`."""
    from shipyard.client import Client
    from shipyard.service.config import EndpointConfig, ServeConfig
    from shipyard.stores.predictions import read_log

    log_dir = settings.home / "logs"
    config = ServeConfig(endpoints=(EndpointConfig(name="breast-cancer", model=uri),),
                         log_dir=str(log_dir))
    with demo_server(config, settings) as (url, thread), Client(url) as client:
        console.print(f"8. serving {uri} at [bold]{url}[/]")
        sent = correct = 0
        for start in range(0, min(len(rows), 40), 4):
            batch = rows.iloc[start:start + 4]
            answer = client.predict("breast-cancer", batch)
            truth = [int(v) for v in labels.iloc[start:start + 4]]
            client.feedback("breast-cancer", answer["request_id"], labels=truth)
            sent += len(batch)
            correct += sum(int(p == t) for p, t in zip(answer["predictions"], truth,
                                                       strict=True))
        console.print(f"9. sent {sent} rows in {sent // 4} requests (with ground-truth "
                      f"feedback): {correct}/{sent} correct")
        drifted = _drift(rows)
        for start in range(0, len(drifted), 25):
            client.predict("breast-cancer", drifted.iloc[start:start + 25])
        console.print(f"   then {len(drifted)} rows of drifted traffic: "
                      f"{', '.join(DRIFTED)} scaled by {SCALE}")
        if keep_serving is not False:
            until_stopped(console, url, thread, keep_serving)
    logged = read_log(log_dir, "breast-cancer").num_rows
    console.print(f"10. the prediction log in {Path(log_dir)} holds {logged} rows "
                  f"([cyan]shipyard logs breast-cancer[/])")
    monitor_drift(console, settings, log_dir, uri, rows=len(rows))


def until_stopped(console: Console, url: str, thread: threading.Thread,
                  keep_serving: bool | None) -> None:
    """Say what to try on the demo server at ``url``; serve until Ctrl-C when
    ``keep_serving`` (None: when run in a terminal)."""
    console.print(f"   dashboard: [bold]{url}/ui/[/] (overview, drift, rollouts, try it)")
    console.print("   try:")
    console.print(f"   curl {url}/v2/health/ready")
    console.print(f"   curl {url}/v2/models/breast-cancer")
    console.print(f"   curl -s {url}/metrics | grep shipyard_requests")
    console.print(f"   open {url}/docs")
    if keep_serving is None:
        keep_serving = sys.stdin.isatty()
    if keep_serving:
        console.print("   serving until Ctrl-C …")
        try:
            while thread.is_alive():
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    else:
        console.print("   (this demo server stops with the quickstart: run [cyan]shipyard "
                      "quickstart --serve[/] to keep it and its dashboard up, or serve the "
                      "model with [cyan]shipyard serve models:/breast-cancer@production[/])")


@contextmanager
def demo_server(config: Any, settings: Settings) -> Iterator[tuple[str, threading.Thread]]:
    """An in-process server of ``config`` (a ``ServeConfig``) on a free port of 127.0.0.1,
    ready: yields (its URL, the thread serving it); stopped on the way out."""
    import uvicorn

    from shipyard.client import Client
    from shipyard.server.app import create_app
    from shipyard.service.dataplane import DataPlane

    server = uvicorn.Server(uvicorn.Config(create_app(DataPlane(config, settings)),
                                           host="127.0.0.1", port=free_port(),
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.config.port}"
    try:
        with Client(url) as client:
            deadline = time.monotonic() + 60
            while not _ready(client):
                if time.monotonic() > deadline or not thread.is_alive():
                    raise RuntimeError("the quickstart server did not become ready")
                time.sleep(0.1)
        yield url, thread
    finally:
        server.should_exit = True
        thread.join(timeout=30)


DRIFTED = ("mean radius", "mean texture", "worst area")
SCALE = 1.3


def _drift(rows: Any) -> Any:
    """The held-out rows with a few features scaled: what a new scanner might send."""
    shifted = rows.copy()
    for column in DRIFTED:
        shifted[column] = shifted[column] * SCALE
    return shifted


def monitor_drift(console: Console, settings: Settings, log_dir: Path, uri: str, *,
                  rows: int) -> None:
    """Monitor the newest ``rows`` logged rows (the drifted ones) against the package's
    reference profile, and say what drifted."""
    from shipyard.cli.monitor_tables import number
    from shipyard.service.monitor import Monitor

    started = time.perf_counter()
    run = Monitor("breast-cancer", log_dir, model_source=uri, settings=settings).run(last=rows)
    record = run.records[-1]
    drift = record.get("drift") or {}
    columns = drift.get("columns", {})
    drifted = sorted(((n, c) for n, c in columns.items() if c.get("drifted")),
                     key=lambda nc: -abs(nc[1].get("effect_size") or 0.0))
    console.print(f"11. monitored the newest {record['rows']} rows against the package's "
                  f"reference ({time.perf_counter() - started:.1f}s):")
    console.print(f"   {len(drifted)} of {len(columns)} input columns drifted")
    for name, column in drifted[:6]:
        console.print(f"   [red]{name}[/]: {column.get('method')} statistic "
                      f"{number(column.get('statistic'))}, p {number(column.get('p_value'))}, "
                      f"effect {number(column.get('effect_size'))} "
                      f"{column.get('effect_name') or ''}".rstrip())
    if len(drifted) > 6:
        console.print(f"   … and {len(drifted) - 6} more")
    console.print(f"   see [cyan]shipyard monitor run breast-cancer --last {rows}[/] and "
                  "[cyan]shipyard monitor status breast-cancer[/]")
    write_report(console, settings, log_dir, uri)


def write_report(console: Console, settings: Settings, log_dir: Path, uri: str) -> None:
    """A standalone HTML report of the last hour of breast-cancer's traffic."""
    from shipyard.reports import endpoint_report, render_html
    from shipyard.service.monitor import Monitor

    started = time.perf_counter()
    now = time.time()
    report = endpoint_report(Monitor("breast-cancer", log_dir, model_source=uri,
                                     settings=settings), now - 3600.0, now + 1.0)
    path = settings.home / "reports" / "breast-cancer.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report), encoding="utf-8")
    drifted = len((report.get("drift") or {}).get("drifted_columns") or [])
    console.print(f"   report of the last hour ({report['rows']['current']} rows, {drifted} "
                  f"columns drifted): [bold]{path}[/] ({path.stat().st_size / 1024:.0f} KiB, "
                  f"{time.perf_counter() - started:.1f}s; standalone, open it in a browser)")
    console.print("   see [cyan]shipyard report breast-cancer --window 1h -o report.html[/]")


def _ready(client: Any) -> bool:
    try:
        return bool(client.ready())
    except Exception:  # not listening yet
        return False
