"""The inference process's loop: load and warm up the model, say ready, answer frames.

Runs in the child (``python -m shipyard.runtimes.worker`` or
``shipyard.runtimes.raw_child``); the parent side is ``process.py``.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import InferenceProcessError
from shipyard.runtimes.child_log import ChildLog, ChildLogger
from shipyard.runtimes.frames import RawHandler, decode, encode, recv_frame
from shipyard.settings import Settings
from shipyard.types import Columns

if TYPE_CHECKING:
    from shipyard.runtimes.model import LoadedModel


def _answer_raw(model: LoadedModel, handler: RawHandler | None, header: dict[str, Any],
                ) -> tuple[dict[str, Any], list[bytes], tuple[Columns, Columns]]:
    """The reply to a raw batch: statuses, rows and the response bodies (its payload; none
    when the batch's spec says ``bodies`` False); and the rows the log may keep (inputs,
    outputs)."""
    if handler is None:
        return {"error": "this inference process takes no raw batches"}, [], ({}, {})
    try:
        answer = handler(model, header["raw"], header["payload"])
    except Exception as exc:  # the handler answers bad requests itself: this is a bug
        return {"error": f"{type(exc).__name__}: {exc}"}, [], ({}, {})
    reply = {"statuses": answer.statuses, "ranges": answer.ranges, "calls": answer.calls}
    if answer.ids:
        reply["ids"] = answer.ids
    bodies = answer.bodies if header["raw"].get("bodies", True) else []  # not wanted: none
    return reply, bodies, (answer.inputs, answer.outputs)


def child_main(fd: int, path: str, *, trust: bool, runtime: str | None,
               log: ChildLog | None = None, handler: RawHandler | None = None,
               spool: Path | None = None) -> int:
    """The child's loop: load, warm up, say ready, then answer frames until EOF (then flush
    the prediction log and exit). ``handler`` answers raw batches; ``spool``: where the log's
    spool files go (``spool.py``), their names starting with its name."""
    from shipyard.runtimes.model import load

    sock = socket.socket(fileno=fd)
    try:
        model = load(path, trust=trust, runtime=runtime, settings=Settings.from_env())
        example = model.manifest.input_example
        if example is not None:
            model.predict(json.loads((Path(path) / example).read_text()))
    except Exception as exc:
        sock.sendall(encode({}, {"ready": False, "error": f"{type(exc).__name__}: {exc}"}))
        return 1
    logger = None if log is None else ChildLogger(log, model.signature.class_labels, spool)
    sock.sendall(encode({}, {"ready": True}))
    predict = model.runtime.predict
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
            kept: tuple[Columns, Columns] = ({}, {})  # the batch's rows, for the log
            if "raw" in header:
                extra, payload, kept = _answer_raw(model, handler, header)
            elif not header.get("only_log"):
                try:
                    outputs = predict(columns)
                except Exception as exc:
                    extra["error"] = f"{type(exc).__name__}: {exc}"
                kept = (columns, outputs)
            if logger is not None:
                # the entries that came along and the batch's rows: spooled before answering
                logger.record(header.get("log", ()), header.get("id"), *kept)
                if header.get("flush"):
                    logger.flush()
                extra.update(logger.report())  # the settled entries and the counters
            sock.sendall(encode(outputs, extra, payload))
    finally:
        if logger is not None:
            logger.close()
