"""The server's inference process: ``python -m shipyard.runtimes.raw_child``.

It is ``shipyard.runtimes.worker`` plus ``answer_batch``, which answers raw batches of
simple-JSON predict and OIP infer requests: the child parses each body, validates it against
the signature, runs the valid ones through the model and encodes each answer, exactly as the
hot routes would have in the server process (the same functions, so the same bodies and
statuses). The server's event loop then only reads request bodies, passes them on and
writes the answers back.

A bad request gets its own 4xx and never reaches the model. If a model call fails, each of
its requests is tried alone, so only the request the model fails on gets a 500.
"""

from __future__ import annotations

import sys
from typing import Any, NamedTuple

from shipyard.defences import OutputPolicy, defend
from shipyard.errors import RemoteModelError
from shipyard.protocol import codec
from shipyard.protocol.http_errors import error_parts
from shipyard.runtimes import worker
from shipyard.runtimes.frames import RawAnswer
from shipyard.runtimes.model import LoadedModel
from shipyard.runtimes.outputs import check_rows, concat
from shipyard.types import Columns, num_rows


class Failed(NamedTuple):
    """A request the model failed on: its error answer."""

    status: int
    body: bytes


class _Infer(NamedTuple):
    """What an OIP infer request's answer needs beyond its rows."""

    request_id: str
    requested: Any  # the request's "outputs" (which outputs to return), if any


def answer_batch(model: LoadedModel, spec: dict[str, Any],
                 bodies: list[memoryview]) -> RawAnswer:
    """Answers to ``bodies``: simple-JSON predict requests, and OIP infer requests where
    ``spec["infer"]`` lists ``[index, header_cut]`` (where the JSON header ends; None: the
    whole body). ``spec``: ``request_ids`` (an infer request's fallback id), ``model``,
    ``endpoint`` and ``version`` (for the answers), ``unknown`` (the endpoint's
    unknown-category rule) and ``max_rows`` (rows per model call at most; a larger request
    runs alone); ``bodies`` False (shadow copies): the answers' bodies are not wanted, so
    simple-JSON answers are not encoded (statuses, rows and the log are as with bodies).
    The answer's ``ids`` name each infer request's id where its body gave one."""
    n = len(bodies)
    statuses = [0] * n
    answers = [b""] * n
    ranges: list[tuple[int, int] | None] = [None] * n
    valid: list[tuple[int, Columns, int]] = []  # (request, its columns, its rows)
    unknown = spec["unknown"]
    request_ids = spec["request_ids"]
    cuts: dict[int, int | None] = dict(spec.get("infer", ()))
    infer: dict[int, _Infer] = {}
    wanted = spec.get("bodies", True)
    # what the answers show (labels only, rounding, noise); the log keeps the true outputs
    policy = OutputPolicy.from_spec(spec.get("outputs"))
    secret = bytes.fromhex(spec.get("secret", ""))
    for i, body in enumerate(bodies):
        try:
            if i in cuts:
                header, binary = codec.split_binary(body, cuts[i])
                columns, requested = codec.oip_request(header, binary, model.signature)
                columns = codec.prepare(model, columns, unknown)
                infer[i] = _Infer(codec.oip_id(header, None) or request_ids[i], requested)
            else:  # strict JSON holds no NaN: a float array parsed from it needs no NaN scan
                columns = codec.prepare(model, codec.simple_request(codec.loads(body)),
                                        unknown, finite=True)
        except Exception as exc:
            statuses[i], answers[i], _ = error_parts(exc)
            continue
        valid.append((i, columns, num_rows(columns)))

    def answer_alone(i: int, outputs: Columns) -> tuple[int, bytes]:
        """One request's answer from its own rows of ``outputs`` (as the policy shows
        them)."""
        asked = infer.get(i)
        try:
            if asked is None:
                if not wanted:
                    return 200, b""
                return 200, codec.simple_response(
                    outputs, model.signature, model=spec["model"], version=spec["version"],
                    request_id=request_ids[i])
            return 200, codec.oip_response(outputs, model=spec["endpoint"],
                                           version=spec["version"],
                                           request_id=asked.request_id,
                                           requested=asked.requested)
        except Exception as exc:  # e.g. an infer request asking for an output there is not
            status, body, _ = error_parts(exc)
            return status, body

    kept_in: list[Columns] = []  # the logged rows: whole calls, or requests of a failed one
    kept_out: list[Columns] = []
    calls: list[int] = []
    row = 0
    for group in _groups(valid, spec["max_rows"]):
        calls.append(sum(rows for _, _, rows in group))
        inputs = concat([columns for _, columns, _ in group])
        try:
            outputs = _predict(model, inputs)
        except Exception as exc:
            answered = _alone(model, group, exc)
        else:  # the whole call is logged; each request's answer from its rows of it
            kept_in.append(inputs)
            kept_out.append(outputs)
            shown = defend(outputs, policy, secret) if wanted else outputs
            bounds = _bounds(group)
            simple = [(i, rows) for (i, _, _), rows in zip(group, bounds, strict=True)
                      if i not in infer]
            made = codec.simple_responses(
                shown, model.signature, model=spec["model"], version=spec["version"],
                request_ids=[request_ids[i] for i, _ in simple],
                bounds=[rows for _, rows in simple]) if wanted else [b""] * len(simple)
            for (i, _), answer in zip(simple, made, strict=True):
                statuses[i], answers[i] = 200, answer
            for (i, _, _), (start, stop) in zip(group, bounds, strict=True):
                if i in infer:
                    statuses[i], answers[i] = answer_alone(
                        i, {k: v[start:stop] for k, v in shown.items()})
                if statuses[i] == 200:
                    ranges[i] = (row + start, row + stop)
            row += bounds[-1][1]
            continue
        for (i, columns, rows), result in zip(group, answered, strict=True):
            if isinstance(result, Failed):
                statuses[i], answers[i] = result
                continue
            # answered alone after the call failed: logged alone (if it got its answer)
            statuses[i], answers[i] = answer_alone(
                i, defend(result, policy, secret) if wanted else result)
            if statuses[i] == 200:
                ranges[i] = (row, row + rows)
                row += rows
                kept_in.append(columns)
                kept_out.append(result)
    ids = {str(i): asked.request_id for i, asked in infer.items()
           if asked.request_id != request_ids[i]}
    return RawAnswer(statuses, answers, ranges, concat(kept_in), concat(kept_out), calls, ids)


