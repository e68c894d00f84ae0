"""Feedback admission: a label reaches the log only for a request the server answered, once.

Which ids are real: every request an endpoint answered (its generated id, or the client's own
``X-Request-Id`` / OIP ``id``) is noted in memory when its answer is delivered (``answered``,
two generations of a dict, so memory stays bounded; the log's sampling does not matter). An id
not held in memory (answered by another worker of ``--workers N``, another server sharing the
log directory, or before a restart) is looked up in the prediction log on disk, which every
worker and inference process writes (``LoggedIds``), back to ``feedback_horizon_s``. An id that
is on neither may be one another process answered a moment ago whose log rows are still in
its buffer: the request waits for the log to flush (``grace_s``, about two flush intervals),
and only then is refused with 404 naming the id. One poller per endpoint looks up the ids of
every waiting request together, off the event loop, and at most ``max_waiting_ids`` ids wait at
once; past that a request gets 503 + Retry-After (``feedback_lookup``). Nothing unknown is
ever written, so forged labels never reach the metrics.

Once: a request that was labelled before (in memory, or in the feedback log on disk) is refused
with 409 unless the feedback says ``"replace": true``; replacements are counted, and the
monitor uses the newest replacement (``stores.feedback.effective_labels``). Two labels for
one id racing through two workers (neither on disk yet) are decided by a claim every process
on the log directory shares (``stores.label_claims``): one gets 200, the other 409.

Labels are checked against the model's task (``feedback_labels``); a request is taken or
refused whole. Counters: ``shipyard_feedback_rows{outcome}`` (accepted, replaced,
unknown_request, duplicate, invalid_label, busy) and ``shipyard_feedback_ids{found}`` (memory, log,
log_after_wait: where a labelled id was found).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from shipyard.batching import QueueFullError
from shipyard.errors import DuplicateLabelError, Problem, UnknownRequestError
from shipyard.packaging.signature import Signature
from shipyard.service.feedback_labels import checked_labels, raise_problems
from shipyard.service.feedback_lookup import LogLookup
from shipyard.stores.feedback import FeedbackRecord
from shipyard.stores.label_claims import LabelClaims
from shipyard.stores.log_index import LoggedIds

_NAMED = 5  # request ids named in an error at most


@dataclass(frozen=True)
class FeedbackItem:
    """Labels for rows 0..n-1 of one answered request."""

    request_id: str
    labels: list[Any]
    replace: bool = False


class RecentIds:
    """Ids (with a row count each) noted within about ``keep_s`` seconds, at most about
    ``max_ids``: the newer of two dicts takes new ids, and when it is full or old the older
    one is dropped."""

    def __init__(self, keep_s: float, max_ids: int) -> None:
        self.keep_s = keep_s
        self.max_ids = max_ids
        self._new: dict[str, int] = {}
        self._old: dict[str, int] = {}
        self._since = time.monotonic()

    def add(self, ids: Sequence[str], rows: Sequence[int]) -> None:
        new = self._new
        new.update(zip(ids, rows, strict=True))
        if len(new) > self.max_ids or time.monotonic() - self._since > self.keep_s:
            self._old, self._new, self._since = new, {}, time.monotonic()

    def get(self, request_id: str) -> int | None:
        found = self._new.get(request_id)
        return self._old.get(request_id) if found is None else found


class _EndpointIds:
    """What one endpoint's gate knows: answered and labelled ids, in memory and on disk."""

    def __init__(self, root: str | Path, endpoint: str, horizon_s: float, keep_s: float,
                 max_ids: int, grace_s: float, max_waiting_ids: int) -> None:
        self.answered = RecentIds(keep_s, max_ids)
        self.labelled = RecentIds(keep_s, max_ids)
        self.predictions = LoggedIds(root, "predictions", endpoint, horizon_s=horizon_s)
        self.feedback = LoggedIds(root, "feedback", endpoint, horizon_s=horizon_s)
        self.lookup = LogLookup(self.predictions, grace_s=grace_s,
                                max_waiting_ids=max_waiting_ids)


