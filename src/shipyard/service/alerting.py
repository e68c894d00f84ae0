"""Alert delivery: the log, webhooks (JSON POST with retries) and an ``on_alert`` command.

The rules and their state live in ``shipyard.monitoring.alerts`` (pure); this is the I/O side.
:meth:`AlertNotifier.deliver` never raises into the monitor: a receiver that is down must not
stop monitoring, so failures are logged, counted and returned as a :class:`DeliveryResult`.

Webhooks: one POST per event and target, body = ``AlertEvent.to_dict()``, with an
``Idempotency-Key`` header carrying the event id. Connection errors, timeouts, 408, 429 and
5xx are retried with exponential backoff and jitter, honouring ``Retry-After`` (a receiver
that asks for more than ``max_backoff_s`` is given up on rather than blocking the monitor);
other 4xx are not retried. Attempts and per-attempt timeouts are bounded.

``on_alert``: a command (argv, or a string split with :func:`shlex.split`; never a shell) run
once per event with the event JSON on stdin, e.g. to start retraining. Its output goes to the
log. Its environment is not the server's (which may hold credentials): only the variables
named in :data:`COMMAND_ENVIRONMENT` (and ``LC_*``) that the server has, the names listed
in the monitor's ``on_alert_env``, and the event's ``SHIPYARD_ALERT_*`` variables.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shlex
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any

import httpx

from shipyard._version import __version__
from shipyard.monitoring.alerts import AlertError, AlertEvent, AlertState

log = logging.getLogger("shipyard.alerts")

_RETRY_STATUS = frozenset({408, 429})
# what an on_alert command gets of the server's environment without asking: where programs
# and home are, locale and time zone, the Python path and shipyard's home; never secrets
COMMAND_ENVIRONMENT = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR",
                       "PYTHONPATH", "VIRTUAL_ENV", "SHIPYARD_HOME")
_OUTPUT_LIMIT = 4000  # characters of command output kept in the log


@dataclass(frozen=True)
class WebhookTarget:
    """A URL to POST events to, with optional extra headers (e.g. ``Authorization``).

    ``label`` names the target in logs and results; without a ``name`` it is only the scheme
    and host, because webhook URLs often carry a secret in their path.
    """

    url: str = field(repr=False)  # may carry a secret in its path: ``label`` names it
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # may hold secrets
    name: str | None = None

    def __post_init__(self) -> None:
        try:
            parsed = httpx.URL(self.url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise AlertError(f"invalid webhook URL: {exc}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise AlertError(f"webhook URL must be http(s)://host/..., not {self.label!r}")
        if self.name is not None and not isinstance(self.name, str):
            raise AlertError(f"webhook name must be text, not {self.name!r}")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.headers.items()):
            raise AlertError(f"webhook {self.label}: header names and values must be text")
        object.__setattr__(self, "headers", dict(self.headers))

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        try:
            url = httpx.URL(self.url)
        except (httpx.InvalidURL, TypeError):
            return "<invalid URL>"
        return f"{url.scheme}://{url.netloc.decode()}"

    @classmethod
    def from_config(cls, item: str | Mapping[str, Any]) -> WebhookTarget:
        """A URL string or ``{url, headers?, name?}``."""
        if isinstance(item, str):
            return cls(item)
        if not isinstance(item, Mapping) or "url" not in item:
            shown = sorted(item) if isinstance(item, Mapping) else type(item).__name__
            raise AlertError(f"a webhook is a URL or a mapping with 'url', not {shown}")
        unknown = sorted(set(item) - {"url", "headers", "name"})
        if unknown:
            raise AlertError(f"unknown webhook keys {unknown}; allowed: headers, name, url")
        return cls(str(item["url"]), headers=dict(item.get("headers") or {}),
                   name=item.get("name"))


@dataclass(frozen=True)
class DeliveryResult:
    """What one :meth:`AlertNotifier.deliver` call achieved. ``delivered`` and ``failed``
    count (event, webhook) pairs; ``attempts`` counts HTTP requests."""

    events: int = 0
    delivered: int = 0
    failed: int = 0
    attempts: int = 0
    commands_run: int = 0
    commands_failed: int = 0
    failures: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.commands_failed == 0

    def __add__(self, other: DeliveryResult) -> DeliveryResult:
        return DeliveryResult(
            self.events + other.events, self.delivered + other.delivered,
            self.failed + other.failed, self.attempts + other.attempts,
            self.commands_run + other.commands_run,
            self.commands_failed + other.commands_failed, self.failures + other.failures)


def _command(on_alert: str | Sequence[str] | None) -> list[str] | None:
    if on_alert is None:
        return None
    argv = shlex.split(on_alert) if isinstance(on_alert, str) else [str(a) for a in on_alert]
    if not argv:
        raise AlertError("on_alert is empty; give a command or leave it out")
    return argv


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), if any."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def command_environment(event: AlertEvent, passed: Iterable[str] = ()) -> dict[str, str]:
    """The whole environment of an ``on_alert`` command: the allowlisted variables the
    server has, those named in ``passed``, and the event's ``SHIPYARD_ALERT_*``."""
    wanted = {*COMMAND_ENVIRONMENT, *passed}
    env = {k: v for k, v in os.environ.items() if k in wanted or k.startswith("LC_")}
    return {**env, **alert_environment(event)}


