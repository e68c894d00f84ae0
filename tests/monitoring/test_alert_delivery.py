"""Alert delivery against a real webhook receiver on 127.0.0.1, and the on_alert command."""

from __future__ import annotations

import json
import logging
import shlex
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from shipyard.monitoring.alerts import AlertError, AlertEvaluator, AlertEvent
from shipyard.service.alerting import AlertNotifier, DeliveryResult, WebhookTarget

T0 = datetime(2024, 5, 1, tzinfo=UTC)


@dataclass
class Receiver:
    """A webhook receiver: records every request and answers from a script of statuses
    (then 200). ``hold`` makes it wait before answering (to trip client timeouts)."""

    url: str = ""
    requests: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    hold: threading.Event | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [body for _, body in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.requests.append((dict(self.headers.items()), body))
                status, headers = state.script.pop(0) if state.script else (200, {})
            if state.hold is not None:
                state.hold.wait(10)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook/s3cret"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        if state.hold is not None:
            state.hold.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


def notifier(*webhooks: WebhookTarget | str, **options: Any) -> AlertNotifier:
    """Fast retries (no real sleeping), sleeps recorded in ``.slept``."""
    slept: list[float] = []
    options.setdefault("backoff_s", 0.01)
    out = AlertNotifier(webhooks, sleep=slept.append, jitter=lambda: 0.0, **options)
    out.slept = slept  # type: ignore[attr-defined]
    return out


def fired(value: float = 0.5, endpoint: str = "iris") -> AlertEvent:
    return AlertEvaluator(["drift_share > 0.3"], endpoint=endpoint).evaluate(
        {"drift_share": value}, T0)[0]


def test_receiver_sees_fire_and_resolve_exactly_once(receiver: Receiver) -> None:
    rules = [{"name": "drift", "rule": "drift_share > 0.3 for 2 windows"},
             "p99_latency_ms > 100"]
    windows: list[dict[str, float | None]] = [
        {"drift_share": 0.1, "p99_latency_ms": 40.0},
        {"drift_share": 0.4, "p99_latency_ms": 45.0},
        {"drift_share": 0.5, "p99_latency_ms": 50.0},   # drift fires
        {"drift_share": 0.6, "p99_latency_ms": None},
        {"drift_share": None, "p99_latency_ms": 60.0},  # restart after this window
        {"drift_share": 0.7, "p99_latency_ms": 55.0},
        {"drift_share": 0.2, "p99_latency_ms": 50.0},   # drift resolves
        {"drift_share": 0.1, "p99_latency_ms": 45.0},
        {"drift_share": 0.1, "p99_latency_ms": 40.0},
    ]
    totals = DeliveryResult()
    evaluator = AlertEvaluator(rules, endpoint="iris")
    with notifier(receiver.url) as sender:
        for i, metrics in enumerate(windows[:5]):
            totals += sender.deliver(evaluator.evaluate(metrics, T0 + timedelta(hours=i)))
    saved = json.loads(json.dumps(evaluator.to_dict()))
    evaluator = AlertEvaluator(rules, saved, endpoint="iris")
    with notifier(receiver.url) as sender:
        for i, metrics in enumerate(windows[5:], 5):
            totals += sender.deliver(evaluator.evaluate(metrics, T0 + timedelta(hours=i)))

    assert [(b["rule"], b["state"]) for b in receiver.bodies] == [
        ("drift", "firing"), ("drift", "resolved")]
    firing, resolved = receiver.bodies
    assert firing["value"] == 0.5
    assert firing["endpoint"] == "iris"
    assert firing["at"] == (T0 + timedelta(hours=2)).isoformat()
    assert resolved["value"] == 0.2
    assert resolved["started_at"] == firing["at"]
    assert firing["fingerprint"] == resolved["fingerprint"]
    assert firing["id"] != resolved["id"]
    headers = receiver.requests[0][0]
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == firing["id"]
    assert (totals.events, totals.delivered, totals.failed, totals.attempts) == (2, 2, 0, 2)
    assert totals.ok


def test_every_webhook_gets_every_event_with_its_headers(receiver: Receiver) -> None:
    targets = [WebhookTarget(receiver.url, headers={"Authorization": "Bearer t0k"}),
               WebhookTarget.from_config({"url": receiver.url, "name": "ops",
                                          "headers": {"X-Team": "ml"}})]
    with notifier(*targets) as sender:
        result = sender.deliver([fired()])
    assert result.delivered == 2
    assert [h.get("Authorization") for h, _ in receiver.requests] == ["Bearer t0k", None]
    assert [h.get("X-Team") for h, _ in receiver.requests] == [None, "ml"]


def test_retries_5xx_then_delivers_once(receiver: Receiver) -> None:
    receiver.script = [(500, {}), (502, {})]
    event = fired()
    with notifier(receiver.url, backoff_s=0.01, max_backoff_s=1.0) as sender:
        result = sender.deliver([event])
    assert (result.delivered, result.failed, result.attempts) == (1, 0, 3)
    assert len(receiver.requests) == 3  # one success; the first two were refused
    assert {h["Idempotency-Key"] for h, _ in receiver.requests} == {event.id}
    assert sender.slept == [0.005, 0.01]  # type: ignore[attr-defined]  # backoff doubles


def test_429_retry_after_is_honoured(receiver: Receiver) -> None:
    receiver.script = [(429, {"Retry-After": "2"})]
    with notifier(receiver.url, max_backoff_s=5.0) as sender:
        result = sender.deliver([fired()])
    assert (result.delivered, result.attempts) == (1, 2)
    assert sender.slept == [2.0]  # type: ignore[attr-defined]


@pytest.mark.parametrize("retry_after", ["3600", "Wed, 21 Oct 2099 07:28:00 GMT"])
def test_retry_after_beyond_the_bound_gives_up(receiver: Receiver, retry_after: str) -> None:
    receiver.script = [(503, {"Retry-After": retry_after})]
    with notifier(receiver.url, max_backoff_s=5.0) as sender:
        result = sender.deliver([fired()])
    assert (result.delivered, result.failed, result.attempts) == (0, 1, 1)
    assert "beyond max_backoff_s" in result.failures[0]


def test_permanently_failing_receiver_does_not_raise(
        receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.script = [(503, {})] * 10
    with notifier(receiver.url, max_attempts=4) as sender:
        result = sender.deliver([fired(), fired(endpoint="other")])
        assert sender.total == result
    assert (result.events, result.delivered, result.failed, result.attempts) == (2, 0, 2, 8)
    assert not result.ok
    assert len(receiver.requests) == 8
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert "after 4 attempt(s): HTTP 503" in errors[0]
    assert "s3cret" not in " ".join(errors)  # the URL's secret path stays out of the log


def test_client_errors_are_not_retried(receiver: Receiver) -> None:
    receiver.script = [(400, {})]
    with notifier(receiver.url) as sender:
        result = sender.deliver([fired()])
    assert (result.failed, result.attempts, len(receiver.requests)) == (1, 1, 1)
    assert "HTTP 400, not retried" in result.failures[0]


def test_unreachable_and_slow_receivers_fail_within_bounds(receiver: Receiver) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    receiver.hold = threading.Event()
    with notifier(closed, receiver.url, max_attempts=2, timeout_s=0.2) as sender:
        result = sender.deliver([fired()])
    assert (result.delivered, result.failed, result.attempts) == (0, 2, 4)
    assert "ConnectError" in result.failures[0]
    assert "Timeout" in result.failures[1]


def test_every_event_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    evaluator = AlertEvaluator(["accuracy < 0.85"], endpoint="iris")
    events = (evaluator.evaluate({"accuracy": 0.8}, T0)
              + evaluator.evaluate({"accuracy": 0.9}, T0 + timedelta(hours=1)))
    caplog.set_level(logging.INFO, logger="shipyard.alerts")
    with notifier() as sender:
        assert sender.deliver(events).ok
    logged = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in logged] == [logging.WARNING, logging.INFO]
    assert logged[0][1].startswith("alert firing on iris: accuracy < 0.85 (value 0.8")
    assert logged[1][1].startswith("alert resolved on iris: accuracy < 0.85 (value 0.9")


RECORD = ("import json, os, sys; from pathlib import Path; "
          "env = {k: v for k, v in os.environ.items() if k.startswith('SHIPYARD_ALERT_')}; "
          "Path(sys.argv[1]).write_text(json.dumps({'stdin': sys.stdin.read(), 'env': env})); "
          "print('retraining started')")


@pytest.mark.parametrize("as_string", [True, False])
def test_on_alert_command_gets_the_event(tmp_path: Path, as_string: bool,
                                         caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "event file.json"  # a space: the string form must be split like a shell
    argv = [sys.executable, "-c", RECORD, str(out)]
    caplog.set_level(logging.INFO, logger="shipyard.alerts")
    event = fired()
    with notifier(on_alert=shlex.join(argv) if as_string else argv) as sender:
        result = sender.deliver([event])
    assert (result.commands_run, result.commands_failed) == (1, 0)
    seen = json.loads(out.read_text())
    assert json.loads(seen["stdin"]) == event.to_dict()
    env = seen["env"]
    assert env["SHIPYARD_ALERT_STATE"] == "firing"
    assert env["SHIPYARD_ALERT_RULE"] == "drift_share > 0.3"
    assert env["SHIPYARD_ALERT_VALUE"] == "0.5"
    assert env["SHIPYARD_ALERT_ENDPOINT"] == "iris"
    assert env["SHIPYARD_ALERT_ID"] == event.id
    assert any("retraining started" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("argv", "words"), [
    ([sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"],
     "exited with 3"),
    ([sys.executable, "-c", "import time; time.sleep(30)"], "timed out after 0.5s"),
    (["/nonexistent/retrain"], "could not start"),
])
def test_failing_on_alert_command_is_counted_not_raised(argv: list[str], words: str) -> None:
    with notifier(on_alert=argv, command_timeout_s=0.5) as sender:
        result = sender.deliver([fired()])
    assert (result.commands_run, result.commands_failed) == (1, 1)
    assert words in result.failures[0]


@pytest.mark.parametrize(("make", "words"), [
    (lambda: WebhookTarget("ftp://example.test/x"), "must be http(s)"),
    (lambda: WebhookTarget.from_config({"url": "http://127.0.0.1/", "retries": 3}),
     "unknown webhook keys"),
    (lambda: AlertNotifier(on_alert=""), "on_alert is empty"),
    (lambda: AlertNotifier(max_attempts=0), "max_attempts >= 1"),
])
def test_invalid_notifier_config(make: Any, words: str) -> None:
    with pytest.raises(AlertError, match=words.replace("(", r"\(").replace(")", r"\)")):
        make()
