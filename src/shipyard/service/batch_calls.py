"""What a batcher holds and what its batch functions do: a request's ticket (its rows or raw
body, and what its log row needs: id, routing key, variant, policy revision, arrival), one
model call over several tickets, and each ticket's share of the answer.

Four batch functions: `run_batch` (the model in this process, in a thread),
`run_batch_remote` (columns to the model's inference process), `run_raw_batch` (raw
request bodies that the inference process parses, predicts and answers whole) and
`run_joint_batch` (the same, for a process holding each version of a traffic split).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from shipyard.runtimes.model import LoadedModel
from shipyard.runtimes.outputs import check_rows, concat
from shipyard.runtimes.process import InferenceProcess
from shipyard.types import Columns, num_rows


class Arrival:
    """What a request's log row needs beyond its rows: its id, routing key, arrival, how it
    was routed (``variant``, ``revision``: the policy revision; ``shadow``: a copy of
    another request, whose answer nobody waits for) and the name of the API key that sent
    it (``key_name``; never the key itself; None without keys)."""

    __slots__ = ("key_name", "request_id", "revision", "routing_key", "shadow", "started",
                 "ts", "variant")

    def __init__(self, request_id: str, routing_key: str | None, variant: str = "",
                 revision: int = 0, shadow: bool = False, key_name: str | None = None) -> None:
        self.request_id = request_id
        self.routing_key = routing_key
        self.variant = variant
        self.revision = revision
        self.shadow = shadow
        self.key_name = key_name
        self.started = time.perf_counter()
        self.ts = time.time()


class RawTicket(Arrival):
    """One raw request in a batcher: the body as it came; ``infer``: an OIP infer body (else
    simple-JSON predict), whose JSON header ends at ``header_cut`` (None: the whole body).
    An infer request's ``request_id`` is the fallback until the process has read the body's
    own ``id``."""

    __slots__ = ("body", "header_cut", "infer", "slot")

    def __init__(self, body: bytes, request_id: str, routing_key: str | None,
                 infer: bool = False, header_cut: int | None = None, variant: str = "",
                 revision: int = 0, shadow: bool = False, slot: int = 0,
                 key_name: str | None = None) -> None:
        super().__init__(request_id, routing_key, variant, revision, shadow, key_name)
        self.body = body
        self.infer = infer
        self.header_cut = header_cut
        self.slot = slot  # the version that answers it, in a joint process (``joint.py``)


class Ticket(Arrival):
    """One request in a batcher: its prepared columns."""

    __slots__ = ("columns", "rows")

    def __init__(self, columns: Columns, request_id: str, routing_key: str | None,
                 variant: str = "", revision: int = 0, shadow: bool = False,
                 key_name: str | None = None) -> None:
        super().__init__(request_id, routing_key, variant, revision, shadow, key_name)
        self.columns = columns
        self.rows = num_rows(columns)


@dataclass(slots=True)
class RawServed:
    """The answer to one raw request: status and body as the inference process made them;
    ``rows``: where its rows are in the process's batch ``frame`` (for the log)."""

    status: int
    body: bytes
    frame: int
    rows: tuple[int, int] | None
    request_id: str | None = None  # an infer answer's id (the body's, else the fallback)


@dataclass(slots=True)
class Batch:
    """What one model call saw and answered (all its requests' rows, in order)."""

    inputs: Columns
    outputs: Columns
    requests: int
    frame: int = 0  # the inference process's id for this batch (0: run in this process)


@dataclass(slots=True)
class Share:
    """One request's rows of a batch's outputs (sliced only when asked)."""

    batch: Batch
    start: int
    stop: int

    def outputs(self) -> Columns:
        if self.batch.requests == 1:
            return self.batch.outputs
        start, stop = self.start, self.stop
        return {name: arr[start:stop] for name, arr in self.batch.outputs.items()}


def ticket_rows(ticket: Ticket) -> int:
    return ticket.rows


def run_batch(model: LoadedModel, tickets: list[Ticket]) -> list[Share]:
    """The batch function: one model call for every ticket's rows."""
    inputs = concat([t.columns for t in tickets])
    return _shares(tickets, inputs, model.runtime.predict(inputs))


async def run_batch_remote(process: InferenceProcess, tickets: list[Ticket]) -> list[Share]:
    """The batch function when the model runs in an inference process."""
    inputs = concat([t.columns for t in tickets])
    outputs, frame = await process.run(inputs)
    return _shares(tickets, inputs, outputs, frame)


async def run_raw_batch(process: InferenceProcess, spec: dict[str, Any],
                        on_call: Callable[[float], None],
                        tickets: list[RawTicket]) -> list[RawServed]:
    """The batch function of raw requests: the process answers each one whole (with
    ``spec["bodies"]`` False, its status and rows only: the answers' bodies are b"");
    ``on_call`` hears the rows of each model call it made (the batch-size metric)."""
    header, frame = await process.run_raw(_raw_spec(spec, tickets), [t.body for t in tickets])
    for rows in header["calls"]:
        on_call(rows)
    return _raw_answers(header, frame, tickets)


async def run_joint_batch(process: InferenceProcess, specs: list[dict[str, Any]],
                          on_calls: Sequence[Callable[[float], None]],
                          tickets: list[RawTicket]) -> list[RawServed]:
    """`run_raw_batch` for a joint process (``runtimes/joint_batch.py``): each ticket is
    answered by the version of its ``slot`` (``specs``: each version's spec; ``on_calls``:
    each one's batch-size metric). A ticket's rows are those of its version's share."""
    spec = {"specs": specs, "slots": [t.slot for t in tickets]}
    header, frame = await process.run_raw(_raw_spec(spec, tickets), [t.body for t in tickets])
    for slot, rows in header["calls"]:
        on_calls[slot](rows)
    return _raw_answers(header, frame, tickets)


def _raw_spec(spec: dict[str, Any], tickets: list[RawTicket]) -> dict[str, Any]:
    batch = {**spec, "request_ids": [t.request_id for t in tickets]}
    infer = [[i, t.header_cut] for i, t in enumerate(tickets) if t.infer]
    if infer:
        batch["infer"] = infer
    return batch


def _raw_answers(header: dict[str, Any], frame: int,
                 tickets: list[RawTicket]) -> list[RawServed]:
    statuses = header["statuses"]
    bodies = header.get("payload") or [b""] * len(statuses)  # none: the spec wants none
    answers = [RawServed(status, bytes(body), frame, None if rows is None else (rows[0], rows[1]))
               for status, body, rows in zip(statuses, bodies, header["ranges"], strict=True)]
    ids = header.get("ids", {})
    for i, ticket in enumerate(tickets):  # the id the answer names is the one the log keeps
        if ticket.infer:
            ticket.request_id = answers[i].request_id = ids.get(str(i), ticket.request_id)
    return answers


def _shares(tickets: list[Ticket], inputs: Columns, outputs: Columns,
            frame: int = 0) -> list[Share]:
    batch = Batch(inputs, outputs, len(tickets), frame)
    shares, start = [], 0
    for ticket in tickets:
        shares.append(Share(batch, start, start + ticket.rows))
        start += ticket.rows
    check_rows(outputs, start)
    return shares
