"""The serving part of the quickstart: serve ``models:/NAME@production``, send traffic."""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from shipyard.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_and_call(console: Console, settings: Settings, uri: str, rows: Any,
                   labels: Any, *, keep_serving: bool | None) -> None:
    import uvicorn

    from shipyard.client import Client
    from shipyard.server.app import create_app
    from shipyard.service.config import EndpointConfig, ServeConfig
    from shipyard.service.dataplane import DataPlane
    from shipyard.stores.predictions import read_log

    port = free_port()
    log_dir = settings.home / "logs"
    config = ServeConfig(endpoints=(EndpointConfig(name="breast-cancer", model=uri),),
                         log_dir=str(log_dir))
    server = uvicorn.Server(uvicorn.Config(create_app(DataPlane(config, settings)),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    with Client(url) as client:
        deadline = time.monotonic() + 60
        while not _ready(client):
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the quickstart server did not become ready")
            time.sleep(0.1)
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
            console.print("   (this demo server stops with the quickstart; keep one running "
                          "with [cyan]shipyard serve models:/breast-cancer@production[/])")
    server.should_exit = True
    thread.join(timeout=30)
    logged = read_log(log_dir, "breast-cancer").num_rows
    console.print(f"10. the prediction log in {Path(log_dir)} holds {logged} rows "
                  f"([cyan]shipyard logs breast-cancer[/])")


def _ready(client: Any) -> bool:
    try:
        return bool(client.ready())
    except Exception:  # not listening yet
        return False
