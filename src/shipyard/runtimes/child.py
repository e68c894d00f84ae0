"""The inference process's loop: load and warm up the model, say ready, answer frames.

Runs in the child (``python -m shipyard.runtimes.worker`` or
``shipyard.runtimes.raw_child``); the parent side is ``process.py``. A child may hold several
versions of a model (a traffic split's, ``joint_batch.py``): then it takes raw batches only,
and each version has its own prediction log writer and spool; log entries name their
version's ``slot``.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import InferenceProcessError
from shipyard.runtimes.child_log import ChildLog, ChildLogger, joint_report
from shipyard.runtimes.frames import RawHandler, decode, encode, recv_frame
from shipyard.runtimes.joint_batch import answer_joint, is_joint
from shipyard.settings import Settings
from shipyard.types import Columns

if TYPE_CHECKING:
    from shipyard.runtimes.model import LoadedModel

Kept = list[tuple[Columns, Columns]]  # per version: the batch's rows, for the log


def _answer_raw(models: Sequence[LoadedModel], handler: RawHandler | None,
                header: dict[str, Any]) -> tuple[dict[str, Any], list[bytes], Kept]:
    """The reply to a raw batch: statuses, rows and the response bodies (its payload; none
    when the batch's spec says ``bodies`` False); and per version the rows the log may keep
    (inputs, outputs)."""
    if handler is None:
        return {"error": "this inference process takes no raw batches"}, [], []
    spec = header["raw"]
    try:
        if is_joint(spec):
            joint = answer_joint(models, handler, spec, header["payload"])
            return joint.reply, joint.bodies, joint.kept
        if len(models) != 1:
            raise ValueError("a batch for one version sent to a process holding several")
        answer = handler(models[0], spec, header["payload"])
    except Exception as exc:  # the handler answers bad requests itself: this is a bug
        return {"error": f"{type(exc).__name__}: {exc}"}, [], []
    reply = {"statuses": answer.statuses, "ranges": answer.ranges, "calls": answer.calls}
    if answer.ids:
        reply["ids"] = answer.ids
    bodies = answer.bodies if spec.get("bodies", True) else []  # not wanted: none
    return reply, bodies, [(answer.inputs, answer.outputs)]


def _load(path: str, *, trust: bool, runtime: str | None) -> LoadedModel:
    from shipyard.runtimes.model import load

    model = load(path, trust=trust, runtime=runtime, settings=Settings.from_env())
    example = model.manifest.input_example
    if example is not None:
        model.predict(json.loads((Path(path) / example).read_text()))
    return model


def _record(loggers: Sequence[ChildLogger], header: dict[str, Any], kept: Kept) -> None:
    """Each version's logger takes its entries and its rows of the batch (spooled before
    the answer leaves)."""
    entries = header.get("log", ())
    frame = header.get("id")
    for slot, logger in enumerate(loggers):
        mine = [e for e in entries if e.get("slot", 0) == slot] if len(loggers) > 1 \
            else entries
        rows = kept[slot] if slot < len(kept) else ({}, {})
        logger.record(mine, frame, *rows)
        if header.get("flush"):
            logger.flush()


def child_main(fd: int, paths: Sequence[str], *, trust: bool, runtime: str | None,
               logs: Sequence[ChildLog] = (), handler: RawHandler | None = None,
               spools: Sequence[Path | None] = ()) -> int:
    """The child's loop: load and warm up each of ``paths``, say ready, then answer frames
    until EOF (then flush the prediction logs and exit). ``handler`` answers raw batches;
    ``logs`` (none, or one per path): where each version's batches are logged; ``spools``:
    where each one's spool files go (``spool.py``), their names starting with its name."""
    sock = socket.socket(fileno=fd)
    try:
        models = [_load(path, trust=trust, runtime=runtime) for path in paths]
    except Exception as exc:
        sock.sendall(encode({}, {"ready": False, "error": f"{type(exc).__name__}: {exc}"}))
        return 1
    if logs and len(logs) != len(models):
        raise ValueError(f"{len(logs)} log specs for {len(models)} packages")
    loggers = [ChildLogger(log, model.signature.class_labels,
                           spools[i] if i < len(spools) else None)
               for i, (log, model) in enumerate(zip(logs, models, strict=False))]
    sock.sendall(encode({}, {"ready": True}))
    predict = models[0].runtime.predict
    try:
        while True:
            try:
                body = recv_frame(sock)
            except InferenceProcessError:
                return 0  # the server closed its end: shut down
            columns, header = decode(body)
            outputs: Columns = {}
            extra: dict[str, Any] = {}
            payload: list[bytes] = []
            kept: Kept = []
            if "raw" in header:
                extra, payload, kept = _answer_raw(models, handler, header)
            elif len(models) > 1 and not header.get("only_log"):
                extra["error"] = "a process holding several versions takes raw batches only"
            elif not header.get("only_log"):
                try:
                    outputs = predict(columns)
                except Exception as exc:
                    extra["error"] = f"{type(exc).__name__}: {exc}"
                kept = [(columns, outputs)]
            if loggers:
                _record(loggers, header, kept)
                # the settled entries and the counters
                extra.update(loggers[0].report() if len(loggers) == 1 else
                             joint_report(loggers))
            sock.sendall(encode(outputs, extra, payload))
    finally:
        for logger in loggers:
            logger.close()