class FeedbackGate:
    """Admits feedback for the endpoints of one data plane (see the module docstring)."""

    def __init__(self, root: str | Path, endpoints: Sequence[str],
                 registry: CollectorRegistry, *, horizon_s: float, grace_s: float,
                 keep_s: float = 600.0, max_ids: int = 200_000, max_waiting_ids: int = 50_000,
                 claims: Path | None = None) -> None:
        self.grace_s = grace_s
        self._ids = {name: _EndpointIds(root, name, horizon_s, min(keep_s, horizon_s),
                                        max_ids, grace_s, max_waiting_ids)
                     for name in endpoints}
        # ``claims``: a local directory for them (default ``root``; a log on an object store
        # has no file locks, so its claims are shared by the processes of one machine)
        self._claims = LabelClaims(root if claims is None else claims, horizon_s=horizon_s)
        self.rows = Counter("shipyard_feedback_rows", "Feedback label rows by outcome.",
                            ["endpoint", "outcome"], registry=registry)
        self.found = Counter("shipyard_feedback_ids", "Labelled request ids by where the "
                             "server found the request.", ["endpoint", "found"],
                             registry=registry)

    def answered(self, endpoint: str, ids: Sequence[str], rows: Sequence[int]) -> None:
        """Note requests the endpoint answered (on the event loop, once per batch)."""
        self._ids[endpoint].answered.add(ids, rows)

    async def admit(self, endpoint: str, signature: Signature, items: Sequence[FeedbackItem],
                    append: Callable[[FeedbackRecord], bool]) -> int:
        """Check ``items`` and ``append`` them to the log, all or none; returns the rows
        accepted. Raises InvalidLabelError (422), UnknownRequestError (404) or
        DuplicateLabelError (409)."""
        known = self._ids[endpoint]
        try:
            checked = self._checked(signature, items)
            rows = await self._answered_rows(endpoint, known, items)
            _check_counts(items, rows)
        except Exception as exc:
            outcome = "unknown_request" if isinstance(exc, UnknownRequestError) \
                else "busy" if isinstance(exc, QueueFullError) else "invalid_label"
            self.rows.labels(endpoint, outcome).inc(sum(len(i.labels) for i in items))
            raise
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, known.feedback.refresh)
        on_disk = known.feedback.rows_of([i.request_id for i in items])
        before = {i.request_id for i, logged in zip(items, on_disk, strict=True)
                  if logged is not None or known.labelled.get(i.request_id) is not None}
        self._refuse_duplicates(endpoint, items, before)
        # the decision shared with every other process on this log directory: exactly one
        # of two requests racing through two workers claims the id
        claimed, refused = await loop.run_in_executor(
            None, self._claims.claim, endpoint, [i.request_id for i in items],
            [i.replace for i in items])
        before |= claimed
        if refused:
            self._refuse_duplicates(endpoint, items, before)
        # from here on no await: the claim is ours, write the labels
        now, accepted = time.time(), 0
        for item, labels in zip(items, checked, strict=True):
            if append(FeedbackRecord(item.request_id, now, endpoint, labels, item.replace)):
                accepted += len(labels)
                replaced = item.replace and item.request_id in before
                self.rows.labels(endpoint, "replaced" if replaced else "accepted").inc(
                    len(labels))
        known.labelled.add([i.request_id for i in items], [len(i.labels) for i in items])
        return accepted

    def _checked(self, signature: Signature, items: Sequence[FeedbackItem]) -> list[list[Any]]:
        problems: list[Problem] = []
        checked = [checked_labels(signature, item.labels, f"feedback[{n}].labels", problems)
                   for n, item in enumerate(items)]
        raise_problems(problems)
        return checked

    async def _answered_rows(self, endpoint: str, known: _EndpointIds,
                             items: Sequence[FeedbackItem]) -> dict[str, int]:
        """Rows of each request named (each one answered, else UnknownRequestError)."""
        rows: dict[str, int] = {}
        for item in items:
            found = known.answered.get(item.request_id)
            if found is not None:
                rows[item.request_id] = found
                self.found.labels(endpoint, "memory").inc()
        missing = {i.request_id for i in items} - set(rows)
        if not missing:
            return rows
        logged, after_wait = await known.lookup.find(missing)
        rows.update(logged)
        missing -= set(logged)
        for request_id in logged:
            self.found.labels(endpoint, "log_after_wait" if request_id in after_wait
                              else "log").inc()
        if missing:
            raise UnknownRequestError(
                f"endpoint {endpoint!r} never answered request {_named(missing)}: feedback "
                "needs the request_id of an answered request", sorted(missing))
        return rows

    def _refuse_duplicates(self, endpoint: str, items: Sequence[FeedbackItem],
                           before: set[str]) -> None:
        seen: set[str] = set()
        again = set()
        for item in items:
            if not item.replace and (item.request_id in before or item.request_id in seen):
                again.add(item.request_id)
            seen.add(item.request_id)
        if again:
            self.rows.labels(endpoint, "duplicate").inc(sum(len(i.labels) for i in items))
            raise DuplicateLabelError(
                f"request {_named(again)} already has labels; send \"replace\": true to "
                "replace them", sorted(again))


def _check_counts(items: Sequence[FeedbackItem], rows: dict[str, int]) -> None:
    problems = [Problem(f"feedback[{n}].labels", f"request {item.request_id!r} has "
                        f"{rows[item.request_id]} row(s); got {len(item.labels)} labels")
                for n, item in enumerate(items) if len(item.labels) > rows[item.request_id]]
    raise_problems(problems)


def _named(ids: set[str]) -> str:
    shown = sorted(ids)[:_NAMED]
    more = f" (and {len(ids) - _NAMED} more)" if len(ids) > _NAMED else ""
    return ", ".join(repr(i) for i in shown) + more