def _groups(valid: list[tuple[int, Columns, int]],
            max_rows: int) -> list[list[tuple[int, Columns, int]]]:
    """Consecutive requests in calls of at most ``max_rows`` rows (a bigger one alone)."""
    groups: list[list[tuple[int, Columns, int]]] = []
    rows = 0
    for item in valid:
        if groups and rows + item[2] <= max_rows:
            groups[-1].append(item)
            rows += item[2]
        else:
            groups.append([item])
            rows = item[2]
    return groups


def _bounds(group: list[tuple[int, Columns, int]]) -> list[tuple[int, int]]:
    """Each request's ``(start, stop)`` rows in its call."""
    bounds, start = [], 0
    for _, _, rows in group:
        bounds.append((start, start + rows))
        start += rows
    return bounds


def _alone(model: LoadedModel, group: list[tuple[int, Columns, int]],
           exc: Exception) -> list[Columns | Failed]:
    """After a failed call (called while handling ``exc``): each request's own outputs or
    error answer, each run alone. The model's error is logged with its traceback."""
    if len(group) == 1:
        return [_failure(exc)]
    answered: list[Columns | Failed] = []
    for _, columns, _ in group:
        try:
            answered.append(_predict(model, columns))
        except Exception as alone:
            answered.append(_failure(alone))
    return answered


def _failure(exc: Exception) -> Failed:
    """A model error's answer, as the server gives one (500; call while handling ``exc``,
    so the log shows the model's traceback)."""
    status, body, _ = error_parts(RemoteModelError(f"{type(exc).__name__}: {exc}"))
    return Failed(status, body)


def _predict(model: LoadedModel, inputs: Columns) -> Columns:
    outputs = model.runtime.predict(inputs)
    check_rows(outputs, num_rows(inputs))
    return outputs


if __name__ == "__main__":
    sys.exit(worker.main(handler=answer_batch))
