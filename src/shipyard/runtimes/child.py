"""The inference process's loop: load and warm up the model, say ready, answer frames.

Runs in the child (``python -m shipyard.runtimes.worker`` or the server's
``shipyard.server.inference_child``); the parent side is ``process.py``.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.runtimes.child_log import ChildLog, ChildLogger
from shipyard.runtimes.frames import (
    InferenceProcessError,
    RawHandler,
    decode,
    encode,
    recv_frame,
)
from shipyard.settings import Settings
from shipyard.types import Columns

if TYPE_CHECKING:
    from shipyard.runtimes.model import LoadedModel


def _answer_raw(model: LoadedModel, handler: RawHandler | None, logger: ChildLogger | None,
                header: dict[str, Any]) -> tuple[dict[str, Any], list[bytes]]:
    """The reply to a raw batch: statuses, rows and the response bodies (its payload)."""
    if handler is None:
        return {"error": "this inference process takes no raw batches"}, []
    try:
        answer = handler(model, header["raw"], header["payload"])
    except Exception as exc:  # the handler answers bad requests itself: this is a bug
        return {"error": f"{type(exc).__name__}: {exc}"}, []
    if logger is not None and answer.outputs:
        logger.keep(header["id"], answer.inputs, answer.outputs)
    reply = {"statuses": answer.statuses, "ranges": answer.ranges, "calls": answer.calls}
    if answer.ids:
        reply["ids"] = answer.ids
    return reply, answer.bodies


def child_main(fd: int, path: str, *, trust: bool, runtime: str | None,
               log: ChildLog | None = None, handler: RawHandler | None = None) -> int:
    """The child's loop: load, warm up, say ready, then answer frames until EOF (then flush
    the prediction log and exit). ``handler`` answers raw batches."""
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
    logger = None if log is None else ChildLogger(log, model.signature.class_labels)
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
            if logger is not None:
                for entry in header.get("log", ()):
                    logger.write(entry)
            if header.get("only_log"):
                if logger is not None and header.get("flush"):
                    logger.flush()
            elif "raw" in header:
                extra, payload = _answer_raw(model, handler, logger, header)
            else:
                try:
                    outputs = predict(columns)
                except Exception as exc:
                    extra["error"] = f"{type(exc).__name__}: {exc}"
                if logger is not None and "id" in header and outputs:
                    logger.keep(header["id"], columns, outputs)
            if logger is not None:  # every answer: the settled entries and the counters
                extra.update(logger.report())
            sock.sendall(encode(outputs, extra, payload))
    finally:
        if logger is not None:
            logger.close()
