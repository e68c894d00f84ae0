"""Where answered requests go in the prediction log: the two logging paths and the error
records.

- A model run in this process: its batch's rows are appended here, one `PredictionBatch`
  per batch (``RequestLog.batch``).
- A model run in an inference process: the process still holds the batch's rows, so it gets
  a small entry naming them and writes them itself (``log_in_process``).

Copies of requests sent to a shadow version (``Arrival.shadow``) go to segments of kind
``shadow``; they are never counted as answered for feedback (their primary is). Sampling
(``log_sample_rate``) keeps a random subset of each batch's requests.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shipyard.runtimes.outputs import concat
from shipyard.runtimes.process import InferenceProcess, log_entry
from shipyard.service.batch_calls import Arrival, RawServed, RawTicket, Share, Ticket
from shipyard.service.feedback import FeedbackGate
from shipyard.stores.predictions import ErrorRecord, PredictionBatch, PredictionLog


@dataclass(frozen=True)
class LogTarget:
    """Where one deployment's requests are logged: its endpoint, model version and sampling;
    ``process``: the inference process that holds its rows (None: rows are here), and
    ``slot``: which of its versions answered them (a joint process's, ``joint.py``)."""

    endpoint: str
    model: str
    version: int
    sample_rate: float
    class_labels: Sequence[Any] | None
    process: InferenceProcess | None
    slot: int = 0


def sampled(rate: float, n: int) -> Sequence[int]:
    """Which of ``n`` answered requests the log keeps at ``log_sample_rate`` ``rate``."""
    if rate >= 1.0:
        return range(n)
    return [i for i in range(n) if random.random() < rate]


def _routed(tickets: Sequence[Arrival], shadow: bool) -> dict[str, Any]:
    """The routing columns of the tickets' rows (variant, policy revision, kind), as
    `PredictionBatch` fields; none when no ticket was routed by a policy or pinned (an
    endpoint without a stored policy: the log's defaults, "" and 0)."""
    kind = "shadow" if shadow else "predictions"
    if not any(t.variant for t in tickets):  # a policy's or a pin's variant is never ""
        return {"kind": kind}
    return {"variants": [t.variant for t in tickets],
            "policy_revisions": [t.revision for t in tickets], "kind": kind}


def _key_names(tickets: Sequence[Arrival]) -> list[str | None] | None:
    """The API key names of the tickets' requests; None when no request presented a key
    (a server without keys: the log's default, null)."""
    if all(t.key_name is None for t in tickets):
        return None
    return [t.key_name for t in tickets]


def _entry_routing(tickets: Sequence[Arrival], shadow: bool) -> dict[str, Any]:
    """The same (and the key names), as `log_entry` arguments."""
    routed = _routed(tickets, shadow)
    return {"variants": routed.get("variants"), "revisions": routed.get("policy_revisions"),
            "shadow": shadow, "key_names": _key_names(tickets)}


def _split(tickets: list[Any], answers: list[Any]) -> list[tuple[bool, list[Any], list[Any]]]:
    """The batch as (shadow, tickets, answers) groups: primaries, then shadow copies (most
    batches hold no copy: one group, the lists as they are)."""
    if not any(t.shadow for t in tickets):
        return [(False, tickets, answers)]
    groups = []
    for shadow in (False, True):
        keep = [i for i, t in enumerate(tickets) if t.shadow is shadow]
        if keep:
            groups.append((shadow, [tickets[i] for i in keep], [answers[i] for i in keep]))
    return groups


def log_in_process(process: InferenceProcess, tickets: Sequence[Arrival],
                   rows: list[tuple[int, int, int]], shadow: bool = False,
                   slot: int = 0) -> None:
    """Have the inference process log these requests: each ticket with its ``rows``, the
    batch id and the row range its rows have in that batch (the process still holds them,
    for a joint process as version ``slot``'s rows)."""
    if not rows:
        return
    done = time.perf_counter()
    process.log(log_entry(
        rows, [t.request_id for t in tickets], [(done - t.started) * 1000.0 for t in tickets],
        [t.routing_key for t in tickets], [t.ts for t in tickets],
        upto=max(frame for frame, _, _ in rows), slot=slot, **_entry_routing(tickets, shadow)))


class RequestLog:
    """Logs answered batches: to ``log`` (rows here) or through the inference process, and
    tells the ``gate`` which request ids were answered (feedback may name them)."""

    def __init__(self, log: PredictionLog, gate: FeedbackGate) -> None:
        self.log = log
        self.gate = gate

    def raw_batch(self, target: LogTarget, tickets: list[RawTicket],
                  answers: list[RawServed]) -> None:
        """The log entry for the answered requests of a raw batch (the process holds the rows
        and writes them)."""
        assert target.process is not None
        for shadow, group, said in _split(tickets, answers):
            kept: list[RawTicket] = []
            rows: list[tuple[int, int, int]] = []
            if not shadow:  # every answered id may get feedback, logged or sampled out
                ids, counts = [], []
                for ticket, answer in zip(group, said, strict=True):
                    if answer.rows is not None:
                        ids.append(ticket.request_id)
                        counts.append(answer.rows[1] - answer.rows[0])
                self.gate.answered(target.endpoint, ids, counts)
            for i in sampled(target.sample_rate, len(group)):
                answer = said[i]
                if answer.rows is not None:  # None: a 4xx or 5xx answer, no rows
                    kept.append(group[i])
                    rows.append((answer.frame, *answer.rows))
            log_in_process(target.process, kept, rows, shadow, target.slot)

    def batch(self, target: LogTarget, tickets: list[Ticket], shares: list[Share]) -> None:
        """One log record for the requests of a batch that got their answers (a sampled
        subset below a log rate of 1)."""
        for shadow, group, said in _split(tickets, shares):
            if not shadow:
                self.gate.answered(target.endpoint, [t.request_id for t in group],
                                   [t.rows for t in group])
            self._batch(target, group, said, shadow)

    def _batch(self, target: LogTarget, tickets: list[Ticket], shares: list[Share],
               shadow: bool) -> None:
        done = time.perf_counter()
        if target.sample_rate < 1.0:
            kept = sampled(target.sample_rate, len(tickets))
            if not kept:
                return
            tickets, shares = [tickets[i] for i in kept], [shares[i] for i in kept]
        if target.process is not None:  # the child holds the rows: it writes them
            log_in_process(target.process, tickets,
                           [(s.batch.frame, s.start, s.stop) for s in shares], shadow)
            return
        batch = shares[0].batch
        if len(shares) == batch.requests and all(s.batch is batch for s in shares):
            inputs, outputs = batch.inputs, batch.outputs
        else:  # some callers timed out, were sampled out, were retried alone, or are copies
            inputs = concat([t.columns for t in tickets])
            outputs = concat([s.outputs() for s in shares])
        self.log.append(PredictionBatch(
            request_ids=[t.request_id for t in tickets], row_counts=[t.rows for t in tickets],
            latency_ms=[(done - t.started) * 1000.0 for t in tickets],
            routing_keys=[t.routing_key for t in tickets], ts=[t.ts for t in tickets],
            endpoint=target.endpoint, model=target.model, version=target.version,
            inputs=inputs, outputs=outputs, class_labels=target.class_labels,
            key_names=_key_names(tickets), **_routed(tickets, shadow)))

    def error(self, endpoint: str, model: str, version: int, variant: str, revision: int,
              request_id: str, status: int, latency_ms: float, routing_key: str | None, *,
              shadow: bool = False) -> None:
        """A request routed to ``model`` version ``version`` was answered with ``status``
        (not 2xx): one error record (buffered; the writer flushes it)."""
        self.log.append(ErrorRecord(time.time(), endpoint, model, version, variant, revision,
                                    request_id, status, latency_ms, routing_key, shadow))