def alert_environment(event: AlertEvent) -> dict[str, str]:
    """The ``SHIPYARD_ALERT_*`` variables the ``on_alert`` command sees."""
    data = event.to_dict()
    names = ("id", "fingerprint", "state", "endpoint", "rule", "rule_text", "metric", "op",
             "value", "threshold", "windows", "severity", "at", "started_at")
    out = {f"SHIPYARD_ALERT_{n.upper()}": "" if data[n] is None else str(data[n])
           for n in names}
    out["SHIPYARD_ALERT_DETAIL"] = data.get("detail") or ""
    return out


class AlertNotifier:
    """Sends alert events to the log, webhooks and an optional command.

    ``backoff_s`` is the first retry delay, doubled each attempt up to ``max_backoff_s``,
    then scaled by a random factor in [0.5, 1) (jitter, so many monitors do not retry in
    step). ``transport``, ``sleep`` and ``jitter`` are seams for tests.
    """

    def __init__(self, webhooks: Iterable[WebhookTarget | str | Mapping[str, Any]] = (),
                 on_alert: str | Sequence[str] | None = None, *,
                 timeout_s: float = 10.0, max_attempts: int = 5, backoff_s: float = 0.5,
                 max_backoff_s: float = 30.0, command_timeout_s: float = 300.0,
                 command_env: Iterable[str] = (),
                 transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 jitter: Callable[[], float] = random.random) -> None:
        if max_attempts < 1 or timeout_s <= 0 or command_timeout_s <= 0:
            raise AlertError("max_attempts >= 1, timeout_s > 0 and command_timeout_s > 0")
        if backoff_s < 0 or max_backoff_s < 0:
            raise AlertError("backoff_s and max_backoff_s must not be negative")
        self.webhooks = tuple(w if isinstance(w, WebhookTarget) else WebhookTarget.from_config(w)
                              for w in webhooks)
        self.command = _command(on_alert)
        self.command_env = tuple(command_env)  # server variables the command also gets
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.command_timeout_s = command_timeout_s
        self.total = DeliveryResult()  # every deliver() call so far, added up
        self._sleep = sleep
        self._jitter = jitter
        self._client = httpx.Client(
            timeout=timeout_s, transport=transport, follow_redirects=False,
            headers={"User-Agent": f"shipyard/{__version__}",
                     "Content-Type": "application/json"})

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> AlertNotifier:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def deliver(self, events: Iterable[AlertEvent]) -> DeliveryResult:
        """Log every event, POST it to every webhook, run the command; never raises."""
        result = DeliveryResult()
        for event in events:
            result += self._deliver_one(event)
        self.total += result
        return result

    def _deliver_one(self, event: AlertEvent) -> DeliveryResult:
        result = DeliveryResult(events=1)
        try:
            self._log_event(event)
            body = json.dumps(event.to_dict(), allow_nan=False).encode()
            for target in self.webhooks:
                result += self._post(target, event, body)
            if self.command is not None:
                result += self._run_command(self.command, event, body)
        except Exception as exc:  # a bug here must not take the monitor down
            log.exception("alert %s: delivery failed unexpectedly", event.id)
            result += DeliveryResult(failed=1, failures=(f"{event.id}: {exc!r}",))
        return result

    @staticmethod
    def _log_event(event: AlertEvent) -> None:
        where = f" on {event.endpoint}" if event.endpoint else ""
        level = logging.WARNING if event.state is AlertState.FIRING else logging.INFO
        log.log(level, "alert %s%s: %s (value %s, threshold %s, severity %s, window %s)%s",
                event.state, where, event.rule_text if event.rule == event.rule_text
                else f"{event.rule}: {event.rule_text}", event.value, event.threshold,
                event.severity, event.at.isoformat(),
                "" if event.detail is None else f": {event.detail}",
                extra={"alert": event.to_dict()})

    def _post(self, target: WebhookTarget, event: AlertEvent, body: bytes) -> DeliveryResult:
        headers = {"Idempotency-Key": event.id, **target.headers}
        error = ""
        for attempt in range(1, self.max_attempts + 1):
            retry_after: float | None = None
            try:
                response = self._client.post(target.url, content=body, headers=headers)
            except httpx.TransportError as exc:  # connect/read/write errors and timeouts
                error = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    if attempt > 1:
                        log.info("alert %s delivered to %s after %d attempts", event.id,
                                 target.label, attempt)
                    return DeliveryResult(delivered=1, attempts=attempt)
                error = f"HTTP {response.status_code}"
                if not (response.status_code in _RETRY_STATUS or response.is_server_error):
                    return self._failed(target, event, attempt, f"{error}, not retried")
                retry_after = _retry_after(response)
            if attempt == self.max_attempts:
                break
            if retry_after is not None and retry_after > self.max_backoff_s:
                return self._failed(target, event, attempt, f"{error}, Retry-After "
                                    f"{retry_after:g}s is beyond max_backoff_s")
            delay = retry_after if retry_after is not None else self._backoff(attempt)
            log.debug("alert %s to %s: %s; retrying in %.2fs", event.id, target.label,
                      error, delay)
            self._sleep(delay)
        return self._failed(target, event, self.max_attempts, error)

    def _backoff(self, attempt: int) -> float:
        delay = min(self.max_backoff_s, self.backoff_s * 2.0 ** (attempt - 1))
        return delay * (0.5 + 0.5 * self._jitter())

    @staticmethod
    def _failed(target: WebhookTarget, event: AlertEvent, attempts: int,
                error: str) -> DeliveryResult:
        message = (f"alert {event.id} ({event.state} {event.rule}) not delivered to "
                   f"{target.label} after {attempts} attempt(s): {error}")
        log.error("%s", message)
        return DeliveryResult(failed=1, attempts=attempts, failures=(message,))

    def _run_command(self, command: list[str], event: AlertEvent,
                     body: bytes) -> DeliveryResult:
        name = shlex.join(command[:1])
        env = command_environment(event, self.command_env)
        try:
            done = subprocess.run(command, input=body, capture_output=True, env=env,
                                  timeout=self.command_timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            self._log_output(name, exc.stdout, exc.stderr)
            return self._command_failed(event, f"{name} timed out after "
                                        f"{self.command_timeout_s:g}s and was killed")
        except OSError as exc:
            return self._command_failed(event, f"{name} could not start: {exc}")
        self._log_output(name, done.stdout, done.stderr)
        if done.returncode != 0:
            return self._command_failed(event, f"{name} exited with {done.returncode}")
        return DeliveryResult(commands_run=1)

    @staticmethod
    def _log_output(name: str, stdout: bytes | None, stderr: bytes | None) -> None:
        for stream, data in (("stdout", stdout), ("stderr", stderr)):
            text = (data or b"").decode(errors="replace").strip()
            if text:
                log.info("on_alert %s %s: %s", name, stream, text[-_OUTPUT_LIMIT:])

    @staticmethod
    def _command_failed(event: AlertEvent, error: str) -> DeliveryResult:
        message = f"alert {event.id} ({event.state} {event.rule}): on_alert {error}"
        log.error("%s", message)
        return DeliveryResult(commands_run=1, commands_failed=1, failures=(message,))
