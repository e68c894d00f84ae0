"""Raw batches for an inference process that holds several model versions (a traffic
split's: ``service/joint.py``), split by version for the one-model handler and merged back.

Why: under a traffic split, one process per version means one frame per version per batch,
each half as full; on a small machine the doubled frames cost more in wake-ups and
preemption than the model calls themselves (bench/README.md, rollouts). With every version
in one process, a batch is one frame whatever the split.

A joint batch's spec holds ``slots`` (per request, the index of the version that answers
it), ``specs`` (per version, the one-model spec ``raw_child.answer_batch`` takes, less the
per-request lists) and the per-request lists of a one-model batch (``request_ids``,
``infer``). Each version's requests are answered by the one-model handler as a batch of
their own; their rows, for the log, stay per version (``ranges`` index them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from shipyard.runtimes.frames import RawAnswer, RawHandler
from shipyard.types import Columns

if TYPE_CHECKING:
    from shipyard.runtimes.model import LoadedModel


class Joint(NamedTuple):
    """A joint batch's answer: ``reply`` (the answer header's fields), the response
    ``bodies`` in request order, and per version the rows the log may keep."""

    reply: dict[str, Any]
    bodies: list[bytes]
    kept: list[tuple[Columns, Columns]]


def is_joint(spec: dict[str, Any]) -> bool:
    return "slots" in spec


def split(spec: dict[str, Any], versions: int) -> list[tuple[list[int], dict[str, Any]]]:
    """Per version: the positions of its requests in the batch and its one-model spec."""
    slots: list[int] = spec["slots"]
    if len(spec["specs"]) != versions or any(not 0 <= s < versions for s in slots):
        raise ValueError(f"a joint batch names versions this process does not hold "
                         f"({versions} loaded)")
    cuts = dict(spec.get("infer", ()))
    ids = spec["request_ids"]
    parts = []
    for slot in range(versions):
        mine = [i for i, s in enumerate(slots) if s == slot]
        own = {**spec["specs"][slot], "request_ids": [ids[i] for i in mine],
               "bodies": spec.get("bodies", True)}
        infer = [[j, cuts[i]] for j, i in enumerate(mine) if i in cuts]
        if infer:
            own["infer"] = infer
        parts.append((mine, own))
    return parts


def answer_joint(models: Sequence[LoadedModel], handler: RawHandler, spec: dict[str, Any],
                 bodies: list[memoryview]) -> Joint:
    """Each version's requests answered by ``handler`` with its model, merged in request
    order; ``calls`` are ``[version, rows]`` pairs."""
    n = len(spec["slots"])
    if n != len(bodies):
        raise ValueError(f"a joint batch of {len(bodies)} bodies names {n} versions")
    statuses = [0] * n
    answers = [b""] * n
    ranges: list[tuple[int, int] | None] = [None] * n
    calls: list[list[int]] = []
    ids: dict[str, str] = {}
    kept: list[tuple[Columns, Columns]] = []
    for slot, (mine, own) in enumerate(split(spec, len(models))):
        if not mine:
            kept.append(({}, {}))
            continue
        answer: RawAnswer = handler(models[slot], own, [bodies[i] for i in mine])
        for j, i in enumerate(mine):
            statuses[i] = answer.statuses[j]
            answers[i] = answer.bodies[j]
            ranges[i] = answer.ranges[j]
        calls += [[slot, rows] for rows in answer.calls]
        ids.update({str(mine[int(j)]): rid for j, rid in answer.ids.items()})
        kept.append((answer.inputs, answer.outputs))
    reply: dict[str, Any] = {"statuses": statuses, "ranges": ranges, "calls": calls}
    if ids:
        reply["ids"] = ids
    return Joint(reply, answers if spec.get("bodies", True) else [], kept)
